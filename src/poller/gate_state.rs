//! Keeps the gate's state in the database, where a restarted daemon and
//! every other daemon on the same database find it (issues 10 and 13):
//! - a 429's window and the rate it cut: recorded by the client before its
//!   next request ([`StoreShare`]), read before each request while other
//!   daemons are live, loaded at start (a restart honours a `Retry-After`
//!   announced to the process before it and starts at the learned rate);
//! - the live daemons: each heartbeats every second; while several are
//!   live they take their requests from one schedule of slots 1/rate apart
//!   ([`StoreShare`]'s reservations), and a daemon that cannot reach it
//!   paces itself at 1/n of the learned rate and of the ceiling;
//! - the daily quota's pause and the day's request spend: loaded at start,
//!   the pause saved when it changes, the spend at most every second, and
//!   the shared record re-read then to take over what others recorded.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::bakong::gate::{BoxFuture, GateShare, Reserved, SharedGate};
use crate::bakong::quota::utc_day;
use crate::bakong::{Client, Pause};
use crate::store::{GateMember, GateState, Store};

/// How often the heartbeat goes, the spend is saved and the shared state
/// re-read.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How many gaps ahead the shared schedule may run: each daemon holds at
/// most a slot or two at a time, so a next free slot further ahead was
/// left by a clock far ahead (or a rate since raised) and counts as free.
const SLOTS_AHEAD: i64 = 64;

/// A daemon silent for this long no longer counts as live.
const LIVE_MS: i64 = crate::store::LIVE_MS;

/// The gate's state as the database keeps it, for the client.
#[derive(Debug)]
pub struct StoreShare {
    store: Store,
    /// One error log per outage, not one per request.
    failing: std::sync::atomic::AtomicBool,
}

impl StoreShare {
    fn failed(&self, what: &str, e: &crate::store::StoreError) {
        if !self
            .failing
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            error!(error = %e, "cannot {what}; this daemon goes on with the gate state it knows");
        }
    }

    fn answered(&self) {
        self.failing
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

fn shared_of(g: &GateState) -> SharedGate {
    SharedGate {
        not_before_ms: g.not_before_ms,
        rate: g.rate,
        epoch: g.rate_epoch,
    }
}

impl GateShare for StoreShare {
    fn not_before_ms(&self) -> BoxFuture<'_, Option<i64>> {
        Box::pin(async move {
            match self.store.gate_state().await {
                Ok(g) => {
                    self.answered();
                    g.not_before_ms
                }
                Err(e) => {
                    self.failed("read the shared 429 window", &e);
                    None
                }
            }
        })
    }

    fn cut(&self, not_before_ms: i64, rate: Option<f64>) -> BoxFuture<'_, Option<SharedGate>> {
        Box::pin(async move {
            let now = Utc::now().timestamp_millis();
            match self.store.gate_cut(not_before_ms, now, rate).await {
                Ok(g) => {
                    self.answered();
                    Some(shared_of(&g))
                }
                Err(e) => {
                    self.failed("record the 429 for the other daemons", &e);
                    None
                }
            }
        })
    }

    fn reserve(&self, gap: Duration) -> BoxFuture<'_, Option<Reserved>> {
        Box::pin(async move {
            let now = Utc::now().timestamp_millis();
            // Whole ms, rounded up, so the slots never come closer than
            // the gap asks.
            let gap_ms = i64::try_from(gap.as_micros().div_ceil(1_000)).unwrap_or(i64::MAX / 4);
            match self
                .store
                .gate_reserve(now, gap_ms, gap_ms.saturating_mul(SLOTS_AHEAD))
                .await
            {
                Ok((at_ms, not_before_ms)) => {
                    self.answered();
                    Some(Reserved {
                        at_ms,
                        not_before_ms,
                    })
                }
                Err(e) => {
                    self.failed("reserve a request slot (pacing at this daemon's share)", &e);
                    None
                }
            }
        })
    }
}

/// The link between the client's gate and quota state and the database.
#[derive(Debug)]
pub struct GateSync {
    saved_version: u64,
    last: Instant,
    member: GateMember,
    /// Also the one-error-per-outage flag of the gate's database writes.
    share: Arc<StoreShare>,
}

fn pause_of(g: &GateState) -> Option<Pause> {
    Some(Pause {
        since_ms: g.quota_since_ms?,
        next_probe_ms: g.quota_next_probe_ms.unwrap_or(0),
    })
}

