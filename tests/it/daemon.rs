//! The daemon against the simulator, in real time with millisecond
//! durations: every final status, 429, 401, faults, crashes, signals.
//!
//! The scenarios before the SQLite-only section are written once and run on
//! SQLite and on PostgreSQL (`<scenario>::on_sqlite`, `::on_postgres`,
//! tests/it/backends.rs).

use std::process::Stdio;
use std::time::{Duration, Instant};

use bakong_simulator::{Faults, NewTransaction, OutcomeKind, RetryAfterMode};
use rust_decimal::Decimal;

use crate::backends::{backend_env, both, Db};
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

both!(
    a_paid_payment_is_confirmed_with_its_hash_and_payer,
    a_payment_not_found_at_first_is_confirmed_once_paid,
    a_different_amount_currency_or_receiver_is_a_mismatch,
    failed_and_unpaid_payments_end_failed_and_expired_only_after_their_deadline,
    retry_after_in_seconds_is_honoured_to_the_letter,
    retry_after_as_an_http_date_is_honoured_to_the_letter,
    a_429_without_retry_after_backs_off_exponentially,
    the_request_rate_ceiling_is_never_exceeded,
    a_401_with_20_checks_in_flight_renews_once,
    a_failed_renewal_leaves_payments_pending_and_is_retried_with_backoff,
    server_errors_leave_rows_pending_until_they_clear,
    garbage_answers_leave_rows_pending_until_they_clear,
    hanging_requests_leave_rows_pending_until_they_clear,
    errors_never_expire_a_payment,
    sigterm_exits_0_within_10_seconds_and_gives_rows_back,
);

async fn a_paid_payment_is_confirmed_with_its_hash_and_payer(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let d = start(b.settings());
    let md5 = b
        .payment(
            "1.50",
            "USD",
            NewTransaction {
                from_account: Some("payer@abaa".into()),
                description: Some("coffee".into()),
                ..paid_after(0)
            },
        )
        .await;
    assert_eq!(b.final_status(&md5, LIMIT).await, "paid");
    let row = b.confirmation(&md5).await;
    let sim_tx =
        b.e.sim
            .sim
            .transactions()
            .into_iter()
            .find(|t| t.ids.md5 == md5)
            .unwrap();
    assert_eq!(row.bakong_hash.as_deref(), Some(sim_tx.ids.hash.as_str()));
    assert_eq!(
        (
            row.from_account_id.as_deref(),
            row.to_account_id.as_deref(),
            row.paid_amount.as_deref(),
            row.paid_currency.as_deref()
        ),
        (Some("payer@abaa"), Some(ACCOUNT), Some("1.5"), Some("USD"))
    );
    assert_eq!(row.description.as_deref(), Some("coffee"));
    assert!(
        row.paid_at_set && row.confirmed_at_set,
        "paid_at and confirmed_at are set"
    );
    d.stop().await;
}

async fn a_payment_not_found_at_first_is_confirmed_once_paid(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let d = start(b.settings());
    // Unknown to the bank until the daemon has been told "not found" (a
    // fixed delay would race a daemon on PostgreSQL, which waits a
    // heartbeat before its first request).
    let md5 = new_md5();
    b.insert(&md5, "4000", "KHR").await;
    let first = wait_for("a first answer", LIMIT, || async {
        let k = b.bookkeeping(&md5).await;
        (k.checks >= 1).then_some(k)
    })
    .await;
    assert_eq!(first.last_answer.as_deref(), Some("not_found"));
    assert_eq!(b.status(&md5).await, "pending");
    b.register(
        "4000",
        "KHR",
        NewTransaction {
            md5: Some(md5.clone()),
            ..paid_after(0)
        },
    );
    assert_eq!(b.final_status(&md5, LIMIT).await, "paid");
    let checks = b.bookkeeping(&md5).await.checks;
    assert!(
        checks >= 2,
        "checked {checks} times: the first answers were not found"
    );
    d.stop().await;
}

