//! The bench's own SQL over the daemon's database: seeding a backlog,
//! making rows due, reading confirmation and delivery latencies. These are
//! set-ups and measurements of the bench, not operations of the product,
//! so they are written here against the schemas of `migrations/` (SQLite
//! and PostgreSQL) rather than in the product's store.

use std::str::FromStr;
use std::time::Duration;

use bakong_poller::payment::Status;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use crate::BenchError;

/// A connection pool on the database the daemon under test uses.
pub enum Sql {
    /// A SQLite file (`sqlite://PATH`).
    Sqlite(SqlitePool),
    /// A PostgreSQL database; the URL's `search_path` names the schema.
    Postgres(PgPool),
}

fn err(what: &str) -> impl Fn(sqlx::Error) -> BenchError + '_ {
    move |e| BenchError::from(format!("{what}: {e}"))
}

impl Sql {
    /// Opens `url` (the daemon's `database.url`; the schema must exist).
    pub async fn open(url: &str) -> Result<Self, BenchError> {
        let shown = bakong_poller::redact::redact_url(url);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(err("database url"))?;
            let pool = PgPoolOptions::new()
                .max_connections(2)
                .connect_with(opts)
                .await
                .map_err(|e| format!("open {shown}: {e}"))?;
            return Ok(Sql::Postgres(pool));
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(err("database url"))?
            // The daemon may be writing: wait for its transactions.
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| format!("open {shown}: {e}"))?;
        Ok(Sql::Sqlite(pool))
    }

    /// Closes the connections.
    pub async fn close(self) {
        match self {
            Sql::Sqlite(p) => p.close().await,
            Sql::Postgres(p) => p.close().await,
        }
    }

    /// Seconds from paid_at to confirmed_at of every row with `status`,
    /// sorted.
    pub async fn confirm_latencies(&self, status: Status) -> Result<Vec<f64>, BenchError> {
        let what = err("read confirmation latencies");
        let mut v: Vec<f64> = match self {
            Sql::Sqlite(p) => sqlx::query_scalar(
                "SELECT (julianday(confirmed_at) - julianday(paid_at)) * 86400.0 FROM payments
                 WHERE status = ?1 AND paid_at IS NOT NULL AND confirmed_at IS NOT NULL",
            )
            .bind(status.as_str())
            .fetch_all(p)
            .await
            .map_err(what)?,
            Sql::Postgres(p) => sqlx::query_scalar(
                "SELECT extract(epoch FROM confirmed_at - paid_at)::float8 FROM payments
                 WHERE status = $1 AND paid_at IS NOT NULL AND confirmed_at IS NOT NULL",
            )
            .bind(status.as_str())
            .fetch_all(p)
            .await
            .map_err(what)?,
        };
        v.sort_by(f64::total_cmp);
        Ok(v)
    }

    /// Inserts `md5s` as pending 1.00 USD payments in one transaction,
    /// created evenly over the last `created_over`, and due only after
    /// `not_due_for` when given.
    pub async fn seed_backlog(
        &self,
        md5s: &[String],
        created_over: Duration,
        not_due_for: Option<Duration>,
    ) -> Result<(), BenchError> {
        let n = md5s.len().max(1) as f64;
        let due_at = not_due_for
            .map(|d| chrono::Utc::now().timestamp_millis() + d.as_millis() as i64)
            .unwrap_or(0);
        let age = |i: usize| created_over.as_secs_f64() * i as f64 / n;
        match self {
            Sql::Sqlite(p) => {
                let mut tx = p
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(err("begin backlog"))?;
                for (i, md5) in md5s.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO payments (md5, amount, currency, created_at, next_check_at)
                         VALUES (?1, '1.00', 'USD', strftime('%Y-%m-%d %H:%M:%f', 'now', ?2), ?3)",
                    )
                    .bind(md5)
                    .bind(format!("-{:.3} seconds", age(i)))
                    .bind(due_at + i as i64)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("insert backlog"))?;
                }
                tx.commit().await.map_err(err("commit backlog"))
            }
            Sql::Postgres(p) => {
                let ages: Vec<f64> = (0..md5s.len()).map(age).collect();
                let due: Vec<i64> = (0..md5s.len()).map(|i| due_at + i as i64).collect();
                sqlx::query(
                    "INSERT INTO payments (md5, amount, currency, created_at, next_check_at)
                     SELECT m, 1.00, 'USD', now() - make_interval(secs => a), d
                     FROM unnest($1::text[], $2::float8[], $3::bigint[]) AS t(m, a, d)",
                )
                .bind(md5s)
                .bind(&ages)
                .bind(&due)
                .execute(p)
                .await
                .map_err(err("insert backlog"))?;
                Ok(())
            }
        }
    }

    /// Makes `n` random pending rows due now.
    pub async fn make_due(&self, n: usize) -> Result<(), BenchError> {
        let what = err("make rows due");
        match self {
            Sql::Sqlite(p) => sqlx::query(
                "UPDATE payments SET next_check_at = 0
                 WHERE id IN (SELECT id FROM payments WHERE status = 'pending'
                              ORDER BY random() LIMIT ?1)",
            )
            .bind(n as i64)
            .execute(p)
            .await
            .map_err(what)?
            .rows_affected(),
            Sql::Postgres(p) => sqlx::query(
                "UPDATE payments SET next_check_at = 0
                 WHERE id IN (SELECT id FROM payments WHERE status = 'pending'
                              ORDER BY random() LIMIT $1)",
            )
            .bind(n as i64)
            .execute(p)
            .await
            .map_err(what)?
            .rows_affected(),
        };
        Ok(())
    }

    /// Milliseconds from an event's recording to its delivery, of every
    /// delivered one, sorted.
    pub async fn delivery_latencies(&self) -> Result<Vec<i64>, BenchError> {
        const SQL: &str = "SELECT d.delivered_ms - e.created_ms FROM event_deliveries d
             JOIN payment_events e ON e.id = d.event_id
             WHERE d.status = 'delivered' AND d.delivered_ms IS NOT NULL ORDER BY 1";
        let what = err("read delivery latencies");
        match self {
            Sql::Sqlite(p) => sqlx::query_scalar(SQL).fetch_all(p).await.map_err(what),
            Sql::Postgres(p) => sqlx::query_scalar(SQL).fetch_all(p).await.map_err(what),
        }
    }
}
