//! The payments database: pool, migrations and every SQL statement of the
//! daemon, behind a narrow interface (claim, record, release, counts) so a
//! second backend is an addition, not a rewrite.
//!
//! SQLite is shared with the merchant's own processes: WAL journal, a busy
//! timeout, `synchronous=FULL`, writes through one connection, and every
//! read-modify-write inside a short `BEGIN IMMEDIATE` transaction.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::bakong::Transaction;

pub mod postgres;

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A database error, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database: {what}: {source}")]
pub struct StoreError {
    what: String,
    #[source]
    source: sqlx::Error,
}

fn ctx(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError { what, source }
}

/// Final statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalStatus {
    /// Paid as expected.
    Paid,
    /// Paid, but amount, currency or receiver differ.
    Mismatch,
    /// Expired after a "Transaction failed" answer.
    Failed,
    /// Expired after a "not found" answer.
    Expired,
}

impl FinalStatus {
    /// The status column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStatus::Paid => "paid",
            FinalStatus::Mismatch => "mismatch",
            FinalStatus::Failed => "failed",
            FinalStatus::Expired => "expired",
        }
    }
}

/// A row handed to the poller by a claim. Values are as stored; the poller
/// validates them.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// The claim holding the row.
    pub lease_id: i64,
    /// md5 column.
    pub md5: String,
    /// amount column.
    pub amount: String,
    /// currency column.
    pub currency: String,
    /// created_at, unix ms (None if unreadable).
    pub created_ms: Option<i64>,
    /// expires_at (or created_at + ttl), unix ms (None if unreadable).
    pub expires_ms: Option<i64>,
    /// Answers received so far.
    pub checks: i64,
    /// Consecutive transient errors so far.
    pub errors: i64,
}

/// One write the poller asks for.
#[derive(Debug, Clone)]
pub enum Write {
    /// Set a final status (guarded by `status = 'pending'`).
    Final {
        /// Row id.
        id: i64,
        /// The status.
        status: FinalStatus,
        /// What Bakong reported, for paid and mismatch.
        tx: Option<Box<Transaction>>,
    },
    /// Keep pending and check again at `next_check_at` (guarded by the lease).
    Reschedule {
        /// Row id.
        id: i64,
        /// The claim.
        lease_id: i64,
        /// Unix ms.
        next_check_at: i64,
        /// `not_found`, `failed` or an error kind.
        answer: &'static str,
        /// The error text, for transient errors.
        error: Option<String>,
        /// Whether this was a transient error (counts up `errors`).
        transient: bool,
        /// 0 while the payment is fresh, 1 after.
        lane: i64,
    },
    /// Give a claimed row back unchecked (shutdown).
    Release {
        /// Row id.
        id: i64,
        /// The claim.
        lease_id: i64,
    },
}

/// Counts per status and scheduling facts, for `status` and summaries.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    /// Pending rows.
    pub pending: i64,
    /// Paid rows.
    pub paid: i64,
    /// Mismatch rows.
    pub mismatch: i64,
    /// Failed rows.
    pub failed: i64,
    /// Expired rows.
    pub expired: i64,
    /// created_at of the oldest pending row.
    pub oldest_pending: Option<String>,
    /// Unix ms of the next due check.
    pub next_check_ms: Option<i64>,
}

/// The payments database.
#[derive(Debug, Clone)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
}

