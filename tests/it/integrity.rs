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
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Raw::Pg(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn int(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Raw::Pg(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

async fn sqlite() -> (Store, Raw, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
    store.migrate().await.unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    (store, Raw::Sqlite(raw), dir)
}

async fn postgres() -> Option<(Store, Raw)> {
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
        // Once released by its lease, the changed row is claimed afresh
        // and checked as it now is.
        raw.exec(&format!(
            "UPDATE payments SET next_check_at = 0, lease_id = NULL WHERE id = {}",
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
