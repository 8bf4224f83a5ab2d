//! Issue 22 item 3: two deployments on one email must not revoke each
//! other's token for ever, and a token an operator renewed is taken up.

use std::time::Duration;

use bakong_simulator::SimSettings;

use crate::helpers::*;

fn renewals(e: &TestEnv) -> u64 {
    e.sim
        .sim
        .stats()
        .requests
        .get("renew_token")
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

fn checks(e: &TestEnv) -> u64 {
    e.sim
        .sim
        .stats()
        .requests
        .get("check_transaction_by_md5")
        .map(|m| m.values().sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_deployments_on_one_email_settle_with_bounded_renewals_and_say_why() {
    let e = env().await;
    e.sim.sim.set_settings(SimSettings {
        revoke_on_renew: true,
        ..SimSettings::default()
    });
    let a = e.settings();
    // The second deployment: its own database and token file, the same
    // registered email, the same API.
    let other = tempfile::tempdir().unwrap();
    let mut b = e.settings();
    b.database.url = format!("sqlite://{}", other.path().join("b.db").display());
    b.bakong.token_file = other.path().join("token");
    let db_a = e.merchant(&a).await;
    let md5 = e.payment(&db_a, "1", "USD", never_paid()).await;
    let db_b = {
        bakong_poller::app::open_store(&b)
            .await
            .unwrap()
            .close()
            .await;
        sqlx::SqlitePool::connect(&b.database.url).await.unwrap()
    };
    let md5_b = new_md5();
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, '1', 'USD')")
        .bind(&md5_b)
        .execute(&db_b)
        .await
        .unwrap();
    // Both start with a token that is refused: each renews once, and the
    // second renewal revokes the first one's token.
    e.sim.sim.revoke_tokens(EMAIL);
    let (da, db) = (start(a.clone()), start(b.clone()));
    wait_for("many checks from both", Duration::from_secs(15), || async {
        (checks(&e) >= 60).then_some(())
    })
    .await;
    let renewed = renewals(&e);
    // Whichever daemon renewed first sees its token refused: the cause is
    // in that one's row.
    let cause = wait_for(
        "the cause in a row's last error",
        Duration::from_secs(10),
        || {
            let (a, b) = (a.clone(), b.clone());
            let (md5, md5_b) = (md5.clone(), md5_b.clone());
            async move {
                for (s, m) in [(&a, &md5), (&b, &md5_b)] {
                    let e = bookkeeping(s, m).await.last_error.unwrap_or_default();
                    if e.contains("another client renews the same bakong.email") {
                        return Some(e);
                    }
                }
                None
            }
        },
    )
    .await;
    da.stop().await;
    db.stop().await;
    assert!(
        renewed <= 3,
        "{renewed} renewals in {} checks: the daemons back off instead of revoking each other",
        checks(&e)
    );
    assert!(cause.contains("its own registered email"), "{cause}");
}

fn never_paid() -> bakong_simulator::NewTransaction {
    bakong_simulator::NewTransaction {
        outcome: bakong_simulator::OutcomeKind::Never,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_token_an_operator_renewed_into_the_file_is_used_not_renewed_over() {
    let e = env().await;
    e.sim.sim.set_settings(SimSettings {
        revoke_on_renew: true,
        ..SimSettings::default()
    });
    let s = e.settings();
    let db = e.merchant(&s).await;
    let d = start(s.clone());
    let first = e.payment(&db, "1", "USD", paid_after(0)).await;
    assert_eq!(
        final_status(&db, &first, Duration::from_secs(10)).await,
        "paid"
    );
    // The operator renews on the same host: the old token is revoked and
    // the new one written to the token file.
    e.sim.sim.revoke_tokens(EMAIL);
    let fresh = e.sim.sim.issue_token(EMAIL);
    std::fs::write(&s.bakong.token_file, &fresh).unwrap();
    let second = e.payment(&db, "1", "USD", paid_after(0)).await;
    assert_eq!(
        final_status(&db, &second, Duration::from_secs(10)).await,
        "paid"
    );
    d.stop().await;
    assert_eq!(
        renewals(&e),
        0,
        "the operator's token was taken up, not revoked"
    );
}

#[tokio::test]
async fn a_short_lived_token_refused_for_its_age_is_renewed_not_taken_for_a_contest() {
    let e = env().await;
    // Tokens live 2 s and a renewal revokes the previous one; with
    // renew_before (7 days) longer than a token's life, a renewal ahead
    // waits half the life left but at least renew_retry (30 s): none goes
    // ahead, each token is used until the API refuses it for its age.
    e.sim.sim.set_settings(SimSettings {
        token_lifetime: Duration::from_secs(2),
        revoke_on_renew: true,
    });
    let mut s = e.settings();
    s.bakong.renew_before = Duration::from_secs(7 * 86_400);
    s.poller.renew_retry = Duration::from_secs(30);
    let db = e.merchant(&s).await;
    let md5 = e.payment(&db, "1", "USD", never_paid()).await;
    // The start token is refused at once: the first renewal gives a
    // short-lived one.
    e.sim.sim.revoke_tokens(EMAIL);
    let d = start(s.clone());
    wait_for(
        "four renewals, one per expired token",
        Duration::from_secs(30),
        || async { (renewals(&e) >= 4).then_some(()) },
    )
    .await;
    let before = checks(&e);
    wait_for(
        "checks going on after the fourth renewal",
        Duration::from_secs(10),
        || async { (checks(&e) >= before + 3).then_some(()) },
    )
    .await;
    d.stop().await;
    // Each refusal came after the token's own exp: an expiry, renewed at
    // once, never reported as another client renewing this email.
    let last_error = bookkeeping(&s, &md5).await.last_error.unwrap_or_default();
    assert!(
        !last_error.contains("another client renews"),
        "an expired token was taken for a contest: {last_error}"
    );
}

#[tokio::test]
async fn a_daemon_started_with_a_short_lived_token_does_not_renew_it_at_once() {
    let e = env().await;
    // Tokens live 8 s, shorter than renew_before (7 days): renewing
    // "renew_before ahead" would renew the moment the daemon starts,
    // revoking the token every other daemon of the fleet holds, at each
    // restart.
    e.sim.sim.set_settings(SimSettings {
        token_lifetime: Duration::from_secs(8),
        revoke_on_renew: true,
    });
    let mut s = e.settings();
    s.bakong.token = Some(e.sim.sim.issue_token(EMAIL));
    s.bakong.renew_before = Duration::from_secs(7 * 86_400);
    s.poller.renew_retry = Duration::from_secs(30);
    let db = e.merchant(&s).await;
    e.payment(&db, "1", "USD", never_paid()).await;
    let d = start(s);
    wait_for(
        "ten checks with the start token",
        Duration::from_secs(5),
        || async { (checks(&e) >= 10).then_some(()) },
    )
    .await;
    d.stop().await;
    assert_eq!(renewals(&e), 0, "the start token was renewed at once");
}
