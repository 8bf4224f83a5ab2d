//! Issue 22 item 2: a new customer never waits behind a backlog. Age
//! decides what is fresh, not "never checked": rows inserted an hour ago
//! while the daemon was down go behind a payment made now.

use std::time::{Duration, Instant};

use bakong_poller::config::BulkMode;

use crate::helpers::*;

async fn a_fresh_payment_is_confirmed_ahead_of_a_backlog(bulk: BulkMode) {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = bulk;
    s.poller.max_requests_per_second = 2.0;
    s.poller.concurrency = 4;
    s.poller.fresh_period = Duration::from_secs(180);
    s.poller.max_interval = Duration::from_secs(60);
    s.poller.fresh_interval = Duration::from_secs(2);
    s.poller.lease = Duration::from_secs(60);
    let db = e.merchant(&s).await;
    // 2,000 rows created an hour ago, expiring in an hour, never checked:
    // behind them a new row would wait 20 s in bulk mode (40 requests at
    // 2/s), far longer with single lookups.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO payments (md5, amount, currency, created_at, expires_at)
         SELECT printf('%032x', i), '1.00', 'USD', datetime('now', '-1 hour'),
                datetime('now', '+1 hour')
         FROM n",
    )
    .execute(&db)
    .await
    .unwrap();
    let d = start(s);
    wait_for(
        "the backlog's first checks",
        Duration::from_secs(10),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM payments WHERE last_checked_at IS NOT NULL",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            (n > 0).then_some(())
        },
    )
    .await;
    let inserted = Instant::now();
    let md5 = e.payment(&db, "5.00", "USD", paid_after(0)).await;
    // The aim is ~2 s; the deadline leaves room for a loaded machine.
    let status = final_status(&db, &md5, Duration::from_secs(8)).await;
    let took = inserted.elapsed();
    assert_eq!(status, "paid");
    eprintln!("{bulk:?}: a fresh payment confirmed {took:?} after its INSERT, 2,000 old rows due");
    // The backlog is still served with what is left (no starvation): more
    // old rows get their first check after the fresh one.
    let checked = |db: sqlx::SqlitePool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM payments WHERE last_checked_at IS NOT NULL AND status = 'pending'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let before = checked(db.clone()).await;
    wait_for(
        "more of the backlog checked",
        Duration::from_secs(10),
        || {
            let db = db.clone();
            async move { (checked(db).await > before).then_some(()) }
        },
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn a_fresh_payment_beats_a_backlog_of_2000_never_checked_old_rows_in_single_mode() {
    a_fresh_payment_is_confirmed_ahead_of_a_backlog(BulkMode::Never).await;
}

#[tokio::test]
async fn a_fresh_payment_beats_a_backlog_of_2000_never_checked_old_rows_in_bulk_mode() {
    a_fresh_payment_is_confirmed_ahead_of_a_backlog(BulkMode::Always).await;
}

/// The store's part, on both backends: a due row of the fresh lane older
/// than the fresh period moves to the older lane; a young one stays.
async fn aged_rows_leave_the_fresh_lane(
    store: bakong_poller::store::Store,
    raw: crate::integrity::Raw,
    old_created: &str,
) {
    raw.exec(&format!(
        "INSERT INTO payments (md5, amount, currency, created_at)
         VALUES ('{:032x}', '1.00', 'USD', {old_created});
         INSERT INTO payments (md5, amount, currency) VALUES ('{:032x}', '1.00', 'USD')",
        1, 2
    ))
    .await;
    let now = chrono::Utc::now().timestamp_millis();
    assert_eq!(
        store.age_out(now, Duration::from_secs(180)).await.unwrap(),
        1
    );
    assert_eq!(
        raw.int("SELECT count(*) FROM payments WHERE lane = 1")
            .await,
        1
    );
    assert_eq!(
        raw.int(&format!(
            "SELECT count(*) FROM payments WHERE lane = 0 AND md5 = '{:032x}'",
            2
        ))
        .await,
        1,
        "the young row stays fresh"
    );
}

#[tokio::test]
async fn aged_rows_leave_the_fresh_lane_on_sqlite() {
    let (store, raw, _dir) = crate::integrity::sqlite().await;
    aged_rows_leave_the_fresh_lane(store, raw, "datetime('now', '-1 hour')").await;
}

#[tokio::test]
async fn aged_rows_leave_the_fresh_lane_on_postgres() {
    let Some((store, raw)) = crate::integrity::postgres().await else {
        return;
    };
    aged_rows_leave_the_fresh_lane(store, raw, "now() - interval '1 hour'").await;
}
