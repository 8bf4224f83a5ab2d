//! The one gate every request waits on: the "not before" instant set by a
//! 429, then the request-rate ceiling.
//!
//! A 429 is about the token, not the payment, so one gate serves all
//! requests of a client. With `Retry-After` (seconds or an HTTP-date) no
//! request leaves before that instant; without it the wait grows
//! exponentially with jitter (backon), capped, and resets on success.
//!
//! The rate is adaptive, as no limit is published: it starts at the
//! ceiling, halves on a 429 (429s within 2 s are one hit, at the highest
//! rate among them) and climbs back by the time successful answers have
//! come (not their number, so n daemons climb as fast as one; time inside a
//! Retry-After window does not count): at half the ceiling per second to
//! 90% of the rate the last 429 hit, at a fortieth of that rate per second
//! up to it, then at a tenth of the ceiling per second, never above the
//! ceiling. A lone 429 costs seconds; 429s at a lower limit keep the rate
//! near it. Requests leave one at a
//! time, each at least 1/rate seconds after the previous one actually left
//! (no credit saved up while idle, a late wake-up never shortens the next
//! gap), so there are no bursts. `governor` was the first choice, but its quota cannot
//! change at run time.
//!
//! Several daemons on one database share one token, so they share one
//! gate too ([`GateShare`], kept in the database): a 429's window and the
//! rate it cut are recorded there before the next request of this daemon,
//! every daemon reads the window before each request it sends while others
//! are live, and they take their requests from one schedule kept there
//! (GCRA): before each request a daemon reserves the next free slot, which
//! moves on by 1/rate. So the fleet spends the whole rate whenever any of
//! them has work (a daemon with nothing due reserves nothing, and a killed
//! one loses at most the slot it held), not a static 1/n share each that
//! idles with the daemon holding it. When the database does not answer, a
//! daemon paces itself at 1/n of the rate (the live daemons) instead.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

/// The longest `Retry-After` honoured as it is.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The longest gap between two requests, whatever the rate (a rate cut
/// many times, a tiny ceiling): a request a day still goes.
const MAX_GAP: Duration = Duration::from_secs(86_400);

/// How fast the rate climbs back after a cut, per second of successful
/// answers, as a share of the ceiling, up to 90% of the level the last 429
/// hit: from half the ceiling to 90% of it in under a second.
const FAST_CLIMB: f64 = 0.5;

/// How fast it climbs from 90% of that level to the level, as a share of
/// the level per second: the last tenth in 4 s, so the limit where it hit
/// is approached gently.
const SLOW_CLIMB: f64 = 1.0 / 40.0;

/// How fast it climbs above the level the last 429 hit, as a share of the
/// ceiling per second (the limit may have been passing, or have risen).
const PROBE_CLIMB: f64 = 0.1;

/// 429s this close together are one hit: the level it hit is the highest
/// rate among them (answers to requests sent before the first cut).
const HIT_CLUSTER: Duration = Duration::from_secs(2);

/// The most one answer climbs by, in seconds of climb (more when the pace
/// is slower): idle time is not time the API answered at this rate.
const MAX_CLIMB_STEP: Duration = Duration::from_secs(2);

/// `now + d`, or a year from now if that overflows an [`Instant`].
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(366 * 86_400)))
        .unwrap_or(now)
}

/// A boxed future, so [`GateShare`] stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The gate's state as every daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedGate {
    /// Unix ms before which no request may leave.
    pub not_before_ms: Option<i64>,
    /// The learned rate for all daemons together.
    pub rate: Option<f64>,
    /// Bumped on each cut of the rate.
    pub epoch: i64,
}

