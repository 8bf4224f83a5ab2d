//! The bakong-poller benchmark (`cargo run -p bakong-poller-bench
//! --release --locked`): checkout traffic against the simulator under a
//! request-rate limit, the daemon (a child process, so its RSS and CPU are
//! its own) on a temporary database, and the naive loop client libraries
//! suggest as a baseline. Prints a table per load level. [`api`] loads
//! the daemon's HTTP API while it confirms; [`webhooks`] measures webhook
//! delivery; [`cli`] is the command line.
#![forbid(unsafe_code)]

pub mod api;
pub mod bound;
pub mod cli;
pub mod db;
pub mod webhooks;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use bakong_poller::config::{BulkMode, Settings};
use bakong_poller::payment::Status;
use bakong_poller::store::{NewPayment, Store};
use bakong_simulator::{
    self as simulator, Faults, NewTransaction, OutcomeKind, RateLimit, RetryAfterMode, Scenario,
};

const EMAIL: &str = "bench@shop.example";

/// Why the benchmark stopped.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("bench: {0}")]
pub struct BenchError(String);

impl BenchError {
    /// The reason alone, without the `bench:` prefix.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl From<String> for BenchError {
    fn from(s: String) -> Self {
        BenchError(s)
    }
}

impl From<bakong_simulator::SimError> for BenchError {
    fn from(e: bakong_simulator::SimError) -> Self {
        BenchError(e.to_string())
    }
}

impl From<bakong_poller::config::ConfigError> for BenchError {
    fn from(e: bakong_poller::config::ConfigError) -> Self {
        BenchError(e.to_string())
    }
}

/// Benchmark options.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// How long payments are created at each level.
    pub duration: Duration,
    /// The simulator's request limit (requests per second).
    pub limit: f64,
    /// New payments per second, bulk mode.
    pub bulk_levels: Vec<f64>,
    /// New payments per second, single-lookup mode.
    pub single_levels: Vec<f64>,
    /// Levels at which the naive baseline runs too.
    pub baseline_levels: Vec<f64>,
    /// Pending rows for the RSS / CPU measurement.
    pub pending: usize,
    /// Window of each Pareto cell (zero: no Pareto table, naive loops or
    /// quota scenario).
    pub pareto_window: Duration,
    /// Where the Pareto table and plot are written.
    pub out_dir: std::path::PathBuf,
    /// The sections to run.
    pub sections: Vec<Section>,
    /// Window of each target cell (zero: none).
    pub targets_window: Duration,
    /// Where the backends, claim and api sections get their databases.
    pub database: DatabaseChoice,
    /// Traffic window of each backends row (zero: no backends section).
    pub backends_window: Duration,
    /// New payments per second in the backends section.
    pub backends_levels: Vec<f64>,
    /// Pending rows among which a claim is timed (empty: no claim section).
    pub claim_sizes: Vec<usize>,
    /// Traffic window of each fleet row (zero: no fleet section).
    pub fleet_window: Duration,
    /// The fleet rows to run.
    pub fleet_rows: Vec<FleetRow>,
    /// Load window of each api row (zero: no api section).
    pub api_window: Duration,
    /// Clients opening payments through the API.
    pub api_writers: usize,
    /// Clients reading payments through the API.
    pub api_readers: usize,
}

/// One load level's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    created: usize,
    confirmed: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    requests: u64,
    rate_limited: u64,
    inside_window: u64,
    rss_mb: f64,
    cpu_s: f64,
    /// Requests per confirmation in the steady part of the window (from a
    /// quarter of it to its end), without the start and the drain.
    steady: f64,
}

impl Figures {
    fn per_confirmation(&self) -> f64 {
        self.requests as f64 / self.confirmed.max(1) as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    bakong_poller::poller::report::percentile(sorted, p).unwrap_or(f64::NAN)
}

/// Peak RSS (MB) and CPU seconds of a process, from /proc (procfs).
fn proc_usage(pid: u32) -> (f64, f64) {
    let Ok(proc) = i32::try_from(pid).map(procfs::process::Process::new) else {
        return (f64::NAN, f64::NAN);
    };
    let Ok(proc) = proc else {
        return (f64::NAN, f64::NAN);
    };
    let rss = proc
        .status()
        .ok()
        .and_then(|s| s.vmhwm)
        .map_or(f64::NAN, |kb| kb as f64 / 1024.0);
    let ticks = procfs::ticks_per_second() as f64;
    let cpu = proc
        .stat()
        .map_or(f64::NAN, |s| (s.utime + s.stime) as f64 / ticks);
    (rss, cpu)
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(settings: &Settings, dir: &Path) -> Result<Self, BenchError> {
        Self::start_named(settings, dir, "daemon")
    }

    /// A daemon whose config and log are `NAME.toml` and `NAME.log` in `dir`.
    /// With `BAKONG_BENCH_LOGS=DIR` in the environment the daemons log at
    /// info level to `DIR/NAME.log` instead (appended: a restarted daemon
    /// adds to the log of the one before), kept after the bench.
    fn start_named(settings: &Settings, dir: &Path, name: &str) -> Result<Self, BenchError> {
        let keep = std::env::var_os("BAKONG_BENCH_LOGS").map(std::path::PathBuf::from);
        let mut settings = settings.clone();
        if keep.is_some() {
            settings.log.level = "info".into();
        }
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, settings.to_toml()?)
            .map_err(|e| format!("write {}: {e}", cfg.display()))?;
        let log = match &keep {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join(format!("{name}.log")))
            }
            None => std::fs::File::create(dir.join(format!("{name}.log"))),
        }
        .map_err(|e| format!("daemon log: {e}"))?;
        // This program runs the product's command line after `daemon`
        // (see `cli::main_from`).
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let child = Command::new(exe)
            .arg("daemon")
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        Ok(Daemon { child })
    }

    fn usage(&self) -> (f64, f64) {
        proc_usage(self.child.id())
    }

    fn stop(mut self) -> Result<(), BenchError> {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("daemon exited with {status}").into())
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn bench_settings(dir: &Path, base_url: &str, token: &str, limit: f64, bulk: BulkMode) -> Settings {
    let mut s = bakong_poller::app::local_settings(dir, base_url, token);
    s.bakong.email = Some(EMAIL.into());
    s.bakong.account_id = None;
    s.bakong.timeout = Duration::from_secs(5);
    s.log.level = "warn".into();
    let p = &mut s.poller;
    p.max_requests_per_second = limit;
    p.bulk = bulk;
    p.concurrency = if bulk == BulkMode::Never { 4 } else { 2 };
    p.scan_interval = Duration::from_millis(100);
    p.fresh_period = Duration::from_secs(60);
    p.max_interval = Duration::from_secs(10);
    p.lease = Duration::from_secs(30);
    p.payment_ttl = Duration::from_secs(3600);
    p.expiry_grace = Duration::from_secs(60);
    p.rate_backoff_min = Duration::from_millis(500);
    p.rate_backoff_max = Duration::from_secs(5);
    s
}

/// The merchant's own connection to the daemon's database.
/// The sorted confirmation latencies (s) of the paid rows of the
/// daemon's database.
async fn confirm_latencies(settings: &Settings) -> Result<Vec<f64>, BenchError> {
    let sql = db::Sql::open(&settings.database.url).await?;
    let lat = sql.confirm_latencies(Status::Paid).await;
    sql.close().await;
    lat
}

async fn merchant_store(settings: &Settings) -> Result<Store, BenchError> {
    Store::connect(&settings.database.url, Duration::from_secs(5))
        .await
        .map_err(|e| BenchError(format!("merchant connection: {e}")))
}

fn usd(md5: &str, amount: &str) -> NewPayment {
    NewPayment {
        order_id: None,
        metadata: None,
        qr: None,
        public_id: None,
        redirect_url: None,
        md5: md5.to_string(),
        amount: amount.to_string(),
        currency: bakong_poller::money::Currency::Usd,
        expires_at: None,
    }
}

/// A simulated checkout: most customers pay 1-5 s after the QR is shown,
/// one in ten never pays.
fn checkout(md5: &str) -> NewTransaction {
    let mut rng = rand::rng();
    NewTransaction {
        md5: Some(md5.to_string()),
        amount: Some(Decimal::new(rng.random_range(100..5000), 2)),
        currency: Some(bakong_poller::money::Currency::Usd),
        outcome: if rng.random_bool(0.1) {
            OutcomeKind::Never
        } else {
            OutcomeKind::Paid
        },
        after: Duration::from_millis(rng.random_range(1000..5000)),
        ..NewTransaction::default()
    }
}

