//! The payments database behind one interface: migrate, claim, record a
//! batch, counts, insert, list, and the few operations the demo and the
//! benchmark need. Every SQL statement of the project lives under this
//! module; callers speak only the domain types of [`crate::payment`].
//!
//! [`Store`] is an enum over backends, chosen by the scheme of
//! `database.url`: `sqlite://` today ([`sqlite`]); a second backend is a new
//! variant and file, not a rewrite.

pub mod sqlite;

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
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
    #[error("database.url: unknown scheme {0:?}: expected sqlite://PATH")]
    UnknownScheme(String),
    /// Another daemon holds this database.
    #[error("another bakong-poller daemon is running on this database ({holder}); stop it first, or point this one at another database.url")]
    InstanceRunning {
        /// Who holds it: pid and host as it wrote them.
        holder: String,
    },
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
}

/// One write the poller asks for.
#[derive(Debug, Clone)]
pub enum Write {
    /// Set a final status (guarded by `status = 'pending'`).
    Final {
        /// Row id.
        id: PaymentId,
        /// The status.
        status: FinalStatus,
        /// What Bakong reported, for paid and mismatch.
        confirmation: Option<Box<Confirmation>>,
        /// The last answer's kind, kept in the bookkeeping (`static_qr`...).
        answer: &'static str,
    },
    /// Keep pending and check again at `next_check_at` (guarded by the lease).
    Reschedule {
        /// Row id.
        id: PaymentId,
        /// The claim.
        lease_id: i64,
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
        /// Row id.
        id: PaymentId,
        /// The claim.
        lease_id: i64,
    },
    /// Give a claimed row back unchecked, due at `next_check_at` (the daily
    /// budget defers it); its bookkeeping is left as it was.
    Defer {
        /// Row id.
        id: PaymentId,
        /// The claim.
        lease_id: i64,
        /// Unix ms.
        next_check_at: i64,
    },
}

/// The gate's state kept in the database: the daily quota's pause and the
/// day's request spend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GateState {
    /// Unix ms the quota pause began; `None` when there is none.
    pub quota_since_ms: Option<i64>,
    /// Unix ms of the next probe during the pause.
    pub quota_next_probe_ms: Option<i64>,
    /// The UTC day (`YYYY-MM-DD`) `spend` counts.
    pub spend_day: Option<String>,
    /// Requests sent on `spend_day`.
    pub spend: i64,
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
    /// Expired rows whose last answer said "static QR".
    pub expired_static_qr: i64,
    /// Pending rows known to be static QRs (waiting for their deadline).
    pub pending_static_qr: i64,
    /// created_at of the oldest pending row.
    pub oldest_pending: Option<String>,
    /// Unix ms of the next due check.
    pub next_check_ms: Option<i64>,
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
    /// Pending rows whose amount no KHQR can carry (an older release let
    /// them in).
    pub too_precise_ids: Vec<i64>,
}