async fn a_different_amount_currency_or_receiver_is_a_mismatch(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    let d = start(s);
    let amount = b
        .payment(
            "10.00",
            "USD",
            NewTransaction {
                paid_amount: Some(Decimal::new(999, 2)),
                ..paid_after(0)
            },
        )
        .await;
    let currency = b
        .payment(
            "10",
            "USD",
            NewTransaction {
                paid_currency: Some("KHR".parse().unwrap()),
                ..paid_after(0)
            },
        )
        .await;
    let receiver = b
        .payment(
            "10",
            "USD",
            NewTransaction {
                paid_to: Some("someone_else@abaa".into()),
                ..paid_after(0)
            },
        )
        .await;
    // Equal as decimals though written differently: paid.
    let same = b
        .payment(
            "10.000",
            "USD",
            NewTransaction {
                paid_amount: Some(Decimal::new(10, 0)),
                ..paid_after(0)
            },
        )
        .await;
    for md5 in [&amount, &currency, &receiver] {
        assert_eq!(b.final_status(md5, LIMIT).await, "mismatch", "{md5}");
    }
    assert_eq!(b.final_status(&same, LIMIT).await, "paid");
    let row = b.confirmation(&receiver).await;
    assert_eq!(
        (row.paid_amount.as_deref(), row.to_account_id.as_deref()),
        (Some("10"), Some("someone_else@abaa"))
    );
    d.stop().await;
}

async fn failed_and_unpaid_payments_end_failed_and_expired_only_after_their_deadline(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let d = start(b.settings());
    let failed = b
        .payment(
            "2",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Failed,
                ..paid_after(0)
            },
        )
        .await;
    let never = b
        .payment(
            "2",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        )
        .await;
    let started = Instant::now();
    // Both expire 600 ms from now; grace is 100 ms.
    b.exec(
        "UPDATE payments SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+0.6 seconds')",
        "UPDATE payments SET expires_at = now() + interval '0.6 seconds'",
    )
    .await;
    assert_eq!(b.final_status(&failed, LIMIT).await, "failed");
    assert_eq!(b.final_status(&never, LIMIT).await, "expired");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "finalized {:?} after start, before expires_at + grace",
        started.elapsed()
    );
    assert_eq!(b.status(&failed).await, "failed");
    d.stop().await;
}

async fn retry_after_is_honoured(db: Db, mode: RetryAfterMode) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    b.e.sim.sim.set_faults(Faults {
        force_429: 1,
        force_429_retry_after: mode,
        force_429_secs: Some(1),
        ..Faults::default()
    });
    // Single flight keeps the test exact: no request already on the wire
    // when the 429 is sent.
    let mut s = b.settings();
    s.poller.concurrency = 1;
    let started = Instant::now();
    let d = start(s);
    let mut md5s = Vec::new();
    for _ in 0..5 {
        md5s.push(b.payment("1", "USD", paid_after(0)).await);
    }
    for md5 in &md5s {
        assert_eq!(b.final_status(md5, LIMIT).await, "paid");
    }
    let st = b.e.sim.sim.stats();
    assert_eq!(st.rate_limited, 1);
    assert_eq!(
        st.inside_retry_after, 0,
        "requests inside the Retry-After window"
    );
    // The simulator counts the refusing time it announced (an HTTP date
    // is whole seconds, rounded up).
    assert!(
        (1_000..=2_000).contains(&st.refusing_ms),
        "{} ms refusing",
        st.refusing_ms
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    d.stop().await;
}

async fn retry_after_in_seconds_is_honoured_to_the_letter(db: Db) {
    retry_after_is_honoured(db, RetryAfterMode::Seconds).await;
}

async fn retry_after_as_an_http_date_is_honoured_to_the_letter(db: Db) {
    retry_after_is_honoured(db, RetryAfterMode::Date).await;
}

