//! The daemon on PostgreSQL where it differs by design (the behaviour it
//! shares with SQLite is one suite in tests/it/daemon.rs, run on both):
//! `config check` and `import` on PostgreSQL; a LISTENing application;
//! three daemon processes sharing one database while one is SIGKILLed and
//! restarted; two daemons riding out a server restart.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use test_support::cli::Child;

use bakong_poller::config::Settings;
use bakong_poller::simulator::{NewTransaction, OutcomeKind};
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::helpers::*;
use crate::pg;

const LIMIT: Duration = Duration::from_secs(20);

/// A simulator and a fresh, migrated PostgreSQL database, with the
/// merchant's own connection to it.
pub(crate) struct PgEnv {
    pub(crate) e: TestEnv,
    pub(crate) url: String,
    pub(crate) db: PgPool,
}

/// None: no PostgreSQL server binaries outside CI (tests/it/pg.rs).
pub(crate) async fn pg_env() -> Option<PgEnv> {
    let url = pg::database().await?;
    let e = env().await;
    let p = PgEnv {
        db: PgPool::connect(&url).await.unwrap(),
        url,
        e,
    };
    bakong_poller::app::open_store(&p.settings())
        .await
        .unwrap()
        .close()
        .await;
    Some(p)
}

impl PgEnv {
    pub(crate) fn settings(&self) -> Settings {
        let mut s = self.e.settings();
        s.database.url = self.url.clone();
        s
    }

    /// Registers a payment with the simulator and inserts it as a
    /// merchant's application would (text parameters, typed by the SQL).
    async fn payment(&self, amount: &str, currency: &str, t: NewTransaction) -> String {
        let md5 = self.register(amount, currency, t);
        sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES ($1, $2::numeric, $3)")
            .bind(&md5)
            .bind(amount)
            .bind(currency)
            .execute(&self.db)
            .await
            .unwrap();
        md5
    }

    pub(crate) fn register(&self, amount: &str, currency: &str, mut t: NewTransaction) -> String {
        let md5 = t.md5.clone().unwrap_or_else(new_md5);
        t.md5 = Some(md5.clone());
        t.amount = t.amount.or_else(|| amount.parse::<Decimal>().ok());
        t.currency = t.currency.or_else(|| currency.parse().ok());
        if t.to_account.is_none() {
            t.to_account = Some(ACCOUNT.into());
        }
        self.e.sim.sim.add_transaction(t).unwrap();
        md5
    }

