//! The quota rules of DESIGN.md as pure functions over stored facts.
//!
//! Evaluation has two levels so that the store can keep derived state up to date
//! incrementally:
//!
//! 1. [`evaluate_meeting`] looks at one meeting alone (its kind, photos, review, times and
//!    the duplicate hits the store found for it) and says whether it is *eligible*, with
//!    the flags that explain it. It changes only when that meeting's own facts change (an
//!    edit, a review) or the policy does.
//! 2. [`evaluate_day`] takes every meeting of one in-charge on one local day, with the
//!    eligibility from step 1, applies the minimum gap and derives the day's status.
//!    A meeting *counts* when it is eligible and not `too_close`.
//!
//! The minimum gap is measured only against earlier counted meetings of the same local
//! day; it does not reach across midnight. So a change to one day never cascades into the
//! next, and a late sync, a review or an edit re-evaluates exactly one meeting and one
//! day. The price is that 23:55 and 00:05 both count, which DESIGN.md's "per day" quota
//! reads as intended.
//!
//! All times are instants ([`DateTime<Utc>`]); the device's offset plays no part. The
//! local day of a meeting is the policy time zone's calendar day of its instant.

use crate::meeting::{Decision, Flag, FlagEntry, GeoPoint, MeetingId};
use crate::policy::{MeetingKind, Policy};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The calendar day, in `tz`, that the instant `at` falls on. A meeting at 23:50 IST
/// belongs to that IST day and one at 00:10 IST to the next, whatever offset the device
/// wrote the time with.
pub fn local_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The first instant of local day `day` in `tz`.
pub fn start_of_local_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    // A few zones skip local midnight on a DST change (the clock goes 23:59 → 01:00);
    // the day then starts at the first local time that exists. Step in quarter hours,
    // the finest offset granularity in the tz database, over at most a day.
    for quarter in 0..=96 {
        let Some(local) = midnight.checked_add_signed(TimeDelta::minutes(15 * quarter)) else {
            break;
        };
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // No real zone gets here; UTC midnight is a defined, if approximate, answer.
    midnight.and_utc()
}

