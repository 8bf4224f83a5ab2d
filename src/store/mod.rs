//! The payments database behind one interface: migrate, claim, record a
//! batch, counts, insert, list, the gate's shared state and the event
//! outbox. Every SQL statement of the product lives under this module;
//! callers speak only the domain types of [`crate::payment`].
//!
//! [`Backend`] is the interface (every operation, and the logic written
//! once above the dialects); [`Store`] holds one, chosen by the scheme of
//! `database.url`: `sqlite://` ([`sqlite`], the embedded default, one daemon
//! per database) or `postgres://` / `postgresql://` ([`postgres`], several
//! daemons may share it). A backend holds only its SQL and what differs by
//! dialect.

mod backend;
#[macro_use]
mod common;
pub mod pg_token;
pub mod postgres;
pub mod sqlite;

pub use backend::{
    AttemptListRow, Backend, Batch, CancelOutcome, Created, DeliveryListRow, EventHead, WriteTx,
    WrittenRow,
};
pub(crate) use backend::{ATTEMPT_COLUMNS, DELIVERY_COLUMNS};
pub use common::{Common, TxCommon};

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::money::Currency;
use crate::payment::{Confirmation, FinalStatus, Lane, PaymentId, Status};

/// A database error, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement or connection failed.
    #[error("database: {what}: {source}")]
    Sql {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// `database.url` names no backend this build knows (the scheme).
    #[error("database.url: unknown scheme {0:?}: expected sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnknownScheme(String),
    /// Another daemon holds this database.
    #[error("another bakong-poller daemon is running on this database ({holder}); stop it first, or point this one at another database.url")]
    InstanceRunning {
        /// Who holds it: pid and host as it wrote them.
        holder: String,
    },
    /// `import` copies into PostgreSQL only.
    #[error("database.url: import copies into a PostgreSQL database; set database.url to postgres://USER@HOST/DATABASE")]
    ImportTarget,
    /// `import --from` reads SQLite only.
    #[error("--from: import reads a SQLite database; give --from sqlite://PATH")]
    ImportSource,
    /// A file beside the database could not be made or read.
    #[error("database: {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A row handed to the poller by a claim. Values are as stored; the poller
/// validates them.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Row id.
    pub id: PaymentId,
    /// The claim holding the row.
    pub lease_id: i64,
    /// md5 column.
    pub md5: String,
    /// amount column, as stored.
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
    /// The last answer's kind (`not_found`, `static_qr`, an error kind...).
    pub last_answer: Option<String>,
    /// qr column (the KHQR string), when the row has one.
    pub qr: Option<String>,
    /// The status the row had when claimed: `pending`, or for the late
    /// watch `expired`, `failed` or `cancelled`.
    pub from: Status,
    /// When the row became final (its confirmed_at), unix ms; late watch
    /// only.
    pub final_ms: Option<i64>,
}

/// The row a write is for, as its claim saw it. A write lands only on the
/// row with this id that is still pending, still held by this claim and
/// still has this md5, amount and currency: a row deleted meanwhile, one
/// that took a deleted row's id, or one whose values the application
/// changed is never written with another payment's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Row id.
    pub id: PaymentId,
    /// The claim.
    pub lease_id: i64,
    /// md5 as claimed.
    pub md5: String,
    /// amount as claimed, exactly as stored (text).
    pub amount: String,
    /// currency as claimed.
    pub currency: String,
    /// The status as claimed (`pending`; for the late watch the final
    /// status it is watched in).
    pub from: Status,
}

impl Claimed {
    /// The guard of every write for this claimed row.
    pub fn held(&self) -> Held {
        Held {
            id: self.id,
            lease_id: self.lease_id,
            md5: self.md5.clone(),
            amount: self.amount.clone(),
            currency: self.currency.clone(),
            from: self.from,
        }
    }
}