async fn a_429_without_retry_after_backs_off_exponentially(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    b.e.sim.sim.set_faults(Faults {
        force_429: 3,
        force_429_retry_after: RetryAfterMode::None,
        ..Faults::default()
    });
    let mut s = b.settings();
    s.poller.concurrency = 1;
    let started = Instant::now();
    let d = start(s);
    let md5 = b.payment("1", "USD", paid_after(0)).await;
    assert_eq!(b.final_status(&md5, LIMIT).await, "paid");
    // 100 + 200 + 400 ms at the least (jitter only adds).
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.e.sim.sim.stats().rate_limited, 3);
    d.stop().await;
}

async fn the_request_rate_ceiling_is_never_exceeded(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 16;
    let d = start(s);
    let mut md5s = Vec::new();
    for _ in 0..40 {
        md5s.push(b.payment("1", "USD", paid_after(500)).await);
    }
    for md5 in &md5s {
        assert_eq!(b.final_status(md5, LIMIT).await, "paid");
    }
    let st = b.e.sim.sim.stats();
    assert!(st.total >= 40);
    assert!(
        st.peak_rps <= 20,
        "peak {} requests/s over a ceiling of 20",
        st.peak_rps
    );
    d.stop().await;
}

async fn a_401_with_20_checks_in_flight_renews_once(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.poller.concurrency = 20;
    s.poller.max_requests_per_second = 1000.0;
    let mut md5s = Vec::new();
    for _ in 0..20 {
        md5s.push(b.payment("1", "USD", paid_after(0)).await);
    }
    b.e.sim.sim.revoke_tokens(EMAIL);
    b.e.sim.sim.set_faults(Faults {
        latency: Duration::from_millis(300),
        ..Faults::default()
    });
    let d = start(s.clone());
    for md5 in &md5s {
        assert_eq!(b.final_status(md5, LIMIT).await, "paid");
    }
    d.stop().await;
    let st = b.e.sim.sim.stats();
    assert!(
        st.peak_concurrent >= 20,
        "only {} requests were in flight at once",
        st.peak_concurrent
    );
    assert_eq!(st.renewals, 1);
    assert_eq!(st.requests["check_transaction_by_md5"][&401], 20);
    assert_eq!(
        st.stale_token, 0,
        "no request used the old token after the renewal"
    );
    if db == Db::Sqlite {
        // The renewed token was saved with mode 0600 (on PostgreSQL it is
        // shared through the database: tests/it/pg_token.rs)...
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&s.bakong.token_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // ...and a restart uses it: no 401, no renewal.
    b.e.sim.sim.reset_stats();
    b.e.sim.sim.set_faults(Faults::default());
    let d = start(s);
    let md5 = b.payment("1", "USD", paid_after(0)).await;
    assert_eq!(b.final_status(&md5, LIMIT).await, "paid");
    d.stop().await;
    let st = b.e.sim.sim.stats();
    assert_eq!(st.renewals, 0);
    assert!(!st.requests["check_transaction_by_md5"].contains_key(&401));
}

async fn a_failed_renewal_leaves_payments_pending_and_is_retried_with_backoff(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.bakong.email = Some("unregistered@shop.example".into());
    s.poller.renew_retry = Duration::from_millis(500);
    b.e.sim.sim.revoke_tokens(EMAIL);
    let mut md5s = Vec::new();
    for _ in 0..10 {
        md5s.push(b.payment("1", "USD", paid_after(0)).await);
    }
    let started = Instant::now();
    let d = start(s);
    let renewals = || {
        b.e.sim
            .sim
            .stats()
            .requests
            .get("renew_token")
            .and_then(|m| m.get(&200))
            .copied()
            .unwrap_or(0)
    };
    let refused = || {
        b.e.sim
            .sim
            .stats()
            .requests
            .get("check_transaction_by_md5")
            .and_then(|m| m.get(&401))
            .copied()
            .unwrap_or(0)
    };
    wait_for("30 refused checks", LIMIT, || async {
        (refused() >= 30).then_some(())
    })
    .await;
    // Many checks were refused, but renewal attempts back off: 0.5 s, then
    // 1 s, 2 s, ... apart, not one per refused check.
    let elapsed = started.elapsed().as_secs_f64();
    let allowed = 1 + (elapsed / 0.5).log2().max(0.0).ceil() as u64 + 1;
    assert!(
        renewals() <= allowed,
        "{} renewal attempts in {elapsed:.1} s for {} refused checks",
        renewals(),
        refused()
    );
    wait_for("a second failed renewal", LIMIT, || async {
        (renewals() >= 2).then_some(())
    })
    .await;
    for md5 in &md5s {
        assert_eq!(b.status(md5).await, "pending");
    }
    // Registering the email lets a later renewal through.
    b.e.sim.sim.register("unregistered@shop.example");
    for md5 in &md5s {
        assert_eq!(b.final_status(md5, LIMIT).await, "paid");
    }
    d.stop().await;
}

async fn fault_leaves_rows_pending_until_it_clears(db: Db, f: Faults, kind: &str) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    b.e.sim.sim.set_faults(f);
    let d = start(b.settings());
    let mut md5s = Vec::new();
    for _ in 0..3 {
        md5s.push(b.payment("1", "USD", paid_after(0)).await);
    }
    wait_for("every row to see the fault twice", LIMIT, || async {
        let mut n = i64::MAX;
        for m in &md5s {
            n = n.min(b.bookkeeping(m).await.errors);
        }
        (n >= 2).then_some(())
    })
    .await;
    for md5 in &md5s {
        assert_eq!(b.status(md5).await, "pending");
    }
    let last = b.bookkeeping(&md5s[0]).await.last_answer;
    assert_eq!(last.as_deref(), Some(kind));
    b.e.sim.sim.set_faults(Faults::default());
    for md5 in &md5s {
        assert_eq!(b.final_status(md5, LIMIT).await, "paid");
    }
    d.stop().await;
}

