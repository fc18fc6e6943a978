//! What every handler shares: the store, keys and limits. Nothing here holds request
//! data, so any replica can serve any request.

use crate::auth::{JwtKeys, LoginLimiter, LoginLimits, Passwords};
use crate::error::ApiError;
use baithak_store::Store;
use secrecy::SecretSlice;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub access_ttl: chrono::Duration,
    /// How long a refresh token stays usable unused; each refresh restarts it, so a
    /// device that syncs at least this often never has to log in again.
    pub refresh_ttl: chrono::Duration,
    pub json_limit: usize,
    /// Largest CSV accepted by the area import.
    pub import_limit: usize,
    pub login_limits: LoginLimits,
    pub max_concurrent_hashes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            access_ttl: chrono::Duration::minutes(15),
            refresh_ttl: chrono::Duration::days(60),
            json_limit: 2 * 1024 * 1024,
            import_limit: 32 * 1024 * 1024,
            login_limits: LoginLimits::default(),
            max_concurrent_hashes: std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4),
        }
    }
}

pub struct AppState {
    pub store: Store,
    pub keys: JwtKeys,
    pub passwords: Passwords,
    pub limiter: LoginLimiter,
    pub config: ApiConfig,
}

impl AppState {
    pub fn new(
        store: Store,
        jwt_secret: &SecretSlice<u8>,
        config: ApiConfig,
    ) -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(AppState {
            store,
            keys: JwtKeys::new(jwt_secret, config.access_ttl),
            passwords: Passwords::new(config.max_concurrent_hashes)?,
            limiter: LoginLimiter::new(config.login_limits),
            config,
        }))
    }
}
