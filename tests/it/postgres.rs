//! The PostgreSQL backend against a real server (tests/it/pg.rs): the
//! table's refusals, claims shared by several daemons, final statuses
//! written and announced once, and the search_path schema.

use std::collections::HashSet;
use std::time::Duration;

use bakong_poller::money::Currency;
use bakong_poller::payment::{Confirmation, FinalStatus, Lane, PaymentId, Status};
use bakong_poller::store::postgres::{PgStore, CHANNEL};
use bakong_poller::store::{Applied, Claimed, Held, NewPayment, Write};
use bakong_poller::store::{Backend as _, Common as _};
use chrono::Utc;
use rust_decimal::Decimal;
use sqlx::postgres::PgListener;
use test_support::pg_cluster::TempCluster;

use crate::helpers::wait_for;
use crate::pg;

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(900);

fn md5(i: usize) -> String {
    format!("{i:032x}")
}

fn tx(amount: &str) -> Box<Confirmation> {
    Box::new(Confirmation {
        hash: "ab".repeat(32),
        from_account_id: Some("payer@abaa".into()),
        to_account_id: "shop@devb".into(),
        paid_amount: amount.parse::<Decimal>().unwrap(),
        paid_currency: Currency::Usd,
        description: Some("order 7".into()),
        paid_at: chrono::DateTime::from_timestamp_millis(1_764_000_000_000),
    })
}

fn new_payment(md5: &str, amount: &str, currency: &str, expires: Option<&str>) -> NewPayment {
    NewPayment {
        order_id: None,
        metadata: None,
        qr: None,
        public_id: None,
        redirect_url: None,
        md5: md5.into(),
        amount: amount.into(),
        currency: currency.parse().unwrap(),
        expires_at: expires.map(|e| {
            chrono::NaiveDateTime::parse_from_str(e, "%Y-%m-%d %H:%M:%S")
                .unwrap()
                .and_utc()
        }),
    }
}

/// A database as a release with the first `n` PostgreSQL migrations left it.
async fn release_db(url: &str, n: usize) -> sqlx::PgPool {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    let old = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&old)
        .await
        .unwrap();
    old
}

async fn insert(store: &PgStore, md5: &str, amount: &str, currency: &str, expires: Option<&str>) {
    store
        .insert_payment(&new_payment(md5, amount, currency, expires))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_postgres_table_refuses_bad_rows_at_insert_time() {
    let Some(store) = pg::store().await else {
        return;
    };
    let db = store.pool();
    let good = "b1c250304b8594e4c6b53dd44791b57a";
    // As a merchant's driver sends them: text parameters, typed by the SQL.
    let try_insert = |md5: &'static str, amount: &'static str, currency, expires| {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at)
             VALUES ($1, $2::numeric, $3, $4::timestamptz)",
        )
        .bind(md5)
        .bind(amount)
        .bind(currency)
        .bind(expires)
        .execute(db)
    };
    for (md5, amount, currency, expires) in [
        ("B1C250304B8594E4C6B53DD44791B57A", "1", "USD", None),
        ("b1c250304b8594e4c6b53dd44791b57", "1", "USD", None),
        ("z1c250304b8594e4c6b53dd44791b57a", "1", "USD", None),
        (good, "0", "USD", None),
        (good, "0.00", "USD", None),
        (good, "-1", "USD", None),
        (good, "1.2.3", "USD", None),
        (good, "abc", "USD", None),
        (good, "1", "EUR", None),
        (good, "1", "usd", None),
        (good, "1", "USD", Some("next tuesday")),
        // Values a KHQR cannot carry.
        (good, "1.001", "USD", None),
        (good, "0.001", "USD", None),
        (good, "1.5", "KHR", None),
        (good, "4000.01", "KHR", None),
        (good, "10000000000000", "KHR", None),
        (good, "NaN", "USD", None),
        (good, "Infinity", "USD", None),
    ] {
        let r = try_insert(md5, amount, currency, expires).await;
        assert!(r.is_err(), "accepted {md5} {amount} {currency} {expires:?}");
    }
    // Compared by value: trailing zeros are fine.
    for (i, (amount, currency)) in [
        ("1.50", "USD"),
        ("1.500", "USD"),
        ("4000", "KHR"),
        ("4000.00", "KHR"),
    ]
    .into_iter()
    .enumerate()
    {
        let m: &'static str = Box::leak(md5(i).into_boxed_str());
        try_insert(m, amount, currency, Some("2026-11-24 10:15:00"))
            .await
            .unwrap_or_else(|e| panic!("refused {amount} {currency}: {e}"));
    }
    // A number inserted by a client is accepted, and kept exact.
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES ($1, $2, 'USD')")
        .bind(good)
        .bind(1.5_f64)
        .execute(db)
        .await
        .unwrap();
    let amount: String = sqlx::query_scalar("SELECT amount::text FROM payments WHERE md5 = $1")
        .bind(good)
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(amount, "1.5");
    let dup = sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES ($1, 1, 'USD')")
        .bind(good)
        .execute(db)
        .await;
    assert!(dup.is_err(), "a duplicate md5 was accepted");
}

