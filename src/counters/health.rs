//! What `GET /healthz` judges: whether the scheduling loop goes round, and
//! whether the database answers the daemon's own queries.
//!
//! The daemon's writes (the claim every `poller.scan_interval`, the
//! recorder's batches) are the probe: on SQLite another process holding
//! the write lock makes them wait `database.busy_timeout` and fail, which
//! a read of its own would not notice (WAL readers are never blocked). A
//! query still waiting past `busy_timeout` counts as not answering even
//! before it fails. Reads by scrapes never mark the database healthy, so
//! the answer does not flap between two failed claims.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Why the daemon is not healthy: the one line `/healthz` answers with 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    /// The scheduling loop has not gone round within the limit.
    #[error("the scheduling loop has not gone round for {:.1}s (limit {}s)", .since.as_secs_f64(), .limit.as_secs_f64())]
    LoopStalled {
        /// Since the last round.
        since: Duration,
        /// The limit (half the watchdog interval, or 30 s).
        limit: Duration,
    },
    /// A query has waited longer than `database.busy_timeout`.
    #[error("the database has not answered for {:.1}s (database.busy_timeout is {}); another process may hold its locks", .waited.as_secs_f64(), humantime::format_duration(*.busy_timeout))]
    DatabaseWaiting {
        /// How long the query has waited.
        waited: Duration,
        /// `database.busy_timeout`.
        busy_timeout: Duration,
    },
    /// The last query failed.
    #[error("the database does not answer: {0}")]
    DatabaseFailed(String),
}

/// Liveness facts shared by the scheduling loop, the recorder and the
/// health check. A few atomic stores per loop round.
#[derive(Debug)]
pub struct Health {
    base: Instant,
    /// Milliseconds since `base` of the loop's last round.
    last_round_ms: AtomicU64,
    /// Milliseconds since `base` + 1 when the oldest query in flight
    /// started; 0 when none is.
    query_since_ms: AtomicU64,
    /// The last write's error, if it failed.
    db_error: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            base: Instant::now(),
            last_round_ms: AtomicU64::new(0),
            query_since_ms: AtomicU64::new(0),
            db_error: Mutex::new(None),
        }
    }
}

impl Health {
    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// The scheduling loop went round.
    pub fn round(&self) {
        self.last_round_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A query of the daemon's starts.
    pub fn query_started(&self) {
        let _ = self.query_since_ms.compare_exchange(
            0,
            self.now_ms() + 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The query ended: answered (`None`) or failed with this error.
    pub fn query_ended(&self, error: Option<&dyn std::fmt::Display>) {
        self.query_since_ms.store(0, Ordering::Relaxed);
        let mut cur = self.db_error.lock().unwrap_or_else(|e| e.into_inner());
        *cur = error.map(|e| {
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
    }

    /// Whether the database answered the daemon's last query.
    pub fn database_up(&self) -> bool {
        self.db_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    /// Whether the database answers: its last query did, and none has been
    /// waiting past `busy_timeout` (another process holding its locks).
    /// The same facts `/healthz` judges by, so the two never disagree.
    pub fn database_answers(&self, busy_timeout: Duration) -> bool {
        let since = self.query_since_ms.load(Ordering::Relaxed);
        let waiting = since > 0
            && Duration::from_millis(self.now_ms().saturating_sub(since - 1)) > busy_timeout;
        !waiting && self.database_up()
    }

    /// Ok, or the one-line reason the daemon is not healthy: the loop has
    /// not gone round within `loop_limit`, a query has waited past
    /// `busy_timeout`, or the last query failed.
    pub fn check(&self, loop_limit: Duration, busy_timeout: Duration) -> Result<(), Unhealthy> {
        let now = self.now_ms();
        let since_round =
            Duration::from_millis(now.saturating_sub(self.last_round_ms.load(Ordering::Relaxed)));
        if since_round > loop_limit {
            return Err(Unhealthy::LoopStalled {
                since: since_round,
                limit: loop_limit,
            });
        }
        let since = self.query_since_ms.load(Ordering::Relaxed);
        if since > 0 {
            let waited = Duration::from_millis(now.saturating_sub(since - 1));
            if waited > busy_timeout {
                return Err(Unhealthy::DatabaseWaiting {
                    waited,
                    busy_timeout,
                });
            }
        }
        if let Some(e) = self
            .db_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
        {
            return Err(Unhealthy::DatabaseFailed(e.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(30);

    #[test]
    fn a_failed_query_is_unhealthy_until_the_next_one_answers() {
        let h = Health::default();
        h.round();
        assert_eq!(h.check(LONG, LONG), Ok(()));
        h.query_started();
        h.query_ended(Some(&"database is\nlocked"));
        assert!(!h.database_up());
        let e = h.check(LONG, LONG).expect_err("unhealthy");
        assert_eq!(
            e.to_string(),
            "the database does not answer: database is locked"
        );
        h.query_started();
        h.query_ended(None);
        assert_eq!(h.check(LONG, LONG), Ok(()));
    }

    #[test]
    fn a_query_waiting_past_busy_timeout_is_unhealthy_before_it_fails() {
        let h = Health::default();
        h.round();
        h.query_started();
        std::thread::sleep(Duration::from_millis(30));
        let e = h
            .check(LONG, Duration::from_millis(10))
            .expect_err("unhealthy");
        assert!(matches!(e, Unhealthy::DatabaseWaiting { .. }), "{e}");
        assert_eq!(h.check(LONG, LONG), Ok(()));
    }

    #[test]
    fn a_loop_that_stopped_going_round_is_unhealthy() {
        let h = Health::default();
        h.round();
        std::thread::sleep(Duration::from_millis(30));
        let e = h
            .check(Duration::from_millis(10), LONG)
            .expect_err("unhealthy");
        assert!(e.to_string().contains("scheduling loop"), "{e}");
    }
}