/// One write the poller asks for; each is guarded by [`Held`].
#[derive(Debug, Clone)]
pub enum Write {
    /// Set a final status.
    Final {
        /// The row as claimed.
        row: Held,
        /// The status.
        status: FinalStatus,
        /// What Bakong reported, for paid and mismatch.
        confirmation: Option<Box<Confirmation>>,
        /// The last answer's kind, kept in the bookkeeping (`static_qr`...).
        answer: &'static str,
    },
    /// Keep pending and check again at `next_check_at`.
    Reschedule {
        /// The row as claimed.
        row: Held,
        /// Unix ms.
        next_check_at: i64,
        /// `not_found`, `failed`, `static_qr` or an error kind.
        answer: &'static str,
        /// The error text, for transient errors.
        error: Option<String>,
        /// Whether this was a transient error (counts up `errors`).
        transient: bool,
        /// The lane the row moves to.
        lane: Lane,
    },
    /// Give a claimed row back unchecked (shutdown, a closed endpoint).
    Release {
        /// The row as claimed.
        row: Held,
    },
    /// Give a claimed row back unchecked, due at `next_check_at` (the daily
    /// budget defers it); its bookkeeping is left as it was.
    Defer {
        /// The row as claimed.
        row: Held,
        /// Unix ms.
        next_check_at: i64,
    },
    /// A late-watched row (expired, failed, cancelled) stays as it is:
    /// its next late check at `next` (unix ms), or none (`None`: the watch
    /// is over).
    Late {
        /// The row as claimed by the late watch.
        row: Held,
        /// Unix ms of the next late check.
        next: Option<i64>,
    },
}

impl Write {
    /// The row this write is for.
    pub fn row(&self) -> &Held {
        match self {
            Write::Final { row, .. }
            | Write::Reschedule { row, .. }
            | Write::Release { row }
            | Write::Defer { row, .. }
            | Write::Late { row, .. } => row,
        }
    }

    /// The guard's fields as one JSON object, for the batched statements.
    pub(crate) fn guard_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let r = self.row();
        let mut m = serde_json::Map::new();
        m.insert("id".into(), r.id.0.into());
        m.insert("lease".into(), r.lease_id.into());
        m.insert("md5".into(), r.md5.clone().into());
        m.insert("amount".into(), r.amount.clone().into());
        m.insert("currency".into(), r.currency.clone().into());
        m
    }
}

/// A write of the batched kinds as the JSON row its statement reads: the
/// guard, plus what the write sets. Error text is made storable (no NUL,
/// which neither PostgreSQL's text nor its jsonb can hold; at most 1,000
/// characters), so an API's odd message cannot sink the batch.
pub(crate) fn batch_json(w: &Write) -> serde_json::Value {
    let mut m = w.guard_json();
    match w {
        Write::Reschedule {
            next_check_at,
            answer,
            error,
            transient,
            lane,
            ..
        } => {
            m.insert("next".into(), (*next_check_at).into());
            m.insert("answer".into(), (*answer).into());
            m.insert("error".into(), error.as_deref().map(storable_text).into());
            m.insert("transient".into(), i64::from(*transient).into());
            m.insert("lane".into(), lane.as_i64().into());
        }
        Write::Defer { next_check_at, .. } => {
            m.insert("next".into(), (*next_check_at).into());
        }
        Write::Final { .. } | Write::Release { .. } | Write::Late { .. } => {}
    }
    serde_json::Value::Object(m)
}

/// How long an idempotency key of the API is kept (at least 24 h).
pub const IDEMPOTENCY_KEEP_MS: i64 = 25 * 3_600_000;

/// Whether a statement failed on a unique constraint (SQLite 2067/1555,
/// PostgreSQL 23505).
pub fn unique_violation(e: &StoreError) -> bool {
    let StoreError::Sql {
        source: sqlx::Error::Database(db),
        ..
    } = e
    else {
        return false;
    };
    matches!(
        db.code().as_deref(),
        Some("23505") | Some("2067") | Some("1555")
    )
}