#[tokio::test]
async fn two_daemons_claiming_at_once_never_get_the_same_row() {
    let Some((first, url)) = pg::store_and_url().await else {
        return;
    };
    let n = 400;
    let values: Vec<String> = (0..n)
        .map(|i| format!("('{}', 1, 'USD')", md5(i)))
        .collect();
    sqlx::query(&format!(
        "INSERT INTO payments (md5, amount, currency) VALUES {}",
        values.join(",")
    ))
    .execute(first.pool())
    .await
    .unwrap();
    let second = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    let now = Utc::now().timestamp_millis();
    let claimer = |store: PgStore| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            // Two claimers per daemon, like its scan loop and a refill.
            loop {
                let batch = store.claim(now, LEASE, 7, TTL).await.unwrap();
                if batch.is_empty() {
                    break got;
                }
                got.extend(batch.into_iter().map(|c| c.id));
            }
        })
    };
    let tasks = [
        claimer(first.clone()),
        claimer(first.clone()),
        claimer(second.clone()),
        claimer(second.clone()),
    ];
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_claimer.push(got.len());
        all.extend(got);
    }
    let distinct: HashSet<PaymentId> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a row was claimed twice");
    assert_eq!(all.len(), n, "every due row was claimed: {per_claimer:?}");
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM payments WHERE lease_id IS NOT NULL AND next_check_at = $1",
    )
    .bind(now + LEASE.as_millis() as i64)
    .fetch_one(first.pool())
    .await
    .unwrap();
    assert_eq!(held, n as i64, "each claimed row is pushed past its lease");
}

#[tokio::test]
async fn fresh_payments_are_claimed_before_older_due_ones_on_postgres() {
    let Some(store) = pg::store().await else {
        return;
    };
    for i in 0..3 {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, lane, next_check_at)
             VALUES ($1, 1, 'USD', 1, $2)",
        )
        .bind(md5(i))
        .bind(i as i64)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let fresh = store
        .insert_payment(&new_payment(&md5(99), "1", "USD", None))
        .await
        .unwrap();
    let now = 1_000_000;
    let first = store.claim(now, LEASE, 1, TTL).await.unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), vec![fresh]);
    let c = &first[0];
    assert_eq!((c.md5.as_str(), c.amount.as_str()), (md5(99).as_str(), "1"));
    let (created, expires) = (c.created_ms.unwrap(), c.expires_ms.unwrap());
    assert_eq!(
        expires - created,
        TTL.as_millis() as i64,
        "no expires_at: created + ttl"
    );
    let rest = store.claim(now, LEASE, 10, TTL).await.unwrap();
    assert_eq!(rest.len(), 3, "then the older ones, by due time");
    assert!(
        store.claim(now, LEASE, 10, TTL).await.unwrap().is_empty(),
        "leased rows are not claimed twice"
    );
    assert_eq!(
        store
            .due(now + LEASE.as_millis() as i64, 100)
            .await
            .unwrap(),
        4
    );
}

