//! The payments database on PostgreSQL: pool, migrations and every SQL
//! statement of the daemon, with the same operations as the SQLite
//! [`Store`](super::Store), for merchants whose application already keeps
//! its orders in PostgreSQL and runs on several hosts.
//!
//! Several daemons may share one database. A claim locks the rows it takes
//! with `FOR UPDATE SKIP LOCKED`, so two daemons never take the same row,
//! and moves them past a lease, so a daemon that dies leaves them to the
//! others once the lease passes. A final status is written only over
//! `status = 'pending'` and sends `NOTIFY bakong_payments` with exactly
//! `{"md5": "...", "status": "paid"}` in the same transaction; reschedules
//! and releases are guarded by the lease.
//!
//! The payment-event outbox (webhooks, the command hook) is the SQLite
//! one with native types: a final write that changed a row inserts its
//! event and one delivery per active receiver in the same transaction, and
//! delivery claims take rows with `FOR UPDATE SKIP LOCKED` under a lease,
//! so daemons sharing the database never send one delivery twice at once.
//!
//! Tables live in the schema the connection's `search_path` names (no name
//! here is schema-qualified): `?options=-csearch_path%3Dbakong` keeps them
//! apart from an application's own `payments`.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgPool, Row};

use super::{
    amount_text, ctx, status_from, time_text as sql_time, Backend, Batch, Claimed, Counts,
    DeliveryListRow, EventHead, EventKey, GateState, Held, Inspection, InstanceGuard, LastAnswer,
    NewPayment, PageFilter, PaymentRow, ReportRow, StatusSummary, StoreError, Target, WriteTx,
    WrittenRow, DELIVERY_COLUMNS, GATE_COLUMNS,
};
use crate::event::NewEvent;
use crate::payment::{Confirmation, FinalStatus, PaymentId, Status};
use crate::redact::redact_url;

/// The embedded PostgreSQL migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The daemon's own tables: no other role may read or write them
/// ([`PgStore::lock_down`]). `payment_events` others may read.
pub const PRIVATE_TABLES: &[&str] = &[
    "api_token",
    "daemon_secret",
    "gate_state",
    "gate_members",
    "event_receivers",
    "event_deliveries",
    "event_attempts",
    "api_keys",
    "api_idempotency",
    "_sqlx_migrations",
];

/// The columns of `payments` an application writes (the INSERT grant).
pub const SHOP_COLUMNS: &str =
    "md5, amount, currency, expires_at, order_id, metadata, qr, redirect_url";

/// An identifier quoted for SQL.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The channel a final status is announced on.
pub const CHANNEL: &str = "bakong_payments";

