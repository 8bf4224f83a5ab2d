//! The daily quota and the daily budget, both about the token rather than
//! a payment, so both sit beside the gate and hold every request.
//!
//! The quota: once Bakong says the token's daily request limit is spent
//! (errorCode 17, or a 429 whose message speaks of a daily limit), one
//! pause holds every request that needs the token; one request, the probe,
//! goes at most every `poller.quota_probe`, and at the next UTC midnight
//! (the quota can have reset then). The first answer that is not the quota
//! ends the pause. It starts with one error log and ends with one info
//! line; the daemon keeps it in the database so a restart honours it.
//!
//! The budget (`poller.daily_request_budget`): requests sent today (UTC)
//! are counted; once the budget is spent no request with the token leaves
//! until midnight UTC. [`Quota::spend_mode`] tells the scheduler when to
//! keep the rest for the payments nearest their deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::DateTime;
use tracing::{debug, error, info};

use super::Error;

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The default interval between probes during the quota pause.
pub const DEFAULT_PROBE: Duration = Duration::from_secs(15 * 60);

/// The quota pause in force: since when, and when the next probe may go
/// (both unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// When the quota was first found exhausted.
    pub since_ms: i64,
    /// No request with the token leaves before this, except this probe.
    pub next_probe_ms: i64,
}

impl Pause {
    /// `daily quota exhausted since <time>`, for STATUS= and `status`.
    pub fn describe(&self) -> String {
        format!(
            "daily quota exhausted since {}, next probe {}",
            utc_text(self.since_ms),
            utc_text(self.next_probe_ms)
        )
    }
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_text(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The UTC day of `ms` as `YYYY-MM-DD`.
pub fn utc_day(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// How the budget lets the scheduler spend now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// No budget, or spending is on course: check as usual.
    Free,
    /// Ahead of an even spread, or into the reserve: only payments past
    /// their deadline are checked now; the rest are deferred by
    /// `defer`.
    ReserveOnly {
        /// How long a deferred payment waits.
        defer: Duration,
    },
    /// Today's budget is spent: nothing goes until midnight UTC.
    Spent,
}

#[derive(Debug)]
struct State {
    probe_every: Duration,
    pause: Option<Pause>,
    budget: Option<u64>,
    /// (UTC day number, requests counted that day, saved or not).
    spent: (i64, u64),
}

/// The shared quota and budget state of a client.
#[derive(Debug)]
pub struct Quota {
    state: Mutex<State>,
    /// Bumped on every change of the pause, so the daemon knows to save it.
    version: AtomicU64,
    /// Requests counted and not yet saved by the daemon.
    unsaved: AtomicU64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            state: Mutex::new(State {
                probe_every: DEFAULT_PROBE,
                pause: None,
                budget: None,
                spent: (0, 0),
            }),
            version: AtomicU64::new(0),
            unsaved: AtomicU64::new(0),
        }
    }
}

impl Quota {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the interval between probes during a pause.
    pub fn set_probe_interval(&self, d: Duration) {
        self.lock().probe_every = d.max(Duration::from_millis(1));
    }

    /// Sets the daily request budget (`None`: no budget).
    pub fn set_budget(&self, budget: Option<u64>) {
        self.lock().budget = budget;
    }

    /// The daily request budget.
    pub fn budget(&self) -> Option<u64> {
        self.lock().budget
    }

    /// The pause in force.
    pub fn pause(&self) -> Option<Pause> {
        self.lock().pause
    }