// Due rows of lane 0 (fresh) first, then lane 1, each branch a range scan
// of the partial index that stops at the limit. Both name the index:
// without statistics SQLite's planner prefers the status index and would
// walk every pending row.
const CLAIM_SQL: &str = "UPDATE payments SET next_check_at = ?1, lease_id = ?2
    WHERE id IN (
        SELECT id FROM (SELECT id FROM payments INDEXED BY payments_due
                        WHERE status = 'pending' AND lane = 0 AND next_check_at <= ?3
                        ORDER BY next_check_at LIMIT ?4)
        UNION ALL
        SELECT id FROM (SELECT id FROM payments INDEXED BY payments_due
                        WHERE status = 'pending' AND lane = 1 AND next_check_at <= ?3
                        ORDER BY next_check_at LIMIT ?4)
        LIMIT ?4)
    RETURNING id, md5, amount, currency,
        CAST(unixepoch(created_at, 'subsec') * 1000 AS INTEGER) AS created_ms,
        CAST(coalesce(unixepoch(expires_at, 'subsec'),
                      unixepoch(created_at, 'subsec') + ?5) * 1000 AS INTEGER) AS expires_ms,
        checks, errors";

const DUE_SQL: &str = "SELECT count(*) FROM (SELECT 1 FROM payments INDEXED BY payments_due
    WHERE status = 'pending' AND lane IN (0, 1) AND next_check_at <= ?1 LIMIT ?2)";

// One statement for a whole batch, driven by the JSON rows: each is a rowid
// lookup (the unary + keeps the planner off the status index, which would
// walk every pending row once per JSON row).
const RESCHEDULE_SQL: &str = "UPDATE payments SET next_check_at = v.next, lease_id = NULL,
        checks = checks + 1 - v.transient,
        errors = CASE WHEN v.transient THEN errors + 1 ELSE 0 END,
        last_answer = v.answer, last_error = v.error, last_checked_at = ?2, lane = v.lane
    FROM (SELECT value ->> 'id' AS id, value ->> 'lease' AS lease, value ->> 'next' AS next,
                 value ->> 'answer' AS answer, value ->> 'error' AS error,
                 value ->> 'transient' AS transient, value ->> 'lane' AS lane
          FROM json_each(?1)) AS v
    WHERE payments.id = v.id AND payments.lease_id = v.lease AND +payments.status = 'pending'";

const RELEASE_SQL: &str = "UPDATE payments SET next_check_at = ?2, lease_id = NULL
    FROM (SELECT value ->> 'id' AS id, value ->> 'lease' AS lease FROM json_each(?1)) AS v
    WHERE payments.id = v.id AND payments.lease_id = v.lease AND +payments.status = 'pending'";

