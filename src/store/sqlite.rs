//! The SQLite backend: pool, migrations and every SQL statement for it.
//!
//! SQLite is shared with the merchant's own processes: WAL journal, a busy
//! timeout, `synchronous=FULL`, writes through one connection, and every
//! read-modify-write inside a short `BEGIN IMMEDIATE` transaction. One
//! daemon per database: a second would double the request ceiling, so
//! [`SqliteStore::lock_instance`] holds an OS lock on a file beside it.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use super::{
    amount_text, ctx, status_from, time_text as sql_time, Backend, Batch, Claimed, Counts,
    DeliveryListRow, EventHead, EventKey, GateState, Held, InstanceGuard, LastAnswer, NewPayment,
    PageFilter, PaymentRow, ReportRow, StatusSummary, StoreError, Target, WriteTx, WrittenRow,
    DELIVERY_COLUMNS, GATE_COLUMNS,
};
use crate::event::NewEvent;
use crate::payment::{Confirmation, FinalStatus, PaymentId, Status};

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

// Pending rows whose amount has more decimals than its currency allows.
const TOO_PRECISE: &str = "status = 'pending' AND typeof(amount) = 'text' \
     AND amount NOT GLOB '*[^0-9.]*' AND instr(amount, '.') > 0 \
     AND length(rtrim(substr(amount, instr(amount, '.') + 1), '0')) > \
     CASE currency WHEN 'KHR' THEN 0 ELSE 2 END";

/// See [`super::inspect`]: opened as is, never created, the journal mode
/// untouched.
pub async fn inspect(url: &str, busy_timeout: Duration) -> Result<super::Inspection, StoreError> {
    use sqlx::{ConnectOptions, Connection};
    let shown = crate::redact::redact_url(url);
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(ctx(format!("database.url {shown:?}")))?
        .create_if_missing(false)
        .busy_timeout(busy_timeout);
    let mut conn = opts.connect().await.map_err(ctx(format!("open {shown}")))?;
    let mut found = super::Inspection {
        journal_mode: sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .map_err(ctx("read the journal mode"))?,
        ..Default::default()
    };
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .map_err(ctx("list tables"))?;
    let applied: Vec<(i64, bool, Vec<u8>)> = if tables.iter().any(|t| t == "_sqlx_migrations") {
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations")
            .fetch_all(&mut conn)
            .await
            .map_err(ctx("read the applied migrations"))?
    } else {
        Vec::new()
    };
    for (version, success, checksum) in &applied {
        match MIGRATOR.iter().find(|m| m.version == *version) {
            None => found.unknown_migrations.push(*version),
            Some(_) if !success => found.failed_migrations.push(*version),
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => found
                .altered_migrations
                .push(format!("{} ({})", m.version, m.description)),
            Some(_) => {}
        }
    }
    found.pending_migrations = MIGRATOR
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if tables.iter().any(|t| t == "payments") {
        found.too_precise_ids = sqlx::query_scalar(&format!(
            "SELECT id FROM payments WHERE {TOO_PRECISE} ORDER BY id"
        ))
        .fetch_all(&mut conn)
        .await
        .map_err(ctx("look for amounts no KHQR can carry"))?;
    }
    // The live daemons' receivers, where the schema has them (an older
    // schema has none to compare: nothing to report).
    let now = Utc::now().timestamp_millis();
    found.live_receivers = sqlx::query_as(
        "SELECT host, pid, receivers FROM gate_members WHERE seen_ms >= ?1 AND seen_ms <= ?2",
    )
    .bind(now - super::LIVE_MS)
    .bind(now + super::LIVE_MS)
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let _ = conn.close().await;
    Ok(found)
}

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    path: std::path::PathBuf,
    key: std::sync::Arc<tokio::sync::OnceCell<EventKey>>,
}

// Due rows of lane 0 (fresh) first, then lane 1, each branch a range scan
// of the partial index that stops at the limit. Both name the index:
// without statistics SQLite's planner prefers the status index and would
// walk every pending row.
const CLAIM_SQL: &str = "UPDATE payments SET next_check_at = ?1, lease_id = ?2
    WHERE id IN (
        SELECT id FROM (SELECT id FROM payments INDEXED BY payments_due
                        WHERE status = 'pending' AND lane = 0 AND next_check_at <= ?3
                          AND (lease_id IS NULL OR next_check_at <= ?6)
                        ORDER BY next_check_at LIMIT ?4)
        UNION ALL
        SELECT id FROM (SELECT id FROM payments INDEXED BY payments_due
                        WHERE status = 'pending' AND lane = 1 AND next_check_at <= ?3
                          AND (lease_id IS NULL OR next_check_at <= ?6)
                        ORDER BY next_check_at LIMIT ?4)
        LIMIT ?4)
    RETURNING id, md5, amount, currency, last_answer, qr, status,
        CAST(unixepoch(created_at, 'subsec') * 1000 AS INTEGER) AS created_ms,
        CAST(coalesce(unixepoch(expires_at, 'subsec'),
                      unixepoch(created_at, 'subsec') + ?5) * 1000 AS INTEGER) AS expires_ms,
        CAST(unixepoch(confirmed_at, 'subsec') * 1000 AS INTEGER) AS final_ms,
        checks, errors";

// The late watch: rows past `poller.late_watch` (?2: the oldest final
// time still watched, unix ms) leave it, then due ones are claimed.
const LATE_FORGET_SQL: &str = "UPDATE payments INDEXED BY payments_late SET late_check_at = NULL
    WHERE late_check_at IS NOT NULL AND late_check_at <= ?1
      AND (status NOT IN ('expired', 'failed', 'cancelled')
           OR coalesce(unixepoch(confirmed_at, 'subsec') * 1000, 0) < ?2)";

const LATE_CLAIM_SQL: &str = "UPDATE payments SET late_check_at = ?1, lease_id = ?2
    WHERE id IN (SELECT id FROM payments INDEXED BY payments_late
                 WHERE late_check_at IS NOT NULL AND late_check_at <= ?3
                   AND status IN ('expired', 'failed', 'cancelled')
                 ORDER BY late_check_at LIMIT ?4)
    RETURNING id, md5, amount, currency, last_answer, qr, status,
        CAST(unixepoch(created_at, 'subsec') * 1000 AS INTEGER) AS created_ms,
        CAST(coalesce(unixepoch(expires_at, 'subsec'),
                      unixepoch(created_at, 'subsec') + ?5) * 1000 AS INTEGER) AS expires_ms,
        CAST(unixepoch(confirmed_at, 'subsec') * 1000 AS INTEGER) AS final_ms,
        checks, errors";

