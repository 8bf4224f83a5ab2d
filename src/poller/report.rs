//! The reporter: a STATUS line for systemd every few seconds, and a summary
//! event every `poller.summary_interval` (pending, confirmed since the last
//! one, 429s, API latency p50/p95, token days left, pending and dead
//! deliveries), with a warning when
//! the token is close to expiry and has not been renewed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Observer;
use crate::bakong::Client;
use crate::config::Settings;
use crate::counters::Counters as Metrics;
use crate::store::Store;

const TOKEN_WARNING_DAYS: f64 = 7.0;

/// The `p` quantile (0.0 to 1.0) of sorted samples, nearest rank.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied()
}

fn confirmed(m: &Metrics) -> u64 {
    m.paid.load(Ordering::Relaxed)
        + m.mismatch.load(Ordering::Relaxed)
        + m.failed.load(Ordering::Relaxed)
        + m.expired.load(Ordering::Relaxed)
}

/// Runs until `shutdown`.
pub async fn run(
    store: Store,
    client: Client,
    metrics: Arc<Metrics>,
    settings: Arc<Settings>,
    observer: Arc<dyn Observer>,
    shutdown: CancellationToken,
) {
    let summary_every = settings.poller.summary_interval;
    let mut status_tick = tokio::time::interval(summary_every.min(Duration::from_secs(5)));
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut summary_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + summary_every, summary_every);
    summary_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_confirmed = confirmed(&metrics);
    let mut last_429 = client.gate().stats.rate_limited.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = status_tick.tick() => {
                let pending = store.counts().await.map(|c| c.pending);
                let today = store.paid_today().await;
                let last = client.last_success_ms();
                let last_text = if last == 0 {
                    "no API answer yet".to_string()
                } else {
                    format!("last API answer {}s ago", (Utc::now().timestamp_millis() - last) / 1000)
                };
                let now_ms = Utc::now().timestamp_millis();
                let mut problem = match client.quota().pause() {
                    Some(p) => format!(", {}", p.describe()),
                    None => metrics
                        .incidents
                        .current()
                        .map(|p| format!(", problem: {p}"))
                        .unwrap_or_default(),
                };
                if let Some(b) = client.quota().budget() {
                    problem += &format!(", requests today {}/{b}", client.quota().spent_today(now_ms));
                }
                match (pending, today) {
                    (Ok(p), Ok(t)) => observer.status(&format!("pending {p}, paid today {t}, {last_text}{problem}")),
                    // The claim loop reports a database outage once; this would
                    // repeat it every few seconds.
                    (Err(e), _) | (_, Err(e)) => debug!(error = %e, "status: cannot read counts"),
                }
            }
            _ = summary_tick.tick() => {
                let pending = store.counts().await.map(|c| c.pending).unwrap_or(-1);
                let deliveries = store.delivery_counts().await.unwrap_or_default();
                let now_confirmed = confirmed(&metrics);
                let now_429 = client.gate().stats.rate_limited.load(Ordering::Relaxed);
                let mut lat = client.take_latencies();
                lat.sort_unstable();
                let days_left = client
                    .tokens()
                    .current()
                    .and_then(|(t, _)| t.claims().expires_at)
                    .map(|e| (e - Utc::now()).num_seconds() as f64 / 86400.0);
                info!(
                    pending,
                    confirmed = now_confirmed - last_confirmed,
                    rate_limited = now_429 - last_429,
                    requests = lat.len(),
                    api_p50_ms = percentile(&lat, 0.5),
                    api_p95_ms = percentile(&lat, 0.95),
                    token_days_left = days_left.map(|d| (d * 10.0).round() / 10.0),
                    renewals = client.tokens().renewals(),
                    rate_per_second = client.gate().rate(),
                    deliveries_pending = deliveries.pending,
                    deliveries_dead = deliveries.dead,
                    "summary"
                );
                if let Some(d) = days_left.filter(|d| *d < TOKEN_WARNING_DAYS) {
                    warn!(token_days_left = (d * 10.0).round() / 10.0, "the access token expires soon and has not been renewed; check bakong.email and the renewal errors above");
                }
                last_confirmed = now_confirmed;
                last_429 = now_429;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_of_sorted_samples() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(51));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
    }
}
