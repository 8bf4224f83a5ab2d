//! The listener of `[metrics] listen`: `GET /metrics` in the Prometheus
//! text format (OpenMetrics when the scraper asks for it), `GET /healthz`
//! answering 200 `ok` or 503 with a one-line reason.
//!
//! States are read at scrape time by `Live`, a `prometheus-client`
//! collector: the pending rows, the gate, the token, and the counters the
//! daemon keeps for its summaries. The database is read by one scrape at a
//! time and at most once per [`SCRAPE_CACHE`]: scrapes in a burst share the
//! answer, so no number of scrapers can load the database.
//!
//! The listener is the daemon's one hardened HTTP listener ([`run`]): a
//! header-read timeout (which also closes idle keep-alive connections), an
//! idle timeout for connections on which nothing moves, a per-request
//! timeout (408), a request body limit (413), and a cap on connections
//! held at once; a connection beyond the cap is closed as soon as it is
//! accepted, so the daemon's open files stay bounded whatever clients do.
//! On shutdown it stops accepting, closes every connection with no request
//! in hand at once, and lets a request in hand finish within
//! [`SHUTDOWN_DRAIN`].

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::{debug, error, info, warn};

use super::Instruments;
use crate::bakong::Client;
use crate::config::{MetricsSettings, Settings};
use crate::counters::Counters as Metrics;
use crate::store::{PendingFacts, Store};

/// The health check's limit on the scheduling loop without systemd's
/// watchdog (with it: half of `WatchdogSec`).
pub const DEFAULT_LOOP_LIMIT: Duration = Duration::from_secs(30);

/// How long a scrape waits for the pending rows before it answers without
/// them (Prometheus' own scrape timeout is 10 s by default).
const SCRAPE_QUERY_LIMIT: Duration = Duration::from_secs(5);

/// How long the database-derived gauges of one scrape serve the next ones.
pub const SCRAPE_CACHE: Duration = Duration::from_secs(1);

/// How long, at shutdown, a request in hand may take to finish (within
/// `poller.shutdown_timeout`, which is at most 9 s and also waits for the
/// writes).
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);

/// At shutdown, the moment a connection with no request in hand is given
/// to flush what it has written before it is closed.
const FLUSH_GRACE: Duration = Duration::from_millis(50);

/// After a failed accept (out of file descriptors, mostly): the pause
/// before the next, so a shortage is not a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Open files kept for the daemon itself (database, API connections, logs)
/// beside the listener's connections.
const FD_RESERVE: u64 = 256;

/// The read buffer of a connection, and so the largest request head.
const MAX_BUF: usize = 64 * 1024;

/// What a connection beyond the cap is told before it is closed.
const REFUSAL: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

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
    let limits = Limits::from(&sources.settings.metrics);
    let live = Arc::new(Live {
        client: sources.client.clone(),
        poller: sources.poller.clone(),
        ceiling: sources.settings.poller.max_requests_per_second,
        busy_timeout: sources.settings.database.busy_timeout,
        facts: Mutex::new(None),
        deliveries: Mutex::new(None),
        late: Mutex::new(None),
        refused: limits.refused.clone(),
    });
    let mut registry = instruments.into_registry();
    registry.register_collector(Box::new(live.clone()));
    let shared = Arc::new(Shared {
        registry,
        live,
        sources,
        scraped: SingleFlight::default(),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(shared);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "metrics: serving GET /metrics and GET /healthz");
    }
    run(listener, app, limits, shutdown).await;
}

/// The limits of a listener, from `[metrics]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `header_read_timeout`.
    pub header_read_timeout: Duration,
    /// `idle_timeout`.
    pub idle_timeout: Duration,
    /// `request_timeout`.
    pub request_timeout: Duration,
    /// `max_connections`.
    pub max_connections: usize,
    /// `max_body_bytes`.
    pub max_body_bytes: usize,
    /// Connections closed at once because the cap was reached.
    pub refused: Arc<AtomicU64>,
}