/// The issue's checkout: paid after an exponentially distributed delay
/// (4 s mean, tail cut at 30 s), one in ten never pays.
fn checkout_exp(md5: &str) -> NewTransaction {
    let mut t = checkout(md5);
    let u: f64 = rand::rng().random_range(f64::MIN_POSITIVE..1.0);
    t.after = Duration::from_secs_f64((-u.ln() * 4.0).min(30.0));
    t
}

fn new_md5(i: usize) -> String {
    bakong_poller::khqr::md5_hex(&format!("bench-{i}-{}", rand::random::<u64>()))
}

async fn fresh_sim(limit: f64) -> Result<simulator::SimHandle, BenchError> {
    let scenario = Scenario {
        faults: Faults {
            rate_limit: Some(RateLimit {
                requests_per_second: limit,
                burst: limit.ceil() as u32,
                retry_after: RetryAfterMode::Seconds,
                retry_after_secs: None,
            }),
            ..Faults::default()
        },
        ..Scenario::default()
    };
    Ok(simulator::spawn(
        ([127, 0, 0, 1], 0).into(),
        &scenario,
        CancellationToken::new(),
    )
    .await?)
}

/// A temporary directory, a rate-limited simulator and daemon settings for it.
async fn setup(
    opts: &BenchOptions,
    bulk: BulkMode,
) -> Result<(tempfile::TempDir, simulator::SimHandle, Settings), BenchError> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sim = fresh_sim(opts.limit).await?;
    let token = sim.sim.issue_token(EMAIL);
    let settings = bench_settings(dir.path(), &sim.base_url(), &token, opts.limit, bulk);
    Ok((dir, sim, settings))
}

/// The daemon at `rate` new payments per second.
async fn daemon_level(
    opts: &BenchOptions,
    rate: f64,
    bulk: BulkMode,
) -> Result<Figures, BenchError> {
    let (dir, sim, settings) = setup(opts, bulk).await?;
    bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let db = merchant_store(&settings).await?;
    let daemon = Daemon::start(&settings, dir.path())?;
    let start = Instant::now();
    let total = (rate * opts.duration.as_secs_f64()).round() as usize;
    let mut paid = 0usize;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let md5 = new_md5(i);
        let t = checkout(&md5);
        paid += usize::from(t.outcome == OutcomeKind::Paid);
        let amount = t.amount.unwrap_or(Decimal::ONE).to_string();
        sim.sim.add_transaction(t)?;
        db.insert_payment(&usd(&md5, &amount))
            .await
            .map_err(|e| format!("insert: {e}"))?;
    }
    // Let the last customers pay and the daemon confirm them.
    let drain_until = Instant::now() + Duration::from_secs(20);
    loop {
        let n = db.counts().await.map_err(|e| e.to_string())?.paid;
        if n as usize >= paid || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss_mb, cpu_s) = daemon.usage();
    daemon.stop()?;
    let lat = confirm_latencies(&settings).await?;
    db.close().await;
    let st = sim.sim.stats();
    sim.stop().await;
    Ok(Figures {
        created: total,
        confirmed: lat.len(),
        p50: percentile(&lat, 0.5),
        p95: percentile(&lat, 0.95),
        p99: percentile(&lat, 0.99),
        requests: st.total,
        rate_limited: st.rate_limited,
        inside_window: st.inside_retry_after,
        rss_mb,
        cpu_s,
        steady: f64::NAN,
    })
}

/// The loop client libraries suggest: every pending md5 checked one by one
/// on a fixed interval (1 s), errors and 429s simply retried next round.
async fn baseline_level(opts: &BenchOptions, rate: f64) -> Result<Figures, BenchError> {
    naive_loop(
        opts.limit,
        rate,
        opts.duration,
        Duration::from_secs(1),
        checkout,
        Duration::from_secs(20),
    )
    .await
}

/// The naive loop: every pending md5 checked one by one every `every`.
async fn naive_loop(
    limit: f64,
    rate: f64,
    window: Duration,
    every: Duration,
    customer: fn(&str) -> NewTransaction,
    drain: Duration,
) -> Result<Figures, BenchError> {
    let opts = BenchOptions {
        duration: window,
        limit,
        bulk_levels: Vec::new(),
        single_levels: Vec::new(),
        baseline_levels: Vec::new(),
        pending: 0,
        pareto_window: Duration::ZERO,
        out_dir: std::path::PathBuf::new(),
        sections: Vec::new(),
        targets_window: Duration::ZERO,
        database: DatabaseChoice::Default,
        backends_window: Duration::ZERO,
        backends_levels: Vec::new(),
        claim_sizes: Vec::new(),
        fleet_window: Duration::ZERO,
        fleet_rows: Vec::new(),
        api_window: Duration::ZERO,
        api_writers: 0,
        api_readers: 0,
    };
    let sim = fresh_sim(opts.limit).await?;
    let token = sim.sim.issue_token(EMAIL);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v1/check_transaction_by_md5", sim.base_url());
    let total = (rate * opts.duration.as_secs_f64()).round() as usize;
    let start = Instant::now();
    let stop_at = start + opts.duration + drain;
    // md5 -> the moment the customer pays (unix ms), for paid ones.
    let mut pending: Vec<(String, Option<i64>)> = Vec::new();
    let mut created = 0usize;
    let mut expected = 0usize;
    let mut lat = Vec::new();
    let mut paid_at: HashMap<String, i64> = HashMap::new();
    let mut next_round = Instant::now();
    while Instant::now() < stop_at && (created < total || lat.len() < expected) {
        // New customers since the last round.
        while created < total
            && start + Duration::from_secs_f64(created as f64 / rate) <= Instant::now()
        {
            let md5 = new_md5(created);
            let t = customer(&md5);
            if t.outcome == OutcomeKind::Paid {
                expected += 1;
            }
            let r = sim.sim.add_transaction(t)?;
            if let Some(tx) = sim.sim.transactions().iter().find(|t| t.ids.md5 == r.md5) {
                paid_at.insert(r.md5.clone(), tx.at_ms);
            }
            pending.push((md5, None));
            created += 1;
        }
        if Instant::now() >= next_round {
            next_round = Instant::now() + every;
            for (md5, done) in pending.iter_mut().filter(|(_, d)| d.is_none()) {
                let resp = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "md5": md5 }))
                    .send()
                    .await;
                let Ok(resp) = resp else { continue };
                let Ok(v) = resp.json::<serde_json::Value>().await else {
                    continue;
                };
                if v["responseCode"] == 0 {
                    let now = chrono::Utc::now().timestamp_millis();
                    *done = Some(now);
                    if let Some(at) = paid_at.get(md5.as_str()) {
                        lat.push((now - at) as f64 / 1000.0);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.sort_by(f64::total_cmp);
    let st = sim.sim.stats();
    sim.stop().await;
    Ok(Figures {
        created,
        confirmed: lat.len(),
        p50: percentile(&lat, 0.5),
        p95: percentile(&lat, 0.95),
        p99: percentile(&lat, 0.99),
        requests: st.total,
        rate_limited: st.rate_limited,
        inside_window: st.inside_retry_after,
        rss_mb: f64::NAN,
        cpu_s: f64::NAN,
        steady: f64::NAN,
    })
}

/// Idle CPU, and RSS / CPU with `n` pending payments, over `secs` each.
async fn resource_use(opts: &BenchOptions, secs: u64) -> Result<(f64, f64, f64, f64), BenchError> {
    let (dir, sim, mut settings) = setup(opts, BulkMode::Auto).await?;
    // The product's own scheduling defaults, as a merchant runs it.
    let defaults = bakong_poller::config::PollerSettings::default();
    settings.poller.scan_interval = defaults.scan_interval;
    settings.poller.fresh_interval = defaults.fresh_interval;
    settings.poller.fresh_period = defaults.fresh_period;
    settings.poller.max_interval = defaults.max_interval;
    let store = bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?;
    // Idle: an empty table.
    let daemon = Daemon::start(&settings, dir.path())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, cpu0) = daemon.usage();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (idle_rss, cpu1) = daemon.usage();
    daemon.stop()?;
    let idle_cpu = (cpu1 - cpu0) / secs as f64 * 100.0;
    // Loaded: n payments nobody pays, created over the last 15 minutes (the
    // backlog a busy till builds up with payment_ttl = 15m).
    let md5s: Vec<String> = (0..opts.pending).map(new_md5).collect();
    let sql = db::Sql::open(&settings.database.url).await?;
    sql.seed_backlog(&md5s, Duration::from_secs(900), None)
        .await?;
    sql.close().await;
    store.close().await;
    let daemon = Daemon::start(&settings, dir.path())?;
    // Let the first sweep over the backlog pass, then measure steady state.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, cpu0) = daemon.usage();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (rss, cpu1) = daemon.usage();
    daemon.stop()?;
    sim.stop().await;
    Ok((idle_cpu, idle_rss, (cpu1 - cpu0) / secs as f64 * 100.0, rss))
}

/// First-check delay: rows inserted into an idle daemon (default
/// scheduling) that Bakong already reports paid; from INSERT to confirmed.
async fn first_check_delay(opts: &BenchOptions) -> Result<(f64, f64), BenchError> {
    let (dir, sim, mut settings) = setup(opts, BulkMode::Auto).await?;
    let defaults = bakong_poller::config::PollerSettings::default();
    settings.poller.scan_interval = defaults.scan_interval;
    settings.poller.max_requests_per_second = defaults.max_requests_per_second;
    bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let db = merchant_store(&settings).await?;
    let daemon = Daemon::start(&settings, dir.path())?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut delays = Vec::new();
    for i in 0..20 {
        let md5 = new_md5(i);
        sim.sim.add_transaction(NewTransaction {
            after: Duration::ZERO,
            outcome: OutcomeKind::Paid,
            ..checkout(&md5)
        })?;
        let inserted = Instant::now();
        db.insert_payment(&usd(&md5, "1"))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            let s = db.status_of(&md5).await.map_err(|e| e.to_string())?;
            if s != Some(Status::Pending) {
                break;
            }
            if inserted.elapsed() > Duration::from_secs(10) {
                return Err(format!("{md5} not confirmed within 10 s").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        delays.push(inserted.elapsed().as_secs_f64());
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..700))).await;
    }
    daemon.stop()?;
    sim.stop().await;
    delays.sort_by(f64::total_cmp);
    Ok((percentile(&delays, 0.5), percentile(&delays, 1.0)))
}