/// Where the gate is shared with the other daemons on the same database.
/// Failures are the keeper's to log; the gate then goes on with what it
/// knows itself.
pub trait GateShare: Send + Sync + std::fmt::Debug {
    /// The window in force for every daemon (unix ms), read fresh.
    fn not_before_ms(&self) -> BoxFuture<'_, Option<i64>>;
    /// Records a 429: no request before `not_before_ms`, the rate cut to at
    /// most `rate`. Returns the shared state after it.
    fn cut(&self, not_before_ms: i64, rate: Option<f64>) -> BoxFuture<'_, Option<SharedGate>>;
    /// Reserves the daemons' next request slot, `gap` after the slot
    /// reserved before it by any of them: the unix ms it may leave at, and
    /// the window in force. `None` when the schedule cannot be read (the
    /// gate then paces at its 1/n share).
    fn reserve(&self, gap: Duration) -> BoxFuture<'_, Option<Reserved>> {
        let _ = gap;
        Box::pin(async { None })
    }
}

/// A slot reserved in the daemons' shared schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Unix ms the request may leave at.
    pub at_ms: i64,
    /// Unix ms before which no request may leave (a 429's window).
    pub not_before_ms: Option<i64>,
}

/// Unix ms now.
fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Settings of the gate.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Ceiling on requests per second; `None` for no ceiling.
    pub max_requests_per_second: Option<f64>,
    /// First wait after a 429 without Retry-After.
    pub backoff_min: Duration,
    /// Longest wait after a 429 without Retry-After.
    pub backoff_max: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            max_requests_per_second: Some(5.0),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// Counters the gate keeps, for logs and status.
#[derive(Debug, Default)]
pub struct GateStats {
    /// 429 answers received.
    pub rate_limited: AtomicU64,
    /// Requests let through.
    pub requests: AtomicU64,
    /// Microseconds the gate was held shut by 429s (Retry-After, or the
    /// backoff without it): wall time, however many requests waited.
    pub held_micros: AtomicU64,
}

struct State {
    not_before: Option<Instant>,
    backoff: ExponentialBackoff,
    /// Current requests per second (adaptive) for all daemons together,
    /// if there is a ceiling.
    rate: Option<f64>,
    /// The shared cut this rate follows.
    epoch: i64,
    /// When this daemon took that cut (or started).
    epoch_at: Option<Instant>,
    /// The rate the last 429 came at (the highest of a cluster), until the
    /// rate is back at the ceiling.
    hit: Option<f64>,
    /// When the last 429 (or another daemon's cut) came.
    hit_at: Option<Instant>,
    /// The time the climb has counted up to.
    climbed_at: Instant,
}

/// The shared request gate.
pub struct Gate {
    ceiling: Option<f64>,
    builder: ExponentialBuilder,
    max_backoff: Duration,
    state: Mutex<State>,
    /// Requests wait in line here (FIFO), one at a time at the head.
    line: tokio::sync::Mutex<()>,
    /// Priority requests (renewals) waiting for a slot: the head of the
    /// line lets them take the next one.
    priority: std::sync::atomic::AtomicUsize,
    /// When the next request may leave. A slot is claimed only once it has
    /// come, and claiming moves it on by 1/rate, so there are no bursts.
    next: Mutex<Instant>,
    /// The daemons sharing the gate, when there may be several.
    share: OnceLock<Arc<dyn GateShare>>,
    /// Live daemons sharing the rate (this one included).
    members: AtomicU64,
    /// Counters.
    pub stats: GateStats,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

/// Counts a priority waiter while it lives.
struct PriorityMark<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> PriorityMark<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        PriorityMark(n)
    }
}

