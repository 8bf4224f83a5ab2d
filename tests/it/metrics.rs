//! `[metrics] listen`: `/metrics` scraped and parsed during a run against
//! the simulator, its figures checked against the simulator's counts and
//! the table; the names the dashboard and the alert rules use; `/healthz`
//! while another connection holds SQLite's write lock; no listener when
//! the section is unset.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bakong_poller::app::AppError;
use bakong_poller::config::{BulkMode, Settings};
use bakong_poller::poller::{self, Observer};
use bakong_simulator::{Faults, NewTransaction, OutcomeKind, RetryAfterMode};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::ConnectOptions;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

/// Learns where the metrics listener was bound (the tests ask for port 0).
#[derive(Default)]
struct Bound(Mutex<Option<SocketAddr>>);

impl Observer for Bound {
    fn listening(&self, addr: SocketAddr) {
        *self.0.lock().unwrap() = Some(addr);
    }
}

struct Running {
    stop: CancellationToken,
    join: JoinHandle<Result<(), AppError>>,
    addr: SocketAddr,
}

async fn start_with_metrics(mut s: Settings) -> Running {
    s.metrics.listen = Some("127.0.0.1:0".into());
    let bound = Arc::new(Bound::default());
    let stop = CancellationToken::new();
    let join = tokio::spawn(bakong_poller::daemon::run(s, stop.clone(), bound.clone()));
    let addr = wait_for("the metrics listener", LIMIT, || {
        let a = *bound.0.lock().unwrap();
        async move { a }
    })
    .await;
    Running { stop, join, addr }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.join)
            .await
            .expect("daemon stops within 10 s")
            .expect("daemon task")
            .expect("daemon ends without error");
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let (code, text) = self.get("/metrics").await;
        assert_eq!(code, 200, "{text}");
        parse(&text)
    }
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Scrape {
    samples: Vec<Sample>,
    /// Families declared by HELP and TYPE, with or without samples.
    families: HashSet<String>,
}

impl Scrape {
    /// Sample names, and the families declared (a gauge such as
    /// `bakong_poller_api_problem` has samples only while it applies).
    fn names(&self) -> HashSet<&str> {
        self.samples
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.families.iter().map(String::as_str))
            .collect()
    }

    /// The sum of the samples called `name` whose labels include `with`.
    fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn one(&self, name: &str) -> f64 {
        let found: Vec<&Sample> = self.samples.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one sample of {name}: {found:?}");
        found[0].value
    }
}

/// Parses the Prometheus text format strictly enough to catch a malformed
/// exposition: every sample belongs to a family with HELP and TYPE, names
/// and label sets are well formed, values are numbers.
fn parse(text: &str) -> Scrape {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut it = rest.splitn(3, ' ');
            let (kw, name, what) = (it.next().unwrap(), it.next().unwrap(), it.next());
            match kw {
                "HELP" => {
                    helped.insert(name.to_string());
                }
                "TYPE" => {
                    let kind = what.unwrap();
                    assert!(
                        ["counter", "gauge", "histogram"].contains(&kind),
                        "type {kind} in {line:?}"
                    );
                    typed.insert(name.to_string(), kind.to_string());
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("labels end"))),
            None => (series, BTreeMap::new()),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "metric name in {line:?}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        assert!(
            typed.contains_key(family) && helped.contains(family),
            "no HELP/TYPE for {family} ({line:?})"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    assert!(!samples.is_empty(), "an empty scrape");
    Scrape {
        samples,
        families: typed.into_keys().collect(),
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {key:?}"
        );
        out.insert(key.to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

/// Registers a transaction and inserts its payment expiring in `secs`.
async fn expiring(e: &TestEnv, db: &SqlitePool, outcome: OutcomeKind, secs: i64) -> String {
    let md5 = new_md5();
    e.sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(md5.clone()),
            amount: Some(Decimal::new(100, 2)),
            currency: "USD".parse().ok(),
            to_account: Some(ACCOUNT.into()),
            outcome,
            ..NewTransaction::default()
        })
        .unwrap();
    sqlx::query(
        "INSERT INTO payments (md5, amount, currency, expires_at) VALUES (?1, '1.00', 'USD', datetime('now', ?2))",
    )
    .bind(&md5)
    .bind(format!("+{secs} seconds"))
    .execute(db)
    .await
    .unwrap();
    md5
}

