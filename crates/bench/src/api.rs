//! The `api` section: the daemon's HTTP API (`[api] listen`) under load
//! while the daemon confirms. On each backend, the simulator (rate-limited
//! as in the other sections) and a daemon in this process (the API on
//! 127.0.0.1:0, its address from [`Observer::api_listening`], `[merchant]`
//! set so it builds KHQRs), one read-write key; then, for a fixed window,
//! writer clients open payments (`POST /v1/payments`; each QR is handed to
//! the simulator, so its customer pays 1-5 s later, one in ten never) while
//! reader clients alternate `GET /v1/payments/{id}` (an id created so far)
//! and `GET /v1/payments?limit=20`. Prints per route the requests, the
//! rate, p50 / p99 latency and errors, and how many payments the daemon
//! confirmed before the window ended (and within [`DRAIN`] after it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use bakong_poller::config::BulkMode;
use bakong_poller::poller::Observer;
use bakong_simulator::{NewTransaction, OutcomeKind};

use crate::{BenchError, BenchOptions, Databases};

/// The receiving account of the bench's `[merchant]`: the QRs name it and
/// the simulator's transactions pay it.
pub const ACCOUNT: &str = "shop@devb";

/// How long the daemon may go on after the window, for the customers who
/// pay then and the backlog the load left.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The routes measured, in the table's order.
const ROUTES: [&str; 3] = [
    "POST /v1/payments",
    "GET /v1/payments/{id}",
    "GET /v1/payments?limit=20",
];

/// The API section's options.
#[derive(Debug, Clone, Copy)]
pub struct ApiOptions {
    /// How long the clients send requests.
    pub window: Duration,
    /// Clients opening payments, one request at a time each.
    pub writers: usize,
    /// Clients reading, one request at a time each.
    pub readers: usize,
    /// The simulator's request limit, also the daemon's ceiling.
    pub limit: f64,
}

/// Where the daemon's API listener was bound.
#[derive(Default)]
struct ApiBound(Mutex<Option<SocketAddr>>);

impl Observer for ApiBound {
    fn api_listening(&self, addr: SocketAddr) {
        if let Ok(mut a) = self.0.lock() {
            *a = Some(addr);
        }
    }
}

/// One route's answers as one client saw them.
#[derive(Debug, Default, Clone)]
struct Route {
    /// Latencies (ms) of the answered requests, 2xx or not.
    latencies: Vec<f64>,
    /// Answers with the expected status (201, 200).
    ok: u64,
    /// Answers other than the expected 2xx, and requests with no answer.
    errors: u64,
}

impl Route {
    fn merge(&mut self, other: Route) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        self.errors += other.errors;
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    routes: [Route; 3],
    /// The customers this client's payments got: when each pays, for
    /// those who pay.
    pays_at: Vec<Instant>,
    /// The first error, for the log.
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, route: usize, what: String) {
        self.routes[route].errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{}: {what}", ROUTES[route]));
        }
    }
}

/// One backend's figures.
#[derive(Debug)]
pub struct ApiFigures {
    /// Per route of [`ROUTES`]: latencies (ms, sorted) and errors.
    routes: [Route; 3],
    /// The window actually measured, from the first request to the last
    /// answer.
    elapsed: Duration,
    /// Payments the API created.
    created: usize,
    /// Customers who had paid before the window ended.
    paid_by_end: usize,
    /// Rows the daemon had confirmed paid when the window ended.
    confirmed: i64,
    /// Customers who pay (1-5 s after their QR), all told.
    paying: usize,
    /// Rows confirmed paid once all were, or at the end of [`DRAIN`].
    confirmed_after: i64,
    /// How long after the window that was.
    drained: Duration,
    /// Requests the daemon sent to the simulator, and how many were 429.
    bakong_requests: u64,
    rate_limited: u64,
    /// The first error any client saw.
    first_error: Option<String>,
}

/// A request, timed (ms, from sending to the whole answer read): the
/// status and body, or why there was no answer.
async fn timed(req: reqwest::RequestBuilder) -> (f64, Result<(u16, Vec<u8>), String>) {
    let t = Instant::now();
    let r = async {
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, body.to_vec()))
    }
    .await;
    (t.elapsed().as_secs_f64() * 1000.0, r)
}

