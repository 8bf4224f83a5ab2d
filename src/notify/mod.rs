//! Notifications: the outbox of events written with each final status
//! ([`crate::event`]), signed the Standard Webhooks way ([`crate::event::sign`]), and the
//! sender that delivers them beside the poller ([`run`], [`deliver`]).
//!
//! Delivery is at least once. Each receiver (`[webhook]`, `[hook]`) has a
//! delivery row per event, claimed with a lease, so a crash or a second
//! daemon never loses one and, while the lease holds, never sends it twice.
//! Failures are retried with exponential backoff and jitter (see
//! [`retry_delay`]); after `webhook.max_attempts` the delivery is `dead`.
//! The sender has its own task and its own requests: a slow or dead
//! receiver never delays a check or a write.

pub mod deliver;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::Settings;
use crate::store::{AttemptRecord, ClaimedDelivery, DeliveryOutcome, Store};
use deliver::{Answer, Hook, Webhook};

/// Receiver name of `[webhook]`.
pub const WEBHOOK: &str = "webhook";
/// Receiver name of `[hook]`.
pub const HOOK: &str = "hook";

/// Attempts in flight at once, all receivers together.
const IN_FLIGHT: usize = 16;

/// How long in-flight attempts get to finish on shutdown before they are
/// abandoned (their deliveries are given back and sent again after a restart).
const DRAIN: Duration = Duration::from_millis(500);

/// Each retry waits this many times longer than the one before.
const FACTOR: f64 = 3.0;

/// The receivers configured, ready to send.
#[derive(Debug, Clone, Default)]
pub struct Receivers {
    /// `[webhook]`, when `url` is set.
    pub webhook: Option<Webhook>,
    /// `[hook]`, when `command` is set.
    pub hook: Option<Hook>,
}

/// The receivers `s` configures, each with a short fingerprint of its
/// settings (the first 12 hex digits of a SHA-256; a webhook's secrets go
/// into it, so two daemons signing differently differ, but 48 bits of a
/// hash reveal nothing usable of a 192-bit secret). Sorted.
pub fn receiver_configs(s: &Settings) -> Vec<crate::store::ReceiverConfig> {
    use sha2::Digest;
    let print = |parts: &[&str]| {
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_be_bytes());
            h.update(p.as_bytes());
        }
        h.finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let mut out = Vec::new();
    if let Some(url) = &s.webhook.url {
        let mut parts = vec![url.as_str()];
        let secrets = s.webhook.secret.list();
        parts.extend(secrets.iter().map(|x| -> &str { x }));
        out.push(crate::store::ReceiverConfig {
            name: WEBHOOK.into(),
            config: print(&parts),
        });
    }
    if let Some(argv) = &s.hook.command {
        let parts: Vec<&str> = argv.iter().map(String::as_str).collect();
        out.push(crate::store::ReceiverConfig {
            name: HOOK.into(),
            config: print(&parts),
        });
    }
    out.sort();
    out
}

impl Receivers {
    /// Builds the receivers the settings configure.
    pub fn from_settings(s: &Settings) -> Result<Self, deliver::SetupError> {
        let webhook = match &s.webhook.url {
            Some(url) => Some(Webhook::new(url, s.webhook_keys(), s.webhook.timeout)?),
            None => None,
        };
        let hook = s
            .hook
            .command
            .clone()
            .map(|argv| Hook::new(argv, s.hook.timeout));
        Ok(Receivers { webhook, hook })
    }

    /// The names of the configured receivers.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.webhook.is_some() {
            v.push(WEBHOOK);
        }
        if self.hook.is_some() {
            v.push(HOOK);
        }
        v
    }

    /// Makes one attempt at `receiver`; who it went to, and its answer.
    pub async fn attempt(
        &self,
        receiver: &str,
        id: &str,
        event_type: &str,
        body: &str,
    ) -> (String, Answer) {
        match (receiver, &self.webhook, &self.hook) {
            (WEBHOOK, Some(w), _) => (w.host().to_string(), w.send(id, body).await),
            (HOOK, _, Some(h)) => (h.name(), h.run(id, event_type, body).await),
            _ => (
                receiver.to_string(),
                Answer {
                    ok: false,
                    code: None,
                    error: Some(format!("receiver {receiver} is not configured")),
                    answer: None,
                },
            ),
        }
    }
}