async fn server_errors_leave_rows_pending_until_they_clear(db: Db) {
    fault_leaves_rows_pending_until_it_clears(
        db,
        Faults {
            error_5xx_ratio: 1.0,
            ..Faults::default()
        },
        "http",
    )
    .await;
}

async fn garbage_answers_leave_rows_pending_until_they_clear(db: Db) {
    fault_leaves_rows_pending_until_it_clears(
        db,
        Faults {
            malformed_ratio: 1.0,
            ..Faults::default()
        },
        "decode",
    )
    .await;
}

async fn hanging_requests_leave_rows_pending_until_they_clear(db: Db) {
    fault_leaves_rows_pending_until_it_clears(
        db,
        Faults {
            hang_ratio: 1.0,
            ..Faults::default()
        },
        "timeout",
    )
    .await;
}

async fn errors_never_expire_a_payment(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    b.e.sim.sim.set_faults(Faults {
        error_5xx_ratio: 1.0,
        ..Faults::default()
    });
    let d = start(b.settings());
    let md5 = b
        .payment(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        )
        .await;
    b.exec(
        "UPDATE payments SET expires_at = '2000-01-01 00:00:00'",
        "UPDATE payments SET expires_at = '2000-01-01 00:00:00+00'",
    )
    .await;
    wait_for("three failed checks", LIMIT, || async {
        let n = b.bookkeeping(&md5).await.errors;
        (n >= 3).then_some(())
    })
    .await;
    assert_eq!(b.status(&md5).await, "pending");
    b.e.sim.sim.set_faults(Faults::default());
    assert_eq!(b.final_status(&md5, LIMIT).await, "expired");
    d.stop().await;
}