#[tokio::test]
async fn a_scrape_during_a_run_parses_and_once_idle_agrees_with_the_simulator_and_the_table() {
    let e = env().await;
    let mut s = e.settings();
    // Bulk, so the md5s-per-request histogram sees requests too.
    s.poller.bulk = BulkMode::Always;
    s.poller.bulk_flush = Duration::from_millis(100);
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        force_429: 2,
        force_429_retry_after: RetryAfterMode::Seconds,
        force_429_secs: Some(1),
        ..Faults::default()
    });
    let d = start_with_metrics(s).await;
    for i in 0..6 {
        e.payment(&db, "2.50", "USD", paid_after(200 * i)).await;
    }
    for _ in 0..2 {
        e.payment(
            &db,
            "1.00",
            "USD",
            NewTransaction {
                paid_amount: Some(Decimal::new(50, 2)),
                ..paid_after(100)
            },
        )
        .await;
    }
    expiring(&e, &db, OutcomeKind::Never, 2).await;
    expiring(&e, &db, OutcomeKind::Failed, 2).await;

    // During the run: the scrape parses and shows payments pending.
    let during = d.scrape().await;
    assert!(during.one("bakong_poller_payments_pending") >= 1.0);
    assert_eq!(
        during.sum(
            "bakong_poller_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    wait_for("every payment to be decided", LIMIT, || async {
        (count(&db, "pending").await == 0).then_some(())
    })
    .await;
    // Idle: the request counters agree with what the simulator counted.
    let idle = wait_for(
        "the counters to agree with the simulator",
        LIMIT,
        || async {
            let m = d.scrape().await;
            let stats = e.sim.sim.stats();
            let requests = m.sum("bakong_poller_api_requests_total", &[]);
            let limited = m.sum(
                "bakong_poller_api_requests_total",
                &[("outcome", "rate_limited")],
            );
            (requests == stats.total as f64 && limited == stats.rate_limited as f64).then_some(m)
        },
    )
    .await;
    assert_eq!(e.sim.sim.stats().rate_limited, 2);
    assert!(idle.one("bakong_poller_gate_retry_after_seconds_total") >= 1.0);
    // Finalized by status agrees with the table.
    for status in ["paid", "mismatch", "failed", "expired"] {
        assert_eq!(
            idle.sum(
                "bakong_poller_payments_finalized_total",
                &[("status", status)]
            ),
            count(&db, status).await as f64,
            "{status}"
        );
    }
    assert_eq!(count(&db, "paid").await, 6);
    assert_eq!(count(&db, "mismatch").await, 2);
    assert_eq!(idle.one("bakong_poller_payments_pending"), 0.0);
    assert_eq!(idle.one("bakong_poller_payments_overdue"), 0.0);
    assert_eq!(idle.one("bakong_poller_oldest_pending_age_seconds"), 0.0);
    // Histograms have observations: one confirmation each way per payment
    // Bakong reported, requests, and md5s per list request.
    for from in ["created", "paid"] {
        assert_eq!(
            idle.sum(
                "bakong_poller_confirmation_seconds_count",
                &[("from", from)]
            ),
            8.0,
            "{from}"
        );
    }
    let requests = idle.sum("bakong_poller_api_requests_total", &[]);
    assert_eq!(
        idle.sum("bakong_poller_api_request_seconds_count", &[]),
        requests
    );
    assert!(idle.sum("bakong_poller_api_request_seconds_sum", &[]) > 0.0);
    assert!(idle.one("bakong_poller_bulk_request_md5s_count") >= 1.0);
    assert!(
        idle.sum(
            "bakong_poller_api_requests_total",
            &[
                ("endpoint", "check_transaction_by_md5_list"),
                ("outcome", "ok")
            ]
        ) >= 1.0
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(idle.one("bakong_poller_token_expiry_timestamp_seconds") > now);
    assert!(idle.one("bakong_poller_last_api_answer_timestamp_seconds") > now - 60.0);
    assert_eq!(idle.one("bakong_poller_database_up"), 1.0);
    assert_eq!(
        idle.one("bakong_poller_gate_ceiling_requests_per_second"),
        200.0
    );
    assert!(idle.one("bakong_poller_gate_requests_per_second") > 0.0);
    d.stop().await;
}

#[tokio::test]
async fn a_scraper_asking_for_openmetrics_gets_it() {
    let e = env().await;
    let s = e.settings();
    let d = start_with_metrics(s).await;
    let r = reqwest::Client::new()
        .get(format!("http://{}/metrics", d.addr))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    let text = r.text().await.unwrap();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    d.stop().await;
}