    /// Changes with every change of the pause.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    fn next_probe_after(probe_every: Duration, now_ms: i64) -> i64 {
        let probe =
            now_ms.saturating_add(i64::try_from(probe_every.as_millis()).unwrap_or(i64::MAX));
        // A quota counted per UTC day resets at midnight: probe then too.
        let midnight = (now_ms.div_euclid(DAY_MS) + 1) * DAY_MS + 1_000;
        probe.min(midnight)
    }

    /// Takes over a pause kept in the database (a restart, or another
    /// daemon on the same database); logged once.
    pub fn restore(&self, p: Pause) {
        let mut st = self.lock();
        if st.pause.is_some() {
            return;
        }
        error!(since = %utc_text(p.since_ms), next_probe = %utc_text(p.next_probe_ms), "daily request quota exhausted (as the database records); payments stay pending, one probe at a time until it resets");
        st.pause = Some(p);
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    /// The pause ended elsewhere (the database no longer has it).
    pub fn lift(&self) {
        let mut st = self.lock();
        if let Some(p) = st.pause.take() {
            info!(since = %utc_text(p.since_ms), "daily request quota available again (as the database records); checks resume");
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called as a request with the token is about to leave: refuses it
    /// during the pause unless it is the probe, and once the budget is
    /// spent; otherwise counts it.
    pub fn admit(&self, now_ms: i64) -> Result<(), Error> {
        let mut st = self.lock();
        let probe_every = st.probe_every;
        if let Some(p) = &mut st.pause {
            if now_ms < p.next_probe_ms {
                return Err(Error::Quota {
                    message: format!("held back: {}", p.describe()),
                });
            }
            p.next_probe_ms = Self::next_probe_after(probe_every, now_ms);
            debug!(next_probe = %utc_text(p.next_probe_ms), "probing the daily quota");
            self.version.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(budget) = st.budget {
            if Self::spent_of(&st, now_ms) >= budget {
                return Err(Error::BudgetSpent { budget });
            }
        }
        Self::count(&mut st, now_ms);
        self.unsaved.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a request that needs no token (it still costs a request).
    pub fn count_sent(&self, now_ms: i64) {
        Self::count(&mut self.lock(), now_ms);
        self.unsaved.fetch_add(1, Ordering::Relaxed);
    }

    fn count(st: &mut State, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if st.spent.0 != day {
            st.spent = (day, 0);
        }
        st.spent.1 += 1;
    }

    fn spent_of(st: &State, now_ms: i64) -> u64 {
        if st.spent.0 == now_ms.div_euclid(DAY_MS) {
            st.spent.1
        } else {
            0
        }
    }

    /// Requests counted today (UTC), including those saved by earlier runs.
    pub fn spent_today(&self, now_ms: i64) -> u64 {
        Self::spent_of(&self.lock(), now_ms)
    }

    /// The requests counted since the last call, for the daemon to save.
    pub fn take_unsaved(&self) -> u64 {
        self.unsaved.swap(0, Ordering::Relaxed)
    }

    /// What the database holds for today after the daemon saved: the day's
    /// total across runs (requests counted since are added on top).
    pub fn saved(&self, now_ms: i64, total: u64) {
        let pending = self.unsaved.load(Ordering::Relaxed);
        let mut st = self.lock();
        st.spent = (now_ms.div_euclid(DAY_MS), total + pending);
    }

    /// Bakong said the quota is spent: starts the pause (logged once) and
    /// returns the error for the caller.
    pub fn exhausted(&self, now_ms: i64, message: String) -> Error {
        let mut st = self.lock();
        if st.pause.is_none() {
            let p = Pause {
                since_ms: now_ms,
                next_probe_ms: Self::next_probe_after(st.probe_every, now_ms),
            };
            error!(message = %message, next_probe = %utc_text(p.next_probe_ms), "daily request quota exhausted: every request waits; payments stay pending, one probe every poller.quota_probe until it resets");
            st.pause = Some(p);
            self.version.fetch_add(1, Ordering::Relaxed);
        }
        Error::Quota { message }
    }

    /// An answer other than the quota came back: the pause, if any, ends
    /// (one info line).
    pub fn answered(&self, now_ms: i64) {
        let mut st = self.lock();
        if let Some(p) = st.pause.take() {
            let paused = Duration::from_millis((now_ms - p.since_ms).max(0) as u64 / 1000 * 1000);
            info!(since = %utc_text(p.since_ms), paused = %humantime::format_duration(paused), "daily request quota available again; checks resume");
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether requests that can wait (the late watch, a deeplink, the
    /// spare places of a bulk request) may go at `now_ms`: no quota pause
    /// and the budget spending freely.
    pub fn free(&self, now_ms: i64) -> bool {
        self.pause().is_none() && self.spend_mode(now_ms) == Spend::Free
    }

    /// How the budget lets the scheduler spend at `now_ms`. A tenth of the
    /// budget (at least one request) is kept for payments nearest their
    /// deadline; the rest is spread evenly over the UTC day, an hour's
    /// share ahead.
    pub fn spend_mode(&self, now_ms: i64) -> Spend {
        let st = self.lock();
        let Some(budget) = st.budget else {
            return Spend::Free;
        };
        let spent = Self::spent_of(&st, now_ms);
        if spent >= budget {
            return Spend::Spent;
        }
        let reserve = (budget / 10).max(1).min(budget);
        let spreadable = (budget - reserve) as f64;
        let into_day = now_ms.rem_euclid(DAY_MS) as f64 / DAY_MS as f64;
        let line = (spreadable * (into_day + 1.0 / 24.0)).min(spreadable);
        if (spent as f64) < line {
            return Spend::Free;
        }
        // The even line passes one more request after this long.
        let per_request = Duration::from_millis((DAY_MS as f64 / spreadable.max(1.0)) as u64);
        Spend::ReserveOnly { defer: per_request }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    const NOON: i64 = 20_000 * DAY_MS + DAY_MS / 2;

    #[test]
    fn during_the_pause_only_one_probe_goes_per_interval() {
        let q = Quota::default();
        q.set_probe_interval(Duration::from_secs(60));
        assert!(q.admit(NOON).is_ok());
        let e = q.exhausted(NOON, "Daily request limit of 100 exceeded.".into());
        assert!(e.is_quota());
        assert!(q.admit(NOON + 1_000).is_err(), "held during the pause");
        assert!(q.admit(NOON + 60_000).is_ok(), "the probe goes");
        assert!(q.admit(NOON + 60_001).is_err(), "one probe per interval");
        q.answered(NOON + 60_500);
        assert_eq!(q.pause(), None);
        assert!(q.admit(NOON + 60_600).is_ok());
    }

    #[test]
    fn a_probe_is_due_at_utc_midnight_when_the_quota_can_have_reset() {
        let q = Quota::default();
        let late = NOON + DAY_MS / 2 - 10_000;
        q.exhausted(late, String::new());
        let p = q.pause().unwrap();
        assert!(p.next_probe_ms <= late + 11_000, "{p:?}");
        assert!(p.describe().starts_with("daily quota exhausted since "));
    }

    #[test]
    fn the_budget_refuses_requests_once_spent_and_resets_the_next_day() {
        let q = Quota::default();
        q.set_budget(Some(3));
        q.saved(NOON, 2);
        assert!(q.admit(NOON).is_ok());
        assert!(matches!(
            q.admit(NOON),
            Err(Error::BudgetSpent { budget: 3 })
        ));
        assert_eq!(q.spend_mode(NOON), Spend::Spent);
        assert_eq!(q.spent_today(NOON + DAY_MS), 0);
        assert!(q.admit(NOON + DAY_MS).is_ok());
    }

    #[test]
    fn the_budget_is_spread_over_the_day_with_a_reserve() {
        let q = Quota::default();
        q.set_budget(Some(2400));
        let midnight = 20_000 * DAY_MS;
        // An hour's share (90) is free at midnight; more is ahead of the line.
        q.saved(midnight, 80);
        assert_eq!(q.spend_mode(midnight), Spend::Free);
        q.saved(midnight, 100);
        assert!(matches!(q.spend_mode(midnight), Spend::ReserveOnly { .. }));
        // Late in the day all but the reserve (240) is free.
        q.saved(midnight + DAY_MS - 1, 2100);
        assert_eq!(q.spend_mode(midnight + DAY_MS - 1), Spend::Free);
        q.saved(midnight + DAY_MS - 1, 2200);
        assert!(matches!(
            q.spend_mode(midnight + DAY_MS - 1),
            Spend::ReserveOnly { .. }
        ));
    }
}