/// When a statement was refused by the table's own rules (a CHECK, a
/// trigger's refusal, a value the column cannot read), its message.
pub fn refused_by_table(e: &StoreError) -> Option<String> {
    let StoreError::Sql {
        source: sqlx::Error::Database(db),
        ..
    } = e
    else {
        return None;
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let refused = matches!(code.as_str(), "275" | "1811" | "1299" | "19")
        || (code.starts_with("23") && code != "23505")
        || code.starts_with("22");
    refused.then(|| db.message().to_string())
}

/// Whether a failed write failed on its own values (a constraint, a value
/// the column cannot hold, a trigger's refusal), so it is that row's error;
/// otherwise (a lock timeout, a deadlock, a busy database, a lost
/// connection) the whole batch is retried later, as a database outage.
pub(crate) fn own_failure(e: &StoreError) -> bool {
    let StoreError::Sql {
        source: sqlx::Error::Database(db),
        ..
    } = e
    else {
        return false;
    };
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    // SQLite: busy and locked (and their extended codes) are transient.
    if matches!(code.as_str(), "5" | "6" | "261" | "262" | "517" | "773") {
        return false;
    }
    // PostgreSQL: connection (08), resources (53), serialization and
    // deadlock (40), lock not available (55P03), operator intervention (57).
    !(code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("40")
        || code == "55P03"
        || code.starts_with("57"))
}

/// Text as both databases can store it: NUL replaced, at most 1,000
/// characters (cut on a character boundary).
pub(crate) fn storable_text(text: &str) -> String {
    text.chars()
        .take(1000)
        .map(|c| if c == '\0' { '\u{fffd}' } else { c })
        .collect()
}

/// What [`Backend::record`] did with one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The row was written.
    Written,
    /// Nothing to write: the row is no longer the one claimed (final,
    /// deleted, re-claimed or changed). Results are written once.
    Stale,
    /// This write failed on its own (the database refused its values) and
    /// was rolled back alone; the others of its batch went through.
    Failed(String),
}

impl Applied {
    /// Whether the row was written.
    pub fn written(&self) -> bool {
        matches!(self, Applied::Written)
    }
}

/// The gate's state kept in the database, shared by every daemon on it: the
/// "not before" instant of a 429, the learned rate, the daily quota's pause
/// and the day's request spend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct GateState {
    /// Unix ms before which no request may leave (a 429's window).
    pub not_before_ms: Option<i64>,
    /// Unix ms that window was recorded.
    pub not_before_set_ms: Option<i64>,
    /// The learned requests per second, for all daemons together.
    pub rate: Option<f64>,
    /// Bumped on each cut of `rate` (a 429), so a climb never undoes one.
    pub rate_epoch: i64,
    /// Unix ms the quota pause began; `None` when there is none.
    pub quota_since_ms: Option<i64>,
    /// Unix ms of the next probe during the pause.
    pub quota_next_probe_ms: Option<i64>,
    /// The UTC day (`YYYY-MM-DD`) `spend` counts.
    pub spend_day: Option<String>,
    /// Requests sent on `spend_day`.
    pub spend: i64,
}

/// The columns of [`GateState`], in both dialects.
pub(crate) const GATE_COLUMNS: &str = "not_before_ms, not_before_set_ms, rate, rate_epoch, \
    quota_since_ms, quota_next_probe_ms, spend_day, spend";

/// Unix ms after which a silent daemon's heartbeat row is deleted (and
/// how far in the future one may claim to be before it is deleted too).
pub(crate) const MEMBER_FORGET_MS: i64 = 60_000;

/// How recent a daemon's heartbeat must be for it to count as live (the
/// heartbeat comes every second).
pub const LIVE_MS: i64 = 3_000;

