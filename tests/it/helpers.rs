//! The spawn helpers (a simulator, fast settings, an in-process daemon,
//! waiting with a deadline) and the CLI runner, from the test-support crate.

pub use test_support::bakong_poller as bin;
pub use test_support::cli::Out;
pub use test_support::spawn::*;

/// An expired payment under the late watch whose money has arrived since:
/// the simulator holds a paid transaction of 1.00 USD for its md5, and the
/// row (expired now, `late_check_at = 0`) is due for its late check.
pub async fn late_money_row(e: &TestEnv, db: &sqlx::SqlitePool) -> String {
    let md5 = new_md5();
    e.sim
        .sim
        .add_transaction(bakong_simulator::NewTransaction {
            md5: Some(md5.clone()),
            amount: Some("1.00".parse().unwrap()),
            currency: Some(bakong_poller::money::Currency::Usd),
            ..paid_after(0)
        })
        .unwrap();
    sqlx::query(
        "INSERT INTO payments (md5, amount, currency, status, confirmed_at, late_check_at)
         VALUES (?1, '1.00', 'USD', 'expired', datetime('now'), 0)",
    )
    .bind(&md5)
    .execute(db)
    .await
    .unwrap();
    md5
}