/// Whether `url` names a PostgreSQL database (`postgres://` or
/// `postgresql://`), so the caller can pick this backend.
pub fn accepts(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `url` reads as PostgreSQL connection settings (host, database,
/// `sslmode` and the other parameters), without connecting; the reason
/// when not, free of the URL's secrets.
pub fn check_url(url: &str) -> Result<(), String> {
    PgConnectOptions::from_str(url)
        .map(drop)
        .map_err(|e| crate::redact::redact_text(&e.to_string()))
}

fn config_error(what: String, message: String) -> StoreError {
    StoreError::Sql {
        what,
        source: sqlx::Error::Configuration(message.into()),
    }
}

/// The connect options for `url`: a statement waits at most `busy_timeout`
/// for a row lock (`lock_timeout`), as SQLite's busy timeout bounds its
/// waits; the application name tells the daemons apart in pg_stat_activity.
fn options(url: &str, busy_timeout: Duration) -> Result<PgConnectOptions, StoreError> {
    let shown = redact_url(url);
    if !accepts(url) {
        return Err(config_error(
            format!("database.url {shown:?}"),
            "expected a URL starting with postgres:// or postgresql://".into(),
        ));
    }
    let mut opts =
        PgConnectOptions::from_str(url).map_err(ctx(format!("database.url {shown:?}")))?;
    opts = opts.options([("lock_timeout", format!("{}ms", busy_timeout.as_millis()))]);
    if opts.get_application_name().is_none() {
        opts = opts.application_name("bakong-poller");
    }
    Ok(opts)
}

// Pending rows whose amount no KHQR can carry. The table's CHECK refuses
// them, so this finds only rows from before it (or an altered table).
const TOO_PRECISE: &str = "status = 'pending' AND (
        (currency = 'USD' AND amount <> round(amount, 2))
        OR (currency = 'KHR' AND amount <> trunc(amount)))";

/// See [`super::inspect`]: connects and reads, creating and migrating
/// nothing.
pub async fn inspect(url: &str, busy_timeout: Duration) -> Result<Inspection, StoreError> {
    let shown = redact_url(url);
    let opts = options(url, busy_timeout)?;
    let mut conn = tokio::time::timeout(
        busy_timeout.max(Duration::from_secs(5)),
        sqlx::PgConnection::connect_with(&opts),
    )
    .await
    .map_err(|_| ctx(format!("open {shown}"))(sqlx::Error::PoolTimedOut))?
    .map_err(ctx(format!("open {shown}")))?;
    // No journal on PostgreSQL: the report's WAL check reads "wal".
    let mut found = Inspection {
        journal_mode: "wal".into(),
        ..Default::default()
    };
    let has = |t: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL").bind(t)
    };
    let (schema, path): (Option<String>, String) =
        sqlx::query_as("SELECT current_schema(), current_setting('search_path')")
            .fetch_one(&mut conn)
            .await
            .map_err(ctx("read search_path"))?;
    let Some(schema) = schema else {
        found.problems.push(format!(
            "the connection's search_path ({path}) names no existing schema: create it \
             (CREATE SCHEMA name AUTHORIZATION role) or fix the options parameter"
        ));
        return Ok(found);
    };
    let has_migrations = has("_sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .map_err(ctx("look for the migrations table"))?;
    let applied: Vec<(i64, bool, Vec<u8>)> = if has_migrations {
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
    let has_payments = has("payments")
        .fetch_one(&mut conn)
        .await
        .map_err(ctx("look for the payments table"))?;
    if has_payments && !has_migrations {
        found.problems.push(format!(
            "schema {schema} already has a payments table that bakong-poller did not \
             create (an application's own?): give bakong-poller its own schema, e.g. \
             CREATE SCHEMA bakong and ?options=-csearch_path%3Dbakong in database.url"
        ));
    }
    if has_payments && !applied.is_empty() {
        found.too_precise_ids = sqlx::query_scalar(&format!(
            "SELECT id FROM payments WHERE {TOO_PRECISE} ORDER BY id"
        ))
        .fetch_all(&mut conn)
        .await
        .map_err(ctx("look for amounts no KHQR can carry"))?;
    }
    // The live daemons' receivers, where the schema has them.
    let now = Utc::now().timestamp_millis();
    found.live_receivers = sqlx::query_as(
        "SELECT host, pid, receivers FROM gate_members WHERE seen_ms >= $1 AND seen_ms <= $2",
    )
    .bind(now - super::LIVE_MS)
    .bind(now + super::LIVE_MS)
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let _ = conn.close().await;
    Ok(found)
}

// Due rows of lane 0 (fresh: a customer may be waiting) first, then lane 1,
// each a range scan of the partial index that stops at the limit; lane 1
// asks only for the room lane 0 left. SKIP LOCKED passes over rows another
// daemon is claiming right now, and the recheck FOR UPDATE does on a row
// changed since the snapshot drops one another daemon has just claimed, so
// no row is handed out twice. The ids go to the UPDATE as an array, a
// primary-key lookup each: joined instead, the planner (which cannot know
// lane 1's limit) merges against the whole table.
const CLAIM_SQL: &str = "WITH lane0 AS (
        SELECT id FROM payments
        WHERE status = 'pending' AND lane = 0 AND next_check_at <= $3
          AND (lease_id IS NULL OR next_check_at <= $6)
        ORDER BY next_check_at LIMIT $4
        FOR UPDATE SKIP LOCKED),
    lane1 AS (
        SELECT id FROM payments
        WHERE status = 'pending' AND lane = 1 AND next_check_at <= $3
          AND (lease_id IS NULL OR next_check_at <= $6)
        ORDER BY next_check_at LIMIT greatest($4 - (SELECT count(*) FROM lane0), 0)
        FOR UPDATE SKIP LOCKED)
    UPDATE payments AS p SET next_check_at = $1, lease_id = $2
    WHERE p.id = ANY(ARRAY(SELECT id FROM lane0 UNION ALL SELECT id FROM lane1))
    RETURNING p.id, p.md5, p.amount::text AS amount, p.currency, p.last_answer, p.qr, p.status,
        (extract(epoch FROM p.created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM coalesce(p.expires_at, p.created_at + make_interval(secs => $5)))
            * 1000)::bigint AS expires_ms,
        (extract(epoch FROM p.confirmed_at) * 1000)::bigint AS final_ms,
        p.checks::bigint AS checks, p.errors::bigint AS errors";

// The late watch: rows past `poller.late_watch` ($2: the oldest final time
// still watched, unix ms) leave it, then due ones are claimed; rows another
// daemon holds are skipped.
const LATE_FORGET_SQL: &str = "UPDATE payments SET late_check_at = NULL
    WHERE id = ANY(ARRAY(
        SELECT id FROM payments
        WHERE late_check_at IS NOT NULL AND late_check_at <= $1
          AND (status NOT IN ('expired', 'failed', 'cancelled') OR confirmed_at IS NULL
               OR confirmed_at < to_timestamp($2::double precision / 1000.0))
        FOR UPDATE SKIP LOCKED))";

const LATE_CLAIM_SQL: &str = "WITH due AS (
        SELECT id FROM payments
        WHERE late_check_at IS NOT NULL AND late_check_at <= $3
          AND status IN ('expired', 'failed', 'cancelled')
        ORDER BY late_check_at LIMIT $4
        FOR UPDATE SKIP LOCKED)
    UPDATE payments AS p SET late_check_at = $1, lease_id = $2
    WHERE p.id = ANY(ARRAY(SELECT id FROM due))
    RETURNING p.id, p.md5, p.amount::text AS amount, p.currency, p.last_answer, p.qr, p.status,
        (extract(epoch FROM p.created_at) * 1000)::bigint AS created_ms,
        (extract(epoch FROM coalesce(p.expires_at, p.created_at + make_interval(secs => $5)))
            * 1000)::bigint AS expires_ms,
        (extract(epoch FROM p.confirmed_at) * 1000)::bigint AS final_ms,
        p.checks::bigint AS checks, p.errors::bigint AS errors";

// The columns of a listed payment.
const LIST_SELECT: &str = "SELECT id, md5, amount::text AS amount, currency, status, created_at,
        expires_at, bakong_hash, from_account_id, to_account_id,
        paid_amount::text AS paid_amount, paid_currency, paid_at, confirmed_at, last_answer,
        last_error, public_id, order_id, metadata::text AS metadata, qr, redirect_url,
        description, deeplink
    FROM payments";

// A payment as the shop's application (or `new`, `add`, the API) inserts
// it; the table makes a public id when none is given.
const INSERT_SQL: &str = "INSERT INTO payments (md5, amount, currency, expires_at, order_id,
        metadata, qr, public_id, redirect_url)
    VALUES ($1, $2::numeric, $3, $4, $5, $6, $7,
            coalesce($8, replace(gen_random_uuid()::text, '-', '')), $9)
    RETURNING id";

/// Binds a payment's values to [`INSERT_SQL`].
fn bind_insert<'q>(
    q: sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments>,
    p: &'q NewPayment,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, i64, sqlx::postgres::PgArguments> {
    q.bind(&p.md5)
        .bind(&p.amount)
        .bind(p.currency.code())
        .bind(p.expires_at)
        .bind(&p.order_id)
        .bind(&p.metadata)
        .bind(&p.qr)
        .bind(&p.public_id)
        .bind(&p.redirect_url)
}

// Cancel: pending rows of the target become cancelled, watched for late
// money from now ($2 unix ms), announced like a final status.
const CANCEL_SQL: &str = "WITH done AS (
        UPDATE payments SET status = 'cancelled', confirmed_at = $1,
            late_check_at = $2, lease_id = NULL, last_answer = 'cancelled'
        WHERE status = 'pending'
          AND (id = $3 OR public_id = $4 OR md5 = $5 OR order_id = $6)
        RETURNING id, md5, status, amount::text AS amount, currency, order_id,
            metadata::text AS metadata)
    SELECT id, md5, amount, currency, order_id, metadata,
           pg_notify('bakong_payments', jsonb_build_object('md5', md5, 'status', status)::text)::text
               AS notified
    FROM done";

const DUE_SQL: &str = "SELECT count(*) FROM (SELECT 1 FROM payments
    WHERE status = 'pending' AND lane IN (0, 1) AND next_check_at <= $1 LIMIT $2) AS due";