/// Live daemons as [`MemberReceivers`], from rows of (host, pid, receivers
/// as stored JSON); a list that does not read counts as none.
pub fn member_receivers(rows: Vec<(String, i64, String)>) -> Vec<MemberReceivers> {
    rows.into_iter()
        .map(|(host, pid, receivers)| {
            let mut receivers: Vec<ReceiverConfig> =
                serde_json::from_str(&receivers).unwrap_or_default();
            receivers.sort();
            MemberReceivers {
                host,
                pid,
                receivers,
            }
        })
        .collect()
}

/// A daemon sharing the gate: who it is, for the heartbeat table.
#[derive(Debug, Clone)]
pub struct GateMember {
    /// Random per process.
    pub instance: String,
    /// The host's name.
    pub host: String,
    /// The process id.
    pub pid: i64,
    /// Its receivers: a receiver stays active while a live daemon has it.
    pub receivers: Vec<ReceiverConfig>,
}

/// One receiver a daemon has: its name (`webhook`, `hook`) and a short
/// fingerprint of its settings (never a secret), so daemons configured
/// differently can be told apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct ReceiverConfig {
    /// `webhook` or `hook`.
    pub name: String,
    /// The first 12 hex digits of a SHA-256 over its settings.
    pub config: String,
}

/// A live daemon and the receivers it has, for the conflict report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReceivers {
    /// Its host.
    pub host: String,
    /// Its pid.
    pub pid: i64,
    /// Its receivers, sorted.
    pub receivers: Vec<ReceiverConfig>,
}

/// What differs between the live daemons' receivers, one line each; empty
/// when they all have the same.
pub fn receiver_conflicts(members: &[MemberReceivers]) -> Vec<String> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    if members.iter().all(|m| m.receivers == first.receivers) {
        return Vec::new();
    }
    let show = |m: &MemberReceivers| {
        let list: Vec<String> = m
            .receivers
            .iter()
            .map(|r| format!("{} {}", r.name, r.config))
            .collect();
        let who = if m.pid == 0 {
            m.host.clone()
        } else {
            format!("pid {} on {}", m.pid, m.host)
        };
        format!(
            "{who}: {}",
            if list.is_empty() {
                "no receiver".to_string()
            } else {
                list.join(", ")
            }
        )
    };
    vec![format!(
        "the daemons on this database have different [webhook]/[hook] settings ({}): \
         each event goes to every receiver any live daemon has, and a delivery is made by \
         whichever daemon has that receiver, so give every daemon the same [webhook] and [hook]",
        members.iter().map(show).collect::<Vec<_>>().join("; ")
    )]
}

/// Counts per status and scheduling facts, for `status` and summaries.
#[derive(Debug, Clone, Default, Serialize)]
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
    /// Cancelled rows.
    pub cancelled: i64,
    /// Paid-late rows.
    pub paid_late: i64,
    /// Expired rows whose last answer said "static QR" (filled by `status`
    /// through [`Common::expired_static_qr`]: it reads the whole history, so
    /// the periodic counts leave it out).
    pub expired_static_qr: i64,
    /// Pending rows known to be static QRs (waiting for their deadline).
    pub pending_static_qr: i64,
    /// created_at of the oldest pending row.
    pub oldest_pending: Option<String>,
    /// Unix ms of the next due check.
    pub next_check_ms: Option<i64>,
}

impl Counts {
    /// Sets the count of `status`.
    pub fn set(&mut self, status: Status, n: i64) {
        *match status {
            Status::Pending => &mut self.pending,
            Status::Paid => &mut self.paid,
            Status::Mismatch => &mut self.mismatch,
            Status::Failed => &mut self.failed,
            Status::Expired => &mut self.expired,
            Status::Cancelled => &mut self.cancelled,
            Status::PaidLate => &mut self.paid_late,
        } = n;
    }

    /// The count of `status`.
    pub fn get(&self, status: Status) -> i64 {
        match status {
            Status::Pending => self.pending,
            Status::Paid => self.paid,
            Status::Mismatch => self.mismatch,
            Status::Failed => self.failed,
            Status::Expired => self.expired,
            Status::Cancelled => self.cancelled,
            Status::PaidLate => self.paid_late,
        }
    }
}