// The columns of a listed payment, times normalised
// (`YYYY-MM-DD HH:MM:SS.SSS`, UTC) whatever form the shop inserted.
const LIST_SELECT: &str = "SELECT id, md5, amount, currency, status,
        strftime('%Y-%m-%d %H:%M:%f', created_at) AS created_at,
        strftime('%Y-%m-%d %H:%M:%f', expires_at) AS expires_at, bakong_hash,
        from_account_id, to_account_id, paid_amount, paid_currency,
        strftime('%Y-%m-%d %H:%M:%f', paid_at) AS paid_at,
        strftime('%Y-%m-%d %H:%M:%f', confirmed_at) AS confirmed_at,
        last_answer, last_error, public_id, order_id, metadata, qr, redirect_url,
        description, deeplink
    FROM payments";

// A payment as the shop's application (or `new`, `add`, the API) inserts
// it; the table makes a public id when none is given.
const INSERT_SQL: &str = "INSERT INTO payments (md5, amount, currency, expires_at, order_id,
        metadata, qr, public_id, redirect_url)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, coalesce(?8, lower(hex(randomblob(16)))), ?9)";

// Cancel: pending rows of the target become cancelled, watched for late
// money from now (?2 unix ms).
const CANCEL_SQL: &str = "UPDATE payments SET status = 'cancelled', confirmed_at = ?1,
        late_check_at = ?2, lease_id = NULL, last_answer = 'cancelled'
    WHERE status = 'pending' AND (id = ?3 OR public_id = ?4 OR md5 = ?5 OR order_id = ?6)
    RETURNING id, md5, amount, currency, order_id, metadata";

const DUE_SQL: &str = "SELECT count(*) FROM (SELECT 1 FROM payments INDEXED BY payments_due
    WHERE status = 'pending' AND lane IN (0, 1) AND next_check_at <= ?1 LIMIT ?2)";

// One statement for a whole batch, driven by the JSON rows: each is a rowid
// lookup (the unary + keeps the planner off the status index, which would
// walk every pending row once per JSON row). Every batched write is guarded
// as a final one is: the row still pending, still held by the claim, with
// the md5, amount and currency the claim saw.
const RESCHEDULE_SQL: &str = "UPDATE payments SET next_check_at = v.next, lease_id = NULL,
        checks = checks + 1 - v.transient,
        errors = CASE WHEN v.transient THEN errors + 1 ELSE 0 END,
        last_answer = v.answer, last_error = v.error, last_checked_at = ?2, lane = v.lane
    FROM (SELECT value ->> 'id' AS id, value ->> 'lease' AS lease, value ->> 'next' AS next,
                 value ->> 'answer' AS answer, value ->> 'error' AS error,
                 value ->> 'transient' AS transient, value ->> 'lane' AS lane,
                 value ->> 'md5' AS md5, value ->> 'amount' AS amount,
                 value ->> 'currency' AS currency
          FROM json_each(?1)) AS v
    WHERE payments.id = v.id AND payments.lease_id = v.lease AND +payments.status = 'pending'
      AND payments.md5 = v.md5 AND payments.amount = v.amount
      AND payments.currency = v.currency";

const RELEASE_SQL: &str = "UPDATE payments SET next_check_at = ?2, lease_id = NULL
    FROM (SELECT value ->> 'id' AS id, value ->> 'lease' AS lease, value ->> 'md5' AS md5,
                 value ->> 'amount' AS amount, value ->> 'currency' AS currency
          FROM json_each(?1)) AS v
    WHERE payments.id = v.id AND payments.lease_id = v.lease AND +payments.status = 'pending'
      AND payments.md5 = v.md5 AND payments.amount = v.amount
      AND payments.currency = v.currency";

// A final status, only on the row that was claimed and checked.
// A row that becomes expired or failed is watched for late money from
// now (?17); any other final status ends the watch.
const FINAL_SQL: &str = "UPDATE payments SET status = ?2, bakong_hash = ?3, from_account_id = ?4,
        to_account_id = ?5, paid_amount = ?6, paid_currency = ?7,
        description = ?8, paid_at = ?9, confirmed_at = ?10,
        last_checked_at = ?10, checks = checks + 1, lease_id = NULL,
        last_answer = ?11, last_error = NULL,
        late_check_at = CASE WHEN ?2 IN ('expired', 'failed') THEN ?17 END
    WHERE id = ?1 AND status = ?16 AND lease_id = ?12
      AND md5 = ?13 AND amount = ?14 AND currency = ?15
    RETURNING id, md5, amount, currency, order_id, metadata";

// Each SQLite row as one JSON object, times normalised to UTC ISO 8601
// (strftime reads every form SQLite's datetime() reads; NULL if none).
const EXPORT_SQL: &str = "SELECT id, json_object(
        'md5', md5, 'amount', amount, 'currency', currency,
        'expires_at', strftime('%Y-%m-%dT%H:%M:%fZ', expires_at),
        'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', created_at),
        'status', status, 'bakong_hash', bakong_hash,
        'from_account_id', from_account_id, 'to_account_id', to_account_id,
        'paid_amount', paid_amount, 'paid_currency', paid_currency,
        'description', description,
        'paid_at', strftime('%Y-%m-%dT%H:%M:%fZ', paid_at),
        'confirmed_at', strftime('%Y-%m-%dT%H:%M:%fZ', confirmed_at),
        'next_check_at', next_check_at, 'checks', checks, 'errors', errors,
        'last_answer', last_answer, 'last_error', last_error,
        'last_checked_at', strftime('%Y-%m-%dT%H:%M:%fZ', last_checked_at),
        'lane', lane, 'public_id', public_id, 'order_id', order_id,
        'metadata', metadata, 'qr', qr, 'late_check_at', late_check_at,
        'redirect_url', redirect_url, 'deeplink', deeplink) AS row
    FROM payments WHERE id > ?1 ORDER BY id LIMIT ?2";

/// Writes an event and one pending delivery per active receiver.
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    e: &crate::event::NewEvent,
    payment_id: Option<i64>,
    now_text: &str,
    key: &EventKey,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_events (id, type, md5, payload, created_at, payment_id, created_ms, mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(&e.id)
    .bind(&e.event_type)
    .bind(&e.md5)
    .bind(&e.payload)
    .bind(now_text)
    .bind(payment_id)
    .bind(e.created_at.timestamp_millis())
    .bind(key.mac(&e.id, &e.event_type, &e.md5, &e.payload))
    .execute(&mut **tx)
    .await
    .map_err(ctx("record event"))?;
    sqlx::query(
        "INSERT INTO event_deliveries (event_id, receiver, next_attempt_at)
         SELECT ?1, name, 0 FROM event_receivers WHERE active = 1",
    )
    .bind(&e.id)
    .execute(&mut **tx)
    .await
    .map_err(ctx("queue event deliveries"))?;
    Ok(())
}

const CLAIM_DELIVERIES_SQL: &str = "UPDATE event_deliveries SET next_attempt_at = ?1, lease_id = ?2
    WHERE rowid IN (SELECT rowid FROM event_deliveries INDEXED BY event_deliveries_due
                    WHERE status = 'pending' AND next_attempt_at <= ?3
                      AND receiver IN (SELECT value FROM json_each(?5))
                    ORDER BY next_attempt_at LIMIT ?4)
    RETURNING event_id, receiver, attempts";