// The final write and its notification in one statement, so there is no
// path that writes one without the other. jsonb renders exactly
// {"md5": "...", "status": "paid"} (its keys ordered by length). Only on
// the row that was claimed and checked: still pending, still held by the
// claim, with the md5, amount (by value) and currency the claim saw.
const FINAL_SQL: &str = "WITH done AS (
        UPDATE payments SET status = $2, bakong_hash = $3, from_account_id = $4,
            to_account_id = $5, paid_amount = $6::numeric, paid_currency = $7,
            description = $8, paid_at = $9, confirmed_at = $10,
            last_checked_at = $10, checks = checks + 1, lease_id = NULL,
            last_answer = $11, last_error = NULL,
            late_check_at = CASE WHEN $2 IN ('expired', 'failed') THEN $17::bigint END
        WHERE id = $1 AND status = $16 AND lease_id = $12
          AND md5 = $13 AND amount = $14::numeric AND currency = $15
        RETURNING id, md5, status, amount::text AS amount, currency, order_id,
            metadata::text AS metadata)
    SELECT id, md5, amount, currency, order_id, metadata,
           pg_notify('bakong_payments', jsonb_build_object('md5', md5, 'status', status)::text)::text
               AS notified
    FROM done";

// One statement for a whole batch, driven by the JSON rows; each guarded as
// a final write is.
const RESCHEDULE_SQL: &str = "UPDATE payments AS p SET next_check_at = v.next, lease_id = NULL,
        checks = p.checks + 1 - v.transient,
        errors = CASE WHEN v.transient = 1 THEN p.errors + 1 ELSE 0 END,
        last_answer = v.answer, last_error = v.error, last_checked_at = $2, lane = v.lane
    FROM jsonb_to_recordset($1::jsonb)
        AS v(id bigint, lease bigint, next bigint, answer text, error text,
             transient integer, lane smallint, md5 text, amount text, currency text)
    WHERE p.id = v.id AND p.lease_id = v.lease AND p.status = 'pending'
      AND p.md5 = v.md5 AND p.amount = v.amount::numeric AND p.currency = v.currency";

const DEFER_SQL: &str = "UPDATE payments AS p SET next_check_at = v.next, lease_id = NULL
    FROM jsonb_to_recordset($1::jsonb)
        AS v(id bigint, lease bigint, next bigint, md5 text, amount text, currency text)
    WHERE p.id = v.id AND p.lease_id = v.lease AND p.status = 'pending'
      AND p.md5 = v.md5 AND p.amount = v.amount::numeric AND p.currency = v.currency";

const RELEASE_SQL: &str = "UPDATE payments AS p SET next_check_at = $2, lease_id = NULL
    FROM jsonb_to_recordset($1::jsonb)
        AS v(id bigint, lease bigint, md5 text, amount text, currency text)
    WHERE p.id = v.id AND p.lease_id = v.lease AND p.status = 'pending'
      AND p.md5 = v.md5 AND p.amount = v.amount::numeric AND p.currency = v.currency";

/// Claimed rows as the poller takes them, in id order.
fn claimed(rows: Vec<sqlx::postgres::PgRow>, lease_id: i64) -> Result<Vec<Claimed>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Claimed {
            id: PaymentId(r.try_get("id").map_err(ctx("claim: id"))?),
            lease_id,
            // NULLs are refused by the table; an empty value fails the
            // poller's validation, which names the column.
            md5: text(&r, "md5").unwrap_or_default(),
            amount: text(&r, "amount").unwrap_or_default(),
            currency: text(&r, "currency").unwrap_or_default(),
            created_ms: r.try_get("created_ms").ok().flatten(),
            expires_ms: r.try_get("expires_ms").ok().flatten(),
            checks: r.try_get("checks").unwrap_or(0),
            errors: r.try_get("errors").unwrap_or(0),
            last_answer: text(&r, "last_answer"),
            qr: text(&r, "qr"),
            from: status_from(&text(&r, "status").unwrap_or_default(), "claim")?,
            final_ms: r.try_get("final_ms").ok().flatten(),
        });
    }
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// A write transaction.
struct PgTx(sqlx::Transaction<'static, sqlx::Postgres>);

common_tx_ops!(PgTx);

#[async_trait::async_trait]
impl WriteTx for PgTx {
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
            .bind(c.and_then(|c| c.paid_at))
            .bind(now)
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
        let id: i64 = bind_insert(sqlx::query_scalar(INSERT_SQL), p)
            .fetch_one(&mut *self.0)
            .await
            .map_err(ctx(format!("insert payment {}", p.md5)))?;
        Ok(PaymentId(id))
    }

    async fn cancel_rows(
        &mut self,
        target: &Target,
        now: DateTime<Utc>,
    ) -> Result<Vec<WrittenRow>, StoreError> {
        let (id, public_id, md5, order_id) = target.sql_parts();
        sqlx::query_as(CANCEL_SQL)
            .bind(now)
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
        insert_event(&mut self.0, e, payment_id.map(|p| p.0), now, key).await
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
                .bind(now)
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
            "INSERT INTO daemon_secret (id, event_key, created_at) VALUES (1, $1, now())
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.bytes())
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
            "UPDATE event_deliveries SET status = $4, attempts = attempts + 1,
                next_attempt_at = $5, lease_id = NULL, last_error = $6,
                delivered_at = $7, delivered_ms = $8
             WHERE event_id = $1 AND receiver = $2 AND lease_id = $3 AND status = 'pending'",
        )
        .bind(&d.event_id)
        .bind(&d.receiver)
        .bind(d.lease_id)
        .bind(status.as_str())
        .bind(next_attempt_at)
        .bind(error)
        .bind(delivered_at)
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&d.event_id)
        .bind(&d.receiver)
        .bind(d.attempts + 1)
        .bind(a.at)
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