/// Every `bakong_poller_...` name written in `text`.
fn metric_names(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("bakong_poller_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alert_rules_name_appears_in_a_scrape() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dashboard = std::fs::read_to_string(dir.join("grafana-dashboard.json")).unwrap();
    let rules = std::fs::read_to_string(dir.join("prometheus-alerts.yml")).unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let mut wanted = metric_names(&dashboard);
    let in_rules = metric_names(&rules);
    assert!(in_rules.len() >= 3, "{in_rules:?}");
    wanted.extend(in_rules);

    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let d = start_with_metrics(s).await;
    let md5 = e.payment(&db, "1.00", "USD", paid_after(0)).await;
    final_status(&db, &md5, LIMIT).await;
    let m = d.scrape().await;
    let names = m.names();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(missing.is_empty(), "not in the scrape: {missing:?}");
    d.stop().await;
}

#[tokio::test]
async fn healthz_turns_503_while_another_connection_holds_the_write_lock_past_busy_timeout_and_200_after(
) {
    let e = env().await;
    let mut s = e.settings();
    s.database.busy_timeout = Duration::from_millis(300);
    e.merchant(&s).await.close().await;
    let d = start_with_metrics(s).await;
    wait_for("/healthz 200", LIMIT, || async {
        (d.get("/healthz").await == (200, "ok\n".into())).then_some(())
    })
    .await;

    // Another connection takes the write lock and keeps it.
    let mut other = SqliteConnectOptions::new()
        .filename(e.db_path())
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let why = wait_for("/healthz 503", LIMIT, || async {
        let (code, body) = d.get("/healthz").await;
        (code == 503).then_some(body)
    })
    .await;
    assert!(why.contains("database"), "{why}");
    assert_eq!(why.lines().count(), 1, "{why:?}");
    assert_eq!(d.scrape().await.one("bakong_poller_database_up"), 0.0);

    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    wait_for("/healthz 200 again", LIMIT, || async {
        (d.get("/healthz").await.0 == 200).then_some(())
    })
    .await;
    assert_eq!(d.scrape().await.one("bakong_poller_database_up"), 1.0);
    d.stop().await;
}

/// Listening TCP sockets held by process `pid` (its fds matched against
/// the kernel's socket tables).
fn listening_sockets(pid: u32) -> usize {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().to_string();
            if let Some(i) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; column 9 the socket's inode.
            if cols.get(3) == Some(&"0A") && cols.get(9).is_some_and(|i| inodes.contains(*i)) {
                n += 1;
            }
        }
    }
    n
}

/// Runs the binary on its own database until a payment is confirmed, and
/// counts its listening sockets.
async fn listeners_of_a_running_daemon(extra: &str) -> usize {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let cfg = e.config_file(&s, extra);
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_async();
    let md5 = e.payment(&db, "1.00", "USD", paid_after(0)).await;
    assert_eq!(final_status(&db, &md5, LIMIT).await, "paid");
    let n = listening_sockets(child.id().unwrap());
    child.kill().await.unwrap();
    n
}

#[tokio::test]
async fn nothing_listens_when_metrics_is_unset() {
    assert_eq!(listeners_of_a_running_daemon("").await, 0);
    // The same count finds the listener when the section is set.
    assert_eq!(
        listeners_of_a_running_daemon("\n[metrics]\nlisten = \"127.0.0.1:0\"\n").await,
        1
    );
}

#[test]
fn a_listen_value_that_is_not_an_ip_and_port_is_refused_naming_the_key() {
    for bad in ["localhost:9464", "9464", "127.0.0.1", " 127.0.0.1:9464"] {
        let mut s = Settings::default();
        s.metrics.listen = Some(bad.into());
        let e = s.validate().expect_err(bad);
        assert_eq!(e.key.as_deref(), Some("metrics.listen"), "{bad}");
        assert!(e.message.contains("127.0.0.1:9464"), "{}", e.message);
    }
    let mut s = Settings::default();
    s.metrics.listen = Some("[::1]:9464".into());
    s.validate().unwrap();
    assert!(s.warnings().iter().all(|w| w.key != "metrics.listen"));
    s.metrics.listen = Some("0.0.0.0:9464".into());
    assert!(s.warnings().iter().any(|w| w.key == "metrics.listen"));
}

#[tokio::test]
async fn a_port_in_use_stops_the_start_naming_the_key() {
    let e = env().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut s = e.settings();
    s.metrics.listen = Some(taken.local_addr().unwrap().to_string());
    let err = bakong_poller::daemon::run(s, CancellationToken::new(), Arc::new(poller::NoObserver))
        .await
        .expect_err("the port is taken");
    assert!(err.to_string().contains("metrics.listen"), "{err}");
}

