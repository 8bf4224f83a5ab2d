//! Issue 20 item 1: a result lands only on the payment that was claimed and
//! checked, on both backends. Each scenario runs against SQLite and a real
//! PostgreSQL (skipped loudly outside CI when the server is missing).

use std::time::Duration;

use bakong_poller::money::Currency;
use bakong_poller::payment::{Confirmation, FinalStatus, Lane, Status};
use bakong_poller::store::{Applied, NewPayment, Store, Write};
use chrono::Utc;
use rust_decimal::Decimal;

use crate::pg;

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(900);

/// Raw SQL beside the store, as the merchant's application would send it.
pub(crate) enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    pub(crate) async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Raw::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub(crate) async fn int(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Raw::Pg(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

pub(crate) async fn sqlite() -> (Store, Raw, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
    store.migrate().await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    (store, Raw::Sqlite(raw), dir)
}

pub(crate) async fn postgres() -> Option<(Store, Raw)> {
    let url = pg::database().await?;
    let store = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
    store.migrate().await.unwrap();
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    Some((store, Raw::Pg(raw)))
}

fn md5(i: u32) -> String {
    format!("{i:032x}")
}

fn new(i: u32, amount: &str) -> NewPayment {
    NewPayment {
        order_id: None,
        metadata: None,
        qr: None,
        public_id: None,
        redirect_url: None,
        md5: md5(i),
        amount: amount.into(),
        currency: Currency::Usd,
        expires_at: None,
    }
}

fn paid(amount: &str) -> Option<Box<Confirmation>> {
    Some(Box::new(Confirmation {
        hash: "ab".repeat(32),
        from_account_id: Some("payer@bank".into()),
        to_account_id: "shop@bank".into(),
        paid_amount: amount.parse::<Decimal>().unwrap(),
        paid_currency: Currency::Usd,
        description: None,
        paid_at: None,
    }))
}

async fn claim_one(store: &Store) -> bakong_poller::store::Claimed {
    let mut c = store
        .claim(Utc::now().timestamp_millis(), LEASE, 1, TTL)
        .await
        .unwrap();
    assert_eq!(c.len(), 1, "one row claimed");
    c.remove(0)
}

/// A row deleted while its check is in flight, and a new row in its place
/// (the next id, or the very id given explicitly): the result of the
/// deleted row's check lands nowhere, and no event is queued.
async fn a_result_for_a_deleted_row_never_lands_on_its_successor(store: Store, raw: Raw) {
    store.insert_payment(&new(1, "5.00")).await.unwrap();
    let a = claim_one(&store).await;
    raw.exec(&format!("DELETE FROM payments WHERE id = {}", a.id.0))
        .await;
    let b = store.insert_payment(&new(2, "500.00")).await.unwrap();
    assert_ne!(b, a.id, "a deleted row's id is never handed out again");
    assert!(b.0 > a.id.0, "ids only grow");

    // The application gives the new row the deleted row's id explicitly.
    raw.exec(&format!("DELETE FROM payments WHERE id = {}", b.0))
        .await;
    raw.exec(&format!(
        "INSERT INTO payments (id, md5, amount, currency) VALUES ({}, '{}', '500.00', 'USD')",
        a.id.0,
        md5(3)
    ))
    .await;
    let applied = store
        .record(
            &[Write::Final {
                row: a.held(),
                status: FinalStatus::Paid,
                confirmation: paid("5"),
                answer: "found",
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Stale]);
    let expire = Write::Final {
        row: a.held(),
        status: FinalStatus::Expired,
        confirmation: None,
        answer: "not_found",
    };
    assert_eq!(
        store.record(&[expire], Utc::now()).await.unwrap(),
        vec![Applied::Stale]
    );
    assert_eq!(
        store.status_of(&md5(3)).await.unwrap(),
        Some(Status::Pending),
        "the new row keeps its own fate"
    );
    assert_eq!(raw.int("SELECT count(*) FROM payment_events").await, 0);
}

/// The application changes a claimed row's md5, amount or currency while
/// its check is in flight: no write of that check (final, reschedule,
/// release, defer) touches the row.
async fn a_result_never_lands_on_a_row_whose_values_changed(store: Store, raw: Raw) {
    for (i, change) in [
        format!("md5 = '{}'", md5(90)),
        "amount = '500.00'".to_string(),
        "currency = 'KHR', amount = '5'".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let i = i as u32;
        store.insert_payment(&new(10 + i, "5.00")).await.unwrap();
        let a = claim_one(&store).await;
        let next_before = raw
            .int(&format!(
                "SELECT next_check_at FROM payments WHERE id = {}",
                a.id.0
            ))
            .await;
        raw.exec(&format!(
            "UPDATE payments SET {change} WHERE id = {}",
            a.id.0
        ))
        .await;
        let writes = [
            Write::Final {
                row: a.held(),
                status: FinalStatus::Paid,
                confirmation: paid("5"),
                answer: "found",
            },
            Write::Reschedule {
                row: a.held(),
                next_check_at: 1,
                answer: "failed",
                error: None,
                transient: false,
                lane: Lane::Old,
            },
            Write::Release { row: a.held() },
            Write::Defer {
                row: a.held(),
                next_check_at: 1,
            },
        ];
        let applied = store.record(&writes, Utc::now()).await.unwrap();
        assert_eq!(applied[0], Applied::Stale, "{change}");
        let (status, next, answer) = (
            raw.int(&format!(
                "SELECT count(*) FROM payments WHERE id = {} AND status = 'pending'",
                a.id.0
            ))
            .await,
            raw.int(&format!(
                "SELECT next_check_at FROM payments WHERE id = {}",
                a.id.0
            ))
            .await,
            raw.int(&format!(
                "SELECT count(*) FROM payments WHERE id = {} AND last_answer IS NULL",
                a.id.0
            ))
            .await,
        );
        assert_eq!(
            (status, next, answer),
            (1, next_before, 1),
            "{change}: the row is as the application left it"
        );
        // Out of the way, so the next round's claim takes its own row.
        raw.exec(&format!(
            "UPDATE payments SET status = 'expired', lease_id = NULL WHERE id = {}",
            a.id.0
        ))
        .await;
    }
    assert_eq!(raw.int("SELECT count(*) FROM payment_events").await, 0);
}

/// The same check's result still lands when nothing changed, with the
/// amount compared by value on PostgreSQL and exactly as stored on SQLite.
async fn a_result_lands_on_the_row_that_was_checked(store: Store, raw: Raw) {
    store.insert_payment(&new(20, "5.00")).await.unwrap();
    let a = claim_one(&store).await;
    let applied = store
        .record(
            &[Write::Final {
                row: a.held(),
                status: FinalStatus::Paid,
                confirmation: paid("5"),
                answer: "found",
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Written]);
    assert_eq!(
        raw.int(&format!(
            "SELECT count(*) FROM payment_events WHERE md5 = '{}' AND payment_id = {}",
            md5(20),
            a.id.0
        ))
        .await,
        1,
        "its event names the row written"
    );
}

#[tokio::test]
async fn a_result_for_a_deleted_row_never_lands_on_its_successor_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    a_result_for_a_deleted_row_never_lands_on_its_successor(store, raw).await;
}

#[tokio::test]
async fn a_result_for_a_deleted_row_never_lands_on_its_successor_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    a_result_for_a_deleted_row_never_lands_on_its_successor(store, raw).await;
}

#[tokio::test]
async fn a_result_never_lands_on_a_row_whose_values_changed_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    a_result_never_lands_on_a_row_whose_values_changed(store, raw).await;
}

#[tokio::test]
async fn a_result_never_lands_on_a_row_whose_values_changed_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    a_result_never_lands_on_a_row_whose_values_changed(store, raw).await;
}