async fn sigterm_exits_0_within_10_seconds_and_gives_rows_back(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.bakong.timeout = Duration::from_secs(30);
    s.poller.lease = Duration::from_secs(60);
    let cfg = b.e.config_file(&s, "");
    b.e.sim.sim.set_faults(Faults {
        hang_ratio: 1.0,
        ..Faults::default()
    });
    let md5 = b.payment("1", "USD", paid_after(0)).await;
    let mut child = spawn_daemon(&cfg, &b.e.dir.path().join("daemon.log"));
    wait_for("a hanging check", LIMIT, || async {
        (b.e.sim.sim.stats().total >= 1).then_some(())
    })
    .await;
    let sent = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let code = wait_for("the daemon to exit", Duration::from_secs(15), || {
        let r = child.try_wait().unwrap();
        async move { r }
    })
    .await;
    assert_eq!(code.code(), Some(0));
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?}",
        sent.elapsed()
    );
    // The row was given back, not left leased for a minute.
    let next = b.bookkeeping(&md5).await.next_check_at;
    assert!(next <= chrono::Utc::now().timestamp_millis());
    assert_eq!(b.lease_id(&md5).await, None);
}

// ---- SQLite only: the table's checks, the binary, a SQLite trigger ----

#[tokio::test]
async fn the_table_refuses_bad_rows() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let good = "b1c250304b8594e4c6b53dd44791b57a";
    for (md5, amount, currency, expires) in [
        ("B1C250304B8594E4C6B53DD44791B57A", "1", "USD", None),
        ("b1c250304b8594e4c6b53dd44791b57", "1", "USD", None),
        ("z1c250304b8594e4c6b53dd44791b57a", "1", "USD", None),
        (good, "0", "USD", None),
        (good, "0.00", "USD", None),
        (good, "-1", "USD", None),
        (good, "1e3", "USD", None),
        (good, "1.2.3", "USD", None),
        (good, "1.", "USD", None),
        (good, ".5", "USD", None),
        (good, "abc", "USD", None),
        (good, "1", "EUR", None),
        (good, "1", "usd", None),
        (good, "1", "USD", Some("next tuesday")),
    ] {
        let r = sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(md5)
        .bind(amount)
        .bind(currency)
        .bind(expires)
        .execute(&db)
        .await;
        assert!(r.is_err(), "accepted {md5} {amount} {currency} {expires:?}");
    }
    // A number inserted by a client is stored as its text.
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, 'USD')")
        .bind(good)
        .bind(1.5_f64)
        .execute(&db)
        .await
        .unwrap();
    let amount: String = sqlx::query_scalar("SELECT amount FROM payments")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(amount, "1.5");
    let dup = sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, '1', 'USD')")
        .bind(good)
        .execute(&db)
        .await;
    assert!(dup.is_err(), "a duplicate md5 was accepted");
}

#[tokio::test]
async fn a_bad_config_exits_2_naming_the_key() {
    let e = env().await;
    let s = e.settings();
    for (extra_key, expect) in [
        (
            "[poller]\nmax_requests_per_second = -1\n",
            "poller.max_requests_per_second",
        ),
        ("[poller]\npayment_ttl = \"soon\"\n", "payment_ttl"),
        (
            "[poller]\nmax_request_per_second = 5\n",
            "max_request_per_second",
        ),
    ] {
        let path = e.dir.path().join("bad.toml");
        std::fs::write(
            &path,
            format!("[database]\nurl = \"{}\"\n{extra_key}", s.database.url),
        )
        .unwrap();
        let out = bin!().config(&path).arg("run").output();
        let err = out.stderr.as_str();
        assert_eq!(out.code, 2, "{err}");
        assert!(err.contains(expect), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let cfg = e.config_file(&s, "");
    let out = bin!()
        .config(&cfg)
        .arg("run")
        .env("BAKONG_POLLER__POLLER__CONCURRENCY", "many")
        .output();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("concurrency"));
    // A missing token is a config error too.
    let mut no_token = s.clone();
    no_token.bakong.token = None;
    let cfg = e.config_file(&no_token, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("token = \"{}\"\n", e.token), "");
    std::fs::write(&cfg, text).unwrap();
    let out = bin!().config(&cfg).arg("run").output();
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("bakong.token"));
}

