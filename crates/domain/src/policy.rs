//! The quota policy HQ sets (DESIGN.md, "Quota rules") and the kinds of meeting it
//! talks about.
//!
//! The policy is plain data: `GET /v1/policy` serialises it and `PUT /v1/policy` takes the
//! same shape back. Every number the quota rules use lives here, so a policy change is a
//! change of facts that the evaluation in [`crate::quota`] re-applies, never a code change.

use crate::validate::ValidationError;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What kind of gathering a meeting was. Only the kinds in
/// [`Policy::counted_kinds`] count towards the daily quota; the others are recorded and
/// flagged `not_counted_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingKind {
    SmallMeeting,
    BoothCommittee,
    CadreCamp,
    BhagidariSammelan,
    Other,
}

impl MeetingKind {
    pub const ALL: [MeetingKind; 5] = [
        MeetingKind::SmallMeeting,
        MeetingKind::BoothCommittee,
        MeetingKind::CadreCamp,
        MeetingKind::BhagidariSammelan,
        MeetingKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeetingKind::SmallMeeting => "small_meeting",
            MeetingKind::BoothCommittee => "booth_committee",
            MeetingKind::CadreCamp => "cadre_camp",
            MeetingKind::BhagidariSammelan => "bhagidari_sammelan",
            MeetingKind::Other => "other",
        }
    }
}

impl fmt::Display for MeetingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown meeting kind {0:?}: expected small_meeting, booth_committee, cadre_camp, \
     bhagidari_sammelan or other"
)]
pub struct UnknownMeetingKind(pub String);

impl FromStr for MeetingKind {
    type Err = UnknownMeetingKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MeetingKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownMeetingKind(s.to_owned()))
    }
}

/// The quota policy. Defaults are DESIGN.md's.
///
/// Deserialisation fills a missing field with its default, so a policy stored before a
/// field existed still loads, and rejects unknown fields, so a misspelt field in a
/// `PUT /v1/policy` is an error rather than a silently ignored edit. It also rejects an
/// unknown time zone or meeting kind; [`Policy::validate`] checks the numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Counted meetings a day needs to be `met`.
    pub min_per_day: u32,
    /// Counted meetings that make a day `target_met`.
    pub target_per_day: u32,
    /// The zone whose calendar days the quota is kept in, as an IANA name on the wire.
    #[serde(with = "tz_name")]
    pub timezone: Tz,
    /// Meeting kinds that count towards the quota.
    pub counted_kinds: Vec<MeetingKind>,
    /// A meeting counts only this long after the previous counted one of the same day.
    pub min_gap_minutes: u32,
    /// A meeting received after the end of its local day plus this many days is `late`,
    /// and the day is `final` once that moment has passed.
    pub late_grace_days: u32,
    /// How far a device clock may run ahead of the server before `future_time`.
    pub skew_tolerance_minutes: u32,
    /// Largest pHash distance (of 64 bits) at which two photos are the same photo.
    pub duplicate_phash_distance: u32,
    /// An in-charge without a counted meeting for this long is `inactive`.
    pub inactive_after_days: u32,
    /// EXIF capture time further than this from `occurred_at` goes to the audit queue.
    pub photo_time_mismatch_hours: u32,
    /// EXIF GPS further than this from the reported location goes to the audit queue.
    pub photo_location_mismatch_km: f64,
    /// A coordinator's review of an in-charge older than this is `overdue`.
    pub review_interval_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_per_day: 4,
            target_per_day: 5,
            timezone: chrono_tz::Asia::Kolkata,
            counted_kinds: vec![MeetingKind::SmallMeeting],
            min_gap_minutes: 15,
            late_grace_days: 7,
            skew_tolerance_minutes: 10,
            duplicate_phash_distance: 10,
            inactive_after_days: 3,
            photo_time_mismatch_hours: 3,
            photo_location_mismatch_km: 5.0,
            review_interval_days: 7,
        }
    }
}