/// The first instant after local day `day` has ended.
pub fn end_of_local_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    match day.succ_opt() {
        Some(next) => start_of_local_day(next, tz),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// The moment the late-grace window of `day` closes: the end of the local day plus
/// `late_grace_days` whole local days. A meeting received after it is `late`, and once
/// `now` is past it the day is `final`: no meeting that could still arrive will count for
/// it. With the defaults, a meeting of Monday 23 Nov (IST) counts if received by Monday
/// 30 Nov 24:00 IST.
///
/// Local days rather than `occurred_at` + 7 × 24 h so that every meeting of one day
/// shares one deadline, which makes "is this day final" a property of the day alone.
pub fn grace_deadline(day: NaiveDate, policy: &Policy) -> DateTime<Utc> {
    match day.checked_add_days(Days::new(u64::from(policy.late_grace_days))) {
        Some(last) => end_of_local_day(last, policy.timezone),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

fn add(at: DateTime<Utc>, delta: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(delta)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// What the media pipeline learned about one of a meeting's photos.
#[derive(Debug, Clone, PartialEq)]
pub struct PhotoFacts {
    pub sha256: String,
    /// Not read by the rules (the store's index finds near-duplicates and reports them as
    /// [`DuplicateHit`]s); carried so one value describes the photo.
    pub phash: Option<u64>,
    /// EXIF capture time as an instant. EXIF usually stores a local time without an
    /// offset; the media pipeline decides how to anchor it (OffsetTimeOriginal when
    /// present) before it gets here.
    pub taken_at: Option<DateTime<Utc>>,
    pub gps: Option<GeoPoint>,
}

/// One of this meeting's photos that an earlier meeting already used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateHit {
    /// This meeting's photo.
    pub sha256: String,
    /// The earlier meeting that used the same photo (or one within pHash distance).
    pub earlier_meeting: MeetingId,
    /// pHash distance between the two photos; 0 for the same SHA-256.
    pub distance: u32,
}

/// Everything [`evaluate_meeting`] needs about one meeting.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingFacts {
    pub id: MeetingId,
    pub kind: MeetingKind,
    pub occurred_at: DateTime<Utc>,
    /// When the server durably stored the meeting. Which receive time an edit carries is
    /// the store's choice: keeping the first one means fixing a typo never makes a
    /// meeting late, but also that an edit adding the first photo after the grace window
    /// can still change a day already `final`.
    pub received_at: DateTime<Utc>,
    pub location: Option<GeoPoint>,
    pub photos: Vec<PhotoFacts>,
    /// The latest review decision, if any.
    pub decision: Option<Decision>,
    /// Which of this meeting's photos an *earlier* meeting already used, of any in-charge.
    ///
    /// "Earlier" means stored earlier by the server (first `received_at`, ties broken by
    /// id), not earlier `occurred_at`: the meeting that reached the server first keeps the
    /// photo, so a device syncing days late can never take the count away from a meeting
    /// already counted, and a meeting's duplicate status never changes after it is stored
    /// (save for its own edits). The store finds these through its photo index, must not
    /// list the meeting itself, and may list hits up to
    /// [`crate::policy::MAX_DUPLICATE_PHASH_DISTANCE`]: evaluation applies the policy's
    /// current threshold, so a threshold change needs no new index lookups.
    pub duplicate_of: Vec<DuplicateHit>,
}

/// The verdict on one meeting on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingEvaluation {
    /// No blocking flag. The meeting counts if it is also not `too_close` on its day.
    pub eligible: bool,
    /// In [`Flag`] order, at most one entry per flag.
    pub flags: Vec<FlagEntry>,
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn fmt_minutes(d: TimeDelta) -> String {
    let m = d.num_minutes();
    if m.abs() >= 120 {
        format!("{:.1} h", d.num_seconds() as f64 / 3600.0)
    } else {
        format!("{m} min")
    }
}

/// Applies the per-meeting rules of DESIGN.md to one meeting. See the module docs for
/// how this combines with [`evaluate_day`].
pub fn evaluate_meeting(policy: &Policy, m: &MeetingFacts) -> MeetingEvaluation {
    let mut flags = Vec::new();

    if m.photos.is_empty() {
        flags.push(FlagEntry::new(
            Flag::MissingPhoto,
            "the meeting has no photo",
        ));
    }

    if m.decision == Some(Decision::Rejected) {
        flags.push(FlagEntry::new(Flag::Rejected, "rejected by a reviewer"));
    }

    // A meeting is a duplicate only when *every* photo was used before: one fresh photo
    // is evidence enough (DESIGN.md: "at least one of its photos is not already used").
    if !m.photos.is_empty() {
        let threshold = policy.duplicate_phash_distance;
        let best_hit = |sha: &str| {
            m.duplicate_of
                .iter()
                .filter(|h| h.sha256 == sha && h.distance <= threshold)
                .min_by_key(|h| (h.distance, h.earlier_meeting))
        };
        let hits: Option<Vec<&DuplicateHit>> =
            m.photos.iter().map(|p| best_hit(&p.sha256)).collect();
        if let Some(hits) = hits
            && let Some(first) = hits.first()
        {
            let what = if first.distance == 0 {
                "the same photo".to_owned()
            } else {
                format!("a photo within pHash distance {}", first.distance)
            };
            let detail = format!(
                "every photo ({n}) was already used by an earlier meeting; \
                 photo {sha} is {what} as in meeting {earlier}",
                n = hits.len(),
                sha = short_sha(&first.sha256),
                earlier = first.earlier_meeting,
            );
            flags.push(FlagEntry::new(Flag::DuplicatePhoto, detail).related(first.earlier_meeting));
        }
    }

    let skew = TimeDelta::minutes(i64::from(policy.skew_tolerance_minutes));
    if m.occurred_at > add(m.received_at, skew) {
        flags.push(FlagEntry::new(
            Flag::FutureTime,
            format!(
                "occurred_at is {} after the server received it (tolerance {} min)",
                fmt_minutes(m.occurred_at - m.received_at),
                policy.skew_tolerance_minutes
            ),
        ));
    }

    let day = local_day(m.occurred_at, policy.timezone);
    let deadline = grace_deadline(day, policy);
    if m.received_at > deadline {
        flags.push(FlagEntry::new(
            Flag::Late,
            format!(
                "received {} after the {}-day grace window of {day} closed",
                fmt_minutes(m.received_at - deadline),
                policy.late_grace_days
            ),
        ));
    }

    if !policy.counts_kind(m.kind) {
        flags.push(FlagEntry::new(
            Flag::NotCountedKind,
            format!("{} meetings are recorded but do not count", m.kind),
        ));
    }

    // Audit-only: report the photo furthest off, so the detail names the worst case.
    let time_limit = TimeDelta::hours(i64::from(policy.photo_time_mismatch_hours));
    let worst_time = m
        .photos
        .iter()
        .filter_map(|p| p.taken_at.map(|t| (p, (t - m.occurred_at).abs())))
        .filter(|(_, d)| *d > time_limit)
        .max_by_key(|(_, d)| *d);
    if let Some((p, d)) = worst_time {
        flags.push(FlagEntry::new(
            Flag::PhotoTimeMismatch,
            format!(
                "photo {} was taken {} away from occurred_at (limit {} h)",
                short_sha(&p.sha256),
                fmt_minutes(d),
                policy.photo_time_mismatch_hours
            ),
        ));
    }

    if let Some(loc) = m.location {
        let worst_place = m
            .photos
            .iter()
            .filter_map(|p| p.gps.map(|g| (p, g.haversine_km(loc))))
            .filter(|(_, km)| *km > policy.photo_location_mismatch_km)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((p, km)) = worst_place {
            flags.push(FlagEntry::new(
                Flag::PhotoLocationMismatch,
                format!(
                    "photo {} was taken {km:.1} km from the reported location (limit {} km)",
                    short_sha(&p.sha256),
                    policy.photo_location_mismatch_km
                ),
            ));
        }
    } else {
        flags.push(FlagEntry::new(
            Flag::NoLocation,
            "the meeting was reported without a location",
        ));
    }

    crate::meeting::sort_flags(&mut flags);
    MeetingEvaluation {
        eligible: !flags.iter().any(|f| f.flag.blocks_count()),
        flags,
    }
}

/// One meeting of the day being evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMeeting {
    pub id: MeetingId,
    pub occurred_at: DateTime<Utc>,
    /// From [`evaluate_meeting`].
    pub eligible: bool,
}

/// A day's standing for one in-charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayStatus {
    /// At least `min_per_day` counted.
    Met,
    /// Some counted, fewer than `min_per_day`.
    Short,
    /// Nothing counted.
    None,
    /// On leave or not yet assigned: the day is not held against the in-charge.
    Exempt,
}

impl DayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DayStatus::Met => "met",
            DayStatus::Short => "short",
            DayStatus::None => "none",
            DayStatus::Exempt => "exempt",
        }
    }
}

