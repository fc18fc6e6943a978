//! Failed-login limits per login name and per client address (governor, GCRA).
//!
//! Only failures spend the budget, so a user who types the password right is never
//! slowed by the limiter. The state is per process: with several replicas behind a load
//! balancer each keeps its own budget, so the effective limit is multiplied by the
//! replica count (acceptable for slowing guessing; a shared store would be needed for
//! exact limits).

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures allowed in a burst for one login.
    pub per_login_burst: u32,
    /// One more failure allowed per this interval for one login.
    pub per_login_period: Duration,
    pub per_ip_burst: u32,
    pub per_ip_period: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_login_burst: 5,
            per_login_period: Duration::from_secs(60),
            // A field office may put many phones behind one address.
            per_ip_burst: 50,
            per_ip_period: Duration::from_secs(2),
        }
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[derive(Clone)]
pub struct LoginLimiter {
    by_login: Arc<DefaultKeyedRateLimiter<String>>,
    by_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Keys whose budget is spent, until when. Checked before any password work, so a
    /// guessing run costs the server nothing once it is blocked.
    blocked_logins: Arc<DashMap<String, Instant>>,
    blocked_ips: Arc<DashMap<IpAddr, Instant>>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            by_login: Arc::new(RateLimiter::keyed(quota(
                limits.per_login_burst,
                limits.per_login_period,
            ))),
            by_ip: Arc::new(RateLimiter::keyed(quota(
                limits.per_ip_burst,
                limits.per_ip_period,
            ))),
            blocked_logins: Arc::new(DashMap::new()),
            blocked_ips: Arc::new(DashMap::new()),
        }
    }

    /// `Some(seconds)` when this login or address must wait before trying again.
    pub fn blocked(&self, login: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut wait = self
            .blocked_logins
            .get(login)
            .map(|until| *until)
            .filter(|until| *until > now);
        if let Some(ip) = ip {
            let ip_wait = self
                .blocked_ips
                .get(&ip)
                .map(|until| *until)
                .filter(|until| *until > now);
            wait = wait.max(ip_wait);
        }
        wait.map(|until| until.duration_since(now).as_secs().max(1))
    }

    /// Spends budget for a failed attempt; returns the wait when it is now exhausted.
    pub fn failed(&self, login: &str, ip: Option<IpAddr>) -> Option<u64> {
        let clock = DefaultClock::default();
        let now = Instant::now();
        let mut wait: Option<Duration> = None;
        if let Err(not_until) = self.by_login.check_key(&login.to_owned()) {
            let d = not_until.wait_time_from(clock.now());
            self.blocked_logins.insert(login.to_owned(), now + d);
            wait = wait.max(Some(d));
        }
        if let Some(ip) = ip
            && let Err(not_until) = self.by_ip.check_key(&ip)
        {
            let d = not_until.wait_time_from(clock.now());
            self.blocked_ips.insert(ip, now + d);
            wait = wait.max(Some(d));
        }
        self.prune(now);
        wait.map(|d| d.as_secs().max(1))
    }

    /// Keeps memory bounded under a spray of distinct logins or addresses.
    fn prune(&self, now: Instant) {
        if self.blocked_logins.len() > 10_000 {
            self.blocked_logins.retain(|_, until| *until > now);
        }
        if self.blocked_ips.len() > 10_000 {
            self.blocked_ips.retain(|_, until| *until > now);
        }
        if self.by_login.len() > 100_000 {
            self.by_login.retain_recent();
        }
        if self.by_ip.len() > 100_000 {
            self.by_ip.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_a_login_after_its_burst_and_not_others() {
        let l = LoginLimiter::new(LoginLimits {
            per_login_burst: 3,
            per_login_period: Duration::from_secs(60),
            per_ip_burst: 100,
            per_ip_period: Duration::from_secs(1),
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert_eq!(l.failed("ravi", Some(ip)), None);
        assert_eq!(l.failed("ravi", Some(ip)), None);
        assert_eq!(l.failed("ravi", Some(ip)), None);
        assert!(l.blocked("ravi", Some(ip)).is_none());
        let wait = l.failed("ravi", Some(ip)).unwrap();
        assert!((1..=60).contains(&wait));
        assert!(l.blocked("ravi", None).is_some());
        assert!(l.blocked("sita", Some(ip)).is_none());
    }

    #[test]
    fn blocks_an_address_spraying_logins() {
        let l = LoginLimiter::new(LoginLimits {
            per_login_burst: 100,
            per_login_period: Duration::from_secs(1),
            per_ip_burst: 2,
            per_ip_period: Duration::from_secs(30),
        });
        let ip: IpAddr = [10, 0, 0, 2].into();
        assert!(l.failed("a", Some(ip)).is_none());
        assert!(l.failed("b", Some(ip)).is_none());
        assert!(l.failed("c", Some(ip)).is_some());
        assert!(l.blocked("d", Some(ip)).is_some());
        assert!(l.blocked("d", Some([10, 0, 0, 3].into())).is_none());
    }
}
