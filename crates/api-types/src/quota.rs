//! Meetings as coordinators and HQ read them, review decisions, compliance views,
//! periodic reviews and the quota policy.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeetingPhoto {
    pub sha256: String,
    pub thumb_url: String,
}

/// Why a meeting does (not) count: `missing_photo`, `rejected`, `duplicate_photo`,
/// `too_close`, `future_time`, `late`, `not_counted_kind`, and the audit-only
/// `photo_time_mismatch`, `photo_location_mismatch`, `no_location`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlagItem {
    pub code: String,
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_meeting_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewInfo {
    pub decision: String,
    pub reason: String,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MeetingItem {
    pub id: Uuid,
    pub incharge_id: Uuid,
    pub kind: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The policy timezone's day the meeting counts for.
    pub local_day: NaiveDate,
    pub area_id: Uuid,
    pub attendee_count: i32,
    pub topic: String,
    pub notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::LocationData>,
    pub photos: Vec<MeetingPhoto>,
    /// Whether the meeting counts towards its day's quota.
    pub counts: bool,
    pub flags: Vec<FlagItem>,
    pub version: i64,
    pub review: Option<ReviewInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MeetingPage {
    pub items: Vec<MeetingItem>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewDecisionRequest {
    /// `accepted` or `rejected`.
    pub decision: String,
    /// Mandatory: it reaches the in-charge's phone.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DayItem {
    pub date: NaiveDate,
    pub counted: u32,
    pub submitted: u32,
    /// `met`, `short`, `none` or `exempt`.
    pub status: String,
    pub target_met: bool,
    #[serde(rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InchargeDays {
    pub incharge_id: Uuid,
    pub name: String,
    pub area_id: Uuid,
    pub days: Vec<DayItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceDaily {
    #[schema(value_type = Object)]
    pub policy: serde_json::Value,
    pub incharges: Vec<InchargeDays>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InchargeSummary {
    pub incharge_id: Uuid,
    pub name: String,
    pub area_id: Uuid,
    pub days_met: u32,
    pub days_short: u32,
    pub days_none: u32,
    pub days_exempt: u32,
    /// Met days over non-exempt days, 0..1.
    pub rate: f64,
    /// Consecutive met days ending with the latest day of the period.
    pub current_streak: u32,
    pub inactive: bool,
    pub last_counted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AreaTotals {
    pub area_id: Uuid,
    pub code: String,
    pub name: String,
    pub incharges: u32,
    pub days_met: u32,
    pub days_short: u32,
    pub days_none: u32,
    pub rate: f64,
    pub inactive: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComplianceSummary {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub incharges: Vec<InchargeSummary>,
    /// One entry per child area of the requested area.
    pub areas: Vec<AreaTotals>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InactiveItem {
    pub incharge_id: Uuid,
    pub name: String,
    pub area_id: Uuid,
    pub last_counted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InactiveList {
    pub days: u32,
    pub items: Vec<InactiveItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReviewRequest {
    pub incharge_id: Uuid,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    #[serde(default)]
    pub notes: String,
    /// `ok`, `warn`, `activate` or `replace`.
    pub action: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReviewItem {
    pub id: Uuid,
    pub incharge_id: Uuid,
    pub reviewer_id: Uuid,
    pub period_from: String,
    pub period_to: String,
    pub notes: String,
    pub action: String,
    /// The in-charge's compliance over the period when the review was made.
    #[schema(value_type = Object)]
    pub snapshot: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OverdueItem {
    pub incharge_id: Uuid,
    pub name: String,
    pub area_id: Uuid,
    pub last_review_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OverdueList {
    pub items: Vec<OverdueItem>,
}
