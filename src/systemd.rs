//! systemd integration: `sd_notify` READY/WATCHDOG/STOPPING/STATUS.
//!
//! Every call is a no-op without `NOTIFY_SOCKET`, so the daemon runs the
//! same outside systemd.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::poller::Observer;

/// Tells systemd how the daemon is doing.
#[derive(Debug)]
pub struct SdNotify {
    watchdog: Option<Duration>,
    last_ping: Mutex<Option<Instant>>,
}

impl SdNotify {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`) from the environment.
    pub fn from_env() -> Self {
        SdNotify {
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: Mutex::new(None),
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, state: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(state) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }
}

impl Observer for SdNotify {
    fn ready(&self) {
        self.send(&[NotifyState::Ready, NotifyState::Status("running")]);
    }

    fn tick(&self) {
        let Some(interval) = self.watchdog else {
            return;
        };
        // Ping at twice the pace systemd asks for, from the scheduling loop
        // itself: a stuck loop stops pinging and gets restarted.
        let mut last = self.last_ping.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= interval / 2) {
            *last = Some(Instant::now());
            drop(last);
            self.send(&[NotifyState::Watchdog]);
        }
    }

    fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    fn status(&self, line: &str) {
        self.send(&[NotifyState::Status(line)]);
    }

    fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }
}