impl From<&MetricsSettings> for Limits {
    fn from(m: &MetricsSettings) -> Self {
        Limits {
            header_read_timeout: m.header_read_timeout,
            idle_timeout: m.idle_timeout,
            request_timeout: m.request_timeout,
            max_connections: m.max_connections.max(1),
            max_body_bytes: m.max_body_bytes,
            refused: Arc::default(),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown`, then
/// closes what is idle at once and gives a request in hand up to
/// [`SHUTDOWN_DRAIN`].
pub async fn run(listener: TcpListener, app: Router, limits: Limits, shutdown: CancellationToken) {
    let app = app
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes));
    warn_on_few_files(&limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    let mut failing_accept = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        error!(task = "metrics connection", error = %e, "a connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failing_accept = false;
                    match slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            conns.spawn(connection(stream, app.clone(), limits.clone(), slot, shutdown.clone()));
                        }
                        Err(_) => refuse(stream, peer, &limits),
                    }
                }
                Err(e) => {
                    // Out of file descriptors (EMFILE) mostly: said once per
                    // streak, and a pause so it is not a busy loop.
                    if !failing_accept {
                        warn!(error = %e, "metrics: cannot accept connections; raise LimitNOFILE= or lower metrics.max_connections");
                        failing_accept = true;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                    }
                }
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_DRAIN, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = conns.len(),
            "metrics: requests still in hand after the shutdown drain were cut"
        );
        conns.abort_all();
    }
}

/// Says at start when the process may open too few files for the cap and
/// the daemon's own (the unit's `LimitNOFILE=`).
fn warn_on_few_files(limits: &Limits) {
    use nix::sys::resource::{getrlimit, Resource};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = limits.max_connections as u64 + FD_RESERVE;
        if soft < wanted {
            warn!(
                limit = soft,
                wanted,
                "metrics: the open-file limit leaves too little room for metrics.max_connections and the daemon's own files; raise LimitNOFILE= in the unit or lower metrics.max_connections"
            );
        }
    }
}

/// Closes a connection beyond the cap at once, telling it why if its send
/// buffer takes the answer without waiting.
fn refuse(stream: TcpStream, peer: SocketAddr, limits: &Limits) {
    limits.refused.fetch_add(1, Ordering::Relaxed);
    debug!(%peer, max = limits.max_connections, "metrics: connection refused: metrics.max_connections reached");
    let _ = stream.try_write(REFUSAL);
}

/// One connection: HTTP/1.1 with the header timeout, watched for idleness,
/// holding its `slot` until it ends.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    slot: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut app = app.clone();
            let busy = Busy::enter(activity.clone());
            async move {
                let answer = app.call(req.map(Body::new)).await;
                drop(busy);
                answer
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                debug!(error = %e, "metrics: connection ended");
            }
            return;
        }
        () = activity.stalled(limits.idle_timeout) => {
            debug!("metrics: connection closed after metrics.idle_timeout with nothing moving");
            return;
        }
        () = shutdown.cancelled() => {}
    }
    // Closes it at once when idle (kept alive, or before any byte); a
    // request in hand is answered first.
    conn.as_mut().graceful_shutdown();
    let grace = if activity.busy() {
        SHUTDOWN_DRAIN
    } else {
        FLUSH_GRACE
    };
    let _ = tokio::time::timeout(grace, conn).await;
    drop(slot);
}

/// When bytes last moved on a connection, and whether a request is in hand.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_hand: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_hand: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.in_hand.load(Ordering::Relaxed) > 0
    }

    /// Ends when nothing has moved for `idle` and no request is in hand
    /// (a slow answer is `request_timeout`'s business).
    async fn stalled(&self, idle: Duration) {
        loop {
            if self.busy() {
                self.touch();
            }
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in hand on a connection, for as long as it is held.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(a: Arc<Activity>) -> Self {
        a.in_hand.fetch_add(1, Ordering::Relaxed);
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_hand.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that records when bytes move through it.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One load at a time, its answer shared for a while: callers arriving
/// while a load runs wait for it and take its answer, and callers within
/// `max_age` of it take it too.
#[derive(Debug)]
pub struct SingleFlight<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T: Clone> SingleFlight<T> {
    /// The last answer when younger than `max_age`, else `load`'s.
    pub async fn get<F, Fut>(&self, max_age: Duration, load: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, v)) = last.as_ref() {
            if at.elapsed() < max_age {
                return v.clone();
            }
        }
        let v = load().await;
        *last = Some((Instant::now(), v.clone()));
        v
    }
}

/// The database-derived figures of a scrape.
type Scraped = (
    Option<(PendingFacts, i64)>,
    Option<crate::store::DeliveryCounts>,
    Option<crate::store::LateSummary>,
);

struct Shared {
    registry: Registry,
    live: Arc<Live>,
    sources: Sources,
    scraped: SingleFlight<Scraped>,
}

/// Reads the pending rows and the deliveries (each within
/// [`SCRAPE_QUERY_LIMIT`]).
async fn read_database(s: &Shared) -> Scraped {
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
    let deliveries =
        tokio::time::timeout(SCRAPE_QUERY_LIMIT, s.sources.store.delivery_counts()).await;
    let deliveries = match deliveries {
        Ok(Ok(d)) => Some(d),
        _ => None,
    };
    let late = tokio::time::timeout(SCRAPE_QUERY_LIMIT, s.sources.store.late_summary()).await;
    let late = match late {
        Ok(Ok(l)) => Some(l),
        _ => None,
    };
    (facts, deliveries, late)
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let (facts, deliveries, late) = s.scraped.get(SCRAPE_CACHE, || read_database(&s)).await;
    *s.live.facts.lock().unwrap_or_else(|e| e.into_inner()) = facts;
    *s.live.deliveries.lock().unwrap_or_else(|e| e.into_inner()) = deliveries;
    *s.live.late.lock().unwrap_or_else(|e| e.into_inner()) = late;
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
    /// Late payments today, as the scrape in hand read them.
    late: Mutex<Option<crate::store::LateSummary>>,
    /// Connections the listener closed at once for its cap.
    refused: Arc<AtomicU64>,
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
                ("paid_late", m.paid_late.load(Ordering::Relaxed)),
            ],
        )?;
        counters(
            e,
            "late_payments",
            "Money the late watch found after a payment was expired, failed or cancelled (by this process), by the status it got: paid_late or mismatch",
            "status",
            &[
                ("paid_late", m.paid_late.load(Ordering::Relaxed)),
                ("mismatch", m.late_mismatch.load(Ordering::Relaxed)),
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
        let late = self.late.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(l) = late {
            let mut m = e.encode_descriptor(
                "late_payments_today",
                "Payments the late watch moved today (UTC, every daemon of the database), by the status they got: paid_late or mismatch.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(l.paid_late_today)
                .encode(m.encode_family(&[("status", "paid_late")])?)?;
            ConstGauge::new(l.mismatch_late_today)
                .encode(m.encode_family(&[("status", "mismatch")])?)?;
            let last = l
                .last
                .as_ref()
                .and_then(|(_, _, at)| crate::store::parse_time_text(at))
                .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
            gauge(
                e,
                "last_late_payment_timestamp_seconds",
                "When the newest late payment was recorded (unix seconds; 0 when none)",
                last,
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
            "Live daemons sharing the gate through the database (they take their requests from one schedule at the rate and the ceiling)",
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
            "Token renewals by outcome (shared: another daemon's renewal taken from the database; contested: a token renewed here refused soon after, another client renews the email; from_file: a newer token found in the token file)",
            "outcome",
            &[
                ("ok", tokens.renewals()),
                ("failed", tokens.failed_renewals()),
                ("shared", tokens.adopted()),
                ("contested", tokens.contested()),
                ("from_file", tokens.taken_from_keep()),
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
        let refused = ConstCounter::new(self.refused.load(Ordering::Relaxed));
        refused.encode(e.encode_descriptor(
            "http_connections_refused",
            "Connections to this listener closed as soon as accepted because metrics.max_connections were open.",
            None,
            refused.metric_type(),
        )?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// A load that takes 100 ms (of paused time) and counts itself.
    async fn slow_load(n: &AtomicU32) -> u32 {
        let v = n.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        v
    }

    #[tokio::test(start_paused = true)]
    async fn scrapes_in_a_burst_read_the_database_once_and_again_after_the_cache() {
        let flight = Arc::new(SingleFlight::<u32>::default());
        let loads = Arc::new(AtomicU32::new(0));
        let mut burst = JoinSet::new();
        for _ in 0..50 {
            let (flight, loads) = (flight.clone(), loads.clone());
            burst.spawn(async move { flight.get(SCRAPE_CACHE, || slow_load(&loads)).await });
        }
        while let Some(v) = burst.join_next().await {
            assert_eq!(
                v.expect("scrape task"),
                1,
                "every scrape took the one load's answer"
            );
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        tokio::time::advance(SCRAPE_CACHE).await;
        assert_eq!(flight.get(SCRAPE_CACHE, || slow_load(&loads)).await, 2);
    }
}
