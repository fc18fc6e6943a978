//! Photos and resumable uploads.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpsData {
    pub lat: f64,
    pub lon: f64,
}

/// What the server learnt from a stored photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MediaInfo {
    pub sha256: String,
    pub media_type: String,
    pub bytes: u64,
    /// Upright dimensions (EXIF orientation applied).
    pub width: u32,
    pub height: u32,
    /// EXIF capture time, when the photo recorded its UTC offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    /// EXIF capture time as the camera's wall clock, when no offset was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at_local: Option<NaiveDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsData>,
    /// 64-bit perceptual hash, 16 hex digits.
    pub phash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    pub sha256: String,
    /// Total length in bytes.
    pub length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadStatus {
    /// Absent when the photo was already stored and nothing needs sending.
    pub id: Option<Uuid>,
    pub sha256: String,
    pub length: u64,
    /// Bytes received so far; send the rest from here.
    pub offset: u64,
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
}
