//! Keeps the client's quota pause and the day's request spend in the
//! database, so a restart (or another daemon on the same database) honours
//! the pause and does not reset the budget: loaded at start, saved when the
//! pause changes and at most every second for the spend, and re-read then
//! to take over a pause another daemon recorded or ended.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tracing::error;

use crate::bakong::quota::utc_day;
use crate::bakong::{Client, Pause};
use crate::store::{GateState, Store};

/// How often the spend is saved and the shared state re-read.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The link between the client's quota state and the database.
#[derive(Debug)]
pub struct GateSync {
    saved_version: u64,
    last: Instant,
}

fn pause_of(g: &GateState) -> Option<Pause> {
    Some(Pause {
        since_ms: g.quota_since_ms?,
        next_probe_ms: g.quota_next_probe_ms.unwrap_or(0),
    })
}

impl GateSync {
    /// Loads what the database holds into the client (a pause is logged
    /// once by the client).
    pub async fn load(store: &Store, client: &Client) -> Self {
        let quota = client.quota();
        let now = Utc::now().timestamp_millis();
        match store.gate_state().await {
            Ok(g) => {
                if let Some(p) = pause_of(&g) {
                    quota.restore(p);
                }
                if g.spend_day.as_deref() == Some(utc_day(now).as_str()) {
                    quota.saved(now, u64::try_from(g.spend).unwrap_or(0));
                }
            }
            Err(e) => {
                error!(error = %e, "cannot read the gate state (quota pause, today's spend); starting without it")
            }
        }
        GateSync {
            saved_version: quota.version(),
            last: Instant::now(),
        }
    }

    /// Saves a changed pause at once, and the spend at most every second
    /// (always when `force`).
    pub async fn sync(&mut self, store: &Store, client: &Client, force: bool) {
        let quota = client.quota();
        let version = quota.version();
        if version != self.saved_version {
            let pause = quota.pause().map(|p| (p.since_ms, p.next_probe_ms));
            match store.set_quota_pause(pause).await {
                Ok(()) => self.saved_version = version,
                Err(e) => error!(error = %e, "cannot save the quota pause; retrying"),
            }
        }
        if !force && self.last.elapsed() < SYNC_EVERY {
            return;
        }
        self.last = Instant::now();
        let now = Utc::now().timestamp_millis();
        let n = quota.take_unsaved();
        if n > 0 {
            match store.add_spend(&utc_day(now), n as i64).await {
                Ok(total) => quota.saved(now, u64::try_from(total).unwrap_or(0)),
                Err(e) => error!(error = %e, requests = n, "cannot save today's request spend"),
            }
        }
        if force || quota.version() != self.saved_version {
            return;
        }
        // Another daemon on the same database may have started or ended it.
        if let Ok(g) = store.gate_state().await {
            match (pause_of(&g), quota.pause()) {
                (Some(p), None) => quota.restore(p),
                (None, Some(_)) => quota.lift(),
                _ => {}
            }
            self.saved_version = quota.version();
        }
    }
}
