//! One behaviour suite for both backends: a scenario is written once as
//! `async fn scenario(db: Db)` and `both!(scenario)` makes two tests of it,
//! `scenario::on_sqlite` and `scenario::on_postgres` (`cargo test
//! on_postgres` runs every PostgreSQL one). The PostgreSQL test is skipped
//! with a loud line where the server binaries are missing, and fails under
//! `CI=true` (tests/it/pg.rs).
//!
//! [`BackendEnv`] is a simulator, a fresh migrated database of either kind
//! and the merchant's own connection to it, with the few reads and writes
//! the scenarios need in each dialect.

use std::time::Duration;

use bakong_poller::config::Settings;
use bakong_poller::simulator::NewTransaction;
use rust_decimal::Decimal;
use sqlx::{PgPool, SqlitePool};

use crate::helpers::{self, new_md5, wait_for, TestEnv, ACCOUNT};
use crate::pg;

/// The database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Two tests per scenario: `<scenario>::on_sqlite`, `<scenario>::on_postgres`.
macro_rules! both {
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                super::$scenario($crate::backends::Db::Sqlite).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                super::$scenario($crate::backends::Db::Postgres).await;
            }
        }
    )+};
}
pub(crate) use both;

/// The merchant's own connection.
pub enum Conn {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What the daemon wrote when it confirmed a payment.
#[derive(Debug)]
pub struct Confirmation {
    pub bakong_hash: Option<String>,
    pub from_account_id: Option<String>,
    pub to_account_id: Option<String>,
    /// As text (`numeric::text` on PostgreSQL).
    pub paid_amount: Option<String>,
    pub paid_currency: Option<String>,
    pub description: Option<String>,
    pub paid_at_set: bool,
    pub confirmed_at_set: bool,
}

/// A simulator and a fresh, migrated database on `db`.
pub struct BackendEnv {
    pub e: TestEnv,
    pub url: String,
    pub conn: Conn,
}

/// None: PostgreSQL without its server binaries outside CI (tests/it/pg.rs).
pub async fn backend_env(db: Db) -> Option<BackendEnv> {
    let e = helpers::env().await;
    let (url, conn) = match db {
        Db::Sqlite => {
            let s = e.settings();
            let pool = e.merchant(&s).await;
            (s.database.url, Conn::Sqlite(pool))
        }
        Db::Postgres => {
            let url = pg::database().await?;
            let mut s = e.settings();
            s.database.url = url.clone();
            bakong_poller::app::open_store(&s)
                .await
                .unwrap()
                .close()
                .await;
            let pool = PgPool::connect(&url).await.unwrap();
            (url, Conn::Postgres(pool))
        }
    };
    Some(BackendEnv { e, url, conn })
}

impl BackendEnv {
    /// The test settings (tests/it/helpers.rs) on this database.
    pub fn settings(&self) -> Settings {
        let mut s = self.e.settings();
        s.database.url = self.url.clone();
        s
    }

    /// Runs one statement, written for this backend.
    pub async fn exec(&self, sqlite: &str, postgres: &str) {
        match &self.conn {
            Conn::Sqlite(p) => {
                sqlx::query(sqlite).execute(p).await.unwrap();
            }
            Conn::Postgres(p) => {
                sqlx::query(postgres).execute(p).await.unwrap();
            }
        }
    }

    /// Registers a payment with the simulator and inserts it as a
    /// merchant's application would (text parameters).
    pub async fn payment(&self, amount: &str, currency: &str, t: NewTransaction) -> String {
        let md5 = self.register(amount, currency, t);
        self.insert(&md5, amount, currency).await;
        md5
    }

    /// Registers a payment with the simulator only; returns its md5.
    pub fn register(&self, amount: &str, currency: &str, mut t: NewTransaction) -> String {
        let md5 = t.md5.clone().unwrap_or_else(new_md5);
        t.md5 = Some(md5.clone());
        t.amount = t.amount.or_else(|| amount.parse::<Decimal>().ok());
        t.currency = t.currency.or_else(|| currency.parse().ok());
        if t.to_account.is_none() {
            t.to_account = Some(ACCOUNT.into());
        }
        self.e.sim.sim.add_transaction(t).unwrap();
        md5
    }

    /// Inserts a payment row as a merchant's application would.
    pub async fn insert(&self, md5: &str, amount: &str, currency: &str) {
        match &self.conn {
            Conn::Sqlite(p) => {
                sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, ?3)")
                    .bind(md5)
                    .bind(amount)
                    .bind(currency)
                    .execute(p)
                    .await
                    .unwrap();
            }
            Conn::Postgres(p) => {
                sqlx::query(
                    "INSERT INTO payments (md5, amount, currency) VALUES ($1, $2::numeric, $3)",
                )
                .bind(md5)
                .bind(amount)
                .bind(currency)
                .execute(p)
                .await
                .unwrap();
            }
        }
    }

    pub async fn status(&self, md5: &str) -> String {
        match &self.conn {
            Conn::Sqlite(p) => helpers::status(p, md5).await,
            Conn::Postgres(p) => sqlx::query_scalar("SELECT status FROM payments WHERE md5 = $1")
                .bind(md5)
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }

    /// Waits until the payment leaves `pending`; returns its final status.
    pub async fn final_status(&self, md5: &str, limit: Duration) -> String {
        wait_for(&format!("{md5} to leave pending"), limit, || async {
            let s = self.status(md5).await;
            (s != "pending").then_some(s)
        })
        .await
    }

    /// The daemon's bookkeeping of a payment, through the store interface.
    pub async fn bookkeeping(&self, md5: &str) -> bakong_poller::store::Bookkeeping {
        helpers::bookkeeping(&self.settings(), md5).await
    }

    /// The row's lease (None: nobody holds it).
    pub async fn lease_id(&self, md5: &str) -> Option<i64> {
        match &self.conn {
            Conn::Sqlite(p) => sqlx::query_scalar("SELECT lease_id FROM payments WHERE md5 = ?1")
                .bind(md5)
                .fetch_one(p)
                .await
                .unwrap(),
            Conn::Postgres(p) => sqlx::query_scalar("SELECT lease_id FROM payments WHERE md5 = $1")
                .bind(md5)
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }

    /// What the daemon wrote on the row of `md5`.
    pub async fn confirmation(&self, md5: &str) -> Confirmation {
        type Row = (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
            bool,
        );
        let row: Row = match &self.conn {
            Conn::Sqlite(p) => sqlx::query_as(
                "SELECT bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
                        description, paid_at IS NOT NULL, confirmed_at IS NOT NULL
                 FROM payments WHERE md5 = ?1",
            )
            .bind(md5)
            .fetch_one(p)
            .await
            .unwrap(),
            Conn::Postgres(p) => sqlx::query_as(
                "SELECT bakong_hash, from_account_id, to_account_id, paid_amount::text,
                        paid_currency, description, paid_at IS NOT NULL,
                        confirmed_at IS NOT NULL
                 FROM payments WHERE md5 = $1",
            )
            .bind(md5)
            .fetch_one(p)
            .await
            .unwrap(),
        };
        Confirmation {
            bakong_hash: row.0,
            from_account_id: row.1,
            to_account_id: row.2,
            paid_amount: row.3,
            paid_currency: row.4,
            description: row.5,
            paid_at_set: row.6,
            confirmed_at_set: row.7,
        }
    }
}
