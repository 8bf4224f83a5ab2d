//! Bulk lookups: 50 md5s per request, and the fall-back to single lookups
//! when the list endpoint is closed.

use std::time::Duration;

use bakong_poller::config::BulkMode;
use bakong_simulator::{Faults, NewTransaction, OutcomeKind};
use rust_decimal::Decimal;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn bulk_mode_confirms_every_status_with_a_request_per_50_payments() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.concurrency = 2;
    s.bakong.account_id = Some(ACCOUNT.into());
    let db = e.merchant(&s).await;
    let mut paid = Vec::new();
    for _ in 0..100 {
        paid.push(e.payment(&db, "1.00", "USD", paid_after(0)).await);
    }
    let mismatch = e
        .payment(
            &db,
            "1",
            "USD",
            NewTransaction {
                paid_amount: Some(Decimal::TWO),
                ..paid_after(0)
            },
        )
        .await;
    let never = e
        .payment(
            &db,
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        )
        .await;
    let failed = e
        .payment(
            &db,
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Failed,
                ..paid_after(0)
            },
        )
        .await;
    sqlx::query("UPDATE payments SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+0.5 seconds') WHERE md5 IN (?1, ?2)")
        .bind(&never)
        .bind(&failed)
        .execute(&db)
        .await
        .unwrap();
    let d = start(s);
    for md5 in &paid {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    assert_eq!(final_status(&db, &mismatch, LIMIT).await, "mismatch");
    assert_eq!(final_status(&db, &never, LIMIT).await, "expired");
    // The md5 list says only NOT_FOUND for a failed transaction; one single
    // lookup at the deadline tells them apart.
    assert_eq!(final_status(&db, &failed, LIMIT).await, "failed");
    d.stop().await;
    let st = e.sim.sim.stats();
    let singles = st
        .requests
        .get("check_transaction_by_md5")
        .and_then(|m| m.get(&200))
        .copied()
        .unwrap_or(0);
    assert!(
        singles <= 4,
        "single lookups only at the two deadlines: {:?}",
        st.requests
    );
    let lists = st.requests["check_transaction_by_md5_list"][&200];
    // 102 payments need at least 3 requests; the expiring one adds a few.
    assert!((3..=30).contains(&lists), "{lists} list requests");
}

#[tokio::test]
async fn a_closed_list_endpoint_falls_back_to_single_lookups_and_is_retried_later() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.bulk_retry = Duration::from_millis(300);
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        md5_list_closed: true,
        ..Faults::default()
    });
    let d = start(s);
    let mut md5s = Vec::new();
    for _ in 0..5 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    let st = e.sim.sim.stats();
    assert!(st.requests["check_transaction_by_md5_list"][&403] >= 1);
    assert!(st.requests["check_transaction_by_md5"][&200] >= 5);
    // Once the endpoint opens, bulk is used again after bulk_retry.
    e.sim.sim.set_faults(Faults::default());
    let later = e.payment(&db, "1", "USD", paid_after(600)).await;
    assert_eq!(final_status(&db, &later, LIMIT).await, "paid");
    wait_for("a list request to succeed", LIMIT, || async {
        let st = e.sim.sim.stats();
        st.requests
            .get("check_transaction_by_md5_list")
            .and_then(|m| m.get(&200))
            .map(|_| ())
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn in_always_mode_a_closed_list_endpoint_is_an_error_and_rows_stay_pending() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Always;
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        md5_list_closed: true,
        ..Faults::default()
    });
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    wait_for("two refused list requests", LIMIT, || async {
        let n = e
            .sim
            .sim
            .stats()
            .requests
            .get("check_transaction_by_md5_list")
            .and_then(|m| m.get(&403))
            .copied()
            .unwrap_or(0);
        (n >= 2).then_some(())
    })
    .await;
    assert_eq!(status(&db, &md5).await, "pending");
    // No fall-back to single lookups: at most the one single lookup that
    // told a list closed to this token from a refused token (issue 15.2),
    // remembered, not repeated per 403.
    let singles: u64 = e
        .sim
        .sim
        .stats()
        .requests
        .get("check_transaction_by_md5")
        .map(|m| m.values().sum())
        .unwrap_or(0);
    assert!(singles <= 1, "{singles} single lookups");
    e.sim.sim.set_faults(Faults::default());
    assert_eq!(final_status(&db, &md5, LIMIT).await, "paid");
    d.stop().await;
}