/// The payments database on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    key: std::sync::Arc<tokio::sync::OnceCell<EventKey>>,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://` or `postgresql://`,
    /// with the usual `sslmode`, `host`, `options` parameters). A statement
    /// waits at most `busy_timeout` for a row lock held by another writer
    /// (`lock_timeout`), as SQLite's busy timeout bounds its waits.
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let opts = options(url, busy_timeout)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(busy_timeout.max(Duration::from_secs(5)))
            .connect_with(opts)
            .await
            .map_err(ctx(format!("open {shown}")))?;
        Ok(PgStore {
            pool,
            key: Default::default(),
        })
    }

    /// Takes back every other role's privileges on the daemon's
    /// bookkeeping (the token, the event key, the gate, the outbox's
    /// deliveries and attempts) and every write on `payment_events`, which
    /// others may only read. Run by every migrate, so a grant made since
    /// (an `ALTER DEFAULT PRIVILEGES` that covers the daemon's new tables,
    /// a hand-made GRANT) does not outlive the next start. Each privilege
    /// taken back is logged with the role's name.
    pub async fn lock_down(&self) -> Result<(), StoreError> {
        let grants: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.relname::text, coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type
             FROM pg_class c
             CROSS JOIN LATERAL aclexplode(c.relacl) a
             LEFT JOIN pg_roles r ON r.oid = a.grantee
             WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
               AND c.relname = ANY($1) AND a.grantee <> c.relowner
               AND a.grantee NOT IN (SELECT oid FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER'))
             ORDER BY 1, 2, 3",
        )
        .bind(
            PRIVATE_TABLES
                .iter()
                .chain([&"payment_events", &"payments"])
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(ctx("read the grants on the daemon's tables"))?;
        // Triggers on the tables the daemon writes run as the daemon: one
        // it did not make could read its secrets. Named, every start.
        let foreign: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT c.relname::text, t.tgname::text, p.proowner::regrole::text
             FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_proc p ON p.oid = t.tgfoid
             WHERE NOT t.tgisinternal
               AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
               AND c.relname IN ('payments', 'payment_events', 'event_deliveries')
               AND p.proowner <> c.relowner",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(ctx("read the triggers on the daemon's tables"))?;
        for (table, trigger, owner) in foreign {
            tracing::error!(
                table = %table,
                trigger = %trigger,
                function_owner = %owner,
                "a trigger whose function another role owns runs with the daemon's rights on \
                 every write to this table (it could read the token and the event key): drop \
                 it, or have the daemon's role own its function"
            );
        }
        for (table, role, privilege) in grants {
            let grantee = if role == "PUBLIC" {
                role.clone()
            } else {
                quote_ident(&role)
            };
            let sql = match (table.as_str(), privilege.as_str()) {
                ("payment_events", "SELECT") => continue,
                // A table-wide INSERT would let a role write a status or
                // the payer's details: narrowed to the merchant's columns.
                ("payments", "INSERT") => format!(
                    "REVOKE INSERT ON TABLE payments FROM {grantee};
                     GRANT INSERT ({SHOP_COLUMNS}) ON TABLE payments TO {grantee}"
                ),
                // SELECT stays; DELETE stays (removing a row is the
                // application's to decide, and a result never lands on
                // another row). UPDATE would let a role write a status,
                // TRIGGER would run its code as the daemon (with the
                // daemon's secrets), TRUNCATE and REFERENCES are not the
                // application's either.
                ("payments", "SELECT" | "DELETE") => continue,
                _ => format!(
                    "REVOKE {privilege} ON TABLE {} FROM {grantee}",
                    quote_ident(&table)
                ),
            };
            match sqlx::raw_sql(&sql).execute(&self.pool).await {
                Ok(_) => tracing::warn!(
                    table = %table,
                    role = %role,
                    privilege = %privilege,
                    "took back a privilege on the daemon's own table: only the daemon may \
                     use it (grant your application SELECT, INSERT on payments only)"
                ),
                Err(e) => tracing::error!(
                    table = %table,
                    role = %role,
                    privilege = %privilege,
                    error = %e,
                    "another role holds a privilege on the daemon's own table and it could \
                     not be taken back: revoke it as the role that granted it"
                ),
            }
        }
        Ok(())
    }

    /// The pool, for tests and tools that insert rows as a merchant.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Copies every row of a SQLite payments database into this one, so a
    /// merchant moving to PostgreSQL keeps the history and the pending rows.
    /// Idempotent on md5: a second run copies nothing twice. Rows the
    /// PostgreSQL table refuses are reported, not copied.
    pub async fn import_sqlite(
        &self,
        from: &super::sqlite::SqliteStore,
    ) -> Result<ImportReport, StoreError> {
        let mut report = ImportReport::default();
        let mut after = 0_i64;
        loop {
            let rows = from.export_rows(after, IMPORT_BATCH).await?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = *last;
            report.read += rows.len() as u64;
            let batch = format!(
                "[{}]",
                rows.iter()
                    .map(|(_, r)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match sqlx::query(IMPORT_SQL)
                .bind(&batch)
                .execute(&self.pool)
                .await
            {
                Ok(done) => {
                    report.copied += done.rows_affected();
                    report.already_there += rows.len() as u64 - done.rows_affected();
                }
                // Some row is refused: find which, one at a time.
                Err(sqlx::Error::Database(_)) => {
                    for (_, row) in &rows {
                        match sqlx::query(IMPORT_SQL)
                            .bind(format!("[{row}]"))
                            .execute(&self.pool)
                            .await
                        {
                            Ok(done) if done.rows_affected() == 1 => report.copied += 1,
                            Ok(_) => report.already_there += 1,
                            Err(sqlx::Error::Database(e)) => {
                                let md5 = serde_json::from_str::<serde_json::Value>(row)
                                    .ok()
                                    .and_then(|v| v["md5"].as_str().map(str::to_string))
                                    .unwrap_or_default();
                                report.refused.push((md5, e.message().to_string()));
                            }
                            Err(e) => return Err(ctx("import: copy a payment")(e)),
                        }
                    }
                }
                Err(e) => return Err(ctx("import: copy payments")(e)),
            }
        }
        Ok(report)
    }
}

common_ops!(PgStore, read: pool, write: pool);

#[async_trait::async_trait]
impl Backend for PgStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn as_postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = self.pool.begin().await.map_err(ctx("begin write"))?;
        Ok(Box::new(PgTx(tx)))
    }

    fn event_key_cell(&self) -> &tokio::sync::OnceCell<EventKey> {
        &self.key
    }

    /// Applies pending migrations, in the schema the search_path names.
    /// sqlx holds an advisory lock meanwhile, so daemons starting together
    /// migrate once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let (schema, path): (Option<String>, String) =
            sqlx::query_as("SELECT current_schema(), current_setting('search_path')")
                .fetch_one(&self.pool)
                .await
                .map_err(ctx("read search_path"))?;
        if schema.is_none() {
            return Err(config_error(
                "migrate".into(),
                format!(
                    "the connection's search_path ({path}) names no existing schema: \
                     create it first (CREATE SCHEMA name AUTHORIZATION role) or fix \
                     the options parameter of database.url"
                ),
            ));
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Sql {
                what: "migrate".into(),
                source: e.into(),
            })?;
        self.lock_down().await
    }

    /// Several daemons may share a PostgreSQL database (claims skip each
    /// other's rows), so there is nothing to hold.
    fn lock_instance(&self) -> Result<InstanceGuard, StoreError> {
        Ok(InstanceGuard { _file: None })
    }

    /// Problems with the set-up: none that PostgreSQL does not report by
    /// itself on connect.
    async fn setup_problems(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// See [`super::Backend::claim_spare`]. Rows another daemon holds are
    /// skipped, never waited for.
    async fn claim_spare(
        &self,
        now_ms: i64,
        ahead_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let rows = sqlx::query(CLAIM_SQL)
            .bind(now_ms.saturating_add(lease.as_millis() as i64))
            .bind(lease_id)
            .bind(ahead_ms)
            .bind(limit as i64)
            .bind(ttl.as_secs_f64())
            .bind(now_ms)
            .fetch_all(&self.pool)
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
            .execute(&self.pool)
            .await
            .map_err(ctx("end the late watch of old rows"))?;
        if watch.is_zero() || limit == 0 {
            return Ok(Vec::new());
        }
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let rows = sqlx::query(LATE_CLAIM_SQL)
            .bind(now_ms.saturating_add(lease.as_millis() as i64))
            .bind(lease_id)
            .bind(now_ms)
            .bind(limit as i64)
            .bind(ttl.as_secs_f64())
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("claim late-watched payments"))?;
        claimed(rows, lease_id)
    }

    /// See [`super::Backend::age_out`]. Rows another daemon is claiming are
    /// skipped (it moves them next time).
    async fn age_out_before(&self, now_ms: i64, cutoff_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE payments SET lane = 1
             WHERE id = ANY(ARRAY(
                 SELECT id FROM payments
                 WHERE status = 'pending' AND lane = 0 AND next_check_at <= $1
                   AND created_at < to_timestamp($2::double precision / 1000.0)
                 FOR UPDATE SKIP LOCKED))",
        )
        .bind(now_ms)
        .bind(cutoff_ms)
        .execute(&self.pool)
        .await
        .map_err(ctx("move aged payments to the older lane"))?;
        Ok(done.rows_affected())
    }

    /// See [`super::Backend::counts`].
    async fn counts(&self) -> Result<Counts, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM payments GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(ctx("count payments"))?;
        let mut c = Counts::default();
        for (status, n) in rows {
            c.set(status_from(&status, "count payments")?, n);
        }
        let (oldest, next, pending_static): (Option<DateTime<Utc>>, Option<i64>, i64) =
            sqlx::query_as(
                "SELECT min(created_at), min(next_check_at),
                        count(*) FILTER (WHERE last_answer = 'static_qr')
                 FROM payments WHERE status = 'pending'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(ctx("read pending facts"))?;
        c.oldest_pending = oldest.map(sql_time);
        c.next_check_ms = next;
        c.pending_static_qr = pending_static;
        Ok(c)
    }

    /// See [`super::Backend::pending_facts`].
    async fn pending_facts(
        &self,
        now_ms: i64,
        ttl: Duration,
        grace: Duration,
    ) -> Result<super::PendingFacts, StoreError> {
        let (pending, overdue, oldest): (i64, i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*),
                count(*) FILTER (WHERE extract(epoch FROM coalesce(expires_at,
                        created_at + make_interval(secs => $1))) * 1000 + $2 < $3),
                (extract(epoch FROM min(created_at)) * 1000)::bigint
             FROM payments WHERE status = 'pending'",
        )
        .bind(ttl.as_secs_f64())
        .bind(grace.as_millis() as i64)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("read pending facts"))?;
        Ok(super::PendingFacts {
            pending,
            overdue,
            oldest_created_ms: oldest,
        })
    }

    /// See [`super::Backend::bookkeeping`].
    async fn bookkeeping(&self, md5: &str) -> Result<Option<super::Bookkeeping>, StoreError> {
        sqlx::query_as(
            "SELECT next_check_at, checks::bigint AS checks, errors::bigint AS errors,
                    last_answer, last_error
             FROM payments WHERE md5 = $1",
        )
        .bind(md5)
        .fetch_optional(&self.pool)
        .await
        .map_err(ctx(format!("read the bookkeeping of {md5}")))
    }

    /// See [`super::Backend::paid_today`].
    async fn paid_today(&self) -> Result<i64, StoreError> {
        let midnight = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
        sqlx::query_scalar(
            "SELECT count(*) FROM payments WHERE status = 'paid' AND confirmed_at >= $1",
        )
        .bind(midnight)
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("count today's payments"))
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
                not_before_set_ms = CASE WHEN $1 > coalesce(not_before_ms, 0)
                                         THEN $2 ELSE not_before_set_ms END,
                not_before_ms = GREATEST(coalesce(not_before_ms, 0), $1),
                rate = CASE WHEN $3::double precision IS NULL THEN rate
                            ELSE LEAST(coalesce(rate, $3), $3) END,
                rate_epoch = rate_epoch + 1
             WHERE id = 1 RETURNING {GATE_COLUMNS}"
        ))
        .bind(not_before_ms)
        .bind(now_ms)
        .bind(rate)
        .fetch_one(&self.pool)
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
                CASE WHEN next_slot_ms IS NULL OR next_slot_ms > $1 + $3 THEN $1
                     ELSE GREATEST(next_slot_ms, $1) END + $2
             WHERE id = 1 RETURNING next_slot_ms - $2, not_before_ms",
        )
        .bind(now_ms)
        .bind(gap_ms)
        .bind(horizon_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("reserve a request slot"))
    }

    /// See [`super::Backend::gate_climb`].
    async fn gate_climb(&self, rate: f64, epoch: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE gate_state SET rate = GREATEST(coalesce(rate, 0), $1)
             WHERE id = 1 AND rate_epoch = $2",
        )
        .bind(rate)
        .bind(epoch)
        .execute(&self.pool)
        .await
        .map_err(ctx("save the learned rate"))?;
        Ok(())
    }

    /// See [`super::Backend::set_quota_pause`].
    async fn set_quota_pause(&self, pause: Option<(i64, i64)>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE gate_state SET quota_since_ms = $1, quota_next_probe_ms = $2 WHERE id = 1",
        )
        .bind(pause.map(|p| p.0))
        .bind(pause.map(|p| p.1))
        .execute(&self.pool)
        .await
        .map_err(ctx("save the quota pause"))?;
        Ok(())
    }

    /// See [`super::Backend::add_spend`].
    async fn add_spend(&self, day: &str, n: i64) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "UPDATE gate_state SET
                spend = CASE WHEN spend_day IS NOT DISTINCT FROM $1 THEN spend + $2 ELSE $2 END,
                spend_day = $1
             WHERE id = 1 RETURNING spend",
        )
        .bind(day)
        .bind(n)
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("save the day's request spend"))
    }

    /// See [`super::Backend::heartbeat`].
    async fn heartbeat(
        &self,
        m: &super::GateMember,
        now_ms: i64,
        live_ms: i64,
    ) -> Result<i64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "WITH beat AS (
                INSERT INTO gate_members (instance, host, pid, seen_ms, receivers)
                VALUES ($1, $2, $3, $4, $9)
                ON CONFLICT (instance) DO UPDATE SET seen_ms = $4, receivers = $9
             ), forget AS (
                DELETE FROM gate_members WHERE seen_ms < $6 OR seen_ms > $7
             )
             SELECT count(*) FROM gate_members
             WHERE seen_ms >= $5 AND seen_ms <= $8 AND instance <> $1",
        )
        .bind(&m.instance)
        .bind(&m.host)
        .bind(m.pid)
        .bind(now_ms)
        .bind(now_ms - live_ms)
        .bind(now_ms - super::MEMBER_FORGET_MS)
        .bind(now_ms.saturating_add(super::MEMBER_FORGET_MS))
        .bind(now_ms.saturating_add(live_ms))
        .bind(serde_json::to_string(&m.receivers).unwrap_or_else(|_| "[]".into()))
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("heartbeat"))?;
        // Active: the receivers some daemon heard from within the forget
        // window has (a stall or a clock a few seconds off must not turn a
        // receiver off: events recorded meanwhile would get no delivery) (after the heartbeat,
        // so this daemon's own list counts).
        sqlx::query(
            "UPDATE event_receivers e SET active = x.live, updated_at = now()
             FROM (SELECT e2.name, EXISTS (
                       SELECT 1 FROM gate_members g
                       WHERE g.seen_ms >= $1 AND g.seen_ms <= $2
                         AND g.receivers::jsonb @> jsonb_build_array(jsonb_build_object('name', e2.name))
                   ) AS live FROM event_receivers e2) AS x
             WHERE e.name = x.name AND e.active <> x.live",
        )
        .bind(now_ms - super::MEMBER_FORGET_MS)
        .bind(now_ms.saturating_add(super::MEMBER_FORGET_MS))
        .execute(&self.pool)
        .await
        .map_err(ctx("update active receivers"))?;
        // The statement's snapshot does not see its own insert: count it.
        Ok(n + 1)
    }

    /// Closes the pool.
    async fn close(&self) {
        self.pool.close().await;
    }

    /// See [`super::Backend::late_summary`].
    async fn late_summary(&self) -> Result<super::LateSummary, StoreError> {
        let (paid_late_today, mismatch_late_today): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'paid_late'),
                    count(*) FILTER (WHERE status = 'mismatch')
             FROM payments WHERE status IN ('paid_late', 'mismatch') AND last_answer = 'late'
               AND confirmed_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("count today's late payments"))?;
        let last: Option<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT md5, status, confirmed_at FROM payments
             WHERE status IN ('paid_late', 'mismatch') AND last_answer = 'late'
             ORDER BY confirmed_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(ctx("read the last late payment"))?;
        Ok(super::LateSummary {
            paid_late_today,
            mismatch_late_today,
            last: last.map(|(m, s, t)| (m, s, sql_time(t))),
        })
    }

    /// See [`super::Backend::report_rows`].
    async fn report_rows(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<ReportRow>, StoreError> {
        sqlx::query_as(
            "SELECT to_char(coalesce(paid_at, confirmed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                    status, amount::text AS amount, currency, paid_amount::text AS paid_amount,
                    paid_currency
             FROM payments
             WHERE status <> 'pending'
               AND coalesce(paid_at, confirmed_at) >= ($1::date)::timestamp AT TIME ZONE 'UTC'
               AND coalesce(paid_at, confirmed_at) < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'
             ORDER BY day",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(ctx("read the payments for the report"))
    }

    /// See [`super::Backend::insert_payment`]. The table's CHECK constraints
    /// have the last word on what is valid.
    async fn insert_payment(&self, p: &NewPayment) -> Result<PaymentId, StoreError> {
        let id: i64 = bind_insert(sqlx::query_scalar(INSERT_SQL), p)
            .fetch_one(&self.pool)
            .await
            .map_err(ctx(format!("insert payment {}", p.md5)))?;
        Ok(PaymentId(id))
    }

    /// See [`super::Backend::list_page`].
    async fn list_page(&self, f: &PageFilter) -> Result<Vec<PaymentRow>, StoreError> {
        // By public id: the unique index (a generic plan of the filters'
        // OR pattern could scan).
        let rows = if let Some(pid) = &f.public_id {
            sqlx::query(&format!("{LIST_SELECT} WHERE public_id = $1 LIMIT 1"))
                .bind(pid)
                .fetch_all(&self.pool)
                .await
        } else {
            sqlx::query(&format!(
                "{LIST_SELECT}
                 WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR order_id = $2)
                   AND ($3::bigint IS NULL OR created_at >= to_timestamp($3::double precision / 1000.0))
                   AND ($4::bigint IS NULL OR created_at < to_timestamp($4::double precision / 1000.0))
                   AND ($5::bigint IS NULL OR id < $5)
                 ORDER BY id DESC LIMIT $6"
            ))
            .bind(f.status.map(Status::as_str))
            .bind(&f.order_id)
            .bind(f.created_after_ms)
            .bind(f.created_before_ms)
            .bind(f.before_id)
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await
        }
        .map_err(ctx("list payments"))?;
        rows.iter()
            .map(|r| {
                Ok(PaymentRow {
                    id: PaymentId(r.try_get("id").map_err(ctx("list payments: id"))?),
                    status: status_from(&text(r, "status").unwrap_or_default(), "list payments")?,
                    md5: text(r, "md5").unwrap_or_default(),
                    amount: text(r, "amount").unwrap_or_default(),
                    currency: text(r, "currency").unwrap_or_default(),
                    created_at: time(r, "created_at").unwrap_or_default(),
                    expires_at: time(r, "expires_at"),
                    bakong_hash: text(r, "bakong_hash"),
                    from_account_id: text(r, "from_account_id"),
                    to_account_id: text(r, "to_account_id"),
                    paid_amount: text(r, "paid_amount"),
                    paid_currency: text(r, "paid_currency"),
                    paid_at: time(r, "paid_at"),
                    confirmed_at: time(r, "confirmed_at"),
                    last_answer: text(r, "last_answer"),
                    last_error: text(r, "last_error"),
                    public_id: text(r, "public_id").unwrap_or_default(),
                    order_id: text(r, "order_id"),
                    metadata: text(r, "metadata").and_then(|m| serde_json::from_str(&m).ok()),
                    qr: text(r, "qr"),
                    redirect_url: text(r, "redirect_url"),
                    description: text(r, "description"),
                    deeplink: text(r, "deeplink"),
                })
            })
            .collect()
    }

    /// See [`super::Backend::last_answer`].
    async fn last_answer(&self) -> Result<Option<LastAnswer>, StoreError> {
        let row: Option<(DateTime<Utc>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT last_checked_at, last_answer, last_error FROM payments
             WHERE last_checked_at IS NOT NULL ORDER BY last_checked_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(ctx("read the last answer"))?;
        Ok(row.map(|(at, answer, error)| LastAnswer {
            at: sql_time(at),
            answer,
            error,
        }))
    }

    /// See [`super::Backend::last_answer_at`].
    async fn last_answer_at(&self) -> Result<Option<String>, StoreError> {
        let t: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(last_checked_at) FROM payments WHERE last_error IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(ctx("read last answer time"))?;
        Ok(t.map(sql_time))
    }

    /// See [`super::Backend::status_summary`].
    async fn status_summary(&self) -> Result<Vec<StatusSummary>, StoreError> {
        let rows: Vec<(String, i64, Option<f64>, Option<f64>)> = sqlx::query_as(
            "SELECT status, count(*),
                    avg(extract(epoch FROM confirmed_at - paid_at))::float8,
                    max(extract(epoch FROM confirmed_at - paid_at))::float8
             FROM payments GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(ctx("begin receivers"))?;
        for name in active {
            sqlx::query(
                "INSERT INTO event_receivers (name, active, updated_at) VALUES ($1, true, now())
                 ON CONFLICT (name) DO UPDATE SET active = true, updated_at = now()",
            )
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(ctx(format!("register receiver {name}")))?;
        }
        tx.commit().await.map_err(ctx("commit receivers"))
    }

    /// See [`super::Backend::claim_deliveries`]. Deliveries another daemon
    /// holds are skipped, never waited for.
    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        receivers: &[&str],
    ) -> Result<Vec<super::ClaimedDelivery>, StoreError> {
        let lease_id: i64 = rand::random::<i64>() & i64::MAX;
        let names: Vec<String> = receivers.iter().map(|r| r.to_string()).collect();
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            String,
            i64,
            String,
            String,
            String,
            i64,
            Option<String>,
        )> = sqlx::query_as(CLAIM_DELIVERIES_SQL)
            .bind(now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)))
            .bind(lease_id)
            .bind(now_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(names)
            .fetch_all(&self.pool)
            .await
            .map_err(ctx("claim due deliveries"))?;
        Ok(rows
            .into_iter()
            .map(
                |(event_id, receiver, attempts, event_type, md5, payload, created_ms, mac)| {
                    super::ClaimedDelivery {
                        event_id,
                        receiver,
                        lease_id,
                        attempts,
                        event_type,
                        md5,
                        payload,
                        created_ms,
                        mac,
                    }
                },
            )
            .collect())
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
        let events: Vec<&str> = claims.iter().map(|c| c.0.as_str()).collect();
        let receivers: Vec<&str> = claims.iter().map(|c| c.1.as_str()).collect();
        let leases: Vec<i64> = claims.iter().map(|c| c.2).collect();
        sqlx::query(
            "UPDATE event_deliveries d SET next_attempt_at = $4, lease_id = NULL
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS v(e, r, l)
             WHERE d.event_id = v.e AND d.receiver = v.r AND d.lease_id = v.l
               AND d.status = 'pending'",
        )
        .bind(events)
        .bind(receivers)
        .bind(leases)
        .bind(now_ms)
        .execute(&self.pool)
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
             WHERE $1::text IS NULL OR EXISTS (SELECT 1 FROM event_deliveries d
                                               WHERE d.event_id = e.id AND d.status = $1)
             ORDER BY id DESC LIMIT $2",
        )
        .bind(status.map(super::DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(ctx("list events"))
    }

    async fn deliveries_of(&self, ids: &[&str]) -> Result<Vec<DeliveryListRow>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM event_deliveries
             WHERE event_id = ANY($1::text[]) ORDER BY receiver"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(ctx("read deliveries"))
    }

    /// See [`super::Backend::redeliver`].
    async fn redeliver(&self, id: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(ctx("begin redeliver"))?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM payment_events WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ctx(format!("read event {id}")))?;
        if exists.is_none() {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO event_deliveries (event_id, receiver, next_attempt_at)
             SELECT $1, name, 0 FROM event_receivers WHERE active ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ctx("queue deliveries"))?;
        let res = sqlx::query(
            "UPDATE event_deliveries SET status = 'pending', attempts = 0, next_attempt_at = 0,
                lease_id = NULL, delivered_at = NULL, delivered_ms = NULL
             WHERE event_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(ctx("redeliver"))?;
        tx.commit().await.map_err(ctx("commit redeliver"))?;
        Ok(res.rows_affected())
    }
}