/// The pending rows at a moment, for the metrics.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PendingFacts {
    /// Pending rows.
    pub pending: i64,
    /// Pending rows past their deadline (`expires_at`, or created +
    /// `poller.payment_ttl`, plus `poller.expiry_grace`): they should have
    /// been decided by now.
    pub overdue: i64,
    /// created_at of the oldest pending row, unix ms.
    pub oldest_created_ms: Option<i64>,
}

/// A payment to insert, as a merchant's application would.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// md5 of the KHQR string.
    pub md5: String,
    /// Expected amount, stored as written.
    pub amount: String,
    /// Expected currency.
    pub currency: Currency,
    /// When it expires (None: created + `poller.payment_ttl`).
    pub expires_at: Option<DateTime<Utc>>,
    /// The shop's order reference.
    pub order_id: Option<String>,
    /// The shop's JSON object (text), at most 4 KB.
    pub metadata: Option<String>,
    /// The KHQR string (its md5 is `md5`).
    pub qr: Option<String>,
    /// The public id; `None`: the table makes one.
    pub public_id: Option<String>,
    /// Where the checkout page sends the customer once paid.
    pub redirect_url: Option<String>,
}

/// A row as `list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentRow {
    /// Row id.
    pub id: PaymentId,
    /// md5.
    pub md5: String,
    /// Expected amount, as stored.
    pub amount: String,
    /// Expected currency, as stored.
    pub currency: String,
    /// Status.
    pub status: Status,
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
    /// The unguessable id for links.
    pub public_id: String,
    /// The shop's order reference.
    pub order_id: Option<String>,
    /// The shop's JSON object.
    pub metadata: Option<serde_json::Value>,
    /// The KHQR string, when kept.
    pub qr: Option<String>,
    /// Where the checkout page sends the customer once paid.
    pub redirect_url: Option<String>,
    /// Free text Bakong reported.
    pub description: Option<String>,
    /// The Bakong deeplink of the QR ('' when Bakong gave none).
    pub deeplink: Option<String>,
}

/// An API key as stored: never the secret, only its SHA-256.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// `key_` + 16 hex; also the first part of the key itself.
    pub id: String,
    /// What the operator called it.
    pub name: String,
    /// `read` or `read write`.
    pub scopes: String,
    /// SHA-256 of the secret part, hex.
    #[serde(skip)]
    pub key_hash: String,
    /// Unix ms.
    pub created_ms: i64,
    /// Unix ms; set: refused.
    pub revoked_ms: Option<i64>,
}

/// Which payments a page of the API's list holds.
#[derive(Debug, Clone, Default)]
pub struct PageFilter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only this order.
    pub order_id: Option<String>,
    /// Only rows created at or after (unix ms).
    pub created_after_ms: Option<i64>,
    /// Only rows created before (unix ms).
    pub created_before_ms: Option<i64>,
    /// Only rows with a smaller id (the cursor, newest first).
    pub before_id: Option<i64>,
    /// Only the row with this public id.
    pub public_id: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// Which rows `cancel` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The integer row id.
    Id(i64),
    /// The public id.
    PublicId(String),
    /// The md5.
    Md5(String),
    /// Every row of an order.
    OrderId(String),
}

impl Target {
    /// The one of (id, public_id, md5, order_id) this target names, the
    /// others `None`: the cancel statement matches any that is given.
    pub(crate) fn sql_parts(&self) -> (Option<i64>, Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Target::Id(id) => (Some(*id), None, None, None),
            Target::PublicId(p) => (None, Some(p), None, None),
            Target::Md5(m) => (None, None, Some(m), None),
            Target::OrderId(o) => (None, None, None, Some(o)),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Id(id) => write!(f, "payment {id}"),
            Target::PublicId(p) => write!(f, "payment {p}"),
            Target::Md5(m) => write!(f, "md5 {m}"),
            Target::OrderId(o) => write!(f, "order {o:?}"),
        }
    }
}

