//! A typed client for the baithak HTTP API, the offline outbox a field device keeps in
//! SQLite, and `baithak-sim`, the field-device simulator and load generator.
//!
//! - [`ApiClient`]: login, refresh (rotating refresh tokens, never reused), logout,
//!   photo upload (one `PUT` for small photos, resumable for large ones), push and pull.
//!   Every call retries with exponential backoff and full jitter, honours
//!   `Retry-After`, and resends the very same bytes.
//! - [`Outbox`]: mutations and photos recorded offline, with stable client-made ids
//!   (UUIDv7), the session and the pull cursor; it survives a restart.
//! - [`Device`]: an outbox and a client together; [`Device::sync`] uploads photos,
//!   pushes in batches, settles each mutation by its result and pulls changes.
//! - [`sim`]: [`sim::run_sim`] drives many devices through a fault-injecting proxy and
//!   checks that the server holds exactly what they recorded.
//!
//! Depends on `baithak-api-types` only among the workspace crates, so it never pulls
//! the server in.

pub mod client;
pub mod device;
pub mod error;
pub mod outbox;
pub mod retry;
pub mod sim;

pub use client::{
    ApiClient, ChunkOutcome, ClientOptions, Credentials, MemoryTokenStore, Reply, Session,
    TokenStore, UploadedPhoto,
};
pub use device::{Device, NoObserver, ReplayReport, SyncObserver, SyncReport};
pub use error::{ClientError, Result};
pub use outbox::{
    MutationState, Outbox, OutboxCounts, PendingMutation, PendingPhoto, PhotoFile, Recorded,
    RejectedMutation, Settled,
};
pub use retry::{RetryPolicy, parse_retry_after};
