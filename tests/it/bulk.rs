//! Bulk lookups: 50 md5s per request, and the fall-back to single lookups
//! when the list endpoint is closed.

use std::time::Duration;

use bakong_poller::config::BulkMode;
use bakong_poller::simulator::{Faults, NewTransaction, OutcomeKind};
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
async fn due_payments_gather_into_one_request_until_bulk_flush() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.bulk_flush = Duration::from_millis(400);
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