/// One row of `report`: a final row's day, status and money.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    /// UTC day (`YYYY-MM-DD`) of paid_at, else confirmed_at.
    pub day: String,
    /// Status column.
    pub status: String,
    /// Expected amount, as text.
    pub amount: String,
    /// Expected currency.
    pub currency: String,
    /// Amount paid, as text.
    pub paid_amount: Option<String>,
    /// Currency paid.
    pub paid_currency: Option<String>,
}

/// The late payments, for `status` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LateSummary {
    /// Rows moved to paid_late today (UTC), by the late watch.
    pub paid_late_today: i64,
    /// Rows moved from expired, failed or cancelled to mismatch today.
    pub mismatch_late_today: i64,
    /// The newest: (md5, status, confirmed_at UTC text).
    pub last: Option<(String, String, String)>,
}

/// The daemon's bookkeeping of one payment (not part of the public
/// contract; for `status`-like tools and tests).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Bookkeeping {
    /// Unix ms of the next check (a claim pushes it past the lease).
    pub next_check_at: i64,
    /// Answers received.
    pub checks: i64,
    /// Consecutive transient errors.
    pub errors: i64,
    /// The last answer's kind (`not_found`, `static_qr`, an error kind).
    pub last_answer: Option<String>,
    /// The last transient error.
    pub last_error: Option<String>,
}

/// Per final status: how many, and paid -> confirmed seconds (demo summary).
#[derive(Debug, Clone, Serialize)]
pub struct StatusSummary {
    /// The status.
    pub status: Status,
    /// Rows with it.
    pub count: i64,
    /// Mean seconds from paid_at to confirmed_at, where both are known.
    pub avg_confirm_s: Option<f64>,
    /// Longest such time.
    pub max_confirm_s: Option<f64>,
}

/// The newest answer the daemon recorded for any row.
#[derive(Debug, Clone, Serialize)]
pub struct LastAnswer {
    /// When (UTC text).
    pub at: String,
    /// Its kind (`not_found`, `endpoint_not_found`, ...).
    pub answer: Option<String>,
    /// The error, when it was one.
    pub error: Option<String>,
}

/// What `config check` learns about a database without changing it.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// The journal mode in force (`wal` expected on SQLite).
    pub journal_mode: String,
    /// Applied migrations this build does not know (a newer release's).
    pub unknown_migrations: Vec<i64>,
    /// Migrations recorded as failed.
    pub failed_migrations: Vec<i64>,
    /// Migrations applied from a file other than this build's ("version description").
    pub altered_migrations: Vec<String>,
    /// Migrations not applied yet ("version description").
    pub pending_migrations: Vec<String>,
    /// States `run` cannot get out of by itself, one line each (e.g. on
    /// PostgreSQL: no schema for the tables, or someone else's `payments`
    /// table where ours would go).
    pub problems: Vec<String>,
    /// Pending rows whose amount no KHQR can carry (an older release let
    /// them in).
    pub too_precise_ids: Vec<i64>,
    /// The live daemons (host, pid, receivers as stored JSON).
    pub live_receivers: Vec<(String, i64, String)>,
}

/// Looks at the existing database at `url` without creating or migrating
/// it (for `config check`).
pub async fn inspect(url: &str, busy_timeout: Duration) -> Result<Inspection, StoreError> {
    if url.starts_with("sqlite:") {
        return sqlite::inspect(url, busy_timeout).await;
    }
    if postgres::accepts(url) {
        return postgres::inspect(url, busy_timeout).await;
    }
    let scheme = url.split_once(':').map_or("", |(s, _)| s);
    Err(StoreError::UnknownScheme(scheme.to_string()))
}

/// Held while this process is the daemon of a database that allows one
/// daemon only (SQLite): released on drop, or by the OS if the process dies.
#[derive(Debug)]
pub struct InstanceGuard {
    _file: Option<std::fs::File>,
}

