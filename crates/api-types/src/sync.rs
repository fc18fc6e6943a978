//! Offline sync: the push batch, its per-mutation results, and the pull feed.
//!
//! The server reads each mutation as raw JSON and validates it on its own, so one
//! malformed mutation is answered `rejected` without failing the batch; the typed
//! [`Mutation`] here is what well-behaved clients send.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::FieldError;

/// At most this many mutations per push (413 above).
pub const MAX_MUTATIONS_PER_PUSH: usize = 500;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub device_id: String,
    /// Each is a [`Mutation`]; kept raw so one bad item cannot fail the batch.
    #[schema(value_type = Vec<Mutation>)]
    pub mutations: Vec<serde_json::Value>,
}

/// One recorded change, with an id the device makes once and keeps across retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Mutation {
    pub id: Uuid,
    #[serde(flatten)]
    pub op: MutationOp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum MutationOp {
    #[serde(rename = "meeting.upsert")]
    MeetingUpsert(MeetingData),
    #[serde(rename = "feedback.create")]
    FeedbackCreate(FeedbackData),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationData {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingData {
    pub id: Uuid,
    /// `small_meeting` (counted by default), `booth_committee`, `cadre_camp`,
    /// `bhagidari_sammelan`, `other`.
    pub kind: String,
    pub occurred_at: DateTime<FixedOffset>,
    #[serde(default)]
    pub ended_at: Option<DateTime<FixedOffset>>,
    pub area_id: Uuid,
    #[serde(default)]
    pub location: Option<LocationData>,
    pub attendee_count: u32,
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub notes: String,
    /// SHA-256 (lowercase hex) of each photo, uploaded before the push.
    pub photos: Vec<String>,
    /// For an edit: the version last seen; a stale edit is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackData {
    pub id: Uuid,
    pub constituency_id: Uuid,
    /// The leader the feedback is about.
    pub subject: String,
    /// 1 to 5.
    pub rating: u8,
    #[serde(default)]
    pub text: String,
    pub collected_at: DateTime<FixedOffset>,
    pub respondents: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MutationStatus {
    Applied,
    /// The same mutation (id and content) was applied before; nothing changed.
    Duplicate,
    Rejected,
    /// Upload the photos in `missing`, then push again; nothing was stored.
    MissingMedia,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MutationResult {
    /// The mutation's id (nil when the mutation had no readable id).
    pub id: Uuid,
    pub status: MutationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<Uuid>,
    /// The entity's version after the mutation (meetings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Why it was rejected: `validation_failed`, `idempotency_conflict`,
    /// `version_conflict`, `forbidden_area`, `unknown_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    pub results: Vec<MutationResult>,
    /// The server's clock, so a device can measure its own skew.
    pub server_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub seq: i64,
    /// `meeting.reviewed`, `meeting.flagged`, `quota.day`, `assignment.changed`,
    /// `policy.changed`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PullResponse {
    pub changes: Vec<Change>,
    /// Pass back as `cursor` to continue after the last change.
    pub cursor: String,
    pub has_more: bool,
}