/// Upper bound of [`Policy::duplicate_phash_distance`]: beyond half the bits of a 64-bit
/// hash, unrelated photos match (DESIGN.md measured distinct photos at ≥ 20).
pub const MAX_DUPLICATE_PHASH_DISTANCE: u32 = 32;

const MINUTES_PER_DAY: u64 = 24 * 60;

impl Policy {
    /// Checks that the numbers make sense together. Reports every bad field at once so
    /// HQ can fix a policy in one round trip.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                errors.push(ValidationError::new(field, message));
            }
        };

        check(
            (1..=100).contains(&self.min_per_day),
            "min_per_day",
            "must be 1 to 100",
        );
        let target_ok = self.target_per_day >= self.min_per_day && self.target_per_day <= 100;
        check(
            target_ok,
            "target_per_day",
            "must be at least min_per_day and at most 100",
        );
        let gap_ok = self.min_gap_minutes <= 720;
        check(gap_ok, "min_gap_minutes", "must be 0 to 720");
        // The gap rule must leave room for the target inside one local day, or no day
        // could ever be target_met (the gap does not reach across midnight). Checked
        // only when both numbers are otherwise fine, so one mistake is one error.
        check(
            !(target_ok && gap_ok)
                || u64::from(self.target_per_day.saturating_sub(1))
                    * u64::from(self.min_gap_minutes)
                    < MINUTES_PER_DAY,
            "min_gap_minutes",
            "leaves no room for target_per_day meetings in one day",
        );
        check(
            self.late_grace_days <= 90,
            "late_grace_days",
            "must be 0 to 90",
        );
        check(
            self.skew_tolerance_minutes <= 1440,
            "skew_tolerance_minutes",
            "must be 0 to 1440",
        );
        check(
            self.duplicate_phash_distance <= MAX_DUPLICATE_PHASH_DISTANCE,
            "duplicate_phash_distance",
            "must be 0 to 32",
        );
        check(
            (1..=365).contains(&self.inactive_after_days),
            "inactive_after_days",
            "must be 1 to 365",
        );
        check(
            (1..=168).contains(&self.photo_time_mismatch_hours),
            "photo_time_mismatch_hours",
            "must be 1 to 168",
        );
        check(
            self.photo_location_mismatch_km.is_finite()
                && self.photo_location_mismatch_km > 0.0
                && self.photo_location_mismatch_km <= 20_000.0,
            "photo_location_mismatch_km",
            "must be a number above 0 and at most 20000",
        );
        check(
            (1..=365).contains(&self.review_interval_days),
            "review_interval_days",
            "must be 1 to 365",
        );
        check(
            !self.counted_kinds.is_empty(),
            "counted_kinds",
            "must name at least one meeting kind",
        );
        let mut seen = Vec::with_capacity(self.counted_kinds.len());
        for kind in &self.counted_kinds {
            if seen.contains(kind) {
                check(false, "counted_kinds", "must not repeat a meeting kind");
                break;
            }
            seen.push(*kind);
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Does a meeting of this kind count towards the quota?
    pub fn counts_kind(&self, kind: MeetingKind) -> bool {
        self.counted_kinds.contains(&kind)
    }

    /// What a change from `self` to `new` makes the store redo. Fields that only feed
    /// on-demand answers (inactive, overdue) need nothing redone.
    pub fn change_impact(&self, new: &Policy) -> PolicyChangeImpact {
        let regroup_days = self.timezone != new.timezone;
        let meetings = regroup_days
            || self.counted_kinds != new.counted_kinds
            || self.late_grace_days != new.late_grace_days
            || self.skew_tolerance_minutes != new.skew_tolerance_minutes
            || self.duplicate_phash_distance != new.duplicate_phash_distance
            || self.photo_time_mismatch_hours != new.photo_time_mismatch_hours
            || self.photo_location_mismatch_km != new.photo_location_mismatch_km;
        let days = meetings
            || self.min_per_day != new.min_per_day
            || self.target_per_day != new.target_per_day
            || self.min_gap_minutes != new.min_gap_minutes;
        PolicyChangeImpact {
            meetings,
            days,
            regroup_days,
        }
    }
}

