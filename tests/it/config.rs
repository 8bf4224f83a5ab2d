//! Config and table validation as an operator and a merchant meet it: the
//! base URL with `/v1` pasted at its end, account ids compared exactly,
//! no credential in any message, amounts a KHQR cannot carry, and
//! `config check` passing what `run` mends by itself (issue 15, items 5,
//! 6, 7, 8 and 11).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bakong_poller::config::Settings;
use base64::Engine;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::SqlitePool;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);
const SECRET: &str = "S3cretPass";

/// The test config with `edit` applied to its text.
fn config_with(e: &TestEnv, s: &Settings, edit: impl Fn(String) -> String) -> PathBuf {
    let cfg = e.config_file(s, "");
    let text = edit(std::fs::read_to_string(&cfg).unwrap());
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Adds `line` to the `[bakong]` section.
fn in_bakong(line: &str) -> impl Fn(String) -> String + '_ {
    move |t| t.replacen("[bakong]\n", &format!("[bakong]\n{line}\n"), 1)
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn run_cli(cfg: &Path, args: &[&str], envs: &[(&str, &str)]) -> Out {
    bin!()
        .config(cfg)
        .args(args)
        .envs(envs.iter().copied())
        .output()
}

fn warnings(o: &Out) -> Vec<String> {
    o.stderr
        .as_str()
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(str::to_string)
        .collect()
}

fn problems(o: &Out) -> Vec<String> {
    o.stderr
        .as_str()
        .lines()
        .filter(|l| !l.starts_with("warning: ") && !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A JWT with the given dates and a signature nobody checks here.
fn jwt(iat: i64, exp: i64) -> String {
    let enc = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    format!(
        "{}.{}.c2ln",
        enc(serde_json::json!({"alg": "HS256", "typ": "JWT"})),
        enc(serde_json::json!({"sub": EMAIL, "iat": iat, "exp": exp}))
    )
}

fn expired_jwt() -> String {
    let now = chrono::Utc::now().timestamp();
    jwt(now - 100 * 86400, now - 10 * 86400)
}

// ---- Item 5: a base URL with the API's own path at its end ----------------

#[tokio::test]
async fn config_check_passes_with_one_warning_when_the_base_url_ends_in_the_api_path() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let base = e.sim.base_url();
    for suffix in ["/v1", "/v1/", "/v1/check_transaction_by_md5"] {
        let cfg = config_with(&e, &s, |t| {
            t.replace(
                &format!("base_url = \"{base}\""),
                &format!("base_url = \"{base}{suffix}\""),
            )
        });
        let out = run_cli(&cfg, &["config", "check"], &[]);
        assert_eq!(out.code, 0, "{suffix}: {}", out.text());
        let w = warnings(&out);
        assert_eq!(w.len(), 1, "{suffix}: {w:?}");
        assert!(
            w[0].contains("bakong.base_url") && w[0].contains(suffix),
            "{w:?}"
        );
    }
    // A plain base URL: no warning at all.
    let out = run_cli(&e.config_file(&s, ""), &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(warnings(&out).is_empty(), "{}", out.text());
}

#[tokio::test]
async fn a_daemon_whose_base_url_ends_in_v1_confirms_payments() {
    let e = env().await;
    for suffix in ["/v1", "/v1/"] {
        let mut s = e.settings();
        s.bakong.base_url = format!("{}{suffix}", e.sim.base_url());
        let db = e.merchant(&s).await;
        let md5 = e.payment(&db, "1.50", "USD", paid_after(0)).await;
        let d = start(s);
        assert_eq!(final_status(&db, &md5, LIMIT).await, "paid", "{suffix}");
        d.stop().await;
    }
    let stats = e.sim.sim.stats();
    assert!(
        stats
            .requests
            .values()
            .all(|by_status| !by_status.contains_key(&404)),
        "no request went to /v1/v1: {stats:?}"
    );
}

// ---- Item 6: config strings compared exactly with API data ----------------

#[tokio::test]
async fn config_check_exits_2_naming_bakong_account_id_for_a_stray_character() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    for bad in [
        "demo_shop@aclb ",
        " demo_shop@aclb",
        "demo_shop@aclb\t",
        "demo_shop@ aclb",
        "demo_shop@aclb\u{a0}",
        "Demo_Shop@aclb",
        "demo_shop",
        "demo_shop@aclb@aclb",
    ] {
        let line = format!("account_id = {}", toml_str(bad));
        let cfg = config_with(&e, &s, in_bakong(&line));
        let out = run_cli(&cfg, &["config", "check"], &[]);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.text());
        let p = problems(&out);
        assert_eq!(p.len(), 1, "{bad:?}: {p:?}");
        assert!(p[0].contains("bakong.account_id"), "{p:?}");
        // The value is quoted, so a space at its end is visible.
        assert!(p[0].contains(&format!("{bad:?}")), "{p:?}");
        // `run` refuses it the same way.
        let out = run_cli(&cfg, &["run"], &[]);
        assert_eq!(out.code, 2, "{bad:?}: {}", out.text());
        assert!(out.text().contains("bakong.account_id"), "{}", out.text());
    }
    let cfg = config_with(&e, &s, in_bakong("account_id = \"demo_shop@aclb\""));
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
}

// Multi-threaded: the simulator must answer while the test waits on the
// binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_online_asks_bakong_whether_the_account_exists() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    e.sim.sim.add_account("demo_shop@aclb");
    let cfg = config_with(&e, &s, in_bakong("account_id = \"demo_shop@aclb\""));
    let out = run_cli(&cfg, &["config", "check", "--online"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(warnings(&out).is_empty(), "{}", out.text());
    let asked = |s: &bakong_simulator::Stats| {
        s.requests
            .get("check_bakong_account")
            .map(|m| m.values().sum::<u64>())
            .unwrap_or(0)
    };
    assert_eq!(asked(&e.sim.sim.stats()), 1);
    let cfg = config_with(&e, &s, in_bakong("account_id = \"nobody_here@aclb\""));
    let out = run_cli(&cfg, &["config", "check", "--online"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        problems(&out)[0].contains("bakong.account_id"),
        "{}",
        out.text()
    );
    // Without --online nothing is sent.
    let before = e.sim.sim.stats().total;
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(e.sim.sim.stats().total, before);
}

// ---- Item 7: no secret in any message --------------------------------------

#[tokio::test]
async fn no_message_shows_a_password_from_a_config_value() {
    let e = env().await;
    let s = e.settings();
    let base = e.sim.base_url();
    let proxy_bad_port = format!("proxy = \"http://opsuser:{SECRET}@127.0.0.1:99999\"");
    let proxy_syntax = format!("proxy = \"http://opsuser:{SECRET}@127.0.0.1:3128\" oops");
    let base_bad_port = format!("http://opsuser:{SECRET}@127.0.0.1:99999");
    let files: Vec<(&str, PathBuf)> = vec![
        (
            "proxy with a bad port",
            config_with(&e, &s, in_bakong(&proxy_bad_port)),
        ),
        (
            "a syntax error on the proxy line",
            config_with(&e, &s, in_bakong(&proxy_syntax)),
        ),
        (
            "a PostgreSQL database.url",
            config_with(&e, &s, |t| {
                t.replace(
                    &s.database.url,
                    &format!("postgres://app:{SECRET}@127.0.0.1:99999/payments"),
                )
            }),
        ),
        (
            "base_url with a bad port",
            config_with(&e, &s, |t| t.replace(&base, &base_bad_port)),
        ),
    ];
    for (what, cfg) in &files {
        let cfg_copy = e
            .dir
            .path()
            .join(format!("{}.toml", what.replace(' ', "_")));
        std::fs::copy(cfg, &cfg_copy).unwrap();
        for args in [
            vec!["config", "check"],
            vec!["--json", "config", "check"],
            vec!["run"],
            vec!["migrate"],
            vec!["status"],
            vec!["token", "show"],
        ] {
            let out = run_cli(&cfg_copy, &args, &[]);
            let all = out.text();
            assert_eq!(out.code, 2, "{what} {args:?}: {all}");
            assert!(!all.contains(SECRET), "{what} {args:?}: {all}");
            if !what.contains("syntax") {
                assert!(
                    all.contains("***"),
                    "{what} {args:?} still names the value: {all}"
                );
            }
        }
    }
    // The same values from the environment.
    let cfg = e.config_file(&s, "");
    for (var, value) in [
        (
            "BAKONG_POLLER__BAKONG__PROXY",
            format!("http://opsuser:{SECRET}@127.0.0.1:99999"),
        ),
        (
            "BAKONG_POLLER__DATABASE__URL",
            // PostgreSQL URLs are valid now: one it cannot read.
            format!("postgres://app:{SECRET}@db/payments?sslmode=sometimes"),
        ),
        (
            "BAKONG_POLLER__BAKONG__BASE_URL",
            format!("https://opsuser:{SECRET}@relay example/"),
        ),
    ] {
        for args in [vec!["config", "check"], vec!["run"]] {
            let out = run_cli(&cfg, &args, &[(var, &value)]);
            let all = out.text();
            assert_eq!(out.code, 2, "{var} {args:?}: {all}");
            assert!(!all.contains(SECRET), "{var} {args:?}: {all}");
        }
    }
}

#[tokio::test]
async fn the_daemon_start_line_shows_urls_without_their_password() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let base = e.sim.base_url();
    let with_creds = base.replacen("http://", &format!("http://opsuser:{SECRET}@"), 1);
    let cfg = config_with(&e, &s, |t| t.replace(&base, &format!("{with_creds}/v1")));
    let log = e.dir.path().join("daemon.log");
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let text = wait_for("the start line", LIMIT, || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        async move { t.contains("bakong-poller running").then_some(t) }
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = child.wait();
    assert!(text.contains("opsuser:***@"), "{text}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("opsuser:***@"), "{text}");
    // The /v1 warning is logged once, at start.
    let warned = text
        .lines()
        .filter(|l| l.contains("bakong.base_url") && l.contains("WARN"))
        .count();
    assert_eq!(warned, 1, "{text}");
}

// ---- Item 8: amounts a KHQR cannot carry ----------------------------------

#[tokio::test]
async fn add_refuses_amounts_a_khqr_cannot_carry_naming_amount() {
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    for (amount, currency) in [
        ("0.001", "USD"),
        ("1.005", "USD"),
        ("2.0001000", "USD"),
        ("500.5", "KHR"),
        ("4000.01", "KHR"),
    ] {
        let md5 = new_md5();
        let out = run_cli(
            &cfg,
            &[
                "add",
                "--md5",
                &md5,
                "--amount",
                amount,
                "--currency",
                currency,
            ],
            &[],
        );
        assert_eq!(out.code, 2, "{amount} {currency}: {}", out.text());
        assert!(out.text().contains("--amount"), "{}", out.text());
        assert_eq!(out.stderr.trim().lines().count(), 1);
    }
    for (amount, currency) in [
        ("1.50", "USD"),
        ("1.500", "USD"),
        ("0.01", "USD"),
        ("4000", "KHR"),
        ("4000.00", "KHR"),
    ] {
        let md5 = new_md5();
        let out = run_cli(
            &cfg,
            &[
                "add",
                "--md5",
                &md5,
                "--amount",
                amount,
                "--currency",
                currency,
            ],
            &[],
        );
        assert_eq!(out.code, 0, "{amount} {currency}: {}", out.text());
    }
}

async fn insert(
    db: &SqlitePool,
    amount: impl sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + 'static,
    currency: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, ?3)")
        .bind(new_md5())
        .bind(amount)
        .bind(currency.to_string())
        .execute(db)
        .await
        .map(drop)
}

#[tokio::test]
async fn the_table_refuses_amounts_a_khqr_cannot_carry_judged_by_value() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    for (amount, currency) in [
        ("1.50", "USD"),
        ("1.500", "USD"),
        ("4000", "KHR"),
        ("4000.00", "KHR"),
        ("0.01", "USD"),
    ] {
        insert(&db, amount.to_string(), currency)
            .await
            .unwrap_or_else(|err| panic!("{amount} {currency}: {err}"));
    }
    for (amount, currency) in [(4000.0_f64, "KHR"), (1.5, "USD"), (0.25, "USD")] {
        insert(&db, amount, currency)
            .await
            .unwrap_or_else(|err| panic!("{amount} {currency}: {err}"));
    }
    for (amount, currency) in [
        ("0.001", "USD"),
        ("1.005", "USD"),
        ("500.5", "KHR"),
        ("4000.10", "KHR"),
    ] {
        let err = insert(&db, amount.to_string(), currency)
            .await
            .expect_err(amount);
        assert!(err.to_string().contains("payments.amount"), "{err}");
    }
    for (amount, currency) in [(0.001_f64, "USD"), (500.5, "KHR"), (1.005, "USD")] {
        let err = insert(&db, amount, currency)
            .await
            .expect_err("number refused");
        assert!(err.to_string().contains(currency), "{err}");
    }
    // An UPDATE cannot sneak one in either.
    let err = sqlx::query("UPDATE payments SET amount = '1.999' WHERE currency = 'USD'")
        .execute(&db)
        .await
        .expect_err("update refused");
    assert!(err.to_string().contains("payments.amount"), "{err}");
    let err = sqlx::query("UPDATE payments SET currency = 'KHR' WHERE amount = '1.50'")
        .execute(&db)
        .await
        .expect_err("update refused");
    assert!(err.to_string().contains("KHR"), "{err}");
}

/// A database as the previous release left it: the first two migrations.
async fn previous_release_db(path: &Path) -> SqlitePool {
    release_db(path, 2).await
}

/// A database as a release with the first `n` migrations left it.
async fn release_db(path: &Path, n: usize) -> SqlitePool {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    old.run(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn a_database_of_the_previous_release_upgrades_keeping_every_row() {
    let e = env().await;
    let s = e.settings();
    let old = previous_release_db(&e.db_path()).await;
    let rows = [
        ("1.50", "USD", "pending"),
        ("4000", "KHR", "paid"),
        ("0.001", "USD", "pending"),
        ("500.5", "KHR", "mismatch"),
    ];
    for (amount, currency, status) in rows {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, status, lane) VALUES (?1, ?2, ?3, ?4, 1)",
        )
        .bind(new_md5())
        .bind(amount)
        .bind(currency)
        .bind(status)
        .execute(&old)
        .await
        .unwrap();
    }
    let before: Vec<(i64, String, String, String, String, i64)> =
        sqlx::query_as("SELECT id, md5, amount, currency, status, lane FROM payments ORDER BY id")
            .fetch_all(&old)
            .await
            .unwrap();
    old.close().await;

    // config check before the upgrade: pending migration and the bad row
    // are warnings (run mends the first and parks the second).
    let cfg = e.config_file(&s, "");
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let w = warnings(&out).join("\n");
    assert!(
        w.contains("not applied yet") && w.contains("payments.amount"),
        "{w}"
    );

    let db = e.merchant(&s).await; // applies the new migration
    let after: Vec<(i64, String, String, String, String, i64)> =
        sqlx::query_as("SELECT id, md5, amount, currency, status, lane FROM payments ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(before, after, "every row kept as it was");
    let index: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'payments_due'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(
        index.contains("(lane, next_check_at)") && index.contains("status = 'pending'"),
        "{index}"
    );
    assert!(insert(&db, "0.001".to_string(), "USD").await.is_err());

    // The daemon parks the old row that breaks the rule, naming its amount,
    // and leaves it as it is.
    let bad_md5 = &before[2].1;
    let d = start(s.clone());
    let error: String = wait_for("the bad row to be parked", LIMIT, || async {
        bookkeeping(&s, bad_md5).await.last_error
    })
    .await;
    d.stop().await;
    assert!(
        error.contains("amount") && error.contains("0.001"),
        "{error}"
    );
    assert_eq!(status(&db, bad_md5).await, "pending");
}

// ---- Item 11: config check passes what run mends by itself ----------------

#[tokio::test]
async fn config_check_passes_with_a_warning_when_run_can_renew_an_expired_token() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let expired = expired_jwt();
    let with_expired = |t: String| t.replace(&e.token, &expired);
    let cfg = config_with(&e, &s, with_expired);
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("bakong.token") && w[0].contains("renews"),
        "{w:?}"
    );
    // Without bakong.email run cannot mend it: exit 2.
    let cfg = config_with(&e, &s, |t| {
        with_expired(t).replace(&format!("email = \"{EMAIL}\"\n"), "")
    });
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(problems(&out)[0].contains("bakong.token"), "{}", out.text());
    // Nor when the renewed token could not be saved.
    let nowhere = e.dir.path().join("no-such-dir").join("token");
    let cfg = config_with(&e, &s, |t| {
        with_expired(t).replace(
            &s.bakong.token_file.display().to_string(),
            &nowhere.display().to_string(),
        )
    });
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(out.text().contains("bakong.token_file"), "{}", out.text());
    // The same expired token in the token file (the config's removed).
    std::fs::write(&s.bakong.token_file, format!("{expired}\n")).unwrap();
    let cfg = config_with(&e, &s, |t| {
        t.replace(&format!("token = \"{}\"\n", e.token), "")
    });
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(warnings(&out).len(), 1, "{}", out.text());
}

#[tokio::test]
async fn run_confirms_payments_with_the_expired_token_config_check_lets_through() {
    let e = env().await;
    let mut s = e.settings();
    s.bakong.token = Some(expired_jwt());
    s.bakong.renew_before = Duration::from_secs(60);
    let db = e.merchant(&s).await;
    let md5 = e.payment(&db, "4000", "KHR", paid_after(0)).await;
    let d = start(s);
    assert_eq!(final_status(&db, &md5, LIMIT).await, "paid");
    d.stop().await;
    assert!(e.sim.sim.stats().renewals >= 1);
}

#[tokio::test]
async fn config_check_passes_with_a_warning_for_each_state_run_mends() {
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    // A database that does not exist yet: run creates it. The check must
    // not create it.
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("database.url") && w[0].contains("does not exist yet"),
        "{w:?}"
    );
    assert!(!e.db_path().exists(), "config check created the database");

    // A database in rollback-journal mode: run switches it to WAL.
    let opts = SqliteConnectOptions::new()
        .filename(e.db_path())
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap();
    bakong_poller::store::sqlite::MIGRATOR
        .run(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("journal mode is delete"), "{w:?}");

    // The token file missing while bakong.token is set: nothing to say.
    assert!(!s.bakong.token_file.exists());
    e.merchant(&s).await.close().await; // WAL now
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(warnings(&out).is_empty(), "{}", out.text());

    // A valid token and no bakong.email: run works until the token expires.
    let cfg = config_with(&e, &s, |t| t.replace(&format!("email = \"{EMAIL}\"\n"), ""));
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let w = warnings(&out);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("bakong.email"), "{w:?}");
    // The same report for scripts.
    let out = run_cli(&cfg, &["--json", "config", "check"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let v = out.json();
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["warnings"][0]["key"], "bakong.email", "{v}");
}

