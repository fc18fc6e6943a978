//! Meetings and feedback as a device reports them, and the flags that explain why a
//! meeting does or does not count.
//!
//! [`validate_meeting`] and [`validate_feedback`] turn the loosely typed `data` of a
//! `meeting.upsert` / `feedback.create` mutation (API.md, "Sync") into checked values.
//! Every field is optional in the raw form so that a missing field is reported as a
//! field error (`data.occurred_at: is required`) next to the others, not as a parse
//! failure of the whole body.

use crate::ids::AreaId;
use crate::policy::MeetingKind;
use crate::validate::{ValidationError, display_name};
use chrono::{DateTime, Datelike, FixedOffset};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

use crate::ids::id_type;

id_type!(
    /// A meeting; made by the device, stable across retries and edits.
    MeetingId
);
id_type!(
    /// One piece of public feedback; made by the device.
    FeedbackId
);

/// A point on the earth in WGS 84 degrees. Holding one means both coordinates are finite
/// and in range; deserialising checks the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawGeoPoint")]
pub struct GeoPoint {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct RawGeoPoint {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeoError {
    #[error("latitude must be a number from -90 to 90")]
    Latitude,
    #[error("longitude must be a number from -180 to 180")]
    Longitude,
}

impl TryFrom<RawGeoPoint> for GeoPoint {
    type Error = GeoError;
    fn try_from(raw: RawGeoPoint) -> Result<Self, Self::Error> {
        GeoPoint::new(raw.lat, raw.lon)
    }
}

/// Mean earth radius (IUGG), good to ~0.5% for distances, which is all a 5 km audit
/// threshold needs.
const EARTH_RADIUS_KM: f64 = 6371.0088;

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> Result<Self, GeoError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(GeoError::Latitude);
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(GeoError::Longitude);
        }
        Ok(GeoPoint { lat, lon })
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Great-circle distance in kilometres (haversine formula).
    pub fn haversine_km(self, other: GeoPoint) -> f64 {
        let (phi1, phi2) = (self.lat.to_radians(), other.lat.to_radians());
        let d_phi = (other.lat - self.lat).to_radians();
        let d_lambda = (other.lon - self.lon).to_radians();
        let a =
            (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
        // Clamp: rounding can push `a` a hair above 1 for antipodal points.
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// A reviewer's decision on a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Accepted,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown decision {0:?}: expected accepted or rejected")]
pub struct UnknownDecision(pub String);

impl FromStr for Decision {
    type Err = UnknownDecision;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "accepted" => Ok(Decision::Accepted),
            "rejected" => Ok(Decision::Rejected),
            _ => Err(UnknownDecision(s.to_owned())),
        }
    }
}

/// Why a meeting does not count, or why it goes to the audit queue. The declaration
/// order is the order flags are listed in (`Ord` follows it), so lists are stable.
///
/// Blocking flags (the meeting does not count): `missing_photo`, `rejected`,
/// `duplicate_photo`, `too_close`, `future_time`, `late`, `not_counted_kind`.
/// Audit-only flags (the meeting still counts): `photo_time_mismatch`,
/// `photo_location_mismatch`, `no_location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The meeting has no photo.
    MissingPhoto,
    /// A coordinator or HQ rejected it.
    Rejected,
    /// Every one of its photos was already used by an earlier meeting.
    DuplicatePhoto,
    /// Less than `min_gap_minutes` after the previous counted meeting of the same day.
    TooClose,
    /// `occurred_at` is later than the server's receive time plus the clock-skew tolerance.
    FutureTime,
    /// Received after the late-grace window of its local day had closed.
    Late,
    /// Its kind is recorded but not one of the policy's counted kinds (a booth committee,
    /// a cadre camp, …). Blocking, so that every meeting that does not count says why;
    /// it is not suspicious, and an audit queue should skip it.
    NotCountedKind,
    /// A photo's EXIF capture time is far from `occurred_at`.
    PhotoTimeMismatch,
    /// A photo's EXIF GPS is far from the reported location.
    PhotoLocationMismatch,
    /// The meeting was reported without a location.
    NoLocation,
}