#[tokio::test]
async fn a_final_status_is_written_once_and_announced_once_with_the_exact_payload() {
    let Some(store) = pg::store().await else {
        return;
    };
    let mut listener = PgListener::connect_with(store.pool()).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    insert(&store, &md5(1), "5.00", "USD", None).await;
    insert(&store, &md5(2), "5.00", "USD", None).await;
    let claimed: Vec<Claimed> = store
        .claim(Utc::now().timestamp_millis(), LEASE, 10, TTL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let (a, b) = (&claimed[0], &claimed[1]);
    let paid = Write::Final {
        row: a.held(),
        status: FinalStatus::Paid,
        confirmation: Some(tx("5")),
        answer: "found",
    };
    assert_eq!(
        store
            .record(std::slice::from_ref(&paid), Utc::now())
            .await
            .unwrap(),
        vec![Applied::Written]
    );
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("no notification within 5 s")
        .unwrap();
    assert_eq!(n.channel(), "bakong_payments");
    assert_eq!(
        n.payload(),
        format!(r#"{{"md5": "{}", "status": "paid"}}"#, md5(1))
    );

    // A second final write for the same row changes nothing and announces
    // nothing: the next notification is the other row's.
    let again = Write::Final {
        row: a.held(),
        status: FinalStatus::Mismatch,
        confirmation: Some(tx("4")),
        answer: "found",
    };
    let expired = Write::Final {
        row: b.held(),
        status: FinalStatus::Expired,
        confirmation: None,
        answer: "not_found",
    };
    assert_eq!(
        store
            .record(&[again, paid, expired], Utc::now())
            .await
            .unwrap(),
        vec![Applied::Stale, Applied::Stale, Applied::Written]
    );
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("no notification within 5 s")
        .unwrap();
    assert_eq!(
        n.payload(),
        format!(r#"{{"md5": "{}", "status": "expired"}}"#, md5(2))
    );

    let rows = store.list(None, 10).await.unwrap();
    let row = rows.iter().find(|r| r.id == a.id).unwrap();
    assert_eq!(row.status, Status::Paid);
    assert_eq!(row.paid_amount.as_deref(), Some("5"));
    assert_eq!(row.paid_currency.as_deref(), Some("USD"));
    assert_eq!(row.bakong_hash.as_deref(), Some("ab".repeat(32).as_str()));
    assert!(row.paid_at.as_deref().unwrap().starts_with("2025-11-24"));
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.paid, counts.expired, counts.pending), (1, 1, 0));
    assert_eq!(store.paid_today().await.unwrap(), 1);
    assert!(store.last_answer_at().await.unwrap().is_some());
}

#[tokio::test]
async fn reschedules_and_releases_respect_the_lease_on_postgres() {
    let Some(store) = pg::store().await else {
        return;
    };
    for i in 0..3 {
        insert(&store, &md5(i), "1", "USD", None).await;
    }
    let claimed = store.claim(1_000, LEASE, 3, TTL).await.unwrap();
    let (a, b, c) = (&claimed[0], &claimed[1], &claimed[2]);
    let resched = |row: &Claimed, lease_id: i64, transient: bool| Write::Reschedule {
        row: Held {
            lease_id,
            ..row.held()
        },
        next_check_at: 5_000,
        answer: if transient { "http" } else { "not_found" },
        error: transient.then(|| "HTTP 502".to_string()),
        transient,
        lane: Lane::Old,
    };
    let writes = [
        resched(a, a.lease_id, true),
        resched(b, b.lease_id + 1, false),
        Write::Release { row: c.held() },
    ];
    store.record(&writes, Utc::now()).await.unwrap();
    let rows: Vec<(i64, i64, i32, i32, i16, Option<String>)> = sqlx::query_as(
        "SELECT id, next_check_at, checks, errors, lane, last_error FROM payments ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        rows[0],
        (a.id.0, 5_000, 0, 1, 1, Some("HTTP 502".into())),
        "transient error: errors + 1"
    );
    assert_eq!(
        rows[1].1,
        1_000 + LEASE.as_millis() as i64,
        "a stale lease changes nothing"
    );
    assert!(
        rows[2].1 <= Utc::now().timestamp_millis() && rows[2].1 > 1_000,
        "released: due now"
    );
    let b = store.bookkeeping(&a.md5).await.unwrap().unwrap();
    assert_eq!(
        (
            b.next_check_at,
            b.checks,
            b.errors,
            b.last_answer.as_deref()
        ),
        (5_000, 0, 1, Some("http"))
    );
    assert!(store.bookkeeping(&md5(77)).await.unwrap().is_none());
    // All three are pending; with a 900 s life none is overdue now, all
    // are an hour from now.
    let now = Utc::now().timestamp_millis();
    let grace = Duration::from_millis(100);
    let f = store.pending_facts(now, TTL, grace).await.unwrap();
    assert_eq!((f.pending, f.overdue), (3, 0));
    assert!(f.oldest_created_ms.unwrap() <= now);
    let later = store
        .pending_facts(now + 3_600_000, TTL, grace)
        .await
        .unwrap();
    assert_eq!(later.overdue, 3);
}

#[tokio::test]
async fn the_tables_land_in_the_schema_the_search_path_names() {
    let Some(url) = pg::database().await else {
        return;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    // The application's own, unrelated payments table.
    sqlx::query("CREATE TABLE public.payments (order_no int PRIMARY KEY, total numeric)")
        .execute(&admin)
        .await
        .unwrap();
    let in_bakong = format!("{url}&options=-csearch_path%3Dbakong");

    // No such schema yet: migrate says what to do instead of failing later.
    let store = PgStore::connect(&in_bakong, Duration::from_secs(5))
        .await
        .unwrap();
    let err = store.migrate().await.unwrap_err().to_string();
    assert!(err.contains("CREATE SCHEMA"), "{err}");
    store.close().await;

    sqlx::query("CREATE SCHEMA bakong")
        .execute(&admin)
        .await
        .unwrap();
    let store = PgStore::connect(&in_bakong, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store
        .insert_payment(&new_payment(
            &md5(1),
            "1.50",
            "USD",
            Some("2026-11-24 10:15:00"),
        ))
        .await
        .unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_name IN ('payments', '_sqlx_migrations') ORDER BY 1, 2",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            ("bakong".into(), "_sqlx_migrations".into()),
            ("bakong".into(), "payments".into()),
            ("public".into(), "payments".into()),
        ]
    );
    let (md5_in_bakong, expires): (String, String) = sqlx::query_as(
        "SELECT md5, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM bakong.payments",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        (md5_in_bakong.as_str(), expires.as_str()),
        (md5(1).as_str(), "2026-11-24 10:15")
    );
    let theirs: i64 = sqlx::query_scalar("SELECT count(*) FROM public.payments")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(theirs, 0, "the application's table is untouched");
}

#[tokio::test]
async fn a_url_that_is_not_postgres_is_refused_naming_the_key() {
    let err = PgStore::connect("sqlite://payments.db", Duration::from_secs(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("database.url"), "{err}");
}

type Time = Option<chrono::DateTime<Utc>>;
type ImportedRow = (String, String, String, String, Time, Time, i32);

#[tokio::test]
async fn importing_a_sqlite_database_copies_every_row_once() {
    let Some((store, pg_url)) = pg::store_and_url().await else {
        return;
    };
    let target = bakong_poller::store::Store::connect(&pg_url, Duration::from_secs(5))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let old = bakong_poller::store::Store::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    old.migrate().await.unwrap();
    old.insert_payment(&new_payment(
        &md5(1),
        "5.00",
        "USD",
        Some("2026-11-24 10:15:00"),
    ))
    .await
    .unwrap();
    old.insert_payment(&new_payment(&md5(2), "4000", "KHR", None))
        .await
        .unwrap();
    // A row an older release let in: a precision no KHQR carries (today's
    // SQLite triggers refuse it, so they are dropped for the insert).
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP TRIGGER payments_usd_cents_on_insert;
         INSERT INTO payments (md5, amount, currency) VALUES ('{}', '1.001', 'USD');",
        md5(3)
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    let claimed = old
        .claim(Utc::now().timestamp_millis(), LEASE, 10, TTL)
        .await
        .unwrap();
    let first = claimed.iter().find(|c| c.md5 == md5(1)).unwrap();
    let second = claimed.iter().find(|c| c.md5 == md5(2)).unwrap();
    old.record(
        &[
            Write::Final {
                row: first.held(),
                status: FinalStatus::Paid,
                confirmation: Some(tx("5")),
                answer: "found",
            },
            Write::Reschedule {
                row: second.held(),
                next_check_at: 123_456,
                answer: "not_found",
                error: None,
                transient: false,
                lane: Lane::Old,
            },
        ],
        Utc::now(),
    )
    .await
    .unwrap();
    // The application already moved this one over by hand.
    insert(&store, &md5(2), "4000", "KHR", None).await;

    let report = target.import_from(&old).await.unwrap();
    assert_eq!(
        (report.read, report.copied, report.already_there),
        (3, 1, 1),
        "{report:?}"
    );
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert_eq!(report.refused[0].0, md5(3));
    assert!(
        report.refused[0].1.contains("payments_amount_precision"),
        "{report:?}"
    );

    let again = target.import_from(&old).await.unwrap();
    assert_eq!((again.copied, again.already_there), (0, 2), "{again:?}");

    let (status, amount, expires, paid_amount, paid_at, confirmed, checks): ImportedRow = sqlx::query_as(
        "SELECT status, amount::text, to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
                paid_amount::text, paid_at, confirmed_at, checks
         FROM payments WHERE md5 = $1",
    )
    .bind(md5(1))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (
            status.as_str(),
            amount.as_str(),
            expires.as_str(),
            paid_amount.as_str()
        ),
        ("paid", "5.00", "2026-11-24 10:15:00", "5")
    );
    assert_eq!(paid_at.unwrap().timestamp_millis(), 1_764_000_000_000);
    assert!(confirmed.is_some());
    assert_eq!(checks, 1);
    let copies: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(copies, 2);
    old.close().await;
}

#[tokio::test]
async fn a_store_reconnects_after_the_server_restarts_and_the_cluster_cleans_up() {
    if pg::cluster().await.is_none() {
        return;
    }
    // Its own cluster: stopping the shared one would break other tests.
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .unwrap();
    let root = cluster.socket_dir().to_path_buf();
    let url = cluster.create_database().await.unwrap();
    let store = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    insert(&store, &md5(1), "1", "USD", None).await;

    cluster.stop().unwrap();
    assert!(store.counts().await.is_err(), "the server is down");
    cluster.start_again().unwrap();
    let counts = wait_for("the pool to reconnect", Duration::from_secs(10), || async {
        store.counts().await.ok()
    })
    .await;
    assert_eq!(counts.pending, 1, "nothing lost across the restart");

    store.close().await;
    drop(cluster);
    assert!(!root.exists(), "{} left behind", root.display());
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_the_url_but_not_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://shop:s3cret@localhost/shop?host={}",
        dir.path().display()
    );
    let err = PgStore::connect(&url, Duration::from_millis(500))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("shop:***@localhost"), "{text}");
    assert!(text.contains("No such file"), "the cause is kept: {text}");
}