#[tokio::test]
async fn a_result_lands_on_the_row_that_was_checked_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    a_result_lands_on_the_row_that_was_checked(store, raw).await;
}

#[tokio::test]
async fn a_result_lands_on_the_row_that_was_checked_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    a_result_lands_on_the_row_that_was_checked(store, raw).await;
}

/// Issue 20 item 14: SQLite refuses the amounts PostgreSQL refuses (none a
/// KHQR can carry in length), at INSERT and at UPDATE.
#[tokio::test]
async fn an_amount_too_long_for_a_khqr_is_refused_on_both_backends() {
    let (store, raw, _dir) = sqlite().await;
    let mut backends = vec![(store, raw)];
    if let Some(pg) = postgres().await {
        backends.push(pg);
    }
    for (store, raw) in backends {
        for amount in ["99999999999999999999999999999", "10000000000000", "1e13"] {
            let e = store
                .insert_payment(&new(30, amount))
                .await
                .expect_err(amount);
            assert!(e.to_string().contains("amount"), "{amount}: {e}");
        }
        store
            .insert_payment(&new(31, "9999999999999"))
            .await
            .expect("13 digits fit");
        let id = raw.int("SELECT max(id) FROM payments").await;
        for amount in ["'10000000000000'", "'99999999999999999999'"] {
            let sql = format!("UPDATE payments SET amount = {amount} WHERE id = {id}");
            let refused = match &raw {
                Raw::Sqlite(p) => sqlx::raw_sql(&sql).execute(p).await.is_err(),
                Raw::Pg(p) => sqlx::raw_sql(&sql).execute(p).await.is_err(),
            };
            assert!(refused, "{sql}");
        }
    }
}

