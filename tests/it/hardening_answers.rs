//! Issue 20 item 6: one answer the database cannot store never sinks its
//! batch. A NUL in a string field or a `createdDateMs` no database holds is
//! an unreadable field where the answer enters: the item is unreadable when
//! the `paid` rule needs the field (receiver), else the field reads as
//! absent (payer, description, time). The healthy payments checked in the
//! same md5-list request are paid at once, on SQLite and PostgreSQL; and
//! the store itself writes each final result on its own, so a value the
//! database refuses fails that write alone.

use std::time::Duration;

use bakong_poller::bakong::types::Transaction;
use bakong_poller::config::{BulkMode, Settings};
use bakong_poller::money::Currency;
use bakong_poller::payment::{Confirmation, FinalStatus};
use bakong_poller::poller::classify;
use bakong_poller::store::{Applied, NewPayment, Store, Write};
use bakong_simulator::NewTransaction;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::helpers::*;
use crate::integrity::{self, Raw};
use crate::pg_daemon::pg_env;

/// How long the healthy payments of the batch may take to be paid.
const FEW_SECONDS: Duration = Duration::from_secs(5);

/// -1e15 ms: about 29,700 BC, which chrono holds and PostgreSQL's
/// `timestamptz` does not.
const FAR_PAST_MS: i64 = -1_000_000_000_000_000;
/// 1e17 ms: about 3.2 million years AD, beyond both.
const FAR_FUTURE_MS: i64 = 100_000_000_000_000_000;

/// The merchant's own connection, on either backend.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// What a row holds after the daemon's work.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    description: Option<String>,
    from_account_id: Option<String>,
    to_account_id: Option<String>,
    paid_at_null: bool,
    events: i64,
}

impl Db {
    async fn insert(&self, md5: &str) {
        match self {
            Db::Sqlite(p) => sqlx::query(
                "INSERT INTO payments (md5, amount, currency) VALUES (?1, '1.00', 'USD')",
            )
            .bind(md5)
            .execute(p)
            .await
            .map(drop),
            Db::Pg(p) => sqlx::query(
                "INSERT INTO payments (md5, amount, currency) VALUES ($1, '1.00'::numeric, 'USD')",
            )
            .bind(md5)
            .execute(p)
            .await
            .map(drop),
        }
        .unwrap();
    }

    async fn row(&self, md5: &str) -> Row {
        // md5 is 32 hex characters: safe to quote.
        let sql = format!(
            "SELECT status, description, from_account_id, to_account_id,
                    paid_at IS NULL AS paid_at_null,
                    (SELECT count(*) FROM payment_events e WHERE e.md5 = p.md5) AS events
             FROM payments p WHERE md5 = '{md5}'"
        );
        match self {
            Db::Sqlite(p) => sqlx::query_as::<_, Row>(&sql).fetch_one(p).await,
            Db::Pg(p) => sqlx::query_as::<_, Row>(&sql).fetch_one(p).await,
        }
        .unwrap()
    }
}

/// Registers a payment of 1.00 USD with the simulator, paid at once with
/// `t`'s odd fields, and inserts it as the merchant.
async fn pay(e: &TestEnv, db: &Db, t: NewTransaction) -> String {
    let md5 = new_md5();
    e.sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(md5.clone()),
            amount: Some(Decimal::ONE),
            currency: Some(Currency::Usd),
            to_account: Some(ACCOUNT.into()),
            ..t
        })
        .unwrap();
    db.insert(&md5).await;
    md5
}

