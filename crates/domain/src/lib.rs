//! Types and rules of baithak that hold whatever stores or serves them: roles, the area
//! tree and the scope rule, validated values. No I/O lives here, so every rule can be
//! tested in isolation.

pub mod area;
pub mod ids;
pub mod import;
pub mod meeting;
pub mod policy;
pub mod quota;
pub mod role;
pub mod validate;

pub use area::{AreaKind, AreaPath, can_see};
pub use ids::{AreaId, DeviceSessionId, UserId, new_v7};
pub use meeting::{
    Decision, FeedbackId, FeedbackInput, Flag, FlagEntry, GeoPoint, MeetingId, MeetingInput,
    validate_feedback, validate_meeting,
};
pub use policy::{MeetingKind, Policy};
pub use quota::{
    DayEvaluation, DayMeeting, DayStatus, MeetingEvaluation, MeetingFacts, evaluate_day,
    evaluate_meeting, local_day,
};
pub use role::Role;
pub use validate::{AreaCode, Login, ValidationError};
