//! When to check a payment again: often while it is fresh (the customer is
//! at the counter), less often as it ages, with jitter; errors back off.

use std::time::Duration;

use rand::Rng;

use crate::config::PollerSettings;

/// `d * f`, saturating: a factor that is not a positive number gives zero,
/// a product too long for a [`Duration`] gives the longest one. The
/// factors here come from a row's age (an ancient `created_at`) and the
/// settings, so `Duration::mul_f64` (which panics) is never used.
pub fn mul_sat(d: Duration, f: f64) -> Duration {
    if f.is_nan() || f <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(d.as_secs_f64() * f).unwrap_or(Duration::MAX)
}

/// A duration in whole milliseconds as an i64, saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn jittered(d: Duration, jitter: f64) -> Duration {
    if jitter.is_nan() || jitter <= 0.0 {
        return d;
    }
    mul_sat(d, 1.0 + rand::rng().random_range(0.0..jitter.min(1.0)))
}

/// The interval before the next check of a payment `age_ms` old.
pub fn next_interval(age_ms: i64, cfg: &PollerSettings) -> Duration {
    let age = Duration::from_millis(age_ms.max(0) as u64);
    let base = if age < cfg.fresh_period {
        cfg.fresh_interval
    } else {
        // Grows with age: twice the fresh interval at twice the fresh period.
        let factor = age.as_secs_f64() / cfg.fresh_period.as_secs_f64().max(0.001);
        mul_sat(cfg.fresh_interval, factor).min(cfg.max_interval)
    };
    jittered(base, cfg.jitter)
}

/// In bulk mode, how long a payment counts as hot and is checked on every
/// cadence: most customers pay within seconds of the QR being shown (the
/// checkout traffic of the bench pays after 4 s on average, 99% within
/// 18 s), so after this the chance a check finds it paid falls away.
pub const HOT_PERIOD: Duration = Duration::from_secs(15);

/// In bulk mode (checks batched on `poller.cadence`), the interval before
/// the next check of a payment `age_ms` old: one cadence while it is hot,
/// then growing with the square of its age (4 cadences at twice the hot
/// period), up to `poller.max_interval`. A request's spare places are
/// filled with the payments due soonest, so older ones are often checked
/// earlier at no cost.
pub fn next_bulk_interval(age_ms: i64, cfg: &PollerSettings) -> Duration {
    let age = Duration::from_millis(age_ms.max(0) as u64);
    let base = if age < HOT_PERIOD {
        cfg.cadence
    } else {
        let f = age.as_secs_f64() / HOT_PERIOD.as_secs_f64();
        mul_sat(cfg.cadence, f * f).min(cfg.max_interval.max(cfg.cadence))
    };
    jittered(base, cfg.jitter)
}

/// The delay after the `n`-th consecutive transient error (n >= 1).
pub fn error_backoff(n: i64, cfg: &PollerSettings) -> Duration {
    // min * 2^(n-1), saturating, capped at the max.
    let doublings = n.clamp(1, 32) as u32 - 1;
    let d = cfg
        .error_backoff_min
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(Duration::MAX)
        .min(cfg.error_backoff_max);
    jittered(d, cfg.jitter).min(cfg.error_backoff_max)
}

/// The next check time in unix ms: `now + delay`, but no later than just
/// after the deadline, so a payment expires promptly.
pub fn cap_at_deadline(now_ms: i64, delay: Duration, deadline_ms: i64) -> i64 {
    let next = now_ms.saturating_add(millis(delay));
    if now_ms < deadline_ms && next > deadline_ms {
        deadline_ms.saturating_add(1)
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_payments_are_checked_more_often_than_old_ones() {
        let cfg = PollerSettings {
            jitter: 0.0,
            ..PollerSettings::default()
        };
        assert_eq!(next_interval(1_000, &cfg), cfg.fresh_interval);
        assert!(next_interval(600_000, &cfg) > cfg.fresh_interval);
        assert_eq!(next_interval(100_000_000, &cfg), cfg.max_interval);
    }

    #[test]
    fn in_bulk_mode_hot_payments_follow_the_cadence_and_old_ones_slow_down() {
        let cfg = PollerSettings {
            jitter: 0.0,
            ..PollerSettings::default()
        };
        assert_eq!(next_bulk_interval(1_000, &cfg), cfg.cadence);
        assert_eq!(next_bulk_interval(14_999, &cfg), cfg.cadence);
        assert_eq!(next_bulk_interval(30_000, &cfg), cfg.cadence * 4);
        assert_eq!(next_bulk_interval(100_000_000, &cfg), cfg.max_interval);
    }

    #[test]
    fn error_backoff_grows_and_is_capped() {
        let cfg = PollerSettings {
            jitter: 0.0,
            ..PollerSettings::default()
        };
        assert_eq!(error_backoff(1, &cfg), cfg.error_backoff_min);
        assert_eq!(error_backoff(2, &cfg), cfg.error_backoff_min * 2);
        assert_eq!(error_backoff(60, &cfg), cfg.error_backoff_max);
    }

    #[test]
    fn absurd_ages_and_settings_saturate_instead_of_panicking() {
        let ancient = 1_700_000_000_000_i64 + 62_135_596_800_000; // since year 1
        for cadence in [
            Duration::from_millis(100),
            Duration::from_secs(2),
            Duration::MAX,
        ] {
            let cfg = PollerSettings {
                jitter: 1.0,
                cadence,
                fresh_interval: cadence,
                max_interval: Duration::MAX,
                error_backoff_min: cadence,
                error_backoff_max: Duration::MAX,
                ..PollerSettings::default()
            };
            for age in [ancient, i64::MAX, i64::MIN, 0] {
                let a = next_interval(age, &cfg);
                let b = next_bulk_interval(age, &cfg);
                assert!(a >= Duration::ZERO && b >= Duration::ZERO);
            }
            for n in [1, 2, 64, i64::MAX] {
                let _ = error_backoff(n, &cfg);
            }
        }
        // A delay too long for an i64 of milliseconds is the far future,
        // never a wrapped (past) time.
        assert_eq!(cap_at_deadline(1_000, Duration::MAX, 500), i64::MAX);
        assert_eq!(cap_at_deadline(0, Duration::MAX, 5_000), 5_001);
        assert_eq!(cap_at_deadline(0, Duration::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn the_next_check_never_skips_the_deadline() {
        assert_eq!(cap_at_deadline(0, Duration::from_secs(10), 5_000), 5_001);
        assert_eq!(cap_at_deadline(6_000, Duration::from_secs(1), 5_000), 7_000);
    }
}
