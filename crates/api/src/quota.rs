//! Keeps the derived quota state current: re-evaluates the (in-charge, day) pairs a
//! changed fact touches, inside the transaction that changed it, and publishes what
//! moved to the pull feed.
//!
//! The rules themselves are the pure functions of `baithak_domain::quota`; this module
//! only gathers their inputs from the store and writes their verdicts back. Work per
//! change is bounded by one day's meetings plus indexed photo lookups, so it does not
//! grow with an in-charge's history.

use baithak_domain::meeting::{Decision, Flag, FlagEntry, MeetingId, sort_flags};
use baithak_domain::quota::{
    DayMeeting as DomainDayMeeting, DuplicateHit, MeetingEvaluation, MeetingFacts, PhotoFacts,
    evaluate_day, evaluate_meeting, local_day,
};
use baithak_domain::{GeoPoint, MeetingKind, Policy, UserId};
use baithak_store::{
    DayMeeting, MediaRecord, MeetingApplied, NewChange, QuotaDay, StoreError, SyncTx,
};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::collections::BTreeSet;

type Result<T> = std::result::Result<T, StoreError>;

/// The policy in force, or the defaults when HQ never stored one.
pub fn load_policy(tx: &mut dyn SyncTx) -> Result<Policy> {
    policy_from(tx.policy()?)
}

pub fn policy_from(rec: Option<baithak_store::PolicyRecord>) -> Result<Policy> {
    match rec {
        Some(rec) => serde_json::from_str(&rec.body)
            .map_err(|e| StoreError::Corrupt(format!("stored policy: {e}"))),
        None => Ok(Policy::default()),
    }
}

pub fn utc(t: chrono::NaiveDateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)
}

/// An EXIF time without offset is the camera's wall clock; field phones run on the
/// organisation's zone, so it is read in the policy's timezone.
fn photo_taken_at(m: &MediaRecord, policy: &Policy) -> Option<DateTime<Utc>> {
    if let Some(t) = m.taken_at {
        return Some(utc(t));
    }
    let local =
        chrono::NaiveDateTime::parse_from_str(m.taken_at_local.as_deref()?, "%Y-%m-%dT%H:%M:%S")
            .ok()?;
    policy
        .timezone
        .from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Which meetings of a re-evaluated day have their photos searched again for earlier
/// uses. The search is the one part of an evaluation whose cost grows with history
/// (it reads every stored photo that shares a pHash band value), and its answer for a
/// meeting changes only when that meeting's photos, an earlier meeting's photos or the
/// policy's distance change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoSearch {
    /// Every meeting of the day: after edits, reviews, policy changes and in recompute.
    Every,
    /// Only this meeting; the others keep their stored `duplicate_photo` verdict. For
    /// changes that move no other meeting's earlier uses: a meeting just created (it
    /// has the highest `record_seq`) or a review (decisions do not enter the search).
    Only(uuid::Uuid),
}

/// The `duplicate_photo` entry of a meeting's stored evaluation: `Ok(None)` when it
/// had none, `Err(())` when the stored flags cannot be read (search again then).
fn stored_duplicate(dm: &DayMeeting) -> std::result::Result<Option<FlagEntry>, ()> {
    let flags: Vec<FlagEntry> = serde_json::from_str(&dm.meeting.flags).map_err(|_| ())?;
    Ok(flags.into_iter().find(|f| f.flag == Flag::DuplicatePhoto))
}

/// Evaluates one meeting of a day, searching its photos' earlier uses or reusing its
/// stored duplicate verdict as `search` says.
fn evaluate(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    dm: &DayMeeting,
    search: PhotoSearch,
) -> Result<MeetingEvaluation> {
    let reuse = match search {
        PhotoSearch::Only(id) if id != dm.meeting.id => stored_duplicate(dm).ok(),
        _ => None,
    };
    let Some(stored) = reuse else {
        return Ok(evaluate_meeting(policy, &facts(tx, policy, dm, true)?));
    };
    let mut e = evaluate_meeting(policy, &facts(tx, policy, dm, false)?);
    if let Some(dup) = stored {
        e.flags.push(dup);
        sort_flags(&mut e.flags);
        e.eligible = false;
    }
    Ok(e)
}