#[tokio::test]
async fn overdue_counts_pending_rows_past_their_deadline_and_grace_only() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let insert = |md5: String, expires: Option<&'static str>, created: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(
                "INSERT INTO payments (md5, amount, currency, expires_at, created_at) VALUES (?1, '1', 'KHR', datetime('now', ?2), datetime('now', ?3))",
            )
            .bind(md5)
            .bind(expires)
            .bind(created)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    // Past expires_at + grace (10 s): overdue.
    insert(new_md5(), Some("-20 seconds"), "-40 seconds").await;
    // Past expires_at but inside the grace: not yet.
    insert(new_md5(), Some("-5 seconds"), "-10 seconds").await;
    // No expires_at: created + ttl (60 s) + grace is past: overdue.
    insert(new_md5(), None, "-100 seconds").await;
    // No expires_at, still inside its ttl.
    insert(new_md5(), None, "-30 seconds").await;
    // Decided rows never count.
    insert(new_md5(), Some("-1 hour"), "-2 hours").await;
    sqlx::query(
        "UPDATE payments SET status = 'expired' WHERE created_at < datetime('now', '-1 hour')",
    )
    .execute(&db)
    .await
    .unwrap();

    let store = bakong_poller::app::open_store(&s).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let f = store
        .pending_facts(now, Duration::from_secs(60), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((f.pending, f.overdue), (4, 2));
    let age = (now - f.oldest_created_ms.unwrap()) as f64 / 1000.0;
    assert!((99.0..110.0).contains(&age), "oldest pending {age}s");
    store.close().await;
}

#[tokio::test]
async fn the_daily_quota_pause_and_the_days_spend_are_in_the_metrics() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.cadence = Duration::from_millis(50);
    s.poller.quota_probe = Duration::from_secs(60);
    s.poller.daily_request_budget = Some(1_000);
    let db = e.merchant(&s).await;
    e.payment(&db, "1.00", "USD", paid_after(60_000)).await;
    e.sim.sim.set_faults(Faults {
        daily_limit: Some(3),
        day_length: Some(Duration::from_secs(3600)),
        ..Faults::default()
    });
    let d = start_with_metrics(s).await;
    let paused = wait_for("the pause in the metrics", LIMIT, || async {
        let m = d.scrape().await;
        (m.one("bakong_poller_quota_paused") == 1.0).then_some(m)
    })
    .await;
    let since = paused.one("bakong_poller_quota_paused_since_timestamp_seconds");
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    assert!(since <= now && since > now - 60.0, "{since}");
    assert_eq!(paused.one("bakong_poller_daily_request_budget"), 1_000.0);
    // Three answered and the one refused (errorCode 17) all count.
    let today = paused.one("bakong_poller_requests_today");
    assert!((4.0..=6.0).contains(&today), "{today}");
    assert_eq!(paused.one("bakong_poller_gate_daemons"), 1.0);
    d.stop().await;
}

/// A late payment shows in `/metrics` (the counters by status, today's
/// count from the database, the time of the last one) and in `status`.
#[tokio::test]
async fn late_payments_show_in_the_metrics_and_in_status() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let md5 = late_money_row(&e, &db).await;
    let d = start_with_metrics(s.clone()).await;
    assert_eq!(final_status(&db, &md5, LIMIT).await, "expired");
    wait_for("paid_late", LIMIT, || async {
        (status(&db, &md5).await == "paid_late").then_some(())
    })
    .await;
    let m = wait_for("the late gauge", LIMIT, || async {
        let m = d.scrape().await;
        (m.sum(
            "bakong_poller_late_payments_today",
            &[("status", "paid_late")],
        ) == 1.0)
            .then_some(m)
    })
    .await;
    assert_eq!(
        m.sum(
            "bakong_poller_late_payments_total",
            &[("status", "paid_late")]
        ),
        1.0
    );
    assert_eq!(
        m.sum(
            "bakong_poller_payments_finalized_total",
            &[("status", "paid_late")]
        ),
        1.0
    );
    assert!(m.sum("bakong_poller_last_late_payment_timestamp_seconds", &[]) > 1.7e9);
    let out = bin!()
        .config(e.config_file(&s, ""))
        .args(["status", "--json"])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["late"]["paid_late_today"], 1);
    assert_eq!(v["late"]["last"][0], md5.as_str());
    assert_eq!(v["counts"]["paid_late"], 1);
    d.stop().await;
}
