//! The wire types of the baithak HTTP API: request and response bodies and the
//! problem+json error envelope. The server, the client and the simulator all use these,
//! so a field renamed here is renamed everywhere at once.
//!
//! Request bodies reject unknown fields: a field app that sends `attendees` instead of
//! `attendee_count` should hear about it, not have the value silently dropped.

pub mod auth;
pub mod directory;
pub mod media;
pub mod problem;
pub mod quota;
pub mod records;
pub mod sync;

pub use auth::{LoginRequest, RefreshRequest, TokenResponse, TokenUser};
pub use directory::{
    AreaItem, AreaPage, CreateUserRequest, ImportResult, UpdateUserRequest, UserItem, UserPage,
};
pub use media::{CreateUploadRequest, GpsData, MediaInfo, UploadStatus};
pub use problem::{FieldError, Problem};
pub use quota::*;
pub use records::*;
pub use sync::{
    Change, FeedbackData, LocationData, MAX_MUTATIONS_PER_PUSH, MeetingData, Mutation, MutationOp,
    MutationResult, MutationStatus, PullResponse, PushRequest, PushResponse,
};

/// Default and maximum page sizes of every list endpoint (API.md → General).
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
pub const MAX_PAGE_LIMIT: u32 = 1000;
