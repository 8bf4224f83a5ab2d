//! Spawn helpers: a simulator on 127.0.0.1, fast settings, an in-process
//! daemon, a merchant's own connection, and waiting with a deadline.
//! They panic on failure: they run inside tests.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bakong_poller::app::{self, AppError};
use bakong_poller::config::{BulkMode, Settings};
use bakong_poller::poller;
use bakong_simulator::{self as simulator, NewTransaction, Scenario, SimHandle};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const EMAIL: &str = "shop@example.com";
pub const ACCOUNT: &str = "shop@devb";

/// A simulator, a temporary directory and a token.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub sim: SimHandle,
    pub token: String,
}

pub async fn env() -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator::spawn(
        ([127, 0, 0, 1], 0).into(),
        &Scenario::default(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let token = sim.sim.issue_token(EMAIL);
    TestEnv { dir, sim, token }
}

impl TestEnv {
    /// Settings with millisecond durations against this simulator.
    pub fn settings(&self) -> Settings {
        let mut s = app::local_settings(self.dir.path(), &self.sim.base_url(), &self.token);
        s.bakong.email = Some(EMAIL.into());
        s.bakong.account_id = None;
        s.bakong.timeout = Duration::from_millis(500);
        s.bakong.renew_before = Duration::from_secs(1);
        let p = &mut s.poller;
        p.max_requests_per_second = 200.0;
        p.concurrency = 8;
        p.scan_interval = Duration::from_millis(20);
        p.fresh_interval = Duration::from_millis(50);
        p.fresh_period = Duration::from_secs(10);
        p.max_interval = Duration::from_millis(200);
        p.jitter = 0.1;
        p.lease = Duration::from_secs(2);
        p.error_backoff_min = Duration::from_millis(20);
        p.error_backoff_max = Duration::from_millis(200);
        p.rate_backoff_min = Duration::from_millis(100);
        p.rate_backoff_max = Duration::from_secs(1);
        p.renew_retry = Duration::from_millis(100);
        p.payment_ttl = Duration::from_secs(30);
        p.expiry_grace = Duration::from_millis(100);
        p.summary_interval = Duration::from_millis(300);
        // Single lookups unless a test asks for bulk (tests/it/bulk.rs).
        p.bulk = BulkMode::Never;
        p.bulk_retry = Duration::from_millis(500);
        p.cadence = Duration::from_millis(100);
        s
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("payments.db")
    }

    /// The same settings as a TOML file, for the binary.
    pub fn config_file(&self, s: &Settings, extra: &str) -> PathBuf {
        let d = |d: Duration| format!("\"{}ms\"", d.as_millis());
        let p = &s.poller;
        let text = format!(
            "[database]\nurl = \"{}\"\n\n[bakong]\nbase_url = \"{}\"\nemail = \"{}\"\ntoken = \"{}\"\ntoken_file = \"{}\"\ntimeout = {}\nrenew_before = {}\n\n[poller]\nmax_requests_per_second = {:?}\nconcurrency = {}\nscan_interval = {}\nfresh_interval = {}\nfresh_period = {}\nmax_interval = {}\nlease = {}\nerror_backoff_min = {}\nerror_backoff_max = {}\nrate_backoff_min = {}\nrate_backoff_max = {}\npayment_ttl = {}\nexpiry_grace = {}\nsummary_interval = {}\nbulk = \"{}\"\nbulk_retry = {}\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n{extra}",
            s.database.url,
            s.bakong.base_url,
            EMAIL,
            self.token,
            s.bakong.token_file.display(),
            d(s.bakong.timeout),
            d(s.bakong.renew_before),
            p.max_requests_per_second,
            p.concurrency,
            d(p.scan_interval),
            d(p.fresh_interval),
            d(p.fresh_period),
            d(p.max_interval),
            d(p.lease),
            d(p.error_backoff_min),
            d(p.error_backoff_max),
            d(p.rate_backoff_min),
            d(p.rate_backoff_max),
            d(p.payment_ttl),
            d(p.expiry_grace),
            d(p.summary_interval),
            format!("{:?}", p.bulk).to_lowercase(),
            d(p.bulk_retry),
        );
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A merchant's own connection (5 s busy timeout), after migrating.
    pub async fn merchant(&self, s: &Settings) -> SqlitePool {
        app::open_store(s).await.unwrap().close().await;
        let opts = SqliteConnectOptions::new()
            .filename(self.db_path())
            .busy_timeout(Duration::from_secs(5));
        SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .unwrap()
    }

    /// Registers a payment with the simulator and inserts it as a merchant.
    pub async fn payment(
        &self,
        db: &SqlitePool,
        amount: &str,
        currency: &str,
        t: NewTransaction,
    ) -> String {
        let md5 = t.md5.clone().unwrap_or_else(new_md5);
        let mut t = t;
        t.md5 = Some(md5.clone());
        t.amount = t.amount.or_else(|| amount.parse::<Decimal>().ok());
        t.currency = t.currency.or_else(|| currency.parse().ok());
        if t.to_account.is_none() {
            t.to_account = Some(ACCOUNT.into());
        }
        self.sim.sim.add_transaction(t).unwrap();
        sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, ?3)")
            .bind(&md5)
            .bind(amount)
            .bind(currency)
            .execute(db)
            .await
            .unwrap();
        md5
    }
}

pub fn new_md5() -> String {
    bakong_poller::khqr::md5_hex(&format!("payment-{}", rand::random::<u64>()))
}

pub fn paid_after(ms: u64) -> NewTransaction {
    NewTransaction {
        after: Duration::from_millis(ms),
        ..NewTransaction::default()
    }
}

/// An in-process daemon.
pub struct Daemon {
    stop: CancellationToken,
    join: JoinHandle<Result<(), AppError>>,
}

pub fn start(s: Settings) -> Daemon {
    let stop = CancellationToken::new();
    let join = tokio::spawn(bakong_poller::daemon::run(
        s,
        stop.clone(),
        Arc::new(poller::NoObserver),
    ));
    Daemon { stop, join }
}

impl Daemon {
    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.join)
            .await
            .expect("daemon stops within 10 s")
            .expect("daemon task")
            .expect("daemon ends without error");
    }
}

/// Polls `f` every 20 ms until it yields `Some`, or panics after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn status(db: &SqlitePool, md5: &str) -> String {
    sqlx::query_scalar("SELECT status FROM payments WHERE md5 = ?1")
        .bind(md5)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Waits until the payment leaves `pending`; returns its final status.
pub async fn final_status(db: &SqlitePool, md5: &str, limit: Duration) -> String {
    wait_for(&format!("{md5} to leave pending"), limit, || async {
        let s = status(db, md5).await;
        (s != "pending").then_some(s)
    })
    .await
}

pub async fn count(db: &SqlitePool, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = ?1")
        .bind(status)
        .fetch_one(db)
        .await
        .unwrap()
}

/// The daemon's bookkeeping of a payment, read through the store interface
/// (the columns are not part of the public contract).
pub async fn bookkeeping(s: &Settings, md5: &str) -> bakong_poller::store::Bookkeeping {
    let store = bakong_poller::store::Store::connect(&s.database.url, Duration::from_secs(5))
        .await
        .unwrap();
    let b = store.bookkeeping(md5).await.unwrap().unwrap();
    store.close().await;
    b
}