#[tokio::test]
async fn two_daemons_finishing_the_same_rows_change_each_status_once_without_deadlock() {
    let Some((first, url)) = pg::store_and_url().await else {
        return;
    };
    let second = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    // An auditor's trigger: one line per status change.
    sqlx::raw_sql(
        "CREATE TABLE audit (md5 text, old text, new text);
         CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status IS DISTINCT FROM OLD.status THEN
                 INSERT INTO audit VALUES (NEW.md5, OLD.status, NEW.status);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER audit AFTER UPDATE ON payments FOR EACH ROW EXECUTE FUNCTION audit();",
    )
    .execute(first.pool())
    .await
    .unwrap();
    let n = 100;
    for i in 0..n {
        insert(&first, &md5(i), "5", "USD", None).await;
    }
    let mut listener = PgListener::connect_with(first.pool()).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let claimed = first
        .claim(Utc::now().timestamp_millis(), LEASE, n, TTL)
        .await
        .unwrap();
    let finals = |status: FinalStatus| -> Vec<Write> {
        claimed
            .iter()
            .map(|c| Write::Final {
                row: c.held(),
                status,
                confirmation: Some(tx("5")),
                answer: "found",
            })
            .collect()
    };
    // Each daemon finishes all of them, in opposite orders, at once (as
    // when a lease ran out while a check was in flight).
    let race = |store: PgStore, mut writes: Vec<Write>, reverse: bool| {
        tokio::spawn(async move {
            if reverse {
                writes.reverse();
            }
            let mut applied = 0;
            for chunk in writes.chunks(25) {
                let done = store.record(chunk, Utc::now()).await.unwrap();
                applied += done.iter().filter(|d| d.written()).count();
            }
            applied
        })
    };
    let a = race(first.clone(), finals(FinalStatus::Paid), false);
    let b = race(second.clone(), finals(FinalStatus::Mismatch), true);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a + b, n, "each row written once: {a} + {b}");

    let changes: Vec<(String, i64)> =
        sqlx::query_as("SELECT md5, count(*) FROM audit GROUP BY md5 ORDER BY md5")
            .fetch_all(first.pool())
            .await
            .unwrap();
    assert_eq!(changes.len(), n);
    assert!(changes.iter().all(|(_, c)| *c == 1), "{changes:?}");

    let mut heard = HashSet::new();
    while heard.len() < n {
        let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("a notification per row within 5 s")
            .unwrap();
        assert!(
            heard.insert(note.payload().to_string()),
            "twice: {}",
            note.payload()
        );
    }
    // Nothing more was announced: the next notification is a new row's.
    insert(&first, &md5(999), "5", "USD", None).await;
    let last = first
        .claim(Utc::now().timestamp_millis(), LEASE, 1, TTL)
        .await
        .unwrap();
    let expired = Write::Final {
        row: last[0].held(),
        status: FinalStatus::Expired,
        confirmation: None,
        answer: "not_found",
    };
    first.record(&[expired], Utc::now()).await.unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        note.payload(),
        format!(r#"{{"md5": "{}", "status": "expired"}}"#, md5(999))
    );
}