/// An eligible meeting that did not count because it came too soon after a counted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TooClose {
    pub meeting_id: MeetingId,
    /// The counted meeting it was too close to.
    pub previous_counted: MeetingId,
    /// How long after `previous_counted` it occurred.
    pub gap_seconds: i64,
}

impl TooClose {
    /// The flag to list on the meeting, next to its own flags (see
    /// [`crate::meeting::sort_flags`]).
    pub fn flag_entry(&self, policy: &Policy) -> FlagEntry {
        FlagEntry::new(
            Flag::TooClose,
            format!(
                "{} after the previous counted meeting; at least {} min needed",
                fmt_minutes(TimeDelta::seconds(self.gap_seconds)),
                policy.min_gap_minutes
            ),
        )
        .related(self.previous_counted)
    }
}

/// The evaluation of one in-charge's local day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayEvaluation {
    pub date: NaiveDate,
    pub counted: u32,
    /// All meetings of the day, counted or not.
    pub submitted: u32,
    pub status: DayStatus,
    pub target_met: bool,
    /// The late-grace window has closed ([`grace_deadline`]).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The meetings that counted, in time order.
    pub counted_ids: Vec<MeetingId>,
    /// Eligible meetings that did not count, in time order.
    pub too_close: Vec<TooClose>,
}

/// Evaluates one in-charge's local day `day` from ALL of that in-charge's meetings whose
/// [`local_day`] is `day` (the caller groups; evaluating depends on nothing else).
///
/// In order of `(occurred_at, id)`, an eligible meeting counts when it is at least
/// `min_gap_minutes` after the previous *counted* meeting of the day; otherwise it is
/// `too_close`. Ineligible meetings neither count nor hold the next one back, so a
/// rejection can let a later meeting count. Ties in time are broken by id so that the
/// result does not depend on the order the store returns rows in.
///
/// `exempt` days report their counts but have status [`DayStatus::Exempt`].
pub fn evaluate_day(
    policy: &Policy,
    day: NaiveDate,
    meetings: &[DayMeeting],
    exempt: bool,
    now: DateTime<Utc>,
) -> DayEvaluation {
    debug_assert!(
        meetings
            .iter()
            .all(|m| local_day(m.occurred_at, policy.timezone) == day),
        "evaluate_day got a meeting of another local day"
    );
    let mut ordered: Vec<&DayMeeting> = meetings.iter().collect();
    ordered.sort_by_key(|m| (m.occurred_at, m.id));

    let gap = TimeDelta::minutes(i64::from(policy.min_gap_minutes));
    let mut counted_ids = Vec::new();
    let mut too_close = Vec::new();
    let mut last_counted: Option<&DayMeeting> = None;
    for m in ordered.into_iter().filter(|m| m.eligible) {
        match last_counted {
            Some(prev) if m.occurred_at - prev.occurred_at < gap => too_close.push(TooClose {
                meeting_id: m.id,
                previous_counted: prev.id,
                gap_seconds: (m.occurred_at - prev.occurred_at).num_seconds(),
            }),
            _ => {
                counted_ids.push(m.id);
                last_counted = Some(m);
            }
        }
    }

    let counted = u32::try_from(counted_ids.len()).unwrap_or(u32::MAX);
    let status = if exempt {
        DayStatus::Exempt
    } else if counted == 0 {
        DayStatus::None
    } else if counted < policy.min_per_day {
        DayStatus::Short
    } else {
        DayStatus::Met
    };
    DayEvaluation {
        date: day,
        counted,
        submitted: u32::try_from(meetings.len()).unwrap_or(u32::MAX),
        status,
        target_met: counted >= policy.target_per_day,
        is_final: now > grace_deadline(day, policy),
        counted_ids,
        too_close,
    }
}