/// What [`PgStore::import_sqlite`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Rows read from the SQLite database.
    pub read: u64,
    /// Rows copied into PostgreSQL.
    pub copied: u64,
    /// Rows whose md5 PostgreSQL already had (copied by an earlier run, or
    /// inserted there by the application): left as they are.
    pub already_there: u64,
    /// Rows PostgreSQL's table refused (md5, reason): SQLite's table is
    /// laxer about an amount's precision than a KHQR allows.
    pub refused: Vec<(String, String)>,
}

// Ids are assigned here (they are internal); leases are not carried over,
// as they belong to the daemon that held them.
const IMPORT_SQL: &str = "INSERT INTO payments (md5, amount, currency, expires_at, created_at,
        status, bakong_hash, from_account_id, to_account_id, paid_amount, paid_currency,
        description, paid_at, confirmed_at, next_check_at, checks, errors, last_answer,
        last_error, last_checked_at, lane, public_id, order_id, metadata, qr, late_check_at,
        redirect_url, deeplink)
    SELECT md5, amount::numeric, currency, expires_at, coalesce(created_at, now()),
        coalesce(status, 'pending'), bakong_hash, from_account_id, to_account_id,
        paid_amount::numeric, paid_currency, description, paid_at, confirmed_at,
        coalesce(next_check_at, 0), coalesce(checks, 0), coalesce(errors, 0), last_answer,
        last_error, last_checked_at, coalesce(lane, 0),
        coalesce(public_id, replace(gen_random_uuid()::text, '-', '')), order_id,
        metadata, qr, late_check_at, redirect_url, deeplink
    FROM jsonb_to_recordset($1::jsonb) AS r(md5 text, amount text, currency text,
        expires_at timestamptz, created_at timestamptz, status text, bakong_hash text,
        from_account_id text, to_account_id text, paid_amount text, paid_currency text,
        description text, paid_at timestamptz, confirmed_at timestamptz, next_check_at bigint,
        checks integer, errors integer, last_answer text, last_error text,
        last_checked_at timestamptz, lane smallint, public_id text, order_id text,
        metadata text, qr text, late_check_at bigint, redirect_url text, deeplink text)
    ON CONFLICT (md5) DO NOTHING";

