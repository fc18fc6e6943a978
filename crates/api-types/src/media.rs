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
    /// SHA-256 of the original bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// The original's type, read from its bytes: `image/jpeg`, `image/png` or `image/webp`.
    pub media_type: String,
    /// Size of the original.
    pub bytes: u64,
    /// Upright dimensions (EXIF orientation applied).
    pub width: u32,
    pub height: u32,
    /// EXIF capture time, when the photo recorded its UTC offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    /// EXIF capture time as the camera's wall clock (`YYYY-MM-DDTHH:MM:SS`, no offset),
    /// when the photo recorded no UTC offset; not to be read as UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "2008-10-22T16:28:39")]
    pub taken_at_local: Option<NaiveDateTime>,
    /// EXIF GPS position, WGS84 decimal degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<GpsData>,
    /// 64-bit perceptual hash, 16 hex digits.
    pub phash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadRequest {
    /// SHA-256 the finished upload must have, 64 lowercase hex digits.
    pub sha256: String,
    /// Total length in bytes (at least 1, at most the photo byte limit).
    pub length: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadStatus {
    /// The upload to `PATCH`; null when the photo was already stored and nothing
    /// needs sending.
    pub id: Option<Uuid>,
    pub sha256: String,
    pub length: u64,
    /// Bytes received so far; send the rest from here.
    pub offset: u64,
    /// True once the photo is stored (`media` is then set).
    pub complete: bool,
    /// When an unfinished upload is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Set once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaInfo>,
}
