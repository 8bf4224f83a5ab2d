//! The one gate every request waits on: the "not before" instant set by a
//! 429, then the request-rate ceiling.
//!
//! A 429 is about the token, not the payment, so one gate serves all
//! requests of a client. With `Retry-After` (seconds or an HTTP-date) no
//! request leaves before that instant; without it the wait grows
//! exponentially with jitter (backon), capped, and resets on success.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

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
}

struct State {
    not_before: Option<Instant>,
    backoff: ExponentialBackoff,
}

/// The shared request gate.
pub struct Gate {
    limiter: Option<DefaultDirectRateLimiter>,
    builder: ExponentialBuilder,
    state: Mutex<State>,
    /// Counters.
    pub stats: GateStats,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
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
        let limiter = cfg
            .max_requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .and_then(|rps| {
                // Evenly spaced, no bursts: one permit per period.
                Quota::with_period(Duration::from_secs_f64(1.0 / rps))
                    .map(|q| q.allow_burst(NonZeroU32::MIN))
            })
            .map(RateLimiter::direct);
        let builder = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_min)
            .with_max_delay(cfg.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Gate {
            limiter,
            state: Mutex::new(State {
                not_before: None,
                backoff: builder.build(),
            }),
            builder,
            stats: GateStats::default(),
        }
    }

    fn not_before(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .not_before
    }

    /// Waits until a request may leave.
    pub async fn acquire(&self) {
        loop {
            if let Some(nb) = self.not_before() {
                if nb > Instant::now() {
                    tokio::time::sleep_until(nb).await;
                    continue;
                }
            }
            if let Some(l) = &self.limiter {
                l.until_ready().await;
            }
            // A 429 may have arrived while we waited for the limiter.
            match self.not_before() {
                Some(nb) if nb > Instant::now() => continue,
                _ => break,
            }
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a 429; returns the wait imposed on every request.
    pub fn rate_limited(&self, retry_after: Option<RetryAfter>) -> Duration {
        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = match retry_after {
            Some(ra) => ra.wait(),
            None => st.backoff.next().unwrap_or(Duration::from_secs(60)),
        };
        // A date is whole seconds; add a little so we land after it.
        let margin = match retry_after {
            Some(RetryAfter::Date(_)) => Duration::from_millis(20),
            _ => Duration::ZERO,
        };
        let until = Instant::now() + wait + margin;
        st.not_before = Some(st.not_before.map_or(until, |nb| nb.max(until)));
        wait
    }

    /// Records a non-429 answer: the backoff starts over.
    pub fn succeeded(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.backoff = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
