//! The whole life of a payment (issue 23), on both backends: the late
//! watch (money after `expired`, `failed` or `cancelled` becomes
//! `paid_late` or `mismatch`, once, with its event and NOTIFY), its window,
//! its place behind fresh payments and inside the budget, `cancel` in each
//! state, the shop's columns refused at INSERT, and `report`.

use std::time::Duration;

use bakong_simulator::{NewTransaction, OutcomeKind};
use rust_decimal::Decimal;

use crate::backends::{backend_env, both, BackendEnv, Conn, Db};
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

both!(
    late_money_after_expired_failed_or_cancelled_is_recorded_once,
    nothing_is_watched_after_late_watch,
    the_late_watch_waits_while_the_daily_budget_is_spent,
    a_fresh_payment_goes_before_a_late_backlog,
    cancel_answers_for_each_state,
    the_shop_columns_are_checked_at_insert,
    the_report_adds_up_the_rows_exactly,
);

/// Inserts a row as a shop would, expiring `expires_ms` from now.
async fn insert(b: &BackendEnv, md5: &str, amount: &str, cur: &str, expires_ms: i64, order: &str) {
    let secs = expires_ms as f64 / 1000.0;
    match &b.conn {
        Conn::Sqlite(p) => sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at, order_id, metadata)
             VALUES (?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%f', 'now', ?4), ?5, '{\"table\":4}')",
        )
        .bind(md5)
        .bind(amount)
        .bind(cur)
        .bind(format!("{secs:+} seconds"))
        .bind(order)
        .execute(p)
        .await
        .map(|_| ()),
        Conn::Postgres(p) => sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at, order_id, metadata)
             VALUES ($1, $2::numeric, $3, now() + make_interval(secs => $4), $5, '{\"table\":4}')",
        )
        .bind(md5)
        .bind(amount)
        .bind(cur)
        .bind(secs)
        .bind(order)
        .execute(p)
        .await
        .map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("insert {md5}: {e}"));
}

/// The event types of a payment, oldest first, with their payloads.
async fn events(b: &BackendEnv, md5: &str) -> Vec<(String, serde_json::Value)> {
    let rows: Vec<(String, String)> = match &b.conn {
        Conn::Sqlite(p) => sqlx::query_as(
            "SELECT type, payload FROM payment_events WHERE md5 = ?1 ORDER BY created_ms, id",
        )
        .bind(md5)
        .fetch_all(p)
        .await
        .unwrap(),
        Conn::Postgres(p) => sqlx::query_as(
            "SELECT type, payload FROM payment_events WHERE md5 = $1 ORDER BY created_ms, id",
        )
        .bind(md5)
        .fetch_all(p)
        .await
        .unwrap(),
    };
    rows.into_iter()
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap()))
        .collect()
}

/// The row's late_check_at (None: not watched).
async fn late_check_at(b: &BackendEnv, md5: &str) -> Option<i64> {
    match &b.conn {
        Conn::Sqlite(p) => sqlx::query_scalar("SELECT late_check_at FROM payments WHERE md5 = ?1")
            .bind(md5)
            .fetch_one(p)
            .await
            .unwrap(),
        Conn::Postgres(p) => {
            sqlx::query_scalar("SELECT late_check_at FROM payments WHERE md5 = $1")
                .bind(md5)
                .fetch_one(p)
                .await
                .unwrap()
        }
    }
}

/// Waits until the row has `status`.
async fn until_status(b: &BackendEnv, md5: &str, status: &str) {
    wait_for(&format!("{md5} to be {status}"), LIMIT, || async {
        (b.status(md5).await == status).then_some(())
    })
    .await;
}

fn sim_requests(b: &BackendEnv) -> u64 {
    b.e.sim.sim.stats().total
}