/// One Pareto cell: the daemon with the product's default scheduling but
/// `ceiling`, checkout traffic (exponential, 4 s mean) at `rate` for
/// `window`, against a simulator limit of `limit` (and `faults` on top).
async fn pareto_cell(
    limit: f64,
    rate: f64,
    ceiling: f64,
    window: Duration,
    faults: Option<Faults>,
) -> Result<(Figures, simulator::Stats), BenchError> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sim = fresh_sim(limit).await?;
    if let Some(extra) = faults {
        let mut f = sim.sim.faults();
        f.daily_limit = extra.daily_limit;
        f.day_length = extra.day_length;
        sim.sim.set_faults(f);
    }
    let token = sim.sim.issue_token(EMAIL);
    let mut settings = bench_settings(dir.path(), &sim.base_url(), &token, ceiling, BulkMode::Auto);
    // The product's defaults, as a merchant runs it; expiry 2 min.
    let d = bakong_poller::config::PollerSettings::default();
    let p = &mut settings.poller;
    p.concurrency = d.concurrency;
    p.scan_interval = d.scan_interval;
    p.fresh_interval = d.fresh_interval;
    p.fresh_period = d.fresh_period;
    p.max_interval = d.max_interval;
    p.expiry_grace = d.expiry_grace;
    p.payment_ttl = Duration::from_secs(120);
    p.cadence = d.cadence;
    p.quota_probe = Duration::from_secs(2);
    bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let db = merchant_store(&settings).await?;
    let daemon = Daemon::start(&settings, dir.path())?;
    let start = Instant::now();
    let total = (rate * window.as_secs_f64()).round() as usize;
    let mut paid = 0usize;
    let warm = total / 4;
    let mut mark = (0u64, 0i64);
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        if i == warm {
            mark = (
                sim.sim.stats().total,
                db.counts().await.map_err(|e| e.to_string())?.paid,
            );
        }
        let md5 = new_md5(i);
        let t = checkout_exp(&md5);
        paid += usize::from(t.outcome == OutcomeKind::Paid);
        let amount = t.amount.unwrap_or(Decimal::ONE).to_string();
        sim.sim.add_transaction(t)?;
        db.insert_payment(&usd(&md5, &amount))
            .await
            .map_err(|e| format!("insert: {e}"))?;
    }
    let steady = {
        let requests = sim.sim.stats().total.saturating_sub(mark.0);
        let confirmed = db.counts().await.map_err(|e| e.to_string())?.paid - mark.1;
        requests as f64 / confirmed.max(1) as f64
    };
    // The tail of the payment delays is 30 s.
    let drain_until = Instant::now() + Duration::from_secs(32);
    loop {
        let n = db.counts().await.map_err(|e| e.to_string())?.paid;
        if n as usize >= paid || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    daemon.stop()?;
    let lat = confirm_latencies(&settings).await?;
    db.close().await;
    let st = sim.sim.stats();
    sim.stop().await;
    Ok((
        Figures {
            created: total,
            confirmed: lat.len(),
            p50: percentile(&lat, 0.5),
            p95: percentile(&lat, 0.95),
            p99: percentile(&lat, 0.99),
            requests: st.total,
            rate_limited: st.rate_limited,
            inside_window: st.inside_retry_after,
            rss_mb: f64::NAN,
            cpu_s: f64::NAN,
            steady,
        },
        st,
    ))
}

/// The issue's targets, on checkout traffic against a 10 requests/s
/// limit with the daemon's defaults but the ceiling: 10 payments/s with a
/// ceiling of 20 (p99 at most 1.5 s, at most 0.12 requests per
/// confirmation) and 100 payments/s with a ceiling of 10 (p99 at most
/// 3 s, no 429). Returns the table's lines.
pub async fn targets(window: Duration) -> Result<String, BenchError> {
    let cadence = bakong_poller::config::PollerSettings::default().cadence;
    let bound = bound::for_targets(cadence.as_secs_f64());
    let mut text = format!(
        "targets: checkout traffic for {} s against a 10 requests/s limit; req/conf over the whole run and in its steady part (from a quarter of the window to its end); x bound: steady / the bound on the {} cadence\n{:<34} {:>9} {:>7} {:>7} {:>9} {:>9} {:>8} {:>6}\n",
        window.as_secs(),
        humantime::format_duration(cadence),
        "cell",
        "confirmed",
        "p50 s",
        "p99 s",
        "req/conf",
        "steady",
        "x bound",
        "429s"
    );
    for (rate, ceiling, aim) in [
        (
            10.0,
            20.0,
            "p99 <= 1.5 s, <= 0.12 req/conf; issue 22: <= 1.25 x bound",
        ),
        (100.0, 10.0, "p99 <= 3 s, no 429"),
    ] {
        let (f, st) = pareto_cell(10.0, rate, ceiling, window, None).await?;
        let mut by_endpoint: Vec<String> = st
            .requests
            .iter()
            .map(|(ep, codes)| format!("{ep} {}", codes.values().sum::<u64>()))
            .collect();
        by_endpoint.sort();
        eprintln!("  requests by endpoint: {}", by_endpoint.join(", "));
        let ratio = bound.map_or(f64::NAN, |b| f.steady / b.per_confirmation);
        let line = format!(
            "{:<34} {:>9} {:>7.2} {:>7.2} {:>9.3} {:>9.3} {:>8.2} {:>6}   aim: {aim}",
            format!("{rate:.0} payments/s, ceiling {ceiling:.0}"),
            f.confirmed,
            f.p50,
            f.p99,
            f.per_confirmation(),
            f.steady,
            ratio,
            f.rate_limited
        );
        println!("{line}");
        text += &line;
        text.push('\n');
    }
    if let Some(b) = bound {
        let line = format!(
            "least any schedule on the default {} cadence can spend for p99 <= 1.5 s at 10 payments/s: {:.4} req/conf (bench --sections bound); schedule families in a model: python3 crates/bench/model/schedules.py",
            humantime::format_duration(cadence),
            b.per_confirmation
        );
        println!("{line}");
        text += &line;
        text.push('\n');
    }
    Ok(text)
}

