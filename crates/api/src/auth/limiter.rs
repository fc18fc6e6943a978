//! Failed-login limits per login name and per client address, kept in the database
//! (`baithak_store::Budget`, GCRA) so every replica behind a load balancer counts the
//! same failures.
//!
//! Only failures spend the budget, so a user who types the password right is never
//! slowed by the limiter. A blocked login or address is refused before any password
//! work, so a guessing run costs the server one indexed read once it is blocked.

use crate::error::ApiResult;
use baithak_store::{Budget, Store};
use std::net::IpAddr;
use std::time::Duration;

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

fn budget(burst: u32, period: Duration) -> Budget {
    Budget {
        burst: burst.max(1),
        period_ms: i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1),
    }
}

/// The login's key: hashed, so a login of any length is one short key and the table
/// holds no login names.
fn login_key(login: &str) -> String {
    format!("login:{}", baithak_media::sha256_of(login.as_bytes()))
}

fn ip_key(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whole seconds to wait, at least one, for a `Retry-After`.
fn whole_secs(ms: i64) -> u64 {
    u64::try_from(ms.saturating_add(999) / 1000)
        .unwrap_or(0)
        .max(1)
}

#[derive(Debug, Clone)]
pub struct LoginLimiter {
    login: Budget,
    ip: Budget,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        LoginLimiter {
            login: budget(limits.per_login_burst, limits.per_login_period),
            ip: budget(limits.per_ip_burst, limits.per_ip_period),
        }
    }

    /// `Some(seconds)` when this login or address must wait before trying again.
    pub async fn blocked(
        &self,
        store: &Store,
        login: &str,
        ip: Option<IpAddr>,
    ) -> ApiResult<Option<u64>> {
        let mut keys = vec![login_key(login)];
        keys.extend(ip.map(ip_key));
        let wait = store.run(move |s| s.throttle_wait(&keys, now_ms())).await?;
        Ok(wait.map(whole_secs))
    }

    /// Spends budget for a failed attempt; returns the wait when it was already spent.
    pub async fn failed(
        &self,
        store: &Store,
        login: &str,
        ip: Option<IpAddr>,
    ) -> ApiResult<Option<u64>> {
        let mut keys = vec![(login_key(login), self.login)];
        keys.extend(ip.map(|ip| (ip_key(ip), self.ip)));
        let wait = store
            .run(move |s| s.throttle_spend(&keys, now_ms()))
            .await?;
        Ok(wait.map(whole_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baithak_test_support::TestDb;

    #[actix_rt::test]
    async fn blocks_a_login_after_its_burst_and_not_others() {
        let db = TestDb::sqlite();
        let l = LoginLimiter::new(LoginLimits {
            per_login_burst: 3,
            per_login_period: Duration::from_secs(60),
            per_ip_burst: 100,
            per_ip_period: Duration::from_secs(1),
        });
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(l.failed(&db.store, "ravi", Some(ip)).await.unwrap(), None);
        }
        assert!(
            l.blocked(&db.store, "ravi", Some(ip))
                .await
                .unwrap()
                .is_none()
        );
        let wait = l
            .failed(&db.store, "ravi", Some(ip))
            .await
            .unwrap()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.blocked(&db.store, "ravi", None).await.unwrap().is_some());
        assert!(
            l.blocked(&db.store, "sita", Some(ip))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[actix_rt::test]
    async fn blocks_an_address_spraying_logins() {
        let db = TestDb::sqlite();
        let l = LoginLimiter::new(LoginLimits {
            per_login_burst: 100,
            per_login_period: Duration::from_secs(1),
            per_ip_burst: 2,
            per_ip_period: Duration::from_secs(30),
        });
        let ip: IpAddr = [10, 0, 0, 2].into();
        let s = &db.store;
        assert!(l.failed(s, "a", Some(ip)).await.unwrap().is_none());
        assert!(l.failed(s, "b", Some(ip)).await.unwrap().is_none());
        assert!(l.failed(s, "c", Some(ip)).await.unwrap().is_some());
        assert!(l.blocked(s, "d", Some(ip)).await.unwrap().is_some());
        assert!(
            l.blocked(s, "d", Some([10, 0, 0, 3].into()))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_secs(1), 1);
        assert_eq!(whole_secs(1000), 1);
        assert_eq!(whole_secs(1001), 2);
        assert_eq!(whole_secs(0), 1);
        assert!(login_key(&"x".repeat(10_000)).len() < 80);
    }
}
