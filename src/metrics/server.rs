//! The listener of `[metrics] listen`: `GET /metrics` in the Prometheus
//! text format (OpenMetrics when the scraper asks for it), `GET /healthz`
//! answering 200 `ok` or 503 with a one-line reason.
//!
//! States are read at scrape time by [`Live`], a `prometheus-client`
//! collector: the pending rows (one read of the database per scrape), the
//! gate, the token, and the counters the daemon keeps for its summaries.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info};

use super::Instruments;
use crate::bakong::Client;
use crate::config::Settings;
use crate::poller::Metrics;
use crate::store::{PendingFacts, Store};

/// The health check's limit on the scheduling loop without systemd's
/// watchdog (with it: half of `WatchdogSec`).
pub const DEFAULT_LOOP_LIMIT: Duration = Duration::from_secs(30);

/// How long a scrape waits for the pending rows before it answers without
/// them (Prometheus' own scrape timeout is 10 s by default).
const SCRAPE_QUERY_LIMIT: Duration = Duration::from_secs(5);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the listener reads from the running daemon.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The payments database.
    pub store: Store,
    /// The API client (gate, token manager, last answer).
    pub client: Client,
    /// The daemon's counters, incidents and health facts.
    pub poller: Arc<Metrics>,
    /// The settings in force.
    pub settings: Arc<Settings>,
    /// How long the scheduling loop may go without a round.
    pub loop_limit: Duration,
}

/// The listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// `metrics.listen` cannot be bound (in use, not an address of this host).
    #[error("config key metrics.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Binds `metrics.listen`; the error names the key.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Bind { addr, source })
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    instruments: Instruments,
    sources: Sources,
    shutdown: CancellationToken,
) {
    let live = Arc::new(Live {
        client: sources.client.clone(),
        poller: sources.poller.clone(),
        ceiling: sources.settings.poller.max_requests_per_second,
        busy_timeout: sources.settings.database.busy_timeout,
        facts: Mutex::new(None),
        deliveries: Mutex::new(None),
    });
    let mut registry = instruments.into_registry();
    registry.register_collector(Box::new(live.clone()));
    let shared = Arc::new(Shared {
        registry,
        live,
        sources,
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics: serving GET /metrics and GET /healthz");
    }
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        error!(task = "metrics", error = %e, "the metrics listener stopped");
    }
}

struct Shared {
    registry: Registry,
    live: Arc<Live>,
    sources: Sources,
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let now_ms = Utc::now().timestamp_millis();
    let p = &s.sources.settings.poller;
    let facts = tokio::time::timeout(
        SCRAPE_QUERY_LIMIT,
        s.sources
            .store
            .pending_facts(now_ms, p.payment_ttl, p.expiry_grace),
    )
    .await;
    let facts = match facts {
        Ok(Ok(f)) => Some((f, now_ms)),
        // The daemon's own queries report the database's trouble (in the
        // log and /healthz); the scrape just leaves these gauges out.
        Ok(Err(e)) => {
            debug!(error = %e, "metrics: cannot read the pending rows");
            None
        }
        Err(_) => {
            debug!("metrics: reading the pending rows timed out");
            None
        }
    };
    *s.live.facts.lock().unwrap_or_else(|e| e.into_inner()) = facts;
    let deliveries =
        tokio::time::timeout(SCRAPE_QUERY_LIMIT, s.sources.store.delivery_counts()).await;
    *s.live.deliveries.lock().unwrap_or_else(|e| e.into_inner()) = match deliveries {
        Ok(Ok(d)) => Some(d),
        _ => None,
    };
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let mut body = String::new();
    let (encoded, content_type) = if openmetrics {
        (
            prometheus_client::encoding::text::encode(&mut body, &s.registry),
            OPENMETRICS,
        )
    } else {
        (
            prometheus_client::encoding::prometheus_text::encode(&mut body, &s.registry),
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )
    };
    match encoded {
        Ok(()) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        )
            .into_response(),
    }
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match s.sources.poller.health.check(
        s.sources.loop_limit,
        s.sources.settings.database.busy_timeout,
    ) {
        Ok(()) => (StatusCode::OK, plain, "ok\n".to_string()).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, plain, format!("{why}\n")).into_response(),
    }
}

/// The states read at scrape time.
#[derive(Debug)]
struct Live {
    client: Client,
    poller: Arc<Metrics>,
    ceiling: f64,
    /// `database.busy_timeout`: a query waiting longer means "down".
    busy_timeout: std::time::Duration,
    /// The pending rows as the scrape in hand read them, and when.
    facts: Mutex<Option<(PendingFacts, i64)>>,
    /// Event deliveries per status, as the scrape in hand read them.
    deliveries: Mutex<Option<crate::store::DeliveryCounts>>,
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    // A period, as the registry adds to the help of the instruments.
    g.encode(enc.encode_descriptor(name, &format!("{help}."), None, g.metric_type())?)
}