/// The Pareto table (budgets 1, 2, 5, 10 requests/s at 2, 10 and 100
/// payments/s), the two naive loops and a quota scenario; the table goes
/// to `pareto.txt` and the plot to `pareto.svg` in `opts.out_dir`.
async fn pareto(opts: &BenchOptions) -> Result<(), BenchError> {
    let window = opts.pareto_window;
    let limit = 10.0;
    let mut text = format!(
        "Pareto: simulator limit {limit} requests/s; checkout traffic {} s per cell (shortened window), paid after an exponential delay (4 s mean, tail cut at 30 s), 1 in 10 never pays, expiry 2 min; daemon defaults but max_requests_per_second (the budget).\n\n{:<22} {:>6} {:>6} {:>9} {:>7} {:>7} {:>9} {:>6}\n",
        window.as_secs(),
        "mode",
        "new/s",
        "budget",
        "confirmed",
        "p50 s",
        "p99 s",
        "req/conf",
        "429s"
    );
    println!("\n{text}");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for rate in [2.0, 10.0, 100.0] {
        let mut points = Vec::new();
        for budget in [1.0, 2.0, 5.0, 10.0] {
            let (f, _) = pareto_cell(limit, rate, budget, window, None).await?;
            let line = format!(
                "{:<22} {rate:>6.0} {budget:>6.0} {:>9} {:>7.2} {:>7.2} {:>9.3} {:>6}",
                "daemon (bulk, cadence)",
                f.confirmed,
                f.p50,
                f.p99,
                f.per_confirmation(),
                f.rate_limited
            );
            println!("{line}");
            text += &line;
            text.push('\n');
            if f.p99.is_finite() {
                points.push((f.per_confirmation(), f.p99));
            }
        }
        series.push((format!("daemon, {rate:.0} payments/s"), points));
    }
    let mut naive = Vec::new();
    for every in [1u64, 5] {
        let f = naive_loop(
            limit,
            10.0,
            window,
            Duration::from_secs(every),
            checkout_exp,
            Duration::from_secs(32),
        )
        .await?;
        let line = format!(
            "{:<22} {:>6.0} {:>6} {:>9} {:>7.2} {:>7.2} {:>9.3} {:>6}",
            format!("naive, each md5 {every}s"),
            10.0,
            "-",
            f.confirmed,
            f.p50,
            f.p99,
            f.per_confirmation(),
            f.rate_limited
        );
        println!("{line}");
        text += &line;
        text.push('\n');
        if f.p99.is_finite() {
            naive.push((f.per_confirmation(), f.p99));
        }
    }
    series.push(("naive loops (1 s, 5 s), 10 payments/s".into(), naive));

    // The quota: 10 requests a simulated day of 20 s, probes every 2 s
    // (the cell spends about one request a second, so the quota is met).
    let (f, st) = pareto_cell(
        limit,
        2.0,
        5.0,
        window,
        Some(Faults {
            daily_limit: Some(10),
            day_length: Some(Duration::from_secs(20)),
            ..Faults::default()
        }),
    )
    .await?;
    let line = format!(
        "\nquota scenario: daily limit 10 requests per simulated 20 s day, quota_probe 2s, 2 payments/s, budget 5/s: {} of {} confirmed, p50 {:.2} s, p99 {:.2} s, {} requests, {} refused with errorCode 17",
        f.confirmed, f.created, f.p50, f.p99, f.requests, st.quota_refused
    );
    println!("{line}");
    text += &line;
    text.push('\n');

    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("create {}: {e}", opts.out_dir.display()))?;
    let table = opts.out_dir.join("pareto.txt");
    std::fs::write(&table, &text).map_err(|e| format!("write {}: {e}", table.display()))?;
    let svg = opts.out_dir.join("pareto.svg");
    plot(&svg, &series)?;
    println!("written: {} and {}", table.display(), svg.display());
    Ok(())
}

/// p99 latency against requests per confirmation, one line per series.
fn plot(path: &Path, series: &[(String, Vec<(f64, f64)>)]) -> Result<(), BenchError> {
    use plotters::prelude::*;
    let fail = |e: &dyn std::fmt::Display| BenchError(format!("plot {}: {e}", path.display()));
    let max_x = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(0.1f64, f64::max)
        * 1.1;
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "p99 paid -> confirmed (s) against requests per confirmation",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("requests per confirmation")
        .y_desc("p99 latency (s)")
        .draw()
        .map_err(|e| fail(&e))?;
    let colours = [&BLUE, &RED, &GREEN, &BLACK];
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let mut pts = points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

fn row(label: &str, rate: f64, f: &Figures) -> String {
    format!(
        "{label:<9} {rate:>6.1} {:>7} {:>9} {:>6.2} {:>6.2} {:>6.2} {:>9.2} {:>6} {:>6} {:>7.1} {:>6.2}",
        f.created, f.confirmed, f.p50, f.p95, f.p99, f.per_confirmation(), f.rate_limited, f.inside_window, f.rss_mb, f.cpu_s
    )
}

/// Runs the benchmark and prints its tables.
pub async fn run(opts: BenchOptions) -> Result<(), BenchError> {
    // Seeding a million rows is meant to be slow (no slow-statement
    // warnings), and the throwaway cluster stops under idle pool
    // connections at the end; the bench's own failures come back as errors.
    bakong_poller::telemetry::init(
        bakong_poller::config::LogFormat::Text,
        "warn,sqlx=error,sqlx_core=error",
    );
    let on = |x: Section| opts.sections.contains(&x);
    if on(Section::Pareto) && !opts.pareto_window.is_zero() {
        pareto(&opts).await?;
        println!();
    }
    if on(Section::Targets) && !opts.targets_window.is_zero() {
        targets(opts.targets_window).await?;
        println!();
    }
    if on(Section::Bound) {
        println!("{}", bound::table());
    }
    if on(Section::Levels) {
        levels(&opts).await?;
    }
    if on(Section::Resources) {
        resources(&opts).await?;
    }
    let backends_on = on(Section::Backends)
        && !opts.backends_window.is_zero()
        && !opts.backends_levels.is_empty();
    let claim_on = on(Section::Claim) && !opts.claim_sizes.is_empty();
    let fleet_on = on(Section::Fleet) && !opts.fleet_window.is_zero();
    let api_on =
        on(Section::Api) && !opts.api_window.is_zero() && opts.api_writers + opts.api_readers > 0;
    if backends_on || claim_on || fleet_on || api_on {
        let dbs = Databases::open(&opts.database).await?;
        if fleet_on {
            println!();
            fleet(&opts, &dbs).await?;
        }
        if backends_on {
            println!();
            backends(&opts, &dbs).await?;
        }
        if claim_on {
            println!();
            claims(&opts, &dbs).await?;
        }
        if api_on {
            println!();
            api::api(&opts, &dbs).await?;
        }
    }
    Ok(())
}

/// The load-level table (bulk, single, the naive baseline) and the ratios.
async fn levels(opts: &BenchOptions) -> Result<(), BenchError> {
    println!(
        "bakong-poller bench: simulator limit {} requests/s (token bucket, Retry-After in seconds); {} s of checkout traffic per level;",
        opts.limit,
        opts.duration.as_secs()
    );
    println!("customers pay 1-5 s after the QR is shown, 1 in 10 never pays. Latency: customer paid -> row confirmed.\n");
    println!(
        "{:<9} {:>6} {:>7} {:>9} {:>6} {:>6} {:>6} {:>9} {:>6} {:>6} {:>7} {:>6}",
        "mode",
        "new/s",
        "created",
        "confirmed",
        "p50 s",
        "p95 s",
        "p99 s",
        "req/conf",
        "429s",
        "in-RA",
        "RSS MB",
        "CPU s"
    );
    let mut by_rate: HashMap<String, (Option<Figures>, Option<Figures>)> = HashMap::new();
    for &r in &opts.bulk_levels {
        let f = daemon_level(opts, r, BulkMode::Auto).await?;
        println!("{}", row("bulk", r, &f));
        by_rate.entry(format!("{r}")).or_default().0 = Some(f);
    }
    for &r in &opts.single_levels {
        let f = daemon_level(opts, r, BulkMode::Never).await?;
        println!("{}", row("single", r, &f));
        if !opts.bulk_levels.contains(&r) {
            by_rate.entry(format!("{r}")).or_default().0 = Some(f);
        }
    }
    for &r in &opts.baseline_levels {
        let f = baseline_level(opts, r).await?;
        println!("{}", row("baseline", r, &f));
        by_rate.entry(format!("{r}")).or_default().1 = Some(f);
    }
    println!("\nratios, baseline / daemon (the daemon's best mode at that load):");
    let mut rates: Vec<f64> = opts.baseline_levels.clone();
    rates.sort_by(f64::total_cmp);
    for r in rates {
        if let Some((Some(d), Some(b))) = by_rate.get(&format!("{r}")) {
            println!(
                "  {r:>5.1} new/s: requests per confirmation {:.1}x fewer; p99 latency {:.1}x; 429s {} vs {}",
                b.per_confirmation() / d.per_confirmation().max(f64::MIN_POSITIVE),
                b.p99 / d.p99,
                b.rate_limited,
                d.rate_limited
            );
        }
    }
    Ok(())
}

/// The first-check delay and the daemon's RSS / CPU, idle and loaded.
async fn resources(opts: &BenchOptions) -> Result<(), BenchError> {
    let (p50, max) = first_check_delay(opts).await?;
    println!("\nfirst check of a new row (default scan_interval 250ms, ceiling 5/s): p50 {:.0} ms, max {:.0} ms (INSERT -> confirmed)", p50 * 1000.0, max * 1000.0);
    let (idle_cpu, idle_rss, cpu, rss) = resource_use(opts, opts.duration.as_secs().max(5)).await?;
    println!("idle daemon: CPU {idle_cpu:.2}% of one core, RSS {idle_rss:.1} MB");
    println!(
        "{} pending payments created over 15 min (bulk, default scheduling): CPU {cpu:.2}% of one core, peak RSS {rss:.1} MB",
        opts.pending
    );
    Ok(())
}

/// Where the backends, claim and api sections get their databases (`bench
/// --database`). The other sections always use temporary SQLite files.
#[derive(Clone, PartialEq)]
pub enum DatabaseChoice {
    /// `sqlite` (the default): SQLite in temporary files; the PostgreSQL
    /// rows in a throwaway cluster when the server binaries are installed,
    /// skipped with a line saying so when not.
    Default,
    /// `sqlite://PATH`: the SQLite rows in a file at PATH (so on the disk a
    /// merchant would use), which the bench creates and removes after each
    /// run; it must not exist.
    SqliteAt(std::path::PathBuf),
    /// `postgres` (or `pg`): the PostgreSQL rows in a throwaway cluster
    /// (`pg_cluster::TempCluster`); missing server binaries are an error.
    TempPostgres,
    /// `postgres://...`: the PostgreSQL rows on this server, each run in a
    /// schema of its own (`bakong_bench_*`) that is dropped after it, so
    /// the bench never touches an application's own tables.
    Postgres(String),
}

// The URL can carry a password.
impl std::fmt::Debug for DatabaseChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseChoice::Default => f.write_str("Default"),
            DatabaseChoice::SqliteAt(p) => f.debug_tuple("SqliteAt").field(p).finish(),
            DatabaseChoice::TempPostgres => f.write_str("TempPostgres"),
            DatabaseChoice::Postgres(u) => f
                .debug_tuple("Postgres")
                .field(&bakong_poller::redact::redact_url(u))
                .finish(),
        }
    }
}