impl GateSync {
    /// Loads what the database holds into the client (a pause is logged
    /// once by the client), joins the live daemons and shares the gate.
    pub async fn load(
        store: &Store,
        client: &Client,
        receivers: Vec<crate::store::ReceiverConfig>,
    ) -> Self {
        let quota = client.quota();
        let gate = client.gate();
        let now = Utc::now().timestamp_millis();
        match store.gate_state().await {
            Ok(g) => {
                if let Some(p) = pause_of(&g) {
                    quota.restore(p);
                }
                if g.spend_day.as_deref() == Some(utc_day(now).as_str()) {
                    quota.saved(now, u64::try_from(g.spend).unwrap_or(0));
                }
                gate.adopt(shared_of(&g), true);
                let held_ms = g.not_before_ms.map_or(0, |nb| nb - now);
                if held_ms > 0 || g.rate.is_some() {
                    info!(
                        held_ms = held_ms.max(0),
                        rate = gate.rate(),
                        "gate state from the database: a recorded 429 window is honoured and the learned rate kept"
                    );
                }
            }
            Err(e) => {
                error!(error = %e, "cannot read the gate state (429 window, learned rate, quota pause, today's spend); starting without it")
            }
        }
        let member = GateMember {
            instance: ulid::Ulid::new().to_string(),
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown".into()),
            pid: i64::from(std::process::id()),
            receivers,
        };
        let share = Arc::new(StoreShare {
            store: store.clone(),
            failing: std::sync::atomic::AtomicBool::new(false),
        });
        gate.set_share(share.clone());
        let mut sync = GateSync {
            saved_version: quota.version(),
            last: Instant::now(),
            member,
            share,
        };
        let n = sync.beat(store, client).await;
        sync.report_receivers(store).await;
        // On PostgreSQL other daemons may share the database: they learn
        // of this one at their next heartbeat (a lone one paces by itself,
        // not by the shared schedule, until then), so wait for it before
        // sending
        // (daemons starting together would otherwise each see only
        // themselves). On SQLite one daemon holds the file's lock.
        if n > 1 || store.backend_name() == "postgres" {
            tokio::time::sleep(SYNC_EVERY + Duration::from_millis(100)).await;
            sync.beat(store, client).await;
            sync.report_receivers(store).await;
        }
        sync
    }

    /// Logs, once at start, when the live daemons' receivers differ.
    async fn report_receivers(&self, store: &Store) {
        let now = Utc::now().timestamp_millis();
        match store.live_receivers(now, LIVE_MS).await {
            Ok(members) => {
                for line in crate::store::receiver_conflicts(&members) {
                    error!("{line}");
                }
            }
            Err(e) => debug!(error = %e, "could not read the live daemons' receivers"),
        }
    }

    /// The heartbeat; returns the live daemons (1 when it failed).
    async fn beat(&mut self, store: &Store, client: &Client) -> u64 {
        let gate = client.gate();
        let now = Utc::now().timestamp_millis();
        match store.heartbeat(&self.member, now, LIVE_MS).await {
            Ok(n) => {
                let n = u64::try_from(n).unwrap_or(1).max(1);
                let before = gate.members();
                if n != before {
                    info!(
                        daemons = n,
                        own_rate = gate.own_rate(),
                        "daemons sharing the gate changed: they share poller.max_requests_per_second through one schedule (own_rate: this one's pace if the database does not answer)"
                    );
                }
                gate.set_members(n);
                self.share.answered();
                n
            }
            Err(e) => {
                // Keep the last count: fewer would overrun the ceiling
                // together, more would only slow this one down.
                self.share
                    .failed("heartbeat (keeping the last count of daemons)", &e);
                gate.members()
            }
        }
    }

    /// Saves a changed pause at once, and every second the heartbeat, the
    /// spend and the rate climbed back (always when `force`); takes on
    /// what other daemons recorded.
    pub async fn sync(&mut self, store: &Store, client: &Client, force: bool) {
        let quota = client.quota();
        let version = quota.version();
        if version != self.saved_version {
            let pause = quota.pause().map(|p| (p.since_ms, p.next_probe_ms));
            match store.set_quota_pause(pause).await {
                Ok(()) => self.saved_version = version,
                Err(e) => self.share.failed("save the quota pause (retrying)", &e),
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
                Err(e) => self.share.failed("save today's request spend", &e),
            }
        }
        if !force {
            self.beat(store, client).await;
        }
        let Ok(g) = store.gate_state().await else {
            return;
        };
        let gate = client.gate();
        gate.adopt(shared_of(&g), false);
        // A rate climbed back since the last cut is saved, so a restart
        // starts from it; a newer cut (another epoch) wins in the database.
        let (rate, epoch) = gate.learned();
        if let Some(r) = rate {
            if epoch == g.rate_epoch && g.rate.is_none_or(|s| r > s) {
                if let Err(e) = store.gate_climb(r, epoch).await {
                    self.share.failed("save the learned rate", &e);
                }
            }
        }
        if force || quota.version() != self.saved_version {
            return;
        }
        // Another daemon on the same database may have started or ended it.
        match (pause_of(&g), quota.pause()) {
            (Some(p), None) => quota.restore(p),
            (None, Some(_)) => quota.lift(),
            _ => {}
        }
        self.saved_version = quota.version();
    }

    /// Leaves the live daemons, so the others take its share at once.
    pub async fn leave(&self, store: &Store) {
        if let Err(e) = store.leave(&self.member.instance).await {
            warn!(error = %e, "cannot leave the live daemons; the others take this one's share in a few seconds");
        }
    }
}