async fn late_money_after_expired_failed_or_cancelled_is_recorded_once(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut listener = match &b.conn {
        Conn::Postgres(_) => {
            let mut l = sqlx::postgres::PgListener::connect(&b.url).await.unwrap();
            l.listen("bakong_payments").await.unwrap();
            Some(l)
        }
        Conn::Sqlite(_) => None,
    };
    let mut s = b.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    let d = start(s.clone());
    // Expired, then paid as expected: paid_late.
    let expired = b.register(
        "5.00",
        "USD",
        NewTransaction {
            from_account: Some("late@abaa".into()),
            outcome: OutcomeKind::Never,
            ..Default::default()
        },
    );
    insert(&b, &expired, "5.00", "USD", 200, "order-expired").await;
    // Failed, and the customer retries: paid_late.
    let failed = b.register(
        "4000",
        "KHR",
        NewTransaction {
            outcome: OutcomeKind::Failed,
            ..Default::default()
        },
    );
    insert(&b, &failed, "4000", "KHR", 200, "order-failed").await;
    // Cancelled by the shop, then paid a different amount: mismatch.
    let cancelled = b.register(
        "2.50",
        "USD",
        NewTransaction {
            outcome: OutcomeKind::Never,
            paid_amount: Some(Decimal::new(200, 2)),
            ..Default::default()
        },
    );
    insert(&b, &cancelled, "2.50", "USD", 60_000, "order-cancelled").await;
    let cfg = b.e.config_file(&s, "");
    let out = bin!()
        .config(&cfg)
        .args(["cancel", "--order-id", "order-cancelled"])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("cancelled order"), "{}", out.stdout);
    until_status(&b, &expired, "expired").await;
    until_status(&b, &failed, "failed").await;
    assert_eq!(b.status(&cancelled).await, "cancelled");
    // The money comes late.
    for md5 in [&expired, &failed, &cancelled] {
        assert!(late_check_at(&b, md5).await.is_some(), "{md5} is watched");
        b.e.sim.sim.pay_again(md5, Duration::ZERO).unwrap();
    }
    until_status(&b, &expired, "paid_late").await;
    until_status(&b, &failed, "paid_late").await;
    until_status(&b, &cancelled, "mismatch").await;
    let row = b.confirmation(&expired).await;
    assert_eq!(
        (
            row.from_account_id.as_deref(),
            row.to_account_id.as_deref(),
            row.paid_amount.as_deref()
        ),
        (Some("late@abaa"), Some(ACCOUNT), Some("5"))
    );
    assert_eq!(
        b.confirmation(&cancelled).await.paid_amount.as_deref(),
        Some("2")
    );
    for (md5, want) in [
        (&expired, ["payment.expired", "payment.paid_late"]),
        (&failed, ["payment.failed", "payment.paid_late"]),
        (&cancelled, ["payment.cancelled", "payment.mismatch"]),
    ] {
        let ev = events(&b, md5).await;
        let types: Vec<&str> = ev.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            types, want,
            "{md5}: one event per status, the late one once"
        );
        let data = &ev[1].1["data"];
        assert_eq!(data["status"], want[1].trim_start_matches("payment."));
        assert!(data["order_id"].as_str().unwrap().starts_with("order-"));
        assert_eq!(data["metadata"]["table"], 4, "{data}");
        assert!(late_check_at(&b, md5).await.is_none(), "no longer watched");
    }
    // Once: a final row is no longer watched (checked above), and a
    // result meant for its earlier status no longer matches the guard.
    if let Some(l) = listener.as_mut() {
        let want = [
            (cancelled.clone(), "cancelled".to_string()),
            (expired.clone(), "paid_late".to_string()),
            (failed.clone(), "paid_late".to_string()),
            (cancelled.clone(), "mismatch".to_string()),
        ];
        let mut seen = Vec::new();
        while !want.iter().all(|w| seen.contains(w)) {
            let n = tokio::time::timeout(LIMIT, l.recv())
                .await
                .unwrap_or_else(|_| panic!("NOTIFY {want:?}, seen only {seen:?}"))
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
            seen.push((
                v["md5"].as_str().unwrap().to_string(),
                v["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    d.stop().await;
}

/// A row an earlier release (or the daemon) left `expired` just now, under
/// the late watch from the start (as the migration leaves such rows).
async fn insert_expired(b: &BackendEnv, md5: &str, amount: &str, cur: &str) {
    b.exec(
        &format!(
            "INSERT INTO payments (md5, amount, currency, status, confirmed_at, late_check_at)
             VALUES ('{md5}', '{amount}', '{cur}', 'expired', strftime('%Y-%m-%d %H:%M:%f', 'now'), 0)"
        ),
        &format!(
            "INSERT INTO payments (md5, amount, currency, status, confirmed_at, late_check_at)
             VALUES ('{md5}', {amount}, '{cur}', 'expired', now(), 0)"
        ),
    )
    .await;
}

async fn nothing_is_watched_after_late_watch(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let mut s = b.settings();
    s.poller.late_watch = Duration::from_millis(400);
    let d = start(s);
    let md5 = b.register(
        "1.00",
        "USD",
        NewTransaction {
            outcome: OutcomeKind::Never,
            ..Default::default()
        },
    );
    insert(&b, &md5, "1.00", "USD", 100, "order-1").await;
    until_status(&b, &md5, "expired").await;
    wait_for("the late watch to end", LIMIT, || async {
        late_check_at(&b, &md5).await.is_none().then_some(())
    })
    .await;
    b.e.sim.sim.pay_again(&md5, Duration::ZERO).unwrap();
    // The daemon goes on working (a fresh payment paid after a while is
    // confirmed, many rounds later) without looking at the old row again.
    let witness = b.payment("2.00", "USD", paid_after(500)).await;
    assert_eq!(b.final_status(&witness, LIMIT).await, "paid");
    assert_eq!(
        b.status(&md5).await,
        "expired",
        "money after the watch is not looked for"
    );
    assert_eq!(events(&b, &md5).await.len(), 1);
    d.stop().await;
}

async fn the_late_watch_waits_while_the_daily_budget_is_spent(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let late = b.register("3.00", "USD", paid_after(0));
    insert_expired(&b, &late, "3.00", "USD").await;
    // 95 of 100 spent today: only the reserve is open (the last checks of
    // payments at their deadline); the late watch waits.
    b.exec(
        "UPDATE gate_state SET spend_day = strftime('%Y-%m-%d', 'now'), spend = 95",
        "UPDATE gate_state SET spend_day = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'), spend = 95",
    )
    .await;
    let mut s = b.settings();
    s.poller.daily_request_budget = Some(100);
    let d = start(s);
    // A payment at its deadline gets its last check from the reserve.
    let witness = b.register(
        "1.00",
        "USD",
        NewTransaction {
            outcome: OutcomeKind::Never,
            ..Default::default()
        },
    );
    insert(&b, &witness, "1.00", "USD", 100, "order-w").await;
    until_status(&b, &witness, "expired").await;
    assert_eq!(
        b.status(&late).await,
        "expired",
        "no late check inside the reserve"
    );
    d.stop().await;
}

async fn a_fresh_payment_goes_before_a_late_backlog(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let backlog: Vec<String> = (0..300).map(|_| new_md5()).collect();
    for md5 in &backlog {
        insert_expired(&b, md5, "1.00", "USD").await;
    }
    let mut s = b.settings();
    s.poller.max_requests_per_second = 2.0;
    s.poller.bulk = bakong_poller::config::BulkMode::Always;
    let d = start(s);
    // The late watch is at work (its first batch went).
    wait_for("the late watch to start", LIMIT, || async {
        (sim_requests(&b) >= 1).then_some(())
    })
    .await;
    let fresh = b.payment("7.00", "USD", paid_after(0)).await;
    assert_eq!(b.final_status(&fresh, LIMIT).await, "paid");
    // 300 rows are six list requests, three seconds at 2/s: the fresh one
    // went in the next request or the one after, not behind the backlog.
    let mut unchecked = 0;
    for md5 in &backlog {
        if late_check_at(&b, md5).await == Some(0) {
            unchecked += 1;
        }
    }
    assert!(
        unchecked >= 100,
        "the fresh payment was confirmed before the late backlog: {unchecked} of 300 not yet checked"
    );
    d.stop().await;
}

async fn cancel_answers_for_each_state(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let s = b.settings();
    let cfg = b.e.config_file(&s, "");
    let cancel = |args: Vec<String>| {
        let cfg = cfg.clone();
        async move { bin!().config(&cfg).args(args).run().await }
    };
    let d = start(s.clone());
    let paid = b.payment("1.00", "USD", paid_after(0)).await;
    assert_eq!(b.final_status(&paid, LIMIT).await, "paid");
    d.stop().await;
    let pending = new_md5();
    insert(&b, &pending, "1.00", "USD", 60_000, "order-9").await;
    let rows = bakong_poller::app::open_store(&s).await.unwrap();
    let listed = rows.list(None, 10).await.unwrap();
    rows.close().await;
    let row = listed.iter().find(|r| r.md5 == pending).unwrap();
    assert_eq!(row.public_id.len(), 32, "the table made a public id");
    assert_eq!(row.order_id.as_deref(), Some("order-9"));
    // By its public id: cancelled, with its event.
    let out = cancel(vec![
        "cancel".into(),
        row.public_id.clone(),
        "--json".into(),
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["cancelled"][0], row.id.0);
    assert_eq!(events(&b, &pending).await[0].0, "payment.cancelled");
    // Again, by its row id: already final, exit 1 naming the status.
    let out = cancel(vec!["cancel".into(), row.id.0.to_string()]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stdout.contains("is cancelled"), "{}", out.stdout);
    let out = cancel(vec!["cancel".into(), "--md5".into(), paid.clone()]).await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("is paid"), "{}", out.stdout);
    // Unknown: exit 3, with --json the error object.
    let out = cancel(vec![
        "cancel".into(),
        "--md5".into(),
        new_md5(),
        "--json".into(),
    ])
    .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("\"exit_code\":3"), "{}", out.stderr);
    let out = cancel(vec![
        "cancel".into(),
        "--order-id".into(),
        "no-such-order".into(),
    ])
    .await;
    assert_eq!(out.code, 3);
    // A malformed id is a usage error naming it.
    let out = cancel(vec!["cancel".into(), "not-an-id".into()]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not-an-id"), "{}", out.stderr);
    assert_eq!(events(&b, &pending).await.len(), 1, "one cancel, one event");
}

async fn the_shop_columns_are_checked_at_insert(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let try_insert = |metadata: String, qr: Option<String>, md5: String| {
        let conn = &b.conn;
        async move {
            match conn {
                Conn::Sqlite(p) => sqlx::query(
                    "INSERT INTO payments (md5, amount, currency, metadata, qr) VALUES (?1, '1', 'USD', ?2, ?3)",
                )
                .bind(md5)
                .bind(metadata)
                .bind(qr)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
                Conn::Postgres(p) => sqlx::query(
                    "INSERT INTO payments (md5, amount, currency, metadata, qr) VALUES ($1, 1, 'USD', $2::jsonb, $3)",
                )
                .bind(md5)
                .bind(metadata)
                .bind(qr)
                .execute(p)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            }
        }
    };
    let big = format!("{{\"note\":\"{}\"}}", "x".repeat(4100));
    let e = try_insert(big, None, new_md5())
        .await
        .expect_err("over 4 KB");
    assert!(
        e.contains("payments_metadata_json_object_at_most_4kb"),
        "{e}"
    );
    let e = try_insert("[1,2]".into(), None, new_md5())
        .await
        .expect_err("not an object");
    assert!(
        e.contains("payments_metadata_json_object_at_most_4kb"),
        "{e}"
    );
    try_insert("{\"table\":4}".into(), None, new_md5())
        .await
        .unwrap();
    // A QR whose md5 is not the row's.
    let qr = sdk_qr();
    let other = new_md5();
    match db {
        Db::Postgres => {
            let e = try_insert("{}".into(), Some(qr.clone()), other.clone())
                .await
                .expect_err("md5 is not the QR's");
            assert!(e.contains("payments_qr_md5"), "{e}");
        }
        Db::Sqlite => {
            // SQLite has no md5(): the daemon parks the row naming both.
            try_insert("{}".into(), Some(qr.clone()), other.clone())
                .await
                .unwrap();
            let d = start(b.settings());
            let k = wait_for("the row parked", LIMIT, || async {
                let k = b.bookkeeping(&other).await;
                (k.last_answer.as_deref() == Some("invalid_row")).then_some(k)
            })
            .await;
            let why = k.last_error.unwrap_or_default();
            assert!(why.contains("qr") && why.contains(&other), "{why}");
            assert_eq!(b.status(&other).await, "pending");
            d.stop().await;
        }
    }
    // The right md5 goes in.
    try_insert(
        "{}".into(),
        Some(qr.clone()),
        bakong_poller::khqr::md5_hex(&qr),
    )
    .await
    .unwrap();
}

/// A KHQR string made by NBC's SDK (tests/fixtures/khqr-sdk).
fn sdk_qr() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/khqr-sdk/sdk-vectors.json"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["qr"].as_str())
        .find(|q| {
            bakong_poller::khqr::decode(q).is_ok_and(|k| k.amount.is_some() && k.currency.is_some())
        })
        .map(String::from)
        .unwrap()
}

async fn the_report_adds_up_the_rows_exactly(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    // (status, amount, currency, paid amount, paid currency, day)
    let rows = [
        ("paid", "0.10", "USD", Some(("0.10", "USD")), "2026-11-30"),
        ("paid", "0.20", "USD", Some(("0.20", "USD")), "2026-11-30"),
        ("paid", "4000", "KHR", Some(("4000", "KHR")), "2026-11-30"),
        (
            "paid_late",
            "5.00",
            "USD",
            Some(("5.00", "USD")),
            "2026-11-30",
        ),
        (
            "mismatch",
            "1.00",
            "USD",
            Some(("4100", "KHR")),
            "2026-11-30",
        ),
        ("expired", "3.00", "USD", None, "2026-11-30"),
        ("cancelled", "2.50", "USD", None, "2026-12-01"),
        ("failed", "8000", "KHR", None, "2026-12-01"),
        ("paid", "9.99", "USD", Some(("9.99", "USD")), "2026-12-02"),
    ];
    for (status, amount, cur, paid, day) in rows {
        let md5 = new_md5();
        let (pa, pc) = paid.map_or(("NULL".to_string(), "NULL".to_string()), |(a, c)| {
            (format!("'{a}'"), format!("'{c}'"))
        });
        let paid_at = if paid.is_some() {
            format!("'{day} 10:00:00'")
        } else {
            "NULL".into()
        };
        b.exec(
            &format!(
                "INSERT INTO payments (md5, amount, currency, status, paid_amount, paid_currency, paid_at, confirmed_at)
                 VALUES ('{md5}', '{amount}', '{cur}', '{status}', {pa}, {pc}, {paid_at}, '{day} 10:00:01')"
            ),
            &format!(
                "INSERT INTO payments (md5, amount, currency, status, paid_amount, paid_currency, paid_at, confirmed_at)
                 VALUES ('{md5}', {amount}, '{cur}', '{status}', {pa}::numeric, {pc}, {paid_at}::timestamptz, '{day} 10:00:01+00')"
            ),
        )
        .await;
    }
    let s = b.settings();
    let cfg = b.e.config_file(&s, "");
    let out = bin!()
        .config(&cfg)
        .args([
            "report",
            "--from",
            "2026-11-30",
            "--to",
            "2026-12-01",
            "--json",
        ])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let line = |day: &str, cur: &str| {
        v["days"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["day"] == day && l["currency"] == cur)
            .cloned()
            .unwrap_or_else(|| panic!("no line {day} {cur} in {v}"))
    };
    let usd = line("2026-11-30", "USD");
    assert_eq!(
        (
            usd["paid"]["count"].as_i64(),
            usd["paid"]["amount"].as_str()
        ),
        (Some(2), Some("0.3"))
    );
    assert_eq!(usd["paid_late"]["amount"], "5");
    assert_eq!(usd["expired"]["count"], 1);
    let khr = line("2026-11-30", "KHR");
    assert_eq!(khr["paid"]["amount"], "4000");
    assert_eq!(
        khr["mismatch"]["amount"], "4100",
        "money received, in its currency"
    );
    let d1 = line("2026-12-01", "USD");
    assert_eq!(d1["cancelled"]["amount"], "2.5");
    let total_usd = v["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["currency"] == "USD")
        .unwrap();
    assert_eq!(
        total_usd["paid"]["count"], 2,
        "the 2026-12-02 row is outside the range"
    );
    let out = bin!()
        .config(&cfg)
        .args([
            "report",
            "--from",
            "2026-11-30",
            "--to",
            "2026-12-01",
            "--csv",
        ])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with("day,currency,paid_count,paid_amount,paid_late_count"),
        "{}",
        lines[0]
    );
    assert!(
        lines.contains(&"2026-11-30,USD,2,0.30,1,5.00,0,0.00,0,0.00,1,3.00,0,0.00"),
        "{}",
        out.stdout
    );
    assert!(
        lines.iter().any(|l| l.starts_with("total,KHR,1,4000,")),
        "{}",
        out.stdout
    );
}

/// `new` keeps the QR, the order and the metadata; `add --qr` takes md5,
/// amount and currency from the QR and refuses a disagreement; `list
/// --json` carries them.
#[tokio::test]
async fn new_and_add_keep_the_qr_the_order_and_the_metadata() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(
        &s,
        "\n[merchant]\naccount_id = \"shop@devb\"\nname = \"Sok Chea Shop\"\n",
    );
    let run = |args: Vec<&str>| {
        let cfg = cfg.clone();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        async move { bin!().config(&cfg).args(args).run().await }
    };
    let out = run(vec![
        "new",
        "--amount",
        "5.00",
        "--currency",
        "USD",
        "--order-id",
        "order-7",
        "--metadata",
        r#"{"table": 4}"#,
        "--json",
    ])
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let opened: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(opened["order_id"], "order-7");
    assert_eq!(opened["public_id"].as_str().unwrap().len(), 32);
    let out = run(vec!["list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows[0]["qr"], opened["qr"], "new stores the QR");
    assert_eq!(rows[0]["metadata"]["table"], 4);
    assert_eq!(rows[0]["public_id"], opened["public_id"]);

    let qr = sdk_qr();
    let md5 = bakong_poller::khqr::md5_hex(&qr);
    let out = run(vec!["add", "--qr", &qr, "--md5", &new_md5()]).await;
    assert_eq!(out.code, 2, "a disagreeing md5 is refused");
    assert!(
        out.stderr.contains("is not the md5 of --qr"),
        "{}",
        out.stderr
    );
    let out = run(vec!["add", "--qr", &qr, "--amount", "999999", "--json"]).await;
    assert_eq!(
        out.code, 2,
        "a disagreeing amount is refused: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("disagrees with the QR's amount"),
        "{}",
        out.stderr
    );
    let out = run(vec!["add", "--qr", &qr, "--order-id", "order-8", "--json"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let added: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(added["md5"], md5.as_str());
    let out = run(vec!["list", "--json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows[0]["qr"], qr.as_str());
    assert_eq!(rows[0]["order_id"], "order-8");
    let out = run(vec![
        "add",
        "--metadata",
        "[1]",
        "--md5",
        &new_md5(),
        "--amount",
        "1",
        "--currency",
        "USD",
    ])
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--metadata"), "{}", out.stderr);
}