/// Healthy payments and odd answers checked in one md5-list request: the
/// healthy ones are paid within a few seconds; an answer with an
/// unstorable informative field is paid with that field absent (never
/// stored altered); an answer whose receiver cannot be stored is never
/// paid and counts as an error of its own row.
async fn an_unstorable_answer_never_holds_back_its_batch(e: &TestEnv, mut s: Settings, db: Db) {
    s.poller.bulk = BulkMode::Always;
    s.bakong.account_id = Some(ACCOUNT.into());
    let mut healthy = Vec::new();
    for _ in 0..6 {
        healthy.push(pay(e, &db, paid_after(0)).await);
    }
    let nul_description = pay(
        e,
        &db,
        NewTransaction {
            description: Some("thanks\0 for paying".into()),
            ..paid_after(0)
        },
    )
    .await;
    let nul_payer = pay(
        e,
        &db,
        NewTransaction {
            from_account: Some("payer\0@bank".into()),
            ..paid_after(0)
        },
    )
    .await;
    let far_past = pay(
        e,
        &db,
        NewTransaction {
            created_date_ms: Some(FAR_PAST_MS),
            ..paid_after(0)
        },
    )
    .await;
    let far_future = pay(
        e,
        &db,
        NewTransaction {
            created_date_ms: Some(FAR_FUTURE_MS),
            ..paid_after(0)
        },
    )
    .await;
    let nul_receiver = pay(
        e,
        &db,
        NewTransaction {
            paid_to: Some(format!("{ACCOUNT}\0")),
            ..paid_after(0)
        },
    )
    .await;
    let d = start(s.clone());
    let db = &db;
    let all_paid = |what: &'static str, md5s: Vec<String>| {
        wait_for(what, FEW_SECONDS, move || {
            let md5s = md5s.clone();
            async move {
                for md5 in &md5s {
                    if db.row(md5).await.status != "paid" {
                        return None;
                    }
                }
                Some(())
            }
        })
    };
    all_paid("the healthy payments to be paid", healthy.clone()).await;
    all_paid(
        "the answers with an unstorable informative field to be paid",
        vec![
            nul_description.clone(),
            nul_payer.clone(),
            far_past.clone(),
            far_future.clone(),
        ],
    )
    .await;
    for md5 in &healthy {
        let r = db.row(md5).await;
        assert!(!r.paid_at_null, "{r:?}");
        assert_eq!(r.from_account_id.as_deref(), Some("customer@abaa"));
        assert_eq!(r.events, 1, "{r:?}");
    }
    let r = db.row(&nul_description).await;
    assert_eq!(r.description, None, "never stored altered: {r:?}");
    assert!(!r.paid_at_null && r.from_account_id.is_some(), "{r:?}");
    let r = db.row(&nul_payer).await;
    assert_eq!(r.from_account_id, None, "{r:?}");
    assert_eq!(r.to_account_id.as_deref(), Some(ACCOUNT));
    for md5 in [&far_past, &far_future] {
        let r = db.row(md5).await;
        assert!(r.paid_at_null, "no time a payment was made: {r:?}");
        assert_eq!(r.events, 1, "{r:?}");
    }
    // The unreadable receiver: an error of its own row, checked again with
    // back-off, never paid.
    let b = wait_for("the odd receiver to count errors", FEW_SECONDS, || async {
        let b = bookkeeping(&s, &nul_receiver).await;
        (b.errors >= 2).then_some(b)
    })
    .await;
    assert_eq!(b.last_answer.as_deref(), Some("decode"), "{b:?}");
    let error = b.last_error.unwrap_or_default();
    assert!(
        error.contains("toAccountId"),
        "the error names the field: {error}"
    );
    assert!(!error.contains('\0'), "{error:?}");
    let r = db.row(&nul_receiver).await;
    assert_eq!(r.status, "pending", "{r:?}");
    assert_eq!((r.to_account_id, r.events), (None, 0), "nothing recorded");
    d.stop().await;
    let st = e.sim.sim.stats();
    assert!(
        st.requests["check_transaction_by_md5_list"][&200] >= 1
            && !st.requests.contains_key("check_transaction_by_md5"),
        "md5-list requests only: {:?}",
        st.requests
    );
}

#[tokio::test]
async fn an_unstorable_answer_never_holds_back_its_batch_on_sqlite() {
    let e = env().await;
    let s = e.settings();
    let db = Db::Sqlite(e.merchant(&s).await);
    an_unstorable_answer_never_holds_back_its_batch(&e, s, db).await;
}

#[tokio::test]
async fn an_unstorable_answer_never_holds_back_its_batch_on_postgres() {
    let Some(p) = pg_env().await else {
        return;
    };
    let s = p.settings();
    let db = Db::Pg(p.db.clone());
    an_unstorable_answer_never_holds_back_its_batch(&p.e, s, db).await;
}

fn md5(i: u32) -> String {
    format!("{i:032x}")
}

fn confirmation(description: Option<&str>, paid_at: Option<DateTime<Utc>>) -> Confirmation {
    Confirmation {
        hash: "ab".repeat(32),
        from_account_id: Some("payer@bank".into()),
        to_account_id: "shop@bank".into(),
        paid_amount: Decimal::ONE,
        paid_currency: Currency::Usd,
        description: description.map(String::from),
        paid_at,
    }
}