#[tokio::test]
async fn due_payments_gather_into_one_request_each_cadence() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.cadence = Duration::from_millis(400);
    let db = e.merchant(&s).await;
    let d = start(s);
    // Ten customers, one every 20 ms (scan_interval is 20 ms): without
    // gathering nearly every one would go out in a request of its own.
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let mut md5s = Vec::new();
    for _ in 0..10 {
        pace.tick().await;
        md5s.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    d.stop().await;
    let lists = e.sim.sim.stats().requests["check_transaction_by_md5_list"][&200];
    assert!(
        lists <= 4,
        "{lists} list requests for 10 payments inserted over 200 ms"
    );
}

#[tokio::test]
async fn a_full_set_of_due_rows_goes_in_one_request() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.cadence = Duration::from_secs(1);
    let db = e.merchant(&s).await;
    let mut md5s = Vec::new();
    for _ in 0..50 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    let d = start(s);
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    d.stop().await;
    let lists = e.sim.sim.stats().requests["check_transaction_by_md5_list"][&200];
    assert_eq!(lists, 1, "50 due payments, one request");
}

/// Makes every pending row an old one: created 10 minutes ago, lane 1.
async fn age_all(db: &sqlx::SqlitePool) {
    sqlx::query("UPDATE payments SET created_at = datetime('now', '-10 minutes'), lane = 1, expires_at = datetime('now', '+10 minutes')")
        .execute(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn fresh_payments_go_before_old_ones_under_saturation() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.max_requests_per_second = 2.0;
    let db = e.merchant(&s).await;
    for _ in 0..200 {
        e.payment(
            &db,
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        )
        .await;
    }
    age_all(&db).await;
    let mut fresh = Vec::new();
    for _ in 0..10 {
        fresh.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    let d = start(s);
    for md5 in &fresh {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    let lists: u64 = e.sim.sim.stats().requests["check_transaction_by_md5_list"]
        .values()
        .sum();
    d.stop().await;
    assert!(
        lists <= 2,
        "{lists} requests before the 10 fresh payments were confirmed behind 200 old ones"
    );
}

#[tokio::test]
async fn no_payment_is_starved_under_saturation() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.max_requests_per_second = 2.0;
    s.poller.concurrency = 1;
    let db = e.merchant(&s).await;
    for _ in 0..300 {
        e.payment(
            &db,
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        )
        .await;
    }
    age_all(&db).await;
    let d = start(s);
    // Each old row asks for a check every 200 ms (1500 md5s a second);
    // 2 requests a second carry 100: they take turns, oldest due first, so
    // every row is checked before any is checked a third time.
    let most: i64 = wait_for("every payment checked once", LIMIT, || async {
        let (unchecked, most): (i64, i64) =
            sqlx::query_as("SELECT count(*) FILTER (WHERE checks = 0), max(checks) FROM payments")
                .fetch_one(&db)
                .await
                .unwrap();
        (unchecked == 0).then_some(most)
    })
    .await;
    d.stop().await;
    assert!(
        most <= 2,
        "a row was checked {most} times while others waited"
    );
}

/// A payment is never asked about twice at once: a round's spare places
/// must not take rows whose check is still on the wire (their
/// `next_check_at` is the lease's end, within the fill's horizon when the
/// horizon reaches past the lease), which wasted a request and had the
/// first answer refused by the lease guard. Slow answers (700 ms) and a
/// short cadence make every round overlap the one before; the lease (5 s)
/// outlasts any check. Single lookups never fill spare places: their pass
/// covers the rest of the class (a row is claimed once while held).
#[tokio::test]
async fn a_payment_is_never_asked_about_twice_at_once() {
    for bulk in [BulkMode::Auto, BulkMode::Never] {
        let e = env().await;
        e.sim.sim.set_faults(Faults {
            latency: Duration::from_millis(700),
            ..Faults::default()
        });
        let mut s = e.settings();
        s.poller.bulk = bulk;
        s.poller.concurrency = 4;
        s.poller.cadence = Duration::from_millis(200);
        s.poller.fresh_interval = Duration::from_millis(200);
        s.bakong.timeout = Duration::from_secs(1);
        s.poller.lease = Duration::from_secs(5);
        s.poller.max_interval = Duration::from_secs(10);
        let db = e.merchant(&s).await;
        for _ in 0..5 {
            let never = NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            };
            e.payment(&db, "1", "USD", never).await;
        }
        let d = start(s);
        let asked = || {
            let st = e.sim.sim.stats();
            ["check_transaction_by_md5", "check_transaction_by_md5_list"]
                .iter()
                .filter_map(|ep| st.requests.get(*ep))
                .flat_map(|m| m.values())
                .sum::<u64>()
        };
        wait_for("a dozen checks over overlapping rounds", LIMIT, || async {
            (asked() >= 12).then_some(())
        })
        .await;
        d.stop().await;
        assert_eq!(
            e.sim.sim.stats().asked_twice_at_once,
            0,
            "{bulk:?}: md5s asked while a request for them was in flight"
        );
    }
}