fn spawn_daemon(cfg: &std::path::Path, log: &std::path::Path) -> test_support::cli::Child {
    bin!()
        .config(cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
}

fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[tokio::test]
async fn a_daemon_killed_mid_run_confirms_every_paid_payment_exactly_once_after_restart() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    // An audit trail written in the same transaction as each status change.
    sqlx::query(
        "CREATE TABLE audit (md5 TEXT, status TEXT);
         CREATE TRIGGER audit_status AFTER UPDATE OF status ON payments
         WHEN NEW.status != OLD.status BEGIN INSERT INTO audit VALUES (NEW.md5, NEW.status); END;",
    )
    .execute(&db)
    .await
    .unwrap();
    let cfg = e.config_file(&s, "");
    let mut md5s = Vec::new();
    for i in 0..60 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(i * 40)).await);
    }
    let mut child = spawn_daemon(&cfg, &e.dir.path().join("run1.log"));
    wait_for("some payments confirmed", LIMIT, || async {
        (count(&db, "paid").await >= 10).then_some(())
    })
    .await;
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    child.wait().unwrap();
    let paid_at_kill = count(&db, "paid").await;
    assert!(paid_at_kill < 60, "the kill came too late to test anything");
    let mut child = spawn_daemon(&cfg, &e.dir.path().join("run2.log"));
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let per_md5: Vec<(String, i64)> =
        sqlx::query_as("SELECT md5, count(*) FROM audit GROUP BY md5")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(per_md5.len(), 60);
    assert!(per_md5.iter().all(|(_, n)| *n == 1), "{per_md5:?}");
    let sim_txs = e.sim.sim.transactions();
    for md5 in &md5s {
        let hash: String = sqlx::query_scalar("SELECT bakong_hash FROM payments WHERE md5 = ?1")
            .bind(md5)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(
            hash,
            sim_txs.iter().find(|t| &t.ids.md5 == md5).unwrap().ids.hash
        );
    }
}

#[tokio::test]
async fn a_merchant_inserting_while_the_daemon_writes_meets_no_lock_error() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.max_requests_per_second = 1000.0;
    s.poller.concurrency = 16;
    let db = e.merchant(&s).await;
    let cfg = e.config_file(&s, "");
    let mut child = spawn_daemon(&cfg, &e.dir.path().join("daemon.log"));
    // This process is the merchant: its own connection, 5 s busy timeout.
    let mut md5s = Vec::new();
    for i in 0..300 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(i % 5 * 10)).await);
    }
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let log = std::fs::read_to_string(e.dir.path().join("daemon.log")).unwrap();
    assert!(!log.contains("database is locked"), "{log}");
}

#[tokio::test]
async fn logs_carry_one_event_per_final_status_and_never_the_token() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let cfg = e.config_file(&s, "");
    e.sim.sim.revoke_tokens(EMAIL);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let log_path = e.dir.path().join("daemon.log");
    let mut child = spawn_daemon(&cfg, &log_path);
    assert_eq!(final_status(&db, &md5, LIMIT).await, "paid");
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finals: Vec<_> = events
        .iter()
        .filter(|v| v["message"] == "payment paid")
        .collect();
    assert_eq!(finals.len(), 1, "{log}");
    assert_eq!(finals[0]["md5"], md5.as_str());
    assert!(finals[0]["seconds_to_confirm"].is_f64());
    assert!(
        events
            .iter()
            .any(|v| v["message"].as_str().unwrap_or("").contains("renewed")),
        "{log}"
    );
    let renewed = std::fs::read_to_string(&s.bakong.token_file).unwrap();
    assert!(
        !log.contains(&e.token),
        "the configured token leaked into the log"
    );
    assert!(
        !log.contains(renewed.trim()),
        "the renewed token leaked into the log"
    );
}
