//! When to try again and how long to wait: exponential backoff with full jitter, and
//! the server's `Retry-After` as a floor.

use chrono::{DateTime, Utc};
use rand::Rng;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub max_attempts: u32,
    /// The ceiling of the first retry's delay; it doubles with each retry.
    pub base_delay: Duration,
    /// The ceiling never grows past this.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is cut to it (a device should not sleep for a
    /// day because a proxy said so).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A policy for tests and simulations: many quick tries.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 12,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(5),
        }
    }

    /// The largest delay before retry number `retry` (0 for the first retry):
    /// `min(max_delay, base_delay * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }

    /// Full jitter: uniform in `[0, ceiling(retry)]`, so that devices that failed
    /// together do not come back together.
    pub fn backoff<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(0..=nanos))
    }

    /// The wait before retry number `retry`. With a `Retry-After` the server's word is
    /// the floor (capped at `max_retry_after`) and up to a quarter of it is added as
    /// jitter; without one, [`RetryPolicy::backoff`].
    pub fn delay<R: Rng + ?Sized>(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        match retry_after {
            Some(after) => {
                let after = after.min(self.max_retry_after);
                let spread = u64::try_from((after / 4).as_nanos()).unwrap_or(u64::MAX);
                after + Duration::from_nanos(rng.gen_range(0..=spread))
            }
            None => self.backoff(retry, rng),
        }
    }
}

/// Reads a `Retry-After` value: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, taken relative to `now`; a date in the past is
/// zero). Anything else is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
        assert_eq!(p.ceiling(1), Duration::from_millis(200));
        assert_eq!(p.ceiling(3), Duration::from_millis(800));
        assert_eq!(p.ceiling(6), Duration::from_secs(5));
        assert_eq!(p.ceiling(40), Duration::from_secs(5), "no overflow");
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn full_jitter_stays_within_ceiling_and_spreads() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 0..8 {
            let ceiling = p.ceiling(retry);
            let samples: Vec<Duration> = (0..2000).map(|_| p.backoff(retry, &mut rng)).collect();
            assert!(samples.iter().all(|d| *d <= ceiling), "retry {retry}");
            // Full jitter: the samples cover the whole range, not just its top.
            let low = samples.iter().filter(|d| **d < ceiling / 4).count();
            let high = samples.iter().filter(|d| **d > ceiling * 3 / 4).count();
            assert!(
                low > 300 && high > 300,
                "retry {retry}: {low} low, {high} high"
            );
            let mean = samples.iter().sum::<Duration>() / 2000;
            assert!(
                mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
                "retry {retry}: mean {mean:?} of ceiling {ceiling:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor_with_bounded_jitter_and_a_cap() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..500 {
            let d = p.delay(0, Some(Duration::from_secs(4)), &mut rng);
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(5),
                "{d:?}"
            );
            let capped = p.delay(0, Some(Duration::from_secs(3600)), &mut rng);
            assert!(capped >= Duration::from_secs(60) && capped <= Duration::from_secs(75));
            let plain = p.delay(2, None, &mut rng);
            assert!(plain <= Duration::from_millis(400));
        }
        assert_eq!(
            p.delay(0, Some(Duration::ZERO), &mut rng),
            Duration::ZERO,
            "Retry-After: 0 means now"
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "99999999999999999999999",
            "Wed, 99 Oct",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }
}
