//! The daemon's counters and health, shared by its tasks: the poller and
//! the event sender write them, `/metrics`, `/healthz` and the status line
//! read them. A leaf: it knows none of its writers or readers, and the
//! Prometheus instruments reach it through [`Confirmations`].

pub mod health;
pub mod incident;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use health::{Health, Unhealthy};
pub use incident::Incidents;

/// Counters shared by the daemon's tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Rows finalized, by status.
    pub paid: AtomicU64,
    /// Mismatches recorded.
    pub mismatch: AtomicU64,
    /// Failures recorded.
    pub failed: AtomicU64,
    /// Expiries recorded.
    pub expired: AtomicU64,
    /// Late payments recorded (money found after expired, failed or
    /// cancelled), as paid_late.
    pub paid_late: AtomicU64,
    /// Late money recorded as a mismatch (counted in `mismatch` too).
    pub late_mismatch: AtomicU64,
    /// Transient errors.
    pub errors: AtomicU64,
    /// The systemic problem in force.
    pub incidents: Incidents,
    /// Whether the loop goes round and the database answers (`/healthz`).
    pub health: Health,
    /// Confirmation latencies, only when `[metrics] listen` is set.
    pub confirmations: Option<Arc<dyn Confirmations>>,
    /// Event delivery attempts by outcome.
    pub deliveries: DeliveryStats,
}

/// Where confirmation latencies go (the Prometheus histograms, when
/// `[metrics] listen` is set).
pub trait Confirmations: Send + Sync + std::fmt::Debug {
    /// A payment Bakong reported a transaction for (paid or mismatch),
    /// written at `now_ms`, created at `created_ms`, paid at `paid_ms`
    /// when Bakong said when.
    fn confirmed(&self, now_ms: i64, created_ms: i64, paid_ms: Option<i64>);
}

/// Delivery attempts by outcome, counted by this process (for
/// `/metrics`).
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Attempts the receiver took.
    pub delivered: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    /// Attempts that failed for the last time (the delivery is dead).
    pub dead: AtomicU64,
}