/// The payments database: one [`Backend`] (the operations are its
/// methods, reached through `Deref`), shared by clones.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

/// The daemon's secret for its events: every event it writes carries a MAC
/// over its id, type, md5 and payload keyed by this, and the sender
/// delivers only events whose MAC verifies, so a row someone else put in
/// `payment_events` is never signed and sent as the daemon's. Kept in the
/// database's `daemon_secret` table (on PostgreSQL out of every other
/// role's reach, see [`postgres::PgStore::migrate`]), made by the first
/// daemon that needs it.
#[derive(Clone)]
pub struct EventKey(Vec<u8>);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(***)")
    }
}

impl EventKey {
    /// A new random key (256 bits from the OS's generator).
    pub(crate) fn generate() -> Self {
        let mut k = vec![0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut k[..]);
        EventKey(k)
    }

    /// The key as stored; `None` when too short to be one of ours.
    pub(crate) fn from_stored(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 32).then_some(EventKey(bytes))
    }

    /// The stored form.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn hmac(
        &self,
        id: &str,
        event_type: &str,
        md5: &str,
        payload: &str,
    ) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac;
        // A 32-byte key always fits HMAC-SHA256; new_from_slice takes any length.
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        // Length-prefixed, so no two different events read the same.
        for part in [id, event_type, md5, payload] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// The MAC an event written by the daemon carries (base64).
    pub fn mac(&self, id: &str, event_type: &str, md5: &str, payload: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac;
        base64::engine::general_purpose::STANDARD.encode(
            self.hmac(id, event_type, md5, payload)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `mac` is this key's MAC of the event (compared in constant
    /// time).
    pub fn verifies(
        &self,
        id: &str,
        event_type: &str,
        md5: &str,
        payload: &str,
        mac: Option<&str>,
    ) -> bool {
        use base64::Engine as _;
        use hmac::Mac;
        let Some(Ok(given)) =
            mac.map(|m| base64::engine::general_purpose::STANDARD.decode(m.as_bytes()))
        else {
            return false;
        };
        self.hmac(id, event_type, md5, payload)
            .verify_slice(&given)
            .is_ok()
    }
}

impl Store {
    /// Opens the database at `url` (creating a missing SQLite file).
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        let backend: Arc<dyn Backend> = if url.starts_with("sqlite:") {
            Arc::new(sqlite::SqliteStore::connect(url, busy_timeout).await?)
        } else if postgres::accepts(url) {
            Arc::new(postgres::PgStore::connect(url, busy_timeout).await?)
        } else {
            // Only the scheme: the rest may carry a password.
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            return Err(StoreError::UnknownScheme(scheme.to_string()));
        };
        Ok(Store { backend })
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

/// Where one delivery of an event (to one receiver) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempted again at its due time.
    Pending,
    /// The receiver took it (2xx, or the hook exited 0).
    Delivered,
    /// Every attempt failed; `events redeliver` tries again.
    Dead,
}

impl DeliveryStatus {
    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
}

/// A delivery status text that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery status {0:?}: expected pending, delivered or dead")]
pub struct UnknownDeliveryStatus(pub String);

impl std::str::FromStr for DeliveryStatus {
    type Err = UnknownDeliveryStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(|| UnknownDeliveryStatus(s.to_string()))
    }
}

/// A delivery handed to the sender by a claim, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The event id (`msg_...`), sent as `webhook-id`.
    pub event_id: String,
    /// `webhook` or `hook`.
    pub receiver: String,
    /// The claim holding it.
    pub lease_id: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The event type.
    pub event_type: String,
    /// The payment's md5.
    pub md5: String,
    /// The body, as stored.
    pub payload: String,
    /// When the event was recorded, unix ms.
    pub created_ms: i64,
    /// The event's MAC as stored (see [`EventKey`]).
    pub mac: Option<String>,
}