/// The two SQL blocks of the PostgreSQL chapter's setup, for roles and a
/// database of this test's own.
fn readme_sql(marker: &str, daemon: &str, shop: &str) -> String {
    let readme = include_str!("../../docs/src/operations/postgresql.md");
    let start = readme
        .find(&format!("<!-- grants:{marker} "))
        .unwrap_or_else(|| panic!("the PostgreSQL chapter has no grants:{marker} block"));
    let fence = readme[start..].find("```sql\n").unwrap() + start + 7;
    let end = readme[fence..].find("```").unwrap() + fence;
    readme[fence..end]
        .lines()
        .filter(|l| !l.starts_with('\\') && !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("bakong_poller", daemon)
        .replace("shop_app", shop)
}

fn as_role(url: &str, role: &str, search_path: bool) -> String {
    let u = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    if search_path {
        format!("{u}&options=-csearch_path%3Dbakong")
    } else {
        u
    }
}

/// Issue 20 item 2: the PostgreSQL chapter's grants (and an older guide's
/// `ALTER DEFAULT PRIVILEGES`, which `migrate` takes back) give the shop's
/// role SELECT and INSERT of the merchant's columns on `payments`, SELECT
/// on `payment_events`, and nothing of the daemon's own tables.
#[tokio::test]
async fn the_shop_role_reads_and_inserts_payments_and_cannot_touch_the_daemons_tables() {
    let Some(url) = pg::database().await else {
        return;
    };
    let db = url
        .split('/')
        .nth(3)
        .and_then(|p| p.split('?').next())
        .unwrap()
        .to_string();
    let (daemon, shop) = (format!("bp_{db}"), format!("shop_{db}"));
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE ROLE {shop} LOGIN"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::raw_sql(&readme_sql("setup", &daemon, &shop))
        .execute(&admin)
        .await
        .unwrap();
    // What the guide said before: default privileges on every table the
    // daemon creates. `migrate` must take them back from its own tables.
    sqlx::raw_sql(&format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {daemon} IN SCHEMA bakong
             GRANT ALL ON TABLES TO {shop};
         GRANT SELECT ON ALL TABLES IN SCHEMA bakong TO PUBLIC"
    ))
    .execute(&admin)
    .await
    .unwrap();
    let store = Store::connect(&as_role(&url, &daemon, true), Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let key_readable: bool = sqlx::query_scalar(&format!(
        "SELECT has_table_privilege('{shop}', 'bakong.daemon_secret', 'SELECT')
             OR has_table_privilege('{shop}', 'bakong.daemon_secret', 'INSERT')"
    ))
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!key_readable, "the key's table is the daemon's alone");
    sqlx::raw_sql(&readme_sql("shop", &daemon, &shop))
        .execute(&admin)
        .await
        .unwrap();
    // The daemon's secrets exist, as on a running deployment.
    store.event_key().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO bakong.api_token (id, token, version, renewed_ms, renewed_by)
         VALUES (1, 'eyJ.secret.token', 1, 0, 'test')",
    )
    .execute(&admin)
    .await
    .unwrap();

    let shop_pool = sqlx::PgPool::connect(&as_role(&url, &shop, true))
        .await
        .unwrap();
    let refused = |sql: &'static str| {
        let pool = shop_pool.clone();
        async move {
            match sqlx::raw_sql(sql).execute(&pool).await {
                Err(sqlx::Error::Database(e)) => {
                    assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}")
                }
                other => panic!("{sql}: expected permission denied, got {other:?}"),
            }
        }
    };
    refused("SELECT token FROM api_token").await;
    refused("SELECT event_key FROM daemon_secret").await;
    refused("SELECT * FROM gate_state").await;
    refused("SELECT * FROM event_deliveries").await;
    refused(
        "INSERT INTO payment_events (id, type, md5, payload, created_at, created_ms)
         VALUES ('msg_forged', 'payment.paid', '00000000000000000000000000000001', '{}', now(), 0)",
    )
    .await;
    refused("INSERT INTO event_deliveries (event_id, receiver) VALUES ('msg_forged', 'webhook')")
        .await;
    refused(
        "INSERT INTO gate_members (instance, host, pid, seen_ms)
         VALUES ('x', 'h', 1, 99999999999999)",
    )
    .await;
    refused("UPDATE gate_state SET rate = 0.001").await;
    refused("DELETE FROM payment_events").await;
    refused(
        "INSERT INTO payments (md5, amount, currency, status)
         VALUES ('00000000000000000000000000000002', '999.00', 'USD', 'paid')",
    )
    .await;
    refused("UPDATE payments SET status = 'paid'").await;
    refused("TRUNCATE payment_events CASCADE").await;
    for privilege in ["UPDATE", "TRIGGER", "TRUNCATE", "REFERENCES"] {
        let has: bool = sqlx::query_scalar(&format!(
            "SELECT has_table_privilege('{shop}', 'bakong.payments', '{privilege}')"
        ))
        .fetch_one(&admin)
        .await
        .unwrap();
        assert!(!has, "the shop's role keeps {privilege} on payments");
    }

    // What it is for still works.
    sqlx::raw_sql(
        "INSERT INTO payments (md5, amount, currency, expires_at)
         VALUES ('00000000000000000000000000000003', '5.00', 'USD', now() + interval '1 hour')",
    )
    .execute(&shop_pool)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'pending'")
        .fetch_one(&shop_pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_events")
        .fetch_one(&shop_pool)
        .await
        .unwrap();
}