const DEFER_SQL: &str = "UPDATE payments SET next_check_at = v.next, lease_id = NULL
    FROM (SELECT value ->> 'id' AS id, value ->> 'lease' AS lease, value ->> 'next' AS next,
                 value ->> 'md5' AS md5, value ->> 'amount' AS amount,
                 value ->> 'currency' AS currency
          FROM json_each(?1)) AS v
    WHERE payments.id = v.id AND payments.lease_id = v.lease AND +payments.status = 'pending'
      AND payments.md5 = v.md5 AND payments.amount = v.amount
      AND payments.currency = v.currency";

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

/// Opens (or creates, mode 0600: only the daemon takes it) the instance
/// lock file without following a symlink and without truncating it, and
/// refuses anything but a regular file with one name: the database's
/// directory is writable by the shop's group, so the name may have been
/// pointed at another file (the token) that the holder line would
/// overwrite.
fn open_lock_file(lock_path: &std::path::Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| StoreError::Io {
        what: format!("refusing the instance lock file {}", lock_path.display()),
        source: std::io::Error::other(why),
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(lock_path)
        .map_err(|source| {
            if source.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                refuse(
                    "it is a symbolic link; remove it (the daemon creates its own lock file)"
                        .into(),
                )
            } else {
                StoreError::Io {
                    what: format!("open {}", lock_path.display()),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| StoreError::Io {
        what: format!("inspect {}", lock_path.display()),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(refuse(
            "it is not a regular file; remove it (the daemon creates its own lock file)".into(),
        ));
    }
    if meta.nlink() > 1 {
        return Err(refuse(format!(
            "it has {} names (hard links), so it is another file too; remove it (the daemon creates its own lock file)",
            meta.nlink()
        )));
    }
    Ok(file)
}

#[derive(FromRow)]
struct ClaimRow {
    id: i64,
    qr: Option<String>,
    status: String,
    final_ms: Option<i64>,
    md5: Option<String>,
    amount: Option<String>,
    currency: Option<String>,
    last_answer: Option<String>,
    created_ms: Option<i64>,
    expires_ms: Option<i64>,
    checks: i64,
    errors: i64,
}

/// Claimed rows as the poller takes them, in id order.
fn claimed(rows: Vec<ClaimRow>, lease_id: i64) -> Result<Vec<Claimed>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Claimed {
            id: PaymentId(r.id),
            lease_id,
            // NULLs are refused by the table; an empty value fails the
            // poller's validation, which names the column.
            md5: r.md5.unwrap_or_default(),
            amount: r.amount.unwrap_or_default(),
            currency: r.currency.unwrap_or_default(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            checks: r.checks,
            errors: r.errors,
            last_answer: r.last_answer,
            qr: r.qr,
            from: status_from(&r.status, "claim")?,
            final_ms: r.final_ms,
        });
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

#[derive(FromRow)]
struct ListRow {
    public_id: String,
    order_id: Option<String>,
    metadata: Option<String>,
    qr: Option<String>,
    redirect_url: Option<String>,
    description: Option<String>,
    deeplink: Option<String>,
    id: i64,
    md5: String,
    amount: String,
    currency: String,
    status: String,
    created_at: Option<String>,
    expires_at: Option<String>,
    bakong_hash: Option<String>,
    from_account_id: Option<String>,
    to_account_id: Option<String>,
    paid_amount: Option<String>,
    paid_currency: Option<String>,
    paid_at: Option<String>,
    confirmed_at: Option<String>,
    last_answer: Option<String>,
    last_error: Option<String>,
}

/// A write transaction on the one write connection (`BEGIN IMMEDIATE`).
struct SqliteTx(sqlx::Transaction<'static, sqlx::Sqlite>);

common_tx_ops!(SqliteTx);

#[async_trait::async_trait]
impl WriteTx for SqliteTx {
    async fn final_write(
        &mut self,
        row: &Held,
        status: FinalStatus,
        c: Option<&Confirmation>,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WrittenRow>, StoreError> {
        let written: Option<WrittenRow> = sqlx::query_as(FINAL_SQL)
            .bind(row.id.0)
            .bind(status.as_str())
            .bind(c.map(|c| c.hash.clone()))
            .bind(c.and_then(|c| c.from_account_id.clone()))
            .bind(c.map(|c| c.to_account_id.clone()))
            .bind(c.map(|c| amount_text(c.paid_amount)))
            .bind(c.map(|c| c.paid_currency.code()))
            .bind(c.and_then(|c| c.description.clone()))
            .bind(c.and_then(|c| c.paid_at).map(sql_time))
            .bind(sql_time(now))
            .bind(answer)
            .bind(row.lease_id)
            .bind(&row.md5)
            .bind(&row.amount)
            .bind(&row.currency)
            .bind(row.from.as_str())
            .bind(now.timestamp_millis())
            .fetch_optional(&mut *self.0)
            .await
            .map_err(ctx("record result"))?;
        Ok(written)
    }

    async fn insert_payment(&mut self, p: &NewPayment) -> Result<PaymentId, StoreError> {
        let r = sqlx::query(INSERT_SQL)
            .bind(&p.md5)
            .bind(&p.amount)
            .bind(p.currency.code())
            .bind(p.expires_at.map(sql_time))
            .bind(&p.order_id)
            .bind(&p.metadata)
            .bind(&p.qr)
            .bind(&p.public_id)
            .bind(&p.redirect_url)
            .execute(&mut *self.0)
            .await
            .map_err(ctx(format!("insert payment {}", p.md5)))?;
        Ok(PaymentId(r.last_insert_rowid()))
    }

    async fn cancel_rows(
        &mut self,
        target: &Target,
        now: DateTime<Utc>,
    ) -> Result<Vec<WrittenRow>, StoreError> {
        let (id, public_id, md5, order_id) = target.sql_parts();
        sqlx::query_as(CANCEL_SQL)
            .bind(sql_time(now))
            .bind(now.timestamp_millis())
            .bind(id)
            .bind(public_id)
            .bind(md5)
            .bind(order_id)
            .fetch_all(&mut *self.0)
            .await
            .map_err(ctx(format!("cancel {target}")))
    }

    async fn insert_event(
        &mut self,
        e: &NewEvent,
        payment_id: Option<PaymentId>,
        now: DateTime<Utc>,
        key: &EventKey,
    ) -> Result<(), StoreError> {
        insert_event(&mut self.0, e, payment_id.map(|p| p.0), &sql_time(now), key).await
    }

    async fn batch_write(
        &mut self,
        kind: Batch,
        rows: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = &mut *self.0;
        match kind {
            Batch::Reschedule => sqlx::query(RESCHEDULE_SQL)
                .bind(rows)
                .bind(sql_time(now))
                .execute(tx)
                .await
                .map_err(ctx("reschedule payments"))?,
            Batch::Release => sqlx::query(RELEASE_SQL)
                .bind(rows)
                .bind(now.timestamp_millis())
                .execute(tx)
                .await
                .map_err(ctx("release payments"))?,
            Batch::Defer => sqlx::query(DEFER_SQL)
                .bind(rows)
                .execute(tx)
                .await
                .map_err(ctx("defer payments"))?,
        };
        Ok(())
    }

    async fn offer_event_key(&mut self, key: &EventKey) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO daemon_secret (id, event_key, created_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.bytes())
        .bind(sql_time(Utc::now()))
        .execute(&mut *self.0)
        .await
        .map_err(ctx("store the event key"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn close_delivery(
        &mut self,
        d: &super::ClaimedDelivery,
        status: super::DeliveryStatus,
        next_attempt_at: i64,
        error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE event_deliveries SET status = ?4, attempts = attempts + 1,
                next_attempt_at = ?5, lease_id = NULL, last_error = ?6,
                delivered_at = ?7, delivered_ms = ?8
             WHERE event_id = ?1 AND receiver = ?2 AND lease_id = ?3 AND status = 'pending'",
        )
        .bind(&d.event_id)
        .bind(&d.receiver)
        .bind(d.lease_id)
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(error)
        .bind(delivered_at.map(sql_time))
        .bind(delivered_at.map(|t| t.timestamp_millis()))
        .execute(&mut *self.0)
        .await
        .map_err(ctx("record delivery result"))?;
        Ok(res.rows_affected() == 1)
    }

    async fn add_attempt(
        &mut self,
        d: &super::ClaimedDelivery,
        a: &super::AttemptRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_attempts
                (event_id, receiver, attempt, at, latency_ms, http_status, error, answer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&d.event_id)
        .bind(&d.receiver)
        .bind(d.attempts + 1)
        .bind(sql_time(a.at))
        .bind(a.latency_ms)
        .bind(a.http_status)
        .bind(&a.error)
        .bind(&a.answer)
        .execute(&mut *self.0)
        .await
        .map_err(ctx("record delivery attempt"))?;
        Ok(())
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url`.
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        // The URL is shown redacted: a database URL can carry a password.
        let shown = crate::redact::redact_url(url);
        let opts =
            SqliteConnectOptions::from_str(url).map_err(ctx(format!("database.url {shown:?}")))?;
        let path = opts.get_filename().to_path_buf();
        create_shared(&path).map_err(|source| StoreError::Io {
            what: format!("create {}", path.display()),
            source,
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
            .map_err(ctx(format!("open {shown}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(ctx(format!("open {shown} for reading")))?;
        Ok(SqliteStore {
            write,
            read,
            path,
            key: Default::default(),
        })
    }

    fn migrate_held(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + '_>>
    {
        Box::pin(async move {
            // The migrations that rebuild the payments table.
            const REBUILDS: [i64; 2] = [20261205000001, 20261205000004];
            let mut conn = self.write.acquire().await.map_err(ctx("migrate"))?;
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
                .fetch_all(&mut *conn)
                .await
                .unwrap_or_default();
            let has_payments: bool = sqlx::query_scalar(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'payments'",
            )
            .fetch_one(&mut *conn)
            .await
            .map_err(ctx("migrate"))?;
            let rebuild = has_payments && REBUILDS.iter().any(|v| !applied.contains(v));
            let mut theirs: Vec<(String, String)> = Vec::new();
            if rebuild {
                theirs = sqlx::query_as(
                    "SELECT name, sql FROM sqlite_master
                 WHERE type = 'trigger' AND tbl_name = 'payments' AND sql IS NOT NULL
                   AND name NOT LIKE 'payments\\_%' ESCAPE '\\'",
                )
                .fetch_all(&mut *conn)
                .await
                .map_err(ctx("migrate: read the application's triggers"))?;
                for pragma in [
                    "PRAGMA foreign_keys = OFF",
                    "PRAGMA legacy_alter_table = ON",
                ] {
                    sqlx::query(pragma)
                        .execute(&mut *conn)
                        .await
                        .map_err(ctx("migrate"))?;
                }
            }
            let ran = MIGRATOR
                .run_direct(&mut *conn)
                .await
                .map_err(|e| StoreError::Sql {
                    what: "migrate".into(),
                    source: e.into(),
                });
            if rebuild {
                let mut restored = Ok(());
                for pragma in [
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA legacy_alter_table = OFF",
                ] {
                    if let Err(e) = sqlx::query(pragma).execute(&mut *conn).await {
                        restored = Err(ctx("migrate")(e));
                    }
                }
                ran?;
                restored?;
                for (name, sql) in theirs {
                    match sqlx::query(&sql).execute(&mut *conn).await {
                        Ok(_) => {
                            tracing::info!(trigger = %name, "made again the application's trigger on payments after the table's rebuild")
                        }
                        Err(e) => {
                            tracing::error!(trigger = %name, error = %e, "could not make the application's trigger on payments again after the table's rebuild; create it again by hand")
                        }
                    }
                }
                return Ok(());
            }
            ran
        })
    }

    /// Up to `limit` rows with an id above `after`, in id order, each as
    /// one JSON object with UTC ISO 8601 times (for an import elsewhere).
    pub async fn export_rows(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        sqlx::query_as(EXPORT_SQL)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.read)
            .await
            .map_err(ctx("export: read the SQLite payments"))
    }
}

common_ops!(SqliteStore, read: read, write: write);

#[async_trait::async_trait]
impl Backend for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn as_sqlite(&self) -> Option<&SqliteStore> {
        Some(self)
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("begin write"))?;
        Ok(Box::new(SqliteTx(tx)))
    }

    fn event_key_cell(&self) -> &tokio::sync::OnceCell<EventKey> {
        &self.key
    }

    /// Applies pending migrations. The one that rebuilds `payments`
    /// (20261205000001, ids never reused) runs with foreign keys off and
    /// the legacy rename, so an application's own tables that reference
    /// `payments` (even `ON DELETE CASCADE`) and its views keep working and
    /// keep their rows; the application's own triggers on `payments` are
    /// made again after it.
    async fn migrate(&self) -> Result<(), StoreError> {
        // Boxed: sqlx's executor lifetimes on a held connection otherwise
        // defeat the `Send` proof of every future that awaits this one.
        self.migrate_held().await
    }

    /// Takes an exclusive OS lock on `<database>.lock` (released when the
    /// guard drops or the process dies, so a SIGKILL never leaves it
    /// behind) and writes our pid and host into it; if another process
    /// holds it, fails naming that one.
    fn lock_instance(&self) -> Result<InstanceGuard, StoreError> {
        use std::io::{Read, Seek, Write as _};
        if self.path.as_os_str().is_empty() || self.path == std::path::Path::new(":memory:") {
            return Ok(InstanceGuard { _file: None });
        }
        // The real path, so a symlinked name locks the same file.
        let real = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let mut name = real.into_os_string();
        name.push(".lock");
        let lock_path = std::path::PathBuf::from(name);
        let io = |what: &str| {
            let what = format!("{what} {}", lock_path.display());
            move |source| StoreError::Io { what, source }
        };
        let mut file = open_lock_file(&lock_path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::InstanceRunning {
                    holder: if holder.is_empty() {
                        format!("it holds {}", lock_path.display())
                    } else {
                        format!("{holder}, holding {}", lock_path.display())
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock")(e)),
        }
        // Only now, the lock held on a file verified ours to write, is
        // its old holder line replaced.
        // gethostname(2), not /proc/sys: the unit's ProcSubset=pid hides it.
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown host".into());
        file.set_len(0).map_err(io("write"))?;
        file.rewind().map_err(io("write"))?;
        writeln!(file, "pid {} on host {host}", std::process::id()).map_err(io("write"))?;
        Ok(InstanceGuard { _file: Some(file) })
    }

    /// Problems with the set-up: a journal mode other than WAL.
    async fn setup_problems(&self) -> Result<Vec<String>, StoreError> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.read)
            .await
            .map_err(ctx("read journal mode"))?;
        Ok(if mode.eq_ignore_ascii_case("wal") {
            Vec::new()
        } else {
            vec![format!(
                "database.url: journal mode is {mode}, expected wal"
            )]
        })
    }

    /// See [`super::Backend::claim_spare`].
    async fn claim_spare(
        &self,
        now_ms: i64,
        ahead_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let rows: Vec<ClaimRow> = sqlx::query_as(CLAIM_SQL)
            .bind(now_ms.saturating_add(lease.as_millis() as i64))
            .bind(lease_id)
            .bind(ahead_ms)
            .bind(limit as i64)
            .bind(ttl.as_secs_f64())
            .bind(now_ms)
            .fetch_all(&self.write)
            .await
            .map_err(ctx("claim due payments"))?;
        claimed(rows, lease_id)
    }

    /// See [`super::Backend::claim_late`].
    async fn claim_late(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        watch: Duration,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let oldest = now_ms.saturating_sub(i64::try_from(watch.as_millis()).unwrap_or(i64::MAX));
        sqlx::query(LATE_FORGET_SQL)
            .bind(now_ms)
            .bind(oldest)
            .execute(&self.write)
            .await
            .map_err(ctx("end the late watch of old rows"))?;
        if watch.is_zero() || limit == 0 {
            return Ok(Vec::new());
        }
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let rows: Vec<ClaimRow> = sqlx::query_as(LATE_CLAIM_SQL)
            .bind(now_ms + lease.as_millis() as i64)
            .bind(lease_id)
            .bind(now_ms)
            .bind(limit as i64)
            .bind(ttl.as_secs_f64())
            .fetch_all(&self.write)
            .await
            .map_err(ctx("claim late-watched payments"))?;
        claimed(rows, lease_id)
    }

    /// See [`super::Backend::age_out`].
    async fn age_out_before(&self, now_ms: i64, cutoff_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE payments INDEXED BY payments_due SET lane = 1
             WHERE status = 'pending' AND lane = 0 AND next_check_at <= ?1
               AND unixepoch(created_at, 'subsec') * 1000 < ?2",
        )
        .bind(now_ms)
        .bind(cutoff_ms)
        .execute(&self.write)
        .await
        .map_err(ctx("move aged payments to the older lane"))?;
        Ok(done.rows_affected())
    }

    /// See [`super::Backend::gate_cut`].
    async fn gate_cut(
        &self,
        not_before_ms: i64,
        now_ms: i64,
        rate: Option<f64>,
    ) -> Result<GateState, StoreError> {
        sqlx::query_as(&format!(
            "UPDATE gate_state SET
                not_before_set_ms = CASE WHEN ?1 > coalesce(not_before_ms, 0)
                                         THEN ?2 ELSE not_before_set_ms END,
                not_before_ms = max(coalesce(not_before_ms, 0), ?1),
                rate = CASE WHEN ?3 IS NULL THEN rate ELSE min(coalesce(rate, ?3), ?3) END,
                rate_epoch = rate_epoch + 1
             WHERE id = 1 RETURNING {GATE_COLUMNS}"
        ))
        .bind(not_before_ms)
        .bind(now_ms)
        .bind(rate)
        .fetch_one(&self.write)
        .await
        .map_err(ctx("record a 429 in the gate state"))
    }

    /// See [`super::Backend::gate_reserve`].
    async fn gate_reserve(
        &self,
        now_ms: i64,
        gap_ms: i64,
        horizon_ms: i64,
    ) -> Result<(i64, Option<i64>), StoreError> {
        sqlx::query_as(
            "UPDATE gate_state SET next_slot_ms =
                CASE WHEN next_slot_ms IS NULL OR next_slot_ms > ?1 + ?3 THEN ?1
                     ELSE max(next_slot_ms, ?1) END + ?2
             WHERE id = 1 RETURNING next_slot_ms - ?2, not_before_ms",
        )
        .bind(now_ms)
        .bind(gap_ms)
        .bind(horizon_ms)
        .fetch_one(&self.write)
        .await
        .map_err(ctx("reserve a request slot"))
    }

    /// See [`super::Backend::gate_climb`].
    async fn gate_climb(&self, rate: f64, epoch: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE gate_state SET rate = max(coalesce(rate, 0), ?1)
             WHERE id = 1 AND rate_epoch = ?2",
        )
        .bind(rate)
        .bind(epoch)
        .execute(&self.write)
        .await
        .map_err(ctx("save the learned rate"))?;
        Ok(())
    }

    /// See [`super::Backend::heartbeat`].
    async fn heartbeat(
        &self,
        m: &super::GateMember,
        now_ms: i64,
        live_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write.begin().await.map_err(ctx("begin heartbeat"))?;
        sqlx::query(
            "INSERT INTO gate_members (instance, host, pid, seen_ms, receivers)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (instance) DO UPDATE SET seen_ms = ?4, receivers = ?5",
        )
        .bind(&m.instance)
        .bind(&m.host)
        .bind(m.pid)
        .bind(now_ms)
        .bind(serde_json::to_string(&m.receivers).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await
        .map_err(ctx("heartbeat"))?;
        sqlx::query("DELETE FROM gate_members WHERE seen_ms < ?1 OR seen_ms > ?2")
            .bind(now_ms - super::MEMBER_FORGET_MS)
            .bind(now_ms.saturating_add(super::MEMBER_FORGET_MS))
            .execute(&mut *tx)
            .await
            .map_err(ctx("forget dead daemons"))?;
        // A heartbeat from the future (a clock far ahead, or a row someone
        // else wrote) is no live daemon: it would shrink every share.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM gate_members WHERE seen_ms >= ?1 AND seen_ms <= ?2",
        )
        .bind(now_ms - live_ms)
        .bind(now_ms.saturating_add(live_ms))
        .fetch_one(&mut *tx)
        .await
        .map_err(ctx("count live daemons"))?;
        // Active: the receivers some daemon heard from within the forget
        // window has (a stall or a clock a few seconds off must not turn a
        // receiver off: events recorded meanwhile would get no delivery).
        sqlx::query(
            "UPDATE event_receivers SET active = x.live, updated_at = ?3
             FROM (SELECT e.name, EXISTS (
                       SELECT 1 FROM gate_members g,
                           json_each(CASE WHEN json_valid(g.receivers) THEN g.receivers ELSE '[]' END) r
                       WHERE r.value ->> 'name' = e.name AND g.seen_ms >= ?1 AND g.seen_ms <= ?2
                   ) AS live FROM event_receivers e) AS x
             WHERE event_receivers.name = x.name AND event_receivers.active <> x.live",
        )
        .bind(now_ms - super::MEMBER_FORGET_MS)
        .bind(now_ms.saturating_add(super::MEMBER_FORGET_MS))
        .bind(sql_time(Utc::now()))
        .execute(&mut *tx)
        .await
        .map_err(ctx("update active receivers"))?;
        tx.commit().await.map_err(ctx("commit heartbeat"))?;
        Ok(n.max(1))
    }

    /// See [`super::Backend::set_quota_pause`].
    async fn set_quota_pause(&self, pause: Option<(i64, i64)>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO gate_state (id, quota_since_ms, quota_next_probe_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET quota_since_ms = ?1, quota_next_probe_ms = ?2",
        )
        .bind(pause.map(|p| p.0))
        .bind(pause.map(|p| p.1))
        .execute(&self.write)
        .await
        .map_err(ctx("save the quota pause"))?;
        Ok(())
    }

    /// See [`super::Backend::add_spend`].
    async fn add_spend(&self, day: &str, n: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO gate_state (id, spend_day, spend) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET
                spend = CASE WHEN spend_day IS ?1 THEN spend + ?2 ELSE ?2 END,
                spend_day = ?1
             RETURNING spend",
        )
        .bind(day)
        .bind(n)
        .fetch_one(&self.write)
        .await
        .map_err(ctx("save the day's request spend"))
    }

    /// See [`super::Backend::counts`].
    async fn counts(&self) -> Result<Counts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM payments GROUP BY status")
                .fetch_all(&self.read)
                .await
                .map_err(ctx("count payments"))?;
        let mut c = Counts::default();
        for (status, n) in rows {
            c.set(status_from(&status, "count payments")?, n);
        }
        let (oldest, next, pending_static): (Option<String>, Option<i64>, i64) = sqlx::query_as(
            "SELECT min(created_at), min(next_check_at), count(*) FILTER (WHERE last_answer = 'static_qr')
             FROM payments WHERE status = 'pending'",
        )
        .fetch_one(&self.read)
        .await
        .map_err(ctx("read pending facts"))?;
        c.oldest_pending = oldest;
        c.next_check_ms = next;
        c.pending_static_qr = pending_static;
        Ok(c)
    }

    /// See [`super::Backend::pending_facts`]. One pass over the pending rows
    /// (the status index), on the read pool.
    async fn pending_facts(
        &self,
        now_ms: i64,
        ttl: Duration,
        grace: Duration,
    ) -> Result<super::PendingFacts, StoreError> {
        let (pending, overdue, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*),
                count(*) FILTER (WHERE coalesce(unixepoch(expires_at, 'subsec'),
                                                unixepoch(created_at, 'subsec') + ?1) * 1000 + ?2 < ?3),
                CAST(min(unixepoch(created_at, 'subsec')) * 1000 AS INTEGER)
             FROM payments WHERE status = 'pending'",
        )
        .bind(ttl.as_secs_f64())
        .bind(grace.as_millis() as i64)
        .bind(now_ms)
        .fetch_one(&self.read)
        .await
        .map_err(ctx("read pending facts"))?;
        Ok(super::PendingFacts {
            pending,
            overdue,
            oldest_created_ms: oldest,
        })
    }

    /// See [`super::Backend::paid_today`].
    async fn paid_today(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "SELECT count(*) FROM payments WHERE status = 'paid' AND confirmed_at >= date('now')",
        )
        .fetch_one(&self.read)
        .await
        .map_err(ctx("count today's payments"))
    }

    /// See [`super::Backend::late_summary`].
    async fn late_summary(&self) -> Result<super::LateSummary, StoreError> {
        let (paid_late_today, mismatch_late_today): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'paid_late'),
                    count(*) FILTER (WHERE status = 'mismatch')
             FROM payments WHERE status IN ('paid_late', 'mismatch') AND last_answer = 'late'
               AND confirmed_at >= date('now')",
        )
        .fetch_one(&self.read)
        .await
        .map_err(ctx("count today's late payments"))?;
        let last: Option<(String, String, String)> = sqlx::query_as(
            "SELECT md5, status, confirmed_at FROM payments
             WHERE status IN ('paid_late', 'mismatch') AND last_answer = 'late'
             ORDER BY confirmed_at DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(ctx("read the last late payment"))?;
        Ok(super::LateSummary {
            paid_late_today,
            mismatch_late_today,
            last,
        })
    }

    /// See [`super::Backend::report_rows`].
    async fn report_rows(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<ReportRow>, StoreError> {
        sqlx::query_as(
            "SELECT date(coalesce(paid_at, confirmed_at)) AS day, status, amount, currency,
                    paid_amount, paid_currency
             FROM payments
             WHERE status <> 'pending' AND date(coalesce(paid_at, confirmed_at)) BETWEEN ?1 AND ?2
             ORDER BY day",
        )
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.read)
        .await
        .map_err(ctx("read the payments for the report"))
    }

    /// See [`super::Backend::insert_payment`].
    async fn insert_payment(&self, p: &NewPayment) -> Result<PaymentId, StoreError> {
        let r = sqlx::query(INSERT_SQL)
            .bind(&p.md5)
            .bind(&p.amount)
            .bind(p.currency.code())
            .bind(p.expires_at.map(sql_time))
            .bind(&p.order_id)
            .bind(&p.metadata)
            .bind(&p.qr)
            .bind(&p.public_id)
            .bind(&p.redirect_url)
            .execute(&self.write)
            .await
            .map_err(ctx(format!("insert payment {}", p.md5)))?;
        Ok(PaymentId(r.last_insert_rowid()))
    }

    /// See [`super::Backend::list_page`]. Times read back normalised
    /// (`YYYY-MM-DD HH:MM:SS.SSS`, UTC) whatever form the shop inserted.
    async fn list_page(&self, f: &PageFilter) -> Result<Vec<PaymentRow>, StoreError> {
        // By public id (the checkout page, every 400 ms per open page): the
        // unique index, not the filters' OR pattern, which SQLite cannot
        // match to an index.
        let rows: Vec<ListRow> = if let Some(pid) = &f.public_id {
            sqlx::query_as(&format!("{LIST_SELECT} WHERE public_id = ?1 LIMIT 1"))
                .bind(pid)
                .fetch_all(&self.read)
                .await
        } else {
            sqlx::query_as(&format!(
                "{LIST_SELECT}
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR order_id = ?2)
                   AND (?3 IS NULL OR unixepoch(created_at, 'subsec') * 1000 >= ?3)
                   AND (?4 IS NULL OR unixepoch(created_at, 'subsec') * 1000 < ?4)
                   AND (?5 IS NULL OR id < ?5)
                 ORDER BY id DESC LIMIT ?6"
            ))
            .bind(f.status.map(Status::as_str))
            .bind(&f.order_id)
            .bind(f.created_after_ms)
            .bind(f.created_before_ms)
            .bind(f.before_id)
            .bind(f.limit)
            .fetch_all(&self.read)
            .await
        }
        .map_err(ctx("list payments"))?;
        rows.into_iter()
            .map(|r| {
                Ok(PaymentRow {
                    id: PaymentId(r.id),
                    status: status_from(&r.status, "list payments")?,
                    md5: r.md5,
                    amount: r.amount,
                    currency: r.currency,
                    created_at: r.created_at.unwrap_or_default(),
                    expires_at: r.expires_at,
                    bakong_hash: r.bakong_hash,
                    from_account_id: r.from_account_id,
                    to_account_id: r.to_account_id,
                    paid_amount: r.paid_amount,
                    paid_currency: r.paid_currency,
                    paid_at: r.paid_at,
                    confirmed_at: r.confirmed_at,
                    last_answer: r.last_answer,
                    last_error: r.last_error,
                    public_id: r.public_id,
                    order_id: r.order_id,
                    metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
                    qr: r.qr,
                    redirect_url: r.redirect_url,
                    description: r.description,
                    deeplink: r.deeplink,
                })
            })
            .collect()
    }

    /// See [`super::Backend::bookkeeping`].
    async fn bookkeeping(&self, md5: &str) -> Result<Option<super::Bookkeeping>, StoreError> {
        sqlx::query_as(
            "SELECT next_check_at, checks, errors, last_answer, last_error FROM payments WHERE md5 = ?1",
        )
        .bind(md5)
        .fetch_optional(&self.read)
        .await
        .map_err(ctx(format!("read the bookkeeping of {md5}")))
    }

    /// See [`super::Backend::last_answer`].
    async fn last_answer(&self) -> Result<Option<LastAnswer>, StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT last_checked_at, last_answer, last_error FROM payments
             WHERE last_checked_at IS NOT NULL ORDER BY last_checked_at DESC LIMIT 1",
        )
        .fetch_optional(&self.read)
        .await
        .map_err(ctx("read the last answer"))?;
        Ok(row.map(|(at, answer, error)| LastAnswer { at, answer, error }))
    }

    /// See [`super::Backend::last_answer_at`].
    async fn last_answer_at(&self) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT max(last_checked_at) FROM payments WHERE last_error IS NULL")
            .fetch_one(&self.read)
            .await
            .map_err(ctx("read last answer time"))
    }

    /// See [`super::Backend::status_summary`].
    async fn status_summary(&self) -> Result<Vec<StatusSummary>, StoreError> {
        let rows: Vec<(String, i64, Option<f64>, Option<f64>)> = sqlx::query_as(
            "SELECT status, count(*),
                    avg((julianday(confirmed_at) - julianday(paid_at)) * 86400.0),
                    max((julianday(confirmed_at) - julianday(paid_at)) * 86400.0)
             FROM payments GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.read)
        .await
        .map_err(ctx("summarize payments"))?;
        rows.into_iter()
            .map(|(status, count, avg, max)| {
                Ok(StatusSummary {
                    status: status_from(&status, "summarize payments")?,
                    count,
                    avg_confirm_s: avg,
                    max_confirm_s: max,
                })
            })
            .collect()
    }

    /// See [`super::Backend::set_receivers`].
    async fn set_receivers(&self, active: &[&str]) -> Result<(), StoreError> {
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("begin receivers"))?;
        let now = sql_time(Utc::now());
        for name in active {
            sqlx::query(
                "INSERT INTO event_receivers (name, active, updated_at) VALUES (?1, 1, ?2)
                 ON CONFLICT (name) DO UPDATE SET active = 1, updated_at = ?2",
            )
            .bind(name)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(ctx(format!("register receiver {name}")))?;
        }
        tx.commit().await.map_err(ctx("commit receivers"))
    }

    /// See [`super::Backend::claim_deliveries`].
    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        receivers: &[&str],
    ) -> Result<Vec<super::ClaimedDelivery>, StoreError> {
        // Most looks find nothing due: a read says so without taking the
        // write lock the merchant's inserts and the recorder need.
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM event_deliveries INDEXED BY event_deliveries_due
             WHERE status = 'pending' AND next_attempt_at <= ?1 LIMIT 1",
        )
        .bind(now_ms)
        .fetch_optional(&self.read)
        .await
        .map_err(ctx("look for due deliveries"))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("begin delivery claim"))?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(CLAIM_DELIVERIES_SQL)
            .bind(now_ms + lease.as_millis() as i64)
            .bind(lease_id)
            .bind(now_ms)
            .bind(limit as i64)
            .bind(serde_json::to_string(receivers).unwrap_or_else(|_| "[]".into()))
            .fetch_all(&mut *tx)
            .await
            .map_err(ctx("claim due deliveries"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (event_id, receiver, attempts) in rows {
            let (event_type, md5, payload, created_ms, mac): (
                String,
                String,
                String,
                i64,
                Option<String>,
            ) = sqlx::query_as(
                "SELECT type, md5, payload, created_ms, mac FROM payment_events WHERE id = ?1",
            )
            .bind(&event_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(ctx(format!("read event {event_id}")))?;
            out.push(super::ClaimedDelivery {
                event_id,
                receiver,
                lease_id,
                attempts,
                event_type,
                md5,
                payload,
                created_ms,
                mac,
            });
        }
        tx.commit().await.map_err(ctx("commit delivery claim"))?;
        out.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        Ok(out)
    }

    /// See [`super::Backend::release_deliveries`].
    async fn release_deliveries(
        &self,
        claims: &[(String, String, i64)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if claims.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = claims
            .iter()
            .map(|(e, r, l)| serde_json::json!({ "e": e, "r": r, "l": l }))
            .collect();
        sqlx::query(
            "UPDATE event_deliveries SET next_attempt_at = ?2, lease_id = NULL
             FROM (SELECT value ->> 'e' AS e, value ->> 'r' AS r, value ->> 'l' AS l FROM json_each(?1)) AS v
             WHERE event_id = v.e AND receiver = v.r AND lease_id = v.l AND status = 'pending'",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now_ms)
        .execute(&self.write)
        .await
        .map_err(ctx("release deliveries"))?;
        Ok(())
    }

    async fn event_heads(
        &self,
        status: Option<super::DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<EventHead>, StoreError> {
        sqlx::query_as(
            "SELECT id, type, md5, created_at FROM payment_events e
             WHERE ?1 IS NULL OR EXISTS (SELECT 1 FROM event_deliveries d
                                         WHERE d.event_id = e.id AND d.status = ?1)
             ORDER BY id DESC LIMIT ?2",
        )
        .bind(status.map(super::DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(ctx("list events"))
    }

    async fn deliveries_of(&self, ids: &[&str]) -> Result<Vec<DeliveryListRow>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM event_deliveries
             WHERE event_id IN (SELECT value FROM json_each(?1)) ORDER BY receiver"
        ))
        .bind(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into()))
        .fetch_all(&self.read)
        .await
        .map_err(ctx("read deliveries"))
    }

    /// See [`super::Backend::redeliver`].
    async fn redeliver(&self, id: &str) -> Result<u64, StoreError> {
        let mut tx = self
            .write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("begin redeliver"))?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM payment_events WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ctx(format!("read event {id}")))?;
        if exists.is_none() {
            return Ok(0);
        }
        sqlx::query(
            "INSERT OR IGNORE INTO event_deliveries (event_id, receiver, next_attempt_at)
             SELECT ?1, name, 0 FROM event_receivers WHERE active = 1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ctx("queue deliveries"))?;
        let res = sqlx::query(
            "UPDATE event_deliveries SET status = 'pending', attempts = 0, next_attempt_at = 0,
                lease_id = NULL, delivered_at = NULL, delivered_ms = NULL
             WHERE event_id = ?1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ctx("redeliver"))?;
        tx.commit().await.map_err(ctx("commit redeliver"))?;
        Ok(res.rows_affected())
    }

    /// Closes both pools.
    async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::payment::Lane;
    use crate::store::{Applied, Write};
    use sqlx::Row;

    fn new(i: u32) -> NewPayment {
        NewPayment {
            order_id: None,
            metadata: None,
            qr: None,
            public_id: None,
            redirect_url: None,
            md5: format!("{i:032x}"),
            amount: "1".into(),
            currency: Currency::Usd,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn the_claim_and_due_queries_walk_only_the_due_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let plan = |sql: &'static str| {
            let pool = store.write.clone();
            async move {
                sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(&pool)
                    .await
                    .expect("plan")
                    .iter()
                    .map(|r| r.try_get::<String, _>("detail").unwrap_or_default())
                    .collect::<Vec<String>>()
                    .join("\n")
            }
        };
        for sql in [CLAIM_SQL, DUE_SQL] {
            let text = plan(sql).await;
            assert!(text.contains("INDEX payments_due"), "{text}");
            assert!(!text.contains("payments_status"), "{text}");
        }
        for sql in [RESCHEDULE_SQL, RELEASE_SQL] {
            let text = plan(sql).await;
            assert!(text.contains("INTEGER PRIMARY KEY"), "{text}");
            assert!(!text.contains("payments_status"), "{text}");
        }
    }

    #[tokio::test]
    async fn fresh_payments_are_claimed_before_older_due_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        for i in 0..3 {
            sqlx::query("INSERT INTO payments (md5, amount, currency, lane, next_check_at) VALUES (?1, '1', 'USD', 1, ?2)")
                .bind(format!("{:032x}", i))
                .bind(i)
                .execute(&store.write)
                .await
                .expect("old row");
        }
        let fresh = store.insert_payment(&new(99)).await.expect("fresh row");
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
        let store = SqliteStore::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        for i in 0..3 {
            store.insert_payment(&new(i)).await.expect("insert");
        }
        let lease = Duration::from_secs(60);
        let claimed = store
            .claim(1_000, lease, 3, Duration::from_secs(900))
            .await
            .expect("claim");
        let (a, b, c) = (&claimed[0], &claimed[1], &claimed[2]);
        let resched = |row: &Claimed, lease_id: i64, transient: bool| Write::Reschedule {
            row: Held {
                lease_id,
                ..row.held()
            },
            next_check_at: 5_000,
            answer: if transient { "http" } else { "not_found" },
            error: transient.then(|| "HTTP 502".to_string()),
            transient,
            lane: Lane::Old,
        };
        let writes = [
            resched(a, a.lease_id, true),
            resched(b, b.lease_id + 1, false),
            Write::Release { row: c.held() },
        ];
        store.record(&writes, Utc::now()).await.expect("record");
        let rows: Vec<(i64, i64, i64, i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT id, next_check_at, checks, errors, lane, last_error FROM payments ORDER BY id",
        )
        .fetch_all(&store.write)
        .await
        .expect("rows");
        assert_eq!(
            rows[0],
            (a.id.0, 5_000, 0, 1, 1, Some("HTTP 502".into())),
            "transient error: errors + 1"
        );
        assert_eq!(rows[1].1, 1_000 + 60_000, "a stale lease changes nothing");
        assert!(
            rows[2].1 <= Utc::now().timestamp_millis() && rows[2].1 > 1_000,
            "released: due now"
        );
    }

    #[tokio::test]
    async fn a_final_write_records_its_event_and_a_delivery_per_active_receiver_once() {
        use crate::payment::FinalStatus;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("p.db").display());
        let store = SqliteStore::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
            .set_receivers(&["webhook", "hook"])
            .await
            .expect("receivers");
        // The one live daemon has only the webhook: the hook goes off.
        let me = super::super::GateMember {
            instance: "me".into(),
            host: "here".into(),
            pid: 1,
            receivers: vec![super::super::ReceiverConfig {
                name: "webhook".into(),
                config: "0".into(),
            }],
        };
        store
            .heartbeat(&me, Utc::now().timestamp_millis(), 3_000)
            .await
            .expect("heartbeat");
        store.insert_payment(&new(1)).await.expect("insert");
        let claimed = store
            .claim(1_000, Duration::from_secs(60), 1, Duration::from_secs(900))
            .await
            .expect("claim");
        let expire = Write::Final {
            row: claimed[0].held(),
            status: FinalStatus::Expired,
            confirmation: None,
            answer: "not_found",
        };
        let applied = store
            .record(&[expire.clone(), expire], Utc::now())
            .await
            .expect("record");
        assert_eq!(
            applied,
            vec![Applied::Written, Applied::Stale],
            "written once"
        );
        let events: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, type, payload FROM payment_events")
                .fetch_all(&store.read)
                .await
                .expect("events");
        assert_eq!(events.len(), 1, "one event per status actually written");
        assert!(events[0].0.starts_with("msg_"));
        assert_eq!(events[0].1, "payment.expired");
        let body: serde_json::Value = serde_json::from_str(&events[0].2).expect("json");
        assert_eq!(body["data"]["md5"], format!("{:032x}", 1));
        let receivers: Vec<String> =
            sqlx::query_scalar("SELECT receiver FROM event_deliveries WHERE status = 'pending'")
                .fetch_all(&store.read)
                .await
                .expect("deliveries");
        assert_eq!(
            receivers,
            vec!["webhook".to_string()],
            "only the active receiver"
        );
        let claimed = store
            .claim_deliveries(
                Utc::now().timestamp_millis(),
                Duration::from_secs(5),
                10,
                &["webhook"],
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        assert!(
            store
                .claim_deliveries(
                    Utc::now().timestamp_millis(),
                    Duration::from_secs(5),
                    10,
                    &["webhook"]
                )
                .await
                .expect("claim")
                .is_empty(),
            "a leased delivery is not claimed twice"
        );
    }
}