#[tokio::test]
async fn config_check_exits_2_for_states_run_cannot_mend() {
    let e = env().await;
    let s = e.settings();
    // The database's directory does not exist: run cannot create it.
    let nowhere = e.dir.path().join("missing-dir").join("payments.db");
    let cfg = config_with(&e, &s, |t| {
        t.replace(&s.database.url, &format!("sqlite://{}", nowhere.display()))
    });
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        problems(&out)[0].starts_with("database.url"),
        "{}",
        out.text()
    );
    // No token anywhere.
    let cfg = config_with(&e, &s, |t| {
        t.replace(&format!("token = \"{}\"\n", e.token), "")
    });
    let out = run_cli(&cfg, &["config", "check"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        problems(&out).iter().any(|p| p.starts_with("bakong.token")),
        "{}",
        out.text()
    );
    // A database migrated by a newer release.
    e.merchant(&s).await.close().await;
    let db = e.merchant(&s).await;
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from the future', 1, x'00', 0)")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let out = run_cli(&e.config_file(&s, ""), &["config", "check"], &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(out.text().contains("newer release"), "{}", out.text());
}

/// A relay on 127.0.0.1 serving the simulator under its own path prefix
/// `/relay`, as relays for merchants hosted abroad do. Anything outside the
/// prefix answers 404.
async fn relay(target: String) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let client = client.clone();
        let target = target.clone();
        async move {
            let Some(rest) = uri.path().strip_prefix("/relay/") else {
                return (StatusCode::NOT_FOUND, Vec::new());
            };
            let mut req = client
                .post(format!("{target}/{rest}"))
                .header("content-type", "application/json")
                .body(body.to_vec());
            if let Some(a) = headers.get("authorization") {
                req = req.header("authorization", a.as_bytes());
            }
            let resp = req.send().await.unwrap();
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            (status, resp.bytes().await.unwrap().to_vec())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/relay")
}