/// A confirmation as the poller builds it from an answer's text.
fn from_answer(extra: &str) -> Confirmation {
    let text = format!(
        r#"{{"hash":"{}","toAccountId":"shop@bank","currency":"USD","amount":1,{extra}}}"#,
        "cd".repeat(32)
    );
    classify::confirmation(&Transaction::from_text(&text).unwrap())
}

/// Claims rows 1..=n (inserted here) and writes each its final result.
async fn record_paid(store: &Store, first: u32, results: Vec<Confirmation>) -> Vec<Applied> {
    for (i, _) in results.iter().enumerate() {
        store
            .insert_payment(&NewPayment {
                order_id: None,
                metadata: None,
                qr: None,
                public_id: None,
                redirect_url: None,
                md5: md5(first + i as u32),
                amount: "1.00".into(),
                currency: Currency::Usd,
                expires_at: None,
            })
            .await
            .unwrap();
    }
    let mut claimed = store
        .claim(
            Utc::now().timestamp_millis(),
            Duration::from_secs(60),
            results.len(),
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    claimed.sort_by(|a, b| a.md5.cmp(&b.md5));
    assert_eq!(claimed.len(), results.len());
    let writes: Vec<Write> = claimed
        .iter()
        .zip(results)
        .map(|(c, r)| Write::Final {
            row: c.held(),
            status: FinalStatus::Paid,
            confirmation: Some(Box::new(r)),
            answer: "found",
        })
        .collect();
    store.record(&writes, Utc::now()).await.unwrap()
}

/// The store writes each final result on its own: on PostgreSQL a NUL in
/// the description, or a time beyond `timestamptz`, fails that write alone
/// and the others of its batch are written; SQLite stores both. Read
/// through [`Transaction::from_text`], the same values never reach the
/// store: every write of the batch goes through, the fields absent.
async fn one_unstorable_write_fails_alone(store: Store, raw: Raw, postgres: bool) {
    let far_past = DateTime::<Utc>::from_timestamp_millis(FAR_PAST_MS);
    assert!(far_past.is_some(), "chrono holds -1e15 ms");
    let applied = record_paid(
        &store,
        1,
        vec![
            confirmation(None, Some(Utc::now())),
            confirmation(Some("thanks\0"), None),
            confirmation(Some("thanks"), None),
            confirmation(None, far_past),
            confirmation(None, None),
        ],
    )
    .await;
    let refused = |a: &Applied| {
        if postgres {
            matches!(a, Applied::Failed(_))
        } else {
            *a == Applied::Written
        }
    };
    assert_eq!(applied[0], Applied::Written, "{applied:?}");
    assert!(refused(&applied[1]), "{applied:?}");
    assert_eq!(applied[2], Applied::Written, "{applied:?}");
    assert!(refused(&applied[3]), "{applied:?}");
    assert_eq!(applied[4], Applied::Written, "{applied:?}");
    let paid = raw
        .int("SELECT count(*) FROM payments WHERE status = 'paid'")
        .await;
    assert_eq!(paid, if postgres { 3 } else { 5 });
    let events = raw.int("SELECT count(*) FROM payment_events").await;
    assert_eq!(events, paid, "an event for each write that went through");

    // As the poller reads them from an answer.
    let applied = record_paid(
        &store,
        11,
        vec![
            from_answer(r#""description":"ok""#),
            from_answer(r#""description":"thanks\u0000""#),
            from_answer(r#""createdDateMs":-1000000000000000"#),
            from_answer(r#""createdDateMs":1e17,"fromAccountId":"p\u0000@b""#),
        ],
    )
    .await;
    assert_eq!(applied, vec![Applied::Written; 4]);
    let clean = raw
        .int(&format!(
            "SELECT count(*) FROM payments WHERE md5 IN ('{}', '{}', '{}')
             AND status = 'paid' AND description IS NULL AND paid_at IS NULL",
            md5(12),
            md5(13),
            md5(14)
        ))
        .await;
    assert_eq!(clean, 3);
    let payer = raw
        .int(&format!(
            "SELECT count(*) FROM payments WHERE md5 = '{}' AND from_account_id IS NULL",
            md5(14)
        ))
        .await;
    assert_eq!(payer, 1);
}

#[tokio::test]
async fn one_unstorable_write_fails_alone_on_sqlite() {
    let (store, raw, _dir) = integrity::sqlite().await;
    one_unstorable_write_fails_alone(store, raw, false).await;
}

#[tokio::test]
async fn one_unstorable_write_fails_alone_on_postgres() {
    let Some((store, raw)) = integrity::postgres().await else {
        return;
    };
    one_unstorable_write_fails_alone(store, raw, true).await;
}
