//! `bakong-poller-bench webhooks`: delivery throughput and the latency a
//! webhook adds, from the moment a final status is recorded (the event's
//! `timestamp`) to the moment a receiver on 127.0.0.1 has the request.
//! The simulator, the daemon and a receiver that verifies every signature
//! run in this process on a temporary database; the figures are printed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use bakong_poller::config::{BulkMode, LogFormat, WebhookSecrets};
use bakong_poller::event::sign::SigningKey;
use bakong_poller::store::{NewPayment, Store};
use bakong_simulator::{self as simulator, NewTransaction, Scenario};

/// Why the benchmark could not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum WebhookBenchError {
    /// The simulator could not start or take a payment.
    #[error("simulator: {0}")]
    Sim(#[from] bakong_simulator::SimError),
    /// The temporary database failed.
    #[error(transparent)]
    Store(#[from] bakong_poller::store::StoreError),
    /// The bench's own queries failed.
    #[error(transparent)]
    Sql(#[from] crate::BenchError),
    /// The temporary directory or the receiver's socket failed.
    #[error("webhook bench: {0}")]
    Io(#[from] std::io::Error),
    /// The signing secret made here was refused (a bug).
    #[error("webhook bench: secret: {0}")]
    Secret(#[from] bakong_poller::event::sign::SecretError),
    /// Not every event reached the receiver in time.
    #[error("only {got} of {want} events reached the receiver within {secs} s")]
    Incomplete {
        /// Events that arrived.
        got: usize,
        /// Events expected.
        want: usize,
        /// How long the bench waited.
        secs: u64,
    },
}

/// Benchmark options.
#[derive(Debug, Clone)]
pub struct WebhookBenchOptions {
    /// Payments that reach a final status (one event each).
    pub events: usize,
    /// New payments per second; 0 inserts them all before the daemon starts.
    pub rate: f64,
    /// How long the receiver takes to answer.
    pub receiver_delay: Duration,
}

struct Arrivals {
    key: SigningKey,
    delay: Duration,
    // event id -> (arrival unix ms, the event's timestamp unix ms)
    seen: Mutex<HashMap<String, (i64, i64)>>,
    invalid: Mutex<usize>,
}

async fn receive(State(st): State<Arc<Arrivals>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = chrono::Utc::now().timestamp_millis();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = h("webhook-id");
    let ts = h("webhook-timestamp").parse::<i64>().unwrap_or(0);
    if !st.key.verify(&h("webhook-signature"), &id, ts, &body) {
        if let Ok(mut n) = st.invalid.lock() {
            *n += 1;
        }
        return StatusCode::UNAUTHORIZED;
    }
    let recorded = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_string))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.timestamp_millis())
        .unwrap_or(now);
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    if let Ok(mut seen) = st.seen.lock() {
        seen.entry(id).or_insert((now, recorded));
    }
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs the benchmark and prints its figures.
pub async fn run(opts: WebhookBenchOptions) -> Result<(), WebhookBenchError> {
    bakong_poller::telemetry::init(LogFormat::Text, "warn");
    let dir = tempfile::tempdir()?;
    let stop = CancellationToken::new();
    let sim = simulator::spawn(
        ([127, 0, 0, 1], 0).into(),
        &Scenario::default(),
        stop.clone(),
    )
    .await?;
    let token = sim.sim.issue_token("bench@shop.example");
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    );
    let key = SigningKey::from_secret(&secret)?;
    let arrivals = Arc::new(Arrivals {
        key,
        delay: opts.receiver_delay,
        seen: Mutex::new(HashMap::new()),
        invalid: Mutex::new(0),
    });
    let app = Router::new()
        .route("/events", post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut s = bakong_poller::app::local_settings(dir.path(), &sim.base_url(), &token);
    s.bakong.account_id = None;
    s.log.level = "warn".into();
    s.poller.bulk = BulkMode::Always;
    s.poller.bulk_flush = Duration::from_millis(50);
    s.poller.max_requests_per_second = 1000.0;
    s.poller.concurrency = 8;
    s.poller.scan_interval = Duration::from_millis(50);
    s.poller.fresh_interval = Duration::from_millis(200);
    s.webhook.url = Some(format!("http://{addr}/events"));
    s.webhook.secret = WebhookSecrets::One(secret);
    s.webhook.timeout = Duration::from_secs(5);
    let store = Store::connect(&s.database.url, Duration::from_secs(5)).await?;
    store.migrate().await?;
    let insert = |i: usize| {
        let md5 =
            bakong_poller::khqr::md5_hex(&format!("webhook-bench-{i}-{}", rand::random::<u64>()));
        let registered = sim.sim.add_transaction(NewTransaction {
            md5: Some(md5.clone()),
            amount: Some(rust_decimal::Decimal::ONE),
            currency: Some(bakong_poller::money::Currency::Usd),
            ..NewTransaction::default()
        });
        (md5, registered)
    };
    let new = |md5: String| NewPayment {
        order_id: None,
        metadata: None,
        qr: None,
        public_id: None,
        redirect_url: None,
        md5,
        amount: "1".into(),
        currency: bakong_poller::money::Currency::Usd,
        expires_at: None,
    };
    if opts.rate <= 0.0 {
        for i in 0..opts.events {
            let (md5, r) = insert(i);
            r?;
            store.insert_payment(&new(md5)).await?;
        }
    }
    let url = s.database.url.clone();
    let daemon_stop = CancellationToken::new();
    let daemon = tokio::spawn(bakong_poller::daemon::run(
        s,
        daemon_stop.clone(),
        Arc::new(bakong_poller::poller::NoObserver),
    ));
    let started = Instant::now();
    if opts.rate > 0.0 {
        let every = Duration::from_secs_f64(1.0 / opts.rate);
        let mut tick = tokio::time::interval(every);
        for i in 0..opts.events {
            tick.tick().await;
            let (md5, r) = insert(i);
            r?;
            store.insert_payment(&new(md5)).await?;
        }
    }
    let wait = Duration::from_secs(120 + opts.events as u64 / 10);
    let deadline = Instant::now() + wait;
    loop {
        let n = arrivals.seen.lock().map(|s| s.len()).unwrap_or(0);
        if n >= opts.events {
            break;
        }
        if Instant::now() > deadline {
            return Err(WebhookBenchError::Incomplete {
                got: n,
                want: opts.events,
                secs: wait.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    daemon_stop.cancel();
    let _ = daemon.await;
    let sql = crate::db::Sql::open(&url).await?;
    let recorded = sql.delivery_latencies().await;
    sql.close().await;
    let recorded = recorded?;
    store.close().await;
    stop.cancel();
    let seen: Vec<(i64, i64)> = arrivals
        .seen
        .lock()
        .map(|s| s.values().copied().collect())
        .unwrap_or_default();
    let mut added: Vec<i64> = seen.iter().map(|(a, r)| a - r).collect();
    added.sort_unstable();
    let first = seen.iter().map(|(_, r)| *r).min().unwrap_or(0);
    let last = seen.iter().map(|(a, _)| *a).max().unwrap_or(0);
    let span_s = ((last - first) as f64 / 1000.0).max(0.001);
    let invalid = arrivals.invalid.lock().map(|n| *n).unwrap_or(0);
    println!(
        "webhook bench: {} events, {}, receiver answers after {} ms",
        opts.events,
        if opts.rate > 0.0 {
            format!("{} new payments/s", opts.rate)
        } else {
            "all pending at start".into()
        },
        opts.receiver_delay.as_millis()
    );
    println!(
        "  delivered {} (signatures valid: {}), in {:.2} s from the first final status to the last arrival: {:.0} deliveries/s",
        seen.len(),
        if invalid == 0 { "all".to_string() } else { format!("{invalid} invalid") },
        span_s,
        seen.len() as f64 / span_s
    );
    println!(
        "  final status -> receiver: p50 {} ms, p99 {} ms, max {} ms",
        percentile(&added, 0.5),
        percentile(&added, 0.99),
        added.last().copied().unwrap_or(-1)
    );
    println!(
        "  final status -> recorded delivered: p50 {} ms, p99 {} ms (whole run {:.1} s)",
        percentile(&recorded, 0.5),
        percentile(&recorded, 0.99),
        elapsed.as_secs_f64()
    );
    Ok(())
}