/// How much derived state a policy change invalidates; each level implies the ones
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyChangeImpact {
    /// Every meeting's own flags must be re-evaluated ([`crate::quota::evaluate_meeting`]).
    pub meetings: bool,
    /// Every day must be re-evaluated ([`crate::quota::evaluate_day`]).
    pub days: bool,
    /// The time zone changed: meetings may now belong to other local days, so days must
    /// be regrouped before they are re-evaluated.
    pub regroup_days: bool,
}

impl PolicyChangeImpact {
    pub fn is_none(self) -> bool {
        !(self.meetings || self.days || self.regroup_days)
    }
}

/// Parses an IANA zone name, exactly as spelt in the tz database (`Asia/Kolkata`).
pub fn parse_timezone(name: &str) -> Result<Tz, ValidationError> {
    name.parse::<Tz>()
        .map_err(|_| ValidationError::new("timezone", format!("unknown time zone {name:?}")))
}

/// (De)serialises a [`Tz`] as its IANA name, so the stored and the wire form are the
/// name HQ typed, and an unknown zone fails to deserialise.
mod tz_name {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        let name = String::deserialize(d)?;
        super::parse_timezone(&name).map_err(|e| D::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meeting_kinds_round_trip_and_reject_unknown() {
        for k in MeetingKind::ALL {
            assert_eq!(k.as_str().parse::<MeetingKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                json!(k.as_str()),
                "serde and as_str agree"
            );
        }
        for bad in ["", "Small_Meeting", "small meeting", "rally"] {
            assert!(bad.parse::<MeetingKind>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults_are_designs() {
        let p = Policy::default();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "min_per_day": 4,
                "target_per_day": 5,
                "timezone": "Asia/Kolkata",
                "counted_kinds": ["small_meeting"],
                "min_gap_minutes": 15,
                "late_grace_days": 7,
                "skew_tolerance_minutes": 10,
                "duplicate_phash_distance": 10,
                "inactive_after_days": 3,
                "photo_time_mismatch_hours": 3,
                "photo_location_mismatch_km": 5.0,
                "review_interval_days": 7
            })
        );
        assert_eq!(p.validate(), Ok(()));
        assert!(p.counts_kind(MeetingKind::SmallMeeting));
        assert!(!p.counts_kind(MeetingKind::CadreCamp));
    }

    #[test]
    fn serde_round_trip() {
        let p = Policy {
            min_per_day: 3,
            target_per_day: 6,
            timezone: chrono_tz::America::Sao_Paulo,
            counted_kinds: vec![MeetingKind::SmallMeeting, MeetingKind::BoothCommittee],
            photo_location_mismatch_km: 2.5,
            ..Policy::default()
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"America/Sao_Paulo\""), "{text}");
        let back: Policy = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn deserialisation_defaults_missing_and_rejects_unknown() {
        let p: Policy = serde_json::from_value(json!({"min_per_day": 3})).unwrap();
        assert_eq!(
            p,
            Policy {
                min_per_day: 3,
                ..Policy::default()
            }
        );

        let cases = [
            (json!({"timezone": "Asia/Calcutta_x"}), "unknown time zone"),
            (json!({"timezone": "asia/kolkata"}), "unknown time zone"),
            (json!({"timezone": 5}), "invalid type"),
            (json!({"counted_kinds": ["rally"]}), "unknown variant"),
            (json!({"min_per_dya": 4}), "unknown field"),
            (json!({"min_per_day": -1}), "invalid value"),
        ];
        for (input, want) in cases {
            let err = serde_json::from_value::<Policy>(input.clone()).unwrap_err();
            assert!(err.to_string().contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn validation_reports_each_bad_field() {
        type Edit = fn(&mut Policy);
        let cases: &[(&str, Edit, &[&str])] = &[
            ("default", |_| {}, &[]),
            ("min zero", |p| p.min_per_day = 0, &["min_per_day"]),
            (
                "min above target",
                |p| p.min_per_day = 6,
                &["target_per_day"],
            ),
            (
                "target equal to min",
                |p| p.target_per_day = p.min_per_day,
                &[],
            ),
            (
                "target too large",
                |p| p.target_per_day = 101,
                &["target_per_day"],
            ),
            (
                "gap too long",
                |p| p.min_gap_minutes = 721,
                &["min_gap_minutes"],
            ),
            (
                "gap leaves no room for the target",
                |p| p.min_gap_minutes = 360,
                &["min_gap_minutes"],
            ),
            ("gap zero", |p| p.min_gap_minutes = 0, &[]),
            (
                "grace too long",
                |p| p.late_grace_days = 91,
                &["late_grace_days"],
            ),
            ("grace zero", |p| p.late_grace_days = 0, &[]),
            (
                "skew too large",
                |p| p.skew_tolerance_minutes = 1441,
                &["skew_tolerance_minutes"],
            ),
            ("phash 32 ok", |p| p.duplicate_phash_distance = 32, &[]),
            (
                "phash 33",
                |p| p.duplicate_phash_distance = 33,
                &["duplicate_phash_distance"],
            ),
            (
                "inactive zero",
                |p| p.inactive_after_days = 0,
                &["inactive_after_days"],
            ),
            (
                "photo hours zero",
                |p| p.photo_time_mismatch_hours = 0,
                &["photo_time_mismatch_hours"],
            ),
            (
                "km nan",
                |p| p.photo_location_mismatch_km = f64::NAN,
                &["photo_location_mismatch_km"],
            ),
            (
                "km negative",
                |p| p.photo_location_mismatch_km = -1.0,
                &["photo_location_mismatch_km"],
            ),
            (
                "review zero",
                |p| p.review_interval_days = 0,
                &["review_interval_days"],
            ),
            (
                "no counted kinds",
                |p| p.counted_kinds.clear(),
                &["counted_kinds"],
            ),
            (
                "repeated counted kind",
                |p| p.counted_kinds = vec![MeetingKind::Other, MeetingKind::Other],
                &["counted_kinds"],
            ),
            (
                "several at once",
                |p| {
                    p.min_per_day = 0;
                    p.review_interval_days = 0;
                },
                &["min_per_day", "review_interval_days"],
            ),
        ];
        for (name, edit, want) in cases {
            let mut p = Policy::default();
            edit(&mut p);
            let got: Vec<String> = match p.validate() {
                Ok(()) => vec![],
                Err(errs) => errs.into_iter().map(|e| e.field).collect(),
            };
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn change_impact() {
        let old = Policy::default();
        type Edit = fn(&mut Policy);
        // (edit, meetings, days, regroup_days)
        let cases: &[(Edit, bool, bool, bool)] = &[
            (|_| {}, false, false, false),
            (|p| p.inactive_after_days = 5, false, false, false),
            (|p| p.review_interval_days = 5, false, false, false),
            (|p| p.min_per_day = 3, false, true, false),
            (|p| p.target_per_day = 6, false, true, false),
            (|p| p.min_gap_minutes = 20, false, true, false),
            (|p| p.late_grace_days = 3, true, true, false),
            (|p| p.duplicate_phash_distance = 4, true, true, false),
            (
                |p| p.counted_kinds.push(MeetingKind::CadreCamp),
                true,
                true,
                false,
            ),
            (|p| p.timezone = chrono_tz::UTC, true, true, true),
        ];
        for (i, (edit, meetings, days, regroup)) in cases.iter().enumerate() {
            let mut new = old.clone();
            edit(&mut new);
            let got = old.change_impact(&new);
            assert_eq!(
                (got.meetings, got.days, got.regroup_days),
                (*meetings, *days, *regroup),
                "case {i}"
            );
            assert_eq!(got.is_none(), !(*meetings || *days || *regroup));
        }
    }
}