    pub(crate) async fn status(&self, md5: &str) -> String {
        sqlx::query_scalar("SELECT status FROM payments WHERE md5 = $1")
            .bind(md5)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    async fn final_status(&self, md5: &str, limit: Duration) -> String {
        wait_for(&format!("{md5} to leave pending"), limit, || async {
            let s = self.status(md5).await;
            (s != "pending").then_some(s)
        })
        .await
    }

    pub(crate) async fn count(&self, status: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = $1")
            .bind(status)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// An audit trail written by a trigger in the same transaction as each
    /// status change, as an auditor would add it.
    async fn audit(&self) {
        sqlx::raw_sql(
            "CREATE TABLE audit (md5 text, old text, new text);
             CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.status IS DISTINCT FROM OLD.status THEN
                     INSERT INTO audit VALUES (NEW.md5, OLD.status, NEW.status);
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER audit AFTER UPDATE ON payments
                 FOR EACH ROW EXECUTE FUNCTION audit();",
        )
        .execute(&self.db)
        .await
        .unwrap();
    }

    /// Status changes per md5, from the audit trail.
    async fn changes(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT md5, count(*) FROM audit GROUP BY md5 ORDER BY md5")
            .fetch_all(&self.db)
            .await
            .unwrap()
    }
}

// ---- The binary: config check, import, several daemons ----

fn run_cli(cfg: &Path, args: &[&str]) -> Out {
    bin!().config(cfg).args(args).output()
}

/// A config file for `s` in its own file (several daemons, several files).
pub(crate) fn config_at(p: &PgEnv, s: &Settings, name: &str) -> PathBuf {
    let written = p.e.config_file(s, "");
    let path = p.e.dir.path().join(name);
    std::fs::rename(written, &path).unwrap();
    path
}

#[tokio::test]
async fn config_check_on_postgres_reports_pending_migrations_then_passes() {
    let Some(url) = pg::database().await else {
        return;
    };
    let e = env().await;
    let mut s = e.settings();
    s.database.url = url.clone();
    let cfg = e.config_file(&s, "");
    // Not migrated yet: run applies the migrations, so a warning.
    let out = run_cli(&cfg, &["config", "check"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let all = out.text();
    assert!(
        all.contains("warning: database.url") && all.contains("not applied yet"),
        "{all}"
    );
    let out = run_cli(&cfg, &["migrate"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let out = run_cli(&cfg, &["--json", "config", "check"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let v = out.json();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");

    // Someone else's payments table where ours would go: a problem naming
    // the way out.
    let other = pg::database().await.unwrap();
    let admin = PgPool::connect(&other).await.unwrap();
    sqlx::query("CREATE TABLE payments (order_no int)")
        .execute(&admin)
        .await
        .unwrap();
    s.database.url = other;
    let cfg = e.config_file(&s, "");
    let out = run_cli(&cfg, &["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(out.text().contains("search_path"), "{}", out.text());
}

#[tokio::test]
async fn config_check_names_an_unreachable_postgres_server_without_its_password() {
    let e = env().await;
    let mut s = e.settings();
    s.database.url = format!(
        "postgres://shop:S3cretPass@localhost/shop?host={}",
        e.dir.path().display()
    );
    let cfg = e.config_file(&s, "");
    let out = run_cli(&cfg, &["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.text());
    let all = out.text();
    assert!(
        all.contains("database.url") && all.contains("cannot reach"),
        "{all}"
    );
    assert!(!all.contains("S3cretPass"), "{all}");
    // A URL PostgreSQL cannot read is refused before any connection.
    s.database.url = "postgres://shop@localhost/shop?sslmode=sometimes".into();
    let cfg = e.config_file(&s, "");
    let out = run_cli(&cfg, &["config", "check"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        out.text().contains("not a usable PostgreSQL URL"),
        "{}",
        out.text()
    );
}

#[tokio::test]
async fn import_copies_a_sqlite_database_into_postgres_once() {
    let Some(p) = pg_env().await else {
        return;
    };
    // The old SQLite database, with its daemon's results.
    let mut old = p.e.settings();
    old.database.url = format!("sqlite://{}", p.e.db_path().display());
    let sqlite = p.e.merchant(&old).await;
    let mut md5s = Vec::new();
    for _ in 0..5 {
        md5s.push(p.e.payment(&sqlite, "1.25", "USD", paid_after(0)).await);
    }
    let d = start(old.clone());
    for md5 in &md5s {
        assert_eq!(final_status(&sqlite, md5, LIMIT).await, "paid");
    }
    d.stop().await;
    // Still pending when the merchant moves over.
    let waiting = p.e.payment(&sqlite, "4000", "KHR", paid_after(0)).await;
    sqlite.close().await;

    let cfg = p.e.config_file(&p.settings(), "");
    let from = format!("sqlite://{}", p.e.db_path().display());
    let out = run_cli(&cfg, &["--json", "import", "--from", &from]);
    assert_eq!(out.code, 0, "{}", out.text());
    let v = out.json();
    assert_eq!(
        (v["read"].as_u64(), v["copied"].as_u64()),
        (Some(6), Some(6)),
        "{v}"
    );
    // Twice: nothing copied twice.
    let out = run_cli(&cfg, &["--json", "import", "--from", &from]);
    assert_eq!(out.code, 0, "{}", out.text());
    let v = out.json();
    assert_eq!(
        (v["copied"].as_u64(), v["already_there"].as_u64()),
        (Some(0), Some(6)),
        "{v}"
    );
    assert_eq!(p.count("paid").await, 5);
    let hash: Option<String> =
        sqlx::query_scalar("SELECT bakong_hash FROM payments WHERE md5 = $1")
            .bind(&md5s[0])
            .fetch_one(&p.db)
            .await
            .unwrap();
    assert_eq!(hash.map(|h| h.len()), Some(64));
    // The operator commands read PostgreSQL the same way.
    let out = run_cli(&cfg, &["--json", "status"]);
    assert_eq!(out.code, 0, "{}", out.text());
    let v = out.json();
    assert_eq!(v.to_string().matches(r#""paid":5"#).count(), 1, "{v}");
    let out = run_cli(&cfg, &["--json", "list", "--status", "pending"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(out.stdout.contains(&waiting), "{}", out.text());
    // The pending row carries on under a daemon on PostgreSQL.
    let d = start(p.settings());
    assert_eq!(p.final_status(&waiting, LIMIT).await, "paid");
    d.stop().await;

    // Into SQLite, or from something else: usage errors naming the key.
    let sqlite_cfg = p.e.config_file(&old, "");
    let out = run_cli(&sqlite_cfg, &["import", "--from", &from]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(out.text().contains("database.url"), "{}", out.text());
    let out = run_cli(&cfg, &["import", "--from", "sqlite:///nonexistent/p.db"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(out.text().contains("--from"), "{}", out.text());
}

pub(crate) fn spawn_daemon(cfg: &Path, log: &Path) -> Child {
    bin!()
        .config(cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
}

pub(crate) fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// A small seeded generator, so a failing kill schedule can be replayed
/// (the seed is printed; BAKONG_TEST_SEED sets it).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_share_one_postgres_database_through_kills_and_write_each_status_once() {
    let Some(p) = pg_env().await else {
        return;
    };
    p.audit().await;
    let seed = std::env::var("BAKONG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u64>() % 1_000_000);
    let mut rng = Lcg(seed);
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    // The ceiling of the three together (tests/it/gate_shared.rs holds it
    // under demand above it).
    s.poller.max_requests_per_second = 60.0;
    s.poller.concurrency = 8;
    let cfgs: Vec<PathBuf> = (0..3)
        .map(|i| config_at(&p, &s, &format!("daemon{i}.toml")))
        .collect();

    // 300 payments, mixed: paid now or later, mismatched, failed, never.
    let mut expected = Vec::new();
    for i in 0..300u64 {
        let (t, status, short) = match i % 6 {
            0 | 1 => (paid_after(rng.next(3_000)), "paid", false),
            2 => (
                NewTransaction {
                    paid_amount: Some(Decimal::new(99, 2)),
                    ..paid_after(rng.next(2_000))
                },
                "mismatch",
                false,
            ),
            3 => (
                NewTransaction {
                    outcome: OutcomeKind::Failed,
                    ..paid_after(0)
                },
                "failed",
                true,
            ),
            4 => (
                NewTransaction {
                    outcome: OutcomeKind::Never,
                    ..paid_after(0)
                },
                "expired",
                true,
            ),
            _ => (paid_after(0), "paid", false),
        };
        let md5 = p.register("1", "USD", t);
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at)
             VALUES ($1, 1, 'USD', CASE WHEN $2 THEN now() + interval '4 seconds' END)",
        )
        .bind(&md5)
        .bind(short)
        .execute(&p.db)
        .await
        .unwrap();
        expected.push((md5, status));
    }

    let log = |i: usize, run: usize| p.e.dir.path().join(format!("daemon{i}-{run}.log"));
    let mut children: Vec<Child> = (0..3).map(|i| spawn_daemon(&cfgs[i], &log(i, 0))).collect();
    // Kill one daemon at a time at seeded moments once the work has begun
    // (a daemon on PostgreSQL waits a heartbeat before it sends), restarting
    // it at once.
    wait_for(
        "the first final status",
        Duration::from_secs(20),
        || async { (p.count("pending").await < 300).then_some(()) },
    )
    .await;
    let mut schedule = Vec::new();
    for run in 1..=3 {
        let after = 300 + rng.next(900);
        let victim = rng.next(3) as usize;
        schedule.push((after, victim));
        tokio::time::sleep(Duration::from_millis(after)).await;
        signal(&children[victim], nix::sys::signal::Signal::SIGKILL);
        children[victim].wait().unwrap();
        children[victim] = spawn_daemon(&cfgs[victim], &log(victim, run));
    }
    eprintln!("seed {seed}: kill schedule (ms after the previous, daemon) {schedule:?}");
    let pending_after_kills = p.count("pending").await;
    assert!(
        pending_after_kills > 0,
        "the kills came after the work was done (seed {seed})"
    );

    wait_for("every payment final", Duration::from_secs(40), || async {
        (p.count("pending").await == 0).then_some(())
    })
    .await;
    for c in &mut children {
        signal(c, nix::sys::signal::Signal::SIGTERM);
    }
    for c in &mut children {
        assert_eq!(c.wait().unwrap().code(), Some(0), "seed {seed}");
    }
    for (md5, want) in &expected {
        assert_eq!(p.status(md5).await, *want, "{md5}, seed {seed}");
    }
    let changes = p.changes().await;
    assert_eq!(changes.len(), 300, "seed {seed}");
    assert!(
        changes.iter().all(|(_, n)| *n == 1),
        "a status changed twice (seed {seed}): {:?}",
        changes.iter().filter(|(_, n)| *n != 1).collect::<Vec<_>>()
    );
    // Every daemon process wrote final statuses (one log line each).
    let mut finals_per_daemon = [0usize; 3];
    for (i, n) in finals_per_daemon.iter_mut().enumerate() {
        for run in 0..=3 {
            if let Ok(text) = std::fs::read_to_string(log(i, run)) {
                *n += text.matches("\"message\":\"payment ").count();
            }
        }
    }
    let peak = p.e.sim.sim.stats().peak_rps;
    eprintln!("final status log lines per daemon: {finals_per_daemon:?}; {pending_after_kills} pending after the last kill; peak {peak} requests in one second");
    assert!(
        peak <= 72,
        "more than 20% over the shared ceiling of 60: {peak}"
    );
    assert!(
        finals_per_daemon.iter().all(|n| *n > 0),
        "a daemon did no work: {finals_per_daemon:?}"
    );
    // A daemon killed between its commit and its log line logs one less.
    assert!(
        finals_per_daemon.iter().sum::<usize>() <= 300,
        "a final status was announced twice: {finals_per_daemon:?}"
    );
}

#[tokio::test]
async fn a_listening_application_hears_each_final_status_once_from_the_daemons() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut listener = sqlx::postgres::PgListener::connect(&p.url).await.unwrap();
    listener.listen("bakong_payments").await.unwrap();
    let s = p.settings();
    let (d1, d2) = (start(s.clone()), start(s));
    let mut want = std::collections::HashMap::new();
    for i in 0..30 {
        let (t, status) = if i % 3 == 0 {
            (
                NewTransaction {
                    outcome: OutcomeKind::Never,
                    ..paid_after(0)
                },
                "expired",
            )
        } else {
            (paid_after(i * 20), "paid")
        };
        let md5 = p.register("1", "USD", t);
        // The merchant inserts; expired ones get a short life.
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at)
             VALUES ($1, 1, 'USD', CASE WHEN $2 THEN now() + interval '1 second' END)",
        )
        .bind(&md5)
        .bind(status == "expired")
        .execute(&p.db)
        .await
        .unwrap();
        want.insert(md5, status);
    }
    let mut heard = std::collections::HashMap::new();
    while heard.len() < want.len() {
        let n = tokio::time::timeout(LIMIT, listener.recv())
            .await
            .expect("a notification for each payment")
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        let md5 = v["md5"].as_str().unwrap().to_string();
        assert_eq!(
            n.payload(),
            format!(r#"{{"md5": "{md5}", "status": "{}"}}"#, want[&md5]),
            "the exact payload"
        );
        assert!(
            heard.insert(md5, ()).is_none(),
            "announced twice: {}",
            n.payload()
        );
    }
    d1.stop().await;
    d2.stop().await;
    // Nothing announced after the last status: not a quiet window but a
    // sentinel sent after the daemons stopped, which arrives after anything
    // they sent (notifications are delivered in commit order).
    sqlx::query("SELECT pg_notify('bakong_payments', 'sentinel')")
        .execute(&p.db)
        .await
        .unwrap();
    let next = tokio::time::timeout(LIMIT, listener.recv())
        .await
        .expect("the sentinel")
        .unwrap();
    assert_eq!(next.payload(), "sentinel", "an extra notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_ride_out_a_database_server_restart_logging_one_error_each() {
    if pg::cluster().await.is_none() {
        return;
    }
    // Its own cluster: stopping the shared one would break other tests.
    let cluster = tokio::task::spawn_blocking(test_support::pg_cluster::TempCluster::start)
        .await
        .unwrap()
        .unwrap();
    let url = cluster.create_database().await.unwrap();
    let e = env().await;
    let p = PgEnv {
        db: PgPool::connect(&url).await.unwrap(),
        url,
        e,
    };
    bakong_poller::app::open_store(&p.settings())
        .await
        .unwrap()
        .close()
        .await;
    p.audit().await;
    let s = p.settings();
    let cfgs: Vec<PathBuf> = (0..2)
        .map(|i| config_at(&p, &s, &format!("daemon{i}.toml")))
        .collect();
    let mut md5s = Vec::new();
    for i in 0..60 {
        md5s.push(p.payment("1", "USD", paid_after(i * 100)).await);
    }
    let logs: Vec<PathBuf> = (0..2)
        .map(|i| p.e.dir.path().join(format!("daemon{i}.log")))
        .collect();
    let mut children: Vec<Child> = (0..2).map(|i| spawn_daemon(&cfgs[i], &logs[i])).collect();
    wait_for("some payments confirmed", LIMIT, || async {
        (p.count("paid").await >= 5).then_some(())
    })
    .await;
    // Stopped for a few seconds (the outage itself, not a wait for
    // anything), then started again on the same socket.
    let paid_before = p.count("paid").await;
    cluster.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Each daemon went round during the outage and met it (its one error
    // line), so "still running" below is not vacuous.
    wait_for("each daemon to meet the outage", LIMIT, || async {
        logs.iter()
            .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains("claim failed")))
            .then_some(())
    })
    .await;
    for c in &mut children {
        assert!(
            c.try_wait().unwrap().is_none(),
            "a daemon exited while the server was down"
        );
    }
    cluster.start_again().unwrap();
    let db = PgPool::connect(&p.url).await.unwrap();
    let p = PgEnv { db, ..p };
    assert!(paid_before < 60, "the restart came after the work was done");
    for md5 in &md5s {
        assert_eq!(p.final_status(md5, LIMIT).await, "paid");
    }
    for c in &mut children {
        signal(c, nix::sys::signal::Signal::SIGTERM);
    }
    for c in &mut children {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
    let changes = p.changes().await;
    assert_eq!(changes.len(), 60);
    assert!(changes.iter().all(|(_, n)| *n == 1), "{changes:?}");
    for log in &logs {
        let text = std::fs::read_to_string(log).unwrap();
        let claim_errors = text.matches("claim failed").count();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("\"ERROR\"")).collect();
        eprintln!(
            "{}: {} error line(s): {errors:#?}",
            log.display(),
            errors.len()
        );
        assert_eq!(claim_errors, 1, "one claim error per outage: {errors:#?}");
        assert!(text.contains("database reachable again"), "{text}");
        // Not one per row or per scan: a few results in hand may fail too.
        assert!(errors.len() <= 4, "{errors:#?}");
    }
    p.db.close().await;
}