/// The delay before attempt `made + 1`, after `made` failed attempts:
/// `retry_min * 3^(made-1)`, capped at `retry_max`, less a random part of
/// up to a quarter so that deliveries failed together do not all come back
/// at the same instant. With the defaults (30 s, 4 h, 12 attempts) the
/// waits are about 30 s, 1.5 m, 4.5 m, 13.5 m, 40 m, 2 h, then 4 h five
/// times: a receiver may be down for about a day before an event is dead.
pub fn retry_delay(made: u32, min: Duration, max: Duration) -> Duration {
    let exp = FACTOR.powi(made.saturating_sub(1).min(60) as i32);
    let base = (min.as_secs_f64() * exp).min(max.as_secs_f64());
    let jitter = 1.0 - rand::random::<f64>() * 0.25;
    Duration::from_secs_f64(base * jitter)
}

/// How long a claimed delivery is held: longer than any attempt can take,
/// so a live sender is never overtaken; after a crash it is attempted
/// again once this has passed.
pub fn lease(s: &Settings) -> Duration {
    let webhook = s.webhook.url.as_ref().map(|_| s.webhook.timeout);
    let hook = s.hook.command.as_ref().map(|_| s.hook.timeout);
    let t = webhook.max(hook).unwrap_or(s.webhook.timeout);
    t * 2 + Duration::from_secs(2)
}