impl Drop for PriorityMark<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How a 429 asked the client to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: N`.
    Seconds(u64),
    /// `Retry-After: <HTTP-date>`.
    Date(SystemTime),
}

impl RetryAfter {
    /// Parses the header value; `None` when it is neither form.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        if let Ok(n) = v.parse::<u64>() {
            return Some(RetryAfter::Seconds(n));
        }
        httpdate::parse_http_date(v).ok().map(RetryAfter::Date)
    }

    /// The wait from now.
    pub fn wait(self) -> Duration {
        match self {
            RetryAfter::Seconds(n) => Duration::from_secs(n),
            RetryAfter::Date(t) => t.duration_since(SystemTime::now()).unwrap_or_default(),
        }
    }
}

impl Gate {
    /// A gate with the given settings.
    pub fn new(cfg: &GateConfig) -> Self {
        let ceiling = cfg
            .max_requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0);
        let builder = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_min)
            .with_max_delay(cfg.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Gate {
            ceiling,
            state: Mutex::new(State {
                not_before: None,
                backoff: builder.build(),
                rate: ceiling,
                epoch: 0,
                epoch_at: None,
                hit: None,
                hit_at: None,
                climbed_at: Instant::now(),
            }),
            line: tokio::sync::Mutex::new(()),
            priority: std::sync::atomic::AtomicUsize::new(0),
            next: Mutex::new(Instant::now()),
            share: OnceLock::new(),
            members: AtomicU64::new(1),
            builder,
            max_backoff: cfg.backoff_max,
            stats: GateStats::default(),
        }
    }

    /// The current request rate (adaptive) for all daemons together, if
    /// there is a ceiling.
    pub fn rate(&self) -> Option<f64> {
        self.lock().rate
    }

    /// This daemon's pace when the shared schedule cannot be read: its
    /// 1/n share of the rate (with it, the daemons with work share the
    /// whole rate among them).
    pub fn own_rate(&self) -> Option<f64> {
        self.rate().map(|r| r / self.members() as f64)
    }

    /// Live daemons sharing the gate (1 alone).
    pub fn members(&self) -> u64 {
        self.members.load(Ordering::Relaxed).max(1)
    }

    /// Sets how many daemons share the gate (from their heartbeats).
    pub fn set_members(&self, n: u64) {
        self.members.store(n.max(1), Ordering::Relaxed);
    }

    /// Shares the gate with the other daemons through `share`.
    pub fn set_share(&self, share: Arc<dyn GateShare>) {
        let _ = self.share.set(share);
    }

    /// The learned rate and the cut it follows, to save.
    pub fn learned(&self) -> (Option<f64>, i64) {
        let st = self.lock();
        (st.rate, st.epoch)
    }

    /// Takes on what the shared record says: its window (if later than the
    /// one in force) and its rate, when it follows a newer cut (or `force`,
    /// at start).
    pub fn adopt(&self, shared: SharedGate, force: bool) {
        let mut st = self.lock();
        if let Some(nb) = shared.not_before_ms {
            Self::hold_until(&mut st, nb);
        }
        if force || shared.epoch > st.epoch {
            st.epoch = shared.epoch;
            st.epoch_at = Some(Instant::now());
            if let (Some(r), Some(ceiling)) = (shared.rate, self.ceiling) {
                if r.is_finite() && r > 0.0 {
                    let r = r.clamp(ceiling / 32.0, ceiling);
                    if let Some(before) = st.rate.filter(|b| r < *b) {
                        if force && st.hit_at.is_none() {
                            // At start: the learned rate is the level
                            // known, the climb probes above it.
                            st.hit = Some(r);
                            st.climbed_at = Instant::now();
                        } else {
                            // Another daemon's cut hit about where this
                            // one was.
                            Self::hit(&mut st, before);
                        }
                    }
                    st.rate = Some(r);
                }
            }
        } else if shared.epoch == st.epoch
            && st
                .hit_at
                .is_none_or(|h| st.epoch_at.is_some_and(|e| h <= e))
        {
            // Since the same cut, another daemon has climbed further (its
            // answers came at that rate): take its rate, so a daemon
            // restarted during the climb, or slower to climb, does not
            // hold the fleet's shared schedule back (each reservation is
            // spaced by the reserving daemon's rate). Not after a 429 of
            // this daemon's own that the database has not recorded (the
            // cut's write failed): that would undo the cut.
            if let (Some(r), Some(local), Some(ceiling)) = (shared.rate, st.rate, self.ceiling) {
                if r.is_finite() && r > local {
                    st.rate = Some(r.min(ceiling));
                }
            }
        }
    }

    /// Holds every request until `nb_ms` (unix ms), unless a later window
    /// is already in force.
    fn hold_until(st: &mut State, nb_ms: i64) {
        let ahead = nb_ms - unix_ms();
        if ahead > 0 {
            // A window recorded by another daemon is one of its 429s, at
            // most an hour (and a little): never longer here.
            let ahead =
                Duration::from_millis(ahead as u64).min(MAX_RETRY_AFTER + Duration::from_secs(60));
            let until = later(Instant::now(), ahead);
            st.not_before = Some(st.not_before.map_or(until, |x| x.max(until)));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_before(&self) -> Option<Instant> {
        self.lock().not_before
    }

    /// Waits until a request may leave.
    pub async fn acquire(&self) {
        self.wait(false).await
    }

    /// Waits until a request may leave, ahead of the requests in line: for
    /// the token renewal they all need (so they leave with the new token
    /// instead of being refused one after another). It still honours
    /// Retry-After and takes a paced slot, so the ceiling holds.
    pub async fn acquire_priority(&self) {
        self.wait(true).await
    }

    async fn wait(&self, priority: bool) {
        let _line = if priority || self.ceiling.is_none() {
            None
        } else {
            Some(self.line.lock().await)
        };
        let _mark = priority.then(|| PriorityMark::new(&self.priority));
        // The slot reserved in the shared schedule, while it is still good.
        let mut reserved: Option<Instant> = None;
        loop {
            if let Some(nb) = self.not_before() {
                if nb > Instant::now() {
                    reserved = None;
                    tokio::time::sleep_until(nb).await;
                    continue;
                }
            }
            let Some(rate) = self.rate() else {
                if self.held_elsewhere().await {
                    continue;
                }
                break;
            };
            let slot = *self.next.lock().unwrap_or_else(|e| e.into_inner());
            if !priority && self.priority.load(Ordering::Relaxed) > 0 {
                // A renewal waits for this slot: let it have it.
                tokio::time::sleep_until(slot.max(Instant::now()) + Duration::from_millis(1)).await;
                continue;
            }
            if slot > Instant::now() {
                // Re-read after waking: a priority request may have taken
                // the slot, or a 429 may have arrived.
                tokio::time::sleep_until(slot).await;
                continue;
            }
            // 1% spare, so arrivals stay under the ceiling too.
            let gap = Duration::try_from_secs_f64(1.01 / rate)
                .unwrap_or(MAX_GAP)
                .min(MAX_GAP);
            // Alone, or without the shared schedule: this daemon's share.
            let mut own_gap = gap
                .checked_mul(u32::try_from(self.members()).unwrap_or(u32::MAX))
                .unwrap_or(MAX_GAP)
                .min(MAX_GAP);
            if let Some(share) = self.share.get().filter(|_| self.members() > 1) {
                // A slot used much later than reserved would crowd the
                // next daemon's: reserve again.
                if reserved.is_none_or(|at| later(at, gap) < Instant::now()) {
                    reserved = match share.reserve(gap).await {
                        Some(r) => {
                            if let Some(nb) = r.not_before_ms {
                                Self::hold_until(&mut self.lock(), nb);
                            }
                            let ahead = r.at_ms.saturating_sub(unix_ms()).max(0);
                            Some(later(
                                Instant::now(),
                                Duration::from_millis(ahead as u64).min(MAX_GAP),
                            ))
                        }
                        None => None,
                    };
                    if reserved.is_some() {
                        // Re-read: the reservation may have brought a
                        // window recorded by another daemon.
                        continue;
                    }
                }
                if let Some(at) = reserved {
                    own_gap = gap;
                    if at > Instant::now() {
                        tokio::time::sleep_until(at).await;
                        continue;
                    }
                }
            }
            {
                let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
                if *next > Instant::now() {
                    continue;
                }
                *next = later(Instant::now(), own_gap);
            }
            if self.held_elsewhere().await {
                reserved = None;
                continue;
            }
            break;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// With other daemons live, whether one of them recorded a window now
    /// in force (then taken on here): read before each request, so none
    /// leaves inside a window once it is recorded.
    async fn held_elsewhere(&self) -> bool {
        if self.members() < 2 {
            return false;
        }
        let Some(share) = self.share.get() else {
            return false;
        };
        match share.not_before_ms().await {
            Some(nb) if nb > unix_ms() => {
                Self::hold_until(&mut self.lock(), nb);
                true
            }
            _ => false,
        }
    }

    /// Records a 429 ([`Self::rate_limited`]) and, when shared, records its
    /// window and cut rate for every daemon before returning, taking on a
    /// longer window or lower rate another daemon recorded.
    pub async fn rate_limited_shared(&self, retry_after: Option<RetryAfter>) -> Duration {
        let wait = self.rate_limited(retry_after);
        if let Some(share) = self.share.get() {
            let (until, rate) = {
                let st = self.lock();
                let until = st.not_before.map_or(Duration::ZERO, |nb| {
                    nb.saturating_duration_since(Instant::now())
                });
                // Rounded up, and one more: the window shared must never
                // end before this one (a millisecond early is a 429).
                let until_ms = i64::try_from(until.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
                (
                    unix_ms().saturating_add(until_ms).saturating_add(1),
                    st.rate,
                )
            };
            if let Some(shared) = share.cut(until, rate).await {
                self.adopt(shared, true);
            }
        }
        wait
    }

    /// Records a 429; returns the wait imposed on every request.
    pub fn rate_limited(&self, retry_after: Option<RetryAfter>) -> Duration {
        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let wait = match retry_after {
            // Honoured to the letter up to an hour: a day-long (or absurd)
            // Retry-After must not stop every request, renewals included,
            // for a day; the daily quota has its own handling.
            Some(ra) if ra.wait() > MAX_RETRY_AFTER => {
                tracing::warn!(
                    retry_after_s = ra.wait().as_secs(),
                    "Retry-After longer than an hour; waiting an hour"
                );
                MAX_RETRY_AFTER
            }
            Some(ra) => ra.wait(),
            // backon's jitter adds up to 100%: keep the cap a cap.
            None => st
                .backoff
                .next()
                .unwrap_or(self.max_backoff)
                .min(self.max_backoff),
        };
        if let (Some(rate), Some(ceiling)) = (st.rate, self.ceiling) {
            Self::hit(&mut st, rate);
            st.rate = Some((rate / 2.0).max(ceiling / 32.0));
        }
        // A date is whole seconds; add a little so we land after it.
        let margin = match retry_after {
            Some(RetryAfter::Date(_)) => Duration::from_millis(20),
            _ => Duration::ZERO,
        };
        let now = Instant::now();
        let until = later(now, wait.saturating_add(margin));
        // Only the part of this pause that extends the one in force is new.
        let held_from = st.not_before.map_or(now, |nb| nb.max(now));
        let added = until.saturating_duration_since(held_from);
        self.stats
            .held_micros
            .fetch_add(added.as_micros() as u64, Ordering::Relaxed);
        st.not_before = Some(st.not_before.map_or(until, |nb| nb.max(until)));
        wait
    }

    /// Notes a 429 (or a cut) at `rate`: the level it hit, the highest of
    /// a cluster; the climb starts over from now.
    fn hit(st: &mut State, rate: f64) {
        let now = Instant::now();
        let clustered = st
            .hit_at
            .is_some_and(|t| now.saturating_duration_since(t) < HIT_CLUSTER);
        st.hit = Some(match st.hit {
            Some(h) if clustered => h.max(rate),
            _ => rate,
        });
        st.hit_at = Some(now);
        st.climbed_at = now;
    }

    /// Records a non-429 answer: the backoff starts over and the rate
    /// climbs back towards the ceiling, by the time the answers have come
    /// since the last climb (not by their number, so every daemon climbs
    /// the rate of all of them at the same pace, however many they are):
    /// fast to 90% of the level the last 429 hit, then slowly.
    pub fn succeeded(&self) {
        let mut st = self.lock();
        st.backoff = self.builder.build();
        let now = Instant::now();
        // Time held by a window is not time answered at this rate.
        let from = st
            .not_before
            .map_or(st.climbed_at, |nb| nb.max(st.climbed_at));
        let (Some(rate), Some(ceiling)) = (st.rate, self.ceiling) else {
            st.climbed_at = now;
            return;
        };
        // One answer climbs by at most the longer of MAX_CLIMB_STEP and
        // one and a half of this daemon's gaps.
        let gap = 1.5 * 1.01 * self.members() as f64 / rate;
        let step = MAX_CLIMB_STEP.as_secs_f64().max(gap);
        let dt = now.saturating_duration_since(from).as_secs_f64().min(step);
        if now > st.climbed_at {
            st.climbed_at = now;
        }
        let hit = st.hit.map_or(ceiling, |h| h.min(ceiling));
        // (up to, per second) for each phase of the climb.
        let phases = [
            (0.9 * hit, FAST_CLIMB * ceiling),
            (hit, SLOW_CLIMB * hit),
            (ceiling, PROBE_CLIMB * ceiling),
        ];
        let mut r = rate;
        let mut t = dt;
        for (upto, speed) in phases {
            if r >= upto || t <= 0.0 {
                continue;
            }
            let need = (upto - r) / speed;
            if need > t {
                r += speed * t;
                t = 0.0;
            } else {
                r = upto;
                t -= need;
            }
        }
        let r = r.min(ceiling);
        if r >= ceiling {
            st.hit = None;
        }
        st.rate = Some(r);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    #[tokio::test]
    async fn absurd_rates_retry_afters_and_shared_windows_do_not_panic() {
        let g = Gate::new(&GateConfig {
            max_requests_per_second: Some(1e-20),
            ..GateConfig::default()
        });
        // The first request leaves at once; the next slot is far away.
        tokio::time::timeout(Duration::from_secs(5), g.acquire())
            .await
            .expect("first request not held");
        for ra in [
            RetryAfter::Seconds(u64::MAX),
            RetryAfter::Seconds(u64::MAX / 1000),
            RetryAfter::Date(SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
        ] {
            assert!(g.rate_limited(Some(ra)) <= MAX_RETRY_AFTER);
        }
        Gate::hold_until(&mut g.lock(), i64::MAX);
        assert!(RetryAfter::parse("99999999999999999999999").is_none());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(RetryAfter::parse("3"), Some(RetryAfter::Seconds(3)));
        let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        match RetryAfter::parse(&date) {
            Some(RetryAfter::Date(_)) => {}
            other => panic!("expected a date, got {other:?}"),
        }
        assert_eq!(RetryAfter::parse("soon"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_halves_on_429_and_climbs_back_to_the_ceiling() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        assert_eq!(gate.rate(), Some(10.0));
        gate.rate_limited(Some(RetryAfter::Seconds(0)));
        assert_eq!(gate.rate(), Some(5.0));
        // The climb is by time, not by the number of answers.
        for _ in 0..100 {
            gate.succeeded();
        }
        assert!(gate.rate().is_some_and(|r| r < 5.1), "{:?}", gate.rate());
        tokio::time::sleep(Duration::from_secs(1)).await;
        gate.succeeded();
        assert!(gate.rate().is_some_and(|r| r >= 9.0), "{:?}", gate.rate());
        tokio::time::sleep(Duration::from_secs(2)).await;
        gate.succeeded();
        tokio::time::sleep(Duration::from_secs(2)).await;
        gate.succeeded();
        assert_eq!(gate.rate(), Some(10.0));
        for _ in 0..20 {
            gate.rate_limited(Some(RetryAfter::Seconds(0)));
        }
        assert_eq!(gate.rate(), Some(10.0 / 32.0));
    }

    /// Answers at this daemon's own pace (its share of the rate) for
    /// `secs` seconds of (paused) time; returns the rate after each second.
    async fn answer_at_own_pace(gate: &Gate, secs: u64) -> Vec<f64> {
        let mut per_second = Vec::new();
        let start = Instant::now();
        let mut mark = start + Duration::from_secs(1);
        while start.elapsed() < Duration::from_secs(secs) {
            let own = gate.own_rate().unwrap();
            tokio::time::advance(Duration::from_secs_f64(1.01 / own)).await;
            gate.succeeded();
            while Instant::now() >= mark {
                per_second.push(gate.rate().unwrap());
                mark += Duration::from_secs(1);
            }
        }
        per_second
    }

    /// Issue 22 item 1: after a cut the rate is back near the ceiling
    /// within seconds of successful answers, however many daemons share
    /// it (three here, each answering at its third of the rate).
    #[tokio::test(start_paused = true)]
    async fn after_a_cut_the_rate_is_back_at_the_ceiling_within_seconds_with_three_daemons() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        gate.set_members(3);
        gate.rate_limited(Some(RetryAfter::Seconds(0)));
        assert_eq!(gate.rate(), Some(5.0));
        let rates = answer_at_own_pace(&gate, 8).await;
        assert!(rates[1] >= 8.5, "85% of the ceiling within 2 s: {rates:?}");
        assert!(rates[5] >= 9.99, "the ceiling within 6 s: {rates:?}");
    }

    /// A lone 429 under the limit, then successes: seconds, not minutes.
    #[tokio::test(start_paused = true)]
    async fn a_lone_429_costs_seconds() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(20.0),
            ..GateConfig::default()
        });
        gate.rate_limited(Some(RetryAfter::Seconds(1)));
        // The window is honoured: the climb starts after it.
        tokio::time::advance(Duration::from_secs(1)).await;
        let rates = answer_at_own_pace(&gate, 6).await;
        assert!(rates[0] >= 17.0, "85% within a second: {rates:?}");
        assert!(rates[5] >= 19.99, "the ceiling within 6 s: {rates:?}");
    }

    /// A 429 soon after recovering remembers where it hit: the rate climbs
    /// fast to 90% of that level, then slowly above it.
    #[tokio::test(start_paused = true)]
    async fn a_second_429_remembers_the_level_it_hit() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        // Another daemon's cut to 6, then (not in the same cluster) this
        // daemon's 429 there.
        gate.adopt(
            SharedGate {
                not_before_ms: None,
                rate: Some(6.0),
                epoch: 1,
            },
            false,
        );
        tokio::time::advance(HIT_CLUSTER + Duration::from_millis(100)).await;
        let hit = gate.rate().unwrap();
        assert_eq!(hit, 6.0);
        gate.rate_limited(Some(RetryAfter::Seconds(0)));
        assert_eq!(gate.rate(), Some(3.0));
        let rates = answer_at_own_pace(&gate, 12).await;
        assert!(rates[1] >= 0.88 * hit, "fast to 90%: {rates:?}");
        assert!(rates[1] <= 0.95 * hit, "then slowly to it: {rates:?}");
        assert!(rates[3] <= 1.0 * hit, "then slowly to it: {rates:?}");
        assert!(rates[10] >= 9.99, "and on to the ceiling: {rates:?}");
    }

    /// 429s close together (answers to requests sent before the first cut)
    /// cut again, but the level they hit is the first one's.
    #[tokio::test(start_paused = true)]
    async fn a_cluster_of_429s_remembers_the_highest_level() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        for _ in 0..3 {
            gate.rate_limited(Some(RetryAfter::Seconds(0)));
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(gate.rate(), Some(1.25));
        let rates = answer_at_own_pace(&gate, 7).await;
        assert!(rates[1] >= 8.9, "fast to 90% of the ceiling: {rates:?}");
        assert!(rates[6] >= 9.99, "then the ceiling: {rates:?}");
    }

    /// A daemon started at a learned rate during the fleet's climb takes
    /// the higher rate another daemon climbed to since the same cut; a
    /// lower one, or one of an older cut, does not pull it down.
    #[tokio::test(start_paused = true)]
    async fn a_rate_another_daemon_climbed_to_since_the_same_cut_is_taken() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        let shared = |rate, epoch| SharedGate {
            not_before_ms: None,
            rate: Some(rate),
            epoch,
        };
        gate.adopt(shared(5.0, 3), true);
        assert_eq!(gate.rate(), Some(5.0));
        gate.adopt(shared(9.0, 3), false);
        assert_eq!(gate.rate(), Some(9.0), "the fleet's climb is taken");
        gate.adopt(shared(7.0, 3), false);
        assert_eq!(
            gate.rate(),
            Some(9.0),
            "a lower rate of the same cut is not"
        );
        gate.adopt(shared(12.0, 3), false);
        assert_eq!(gate.rate(), Some(10.0), "never above the ceiling");
        gate.adopt(shared(9.5, 2), false);
        assert_eq!(gate.rate(), Some(10.0), "an older cut changes nothing");
        // A 429 of this daemon's own whose cut the database did not record
        // (the write failed): the shared rate of the cut before must not
        // undo it.
        tokio::time::advance(Duration::from_millis(10)).await;
        gate.rate_limited(Some(RetryAfter::Seconds(0)));
        assert_eq!(gate.rate(), Some(5.0));
        gate.adopt(shared(9.0, 3), false);
        assert_eq!(gate.rate(), Some(5.0), "an unrecorded cut is kept");
    }

    /// At start the learned rate (from the database) is kept: the climb
    /// probes above it, it does not rush back to the ceiling.
    #[tokio::test(start_paused = true)]
    async fn a_learned_rate_at_start_is_climbed_from_gently() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(10.0),
            ..GateConfig::default()
        });
        gate.adopt(
            SharedGate {
                not_before_ms: None,
                rate: Some(5.0),
                epoch: 3,
            },
            true,
        );
        assert_eq!(gate.rate(), Some(5.0));
        let rates = answer_at_own_pace(&gate, 7).await;
        assert!(
            rates[0] <= 6.3,
            "a tenth of the ceiling a second: {rates:?}"
        );
        assert!(rates[5] >= 9.99, "the ceiling after 5 s: {rates:?}");
    }

    #[test]
    fn a_retry_after_longer_than_an_hour_waits_an_hour() {
        let gate = Gate::new(&GateConfig::default());
        let day = RetryAfter::Seconds(86_400);
        assert_eq!(gate.rate_limited(Some(day)), MAX_RETRY_AFTER);
        // Absurd values neither panic nor stop everything for ever.
        assert_eq!(
            gate.rate_limited(Some(RetryAfter::Seconds(u64::MAX))),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            gate.rate_limited(Some(RetryAfter::Seconds(3))),
            Duration::from_secs(3)
        );
    }

    /// A shared schedule that never answers, counting the attempts.
    #[derive(Debug, Default)]
    struct Unreachable(AtomicU64);

    impl GateShare for Unreachable {
        fn not_before_ms(&self) -> BoxFuture<'_, Option<i64>> {
            Box::pin(async { None })
        }
        fn cut(&self, _: i64, _: Option<f64>) -> BoxFuture<'_, Option<SharedGate>> {
            Box::pin(async { None })
        }
        fn reserve(&self, _: Duration) -> BoxFuture<'_, Option<Reserved>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async { None })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_shared_schedule_a_daemon_paces_at_its_share_and_asks_once_a_request() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(4.0),
            ..GateConfig::default()
        });
        let share = Arc::new(Unreachable::default());
        gate.set_share(share.clone());
        gate.set_members(2);
        let start = Instant::now();
        for _ in 0..5 {
            gate.acquire().await;
        }
        let took = start.elapsed();
        // Four gaps of 2 x 1.01 / 4 s: half the rate.
        assert!(
            took >= Duration::from_millis(2020) && took < Duration::from_millis(2040),
            "{took:?}"
        );
        assert_eq!(share.0.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_evenly_spaced_without_bursts() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: Some(4.0),
            ..GateConfig::default()
        });
        // Idle time saves up no credit.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..5 {
            gate.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1010) && took < Duration::from_millis(1020),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_retry_afters_count_the_held_time_once() {
        let gate = Gate::new(&GateConfig::default());
        gate.rate_limited(Some(RetryAfter::Seconds(10)));
        gate.rate_limited(Some(RetryAfter::Seconds(4)));
        gate.rate_limited(Some(RetryAfter::Seconds(12)));
        let held = Duration::from_micros(gate.stats.held_micros.load(Ordering::Relaxed));
        assert_eq!(held, Duration::from_secs(12));
    }

    #[tokio::test]
    async fn a_retry_after_holds_every_request() {
        let gate = Gate::new(&GateConfig {
            max_requests_per_second: None,
            ..GateConfig::default()
        });
        gate.rate_limited(Some(RetryAfter::Seconds(0)));
        let start = Instant::now();
        gate.rate_limited(None);
        gate.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(500),
            "jittered backoff starts at 1s minus jitter at most half"
        );
    }
}