/// Inserts `n` payments, claims them and records each paid, so each gets
/// an event (and a delivery per active receiver).
async fn paid_events(store: &PgStore, n: usize) {
    for i in 0..n {
        insert(store, &md5(i), "5.00", "USD", None).await;
    }
    let claimed = store
        .claim(Utc::now().timestamp_millis(), LEASE, n, TTL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), n);
    let writes: Vec<Write> = claimed
        .iter()
        .map(|c| Write::Final {
            row: c.held(),
            status: FinalStatus::Paid,
            confirmation: Some(tx("5")),
            answer: "found",
        })
        .collect();
    let applied = store.record(&writes, Utc::now()).await.unwrap();
    assert!(applied.iter().all(Applied::written));
}

#[tokio::test]
async fn each_final_status_writes_exactly_one_event_in_its_own_transaction_on_postgres() {
    let Some(store) = pg::store().await else {
        return;
    };
    store.set_receivers(&["webhook", "hook"]).await.unwrap();
    for i in 1..=3 {
        insert(&store, &md5(i), "5.00", "USD", None).await;
    }
    let claimed: Vec<Claimed> = store
        .claim(Utc::now().timestamp_millis(), LEASE, 10, TTL)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let (a, b, c) = (&claimed[0], &claimed[1], &claimed[2]);
    let paid = Write::Final {
        row: a.held(),
        status: FinalStatus::Paid,
        confirmation: Some(tx("5")),
        answer: "found",
    };
    assert_eq!(
        store
            .record(std::slice::from_ref(&paid), Utc::now())
            .await
            .unwrap(),
        vec![Applied::Written]
    );
    // A second final write for the same row changes nothing and writes no
    // second event.
    let again = Write::Final {
        row: a.held(),
        status: FinalStatus::Mismatch,
        confirmation: Some(tx("4")),
        answer: "found",
    };
    let expired = Write::Final {
        row: b.held(),
        status: FinalStatus::Expired,
        confirmation: None,
        answer: "not_found",
    };
    assert_eq!(
        store
            .record(&[again, paid, expired], Utc::now())
            .await
            .unwrap(),
        vec![Applied::Stale, Applied::Stale, Applied::Written]
    );
    let events: Vec<(String, String, String)> =
        sqlx::query_as("SELECT md5, type, payload FROM payment_events ORDER BY md5")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(events.len(), 2, "one event per final status: {events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        (md5(1).as_str(), "payment.paid")
    );
    assert_eq!(
        (events[1].0.as_str(), events[1].1.as_str()),
        (md5(2).as_str(), "payment.expired")
    );
    let body: serde_json::Value = serde_json::from_str(&events[0].2).unwrap();
    assert_eq!(body["data"]["amount"], "5.00");
    assert_eq!(body["data"]["status"], "paid");
    let deliveries: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_deliveries WHERE status = 'pending' AND attempts = 0",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(deliveries, 4, "one delivery per event and active receiver");

    // When the event cannot be written, the status is not written either:
    // both are in one transaction.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.md5 = '{}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON payment_events
             FOR EACH ROW EXECUTE FUNCTION refuse();",
        md5(3)
    ))
    .execute(store.pool())
    .await
    .unwrap();
    let failed = Write::Final {
        row: c.held(),
        status: FinalStatus::Failed,
        confirmation: None,
        answer: "failed",
    };
    // The write fails alone (its savepoint rolls back), reported as such.
    let applied = store.record(&[failed], Utc::now()).await.unwrap();
    assert!(
        matches!(&applied[0], Applied::Failed(e) if e.contains("refused by the test")),
        "{applied:?}"
    );
    assert_eq!(
        store.status_of(&md5(3)).await.unwrap(),
        Some(Status::Pending)
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 2, "no event without its status");
}