#[tokio::test]
async fn a_relay_under_its_own_path_prefix_keeps_working_with_or_without_v1() {
    let e = env().await;
    let relay = relay(e.sim.base_url()).await;
    for base in [relay.clone(), format!("{relay}/"), format!("{relay}/v1")] {
        let mut s = e.settings();
        s.bakong.base_url = base.clone();
        assert_eq!(
            s.warnings().len(),
            usize::from(base.ends_with("/v1")),
            "{base}"
        );
        let db = e.merchant(&s).await;
        let md5 = e.payment(&db, "1.50", "USD", paid_after(0)).await;
        let d = start(s);
        assert_eq!(final_status(&db, &md5, LIMIT).await, "paid", "{base}");
        d.stop().await;
    }
}

/// The release before the gate record (0dae1d1) had four migrations; its
/// database upgrades with `migrate` keeping every row and event, and gains
/// the one gate row.
#[tokio::test]
async fn a_database_of_the_release_before_the_gate_record_upgrades_keeping_every_row() {
    let e = env().await;
    let s = e.settings();
    let old = release_db(&e.db_path(), 4).await;
    for (amount, currency, status) in [("1.50", "USD", "pending"), ("4000", "KHR", "paid")] {
        sqlx::query("INSERT INTO payments (md5, amount, currency, status) VALUES (?1, ?2, ?3, ?4)")
            .bind(new_md5())
            .bind(amount)
            .bind(currency)
            .bind(status)
            .execute(&old)
            .await
            .unwrap();
    }
    sqlx::query(
        "INSERT INTO payment_events (id, type, md5, payload, created_at, created_ms)
         VALUES ('msg_1', 'payment.paid', 'x', '{}', '2026-11-30 12:00:00.000', 0)",
    )
    .execute(&old)
    .await
    .unwrap();
    type Row = (i64, String, String, String, String);
    let read = "SELECT id, md5, amount, currency, status FROM payments ORDER BY id";
    let before: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();
    old.close().await;

    let out = run_cli(&e.config_file(&s, ""), &["migrate"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let db = e.merchant(&s).await;
    let after: Vec<Row> = sqlx::query_as(read).fetch_all(&db).await.unwrap();
    assert_eq!(before, after, "every row kept as it was");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(events, 1);
    let gate: (i64, i64) = sqlx::query_as("SELECT count(*), sum(spend) FROM gate_state")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(gate, (1, 0), "one gate row, nothing spent");
}

/// The release before ids were never reused (five migrations): its
/// database upgrades (the payments table is rebuilt) keeping the
/// application's own tables that reference `payments` (even with
/// `ON DELETE CASCADE`), its views and its triggers on `payments`; an
/// event of that release still waiting for its delivery is signed and
/// delivered, not taken for a forged one.
#[tokio::test]
async fn the_rebuild_keeps_the_applications_tables_views_triggers_and_pending_deliveries() {
    let e = env().await;
    let s = e.settings();
    let old = release_db(&e.db_path(), 5).await;
    let md5 = new_md5();
    for sql in [
        format!("INSERT INTO payments (md5, amount, currency, status) VALUES ('{md5}', '5.00', 'USD', 'paid')"),
        "CREATE TABLE orders (id INTEGER PRIMARY KEY,
             payment_id INTEGER REFERENCES payments (id) ON DELETE CASCADE)".into(),
        "INSERT INTO orders (id, payment_id) SELECT 7, id FROM payments".into(),
        "CREATE VIEW paid_orders AS SELECT o.id FROM orders o JOIN payments p ON p.id = o.payment_id WHERE p.status = 'paid'".into(),
        "CREATE TABLE audit (md5 TEXT)".into(),
        "CREATE TRIGGER shop_audit AFTER UPDATE OF status ON payments BEGIN INSERT INTO audit VALUES (NEW.md5); END".into(),
        "INSERT INTO event_receivers (name, active, updated_at) VALUES ('webhook', 1, '2026-12-01 00:00:00')".into(),
        format!("INSERT INTO payment_events (id, type, md5, payload, created_at, payment_id, created_ms)
             SELECT 'msg_old', 'payment.paid', '{md5}',
                    '{{\"type\":\"payment.paid\",\"data\":{{\"md5\":\"{md5}\",\"status\":\"paid\"}}}}',
                    '2026-12-01 00:00:00.000', id, 0 FROM payments"),
        "INSERT INTO event_deliveries (event_id, receiver, next_attempt_at) VALUES ('msg_old', 'webhook', 0)".into(),
    ] {
        sqlx::query(&sql).execute(&old).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    old.close().await;

    let out = run_cli(&e.config_file(&s, ""), &["migrate"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let db = e.merchant(&s).await;
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM paid_orders")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(orders, 1, "the order and the view outlive the rebuild");
    sqlx::query("UPDATE payments SET status = 'paid' WHERE md5 = ?1")
        .bind(&md5)
        .execute(&db)
        .await
        .unwrap();
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(audited, 1, "the application's trigger was made again");

    let store = bakong_poller::store::Store::connect(&s.database.url, Duration::from_secs(5))
        .await
        .unwrap();
    let claimed = store
        .claim_deliveries(
            chrono::Utc::now().timestamp_millis(),
            Duration::from_secs(5),
            10,
            &["webhook"],
        )
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "the old release's pending delivery goes out"
    );
    assert_eq!(claimed[0].event_id, "msg_old");
    store.close().await;
}

/// The release before the payment lifecycle (eight migrations): its
/// database upgrades (the table is rebuilt once more) keeping every row,
/// the application's trigger and its events; every row gets its own
/// public id, and the expired ones come under the late watch.
#[tokio::test]
async fn the_release_before_the_lifecycle_upgrades_keeping_every_row() {
    let e = env().await;
    let s = e.settings();
    let old = release_db(&e.db_path(), 8).await;
    for (amount, currency, status) in [
        ("1.50", "USD", "pending"),
        ("4000", "KHR", "paid"),
        ("2.00", "USD", "expired"),
        ("3.00", "USD", "mismatch"),
    ] {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, status, confirmed_at)
             VALUES (?1, ?2, ?3, ?4, CASE WHEN ?4 <> 'pending' THEN datetime('now') END)",
        )
        .bind(new_md5())
        .bind(amount)
        .bind(currency)
        .bind(status)
        .execute(&old)
        .await
        .unwrap();
    }
    // A last row deleted before the upgrade: its id is never handed out
    // again (the counter survives the rebuild).
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, '9', 'USD')")
        .bind(new_md5())
        .execute(&old)
        .await
        .unwrap();
    let deleted: i64 = sqlx::query_scalar("SELECT max(id) FROM payments")
        .fetch_one(&old)
        .await
        .unwrap();
    sqlx::query("DELETE FROM payments WHERE id = ?1")
        .bind(deleted)
        .execute(&old)
        .await
        .unwrap();
    for sql in [
        "CREATE TABLE audit (md5 TEXT)",
        "CREATE TRIGGER shop_audit AFTER UPDATE OF status ON payments BEGIN INSERT INTO audit VALUES (NEW.md5); END",
    ] {
        sqlx::query(sql).execute(&old).await.unwrap();
    }
    type Row = (i64, String, String, String, String);
    let read = "SELECT id, md5, amount, currency, status FROM payments ORDER BY id";
    let before: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();
    old.close().await;

    let out = run_cli(&e.config_file(&s, ""), &["migrate"], &[]);
    assert_eq!(out.code, 0, "{}", out.text());
    let db = e.merchant(&s).await;
    let after: Vec<Row> = sqlx::query_as(read).fetch_all(&db).await.unwrap();
    assert_eq!(before, after, "every row kept as it was");
    let ids: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT public_id, late_check_at, status FROM payments ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    let distinct: std::collections::HashSet<&str> = ids.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(distinct.len(), 4, "one public id each");
    assert!(ids
        .iter()
        .all(|r| r.0.len() == 32 && r.0.bytes().all(|b| b.is_ascii_hexdigit())));
    for (_, late, status) in &ids {
        assert_eq!(late.is_some(), status == "expired", "{status}: {late:?}");
    }
    sqlx::query("UPDATE payments SET status = 'cancelled' WHERE status = 'pending'")
        .execute(&db)
        .await
        .unwrap();
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(audited, 1, "the application's trigger was made again");
    let next = sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, '1', 'USD')")
        .bind(new_md5())
        .execute(&db)
        .await
        .unwrap()
        .last_insert_rowid();
    assert!(
        next > deleted,
        "id {next} after the deleted {deleted}: never reused"
    );
}