/// Issue 20 item 2: a row someone else put in the outbox (here written
/// with the owner's rights, as a mis-granted role or a SQLite file writer
/// could) is never delivered: marked dead with the reason.
async fn an_event_the_daemon_did_not_write_is_never_delivered(store: Store, raw: Raw) {
    store.set_receivers(&["webhook"]).await.unwrap();
    // A genuine one beside it is delivered.
    store.insert_payment(&new(40, "5.00")).await.unwrap();
    let a = claim_one(&store).await;
    store
        .record(
            &[Write::Final {
                row: a.held(),
                status: FinalStatus::Paid,
                confirmation: paid("5"),
                answer: "found",
            }],
            Utc::now(),
        )
        .await
        .unwrap();
    for (id, mac) in [
        ("msg_forged_no_mac", "NULL"),
        ("msg_forged_bad_mac", "'AAAA'"),
    ] {
        raw.exec(&format!(
            "INSERT INTO payment_events (id, type, md5, payload, created_at, created_ms, mac)
             VALUES ('{id}', 'payment.paid', '{}', '{{\"type\":\"payment.paid\",\"data\":{{\"amount\":\"999.00\"}}}}',
                     '2026-12-05 00:00:00', 0, {mac});
             INSERT INTO event_deliveries (event_id, receiver, next_attempt_at)
             VALUES ('{id}', 'webhook', 0)",
            md5(41)
        ))
        .await;
    }
    let claimed = store
        .claim_deliveries(Utc::now().timestamp_millis(), LEASE, 10, &["webhook"])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "only the daemon's own event: {claimed:?}");
    assert_eq!(claimed[0].md5, md5(40));
    assert_eq!(
        raw.int("SELECT count(*) FROM event_deliveries WHERE status = 'dead' AND event_id LIKE 'msg_forged%'")
            .await,
        2
    );
    let shown = store.event("msg_forged_no_mac").await.unwrap().unwrap();
    assert!(
        format!("{shown:?}").contains("not written by the daemon"),
        "{shown:?}"
    );
}