#[tokio::test]
async fn two_claimers_never_get_the_same_delivery_on_postgres() {
    let Some((first, url)) = pg::store_and_url().await else {
        return;
    };
    first.set_receivers(&["webhook"]).await.unwrap();
    let n = 300;
    paid_events(&first, n).await;
    let second = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    let now = Utc::now().timestamp_millis();
    let claimer = |store: PgStore| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim_deliveries(now, LEASE, 7, &["webhook"])
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break got;
                }
                got.extend(batch);
            }
        })
    };
    let tasks = [
        claimer(first.clone()),
        claimer(first.clone()),
        claimer(second.clone()),
        claimer(second.clone()),
    ];
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_claimer.push(got.len());
        all.extend(got);
    }
    let distinct: HashSet<(String, String)> = all
        .iter()
        .map(|d| (d.event_id.clone(), d.receiver.clone()))
        .collect();
    assert_eq!(distinct.len(), all.len(), "a delivery was claimed twice");
    assert_eq!(
        all.len(),
        n,
        "every due delivery was claimed: {per_claimer:?}"
    );
    assert!(all
        .iter()
        .all(|d| d.event_type == "payment.paid" && d.payload.contains(&d.md5) && d.attempts == 0));
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_deliveries WHERE lease_id IS NOT NULL AND next_attempt_at = $1",
    )
    .bind(now + LEASE.as_millis() as i64)
    .fetch_one(first.pool())
    .await
    .unwrap();
    assert_eq!(
        held, n as i64,
        "each claimed delivery is pushed past its lease"
    );
    // A receiver nobody asked for gets nothing.
    assert!(first
        .claim_deliveries(now + 2 * LEASE.as_millis() as i64, LEASE, 10, &["hook"])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn deliveries_finish_release_list_and_redeliver_under_their_lease_on_postgres() {
    use bakong_poller::store::{AttemptRecord, DeliveryOutcome, DeliveryStatus};
    let Some((store, url)) = pg::store_and_url().await else {
        return;
    };
    store.set_receivers(&["webhook"]).await.unwrap();
    paid_events(&store, 3).await;
    let now = Utc::now().timestamp_millis();
    let claims = store
        .claim_deliveries(now, LEASE, 10, &["webhook"])
        .await
        .unwrap();
    assert_eq!(claims.len(), 3);
    let attempt = |status: Option<i64>, error: Option<&str>| AttemptRecord {
        at: Utc::now(),
        latency_ms: 12,
        http_status: status,
        error: error.map(str::to_string),
        answer: Some("ok".into()),
    };
    assert!(store
        .finish_delivery(
            &claims[0],
            &attempt(Some(200), None),
            DeliveryOutcome::Delivered
        )
        .await
        .unwrap());
    // The same claim again: the lease is gone, nothing changes.
    assert!(!store
        .finish_delivery(
            &claims[0],
            &attempt(Some(200), None),
            DeliveryOutcome::Delivered
        )
        .await
        .unwrap());
    assert!(store
        .finish_delivery(
            &claims[1],
            &attempt(Some(500), Some("HTTP 500")),
            DeliveryOutcome::Dead
        )
        .await
        .unwrap());
    let mut stale = claims[2].clone();
    stale.lease_id += 1;
    store
        .release_deliveries(
            &[(
                stale.event_id.clone(),
                stale.receiver.clone(),
                stale.lease_id,
            )],
            now,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_deliveries(now, LEASE, 10, &["webhook"])
            .await
            .unwrap()
            .is_empty(),
        "a release under another lease gives nothing back"
    );
    let c = &claims[2];
    store
        .release_deliveries(&[(c.event_id.clone(), c.receiver.clone(), c.lease_id)], now)
        .await
        .unwrap();
    let counts = store.delivery_counts().await.unwrap();
    assert_eq!((counts.pending, counts.delivered, counts.dead), (1, 1, 1));
    // The one delivered row has its delivery time.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let timed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_deliveries
         WHERE status = 'delivered' AND delivered_ms IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(timed, 1);

    let dead = store
        .list_events(Some(DeliveryStatus::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, claims[1].event_id);
    assert_eq!(dead[0].deliveries[0].status, DeliveryStatus::Dead);
    assert_eq!(store.list_events(None, 10).await.unwrap().len(), 3);
    let shown = store.event(&claims[0].event_id).await.unwrap().unwrap();
    assert_eq!(shown.attempts.len(), 2);
    assert_eq!(shown.attempts[0].http_status, Some(200));
    assert_eq!(shown.deliveries[0].status, DeliveryStatus::Delivered);
    assert!(shown.deliveries[0].delivered_at.is_some());
    assert_eq!(shown.created_at.len(), "2026-11-30 16:00:00.000".len());
    assert_eq!(shown.payload.unwrap()["type"], "payment.paid");
    assert!(store.event("msg_nope").await.unwrap().is_none());

    assert_eq!(store.redeliver("msg_nope").await.unwrap(), 0);
    assert_eq!(store.redeliver(&claims[1].event_id).await.unwrap(), 1);
    let again = store
        .claim_deliveries(now, LEASE, 10, &["webhook"])
        .await
        .unwrap();
    let mut ids: Vec<&str> = again.iter().map(|d| d.event_id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![claims[1].event_id.as_str(), claims[2].event_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "the released and the redelivered ones are due");
}

/// The release before the gate record and the shared token (0dae1d1) had
/// two PostgreSQL migrations; its database upgrades with `migrate` keeping
/// every row, and gains the gate row and the (empty) token table.
#[tokio::test]
async fn a_database_of_the_release_before_the_gate_record_upgrades_keeping_every_row() {
    let Some(url) = pg::database().await else {
        return;
    };
    let old = release_db(&url, 2).await;
    for (i, (amount, currency, status)) in [("1.50", "USD", "pending"), ("4000", "KHR", "paid")]
        .into_iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, status) VALUES ($1, $2::numeric, $3, $4)",
        )
        .bind(md5(i))
        .bind(amount)
        .bind(currency)
        .bind(status)
        .execute(&old)
        .await
        .unwrap();
    }
    type Row = (i64, String, String, String, String);
    let read = "SELECT id, md5, amount::text, currency, status FROM payments ORDER BY id";
    let before: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();

    let store = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let after: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();
    assert_eq!(before, after, "every row kept as it was");
    let gate: i64 = sqlx::query_scalar("SELECT count(*) FROM gate_state")
        .fetch_one(&old)
        .await
        .unwrap();
    assert_eq!(gate, 1);
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM api_token")
        .fetch_one(&old)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
}