/// Parses `bench --database`: `sqlite`, `sqlite://PATH` (PATH must not
/// exist), `postgres`/`pg`, or a `postgres://`/`postgresql://` URL.
pub fn parse_database(s: &str) -> Result<DatabaseChoice, BenchError> {
    let shown = bakong_poller::redact::redact_url(s);
    match s {
        "sqlite" => return Ok(DatabaseChoice::Default),
        "postgres" | "postgresql" | "pg" => return Ok(DatabaseChoice::TempPostgres),
        _ => {}
    }
    if bakong_poller::store::postgres::accepts(s) {
        return bakong_poller::store::postgres::check_url(s)
            .map(|()| DatabaseChoice::Postgres(s.to_string()))
            .map_err(|why| BenchError(format!("{shown:?} is not a usable PostgreSQL URL: {why}")));
    }
    if let Some(path) = s.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(BenchError(format!(
                "{shown:?} names no file: use sqlite://PATH"
            )));
        }
        let path = std::path::PathBuf::from(path);
        if path.exists() {
            return Err(BenchError(format!(
                "{} exists: the bench creates and deletes its own file there, so name one that does not exist",
                path.display()
            )));
        }
        return Ok(DatabaseChoice::SqliteAt(path));
    }
    Err(BenchError(format!(
        "{shown:?} is not sqlite, sqlite://PATH, postgres (a throwaway cluster) or a postgres:// URL"
    )))
}

/// Hands out fresh, empty databases for one bench run, and cleans up.
struct Databases {
    choice: DatabaseChoice,
    dir: tempfile::TempDir,
    cluster: Option<test_support::pg_cluster::TempCluster>,
    /// Why there is no PostgreSQL (the PostgreSQL rows are skipped).
    no_pg: Option<String>,
    next: std::sync::atomic::AtomicU64,
}

/// A fresh database: its URL, and what to remove after.
struct FreshDb {
    url: String,
    drop_schema: Option<(String, String)>,
    remove_file: Option<std::path::PathBuf>,
}

impl Databases {
    async fn open(choice: &DatabaseChoice) -> Result<Self, BenchError> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cluster = None;
        let mut no_pg = None;
        let wants_cluster = matches!(
            choice,
            DatabaseChoice::Default | DatabaseChoice::SqliteAt(_) | DatabaseChoice::TempPostgres
        );
        if wants_cluster {
            match tokio::task::spawn_blocking(test_support::pg_cluster::TempCluster::start)
                .await
                .map_err(|e| e.to_string())?
            {
                Ok(c) => cluster = Some(c),
                Err(e) if *choice != DatabaseChoice::TempPostgres => {
                    no_pg = Some(format!(
                        "{e}; or pass --database postgres://USER@HOST/DATABASE"
                    ))
                }
                Err(e) => return Err(BenchError(format!("--database postgres: {e}"))),
            }
        }
        Ok(Databases {
            choice: choice.clone(),
            dir,
            cluster,
            no_pg,
            next: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Where the PostgreSQL rows run, for the section headers.
    fn pg_where(&self) -> String {
        match &self.choice {
            DatabaseChoice::Postgres(u) => {
                format!(
                    "{} (a schema per run)",
                    bakong_poller::redact::redact_url(u)
                )
            }
            _ => "a throwaway local cluster (fsync=off)".into(),
        }
    }

    /// Where the SQLite rows run, for the section headers.
    fn sqlite_where(&self) -> String {
        match &self.choice {
            DatabaseChoice::SqliteAt(p) => p.display().to_string(),
            _ => format!("a file in {}", self.dir.path().display()),
        }
    }

    async fn sqlite(&self) -> Result<FreshDb, BenchError> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = match &self.choice {
            DatabaseChoice::SqliteAt(p) => p.clone(),
            _ => self.dir.path().join(format!("bench{n}.db")),
        };
        Ok(FreshDb {
            url: format!("sqlite://{}", path.display()),
            drop_schema: None,
            remove_file: Some(path),
        })
    }

    /// A fresh PostgreSQL database; None when there is no server.
    async fn postgres(&self) -> Result<Option<FreshDb>, BenchError> {
        if let Some(c) = &self.cluster {
            let url = c.create_database().await.map_err(|e| e.to_string())?;
            return Ok(Some(FreshDb {
                url,
                drop_schema: None,
                remove_file: None,
            }));
        }
        let DatabaseChoice::Postgres(base) = &self.choice else {
            return Ok(None);
        };
        use sqlx::Connection as _;
        let schema = format!(
            "bakong_bench_{}_{}",
            std::process::id(),
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let shown = bakong_poller::redact::redact_url(base);
        let mut conn = sqlx::PgConnection::connect(base).await.map_err(|e| {
            format!(
                "--database {shown}: {}",
                bakong_poller::redact::redact_text(&e.to_string())
            )
        })?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .map_err(|e| format!("--database {shown}: create schema {schema}: {e}"))?;
        let _ = conn.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Some(FreshDb {
            url: format!("{base}{sep}options=-csearch_path%3D{schema}"),
            drop_schema: Some((base.clone(), schema)),
            remove_file: None,
        }))
    }

    async fn release(&self, db: FreshDb) {
        if let Some(path) = db.remove_file {
            for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        if let Some((base, schema)) = db.drop_schema {
            use sqlx::Connection as _;
            if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                if let Err(e) = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&mut conn)
                    .await
                {
                    println!("  (could not drop schema {schema}: {e}; drop it by hand)");
                }
                let _ = conn.close().await;
            }
        }
    }
}

