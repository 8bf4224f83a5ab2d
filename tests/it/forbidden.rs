//! Issue 22 item 4: a 403 from every endpoint can be a refused token. One
//! renewal (single flight, at most once per few minutes) tells it from a
//! geo-block.

use std::time::Duration;

use bakong_simulator::Faults;

use crate::helpers::*;

fn requests(e: &TestEnv, endpoint: &str, status: u16) -> u64 {
    e.sim
        .sim
        .stats()
        .requests
        .get(endpoint)
        .and_then(|m| m.get(&status))
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_revoked_token_answered_403_everywhere_is_renewed_once_and_checks_go_on() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        all_403_for_refused_token: true,
        ..Faults::default()
    });
    // Revoked, as by a renewal on another deployment with the same email.
    e.sim.sim.revoke_tokens(EMAIL);
    let mut md5s = Vec::new();
    for _ in 0..5 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    let d = start(s);
    for md5 in &md5s {
        assert_eq!(
            final_status(&db, md5, Duration::from_secs(10)).await,
            "paid"
        );
    }
    d.stop().await;
    assert_eq!(requests(&e, "renew_token", 200), 1, "one renewal");
}

#[tokio::test]
async fn a_real_geo_block_costs_one_renewal_attempt_not_one_per_request() {
    let e = env().await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        geo_block: true,
        ..Faults::default()
    });
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let d = start(s);
    wait_for(
        "several refused checks",
        Duration::from_secs(10),
        || async { (requests(&e, "check_transaction_by_md5", 403) >= 5).then_some(()) },
    )
    .await;
    d.stop().await;
    assert_eq!(status(&db, &md5).await, "pending");
    let renewals: u64 = e
        .sim
        .sim
        .stats()
        .requests
        .get("renew_token")
        .map(|m| m.values().sum())
        .unwrap_or(0);
    assert_eq!(renewals, 1, "one renewal attempt, then the 403 stands");
}