impl Flag {
    pub const ALL: [Flag; 10] = [
        Flag::MissingPhoto,
        Flag::Rejected,
        Flag::DuplicatePhoto,
        Flag::TooClose,
        Flag::FutureTime,
        Flag::Late,
        Flag::NotCountedKind,
        Flag::PhotoTimeMismatch,
        Flag::PhotoLocationMismatch,
        Flag::NoLocation,
    ];

    /// The stable code a field app or an API filter (`?flag=`) switches on.
    pub fn code(self) -> &'static str {
        match self {
            Flag::MissingPhoto => "missing_photo",
            Flag::Rejected => "rejected",
            Flag::DuplicatePhoto => "duplicate_photo",
            Flag::TooClose => "too_close",
            Flag::FutureTime => "future_time",
            Flag::Late => "late",
            Flag::NotCountedKind => "not_counted_kind",
            Flag::PhotoTimeMismatch => "photo_time_mismatch",
            Flag::PhotoLocationMismatch => "photo_location_mismatch",
            Flag::NoLocation => "no_location",
        }
    }

    /// Does this flag stop the meeting counting? The others only send it to audit.
    pub fn blocks_count(self) -> bool {
        !matches!(
            self,
            Flag::PhotoTimeMismatch | Flag::PhotoLocationMismatch | Flag::NoLocation
        )
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown flag {0:?}")]
pub struct UnknownFlag(pub String);

impl FromStr for Flag {
    type Err = UnknownFlag;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Flag::ALL
            .into_iter()
            .find(|f| f.code() == s)
            .ok_or_else(|| UnknownFlag(s.to_owned()))
    }
}

/// One flag on one meeting, as listed in API.md:
/// `{"code", "detail", "related_meeting_id"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagEntry {
    #[serde(rename = "code")]
    pub flag: Flag,
    /// A human explanation with the numbers behind it.
    pub detail: String,
    /// The other meeting the flag is about (the earlier user of a duplicate photo, the
    /// counted meeting a `too_close` one was too close to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_meeting_id: Option<MeetingId>,
}

impl FlagEntry {
    pub fn new(flag: Flag, detail: impl Into<String>) -> Self {
        FlagEntry {
            flag,
            detail: detail.into(),
            related_meeting_id: None,
        }
    }

    pub fn related(mut self, id: MeetingId) -> Self {
        self.related_meeting_id = Some(id);
        self
    }
}

/// Puts flags in the canonical order (by [`Flag`] order, stable within one flag), e.g.
/// after merging a meeting's own flags with the `too_close` of its day.
pub fn sort_flags(flags: &mut [FlagEntry]) {
    flags.sort_by_key(|f| f.flag);
}

/// Most photos one meeting may carry.
pub const MAX_PHOTOS: usize = 10;

/// The `location` of a meeting as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
}

/// The `data` of a `meeting.upsert` mutation before validation. Unknown fields are
/// refused so a misspelt field is reported instead of silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeeting {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub occurred_at: Option<String>,
    pub ended_at: Option<String>,
    pub area_id: Option<String>,
    pub location: Option<RawLocation>,
    pub attendee_count: Option<i64>,
    pub topic: Option<String>,
    pub notes: Option<String>,
    pub photos: Option<Vec<String>>,
    /// For an edit: the version the device last saw. A stale edit (someone else's
    /// change came in between) is refused instead of overwriting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<i64>,
}

/// A reported location with the device's accuracy estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    #[serde(flatten)]
    pub point: GeoPoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
}

/// A checked meeting report. Times keep the offset the device sent, so what the
/// in-charge saw can be shown back; the quota works on the instant
/// ([`crate::quota::local_day`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingInput {
    pub id: MeetingId,
    pub kind: MeetingKind,
    pub occurred_at: DateTime<FixedOffset>,
    pub ended_at: Option<DateTime<FixedOffset>>,
    pub area_id: AreaId,
    pub location: Option<Location>,
    pub attendee_count: u32,
    pub topic: String,
    pub notes: String,
    /// Lowercase hex SHA-256 of each photo, in the order sent, without repeats.
    pub photos: Vec<String>,
}