/// UTC time as the table stores it: `YYYY-MM-DD HH:MM:SS.SSS`, readable by
/// SQLite's `datetime()`.
pub fn sql_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Creates a missing database file with mode 0660 (less the umask), so the
/// merchant's application can share it through the group: SQLite would
/// create it 0644, and its -wal and -shm files copy the database's mode.
fn create_shared(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o660)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (creating if missing) the database at `url`.
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        let opts =
            SqliteConnectOptions::from_str(url).map_err(ctx(format!("database.url {url:?}")))?;
        create_shared(opts.get_filename()).map_err(|e| StoreError {
            what: format!("create {}", opts.get_filename().display()),
            source: sqlx::Error::Io(e),
        })?;
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .map_err(ctx(format!("open {url}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(ctx(format!("open {url} for reading")))?;
        Ok(Store { write, read })
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.write).await.map_err(|e| StoreError {
            what: "migrate".into(),
            source: e.into(),
        })
    }

    /// The journal mode in force (`wal` expected).
    pub async fn journal_mode(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.read)
            .await
            .map_err(ctx("read journal mode"))
    }

    /// Claims up to `limit` due pending rows for `lease`: fresh ones (lane
    /// 0: a customer may be waiting) first, then older ones, each by due
    /// time. Their `next_check_at` moves past the lease, so a crash only
    /// delays them.
    pub async fn claim(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(now_ms + lease.as_millis() as i64)
            .bind(lease_id)
            .bind(now_ms)
            .bind(limit as i64)
            .bind(ttl.as_secs_f64())
            .fetch_all(&self.write)
            .await
            .map_err(ctx("claim due payments"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Claimed {
                id: r.try_get("id").map_err(ctx("claim: id"))?,
                lease_id,
                md5: r
                    .try_get::<Option<String>, _>("md5")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                amount: r
                    .try_get::<Option<String>, _>("amount")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                currency: r
                    .try_get::<Option<String>, _>("currency")
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                created_ms: r.try_get("created_ms").ok().flatten(),
                expires_ms: r.try_get("expires_ms").ok().flatten(),
                checks: r.try_get("checks").unwrap_or(0),
                errors: r.try_get("errors").unwrap_or(0),
            });
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// How many pending rows are due at `now_ms`, counting at most `cap`.
    pub async fn due(&self, now_ms: i64, cap: usize) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar(DUE_SQL)
            .bind(now_ms)
            .bind(cap as i64)
            .fetch_one(&self.read)
            .await
            .map_err(ctx("count due payments"))?;
        Ok(n as usize)
    }

    /// Applies writes in one short `BEGIN IMMEDIATE` transaction. Returns,
    /// per write, whether it changed a row (a final write that finds the
    /// row no longer pending changes nothing: results are written once).
    /// Reschedules and releases go as one statement each (a JSON array), as
    /// every statement is a round trip to SQLite's worker thread.
    pub async fn record(
        &self,
        writes: &[Write],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("begin write"))?;
        let now_text = sql_time(now);
        let mut applied = vec![true; writes.len()];
        let mut reschedules = Vec::new();
        let mut releases = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Final { id, status, tx: t } => {
                    let t = t.as_deref();
                    let res = sqlx::query(
                        "UPDATE payments SET status = ?2, bakong_hash = ?3, from_account_id = ?4,
                            to_account_id = ?5, paid_amount = ?6, paid_currency = ?7,
                            description = ?8, paid_at = ?9, confirmed_at = ?10,
                            last_checked_at = ?10, checks = checks + 1, lease_id = NULL
                         WHERE id = ?1 AND status = 'pending'",
                    )
                    .bind(id)
                    .bind(status.as_str())
                    .bind(t.map(|t| t.hash.clone()))
                    .bind(t.map(|t| t.from_account_id.clone()))
                    .bind(t.map(|t| t.to_account_id.clone()))
                    .bind(t.map(|t| t.amount.normalize().to_string()))
                    .bind(t.map(|t| t.currency.code()))
                    .bind(t.and_then(|t| t.description.clone()))
                    .bind(
                        t.and_then(|t| t.created_date_ms)
                            .and_then(DateTime::<Utc>::from_timestamp_millis)
                            .map(sql_time),
                    )
                    .bind(&now_text)
                    .execute(&mut *tx)
                    .await
                    .map_err(ctx("record result"))?;
                    applied[i] = res.rows_affected() == 1;
                }
                Write::Reschedule {
                    id,
                    lease_id,
                    next_check_at,
                    answer,
                    error,
                    transient,
                    lane,
                } => reschedules.push(serde_json::json!({
                    "id": id, "lease": lease_id, "next": next_check_at, "answer": answer,
                    "error": error, "transient": i64::from(*transient), "lane": lane,
                })),
                Write::Release { id, lease_id } => {
                    releases.push(serde_json::json!({ "id": id, "lease": lease_id }))
                }
            }
        }
        if !reschedules.is_empty() {
            sqlx::query(RESCHEDULE_SQL)
                .bind(serde_json::Value::Array(reschedules).to_string())
                .bind(&now_text)
                .execute(&mut *tx)
                .await
                .map_err(ctx("reschedule payments"))?;
        }
        if !releases.is_empty() {
            sqlx::query(RELEASE_SQL)
                .bind(serde_json::Value::Array(releases).to_string())
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(ctx("release payments"))?;
        }
        tx.commit().await.map_err(ctx("commit results"))?;
        Ok(applied)
    }

    /// Counts per status, the oldest pending row and the next due check.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        let rows = sqlx::query("SELECT status, count(*) AS n FROM payments GROUP BY status")
            .fetch_all(&self.read)
            .await
            .map_err(ctx("count payments"))?;
        let mut c = Counts::default();
        for r in rows {
            let n: i64 = r.try_get("n").unwrap_or(0);
            match r
                .try_get::<String, _>("status")
                .unwrap_or_default()
                .as_str()
            {
                "pending" => c.pending = n,
                "paid" => c.paid = n,
                "mismatch" => c.mismatch = n,
                "failed" => c.failed = n,
                "expired" => c.expired = n,
                _ => {}
            }
        }
        let row = sqlx::query(
            "SELECT min(created_at) AS oldest, min(next_check_at) AS next
             FROM payments WHERE status = 'pending'",
        )
        .fetch_one(&self.read)
        .await
        .map_err(ctx("read pending facts"))?;
        c.oldest_pending = row.try_get("oldest").ok().flatten();
        c.next_check_ms = row.try_get("next").ok().flatten();
        Ok(c)
    }

    /// Payments confirmed paid since midnight UTC.
    pub async fn paid_today(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT count(*) FROM payments WHERE status = 'paid' AND confirmed_at >= date('now')",
        )
        .fetch_one(&self.read)
        .await
        .map_err(ctx("count today's payments"))
    }

    /// The write pool, for tests and tools that insert rows as a merchant.
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A row as `list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PaymentRow {
    /// Row id.
    pub id: i64,
    /// md5.
    pub md5: String,
    /// Expected amount.
    pub amount: String,
    /// Expected currency.
    pub currency: String,
    /// Status.
    pub status: String,
    /// created_at.
    pub created_at: String,
    /// expires_at as inserted.
    pub expires_at: Option<String>,
    /// Transaction hash.
    pub bakong_hash: Option<String>,
    /// Payer.
    pub from_account_id: Option<String>,
    /// Receiver.
    pub to_account_id: Option<String>,
    /// Amount paid.
    pub paid_amount: Option<String>,
    /// Currency paid.
    pub paid_currency: Option<String>,
    /// When paid.
    pub paid_at: Option<String>,
    /// When recorded.
    pub confirmed_at: Option<String>,
    /// Last answer or error kind.
    pub last_answer: Option<String>,
    /// Last transient error.
    pub last_error: Option<String>,
}

impl Store {
    /// Inserts a pending payment as a merchant would. The table's CHECK
    /// constraints have the last word on what is valid.
    pub async fn insert_payment(
        &self,
        md5: &str,
        amount: &str,
        currency: &str,
        expires_at: Option<&str>,
    ) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(md5)
        .bind(amount)
        .bind(currency)
        .bind(expires_at)
        .execute(&self.write)
        .await
        .map_err(ctx(format!("insert payment {md5}")))?;
        Ok(r.last_insert_rowid())
    }

    /// The newest rows, optionally of one status.
    pub async fn list(
        &self,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, md5, amount, currency, status, created_at, expires_at, bakong_hash,
                    from_account_id, to_account_id, paid_amount, paid_currency, paid_at,
                    confirmed_at, last_answer, last_error
             FROM payments WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(status)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(ctx("list payments"))?;
        let s =
            |r: &sqlx::sqlite::SqliteRow, k: &str| r.try_get::<Option<String>, _>(k).ok().flatten();
        Ok(rows
            .iter()
            .map(|r| PaymentRow {
                id: r.try_get("id").unwrap_or(0),
                md5: s(r, "md5").unwrap_or_default(),
                amount: s(r, "amount").unwrap_or_default(),
                currency: s(r, "currency").unwrap_or_default(),
                status: s(r, "status").unwrap_or_default(),
                created_at: s(r, "created_at").unwrap_or_default(),
                expires_at: s(r, "expires_at"),
                bakong_hash: s(r, "bakong_hash"),
                from_account_id: s(r, "from_account_id"),
                to_account_id: s(r, "to_account_id"),
                paid_amount: s(r, "paid_amount"),
                paid_currency: s(r, "paid_currency"),
                paid_at: s(r, "paid_at"),
                confirmed_at: s(r, "confirmed_at"),
                last_answer: s(r, "last_answer"),
                last_error: s(r, "last_error"),
            })
            .collect())
    }

    /// When the daemon last got a readable answer from Bakong (a row
    /// checked without a transient error).
    pub async fn last_answer_at(&self) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT max(last_checked_at) FROM payments WHERE last_error IS NULL")
            .fetch_one(&self.read)
            .await
            .map_err(ctx("read last answer time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_claim_and_due_queries_walk_only_the_due_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        for sql in [CLAIM_SQL, DUE_SQL] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.pool())
                .await
                .expect("plan")
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                .collect();
            let text = plan.join("\n");
            assert!(text.contains("INDEX payments_due"), "{text}");
            assert!(!text.contains("payments_status"), "{text}");
        }
        for sql in [RESCHEDULE_SQL, RELEASE_SQL] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.pool())
                .await
                .expect("plan")
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                .collect();
            let text = plan.join("\n");
            assert!(text.contains("INTEGER PRIMARY KEY"), "{text}");
            assert!(!text.contains("payments_status"), "{text}");
        }
    }

    #[tokio::test]
    async fn fresh_payments_are_claimed_before_older_due_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        for i in 0..3 {
            sqlx::query("INSERT INTO payments (md5, amount, currency, lane, next_check_at) VALUES (?1, '1', 'USD', 1, ?2)")
                .bind(format!("{:032x}", i))
                .bind(i)
                .execute(store.pool())
                .await
                .expect("old row");
        }
        let fresh = store
            .insert_payment(&format!("{:032x}", 99), "1", "USD", None)
            .await
            .expect("fresh row");
        let now = 1_000_000;
        let ttl = Duration::from_secs(900);
        let first = store
            .claim(now, Duration::from_secs(60), 1, ttl)
            .await
            .expect("claim");
        assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), vec![fresh]);
        let rest = store
            .claim(now, Duration::from_secs(60), 10, ttl)
            .await
            .expect("claim");
        assert_eq!(rest.len(), 3, "then the older ones, by due time");
        assert!(
            store
                .claim(now, Duration::from_secs(60), 10, ttl)
                .await
                .expect("claim")
                .is_empty(),
            "leased rows are not claimed twice"
        );
    }

    #[tokio::test]
    async fn reschedules_and_releases_respect_the_lease_and_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = Store::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        for i in 0..3 {
            store
                .insert_payment(&format!("{:032x}", i), "1", "USD", None)
                .await
                .expect("insert");
        }
        let lease = Duration::from_secs(60);
        let claimed = store
            .claim(1_000, lease, 3, Duration::from_secs(900))
            .await
            .expect("claim");
        let (a, b, c) = (&claimed[0], &claimed[1], &claimed[2]);
        let resched = |row: &Claimed, lease_id: i64, transient: bool| Write::Reschedule {
            id: row.id,
            lease_id,
            next_check_at: 5_000,
            answer: if transient { "http" } else { "not_found" },
            error: transient.then(|| "HTTP 502".to_string()),
            transient,
            lane: 1,
        };
        let writes = [
            resched(a, a.lease_id, true),
            resched(b, b.lease_id + 1, false),
            Write::Release {
                id: c.id,
                lease_id: c.lease_id,
            },
        ];
        store.record(&writes, Utc::now()).await.expect("record");
        let rows: Vec<(i64, i64, i64, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, next_check_at, checks, errors, lane, last_error FROM payments ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .expect("rows");
        assert_eq!(
            rows[0],
            (a.id, 5_000, 0, 1, 1, Some("HTTP 502".into())),
            "transient error: errors + 1"
        );
        assert_eq!(rows[1].1, 1_000 + 60_000, "a stale lease changes nothing");
        assert!(
            rows[2].1 <= Utc::now().timestamp_millis() && rows[2].1 > 1_000,
            "released: due now"
        );
    }
}