/// The evaluation's inputs for one meeting; its photos' earlier uses only when
/// `search` (otherwise none are listed).
fn facts(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    dm: &DayMeeting,
    search: bool,
) -> Result<MeetingFacts> {
    let m = &dm.meeting;
    let hits = if search {
        let photos: Vec<(String, u64)> = dm
            .media
            .iter()
            .map(|p| (p.sha256.clone(), p.phash))
            .collect();
        tx.earlier_photo_uses(m.id, m.record_seq, &photos, policy.duplicate_phash_distance)?
    } else {
        Vec::new()
    };
    let location = match (m.lat, m.lon) {
        (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).ok(),
        _ => None,
    };
    Ok(MeetingFacts {
        id: MeetingId(m.id),
        kind: m.kind.parse().unwrap_or(MeetingKind::Other),
        occurred_at: utc(m.occurred_at),
        received_at: utc(m.received_at),
        location,
        photos: dm
            .media
            .iter()
            .map(|p| PhotoFacts {
                sha256: p.sha256.clone(),
                phash: Some(p.phash),
                taken_at: photo_taken_at(p, policy),
                gps: match (p.gps_lat, p.gps_lon) {
                    (Some(lat), Some(lon)) => GeoPoint::new(lat, lon).ok(),
                    _ => None,
                },
            })
            .collect(),
        decision: m
            .decision
            .as_deref()
            .and_then(|d| d.parse::<Decision>().ok()),
        duplicate_of: hits
            .into_iter()
            .map(|h| DuplicateHit {
                sha256: h.sha256,
                earlier_meeting: MeetingId(h.other_meeting_id),
                distance: h.distance,
            })
            .collect(),
    })
}

/// Re-evaluates one in-charge's day: every meeting's flags and whether it counts, and
/// the day's totals. Publishes `meeting.flagged` for meetings whose verdict changed and
/// `quota.day` when the day's numbers did.
pub fn reevaluate_day(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    incharge: UserId,
    day: &str,
    search: PhotoSearch,
    now: DateTime<Utc>,
) -> Result<()> {
    let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("local day {day}")))?;
    let meetings = tx.day_meetings(incharge, day)?;
    let mut verdicts = Vec::with_capacity(meetings.len());
    for dm in &meetings {
        verdicts.push(evaluate(tx, policy, dm, search)?);
    }
    let day_input: Vec<DomainDayMeeting> = meetings
        .iter()
        .zip(&verdicts)
        .map(|(dm, v)| DomainDayMeeting {
            id: MeetingId(dm.meeting.id),
            occurred_at: utc(dm.meeting.occurred_at),
            eligible: v.eligible,
        })
        .collect();
    let result = evaluate_day(policy, date, &day_input, false, now);
    let area_path = meetings.first().map(|dm| dm.meeting.area_path.clone());
    for (dm, verdict) in meetings.iter().zip(verdicts) {
        let id = MeetingId(dm.meeting.id);
        let mut flags: Vec<FlagEntry> = verdict.flags;
        if let Some(tc) = result.too_close.iter().find(|t| t.meeting_id == id) {
            flags.push(tc.flag_entry(policy));
            sort_flags(&mut flags);
        }
        let counted = result.counted_ids.contains(&id);
        let flags_json = serde_json::to_string(&flags)
            .map_err(|e| StoreError::Corrupt(format!("flags: {e}")))?;
        // The day's meetings were read in this transaction, under the meeting lock: an
        // unchanged verdict needs no statement (most of a day's meetings, most times).
        let unchanged = dm.meeting.counted == counted && dm.meeting.flags == flags_json;
        if !unchanged && tx.set_meeting_evaluation(dm.meeting.id, counted, &flags_json)? {
            tx.append_change(&NewChange {
                kind: "meeting.flagged".into(),
                user_id: Some(incharge),
                area_path: Some(dm.meeting.area_path.clone()),
                entity_id: dm.meeting.id.to_string(),
                data: serde_json::json!({
                    "meeting_id": dm.meeting.id,
                    "counted": counted,
                    "flags": flags,
                })
                .to_string(),
            })?;
        }
    }
    let row = QuotaDay {
        incharge_id: incharge,
        day: day.to_owned(),
        counted: i32::try_from(result.counted).unwrap_or(i32::MAX),
        submitted: i32::try_from(result.submitted).unwrap_or(i32::MAX),
        status: result.status.as_str().to_owned(),
        target_met: result.target_met,
        is_final: result.is_final,
        updated_at: now.naive_utc(),
    };
    if tx.put_quota_day(&row)? {
        let area_path = match area_path {
            Some(p) => p,
            None => tx.user(incharge)?.area_path,
        };
        tx.append_change(&NewChange {
            kind: "quota.day".into(),
            user_id: Some(incharge),
            area_path: Some(area_path),
            entity_id: format!("{incharge}/{day}"),
            data: serde_json::json!({
                "incharge_id": incharge,
                "date": day,
                "counted": result.counted,
                "submitted": result.submitted,
                "status": result.status,
                "target_met": result.target_met,
                "final": result.is_final,
            })
            .to_string(),
        })?;
    }
    Ok(())
}

