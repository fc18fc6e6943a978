//! Persistence for baithak: one API over SQLite (the embedded default) and PostgreSQL,
//! chosen by the database URL's scheme, with embedded migrations for each.
//!
//! This is the only crate that names diesel. Functions here are blocking; callers on an
//! async runtime go through [`Store::run`], which moves the work to the blocking pool.

mod audit;
mod compliance;
mod db;
mod error;
mod feed;
mod feedback;
mod media;
mod meetings;
mod photo_index;
pub mod schema;
mod sessions;
mod sync;
mod throttle;
mod time;
mod uploads;
mod users;

pub mod areas;
pub mod seed;

pub use audit::{AuditEvent, AuditRecord, AuditVerification, GENESIS_HASH};
pub use compliance::{NewReview, PolicyRecord, QuotaCell, QuotaDay, ReviewRecord};
pub use db::{Backend, Store, StoreOptions};
pub use error::StoreError;
pub use feed::{ChangeRecord, FeedViewer, NewChange};
pub use feedback::{FeedbackFilter, FeedbackRecord, FeedbackSummary, FeedbackWrite};
pub use media::{
    MAX_PHASH_DISTANCE, MediaRecord, NewMedia, is_sha256_hex, phash_bands, phash_distance,
};
pub use meetings::{MeetingCursor, MeetingDecision, MeetingFilter, MeetingRecord};
pub use sessions::{NewSession, RotateOutcome, SessionPrincipal};
pub use sync::{
    DayMeeting, FeedbackApplied, LedgerEntry, LedgerWrite, MeetingApplied, MeetingWrite, PhotoUse,
    SyncTx, UpsertOutcome,
};
pub use throttle::Budget;
pub use time::now_utc;
pub use uploads::{NewUpload, UploadRecord};
pub use users::{NewUser, User, UserPatch};