const IMPORT_BATCH: i64 = 500;

/// Writes an event and one pending delivery per active receiver, inside
/// the final write's transaction.
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    e: &crate::event::NewEvent,
    payment_id: Option<i64>,
    now: DateTime<Utc>,
    key: &EventKey,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_events (id, type, md5, payload, created_at, payment_id, created_ms, mac)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&e.id)
    .bind(&e.event_type)
    .bind(&e.md5)
    .bind(&e.payload)
    .bind(now)
    .bind(payment_id)
    .bind(e.created_at.timestamp_millis())
    .bind(key.mac(&e.id, &e.event_type, &e.md5, &e.payload))
    .execute(&mut **tx)
    .await
    .map_err(ctx("record event"))?;
    sqlx::query(
        "INSERT INTO event_deliveries (event_id, receiver, next_attempt_at)
         SELECT $1, name, 0 FROM event_receivers WHERE active",
    )
    .bind(&e.id)
    .execute(&mut **tx)
    .await
    .map_err(ctx("queue event deliveries"))?;
    Ok(())
}

// Takes due deliveries no other daemon holds (SKIP LOCKED), pushes them
// past the lease and returns them with their event in one statement.
const CLAIM_DELIVERIES_SQL: &str = "WITH due AS (
        SELECT event_id, receiver FROM event_deliveries
        WHERE status = 'pending' AND next_attempt_at <= $3 AND receiver = ANY($5::text[])
        ORDER BY next_attempt_at LIMIT $4
        FOR UPDATE SKIP LOCKED),
    taken AS (
        UPDATE event_deliveries d SET next_attempt_at = $1, lease_id = $2
        FROM due WHERE d.event_id = due.event_id AND d.receiver = due.receiver
        RETURNING d.event_id, d.receiver, d.attempts)
    SELECT t.event_id, t.receiver, t.attempts, e.type, e.md5, e.payload, e.created_ms, e.mac
    FROM taken t JOIN payment_events e ON e.id = t.event_id
    ORDER BY t.event_id";