/// Runs the sender until `shutdown`: claims due deliveries (woken by
/// `wake` when events are recorded, else every `poller.scan_interval`),
/// attempts each in a task of its own, and records the outcome.
pub async fn run(
    store: Store,
    settings: Arc<Settings>,
    receivers: Receivers,
    wake: Arc<Notify>,
    metrics: Arc<crate::counters::Counters>,
    shutdown: CancellationToken,
) {
    let names = receivers.names();
    if names.is_empty() {
        return;
    }
    let receivers = Arc::new(receivers);
    let lease = lease(&settings);
    let in_flight: Arc<Mutex<HashSet<(String, String, i64)>>> = Arc::default();
    let mut tasks = JoinSet::new();
    let mut errors = 0u32;
    loop {
        let room = IN_FLIGHT.saturating_sub(tasks.len());
        let mut full = false;
        if room > 0 {
            match store
                .claim_deliveries(Utc::now().timestamp_millis(), lease, room, &names)
                .await
            {
                Ok(claimed) => {
                    errors = 0;
                    full = claimed.len() == room;
                    for d in claimed {
                        if let Ok(mut set) = in_flight.lock() {
                            set.insert((d.event_id.clone(), d.receiver.clone(), d.lease_id));
                        }
                        tasks.spawn(attempt(
                            store.clone(),
                            settings.clone(),
                            receivers.clone(),
                            d,
                            in_flight.clone(),
                            metrics.clone(),
                        ));
                    }
                }
                Err(e) => {
                    errors += 1;
                    error!(error = %e, consecutive = errors, "could not claim deliveries; retrying");
                }
            }
        }
        if full && tasks.len() < IN_FLIGHT {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(settings.poller.scan_interval) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Attempts in hand get a moment; the rest are given back unattempted
    // (a receiver that got one anyway sees the same webhook-id again).
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    let left: Vec<(String, String, i64)> = in_flight
        .lock()
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    if !left.is_empty() {
        info!(
            deliveries = left.len(),
            "stopping: deliveries in hand are given back"
        );
        if let Err(e) = store
            .release_deliveries(&left, Utc::now().timestamp_millis())
            .await
        {
            warn!(error = %e, "could not give deliveries back; they are attempted again after their lease");
        }
    }
}

async fn attempt(
    store: Store,
    settings: Arc<Settings>,
    receivers: Arc<Receivers>,
    d: ClaimedDelivery,
    in_flight: Arc<Mutex<HashSet<(String, String, i64)>>>,
    metrics: Arc<crate::counters::Counters>,
) {
    let at = Utc::now();
    let started = Instant::now();
    let (target, answer) = receivers
        .attempt(&d.receiver, &d.event_id, &d.event_type, &d.payload)
        .await;
    let latency_ms = started.elapsed().as_millis() as i64;
    let made = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
    let w = &settings.webhook;
    let outcome = if answer.ok {
        DeliveryOutcome::Delivered
    } else if made >= w.max_attempts {
        DeliveryOutcome::Dead
    } else {
        let delay = retry_delay(made, w.retry_min, w.retry_max);
        DeliveryOutcome::Retry(Utc::now().timestamp_millis() + delay.as_millis() as i64)
    };
    log_attempt(&d, &target, &answer, made, latency_ms, outcome);
    let stats = &metrics.deliveries;
    match outcome {
        DeliveryOutcome::Delivered => &stats.delivered,
        DeliveryOutcome::Retry(_) => &stats.retried,
        DeliveryOutcome::Dead => &stats.dead,
    }
    .fetch_add(1, Ordering::Relaxed);
    let record = AttemptRecord {
        at,
        latency_ms,
        http_status: answer.code,
        error: answer.error.clone(),
        answer: answer.answer.clone(),
    };
    match store.finish_delivery(&d, &record, outcome).await {
        Ok(true) => {}
        Ok(false) => {
            warn!(event_id = %d.event_id, receiver = %d.receiver, "the delivery's lease had passed; another attempt may follow")
        }
        Err(e) => {
            error!(event_id = %d.event_id, receiver = %d.receiver, error = %e, "could not record the delivery; it is attempted again after its lease")
        }
    }
    if let Ok(mut set) = in_flight.lock() {
        set.remove(&(d.event_id, d.receiver, d.lease_id));
    }
}

/// One structured line per attempt.
fn log_attempt(
    d: &ClaimedDelivery,
    target: &str,
    a: &Answer,
    attempt: u32,
    latency_ms: i64,
    outcome: DeliveryOutcome,
) {
    let (outcome_text, next) = match outcome {
        DeliveryOutcome::Delivered => ("delivered", None),
        DeliveryOutcome::Retry(at) => (
            "retry",
            chrono::DateTime::<Utc>::from_timestamp_millis(at).map(crate::event::rfc3339),
        ),
        DeliveryOutcome::Dead => ("dead", None),
    };
    macro_rules! line {
        ($level:ident, $msg:expr) => {
            $level!(
                event_id = %d.event_id,
                event_type = %d.event_type,
                md5 = %d.md5,
                receiver = %d.receiver,
                host = target,
                status = a.code,
                error = a.error.as_deref(),
                attempt,
                latency_ms,
                outcome = outcome_text,
                next_attempt_at = next.as_deref(),
                $msg
            )
        };
    }
    match outcome {
        DeliveryOutcome::Delivered => line!(info, "event delivered"),
        DeliveryOutcome::Retry(_) => line!(warn, "event delivery failed; retrying later"),
        DeliveryOutcome::Dead => line!(error, "event delivery is dead: every attempt failed; see `bakong-poller events show` and `events redeliver`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_threefold_with_jitter_and_stop_at_the_cap() {
        let min = Duration::from_secs(30);
        let max = Duration::from_secs(4 * 3600);
        for _ in 0..100 {
            let first = retry_delay(1, min, max);
            assert!(first <= min && first >= min.mul_f64(0.75), "{first:?}");
            let third = retry_delay(3, min, max);
            assert!(
                third <= min * 9 && third >= (min * 9).mul_f64(0.75),
                "{third:?}"
            );
            assert!(retry_delay(40, min, max) <= max);
        }
        let total: Duration = (1..12).map(|n| retry_delay(n, min, max)).sum();
        assert!(
            total > Duration::from_secs(12 * 3600),
            "{total:?}: the schedule spans hours"
        );
    }
}