/// A writer: opens payments until `end`, hands each QR to the simulator
/// (its customer pays 1-5 s later, one in ten never), shares the ids. An
/// error: the simulator could not read a QR.
async fn writer(
    http: reqwest::Client,
    base: String,
    key: String,
    sim: Arc<bakong_simulator::Sim>,
    ids: Arc<Mutex<Vec<String>>>,
    bill: Arc<AtomicU64>,
    end: Instant,
) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let url = format!("{base}/v1/payments");
    while Instant::now() < end {
        let n = bill.fetch_add(1, Ordering::Relaxed);
        let cents = rand::rng().random_range(100..5000);
        let body = serde_json::json!({
            "amount": Decimal::new(cents, 2).to_string(),
            "currency": "USD",
            "order_id": format!("bench-{n}"),
            "bill_number": format!("B{n}"),
        });
        let (ms, r) = timed(http.post(&url).bearer_auth(&key).json(&body)).await;
        let (status, body) = match r {
            Ok(x) => x,
            Err(e) => {
                tally.error(0, e);
                continue;
            }
        };
        tally.routes[0].latencies.push(ms);
        if status != 201 {
            tally.error(0, format!("{status} {}", String::from_utf8_lossy(&body)));
            continue;
        }
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (Some(id), Some(qr)) = (p["id"].as_str(), p["qr"].as_str()) else {
            tally.error(0, format!("201 without id or qr: {p}"));
            continue;
        };
        tally.routes[0].ok += 1;
        if let Ok(mut ids) = ids.lock() {
            ids.push(id.to_string());
        }
        // The customer scans the QR: amount, currency and receiver are
        // read from it.
        let t = crate::checkout(p["md5"].as_str().unwrap_or_default());
        let pays = t.outcome == OutcomeKind::Paid;
        let at = Instant::now() + t.after;
        let t = NewTransaction {
            md5: None,
            qr: Some(qr.to_string()),
            amount: None,
            currency: None,
            ..t
        };
        // A QR the bank side cannot read is the bench's failure, not a
        // figure.
        sim.add_transaction(t)
            .map_err(|e| format!("the simulator refused a QR the API made ({qr:?}): {e}"))?;
        if pays {
            tally.pays_at.push(at);
        }
    }
    Ok(tally)
}

/// A reader: until `end`, a payment by id (one created so far, at random;
/// a page when there is none yet), then a page of 20, and again.
async fn reader(
    http: reqwest::Client,
    base: String,
    key: String,
    ids: Arc<Mutex<Vec<String>>>,
    end: Instant,
) -> Result<Tally, String> {
    let mut tally = Tally::default();
    let list = format!("{base}/v1/payments?limit=20");
    let mut by_id = true;
    while Instant::now() < end {
        let id = if by_id {
            ids.lock().ok().and_then(|ids| {
                (!ids.is_empty()).then(|| ids[rand::rng().random_range(0..ids.len())].clone())
            })
        } else {
            None
        };
        by_id = !by_id;
        let (route, url) = match id {
            Some(id) => (1, format!("{base}/v1/payments/{id}")),
            None => (2, list.clone()),
        };
        let (ms, r) = timed(http.get(&url).bearer_auth(&key)).await;
        match r {
            Ok((200, _)) => {
                tally.routes[route].latencies.push(ms);
                tally.routes[route].ok += 1;
            }
            Ok((status, body)) => {
                tally.routes[route].latencies.push(ms);
                tally.error(
                    route,
                    format!("{status} {}", String::from_utf8_lossy(&body)),
                );
            }
            Err(e) => tally.error(route, e),
        }
    }
    Ok(tally)
}