/// Re-evaluates every day in `days` (deduplicated, in order).
pub fn reevaluate_days(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    days: BTreeSet<(UserId, String)>,
    search: PhotoSearch,
    now: DateTime<Utc>,
) -> Result<()> {
    for (incharge, day) in days {
        reevaluate_day(tx, policy, incharge, &day, search, now)?;
    }
    Ok(())
}

/// What a change to one meeting moves: the days to re-evaluate and whose photos to
/// search again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub days: BTreeSet<(UserId, String)>,
    pub search: PhotoSearch,
}

/// The days a change to one meeting can move: its own day (and its old day after an
/// edit moved it), and the days of later meetings that used its old or new photos —
/// their duplicate verdict depends on this meeting.
pub fn days_touched_by_meeting(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    applied: &MeetingApplied,
    photos: &[String],
) -> Result<Touched> {
    let incharge = applied.incharge_id;
    let mut days = BTreeSet::new();
    days.insert((incharge, applied.local_day.clone()));
    if let Some(prev) = &applied.previous_local_day {
        days.insert((incharge, prev.clone()));
    }
    let mut all: Vec<String> = photos.to_vec();
    for p in &applied.previous_photos {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    if applied.created && applied.previous_photos.is_empty() {
        // A new meeting has the highest record_seq: no later meeting can depend on it,
        // and the earlier uses of its day's other meetings are as stored.
        return Ok(Touched {
            days,
            search: PhotoSearch::Only(applied.meeting_id),
        });
    }
    let facts = tx.media_facts(&all)?;
    let pairs: Vec<(String, u64)> = facts.iter().map(|m| (m.sha256.clone(), m.phash)).collect();
    if !pairs.is_empty() {
        for u in tx.later_photo_uses(
            applied.meeting_id,
            applied.record_seq,
            &pairs,
            policy.duplicate_phash_distance,
        )? {
            if let Some(m) = tx.meeting(u.other_meeting_id)? {
                days.insert((m.incharge_id, m.local_day));
            }
        }
    }
    Ok(Touched {
        days,
        search: PhotoSearch::Every,
    })
}

/// Recomputes every stored day from the stored facts (meetings, photos, reviews,
/// policy). When the incrementally kept state is right this changes nothing and
/// publishes nothing; it returns how many days it re-evaluated.
pub fn recompute_all(tx: &mut dyn SyncTx, now: DateTime<Utc>) -> Result<usize> {
    tx.lock_meeting_writes()?;
    let policy = load_policy(tx)?;
    let days: BTreeSet<(UserId, String)> = tx
        .meeting_days(None, "0000-01-01", "9999-12-31")?
        .into_iter()
        .collect();
    let n = days.len();
    reevaluate_days(tx, &policy, days, PhotoSearch::Every, now)?;
    Ok(n)
}

/// Moves the meetings of open days (local day `from` on) to their local day in
/// `policy`'s time zone, after HQ changed it. Returns every day that lost or gained a
/// meeting, to re-evaluate. Days before `from` are settled: their meetings stay on the
/// day they were counted on, so a settled verdict never changes under anyone's feet.
pub fn regroup_open_days(
    tx: &mut dyn SyncTx,
    policy: &Policy,
    from: &str,
) -> Result<BTreeSet<(UserId, String)>> {
    let mut touched = BTreeSet::new();
    for (id, incharge, occurred_at, day) in tx.meetings_from_day(from)? {
        // `NaiveDate`'s Display is the stored `YYYY-MM-DD`, as `day_str` uses.
        let moved = local_day(utc(occurred_at), policy.timezone).to_string();
        if moved != day {
            tx.set_meeting_local_day(id, &moved)?;
            touched.insert((incharge, day));
            touched.insert((incharge, moved));
        }
    }
    Ok(touched)
}