/// A text column, None when NULL or unreadable.
fn text(r: &PgRow, k: &str) -> Option<String> {
    r.try_get::<Option<String>, _>(k).ok().flatten()
}

/// A timestamptz column in the text form the SQLite backend shows.
fn time(r: &PgRow, k: &str) -> Option<String> {
    r.try_get::<Option<DateTime<Utc>>, _>(k)
        .ok()
        .flatten()
        .map(sql_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_claim_walks_the_due_index_and_looks_up_only_the_rows_it_takes() {
        let cluster = match crate::pg_cluster::TempCluster::start() {
            Ok(c) => c,
            Err(crate::pg_cluster::ClusterError::NotFound)
                if std::env::var("CI").map_or(true, |v| v.is_empty() || v == "false") =>
            {
                eprintln!("SKIPPED: no PostgreSQL server binaries");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let url = cluster.create_database().await.expect("database");
        let store = PgStore::connect(&url, Duration::from_secs(5))
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, lane, next_check_at)
             SELECT md5(i::text), 1, 'USD', i % 2, i FROM generate_series(1, 50000) AS i",
        )
        .execute(store.pool())
        .await
        .expect("rows");
        sqlx::query("ANALYZE payments")
            .execute(store.pool())
            .await
            .expect("analyze");
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN ANALYZE {CLAIM_SQL}"))
            .bind(10_000_000_i64)
            .bind(7_i64)
            .bind(30_000_i64)
            .bind(10_i64)
            .bind(900.0_f64)
            .bind(30_000_i64)
            .fetch_all(store.pool())
            .await
            .expect("plan");
        let text = plan.join("\n");
        assert!(text.contains("Index Scan using payments_due"), "{text}");
        assert!(text.contains("Index Cond: (id = ANY"), "{text}");
        assert!(
            !text.contains("Seq Scan") && !text.contains("Merge Join"),
            "{text}"
        );
        store.close().await;
    }

    #[test]
    fn passwords_never_survive_redaction() {
        let shown = redact_url("postgres://app:s3cret@db.example/shop?sslmode=require");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        let shown = redact_url("postgresql://app@db/shop?password=s3cret&sslmode=verify-full");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("sslmode=verify-full"), "{shown}");
        assert!(!redact_url("postgres://a:s3cret@[bad").contains("s3cret"));
    }

    #[test]
    fn both_url_schemes_select_postgres_and_sqlite_does_not() {
        assert!(accepts("postgres://u@h/db"));
        assert!(accepts("postgresql://u@h/db?sslmode=require"));
        assert!(!accepts("sqlite://payments.db"));
    }

    #[test]
    fn sslmode_parameters_are_understood() {
        for mode in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            let url = format!("postgresql://u@h/db?sslmode={mode}");
            assert!(PgConnectOptions::from_str(&url).is_ok(), "{mode}");
        }
        assert!(PgConnectOptions::from_str("postgres://u@h/db?sslmode=sometimes").is_err());
    }
}