#[tokio::test]
async fn an_event_the_daemon_did_not_write_is_never_delivered_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    an_event_the_daemon_did_not_write_is_never_delivered(store, raw).await;
}

#[tokio::test]
async fn an_event_the_daemon_did_not_write_is_never_delivered_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    an_event_the_daemon_did_not_write_is_never_delivered(store, raw).await;
}

/// Issue 20 item 2: heartbeats dated in the future do not count as live
/// daemons (200 of them would cut each daemon's share to 1/201).
async fn gate_heartbeats_from_the_future_are_ignored(store: Store, raw: Raw) {
    let now = Utc::now().timestamp_millis();
    for i in 0..200 {
        raw.exec(&format!(
            "INSERT INTO gate_members (instance, host, pid, seen_ms)
             VALUES ('ghost{i}', 'nowhere', {i}, {})",
            now + 3_600_000 + i
        ))
        .await;
    }
    let me = bakong_poller::store::GateMember {
        instance: "me".into(),
        host: "here".into(),
        pid: 1,
        receivers: Vec::new(),
    };
    assert_eq!(store.heartbeat(&me, now, 10_000).await.unwrap(), 1);
    assert_eq!(
        raw.int("SELECT count(*) FROM gate_members").await,
        1,
        "and they are forgotten"
    );
}

#[tokio::test]
async fn gate_heartbeats_from_the_future_are_ignored_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    gate_heartbeats_from_the_future_are_ignored(store, raw).await;
}

#[tokio::test]
async fn gate_heartbeats_from_the_future_are_ignored_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    gate_heartbeats_from_the_future_are_ignored(store, raw).await;
}

/// Issue 22 item 1: a daemon that dies (SIGKILL: no leave) stops counting
/// as a member of the gate once its last heartbeat is older than LIVE_MS,
/// while the others heartbeating every second keep counting.
async fn a_dead_member_stops_counting_within_the_live_window(store: Store) {
    let live = bakong_poller::store::LIVE_MS;
    let t0 = Utc::now().timestamp_millis();
    let (a, b, c) = (member("a", &[]), member("b", &[]), member("c", &[]));
    for m in [&a, &b, &c] {
        store.heartbeat(m, t0, live).await.unwrap();
    }
    assert_eq!(store.heartbeat(&a, t0, live).await.unwrap(), 3);
    // c is killed at t0; a and b go on beating every second.
    let mut counts = Vec::new();
    for s in 1..=5 {
        let now = t0 + s * 1_000;
        store.heartbeat(&b, now, live).await.unwrap();
        counts.push((s, store.heartbeat(&a, now, live).await.unwrap()));
    }
    assert_eq!(
        counts,
        vec![(1, 3), (2, 3), (3, 3), (4, 2), (5, 2)],
        "c counts until its heartbeat is {live} ms old, then not"
    );
    // Just past the window is enough.
    store.heartbeat(&c, t0 + 10_000, live).await.unwrap();
    let n = store.heartbeat(&a, t0 + 10_000 + live + 1, live).await;
    assert_eq!(n.unwrap(), 1, "b and c last beat more than {live} ms ago");
}

#[tokio::test]
async fn a_dead_member_stops_counting_within_the_live_window_on_sqlite() {
    let (store, _raw, _dir) = sqlite().await;
    a_dead_member_stops_counting_within_the_live_window(store).await;
}

#[tokio::test]
async fn a_dead_member_stops_counting_within_the_live_window_on_postgres() {
    let Some((store, _raw)) = postgres().await else {
        return;
    };
    a_dead_member_stops_counting_within_the_live_window(store).await;
}