/// One backend: the simulator, a daemon in this process with its API on
/// the database at `url`, the clients for `o.window`.
pub async fn api_run(url: &str, o: &ApiOptions) -> Result<ApiFigures, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sim = crate::fresh_sim(o.limit).await?;
    let token = sim.sim.issue_token(crate::EMAIL);
    let mut settings =
        crate::bench_settings(dir.path(), &sim.base_url(), &token, o.limit, BulkMode::Auto);
    settings.database.url = url.to_string();
    settings.api.listen = Some("127.0.0.1:0".into());
    settings.merchant.account_id = Some(ACCOUNT.into());
    settings.merchant.name = Some("Bench Shop".into());
    settings.merchant.city = Some("Phnom Penh".into());
    let store = bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let made =
        bakong_poller::api::keys::make("bench", false, chrono::Utc::now().timestamp_millis());
    store
        .api_key_insert(&made.row)
        .await
        .map_err(|e| format!("api key: {e}"))?;
    let bound = Arc::new(ApiBound::default());
    let stop = CancellationToken::new();
    // The daemon stops however this ends.
    let _stop_on_drop = stop.clone().drop_guard();
    let daemon = tokio::spawn(bakong_poller::daemon::run(
        settings.clone(),
        stop.clone(),
        bound.clone(),
    ));
    let started = Instant::now();
    let addr = loop {
        if let Some(a) = bound.0.lock().ok().and_then(|a| *a) {
            break a;
        }
        if daemon.is_finished() {
            let why = match daemon.await {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "it stopped".into(),
                Err(e) => e.to_string(),
            };
            return Err(format!("the daemon did not start: {why}").into());
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the daemon's API did not listen within 20 s"
                .to_string()
                .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let ids = Arc::new(Mutex::new(Vec::new()));
    let bill = Arc::new(AtomicU64::new(0));
    let requests_before = sim.sim.stats();
    let start = Instant::now();
    let end = start + o.window;
    let mut clients = Vec::new();
    for _ in 0..o.writers {
        clients.push(tokio::spawn(writer(
            http.clone(),
            base.clone(),
            made.key.clone(),
            sim.sim.clone(),
            ids.clone(),
            bill.clone(),
            end,
        )));
    }
    for _ in 0..o.readers {
        clients.push(tokio::spawn(reader(
            http.clone(),
            base.clone(),
            made.key.clone(),
            ids.clone(),
            end,
        )));
    }
    let mut routes: [Route; 3] = Default::default();
    let mut pays_at = Vec::new();
    let mut first_error = None;
    for c in clients {
        let t = c.await.map_err(|e| e.to_string())??;
        for (all, r) in routes.iter_mut().zip(t.routes) {
            all.merge(r);
        }
        pays_at.extend(t.pays_at);
        first_error = first_error.or(t.first_error);
    }
    let elapsed = start.elapsed();
    let confirmed = store.counts().await.map_err(|e| e.to_string())?.paid;
    let st = sim.sim.stats();
    // The daemon goes on: the last customers pay, the backlog is checked.
    let drain_from = Instant::now();
    let confirmed_after = loop {
        let n = store.counts().await.map_err(|e| e.to_string())?.paid;
        if n as usize >= pays_at.len() || drain_from.elapsed() >= DRAIN {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let drained = drain_from.elapsed();
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(15), daemon).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(format!("daemon: {e}").into()),
        Ok(Err(e)) => return Err(format!("daemon task: {e}").into()),
        Err(_) => return Err("the daemon did not stop within 15 s".to_string().into()),
    }
    store.close().await;
    sim.stop().await;
    for r in &mut routes {
        r.latencies.sort_by(f64::total_cmp);
    }
    let created = ids.lock().map(|i| i.len()).unwrap_or_default();
    Ok(ApiFigures {
        routes,
        elapsed,
        created,
        paid_by_end: pays_at.iter().filter(|t| **t <= end).count(),
        confirmed,
        paying: pays_at.len(),
        confirmed_after,
        drained,
        bakong_requests: st.total - requests_before.total,
        rate_limited: st.rate_limited - requests_before.rate_limited,
        first_error,
    })
}

/// One route's row: successful requests, their rate over `secs`, latency
/// of every answer p50 / p99 / max (ms), errors.
fn route_row(backend: &str, route: &str, r: &Route, secs: f64) -> String {
    format!(
        "{backend:<11} {route:<26} {:>8} {:>8.1} {:>7.2} {:>7.2} {:>7.2} {:>6}",
        r.ok,
        r.ok as f64 / secs.max(f64::MIN_POSITIVE),
        crate::percentile(&r.latencies, 0.5),
        crate::percentile(&r.latencies, 0.99),
        r.latencies.last().copied().unwrap_or(f64::NAN),
        r.errors,
    )
}

/// The lines of one backend's figures.
fn rows(backend: &str, f: &ApiFigures) -> Vec<String> {
    let secs = f.elapsed.as_secs_f64();
    let mut out: Vec<String> = ROUTES
        .iter()
        .zip(&f.routes)
        .map(|(name, r)| route_row(backend, name, r, secs))
        .collect();
    let mut reads = f.routes[1].clone();
    reads.merge(f.routes[2].clone());
    reads.latencies.sort_by(f64::total_cmp);
    out.push(route_row(backend, "GET (both reads)", &reads, secs));
    out
}

/// The confirmations table's header.
fn confirmations_header() -> String {
    format!(
        "{:<11} {:>7} {:>11} {:>10} {:>5} {:>7} {:>7} {:>7}",
        "backend", "created", "conf/paid", "Bakong req", "429s", "paying", "then", "after s"
    )
}

/// One backend's confirmations: in the window, then after it.
fn confirmations_row(backend: &str, f: &ApiFigures) -> String {
    format!(
        "{backend:<11} {:>7} {:>11} {:>10} {:>5} {:>7} {:>7} {:>7.1}",
        f.created,
        format!("{}/{}", f.confirmed, f.paid_by_end),
        f.bakong_requests,
        f.rate_limited,
        f.paying,
        f.confirmed_after,
        f.drained.as_secs_f64()
    )
}

/// The API table, SQLite then PostgreSQL.
pub(crate) async fn api(opts: &BenchOptions, dbs: &Databases) -> Result<(), BenchError> {
    let o = ApiOptions {
        window: opts.api_window,
        writers: opts.api_writers,
        readers: opts.api_readers,
        limit: opts.limit,
    };
    println!(
        "API: a daemon in this process serving [api] on 127.0.0.1 while it confirms (simulator limit {} requests/s = its ceiling, bulk auto); for {} s {} writer client(s) POST /v1/payments (each QR handed to the simulator: paid 1-5 s later, 1 in 10 never) and {} reader client(s) alternate GET /v1/payments/{{id}} and GET /v1/payments?limit=20, one request at a time each (reqwest, keep-alive).\nSQLite: {}. PostgreSQL: {}.\n",
        o.limit,
        o.window.as_secs_f64(),
        o.writers,
        o.readers,
        dbs.sqlite_where(),
        dbs.pg_where()
    );
    println!(
        "{:<11} {:<26} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6}",
        "backend", "route", "ok", "ok/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut confirmations = vec![confirmations_header()];
    let mut report = |label: &str, f: &ApiFigures| {
        for l in rows(label, f) {
            println!("{l}");
        }
        if let Some(e) = &f.first_error {
            eprintln!("  {label}: first error: {e}");
        }
        confirmations.push(confirmations_row(label, f));
    };
    let db = dbs.sqlite().await?;
    let f = api_run(&db.url, &o).await;
    dbs.release(db).await;
    report("SQLite", &f?);
    match dbs.postgres().await? {
        Some(db) => {
            let f = api_run(&db.url, &o).await;
            dbs.release(db).await;
            report("PostgreSQL", &f?);
        }
        None => {
            let skipped = format!(
                "{:<11} skipped: {}",
                "PostgreSQL",
                dbs.no_pg.as_deref().unwrap_or("no server")
            );
            println!("{skipped}");
            confirmations.push(skipped);
        }
    }
    println!("ok: answered 201 (POST) or 200 (GET); errors: any other answer, or none within 5 s; latency: request sent -> whole answer read, on the client, of every answer.\n");
    for l in confirmations {
        println!("{l}");
    }
    println!(
        "conf/paid: rows the daemon had confirmed paid when the window ended / customers who had paid by then; Bakong req, 429s: the daemon's requests to the simulator in the window; paying: customers who pay, all told (some after the window); then: confirmed once all were, or {} s after the window; after s: how long after.",
        DRAIN.as_secs()
    );
    Ok(())
}