/// A counter family with one label; `name` without `_total` (added by the
/// encoder).
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, &format!("{help}."), None, MetricType::Counter)?;
    for (value, n) in values {
        ConstCounter::new(*n).encode(m.encode_family(&[(label, *value)])?)?;
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut enc;
        let mut info = e.encode_descriptor(
            "build_info",
            "The running version.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64)
            .encode(info.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;
        let m = &self.poller;
        counters(
            e,
            "payments_finalized",
            "Payments this process gave a final status, by status",
            "status",
            &[
                ("paid", m.paid.load(Ordering::Relaxed)),
                ("mismatch", m.mismatch.load(Ordering::Relaxed)),
                ("failed", m.failed.load(Ordering::Relaxed)),
                ("expired", m.expired.load(Ordering::Relaxed)),
            ],
        )?;
        let d = &m.deliveries;
        counters(
            e,
            "event_delivery_attempts",
            "Event delivery attempts (webhook and hook) by this process, by outcome: delivered, retried (failed, tried again later), dead (failed for the last time)",
            "outcome",
            &[
                ("delivered", d.delivered.load(Ordering::Relaxed)),
                ("retried", d.retried.load(Ordering::Relaxed)),
                ("dead", d.dead.load(Ordering::Relaxed)),
            ],
        )?;
        let deliveries = *self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = deliveries {
            gauge(
                e,
                "event_deliveries_pending",
                "Event deliveries not made yet (waiting for their next attempt)",
                d.pending as f64,
            )?;
            gauge(
                e,
                "event_deliveries_dead",
                "Event deliveries given up on after webhook.max_attempts (see `bakong-poller events list --status dead`)",
                d.dead as f64,
            )?;
        }
        let facts = *self.facts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((f, now_ms)) = facts {
            gauge(e, "payments_pending", "Pending payments", f.pending as f64)?;
            gauge(
                e,
                "payments_overdue",
                "Pending payments past expires_at + poller.expiry_grace (they should have been decided by now)",
                f.overdue as f64,
            )?;
            gauge(
                e,
                "oldest_pending_age_seconds",
                "Age of the oldest pending payment (0 when none is pending)",
                f.oldest_created_ms
                    .map_or(0.0, |c| (now_ms - c).max(0) as f64 / 1000.0),
            )?;
        }
        let gate = self.client.gate();
        if let Some(rate) = gate.rate() {
            gauge(
                e,
                "gate_requests_per_second",
                "The gate's current adaptive request rate (halves on a 429, climbs back to the ceiling)",
                rate,
            )?;
        }
        gauge(
            e,
            "gate_ceiling_requests_per_second",
            "poller.max_requests_per_second",
            self.ceiling,
        )?;
        gauge(
            e,
            "gate_daemons",
            "Live daemons sharing the gate through the database (each paces at its share of the rate and the ceiling)",
            gate.members() as f64,
        )?;
        let quota = self.client.quota();
        let now_ms = chrono::Utc::now().timestamp_millis();
        gauge(
            e,
            "quota_paused",
            "1 while the daily request quota is exhausted (errorCode 17) and requests wait for a probe to find it reset, else 0",
            if quota.pause().is_some() { 1.0 } else { 0.0 },
        )?;
        if let Some(p) = quota.pause() {
            gauge(
                e,
                "quota_paused_since_timestamp_seconds",
                "When the daily quota pause began, unix time",
                p.since_ms as f64 / 1000.0,
            )?;
        }
        gauge(
            e,
            "requests_today",
            "Requests sent today (UTC day) by the daemons on this database, as this daemon last saved and read it",
            quota.spent_today(now_ms) as f64,
        )?;
        if let Some(b) = quota.budget() {
            gauge(
                e,
                "daily_request_budget",
                "poller.daily_request_budget",
                b as f64,
            )?;
        }
        let held =
            ConstCounter::new(gate.stats.held_micros.load(Ordering::Relaxed) as f64 / 1_000_000.0);
        held.encode(e.encode_descriptor(
            "gate_retry_after_seconds",
            "Seconds every request was held after 429 answers (Retry-After, or the backoff without it).",
            None,
            held.metric_type(),
        )?)?;
        let tokens = self.client.tokens();
        if let Some(exp) = tokens.current().and_then(|(t, _)| t.claims().expires_at) {
            gauge(
                e,
                "token_expiry_timestamp_seconds",
                "When the access token in use expires (its JWT exp), unix time",
                exp.timestamp() as f64,
            )?;
        }
        counters(
            e,
            "token_renewals",
            "Token renewals by outcome (shared: another daemon's renewal taken from the database)",
            "outcome",
            &[
                ("ok", tokens.renewals()),
                ("failed", tokens.failed_renewals()),
                ("shared", tokens.adopted()),
            ],
        )?;
        let last = self.client.last_success_ms();
        if last > 0 {
            gauge(
                e,
                "last_api_answer_timestamp_seconds",
                "When Bakong last gave a readable answer, unix time",
                last as f64 / 1000.0,
            )?;
        }
        gauge(
            e,
            "database_up",
            "1 when the database answered the daemon's last query and none has waited past busy_timeout, else 0",
            if m.health.database_answers(self.busy_timeout) {
                1.0
            } else {
                0.0
            },
        )?;
        let mut problem = e.encode_descriptor(
            "api_problem",
            "1 while a problem about the API or the set-up is in force (geo_blocked, unauthorized, renewal, transport, ...); the text is in the log and the STATUS line.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(kind) = m.incidents.kind() {
            ConstGauge::new(1i64).encode(problem.encode_family(&[("kind", kind)])?)?;
        }
        Ok(())
    }
}