/// `daemons` daemon processes on the database at `url`, checkout traffic
/// at `rate` new payments per second for `window`, against a simulator
/// limit of `limit` requests/s that is also the daemons' ceiling together.
async fn backend_run(
    url: &str,
    daemons: usize,
    rate: f64,
    window: Duration,
    limit: f64,
) -> Result<(Figures, usize), BenchError> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sim = fresh_sim(limit).await?;
    let token = sim.sim.issue_token(EMAIL);
    let mut settings = bench_settings(dir.path(), &sim.base_url(), &token, limit, BulkMode::Auto);
    settings.database.url = url.to_string();
    bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let db = merchant_store(&settings).await?;
    let mut procs = Vec::new();
    for i in 0..daemons {
        procs.push(Daemon::start_named(
            &settings,
            dir.path(),
            &format!("daemon{i}"),
        )?);
    }
    let start = Instant::now();
    let total = (rate * window.as_secs_f64()).round() as usize;
    let mut paid = 0usize;
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        let md5 = new_md5(i);
        let t = checkout(&md5);
        paid += usize::from(t.outcome == OutcomeKind::Paid);
        let amount = t.amount.unwrap_or(Decimal::ONE).to_string();
        sim.sim.add_transaction(t)?;
        db.insert_payment(&usd(&md5, &amount))
            .await
            .map_err(|e| format!("insert: {e}"))?;
    }
    let drain_until = Instant::now() + Duration::from_secs(20);
    loop {
        let n = db.counts().await.map_err(|e| e.to_string())?.paid;
        if n as usize >= paid || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rss_mb = 0f64;
    let mut cpu_s = 0f64;
    for d in &procs {
        let (rss, cpu) = d.usage();
        rss_mb = rss_mb.max(rss);
        cpu_s += cpu;
    }
    for d in procs {
        d.stop()?;
    }
    let lat = confirm_latencies(&settings).await?;
    db.close().await;
    let st = sim.sim.stats();
    sim.stop().await;
    Ok((
        Figures {
            created: total,
            confirmed: lat.len(),
            p50: percentile(&lat, 0.5),
            p95: percentile(&lat, 0.95),
            p99: percentile(&lat, 0.99),
            requests: st.total,
            rate_limited: st.rate_limited,
            inside_window: st.inside_retry_after,
            rss_mb,
            cpu_s,
            steady: f64::NAN,
        },
        paid,
    ))
}

/// One fleet row's figures.
struct FleetFigures {
    /// Requests the daemons sent while the backlog and arrivals were due,
    /// per second, over the ceiling.
    spent: f64,
    /// The same over the time the API was not refusing (outside the
    /// Retry-After windows it announced).
    spent_open: f64,
    requests: u64,
    rate_limited: u64,
    fresh_p50: f64,
    fresh_p99: f64,
    confirmed: usize,
    paid: usize,
    /// Seconds from the last row's deadline (expires_at + grace) until no
    /// row was pending; None if some were still pending at the cap.
    to_final: Option<f64>,
    pending_left: i64,
    kills: usize,
    /// Requests by endpoint and answer, as the simulator counted them.
    by_endpoint: String,
    /// Requests in each second of the arrivals window.
    per_second: Vec<usize>,
}

/// The issue-22 scenario: `daemons` daemons on `url` sharing one ceiling
/// (`limit` requests/s, single lookups) against an API allowing as much; a
/// backlog of `backlog` rows created an hour ago (past their deadline: one
/// check each ends them), checkout arrivals at `rate`/s for `window`
/// expiring 40 s after creation (grace 5 s); with `kills`, a daemon is
/// SIGKILLed and restarted every 1-3 s while the arrivals last. With
/// `faults`, the issue's hostile API too: 3% 5xx, 2% truncated JSON, a
/// 429 under the limit now and then, tokens that live 8 s and are revoked
/// on renewal.
#[allow(clippy::too_many_arguments)]
async fn fleet_run(
    url: &str,
    daemons: usize,
    kills: bool,
    limit: f64,
    window: Duration,
    rate: f64,
    backlog: usize,
    faults: bool,
) -> Result<FleetFigures, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sim = fresh_sim(limit).await?;
    if faults {
        sim.sim.set_settings(simulator::SimSettings {
            token_lifetime: Duration::from_secs(8),
            revoke_on_renew: true,
        });
        let mut f = sim.sim.faults();
        f.error_5xx_ratio = 0.03;
        f.malformed_ratio = 0.02;
        sim.sim.set_faults(f);
    }
    let token = sim.sim.issue_token(EMAIL);
    let mut settings = bench_settings(dir.path(), &sim.base_url(), &token, limit, BulkMode::Never);
    settings.database.url = url.to_string();
    settings.poller.payment_ttl = Duration::from_secs(40);
    settings.poller.expiry_grace = Duration::from_secs(5);
    settings.poller.lease = Duration::from_secs(10);
    bakong_poller::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?
        .close()
        .await;
    let db = merchant_store(&settings).await?;
    let old: Vec<String> = (0..backlog).map(|i| new_md5(1_000_000 + i)).collect();
    let sql = db::Sql::open(&settings.database.url).await?;
    sql.seed_backlog(&old, Duration::from_secs(3600), None)
        .await
        .map_err(|e| format!("seed: {}", e.reason()))?;
    sql.close().await;
    let mut procs = Vec::new();
    for i in 0..daemons {
        procs.push(Daemon::start_named(
            &settings,
            dir.path(),
            &format!("daemon{i}"),
        )?);
    }
    let (requests_before, refusing_before) = {
        let st = sim.sim.stats();
        (st.total, st.refusing_ms)
    };
    let start = Instant::now();
    let total = (rate * window.as_secs_f64()).round() as usize;
    let inserts = {
        let sim = sim.sim.clone();
        let url = url.to_string();
        tokio::spawn(async move {
            let db = Store::connect(&url, Duration::from_secs(5))
                .await
                .map_err(|e| format!("merchant connection: {e}"))?;
            let mut paid = 0usize;
            for i in 0..total {
                tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into())
                    .await;
                let md5 = new_md5(i);
                let t = checkout(&md5);
                paid += usize::from(t.outcome == OutcomeKind::Paid);
                let amount = t.amount.unwrap_or(Decimal::ONE).to_string();
                sim.add_transaction(t).map_err(|e| e.to_string())?;
                db.insert_payment(&usd(&md5, &amount))
                    .await
                    .map_err(|e| format!("insert: {e}"))?;
            }
            db.close().await;
            Ok::<usize, String>(paid)
        })
    };
    let mut killed = 0usize;
    if kills {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(22);
        while !inserts.is_finished() {
            tokio::time::sleep(Duration::from_millis(rng.random_range(1000..3000))).await;
            if inserts.is_finished() {
                break;
            }
            if faults && rng.random_bool(0.3) {
                // A 429 under the limit, now and then.
                let mut f = sim.sim.faults();
                f.force_429 = 1;
                sim.sim.set_faults(f);
            }
            let victim = rng.random_range(0..procs.len());
            let _ = procs[victim].child.kill();
            let _ = procs[victim].child.wait();
            procs[victim] = Daemon::start_named(&settings, dir.path(), &format!("daemon{victim}"))?;
            killed += 1;
        }
    }
    let paid = inserts
        .await
        .map_err(|e| e.to_string())?
        .map_err(BenchError)?;
    let arrivals_done = Instant::now();
    let (spent_requests, refusing) = {
        let st = sim.sim.stats();
        (
            st.total - requests_before,
            Duration::from_millis(st.refusing_ms - refusing_before),
        )
    };
    let busy = arrivals_done.duration_since(start);
    let per_second = {
        let from = chrono::Utc::now().timestamp_millis()
            - i64::try_from(start.elapsed().as_millis()).unwrap_or(0);
        let secs = busy.as_secs() as usize + 1;
        let mut n = vec![0usize; secs];
        for at in sim.sim.arrivals() {
            if let Ok(i) = usize::try_from((at - from).div_euclid(1000)) {
                if let Some(c) = n.get_mut(i) {
                    *c += 1;
                }
            }
        }
        n
    };
    let spent = spent_requests as f64 / busy.as_secs_f64() / limit;
    let open = busy.saturating_sub(refusing).as_secs_f64().max(1e-3);
    let spent_open = spent_requests as f64 / open / limit;
    // The last deadline: the last arrival's expiry plus the grace.
    let last_deadline = arrivals_done + Duration::from_secs(45);
    let cap = last_deadline + Duration::from_secs(120);
    let mut to_final = None;
    let mut pending_left;
    loop {
        pending_left = db.counts().await.map_err(|e| e.to_string())?.pending;
        if pending_left == 0 {
            let now = Instant::now();
            to_final = Some(if now > last_deadline {
                now.duration_since(last_deadline).as_secs_f64()
            } else {
                -last_deadline.duration_since(now).as_secs_f64()
            });
            break;
        }
        if Instant::now() > cap {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for d in procs {
        d.stop()?;
    }
    let lat = confirm_latencies(&settings).await?;
    db.close().await;
    let st = sim.sim.stats();
    sim.stop().await;
    let mut by_endpoint: Vec<String> = st
        .requests
        .iter()
        .map(|(ep, codes)| {
            let mut c: Vec<String> = codes.iter().map(|(k, n)| format!("{k} {n}")).collect();
            c.sort();
            format!("{ep}: {}", c.join(", "))
        })
        .collect();
    by_endpoint.sort();
    Ok(FleetFigures {
        by_endpoint: by_endpoint.join("; "),
        per_second,
        spent,
        spent_open,
        requests: spent_requests,
        rate_limited: st.rate_limited,
        fresh_p50: percentile(&lat, 0.5),
        fresh_p99: percentile(&lat, 0.99),
        confirmed: lat.len(),
        paid,
        to_final,
        pending_left,
        kills: killed,
    })
}

/// The fleet table (issue 22): the ceiling spent while work waits, fresh
/// latency behind a backlog, time to final after the last deadline; three
/// daemons on PostgreSQL killed at random beside one daemon on SQLite.
async fn fleet(opts: &BenchOptions, dbs: &Databases) -> Result<(), BenchError> {
    let (limit, rate, backlog) = (10.0, 5.0, 300);
    let window = opts.fleet_window;
    println!(
        "Fleet: ceiling {limit} requests/s for all daemons (the simulator allows as much, 429 with Retry-After above), single lookups; a backlog of {backlog} rows created an hour ago (past their deadline) and {rate} checkouts/s for {} s (expiry 40 s, grace 5 s; paid 1-5 s after the QR, 1 in 10 never). Aims: spent >= 0.85 of the ceiling while work waits; every row final within 60 s of the last deadline.\nSQLite: {}. PostgreSQL: {}.\n",
        window.as_secs_f64(),
        dbs.sqlite_where(),
        dbs.pg_where()
    );
    println!(
        "  {:<28} {:>6} {:>7} {:>9} {:>6} {:>11} {:>11} {:>10} {:>14} {:>6}",
        "run",
        "spent",
        "spent*",
        "requests",
        "429s",
        "fresh p50 s",
        "fresh p99 s",
        "confirmed",
        "final after s",
        "kills"
    );
    let mut rows: Vec<(String, FleetFigures)> = Vec::new();
    let want = |r: FleetRow| opts.fleet_rows.contains(&r);
    if want(FleetRow::Sqlite) {
        let sq = dbs.sqlite().await?;
        let f = fleet_run(&sq.url, 1, false, limit, window, rate, backlog, false).await?;
        dbs.release(sq).await;
        rows.push(("sqlite, 1 daemon".into(), f));
    }
    let pg_rows = want(FleetRow::Postgres) || want(FleetRow::Faults);
    match if pg_rows { dbs.postgres().await? } else { None } {
        Some(pg) => {
            if want(FleetRow::Postgres) {
                let f = fleet_run(&pg.url, 3, true, limit, window, rate, backlog, false).await?;
                rows.push(("postgres, 3 daemons, kills".into(), f));
            }
            dbs.release(pg).await;
            // The issue's own scenario: 300 rows over 40 s, kills, the
            // hostile API (5xx, truncated JSON, 429s, 8 s tokens revoked on
            // renewal), no backlog.
            let faults_db = if want(FleetRow::Faults) {
                dbs.postgres().await?
            } else {
                None
            };
            if let Some(pg) = faults_db {
                let f = fleet_run(
                    &pg.url,
                    3,
                    true,
                    limit,
                    Duration::from_secs(40),
                    7.5,
                    0,
                    true,
                )
                .await?;
                dbs.release(pg).await;
                rows.push(("postgres, 3, kills + faults".into(), f));
            }
        }
        None if pg_rows => println!(
            "  postgres rows skipped: {}",
            dbs.no_pg.clone().unwrap_or_default()
        ),
        None => {}
    }
    for (label, f) in &rows {
        let final_after = match f.to_final {
            Some(t) => format!("{t:.1}"),
            None => format!("{} pending", f.pending_left),
        };
        println!(
            "  {:<28} {:>6.2} {:>7.2} {:>9} {:>6} {:>11.2} {:>11.2} {:>6}/{:<3} {:>14} {:>6}",
            label,
            f.spent,
            f.spent_open,
            f.requests,
            f.rate_limited,
            f.fresh_p50,
            f.fresh_p99,
            f.confirmed,
            f.paid,
            final_after,
            f.kills
        );
    }
    println!(
        "  spent: requests per second over the ceiling while arrivals lasted; spent*: the same over the time the API was not refusing (outside the Retry-After windows it announced)"
    );
    for (label, f) in &rows {
        let secs: Vec<String> = f.per_second.iter().map(usize::to_string).collect();
        eprintln!(
            "  {label}: requests in each second of the arrivals: {}",
            secs.join(" ")
        );
        eprintln!(
            "  {label}: requests by endpoint and answer: {}",
            f.by_endpoint
        );
    }
    Ok(())
}

/// A row of the fleet section (`--fleet-rows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetRow {
    /// One daemon on SQLite.
    Sqlite,
    /// Three daemons on PostgreSQL, killed at random.
    Postgres,
    /// The issue's own scenario: three killed daemons, a hostile API.
    Faults,
}