/// The events written before the event key existed that the first daemon
/// to make the key may sign: those still waiting for a delivery whose type
/// is their row's status; [`adoptable`] then requires their payload to name
/// that row's md5 and status (events of an older release). Any other
/// unsigned row is never delivered.
pub(crate) const ADOPT_EVENTS_SQL: &str = "SELECT e.id, e.type, e.md5, e.payload
    FROM payment_events e
    WHERE e.mac IS NULL
      AND EXISTS (SELECT 1 FROM event_deliveries d
                  WHERE d.event_id = e.id AND d.status = 'pending')
      AND EXISTS (SELECT 1 FROM payments p
                  WHERE p.id = e.payment_id AND p.md5 = e.md5
                    AND 'payment.' || p.status = e.type)";

/// Whether an unsigned event's payload says what its type and md5 say
/// (`data.md5`, `data.status`), so it may be signed as the daemon's.
pub(crate) fn adoptable(event_type: &str, md5: &str, payload: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(payload) else {
        return false;
    };
    let status = event_type.strip_prefix("payment.").unwrap_or_default();
    v["type"] == event_type && v["data"]["md5"] == md5 && v["data"]["status"] == status
}

pub(crate) fn bad_event_key() -> StoreError {
    StoreError::Sql {
        what: "read the event key".into(),
        source: sqlx::Error::Configuration(
            "daemon_secret.event_key is not a key the daemon made (shorter than 32 bytes): \
             delete that row and restart the daemon to make a new one"
                .into(),
        ),
    }
}

/// The error a delivery of an event the daemon did not write is closed with.
pub const FORGED_EVENT: &str =
    "not delivered: this event was not written by the daemon (its MAC does not verify)";

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub latency_ms: i64,
    /// The HTTP status, for a webhook that answered (the exit code for a hook).
    pub http_status: Option<i64>,
    /// What went wrong, if it did.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub answer: Option<String>,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Taken by the receiver.
    Delivered,
    /// Attempted again at this unix ms.
    Retry(i64),
    /// No attempts left.
    Dead,
}

/// Deliveries per status, for `status` and the summary event.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DeliveryCounts {
    /// Not delivered yet.
    pub pending: i64,
    /// Delivered.
    pub delivered: i64,
    /// Given up on.
    pub dead: i64,
}

/// One receiver's delivery of an event.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    /// `webhook` or `hook`.
    pub receiver: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When it is attempted next (pending only), unix ms.
    pub next_attempt_ms: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was delivered (UTC text).
    pub delivered_at: Option<String>,
}

/// One attempt as `events show` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    /// `webhook` or `hook`.
    pub receiver: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When (UTC text).
    pub at: String,
    /// How long it took.
    pub latency_ms: i64,
    /// HTTP status (webhook) or exit code (hook).
    pub http_status: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
    /// The first bytes of the answer.
    pub answer: Option<String>,
}

/// An event with its deliveries (`events list`), and with its payload and
/// attempts (`events show`).
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    /// `msg_...`.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payment's md5.
    pub md5: String,
    /// When recorded (UTC text).
    pub created_at: String,
    /// Per receiver.
    pub deliveries: Vec<DeliveryRow>,
    /// The body (`events show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Every attempt (`events show` only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRow>,
}

pub(crate) use crate::money::amount_text;

/// A time as the store shows it (UTC, milliseconds): what both dialects'
/// rows are read as, and what SQLite's daemon-written columns hold.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Reads back a time as the store writes it (or without fractions); `None`
/// for anything else.
pub fn parse_time_text(s: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The error-context adapter every statement uses: what was being done.
pub(crate) fn ctx(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Sql { what, source }
}

/// A status column read back, or an error naming `what`.
pub(crate) fn status_from(text: &str, what: &str) -> Result<Status, StoreError> {
    text.parse::<Status>().map_err(|e| StoreError::Sql {
        what: what.to_string(),
        source: sqlx::Error::Decode(Box::new(e)),
    })
}
