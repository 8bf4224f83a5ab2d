//! Bulk lookups: up to 50 md5s per `check_transaction_by_md5_list`
//! request, with a fall-back to single lookups while that endpoint answers
//! 403/404 (as it does on production for some tokens).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::bakong::Error;
use crate::config::BulkMode;

/// Whether bulk lookups are in use.
#[derive(Debug)]
pub struct Bulk {
    mode: BulkMode,
    retry: Duration,
    closed_until: Mutex<Option<Instant>>,
}

impl Bulk {
    /// Bulk state for `mode`; in `auto`, a closed endpoint is retried after `retry`.
    pub fn new(mode: BulkMode, retry: Duration) -> Self {
        Bulk {
            mode,
            retry,
            closed_until: Mutex::new(None),
        }
    }

    /// Whether the next batch should go through the list endpoint.
    pub fn active(&self) -> bool {
        match self.mode {
            BulkMode::Never => false,
            BulkMode::Always => true,
            BulkMode::Auto => {
                let mut closed = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
                match *closed {
                    Some(until) if Instant::now() < until => false,
                    Some(_) => {
                        *closed = None;
                        info!("trying bulk lookups (check_transaction_by_md5_list) again");
                        true
                    }
                    None => true,
                }
            }
        }
    }

    /// The list endpoint answered 403/404. In `auto`, switches to single
    /// lookups for a while (logged once) and returns true.
    pub fn close(&self, e: &Error) -> bool {
        if self.mode != BulkMode::Auto {
            return false;
        }
        let mut closed = self.closed_until.lock().unwrap_or_else(|e| e.into_inner());
        if closed.is_none() {
            warn!(error = %e, retry_in = %humantime::format_duration(self.retry), "bulk lookups refused; using single lookups");
        }
        let now = Instant::now();
        *closed = Some(now.checked_add(self.retry).unwrap_or(now));
        true
    }
}