/// The `data` of a `feedback.create` mutation before validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeedback {
    pub id: Option<String>,
    pub constituency_id: Option<String>,
    pub subject: Option<String>,
    pub rating: Option<i64>,
    pub text: Option<String>,
    pub collected_at: Option<String>,
    pub respondents: Option<i64>,
}

/// A checked piece of public feedback on a leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackInput {
    pub id: FeedbackId,
    pub constituency_id: AreaId,
    /// The leader the feedback is about, trimmed.
    pub subject: String,
    pub rating: u8,
    pub text: String,
    pub collected_at: DateTime<FixedOffset>,
    pub respondents: u32,
}

/// Collects field errors so every bad field of a body is reported at once.
struct Checker {
    prefix: &'static str,
    errors: Vec<ValidationError>,
}

impl Checker {
    fn new(prefix: &'static str) -> Self {
        Checker {
            prefix,
            errors: Vec::new(),
        }
    }

    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    fn fail(&mut self, name: &str, message: impl Into<String>) {
        let field = self.field(name);
        self.errors.push(ValidationError::new(field, message));
    }

    fn required<'a, T>(&mut self, name: &str, value: &'a Option<T>) -> Option<&'a T> {
        if value.is_none() {
            self.fail(name, "is required");
        }
        value.as_ref()
    }

    fn uuid<T: From<Uuid>>(&mut self, name: &str, value: &Option<String>) -> Option<T> {
        let raw = self.required(name, value)?;
        match Uuid::parse_str(raw) {
            Ok(u) => Some(T::from(u)),
            Err(_) => {
                self.fail(name, "must be a UUID");
                None
            }
        }
    }

    fn time(&mut self, name: &str, raw: &str) -> Option<DateTime<FixedOffset>> {
        match DateTime::parse_from_rfc3339(raw) {
            // Years outside this range are device clock garbage, and would only make
            // trouble in database date functions later.
            Ok(t) if (2000..=2100).contains(&t.year()) => Some(t),
            Ok(_) => {
                self.fail(name, "must be between the years 2000 and 2100");
                None
            }
            Err(_) => {
                self.fail(
                    name,
                    "must be an RFC 3339 time with an offset, e.g. 2026-11-23T10:05:00+05:30",
                );
                None
            }
        }
    }

    fn int_in<T: TryFrom<i64>>(
        &mut self,
        name: &str,
        value: &Option<i64>,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let v = *self.required(name, value)?;
        if !(min..=max).contains(&v) {
            self.fail(name, format!("must be {min} to {max}"));
            return None;
        }
        match T::try_from(v) {
            Ok(t) => Some(t),
            Err(_) => {
                self.fail(name, format!("must be {min} to {max}"));
                None
            }
        }
    }

    /// Free text: any script, kept exactly as sent (Hindi must round-trip), bounded in
    /// characters, no control characters except, where allowed, line breaks and tabs.
    fn text(&mut self, name: &str, value: &Option<String>, max_chars: usize, multiline: bool) {
        let Some(s) = value else { return };
        if s.chars().count() > max_chars {
            self.fail(name, format!("must be at most {max_chars} characters"));
        }
        let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
        if s.chars().any(|c| c.is_control() && !allowed(c)) {
            self.fail(name, "must not contain control characters");
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, Vec<ValidationError>> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(self.errors),
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks the `data` of a `meeting.upsert`. Field names in errors are `data.<field>`
/// (`data.location.lat`, `data.photos[2]`), as the problem envelope reports them.
///
/// Required: `id`, `kind`, `occurred_at`, `area_id`, `attendee_count`. Optional:
/// `ended_at` (not before `occurred_at`), `location` (with `lat` and `lon`), `topic`
/// (≤ 500 characters), `notes` (≤ 5000), `photos` (missing means none; a meeting
/// without photos is stored and flagged `missing_photo`, not refused).
pub fn validate_meeting(raw: &RawMeeting) -> Result<MeetingInput, Vec<ValidationError>> {
    let mut c = Checker::new("data");

    let id = c.uuid::<MeetingId>("id", &raw.id);
    let area_id = c.uuid::<AreaId>("area_id", &raw.area_id);
    let kind = c
        .required("kind", &raw.kind)
        .and_then(|k| match k.parse::<MeetingKind>() {
            Ok(kind) => Some(kind),
            Err(e) => {
                c.fail("kind", e.to_string());
                None
            }
        });
    let occurred_at = c
        .required("occurred_at", &raw.occurred_at)
        .and_then(|s| c.time("occurred_at", s));
    let ended_at = match &raw.ended_at {
        None => Some(None),
        Some(s) => c.time("ended_at", s).map(Some),
    };
    if let (Some(start), Some(Some(end))) = (occurred_at, ended_at)
        && end < start
    {
        c.fail("ended_at", "must not be before occurred_at");
    }

    let location = raw.location.as_ref().and_then(|loc| {
        let lat = c.required("location.lat", &loc.lat).copied();
        let lon = c.required("location.lon", &loc.lon).copied();
        if let Some(acc) = loc.accuracy_m
            && !(acc.is_finite() && (0.0..=100_000.0).contains(&acc))
        {
            c.fail("location.accuracy_m", "must be 0 to 100000");
        }
        match GeoPoint::new(lat?, lon?) {
            Ok(point) => Some(Location {
                point,
                accuracy_m: loc.accuracy_m,
            }),
            Err(GeoError::Latitude) => {
                c.fail("location.lat", "must be a number from -90 to 90");
                None
            }
            Err(GeoError::Longitude) => {
                c.fail("location.lon", "must be a number from -180 to 180");
                None
            }
        }
    });

    let attendee_count = c.int_in::<u32>("attendee_count", &raw.attendee_count, 0, 10_000);
    c.text("topic", &raw.topic, 500, false);
    c.text("notes", &raw.notes, 5000, true);

    let photos = raw.photos.clone().unwrap_or_default();
    if photos.len() > MAX_PHOTOS {
        c.fail("photos", format!("must have at most {MAX_PHOTOS} photos"));
    }
    for (i, sha) in photos.iter().enumerate() {
        if !is_sha256_hex(sha) {
            c.fail(
                &format!("photos[{i}]"),
                "must be a SHA-256 as 64 lowercase hex digits",
            );
        } else if photos[..i].contains(sha) {
            c.fail(&format!("photos[{i}]"), "repeats an earlier photo");
        }
    }

    let input = (|| {
        Some(MeetingInput {
            id: id?,
            kind: kind?,
            occurred_at: occurred_at?,
            ended_at: ended_at?,
            area_id: area_id?,
            location,
            attendee_count: attendee_count?,
            topic: raw.topic.clone().unwrap_or_default(),
            notes: raw.notes.clone().unwrap_or_default(),
            photos,
        })
    })();
    c.finish(input)
}

/// Checks the `data` of a `feedback.create`. Field names in errors are `data.<field>`.
/// All fields but `text` are required.
pub fn validate_feedback(raw: &RawFeedback) -> Result<FeedbackInput, Vec<ValidationError>> {
    let mut c = Checker::new("data");

    let id = c.uuid::<FeedbackId>("id", &raw.id);
    let constituency_id = c.uuid::<AreaId>("constituency_id", &raw.constituency_id);
    let subject = c.required("subject", &raw.subject).and_then(|s| {
        display_name(&c.field("subject"), s)
            .map_err(|e| c.errors.push(e))
            .ok()
    });
    let rating = c.int_in::<u8>("rating", &raw.rating, 1, 5);
    c.text("text", &raw.text, 5000, true);
    let collected_at = c
        .required("collected_at", &raw.collected_at)
        .and_then(|s| c.time("collected_at", s));
    let respondents = c.int_in::<u32>("respondents", &raw.respondents, 1, 10_000);

    let input = (|| {
        Some(FeedbackInput {
            id: id?,
            constituency_id: constituency_id?,
            subject: subject?,
            rating: rating?,
            text: raw.text.clone().unwrap_or_default(),
            collected_at: collected_at?,
            respondents: respondents?,
        })
    })();
    c.finish(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn flag_codes_order_and_blocking() {
        let codes: Vec<&str> = Flag::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(
            codes,
            [
                "missing_photo",
                "rejected",
                "duplicate_photo",
                "too_close",
                "future_time",
                "late",
                "not_counted_kind",
                "photo_time_mismatch",
                "photo_location_mismatch",
                "no_location",
            ]
        );
        for f in Flag::ALL {
            assert_eq!(serde_json::to_value(f).unwrap(), json!(f.code()));
            assert_eq!(f.code().parse::<Flag>().unwrap(), f);
        }
        let blocking: Vec<Flag> = Flag::ALL.into_iter().filter(|f| f.blocks_count()).collect();
        assert_eq!(blocking, Flag::ALL[..7]);
        let mut sorted = Flag::ALL;
        sorted.reverse();
        sorted.sort();
        assert_eq!(sorted, Flag::ALL, "Ord follows the listing order");
        assert!("Late".parse::<Flag>().is_err());
    }

    #[test]
    fn flag_entry_wire_shape() {
        let id: MeetingId = "0190c0de-0000-7000-8000-000000000001".parse().unwrap();
        let with = FlagEntry::new(Flag::DuplicatePhoto, "same photo").related(id);
        assert_eq!(
            serde_json::to_value(&with).unwrap(),
            json!({"code": "duplicate_photo", "detail": "same photo",
                   "related_meeting_id": "0190c0de-0000-7000-8000-000000000001"})
        );
        let without = FlagEntry::new(Flag::NoLocation, "no location");
        let v = serde_json::to_value(&without).unwrap();
        assert_eq!(v, json!({"code": "no_location", "detail": "no location"}));
        assert_eq!(serde_json::from_value::<FlagEntry>(v).unwrap(), without);

        let mut flags = vec![
            FlagEntry::new(Flag::NoLocation, "3"),
            FlagEntry::new(Flag::TooClose, "2"),
            FlagEntry::new(Flag::MissingPhoto, "1"),
        ];
        sort_flags(&mut flags);
        let details: Vec<&str> = flags.iter().map(|f| f.detail.as_str()).collect();
        assert_eq!(details, ["1", "2", "3"]);
    }

    #[test]
    fn decisions() {
        assert_eq!(
            serde_json::to_value(Decision::Accepted).unwrap(),
            json!("accepted")
        );
        assert_eq!(
            serde_json::from_value::<Decision>(json!("rejected")).unwrap(),
            Decision::Rejected
        );
        assert_eq!("rejected".parse::<Decision>().unwrap(), Decision::Rejected);
        assert!("Rejected".parse::<Decision>().is_err());
    }

    #[test]
    fn geo_points() {
        let cases: &[(f64, f64, Result<(), GeoError>)] = &[
            (26.85, 80.95, Ok(())),
            (90.0, 180.0, Ok(())),
            (-90.0, -180.0, Ok(())),
            (90.1, 0.0, Err(GeoError::Latitude)),
            (f64::NAN, 0.0, Err(GeoError::Latitude)),
            (0.0, -180.5, Err(GeoError::Longitude)),
            (0.0, f64::INFINITY, Err(GeoError::Longitude)),
        ];
        for &(lat, lon, want) in cases {
            assert_eq!(GeoPoint::new(lat, lon).map(|_| ()), want, "{lat},{lon}");
        }
        assert!(serde_json::from_value::<GeoPoint>(json!({"lat": 91, "lon": 0})).is_err());
        let p: GeoPoint = serde_json::from_value(json!({"lat": 26.85, "lon": 80.95})).unwrap();
        assert_eq!((p.lat(), p.lon()), (26.85, 80.95));
    }

    #[test]
    fn haversine_distances() {
        let g = |lat, lon| GeoPoint::new(lat, lon).unwrap();
        // (from, to, km, tolerance)
        let cases = [
            (g(26.85, 80.95), g(26.85, 80.95), 0.0, 1e-9),
            // Lucknow → New Delhi, ~417 km as the crow flies.
            (g(26.8467, 80.9462), g(28.6139, 77.2090), 417.0, 5.0),
            // One degree of latitude is ~111.2 km anywhere.
            (g(10.0, 76.0), g(11.0, 76.0), 111.2, 0.2),
            // Across the antimeridian is short, not half the world.
            (g(0.0, 179.9), g(0.0, -179.9), 22.2, 0.2),
            // Antipodes: half the circumference.
            (g(0.0, 0.0), g(0.0, 180.0), 20015.1, 1.0),
        ];
        for (a, b, km, tol) in cases {
            let d = a.haversine_km(b);
            assert!((d - km).abs() <= tol, "{a:?}→{b:?}: {d}");
            assert!((b.haversine_km(a) - d).abs() < 1e-9, "symmetric");
        }
    }

    fn good_meeting() -> RawMeeting {
        RawMeeting {
            id: Some("0190c0de-0000-7000-8000-000000000001".into()),
            kind: Some("small_meeting".into()),
            occurred_at: Some("2026-11-23T10:05:00+05:30".into()),
            ended_at: None,
            area_id: Some("0190c0de-0000-7000-8000-0000000000aa".into()),
            location: Some(RawLocation {
                lat: Some(26.85),
                lon: Some(80.95),
                accuracy_m: Some(12.0),
            }),
            attendee_count: Some(14),
            topic: Some("बिजली और पानी".into()),
            notes: Some("पहली पंक्ति\nदूसरी पंक्ति".into()),
            photos: Some(vec![SHA_A.into(), SHA_B.into()]),
            base_version: None,
        }
    }

    #[test]
    fn a_good_meeting_parses_from_the_wire_shape() {
        let wire = json!({
            "id": "0190c0de-0000-7000-8000-000000000001", "kind": "small_meeting",
            "occurred_at": "2026-11-23T10:05:00+05:30", "ended_at": null,
            "area_id": "0190c0de-0000-7000-8000-0000000000aa",
            "location": {"lat": 26.85, "lon": 80.95, "accuracy_m": 12},
            "attendee_count": 14, "topic": "बिजली और पानी",
            "notes": "पहली पंक्ति\nदूसरी पंक्ति", "photos": [SHA_A, SHA_B]
        });
        let raw: RawMeeting = serde_json::from_value(wire).unwrap();
        assert_eq!(raw, good_meeting());
        let m = validate_meeting(&raw).unwrap();
        assert_eq!(m.kind, MeetingKind::SmallMeeting);
        assert_eq!(m.occurred_at.offset().local_minus_utc(), 19800);
        assert_eq!(m.occurred_at.to_rfc3339(), "2026-11-23T10:05:00+05:30");
        assert_eq!(m.topic, "बिजली और पानी", "Hindi unchanged");
        assert_eq!(m.attendee_count, 14);
        assert_eq!(m.photos, [SHA_A, SHA_B]);
        let loc = m.location.unwrap();
        assert_eq!((loc.point.lat(), loc.accuracy_m), (26.85, Some(12.0)));
    }

    #[test]
    fn a_checked_meeting_round_trips_through_serde() {
        let m = validate_meeting(&good_meeting()).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v["location"],
            json!({"lat": 26.85, "lon": 80.95, "accuracy_m": 12.0})
        );
        assert_eq!(v["occurred_at"], "2026-11-23T10:05:00+05:30");
        assert_eq!(serde_json::from_value::<MeetingInput>(v).unwrap(), m);
    }

    #[test]
    fn a_minimal_meeting_parses() {
        let raw = RawMeeting {
            location: None,
            topic: None,
            notes: None,
            photos: None,
            ..good_meeting()
        };
        let m = validate_meeting(&raw).unwrap();
        assert!(m.photos.is_empty() && m.location.is_none() && m.topic.is_empty());
    }

    #[test]
    fn meeting_validation_errors() {
        type Edit = fn(&mut RawMeeting);
        let sixty_four_upper = SHA_A.to_uppercase();
        let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
            ("ok", |_| {}, vec![]),
            ("missing id", |m| m.id = None, vec!["data.id"]),
            ("bad id", |m| m.id = Some("42".into()), vec!["data.id"]),
            ("missing kind", |m| m.kind = None, vec!["data.kind"]),
            (
                "bad kind",
                |m| m.kind = Some("rally".into()),
                vec!["data.kind"],
            ),
            (
                "missing time",
                |m| m.occurred_at = None,
                vec!["data.occurred_at"],
            ),
            (
                "time without offset",
                |m| m.occurred_at = Some("2026-11-23T10:05:00".into()),
                vec!["data.occurred_at"],
            ),
            (
                "time of a reset clock",
                |m| m.occurred_at = Some("1970-01-01T00:00:00Z".into()),
                vec!["data.occurred_at"],
            ),
            (
                "ended before it began",
                |m| m.ended_at = Some("2026-11-23T09:00:00+05:30".into()),
                vec!["data.ended_at"],
            ),
            (
                "ended later, other offset",
                |m| m.ended_at = Some("2026-11-23T05:00:00Z".into()),
                vec![],
            ),
            (
                "bad ended_at",
                |m| m.ended_at = Some("soon".into()),
                vec!["data.ended_at"],
            ),
            (
                "bad area",
                |m| m.area_id = Some(String::new()),
                vec!["data.area_id"],
            ),
            (
                "latitude out of range",
                |m| m.location.as_mut().unwrap().lat = Some(95.0),
                vec!["data.location.lat"],
            ),
            (
                "longitude missing",
                |m| m.location.as_mut().unwrap().lon = None,
                vec!["data.location.lon"],
            ),
            (
                "negative accuracy",
                |m| m.location.as_mut().unwrap().accuracy_m = Some(-1.0),
                vec!["data.location.accuracy_m"],
            ),
            (
                "no attendees is fine",
                |m| m.attendee_count = Some(0),
                vec![],
            ),
            (
                "attendees missing",
                |m| m.attendee_count = None,
                vec!["data.attendee_count"],
            ),
            (
                "attendees negative",
                |m| m.attendee_count = Some(-1),
                vec!["data.attendee_count"],
            ),
            (
                "attendees too many",
                |m| m.attendee_count = Some(10_001),
                vec!["data.attendee_count"],
            ),
            (
                "topic 500 Hindi characters",
                |m| m.topic = Some("क".repeat(500)),
                vec![],
            ),
            (
                "topic too long",
                |m| m.topic = Some("क".repeat(501)),
                vec!["data.topic"],
            ),
            (
                "topic with a zero-width joiner (Cf, not a control)",
                |m| m.topic = Some("क्\u{200d}ष".into()),
                vec![],
            ),
            (
                "topic with a newline",
                |m| m.topic = Some("a\nb".into()),
                vec!["data.topic"],
            ),
            (
                "notes too long",
                |m| m.notes = Some("x".repeat(5001)),
                vec!["data.notes"],
            ),
            (
                "notes with NUL",
                |m| m.notes = Some("a\u{0}b".into()),
                vec!["data.notes"],
            ),
            (
                "ten photos",
                |m| m.photos = Some((0..10).map(|i| format!("{i:064x}")).collect()),
                vec![],
            ),
            (
                "eleven photos",
                |m| m.photos = Some((0..11).map(|i| format!("{i:064x}")).collect()),
                vec!["data.photos"],
            ),
            (
                "short hash",
                |m| m.photos = Some(vec!["abc".into()]),
                vec!["data.photos[0]"],
            ),
            (
                "repeated photo",
                |m| m.photos = Some(vec![SHA_A.into(), SHA_B.into(), SHA_A.into()]),
                vec!["data.photos[2]"],
            ),
            (
                "many at once",
                |m| {
                    m.kind = None;
                    m.attendee_count = Some(-5);
                    m.photos = Some(vec!["zz".into()]);
                },
                vec!["data.kind", "data.attendee_count", "data.photos[0]"],
            ),
        ];
        for (name, edit, want) in cases {
            let mut raw = good_meeting();
            edit(&mut raw);
            let got: Vec<String> = match validate_meeting(&raw) {
                Ok(_) => vec![],
                Err(errs) => errs.into_iter().map(|e| e.field).collect(),
            };
            assert_eq!(got, want, "{name}");
        }

        // Uppercase hex is refused rather than folded: the path of `PUT /v1/media` and
        // the stored key are lowercase, so two spellings must not name one photo.
        let raw = RawMeeting {
            photos: Some(vec![sixty_four_upper]),
            ..good_meeting()
        };
        let errs = validate_meeting(&raw).unwrap_err();
        assert_eq!(errs[0].field, "data.photos[0]");
        assert!(errs[0].message.contains("lowercase"));
    }

    fn good_feedback() -> RawFeedback {
        RawFeedback {
            id: Some("0190c0de-0000-7000-8000-000000000002".into()),
            constituency_id: Some("0190c0de-0000-7000-8000-0000000000bb".into()),
            subject: Some(" रवि कुमार ".into()),
            rating: Some(4),
            text: Some("अच्छे नेता".into()),
            collected_at: Some("2026-11-23T18:00:00+05:30".into()),
            respondents: Some(6),
        }
    }

    #[test]
    fn a_good_feedback_parses() {
        let wire = json!({
            "id": "0190c0de-0000-7000-8000-000000000002",
            "constituency_id": "0190c0de-0000-7000-8000-0000000000bb",
            "subject": " रवि कुमार ", "rating": 4, "text": "अच्छे नेता",
            "collected_at": "2026-11-23T18:00:00+05:30", "respondents": 6
        });
        let raw: RawFeedback = serde_json::from_value(wire).unwrap();
        assert_eq!(raw, good_feedback());
        let f = validate_feedback(&raw).unwrap();
        assert_eq!(f.subject, "रवि कुमार");
        assert_eq!(f.text, "अच्छे नेता");
        assert_eq!((f.rating, f.respondents), (4, 6));
    }

    #[test]
    fn feedback_validation_errors() {
        type Edit = fn(&mut RawFeedback);
        let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
            ("ok", |_| {}, vec![]),
            ("no text is fine", |f| f.text = None, vec![]),
            ("missing id", |f| f.id = None, vec!["data.id"]),
            (
                "bad constituency",
                |f| f.constituency_id = Some("x".into()),
                vec!["data.constituency_id"],
            ),
            (
                "missing subject",
                |f| f.subject = None,
                vec!["data.subject"],
            ),
            (
                "blank subject",
                |f| f.subject = Some("   ".into()),
                vec!["data.subject"],
            ),
            (
                "subject too long",
                |f| f.subject = Some("न".repeat(201)),
                vec!["data.subject"],
            ),
            ("rating zero", |f| f.rating = Some(0), vec!["data.rating"]),
            ("rating six", |f| f.rating = Some(6), vec!["data.rating"]),
            ("rating one", |f| f.rating = Some(1), vec![]),
            ("rating missing", |f| f.rating = None, vec!["data.rating"]),
            (
                "text too long",
                |f| f.text = Some("x".repeat(5001)),
                vec!["data.text"],
            ),
            (
                "bad time",
                |f| f.collected_at = Some("yesterday".into()),
                vec!["data.collected_at"],
            ),
            (
                "no respondents",
                |f| f.respondents = Some(0),
                vec!["data.respondents"],
            ),
            (
                "too many respondents",
                |f| f.respondents = Some(10_001),
                vec!["data.respondents"],
            ),
        ];
        for (name, edit, want) in cases {
            let mut raw = good_feedback();
            edit(&mut raw);
            let got: Vec<String> = match validate_feedback(&raw) {
                Ok(_) => vec![],
                Err(errs) => errs.into_iter().map(|e| e.field).collect(),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn ids_parse_and_serialise_as_plain_uuids() {
        let id = MeetingId::new();
        assert_eq!(id.to_string().parse::<MeetingId>().unwrap(), id);
        assert_eq!(serde_json::to_value(id).unwrap(), json!(id.0.to_string()));
        assert_ne!(FeedbackId::new(), FeedbackId::new());
    }
}