fn member(name: &str, receivers: &[(&str, &str)]) -> bakong_poller::store::GateMember {
    bakong_poller::store::GateMember {
        instance: name.into(),
        host: format!("host-{name}"),
        pid: 7,
        receivers: receivers
            .iter()
            .map(|(n, c)| bakong_poller::store::ReceiverConfig {
                name: (*n).into(),
                config: (*c).into(),
            })
            .collect(),
    }
}

/// Issue 20 item 7: a second daemon started without `[webhook]` no longer
/// turns delivery off for the daemon that has it; a receiver no live
/// daemon has is turned off; differing settings are reported.
async fn a_receiver_stays_active_while_any_live_daemon_has_it(store: Store, raw: Raw) {
    let live = bakong_poller::store::LIVE_MS;
    let now = Utc::now().timestamp_millis();
    let a = member("a", &[("webhook", "aaaaaaaaaaaa")]);
    let b = member("b", &[]);
    // Daemon a starts, then daemon b (no [webhook]) on the same database.
    store.set_receivers(&["webhook"]).await.unwrap();
    store.heartbeat(&a, now, live).await.unwrap();
    store.set_receivers(&[]).await.unwrap();
    store.heartbeat(&b, now, live).await.unwrap();

    let paid_event = |i: u32| {
        let store = store.clone();
        async move {
            store.insert_payment(&new(i, "5.00")).await.unwrap();
            let c = claim_one(&store).await;
            store
                .record(
                    &[Write::Final {
                        row: c.held(),
                        status: FinalStatus::Paid,
                        confirmation: paid("5"),
                        answer: "found",
                    }],
                    Utc::now(),
                )
                .await
                .unwrap();
        }
    };
    paid_event(50).await;
    assert_eq!(
        raw.int(&format!(
            "SELECT count(*) FROM event_deliveries d JOIN payment_events e ON e.id = d.event_id
             WHERE e.md5 = '{}' AND d.receiver = 'webhook'",
            md5(50)
        ))
        .await,
        1,
        "daemon b's start did not turn daemon a's webhook off"
    );

    let members = store.live_receivers(now, live).await.unwrap();
    assert_eq!(members.len(), 2);
    let conflicts = bakong_poller::store::receiver_conflicts(&members);
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert!(
        conflicts[0].contains("webhook aaaaaaaaaaaa") && conflicts[0].contains("no receiver"),
        "{}",
        conflicts[0]
    );

    // Daemon a stops (leaves); at b's next heartbeat no live daemon has a
    // webhook: new events get no webhook delivery.
    store.leave("a").await.unwrap();
    store.heartbeat(&b, now + 1_000, live).await.unwrap();
    paid_event(51).await;
    assert_eq!(
        raw.int(&format!(
            "SELECT count(*) FROM event_deliveries d JOIN payment_events e ON e.id = d.event_id
             WHERE e.md5 = '{}'",
            md5(51)
        ))
        .await,
        0,
        "a receiver no live daemon has is off"
    );
    // A daemon that died (no leave) stops counting once its heartbeat is
    // older than the forget window (a minute: a stall or a skewed clock
    // must not turn a receiver off).
    store.heartbeat(&a, now + 2_000, live).await.unwrap();
    store
        .heartbeat(&b, now + 2_000 + 61_000, live)
        .await
        .unwrap();
    assert_eq!(
        raw.int("SELECT count(*) FROM event_receivers WHERE active = true")
            .await,
        0
    );
}

#[tokio::test]
async fn a_receiver_stays_active_while_any_live_daemon_has_it_on_sqlite() {
    let (store, raw, _dir) = sqlite().await;
    a_receiver_stays_active_while_any_live_daemon_has_it(store, raw).await;
}

#[tokio::test]
async fn a_receiver_stays_active_while_any_live_daemon_has_it_on_postgres() {
    let Some((store, raw)) = postgres().await else {
        return;
    };
    a_receiver_stays_active_while_any_live_daemon_has_it(store, raw).await;
}