/// The release before the payment lifecycle (seven PostgreSQL migrations):
/// its database upgrades keeping every row; every row gets its own public
/// id, expired ones come under the late watch, and the new CHECKs hold.
#[tokio::test]
async fn the_release_before_the_lifecycle_upgrades_keeping_every_row() {
    let Some(url) = pg::database().await else {
        return;
    };
    let old = release_db(&url, 7).await;
    for (i, (amount, currency, status)) in [
        ("1.50", "USD", "pending"),
        ("4000", "KHR", "paid"),
        ("2.00", "USD", "expired"),
        ("3.00", "USD", "failed"),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, status, confirmed_at)
             VALUES ($1, $2::numeric, $3, $4, CASE WHEN $4 <> 'pending' THEN now() END)",
        )
        .bind(md5(i))
        .bind(amount)
        .bind(currency)
        .bind(status)
        .execute(&old)
        .await
        .unwrap();
    }
    type Row = (i64, String, String, String, String);
    let read = "SELECT id, md5, amount::text, currency, status FROM payments ORDER BY id";
    let before: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();

    let store = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let after: Vec<Row> = sqlx::query_as(read).fetch_all(&old).await.unwrap();
    assert_eq!(before, after, "every row kept as it was");
    let ids: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT public_id, late_check_at, status FROM payments ORDER BY id")
            .fetch_all(&old)
            .await
            .unwrap();
    let distinct: HashSet<&str> = ids.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(distinct.len(), 4, "one public id each");
    for (id, late, status) in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert_eq!(
            late.is_some(),
            status == "expired" || status == "failed",
            "{status}"
        );
    }
    let refused = sqlx::query("UPDATE payments SET status = 'unknown' WHERE status = 'pending'")
        .execute(&old)
        .await
        .expect_err("the status CHECK holds");
    assert!(
        refused.to_string().contains("payments_status_known"),
        "{refused}"
    );
    sqlx::query("UPDATE payments SET status = 'cancelled' WHERE status = 'pending'")
        .execute(&old)
        .await
        .unwrap();
}