/// Parses `--fleet-rows`: comma-separated row names.
pub fn parse_fleet_rows(s: &str) -> Result<Vec<FleetRow>, BenchError> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| match x {
            "sqlite" => Ok(FleetRow::Sqlite),
            "postgres" => Ok(FleetRow::Postgres),
            "faults" => Ok(FleetRow::Faults),
            other => Err(BenchError(format!(
                "{other:?} is not a fleet row: sqlite, postgres, faults"
            ))),
        })
        .collect()
}

/// The backends table: SQLite with one daemon, PostgreSQL with one and
/// with three, the same checkout traffic at each level.
async fn backends(opts: &BenchOptions, dbs: &Databases) -> Result<(), BenchError> {
    println!(
        "Backends: simulator limit {} requests/s = the daemons' ceiling together; {} s of checkout traffic per row (customers pay 1-5 s after the QR, 1 in 10 never pays); daemons are processes of this program (bulk auto), each with its own client, gate and heartbeat.\nSQLite: {}. PostgreSQL: {}.\n",
        opts.limit,
        opts.backends_window.as_secs_f64(),
        dbs.sqlite_where(),
        dbs.pg_where()
    );
    println!(
        "{:<22} {:>6} {:>7} {:>9} {:>7} {:>6} {:>6} {:>9} {:>6} {:>6} {:>7} {:>6}",
        "backend",
        "new/s",
        "created",
        "conf/paid",
        "conf/s",
        "p50 s",
        "p99 s",
        "req/conf",
        "429s",
        "in-RA",
        "RSS MB",
        "CPU s"
    );
    let backends_row = |label: &str, rate: f64, (f, paid): &(Figures, usize)| {
        format!(
            "{label:<22} {rate:>6.1} {:>7} {:>9} {:>7.2} {:>6.2} {:>6.2} {:>9.2} {:>6} {:>6} {:>7.1} {:>6.2}",
            f.created,
            format!("{}/{paid}", f.confirmed),
            f.confirmed as f64 / opts.backends_window.as_secs_f64().max(f64::MIN_POSITIVE),
            f.p50,
            f.p99,
            f.per_confirmation(),
            f.rate_limited,
            f.inside_window,
            f.rss_mb,
            f.cpu_s
        )
    };
    for &rate in &opts.backends_levels {
        let db = dbs.sqlite().await?;
        let f = backend_run(&db.url, 1, rate, opts.backends_window, opts.limit).await;
        dbs.release(db).await;
        println!("{}", backends_row("SQLite, 1 daemon", rate, &f?));
        for n in [1usize, 3] {
            let label = format!("PostgreSQL, {n} daemon{}", if n == 1 { "" } else { "s" });
            let Some(db) = dbs.postgres().await? else {
                println!(
                    "{label:<22} skipped: {}",
                    dbs.no_pg.as_deref().unwrap_or("no server")
                );
                continue;
            };
            let f = backend_run(&db.url, n, rate, opts.backends_window, opts.limit).await;
            dbs.release(db).await;
            println!("{}", backends_row(&label, rate, &f?));
        }
    }
    println!("conf/paid: confirmed of the customers who paid; conf/s: payments confirmed per second of traffic; RSS MB: the largest daemon; CPU s: all daemons together.");
    Ok(())
}