/// Is the in-charge inactive: no counted meeting for `inactive_after_days` × 24 h?
/// The clock starts at the later of the last counted meeting and `since` (when the
/// in-charge was created or last activated), so a newly assigned in-charge gets the
/// same head start as one who just held a meeting.
pub fn is_inactive(
    last_counted_at: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> bool {
    let reference = last_counted_at.map_or(since, |t| t.max(since));
    now >= add(
        reference,
        TimeDelta::days(i64::from(policy.inactive_after_days)),
    )
}

/// Is a review of this in-charge overdue: never reviewed, or last reviewed more than
/// `review_interval_days` × 24 h ago?
pub fn review_overdue(
    last_review_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    policy: &Policy,
) -> bool {
    match last_review_at {
        None => true,
        Some(t) => now > add(t, TimeDelta::days(i64::from(policy.review_interval_days))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, FixedOffset};
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::<FixedOffset>::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Meeting ids whose order follows `n`, so tie-breaks are predictable.
    fn mid(n: u128) -> MeetingId {
        MeetingId(Uuid::from_u128(n))
    }

    fn geo(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint::new(lat, lon).unwrap()
    }

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn photo(n: u8) -> PhotoFacts {
        PhotoFacts {
            sha256: sha(n),
            phash: Some(u64::from(n)),
            taken_at: None,
            gps: None,
        }
    }

    /// A meeting that counts under the default policy: 10:00 IST on 23 Nov 2026,
    /// received a minute later, one photo, located in Lucknow.
    fn good() -> MeetingFacts {
        MeetingFacts {
            id: mid(100),
            kind: MeetingKind::SmallMeeting,
            occurred_at: t("2026-11-23T10:00:00+05:30"),
            received_at: t("2026-11-23T10:01:00+05:30"),
            location: Some(geo(26.85, 80.95)),
            photos: vec![photo(1)],
            decision: None,
            duplicate_of: vec![],
        }
    }

    fn codes(e: &MeetingEvaluation) -> Vec<&'static str> {
        e.flags.iter().map(|f| f.flag.code()).collect()
    }

    #[test]
    fn local_day_follows_the_policy_zone_not_the_device_offset() {
        let ist = chrono_tz::Asia::Kolkata;
        let cases = [
            ("2026-11-23T23:50:00+05:30", "2026-11-23"),
            ("2026-11-23T18:20:00Z", "2026-11-23"), // the same instant as above
            ("2026-11-24T00:10:00+05:30", "2026-11-24"),
            ("2026-11-23T18:40:00Z", "2026-11-24"), // the same instant as above
            ("2026-11-23T18:40:00+00:00", "2026-11-24"),
            ("2026-11-23T13:40:00-05:00", "2026-11-24"), // a phone left on US time
            ("2026-11-23T18:29:59Z", "2026-11-23"),
            ("2026-11-23T18:30:00Z", "2026-11-24"), // IST midnight exactly
        ];
        for (at, want) in cases {
            assert_eq!(local_day(t(at), ist), d(want), "{at}");
        }
        // The same instants in another zone fall on other days.
        assert_eq!(
            local_day(t("2026-11-24T00:10:00+05:30"), chrono_tz::UTC),
            d("2026-11-23")
        );
    }

    #[test]
    fn day_boundaries() {
        let ist = chrono_tz::Asia::Kolkata;
        assert_eq!(
            start_of_local_day(d("2026-11-23"), ist),
            t("2026-11-23T00:00:00+05:30")
        );
        assert_eq!(
            end_of_local_day(d("2026-11-23"), ist),
            t("2026-11-24T00:00:00+05:30")
        );
        // Santiago skipped midnight on 2024-09-08 (00:00 → 01:00): the day starts at 01:00.
        let scl = chrono_tz::America::Santiago;
        assert_eq!(
            start_of_local_day(d("2024-09-08"), scl),
            t("2024-09-08T01:00:00-03:00")
        );
        // A 23-hour day in a DST zone ends 23 hours after it starts.
        let ny = chrono_tz::America::New_York;
        let day = d("2026-03-08");
        assert_eq!(
            end_of_local_day(day, ny) - start_of_local_day(day, ny),
            TimeDelta::hours(23)
        );
        assert_eq!(
            grace_deadline(d("2026-11-23"), &Policy::default()),
            t("2026-12-01T00:00:00+05:30")
        );
    }

    #[test]
    fn every_meeting_flag() {
        type Edit = fn(&mut MeetingFacts);
        let cases: &[(&str, Edit, &[&str], bool)] = &[
            ("clean", |_| {}, &[], true),
            ("no photo", |m| m.photos.clear(), &["missing_photo"], false),
            (
                "rejected",
                |m| m.decision = Some(Decision::Rejected),
                &["rejected"],
                false,
            ),
            (
                "accepted",
                |m| m.decision = Some(Decision::Accepted),
                &[],
                true,
            ),
            (
                "the only photo re-used",
                |m| {
                    m.duplicate_of = vec![DuplicateHit {
                        sha256: sha(1),
                        earlier_meeting: mid(7),
                        distance: 0,
                    }]
                },
                &["duplicate_photo"],
                false,
            ),
            (
                "11 min ahead of the server",
                |m| m.received_at = m.occurred_at - TimeDelta::minutes(11),
                &["future_time"],
                false,
            ),
            (
                "received 8 days later",
                |m| m.received_at = m.occurred_at + TimeDelta::days(8),
                &["late"],
                false,
            ),
            (
                "booth committee",
                |m| m.kind = MeetingKind::BoothCommittee,
                &["not_counted_kind"],
                false,
            ),
            (
                "photo taken 4 h earlier",
                |m| m.photos[0].taken_at = Some(m.occurred_at - TimeDelta::hours(4)),
                &["photo_time_mismatch"],
                true,
            ),
            (
                "photo taken 2 h earlier",
                |m| m.photos[0].taken_at = Some(m.occurred_at - TimeDelta::hours(2)),
                &[],
                true,
            ),
            (
                "photo taken 3 h 1 min later",
                |m| {
                    m.photos[0].taken_at =
                        Some(m.occurred_at + TimeDelta::hours(3) + TimeDelta::minutes(1))
                },
                &["photo_time_mismatch"],
                true,
            ),
            (
                "photo taken in Delhi",
                |m| m.photos[0].gps = Some(geo(28.61, 77.21)),
                &["photo_location_mismatch"],
                true,
            ),
            (
                "photo taken 2 km away",
                |m| m.photos[0].gps = Some(geo(26.868, 80.95)),
                &[],
                true,
            ),
            ("no location", |m| m.location = None, &["no_location"], true),
            (
                "no location, so photo GPS cannot mismatch",
                |m| {
                    m.location = None;
                    m.photos[0].gps = Some(geo(28.61, 77.21));
                },
                &["no_location"],
                true,
            ),
            (
                "everything wrong, listed in flag order",
                |m| {
                    m.kind = MeetingKind::Other;
                    m.photos.clear();
                    m.decision = Some(Decision::Rejected);
                    m.received_at = m.occurred_at + TimeDelta::days(30);
                    m.location = None;
                },
                &[
                    "missing_photo",
                    "rejected",
                    "late",
                    "not_counted_kind",
                    "no_location",
                ],
                false,
            ),
        ];
        let p = Policy::default();
        for (name, edit, want, eligible) in cases {
            let mut m = good();
            edit(&mut m);
            let e = evaluate_meeting(&p, &m);
            assert_eq!(codes(&e), *want, "{name}");
            assert_eq!(e.eligible, *eligible, "{name}");
            for f in &e.flags {
                assert!(!f.detail.is_empty(), "{name}: {f:?}");
            }
        }
    }

    #[test]
    fn future_time_allows_the_skew_tolerance() {
        let p = Policy::default();
        // (device clock ahead of the server by, flagged)
        let cases = [
            (TimeDelta::minutes(0), false),
            (TimeDelta::minutes(9), false),
            (TimeDelta::minutes(10), false),
            (TimeDelta::minutes(10) + TimeDelta::seconds(1), true),
            (TimeDelta::minutes(11), true),
            (TimeDelta::days(2), true),
        ];
        for (ahead, flagged) in cases {
            let mut m = good();
            m.received_at = m.occurred_at - ahead;
            let e = evaluate_meeting(&p, &m);
            assert_eq!(
                codes(&e).contains(&"future_time"),
                flagged,
                "{ahead:?} ahead"
            );
            assert_eq!(e.eligible, !flagged);
        }
    }

    #[test]
    fn late_is_measured_from_the_end_of_the_local_day() {
        let p = Policy::default();
        // Meeting at 23:50 IST on 23 Nov: the window closes at 1 Dec 00:00 IST.
        // (occurred_at, received_at, late)
        let cases = [
            (
                "2026-11-23T23:50:00+05:30",
                "2026-11-23T23:55:00+05:30",
                false,
            ),
            (
                "2026-11-23T23:50:00+05:30",
                "2026-11-30T23:59:59+05:30",
                false,
            ),
            (
                "2026-11-23T23:50:00+05:30",
                "2026-12-01T00:00:00+05:30",
                false,
            ),
            (
                "2026-11-23T23:50:00+05:30",
                "2026-12-01T00:00:01+05:30",
                true,
            ),
            // Sent in UTC by the device: the same instant, the same deadline.
            ("2026-11-23T18:20:00Z", "2026-11-30T18:29:00Z", false),
            ("2026-11-23T18:20:00Z", "2026-11-30T18:31:00Z", true),
            // 00:10 IST is the next day, so it gets one day more.
            (
                "2026-11-24T00:10:00+05:30",
                "2026-12-01T12:00:00+05:30",
                false,
            ),
            (
                "2026-11-24T00:10:00+05:30",
                "2026-12-02T00:00:01+05:30",
                true,
            ),
            // Eight days later, mid-day.
            (
                "2026-11-23T10:00:00+05:30",
                "2026-12-01T10:00:00+05:30",
                true,
            ),
        ];
        for (occurred, received, late) in cases {
            let m = MeetingFacts {
                occurred_at: t(occurred),
                received_at: t(received),
                ..good()
            };
            let e = evaluate_meeting(&p, &m);
            assert_eq!(
                codes(&e).contains(&"late"),
                late,
                "{occurred} received {received}"
            );
        }
    }

    #[test]
    fn duplicates_need_every_photo_reused() {
        let p = Policy::default();
        let hit = |photo: u8, earlier: u128, distance: u32| DuplicateHit {
            sha256: sha(photo),
            earlier_meeting: mid(earlier),
            distance,
        };
        /// (name, photos, hits, the related meeting when flagged)
        type Case = (&'static str, Vec<u8>, Vec<DuplicateHit>, Option<u128>);
        let cases: Vec<Case> = vec![
            ("no hits", vec![1, 2], vec![], None),
            (
                "one of two photos re-used: still counts",
                vec![1, 2],
                vec![hit(1, 7, 0)],
                None,
            ),
            (
                "both photos re-used",
                vec![1, 2],
                vec![hit(2, 8, 0), hit(1, 7, 0)],
                Some(7),
            ),
            (
                "first photo's closest hit is named",
                vec![1, 2],
                vec![hit(1, 9, 6), hit(1, 5, 3), hit(2, 4, 0)],
                Some(5),
            ),
            (
                "equal distance: lowest id",
                vec![1],
                vec![hit(1, 9, 2), hit(1, 6, 2)],
                Some(6),
            ),
            ("a recompressed copy", vec![1], vec![hit(1, 7, 4)], Some(7)),
            ("at the threshold", vec![1], vec![hit(1, 7, 10)], Some(7)),
            ("beyond the threshold", vec![1], vec![hit(1, 7, 11)], None),
            (
                "one photo only beyond the threshold",
                vec![1, 2],
                vec![hit(1, 7, 0), hit(2, 7, 20)],
                None,
            ),
            (
                "a hit for a photo the meeting no longer has",
                vec![2],
                vec![hit(1, 7, 0)],
                None,
            ),
        ];
        for (name, photos, hits, related) in cases {
            let m = MeetingFacts {
                photos: photos.into_iter().map(photo).collect(),
                duplicate_of: hits,
                ..good()
            };
            let e = evaluate_meeting(&p, &m);
            let dup = e.flags.iter().find(|f| f.flag == Flag::DuplicatePhoto);
            assert_eq!(
                dup.and_then(|f| f.related_meeting_id),
                related.map(mid),
                "{name}"
            );
            assert_eq!(e.eligible, related.is_none(), "{name}");
            if let Some(f) = dup {
                assert!(
                    f.detail.contains(&mid(related.unwrap()).to_string()),
                    "{name}: {}",
                    f.detail
                );
            }
        }
    }

    #[test]
    fn duplicate_threshold_follows_the_policy() {
        let m = MeetingFacts {
            duplicate_of: vec![DuplicateHit {
                sha256: sha(1),
                earlier_meeting: mid(7),
                distance: 8,
            }],
            ..good()
        };
        let strict = Policy {
            duplicate_phash_distance: 4,
            ..Policy::default()
        };
        assert!(evaluate_meeting(&strict, &m).eligible);
        assert!(!evaluate_meeting(&Policy::default(), &m).eligible);
    }

    #[test]
    fn audit_flags_name_the_worst_photo() {
        let mut m = good();
        m.photos = vec![photo(1), photo(2), photo(3)];
        m.photos[0].taken_at = Some(m.occurred_at + TimeDelta::hours(4));
        m.photos[1].taken_at = Some(m.occurred_at - TimeDelta::hours(26));
        m.photos[0].gps = Some(geo(26.95, 80.95)); // ~11 km
        m.photos[2].gps = Some(geo(28.61, 77.21)); // Delhi
        let e = evaluate_meeting(&Policy::default(), &m);
        assert!(e.eligible);
        assert_eq!(
            codes(&e),
            ["photo_time_mismatch", "photo_location_mismatch"]
        );
        assert!(
            e.flags[0].detail.contains(short_sha(&sha(2))),
            "{:?}",
            e.flags[0]
        );
        assert!(e.flags[0].detail.contains("26.0 h"), "{:?}", e.flags[0]);
        assert!(
            e.flags[1].detail.contains(short_sha(&sha(3))),
            "{:?}",
            e.flags[1]
        );
    }

    #[test]
    fn counted_kinds_follow_the_policy() {
        let m = MeetingFacts {
            kind: MeetingKind::CadreCamp,
            ..good()
        };
        assert!(!evaluate_meeting(&Policy::default(), &m).eligible);
        let wider = Policy {
            counted_kinds: vec![MeetingKind::SmallMeeting, MeetingKind::CadreCamp],
            ..Policy::default()
        };
        assert!(evaluate_meeting(&wider, &m).eligible);
    }

    /// Meetings of 23 Nov 2026 at the given IST times, ids in time order from 1.
    fn day_of(times: &[(&str, bool)]) -> Vec<DayMeeting> {
        times
            .iter()
            .enumerate()
            .map(|(i, (hhmm, eligible))| DayMeeting {
                id: mid(i as u128 + 1),
                occurred_at: t(&format!("2026-11-23T{hhmm}:00+05:30")),
                eligible: *eligible,
            })
            .collect()
    }

    const DAY: &str = "2026-11-23";

    fn now_same_day() -> DateTime<Utc> {
        t("2026-11-23T22:00:00+05:30")
    }

    #[test]
    fn the_minimum_gap_runs_from_the_previous_counted_meeting() {
        let p = Policy::default();
        /// (name, meetings as (time, eligible), counted ids, too_close as (id, counted))
        type Case = (
            &'static str,
            Vec<(&'static str, bool)>,
            Vec<u128>,
            Vec<(u128, u128)>,
        );
        let cases: Vec<Case> = vec![
            (
                "10:10 too close, 10:16 counts from 10:00",
                vec![("10:00", true), ("10:10", true), ("10:16", true)],
                vec![1, 3],
                vec![(2, 1)],
            ),
            (
                "exactly the gap counts",
                vec![("10:00", true), ("10:15", true)],
                vec![1, 2],
                vec![],
            ),
            (
                "a rejected meeting in the middle does not hold the next back",
                vec![("10:00", true), ("10:20", false), ("10:30", true)],
                vec![1, 3],
                vec![],
            ),
            (
                "an ineligible first meeting does not start the gap",
                vec![("10:00", false), ("10:05", true)],
                vec![2],
                vec![],
            ),
            (
                "a chain of close meetings is measured from the counted one",
                vec![
                    ("10:00", true),
                    ("10:05", true),
                    ("10:10", true),
                    ("10:15", true),
                    ("10:20", true),
                ],
                vec![1, 4],
                vec![(2, 1), (3, 1), (5, 4)],
            ),
            (
                "the same minute twice: the lower id counts",
                vec![("10:00", true), ("10:00", true)],
                vec![1],
                vec![(2, 1)],
            ),
            ("nothing", vec![], vec![], vec![]),
        ];
        for (name, times, counted, close) in cases {
            let meetings = day_of(&times);
            let e = evaluate_day(&p, d(DAY), &meetings, false, now_same_day());
            assert_eq!(
                e.counted_ids,
                counted.iter().map(|&n| mid(n)).collect::<Vec<_>>(),
                "{name}"
            );
            let got: Vec<(MeetingId, MeetingId)> = e
                .too_close
                .iter()
                .map(|c| (c.meeting_id, c.previous_counted))
                .collect();
            let want: Vec<(MeetingId, MeetingId)> =
                close.iter().map(|&(a, b)| (mid(a), mid(b))).collect();
            assert_eq!(got, want, "{name}");
            assert_eq!(e.counted as usize, counted.len(), "{name}");
            assert_eq!(e.submitted as usize, times.len(), "{name}");

            // Input order must not matter.
            let mut reversed = meetings.clone();
            reversed.reverse();
            assert_eq!(
                evaluate_day(&p, d(DAY), &reversed, false, now_same_day()),
                e,
                "{name}: order"
            );
        }
    }

    #[test]
    fn too_close_flag_points_at_the_counted_meeting() {
        let p = Policy::default();
        let e = evaluate_day(
            &p,
            d(DAY),
            &day_of(&[("10:00", true), ("10:10", true)]),
            false,
            now_same_day(),
        );
        let f = e.too_close[0].flag_entry(&p);
        assert_eq!(f.flag, Flag::TooClose);
        assert_eq!(f.related_meeting_id, Some(mid(1)));
        assert_eq!(e.too_close[0].gap_seconds, 600);
        assert!(f.detail.contains("10 min"), "{}", f.detail);
    }

    #[test]
    fn day_status_and_target() {
        let p = Policy::default();
        /// (name, meetings held hourly from 09:00, eligible, exempt, status, counted,
        /// target_met)
        type Case = (&'static str, usize, bool, bool, DayStatus, u32, bool);
        let cases: &[Case] = &[
            ("none", 0, true, false, DayStatus::None, 0, false),
            (
                "submitted, none counted",
                2,
                false,
                false,
                DayStatus::None,
                0,
                false,
            ),
            ("one", 1, true, false, DayStatus::Short, 1, false),
            ("three", 3, true, false, DayStatus::Short, 3, false),
            ("four", 4, true, false, DayStatus::Met, 4, false),
            ("five", 5, true, false, DayStatus::Met, 5, true),
            ("six", 6, true, false, DayStatus::Met, 6, true),
            ("exempt, empty", 0, true, true, DayStatus::Exempt, 0, false),
            (
                "exempt keeps counts",
                5,
                true,
                true,
                DayStatus::Exempt,
                5,
                true,
            ),
        ];
        for &(name, held, eligible, exempt, status, counted, target_met) in cases {
            let times: Vec<String> = (0..held).map(|i| format!("{:02}:00", 9 + i)).collect();
            let times: Vec<(&str, bool)> = times.iter().map(|s| (s.as_str(), eligible)).collect();
            let e = evaluate_day(&p, d(DAY), &day_of(&times), exempt, now_same_day());
            assert_eq!(
                (e.status, e.counted, e.submitted as usize, e.target_met),
                (status, counted, held, target_met),
                "{name}"
            );
            assert_eq!(e.date, d(DAY));
        }
    }

    #[test]
    fn a_rejection_lowers_a_day_from_met_to_short() {
        let p = Policy::default();
        let facts: Vec<MeetingFacts> = ["10:00", "11:00", "12:00", "13:00"]
            .iter()
            .enumerate()
            .map(|(i, hhmm)| MeetingFacts {
                id: mid(i as u128 + 1),
                occurred_at: t(&format!("2026-11-23T{hhmm}:00+05:30")),
                received_at: t("2026-11-23T20:00:00+05:30"),
                ..good()
            })
            .collect();
        let day = |facts: &[MeetingFacts]| {
            let meetings: Vec<DayMeeting> = facts
                .iter()
                .map(|f| DayMeeting {
                    id: f.id,
                    occurred_at: f.occurred_at,
                    eligible: evaluate_meeting(&p, f).eligible,
                })
                .collect();
            evaluate_day(&p, d(DAY), &meetings, false, now_same_day())
        };
        let before = day(&facts);
        assert_eq!((before.status, before.counted), (DayStatus::Met, 4));

        let mut reviewed = facts.clone();
        reviewed[2].decision = Some(Decision::Rejected);
        let after = day(&reviewed);
        assert_eq!((after.status, after.counted), (DayStatus::Short, 3));
        assert_eq!(after.submitted, 4);
        assert!(!after.counted_ids.contains(&mid(3)));
    }

    #[test]
    fn a_day_becomes_final_when_its_grace_window_closes() {
        let p = Policy::default();
        let meetings = day_of(&[("10:00", true)]);
        let cases = [
            ("2026-11-23T22:00:00+05:30", false),
            ("2026-11-30T23:59:59+05:30", false),
            ("2026-12-01T00:00:00+05:30", false),
            ("2026-12-01T00:00:01+05:30", true),
            ("2027-01-01T00:00:00+05:30", true),
        ];
        for (now, is_final) in cases {
            let e = evaluate_day(&p, d(DAY), &meetings, false, t(now));
            assert_eq!(e.is_final, is_final, "{now}");
        }
        // A shorter grace closes sooner.
        let quick = Policy {
            late_grace_days: 0,
            ..Policy::default()
        };
        assert!(
            evaluate_day(
                &quick,
                d(DAY),
                &meetings,
                false,
                t("2026-11-24T00:00:01+05:30")
            )
            .is_final
        );
        assert!(
            !evaluate_day(
                &quick,
                d(DAY),
                &meetings,
                false,
                t("2026-11-23T23:59:00+05:30")
            )
            .is_final
        );
    }

    #[test]
    fn policy_changes_change_the_outcome() {
        let times = [
            ("09:00", true),
            ("10:00", true),
            ("11:00", true),
            ("11:10", true),
        ];
        let meetings = day_of(&times);
        let eval = |p: &Policy| evaluate_day(p, d(DAY), &meetings, false, now_same_day());

        let base = eval(&Policy::default());
        assert_eq!((base.status, base.counted), (DayStatus::Short, 3));

        let min3 = Policy {
            min_per_day: 3,
            ..Policy::default()
        };
        assert_eq!(eval(&min3).status, DayStatus::Met);

        let gap5 = Policy {
            min_gap_minutes: 5,
            ..Policy::default()
        };
        let e = eval(&gap5);
        assert_eq!((e.status, e.counted), (DayStatus::Met, 4));

        let target3 = Policy {
            min_per_day: 3,
            target_per_day: 3,
            ..Policy::default()
        };
        assert!(eval(&target3).target_met);
    }

    #[test]
    fn a_timezone_change_moves_meetings_between_days() {
        // Four meetings from 20:00 IST on 23 Nov to 05:00 IST on 24 Nov: two IST days,
        // but all on 23 Nov in UTC (14:30 to 23:30 UTC).
        let at = [
            "2026-11-23T20:00:00+05:30",
            "2026-11-23T21:00:00+05:30",
            "2026-11-24T04:00:00+05:30",
            "2026-11-24T05:00:00+05:30",
        ];
        let group = |tz: Tz| -> Vec<NaiveDate> { at.iter().map(|s| local_day(t(s), tz)).collect() };
        assert_eq!(
            group(chrono_tz::Asia::Kolkata),
            [
                d("2026-11-23"),
                d("2026-11-23"),
                d("2026-11-24"),
                d("2026-11-24")
            ]
        );
        // In UTC, 04:00 and 05:00 IST are still 23 Nov (22:30 and 23:30 UTC).
        assert_eq!(group(chrono_tz::UTC), [d("2026-11-23"); 4]);

        let utc_policy = Policy {
            timezone: chrono_tz::UTC,
            ..Policy::default()
        };
        let meetings: Vec<DayMeeting> = at
            .iter()
            .enumerate()
            .map(|(i, s)| DayMeeting {
                id: mid(i as u128 + 1),
                occurred_at: t(s),
                eligible: true,
            })
            .collect();
        let now = t("2026-11-25T00:00:00Z");
        let ist = evaluate_day(
            &Policy::default(),
            d("2026-11-23"),
            &meetings[..2],
            false,
            now,
        );
        assert_eq!(ist.status, DayStatus::Short);
        let utc = evaluate_day(&utc_policy, d("2026-11-23"), &meetings, false, now);
        assert_eq!(utc.status, DayStatus::Met);
    }

    #[test]
    fn the_gap_does_not_reach_across_midnight() {
        let p = Policy::default();
        let late_evening = DayMeeting {
            id: mid(1),
            occurred_at: t("2026-11-23T23:55:00+05:30"),
            eligible: true,
        };
        let after_midnight = DayMeeting {
            id: mid(2),
            occurred_at: t("2026-11-24T00:05:00+05:30"),
            eligible: true,
        };
        let now = t("2026-11-24T12:00:00+05:30");
        assert_eq!(
            evaluate_day(&p, d("2026-11-23"), &[late_evening], false, now).counted,
            1
        );
        assert_eq!(
            evaluate_day(&p, d("2026-11-24"), &[after_midnight], false, now).counted,
            1
        );
    }

    #[test]
    fn inactivity() {
        let p = Policy::default();
        let since = t("2026-11-01T09:00:00+05:30");
        // (last counted, now, inactive)
        let cases = [
            (None, "2026-11-03T09:00:00+05:30", false),
            (None, "2026-11-04T08:59:59+05:30", false),
            (None, "2026-11-04T09:00:00+05:30", true),
            (
                Some("2026-11-20T10:00:00+05:30"),
                "2026-11-23T09:59:00+05:30",
                false,
            ),
            (
                Some("2026-11-20T10:00:00+05:30"),
                "2026-11-23T10:00:00+05:30",
                true,
            ),
            // Counted before being (re)activated: the clock starts at activation.
            (
                Some("2026-10-01T10:00:00+05:30"),
                "2026-11-03T10:00:00+05:30",
                false,
            ),
        ];
        for (last, now, inactive) in cases {
            assert_eq!(
                is_inactive(last.map(t), since, t(now), &p),
                inactive,
                "{last:?} {now}"
            );
        }
    }

    #[test]
    fn review_overdue_after_the_interval() {
        let p = Policy::default();
        let cases = [
            (None, "2026-11-23T10:00:00Z", true),
            (Some("2026-11-16T10:00:00Z"), "2026-11-23T10:00:00Z", false),
            (Some("2026-11-16T10:00:00Z"), "2026-11-23T10:00:01Z", true),
            (Some("2026-11-20T10:00:00Z"), "2026-11-23T10:00:00Z", false),
        ];
        for (last, now, overdue) in cases {
            assert_eq!(
                review_overdue(last.map(t), t(now), &p),
                overdue,
                "{last:?} {now}"
            );
        }
    }

    #[test]
    fn day_evaluation_wire_shape() {
        let p = Policy::default();
        let e = evaluate_day(
            &p,
            d(DAY),
            &day_of(&[("10:00", true)]),
            false,
            now_same_day(),
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["date"], "2026-11-23");
        assert_eq!(v["status"], "short");
        assert_eq!(v["final"], false);
        assert_eq!(v["target_met"], false);
        for s in [
            DayStatus::Met,
            DayStatus::Short,
            DayStatus::None,
            DayStatus::Exempt,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn unvalidated_extreme_policies_do_not_panic() {
        let p = Policy {
            late_grace_days: u32::MAX,
            skew_tolerance_minutes: u32::MAX,
            inactive_after_days: u32::MAX,
            review_interval_days: u32::MAX,
            min_gap_minutes: u32::MAX,
            photo_time_mismatch_hours: u32::MAX,
            ..Policy::default()
        };
        let e = evaluate_meeting(&p, &good());
        assert!(e.eligible);
        let day = evaluate_day(
            &p,
            d(DAY),
            &day_of(&[("10:00", true), ("23:00", true)]),
            false,
            now_same_day(),
        );
        assert_eq!(day.counted, 1);
        assert!(!day.is_final);
        assert!(!is_inactive(None, now_same_day(), now_same_day(), &p));
        assert!(!review_overdue(Some(now_same_day()), now_same_day(), &p));
    }
}