/// Looks at the existing database at `url` without creating or migrating
/// it (for `config check`).
pub async fn inspect(url: &str, busy_timeout: Duration) -> Result<Inspection, StoreError> {
    if url.starts_with("sqlite:") {
        return sqlite::inspect(url, busy_timeout).await;
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

/// The payments database.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the database at `url` (creating a missing SQLite file).
    pub async fn connect(url: &str, busy_timeout: Duration) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let s = sqlite::SqliteStore::connect(url, busy_timeout).await?;
            return Ok(Store {
                backend: Backend::Sqlite(s),
            });
        }
        // Only the scheme: the rest may carry a password.
        let scheme = url.split_once(':').map_or("", |(s, _)| s);
        Err(StoreError::UnknownScheme(scheme.to_string()))
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.migrate().await,
        }
    }

    /// The schema version applied (the newest migration that succeeded),
    /// and the newest this build knows.
    pub async fn schema_version(&self) -> Result<(Option<i64>, i64), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.schema_version().await,
        }
    }

    /// Becomes the one daemon of this database where the backend allows
    /// only one (SQLite: a second daemon would double the request ceiling),
    /// or fails naming the running one.
    pub fn lock_instance(&self) -> Result<InstanceGuard, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.lock_instance(),
        }
    }

    /// Problems with how the database is set up (e.g. SQLite not in WAL
    /// mode), one line each; empty when all is well.
    pub async fn setup_problems(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.setup_problems().await,
        }
    }

    /// Claims up to `limit` due pending rows for a lease: fresh ones first,
    /// then older ones, each by due time. Their next check moves past the
    /// lease, so a crash only delays them.
    pub async fn claim(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.claim(now_ms, lease, limit, ttl).await,
        }
    }

    /// How many pending rows are due at `now_ms`, counting at most `cap`.
    pub async fn due(&self, now_ms: i64, cap: usize) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.due(now_ms, cap).await,
        }
    }

    /// Applies writes in one short transaction. Returns, per write, whether
    /// it changed a row (a final write that finds the row no longer pending
    /// changes nothing: results are written once).
    pub async fn record(
        &self,
        writes: &[Write],
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.record(writes, now).await,
        }
    }

    /// Counts per status, the oldest pending row and the next due check.
    pub async fn counts(&self) -> Result<Counts, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.counts().await,
        }
    }

    /// Payments confirmed paid since midnight UTC.
    pub async fn paid_today(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.paid_today().await,
        }
    }

    /// The gate's state kept in the database (quota pause, day's spend).
    pub async fn gate_state(&self) -> Result<GateState, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.gate_state().await,
        }
    }

    /// Saves the quota pause: `Some((since_ms, next_probe_ms))`, or `None`
    /// when it ended.
    pub async fn set_quota_pause(&self, pause: Option<(i64, i64)>) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.set_quota_pause(pause).await,
        }
    }

    /// Adds `n` requests to the spend of UTC day `day` (`YYYY-MM-DD`; a new
    /// day starts from zero) and returns that day's total.
    pub async fn add_spend(&self, day: &str, n: i64) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.add_spend(day, n).await,
        }
    }

    /// Inserts a pending payment as a merchant would; the table's CHECKs
    /// have the last word on what is valid.
    pub async fn insert_payment(&self, p: &NewPayment) -> Result<PaymentId, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.insert_payment(p).await,
        }
    }

    /// The newest rows, optionally of one status.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.list(status, limit).await,
        }
    }

    /// One payment's status by md5, if the row exists.
    pub async fn status_of(&self, md5: &str) -> Result<Option<Status>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.status_of(md5).await,
        }
    }

    /// The newest answer recorded for any row.
    pub async fn last_answer(&self) -> Result<Option<LastAnswer>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.last_answer().await,
        }
    }

    /// When the daemon last got a readable answer (a row checked without a
    /// transient error).
    pub async fn last_answer_at(&self) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.last_answer_at().await,
        }
    }

    /// Per status: count and paid -> confirmed seconds.
    pub async fn status_summary(&self) -> Result<Vec<StatusSummary>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.status_summary().await,
        }
    }

    /// Seconds from paid_at to confirmed_at of every row with `status`,
    /// sorted (benchmark latencies).
    pub async fn confirm_latencies(&self, status: Status) -> Result<Vec<f64>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.confirm_latencies(status).await,
        }
    }

    /// Benchmark set-up: inserts `md5s` as pending 1.00 USD payments in one
    /// transaction, created evenly over the last `created_over`, and due
    /// only after `not_due_for` when given.
    pub async fn seed_backlog(
        &self,
        md5s: &[String],
        created_over: Duration,
        not_due_for: Option<Duration>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.seed_backlog(md5s, created_over, not_due_for).await,
        }
    }

    /// Benchmark set-up: makes `n` random pending rows due now.
    pub async fn make_due(&self, n: usize) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.make_due(n).await,
        }
    }

    /// Closes the connections.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(s) => s.close().await,
        }
    }
}

/// An amount as the table stores what Bakong reported: plain decimal text.
pub(crate) fn amount_text(d: Decimal) -> String {
    d.normalize().to_string()
}