/// Seeds `n` pending rows, none due for an hour, in chunks of 100,000.
async fn seed_pending(sql: &db::Sql, n: usize) -> Result<(), BenchError> {
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(100_000);
        let md5s: Vec<String> = (done..done + chunk)
            .map(|i| bakong_poller::khqr::md5_hex(&format!("claim-bench-{i}")))
            .collect();
        sql.seed_backlog(&md5s, Duration::ZERO, Some(Duration::from_secs(3600)))
            .await?;
        done += chunk;
    }
    Ok(())
}

const CLAIM_RUNS: u32 = 50;
const CLAIM_BATCH: usize = 50;

/// Seed time, then mean and worst of `CLAIM_RUNS` claims of
/// `CLAIM_BATCH` due rows among `n` pending, on the database at `url`.
async fn claim_figures(url: &str, n: usize) -> Result<(Duration, Duration, Duration), BenchError> {
    let store = Store::connect(url, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let t = Instant::now();
    let sql = db::Sql::open(url).await?;
    seed_pending(&sql, n).await?;
    let seeded = t.elapsed();
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for _ in 0..CLAIM_RUNS {
        // CLAIM_BATCH random rows become due, among n pending.
        sql.make_due(CLAIM_BATCH).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let t = Instant::now();
        let got = store
            .claim(
                now,
                Duration::from_secs(60),
                CLAIM_BATCH,
                Duration::from_secs(900),
            )
            .await
            .map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if got.len() != CLAIM_BATCH {
            return Err(
                format!("claim returned {} rows, expected {CLAIM_BATCH}", got.len()).into(),
            );
        }
        total += took;
        worst = worst.max(took);
    }
    sql.close().await;
    store.close().await;
    Ok((seeded, total / CLAIM_RUNS, worst))
}

/// The claim table: one claim of 50 due rows among each of `sizes`
/// pending rows, SQLite and PostgreSQL.
async fn claims(opts: &BenchOptions, dbs: &Databases) -> Result<(), BenchError> {
    println!(
        "Claim of {CLAIM_BATCH} due rows among many pending ({CLAIM_RUNS} claims each; mean / worst). SQLite: {}. PostgreSQL: {}.\n",
        dbs.sqlite_where(),
        dbs.pg_where()
    );
    println!(
        "{:<11} {:>10} {:>9} {:>9} {:>9}",
        "backend", "pending", "mean ms", "worst ms", "seed s"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for &n in &opts.claim_sizes {
        let db = dbs.sqlite().await?;
        let r = claim_figures(&db.url, n).await;
        dbs.release(db).await;
        let (seeded, mean, worst) = r?;
        println!(
            "{:<11} {n:>10} {:>9.2} {:>9.2} {:>9.1}",
            "SQLite",
            ms(mean),
            ms(worst),
            seeded.as_secs_f64()
        );
        let Some(db) = dbs.postgres().await? else {
            println!(
                "{:<11} {n:>10} skipped: {}",
                "PostgreSQL",
                dbs.no_pg.as_deref().unwrap_or("no server")
            );
            continue;
        };
        let r = claim_figures(&db.url, n).await;
        dbs.release(db).await;
        let (seeded, mean, worst) = r?;
        println!(
            "{:<11} {n:>10} {:>9.2} {:>9.2} {:>9.1}",
            "PostgreSQL",
            ms(mean),
            ms(worst),
            seeded.as_secs_f64()
        );
    }
    Ok(())
}

/// A bench section `--sections` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The Pareto table and plot (`--pareto-window`).
    Pareto,
    /// The scheduling targets of issue 13 (`--targets-window`).
    Targets,
    /// The least requests per confirmation any schedule on a cadence can
    /// reach for the targets' p99 (computed, no run).
    Bound,
    /// The load-level table, bulk, single and the naive baseline.
    Levels,
    /// First-check delay, idle and loaded RSS / CPU.
    Resources,
    /// SQLite and PostgreSQL, one and three daemons.
    Backends,
    /// Claim time among many pending rows (`--claim-sizes`).
    Claim,
    /// Three daemons on PostgreSQL killed at random, beside one on SQLite:
    /// the ceiling spent, fresh latency behind a backlog, time to final.
    Fleet,
    /// The HTTP API under load on SQLite and PostgreSQL while the daemon
    /// confirms: creates and reads per second, latency, errors.
    Api,
}

/// Parses `--sections`: comma-separated section names.
pub fn parse_sections(s: &str) -> Result<Vec<Section>, BenchError> {
    s.split(',')
        .map(|x| match x.trim() {
            "pareto" => Ok(Section::Pareto),
            "targets" => Ok(Section::Targets),
            "bound" => Ok(Section::Bound),
            "levels" => Ok(Section::Levels),
            "resources" => Ok(Section::Resources),
            "backends" => Ok(Section::Backends),
            "claim" => Ok(Section::Claim),
            "fleet" => Ok(Section::Fleet),
            "api" => Ok(Section::Api),
            other => Err(BenchError(format!(
                "{other:?} is not a section: pareto, targets, bound, levels, resources, backends, claim, fleet, api"
            ))),
        })
        .collect()
}

/// Parses a comma-separated list of row counts (empty: none).
pub fn parse_sizes(s: &str) -> Result<Vec<usize>, BenchError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .replace('_', "")
                .parse::<usize>()
                .ok()
                .filter(|v| *v >= CLAIM_BATCH)
                .ok_or_else(|| {
                    BenchError(format!(
                        "{x:?} is not a row count of at least {CLAIM_BATCH}"
                    ))
                })
        })
        .collect()
}

/// Parses a comma-separated list of rates.
pub fn parse_levels(s: &str) -> Result<Vec<f64>, BenchError> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| BenchError(format!("{x:?} is not a positive number")))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic on a bad fixture
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_refuse_nonsense() {
        assert_eq!(parse_levels("1, 2.5"), Ok(vec![1.0, 2.5]));
        assert_eq!(parse_levels(""), Ok(vec![]));
        assert!(parse_levels("0").is_err());
        assert!(parse_levels("x").is_err());
    }

    #[test]
    fn database_choices_parse_and_a_password_stays_out_of_errors_and_debug() {
        assert_eq!(parse_database("sqlite"), Ok(DatabaseChoice::Default));
        assert_eq!(parse_database("postgres"), Ok(DatabaseChoice::TempPostgres));
        assert_eq!(parse_database("pg"), Ok(DatabaseChoice::TempPostgres));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.db");
        assert_eq!(
            parse_database(&format!("sqlite://{}", file.display())),
            Ok(DatabaseChoice::SqliteAt(file.clone()))
        );
        std::fs::write(&file, b"").unwrap();
        assert!(parse_database(&format!("sqlite://{}", file.display())).is_err());
        let url = "postgres://app:S3cretPass@db/payments?sslmode=require";
        let ok = parse_database(url).unwrap();
        assert_eq!(ok, DatabaseChoice::Postgres(url.into()));
        assert!(!format!("{ok:?}").contains("S3cretPass"));
        let bad = parse_database("postgres://app:S3cretPass@db:port/x").unwrap_err();
        assert!(!bad.to_string().contains("S3cretPass"), "{bad}");
        assert!(parse_database("mysql://db/x").is_err());
        assert!(parse_database("sqlite://").is_err());
    }

    #[test]
    fn sizes_and_sections_parse_and_refuse_nonsense() {
        assert_eq!(
            parse_sizes("100_000, 1000000"),
            Ok(vec![100_000, 1_000_000])
        );
        assert_eq!(parse_sizes(""), Ok(vec![]));
        assert!(parse_sizes("10").is_err());
        assert!(parse_sizes("-5").is_err());
        assert_eq!(
            parse_sections("backends, claim"),
            Ok(vec![Section::Backends, Section::Claim])
        );
        assert_eq!(parse_sections("api"), Ok(vec![Section::Api]));
        assert_eq!(
            parse_fleet_rows("faults, sqlite"),
            Ok(vec![FleetRow::Faults, FleetRow::Sqlite])
        );
        assert!(parse_fleet_rows("mysql").is_err());
        assert!(parse_sections("everything").is_err());
    }

    #[test]
    fn proc_usage_reads_this_process() {
        let (rss, cpu) = proc_usage(std::process::id());
        assert!(rss > 0.0 && cpu >= 0.0);
    }
}
