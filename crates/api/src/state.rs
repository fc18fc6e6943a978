//! What every handler shares: the store, keys and limits. Nothing here holds request
//! data, so any replica can serve any request.

use crate::auth::{JwtKeys, LoginLimiter, LoginLimits, Passwords};
use crate::error::ApiError;
use baithak_media::{BlobStore, IngestLimits, IngestPool, PoolLimits, SharedParts};
use baithak_store::Store;
use secrecy::SecretSlice;
use std::path::PathBuf;
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
    /// Decoding limits, including the photo byte limit (default 15 MiB → 413).
    pub ingest_limits: IngestLimits,
    /// Photos decoded at once, and the bytes that may wait for them before 503.
    pub ingest_pool: PoolLimits,
    /// Unfinished resumable uploads are dropped after this long.
    pub upload_ttl: chrono::Duration,
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
            ingest_limits: IngestLimits {
                max_bytes: 15 * 1024 * 1024,
                ..IngestLimits::default()
            },
            ingest_pool: PoolLimits::default(),
            upload_ttl: chrono::Duration::days(7),
        }
    }
}

pub struct AppState {
    pub store: Store,
    pub keys: JwtKeys,
    pub passwords: Passwords,
    pub limiter: LoginLimiter,
    pub config: ApiConfig,
    pub blobs: BlobStore,
    /// Where unfinished resumable uploads keep their bytes when any replica may take
    /// the next chunk (an object store); `None`: in part files under `work_dir`.
    pub parts: Option<SharedParts>,
    pub ingest: IngestPool,
    /// Scratch space on local disk: bodies being received, and with a local blob
    /// store the resumable uploads' part files.
    pub work_dir: PathBuf,
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        work_dir: PathBuf,
        jwt_secret: &SecretSlice<u8>,
        config: ApiConfig,
    ) -> Result<Arc<Self>, ApiError> {
        std::fs::create_dir_all(work_dir.join("incoming")).map_err(ApiError::internal)?;
        std::fs::create_dir_all(work_dir.join("uploads")).map_err(ApiError::internal)?;
        Ok(Arc::new(AppState {
            ingest: IngestPool::new(config.ingest_pool),
            parts: blobs.shared_parts(),
            blobs,
            work_dir,
            metrics: crate::metrics::Metrics::default(),
            store,
            keys: JwtKeys::new(jwt_secret, config.access_ttl),
            passwords: Passwords::new(config.max_concurrent_hashes)?,
            limiter: LoginLimiter::new(config.login_limits),
            config,
        }))
    }
}
