//! Offline sync: applying a device's mutations exactly once, and the transaction-level
//! helpers the quota evaluation runs inside the same transaction.
//!
//! Each mutation (`meeting.upsert`, `feedback.create`) is applied in one write
//! transaction that also writes its row in `mutation_ledger`, keyed by
//! `(device_id, mutation_id)` and holding the content hash and the result sent back.
//! A retry with the same hash gets the stored result (`Duplicate`), other content
//! under the same mutation id is an idempotency `Conflict`. The ledger is re-checked
//! inside the transaction, after the meeting write lock is held, so two racing
//! retries cannot both apply.
//!
//! The caller (the API layer) hooks its own work into that transaction through the
//! object-safe [`SyncTx`] trait, implemented by both connection types: after the
//! meeting is written it loads the affected local days, evaluates them, writes each
//! meeting's verdict and the `quota_days` rows, appends `changes`, and returns the
//! result JSON that the ledger stores. If the hook fails, nothing is written.

use crate::audit::{AuditConn, AuditEvent};
use crate::compliance::{PolicyRecord, PolicyRow, QuotaDay, QuotaDayRow, parse_quota_days};
use crate::db::{Prepared, Store, impl_both, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::feed::{FeedAppend, NewChange};
use crate::feedback::{FeedbackRow, FeedbackWrite};
use crate::media::{
    MediaRecord, MediaRow, band_candidates, check_distance, check_sha, for_each_band_chunk,
    parse_media, phash_bands, phash_distance,
};
use crate::meetings::{MeetingConn, MeetingRecord, MeetingRow, parse_meeting};
use crate::photo_index::{PhotoIndex, PhotoIndexConn};
use crate::schema::{
    feedback, media, meeting_photos, meetings, mutation_ledger, policy, quota_days,
};
use crate::time::{now_utc, truncate};
use crate::users::{User, UserConn};
use baithak_domain::{AreaId, AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

const CHUNK: usize = 500;

/// Which mutation a write belongs to, for the idempotency ledger.
#[derive(Debug, Clone)]
pub struct LedgerWrite {
    pub device_id: String,
    pub mutation_id: Uuid,
    /// The authenticated user pushing it.
    pub user_id: UserId,
    /// A hash of the mutation's canonical content (type and data).
    pub content_hash: String,
}

/// A mutation already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub user_id: UserId,
    pub content_hash: String,
    /// The result JSON stored when it was applied.
    pub result: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mutation_ledger, treat_none_as_default_value = false)]
struct LedgerRow {
    device_id: String,
    mutation_id: String,
    user_id: String,
    content_hash: String,
    result: String,
    created_at: NaiveDateTime,
}

impl LedgerRow {
    /// What a retry of `l` gets when this row already exists.
    fn replay<A>(self, l: &LedgerWrite) -> UpsertOutcome<A> {
        if self.user_id == l.user_id.to_string() && self.content_hash == l.content_hash {
            UpsertOutcome::Duplicate(self.result)
        } else {
            UpsertOutcome::Conflict
        }
    }
}

/// A meeting as a device sent it, after the API has validated it, checked the area
/// against the in-charge's scope and computed the local day.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingWrite {
    /// Client-generated.
    pub id: Uuid,
    pub incharge_id: UserId,
    pub area_id: AreaId,
    pub kind: String,
    /// UTC.
    pub occurred_at: NaiveDateTime,
    pub occurred_offset_minutes: i32,
    pub ended_at: Option<NaiveDateTime>,
    /// `YYYY-MM-DD` of `occurred_at` in the policy's time zone.
    pub local_day: String,
    /// Used when the meeting is created; an edit keeps the first receipt time.
    pub received_at: NaiveDateTime,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub attendee_count: i32,
    pub topic: String,
    pub notes: String,
    /// SHA-256s, in display order; repeats are dropped.
    pub photos: Vec<String>,
    /// For an edit: the version the device last saw. `None` edits whatever is stored.
    pub expected_version: Option<i64>,
}

/// What [`Store::upsert_meeting`] wrote, handed to the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingApplied {
    pub meeting_id: Uuid,
    pub incharge_id: UserId,
    pub area_path: AreaPath,
    pub version: i64,
    pub record_seq: i64,
    /// A new meeting (else an edit of the author's own).
    pub created: bool,
    /// Something was stored: false for an edit identical to what is stored.
    pub changed: bool,
    pub local_day: String,
    /// On an edit that moved the meeting to another local day: the old day, which
    /// must be re-evaluated too.
    pub previous_local_day: Option<String>,
    /// On an edit: the photos before it (later meetings that used a photo removed
    /// here may have stopped being duplicates).
    pub previous_photos: Vec<String>,
}

/// What [`Store::create_feedback`] wrote, handed to the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackApplied {
    pub feedback_id: Uuid,
    pub constituency_path: AreaPath,
    /// False when the same feedback was already stored under another mutation id.
    pub created: bool,
}

/// The outcome of one sync mutation. Only `Applied` wrote anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome<A> {
    /// Applied now; `result` is what the hook returned and the ledger stored.
    Applied { applied: A, result: String },
    /// Applied before with the same content: the stored result.
    Duplicate(String),
    /// The mutation id (or the record id) was used before with other content, or by
    /// another user.
    Conflict,
    /// These photos are not uploaded yet (input order).
    MissingMedia(Vec<String>),
    /// The meeting id belongs to another in-charge.
    Forbidden,
    /// The meeting has been decided on (`decided`), or was edited since the version
    /// the device saw.
    VersionConflict { current_version: i64, decided: bool },
}

/// A meeting with its photos' stored facts (in photo order), for evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct DayMeeting {
    pub meeting: MeetingRecord,
    pub media: Vec<MediaRecord>,
}

/// Another meeting's use of the same or a similar photo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoUse {
    /// The photo of the meeting being evaluated.
    pub sha256: String,
    pub other_meeting_id: Uuid,
    /// The other meeting's photo: `sha256` itself for an exact re-use.
    pub other_sha256: String,
    pub other_record_seq: i64,
    pub other_incharge_id: UserId,
    pub other_decision: Option<String>,
    /// pHash distance; 0 for an exact re-use.
    pub distance: u32,
}

/// Work that runs inside a write transaction, on either backend. Handed to the hooks
/// of [`Store::upsert_meeting`], [`Store::create_feedback`], [`Store::decide_meeting`],
/// [`Store::put_policy`] and to [`Store::sync_tx`].
pub trait SyncTx {
    /// Takes the meeting write lock (see [`Store::sync_tx`]); the mutation functions
    /// already hold it when they call their hook. Idempotent.
    fn lock_meeting_writes(&mut self) -> Result<()>;
    fn meeting(&mut self, id: Uuid) -> Result<Option<MeetingRecord>>;
    /// The in-charge's meetings of one local day with their photos' facts, ordered
    /// by `occurred_at`, then `record_seq`.
    fn day_meetings(&mut self, incharge_id: UserId, day: &str) -> Result<Vec<DayMeeting>>;
    /// The in-charge's meetings with `occurred_at` in `[from, to)` (UTC), in the same
    /// order: for rules that look across a day boundary (the gap to the previous one).
    fn meetings_between(
        &mut self,
        incharge_id: UserId,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<DayMeeting>>;
    /// Distinct `(in-charge, local day)` pairs that have meetings in `[from, to]`
    /// (optionally of one in-charge), for re-evaluating after a policy change.
    fn meeting_days(
        &mut self,
        incharge_id: Option<UserId>,
        from: &str,
        to: &str,
    ) -> Result<Vec<(UserId, String)>>;
    /// Meetings of local days from `from` on, as `(id, in-charge, occurred_at UTC,
    /// local day)`, ordered by id: the open days a time zone change regroups.
    fn meetings_from_day(
        &mut self,
        from: &str,
    ) -> Result<Vec<(Uuid, UserId, NaiveDateTime, String)>>;
    /// Moves a meeting to another local day (its policy time zone changed).
    fn set_meeting_local_day(&mut self, id: Uuid, day: &str) -> Result<()>;
    /// Writes the evaluation's verdict on a meeting; true when it changed.
    fn set_meeting_evaluation(&mut self, id: Uuid, counted: bool, flags_json: &str)
    -> Result<bool>;
    fn quota_day(&mut self, incharge_id: UserId, day: &str) -> Result<Option<QuotaDay>>;
    /// Inserts or replaces a day's result; true when its facts changed (so a
    /// `quota.day` change is worth publishing).
    fn put_quota_day(&mut self, day: &QuotaDay) -> Result<bool>;
    /// Publishes a change; returns its `seq`. See `feed.rs` for why this is safe
    /// under concurrency; call it late in the transaction.
    fn append_change(&mut self, change: &NewChange) -> Result<i64>;
    /// Meetings recorded before `record_seq` (other than `meeting_id`) that use one of
    /// `photos` (`(sha256, phash)` pairs): the same SHA-256, or a pHash within
    /// `max_distance` found through the band index. Ordered by photo, then earliest
    /// meeting, then distance.
    fn earlier_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>>;
    /// The same for meetings recorded after `record_seq`: those whose evaluation may
    /// change when this meeting's photos or decision change.
    fn later_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>>;
    /// Stored facts of the given photos, in input order; unknown ones are skipped.
    fn media_facts(&mut self, shas: &[String]) -> Result<Vec<MediaRecord>>;
    /// The given hashes that are not stored, in input order, each once.
    fn missing_media(&mut self, shas: &[String]) -> Result<Vec<String>>;
    fn policy(&mut self) -> Result<Option<PolicyRecord>>;
    fn user(&mut self, id: UserId) -> Result<User>;
    fn append_audit_event(&mut self, event: &AuditEvent) -> Result<()>;
}

pub(crate) trait PhotoUseConn {
    fn photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
        later: bool,
        index: Option<&PhotoIndex>,
    ) -> Result<Vec<PhotoUse>>;
    /// `rows` with their photos and the photos' facts, read in one joined query (the
    /// hooks run under the meeting lock, where each round trip counts).
    fn meetings_with_media(&mut self, rows: Vec<MeetingRow>) -> Result<Vec<DayMeeting>>;
}

/// The other meeting's columns a photo use reports: id, record_seq, in-charge, decision.
type OtherMeeting = (String, i64, String, Option<String>);

fn photo_use(
    sha: &str,
    other_sha: String,
    (mid, seq, incharge, decision): OtherMeeting,
    distance: u32,
) -> Result<PhotoUse> {
    let bad = || StoreError::Corrupt(format!("ids of meeting {mid}"));
    Ok(PhotoUse {
        sha256: sha.to_owned(),
        other_meeting_id: mid.parse().map_err(|_| bad())?,
        other_sha256: other_sha,
        other_record_seq: seq,
        other_incharge_id: incharge.parse().map_err(|_| bad())?,
        other_decision: decision,
        distance,
    })
}

impl_both!(PhotoUseConn {
    fn photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
        later: bool,
        index: Option<&PhotoIndex>,
    ) -> Result<Vec<PhotoUse>> {
        check_distance(max_distance)?;
        let mid = meeting_id.to_string();
        // Step 1 reads `media` alone: other photo's SHA-256 → (index of our photo,
        // distance). The band lookups return every photo sharing a band value, a set
        // that grows with history: they run in memory when the caller has a caught-up
        // `index`, otherwise they read only the narrow band indexes `(band, phash)`
        // and must not touch `meetings` before the distance filter.
        let mut near: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut note = |other: String, i: usize, d: u32| {
            let list = near.entry(other).or_default();
            match list.iter_mut().find(|(j, _)| *j == i) {
                Some(e) if e.1 <= d => {}
                Some(e) => e.1 = d,
                None => list.push((i, d)),
            }
        };
        for (i, (sha, _)) in photos.iter().enumerate() {
            note(sha.clone(), i, 0);
        }
        if max_distance > 0 {
            // 1a: pHashes within the distance → (index of our photo, distance).
            let mut near_hashes: HashMap<i64, Vec<(usize, u32)>> = HashMap::new();
            for (i, (_, phash)) in photos.iter().enumerate() {
                if let Some(found) = index.and_then(|x| x.near(*phash, max_distance)) {
                    for (other, d) in found {
                        near_hashes.entry(other as i64).or_default().push((i, d));
                    }
                    continue;
                }
                let cands = band_candidates(*phash, max_distance);
                // One photo re-used many times (copies that differ in bytes, not in
                // pHash) comes back once per copy and band: it must cost one entry
                // per (pHash, photo) below, or matching the copies is quadratic. Not
                // DISTINCT in SQL: that sorts every walk, which costs more.
                for_each_band_chunk!(cands, media::table.into_boxed(), |q| {
                    let rows: Vec<i64> = q.select(media::phash).load(self)?;
                    for other in rows {
                        let d = phash_distance(*phash, other as u64);
                        if d <= max_distance {
                            let list = near_hashes.entry(other).or_default();
                            if !list.iter().any(|(j, _)| *j == i) {
                                list.push((i, d));
                            }
                        }
                    }
                });
            }
            // 1b: the photos with those pHashes (usually none or a few), through band
            // 0's index.
            let hashes: Vec<i64> = near_hashes.keys().copied().collect();
            for chunk in hashes.chunks(CHUNK) {
                let b0: Vec<i32> = chunk.iter().map(|h| phash_bands(*h as u64)[0]).collect();
                let rows: Vec<(String, i64)> = media::table
                    .filter(media::phash_b0.eq_any(&b0))
                    .filter(media::phash.eq_any(chunk))
                    .select((media::sha256, media::phash))
                    .load(self)?;
                for (other_sha, other_phash) in rows {
                    for &(i, d) in near_hashes.get(&other_phash).into_iter().flatten() {
                        note(other_sha.clone(), i, d);
                    }
                }
            }
        }
        // Step 2: the meetings that use one of the near photos, on the other side of
        // `record_seq`. Usually only this meeting's own photos, so a few rows.
        // (photo, other meeting, other photo) → nearest use
        let mut found: HashMap<(String, Uuid, String), PhotoUse> = HashMap::new();
        let keys: Vec<String> = near.keys().cloned().collect();
        for chunk in keys.chunks(CHUNK) {
            let q = meeting_photos::table
                .inner_join(meetings::table)
                .filter(meeting_photos::sha256.eq_any(chunk))
                .filter(meetings::id.ne(&mid))
                .into_boxed();
            let q = if later {
                q.filter(meetings::record_seq.gt(record_seq))
            } else {
                q.filter(meetings::record_seq.lt(record_seq))
            };
            let rows: Vec<(String, OtherMeeting)> = q
                .select((
                    meeting_photos::sha256,
                    (
                        meetings::id,
                        meetings::record_seq,
                        meetings::incharge_id,
                        meetings::decision,
                    ),
                ))
                .load(self)?;
            for (other_sha, other) in rows {
                for &(i, d) in near.get(&other_sha).into_iter().flatten() {
                    let u = photo_use(&photos[i].0, other_sha.clone(), other.clone(), d)?;
                    let key = (u.sha256.clone(), u.other_meeting_id, u.other_sha256.clone());
                    match found.get(&key) {
                        Some(old) if old.distance <= u.distance => {}
                        _ => {
                            found.insert(key, u);
                        }
                    }
                }
            }
        }
        let mut out: Vec<PhotoUse> = found.into_values().collect();
        let order: HashMap<&str, usize> = photos
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.as_str(), i))
            .collect();
        out.sort_by(|a, b| {
            (order.get(a.sha256.as_str()), a.other_record_seq, a.distance, &a.other_sha256).cmp(&(
                order.get(b.sha256.as_str()),
                b.other_record_seq,
                b.distance,
                &b.other_sha256,
            ))
        });
        Ok(out)
    }

    fn meetings_with_media(&mut self, rows: Vec<MeetingRow>) -> Result<Vec<DayMeeting>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut photos: HashMap<String, Vec<MediaRow>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            // Every `meeting_photos.sha256` references a `media` row, so the inner join
            // lists every photo of each meeting, in position order.
            let found: Vec<(String, MediaRow)> = meeting_photos::table
                .inner_join(media::table)
                .filter(meeting_photos::meeting_id.eq_any(chunk))
                .order((meeting_photos::meeting_id.asc(), meeting_photos::position.asc()))
                .select((meeting_photos::meeting_id, MediaRow::as_select()))
                .load(self)?;
            for (m, row) in found {
                photos.entry(m).or_default().push(row);
            }
        }
        rows.into_iter()
            .map(|r| {
                let media = parse_media(photos.remove(&r.id).unwrap_or_default())?;
                let shas = media.iter().map(|m| m.sha256.clone()).collect();
                Ok(DayMeeting {
                    meeting: parse_meeting(r, shas)?,
                    media,
                })
            })
            .collect()
    }
});

/// A transaction's connection with the store's [`PhotoIndex`], as the hooks see it:
/// once the index has caught up under the meeting lock, the duplicate-photo search runs
/// in memory; before that, on the database.
pub(crate) struct IndexedTx<'a, C: ?Sized> {
    c: &'a mut C,
    index: &'a PhotoIndex,
    caught_up: bool,
}

impl<'a, C> IndexedTx<'a, C>
where
    C: SyncTx + MeetingConn + PhotoIndexConn + ?Sized,
{
    /// For a transaction that has not taken the meeting lock yet.
    pub(crate) fn new(c: &'a mut C, index: &'a PhotoIndex) -> Self {
        IndexedTx {
            c,
            index,
            caught_up: false,
        }
    }

    /// For a transaction that has called [`lock_and_catch_up`].
    pub(crate) fn caught_up(c: &'a mut C, index: &'a PhotoIndex) -> Self {
        IndexedTx {
            c,
            index,
            caught_up: true,
        }
    }
}

/// Takes the meeting write lock and catches the photo index up; returns the number of
/// distinct pHashes indexed. Call it before the transaction writes anything (see
/// `photo_index.rs`).
pub(crate) fn lock_and_catch_up<C>(c: &mut C, index: &PhotoIndex) -> Result<usize>
where
    C: MeetingConn + PhotoIndexConn + ?Sized,
{
    c.lock_meetings()?;
    index.catch_up(c)
}

impl<C> IndexedTx<'_, C>
where
    C: PhotoUseConn + ?Sized,
{
    fn photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
        later: bool,
    ) -> Result<Vec<PhotoUse>> {
        let index = self.caught_up.then_some(self.index);
        self.c
            .photo_uses(meeting_id, record_seq, photos, max_distance, later, index)
    }
}

impl<C> SyncTx for IndexedTx<'_, C>
where
    C: SyncTx + MeetingConn + PhotoIndexConn + PhotoUseConn + ?Sized,
{
    fn lock_meeting_writes(&mut self) -> Result<()> {
        // Only a transaction's first lock catches up: by a later call it may have
        // written photo uses of its own (see `photo_index.rs`).
        if self.caught_up {
            self.c.lock_meetings()?;
        } else {
            lock_and_catch_up(self.c, self.index)?;
            self.caught_up = true;
        }
        Ok(())
    }

    fn meeting(&mut self, id: Uuid) -> Result<Option<MeetingRecord>> {
        self.c.meeting(id)
    }

    fn day_meetings(&mut self, incharge_id: UserId, day: &str) -> Result<Vec<DayMeeting>> {
        self.c.day_meetings(incharge_id, day)
    }

    fn meetings_between(
        &mut self,
        incharge_id: UserId,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<DayMeeting>> {
        self.c.meetings_between(incharge_id, from, to)
    }

    fn meeting_days(
        &mut self,
        incharge_id: Option<UserId>,
        from: &str,
        to: &str,
    ) -> Result<Vec<(UserId, String)>> {
        self.c.meeting_days(incharge_id, from, to)
    }

    fn meetings_from_day(
        &mut self,
        from: &str,
    ) -> Result<Vec<(Uuid, UserId, NaiveDateTime, String)>> {
        self.c.meetings_from_day(from)
    }

    fn set_meeting_local_day(&mut self, id: Uuid, day: &str) -> Result<()> {
        self.c.set_meeting_local_day(id, day)
    }

    fn set_meeting_evaluation(
        &mut self,
        id: Uuid,
        counted: bool,
        flags_json: &str,
    ) -> Result<bool> {
        self.c.set_meeting_evaluation(id, counted, flags_json)
    }

    fn quota_day(&mut self, incharge_id: UserId, day: &str) -> Result<Option<QuotaDay>> {
        self.c.quota_day(incharge_id, day)
    }

    fn put_quota_day(&mut self, day: &QuotaDay) -> Result<bool> {
        self.c.put_quota_day(day)
    }

    fn append_change(&mut self, change: &NewChange) -> Result<i64> {
        self.c.append_change(change)
    }

    fn earlier_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>> {
        self.photo_uses(meeting_id, record_seq, photos, max_distance, false)
    }

    fn later_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>> {
        self.photo_uses(meeting_id, record_seq, photos, max_distance, true)
    }

    fn media_facts(&mut self, shas: &[String]) -> Result<Vec<MediaRecord>> {
        self.c.media_facts(shas)
    }

    fn missing_media(&mut self, shas: &[String]) -> Result<Vec<String>> {
        self.c.missing_media(shas)
    }

    fn policy(&mut self) -> Result<Option<PolicyRecord>> {
        self.c.policy()
    }

    fn user(&mut self, id: UserId) -> Result<User> {
        self.c.user(id)
    }

    fn append_audit_event(&mut self, event: &AuditEvent) -> Result<()> {
        self.c.append_audit_event(event)
    }
}

/// Stores a day's verdict unless it has the same facts; true when it was written.
trait PutQuotaDay {
    fn put_quota_day_row(&mut self, day: &QuotaDay) -> Result<bool>;
}

impl PutQuotaDay for diesel::SqliteConnection {
    fn put_quota_day_row(&mut self, day: &QuotaDay) -> Result<bool> {
        if let Some(old) = SyncTx::quota_day(self, day.incharge_id, &day.day)?
            && old.same_facts(day)
        {
            return Ok(false);
        }
        let row = QuotaDayRow::from(day);
        diesel::insert_into(quota_days::table)
            .values(&row)
            .on_conflict((quota_days::incharge_id, quota_days::day))
            .do_update()
            .set(&row)
            .execute(self)?;
        Ok(true)
    }
}

#[derive(QueryableByName)]
struct Written {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    written: bool,
}

impl PutQuotaDay for diesel::PgConnection {
    // One statement instead of a read and a write, for the round trips it saves under
    // the meeting lock: the upsert's WHERE skips a row whose facts are the same
    // (`same_facts`), and RETURNING yields a row only when one was written.
    fn put_quota_day_row(&mut self, day: &QuotaDay) -> Result<bool> {
        use diesel::sql_types::{Bool, Integer, Text, Timestamp};
        let row = QuotaDayRow::from(day);
        let written: Vec<Written> = Prepared(
            diesel::sql_query(
                "INSERT INTO quota_days \
             (incharge_id, day, counted, submitted, status, target_met, is_final, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (incharge_id, day) DO UPDATE SET \
             counted = EXCLUDED.counted, submitted = EXCLUDED.submitted, \
             status = EXCLUDED.status, target_met = EXCLUDED.target_met, \
             is_final = EXCLUDED.is_final, updated_at = EXCLUDED.updated_at \
             WHERE (quota_days.counted, quota_days.submitted, quota_days.status, \
             quota_days.target_met, quota_days.is_final) IS DISTINCT FROM \
             (EXCLUDED.counted, EXCLUDED.submitted, EXCLUDED.status, \
             EXCLUDED.target_met, EXCLUDED.is_final) \
             RETURNING true AS written",
            )
            .bind::<Text, _>(&row.incharge_id)
            .bind::<Text, _>(&row.day)
            .bind::<Integer, _>(row.counted)
            .bind::<Integer, _>(row.submitted)
            .bind::<Text, _>(&row.status)
            .bind::<Bool, _>(row.target_met)
            .bind::<Bool, _>(row.is_final)
            .bind::<Timestamp, _>(row.updated_at),
        )
        .load(self)?;
        Ok(written.iter().any(|w| w.written))
    }
}

impl_both!(SyncTx {
    fn lock_meeting_writes(&mut self) -> Result<()> {
        MeetingConn::lock_meetings(self)?;
        Ok(())
    }

    fn meeting(&mut self, id: Uuid) -> Result<Option<MeetingRecord>> {
        self.meeting_record(&id.to_string())
    }

    fn day_meetings(&mut self, incharge_id: UserId, day: &str) -> Result<Vec<DayMeeting>> {
        let rows: Vec<MeetingRow> = meetings::table
            .filter(meetings::incharge_id.eq(incharge_id.to_string()))
            .filter(meetings::local_day.eq(day))
            .order((meetings::occurred_at.asc(), meetings::record_seq.asc()))
            .select(MeetingRow::as_select())
            .load(self)?;
        self.meetings_with_media(rows)
    }

    fn meetings_between(
        &mut self,
        incharge_id: UserId,
        from: NaiveDateTime,
        to: NaiveDateTime,
    ) -> Result<Vec<DayMeeting>> {
        let rows: Vec<MeetingRow> = meetings::table
            .filter(meetings::incharge_id.eq(incharge_id.to_string()))
            .filter(meetings::occurred_at.ge(from))
            .filter(meetings::occurred_at.lt(to))
            .order((meetings::occurred_at.asc(), meetings::record_seq.asc()))
            .select(MeetingRow::as_select())
            .load(self)?;
        self.meetings_with_media(rows)
    }

    fn meeting_days(
        &mut self,
        incharge_id: Option<UserId>,
        from: &str,
        to: &str,
    ) -> Result<Vec<(UserId, String)>> {
        let mut q = meetings::table
            .filter(meetings::local_day.ge(from))
            .filter(meetings::local_day.le(to))
            .into_boxed();
        if let Some(u) = incharge_id {
            q = q.filter(meetings::incharge_id.eq(u.to_string()));
        }
        let rows: Vec<(String, String)> = q
            .select((meetings::incharge_id, meetings::local_day))
            .distinct()
            .order((meetings::incharge_id.asc(), meetings::local_day.asc()))
            .load(self)?;
        rows.into_iter()
            .map(|(u, d)| {
                u.parse()
                    .map(|u| (u, d))
                    .map_err(|_| StoreError::Corrupt(format!("in-charge id {u}")))
            })
            .collect()
    }

    fn meetings_from_day(
        &mut self,
        from: &str,
    ) -> Result<Vec<(Uuid, UserId, NaiveDateTime, String)>> {
        let rows: Vec<(String, String, NaiveDateTime, String)> = meetings::table
            .filter(meetings::local_day.ge(from))
            .order(meetings::id.asc())
            .select((
                meetings::id,
                meetings::incharge_id,
                meetings::occurred_at,
                meetings::local_day,
            ))
            .load(self)?;
        rows.into_iter()
            .map(|(id, u, at, day)| {
                let id = id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("meeting id {id}")))?;
                let u = u
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("in-charge id {u}")))?;
                Ok((id, u, at, day))
            })
            .collect()
    }

    fn set_meeting_local_day(&mut self, id: Uuid, day: &str) -> Result<()> {
        diesel::update(meetings::table.find(id.to_string()))
            .set((
                meetings::local_day.eq(day),
                meetings::updated_at.eq(now_utc()),
            ))
            .execute(self)?;
        Ok(())
    }

    fn set_meeting_evaluation(
        &mut self,
        id: Uuid,
        counted: bool,
        flags_json: &str,
    ) -> Result<bool> {
        let changed: Vec<String> = Prepared(
            diesel::update(
                meetings::table
                    .find(id.to_string())
                    .filter(meetings::counted.ne(counted).or(meetings::flags.ne(flags_json))),
            )
            .set((
                meetings::counted.eq(counted),
                meetings::flags.eq(flags_json),
                meetings::updated_at.eq(now_utc()),
            ))
            .returning(meetings::id),
        )
        .load(self)?;
        Ok(!changed.is_empty())
    }

    fn quota_day(&mut self, incharge_id: UserId, day: &str) -> Result<Option<QuotaDay>> {
        let row: Option<QuotaDayRow> = quota_days::table
            .find((incharge_id.to_string(), day))
            .select(QuotaDayRow::as_select())
            .first(self)
            .optional()?;
        Ok(parse_quota_days(row.into_iter().collect())?.pop())
    }

    fn put_quota_day(&mut self, day: &QuotaDay) -> Result<bool> {
        self.put_quota_day_row(day)
    }

    fn append_change(&mut self, change: &NewChange) -> Result<i64> {
        self.append_change_row(change, now_utc())
    }

    fn earlier_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>> {
        self.photo_uses(meeting_id, record_seq, photos, max_distance, false, None)
    }

    fn later_photo_uses(
        &mut self,
        meeting_id: Uuid,
        record_seq: i64,
        photos: &[(String, u64)],
        max_distance: u32,
    ) -> Result<Vec<PhotoUse>> {
        self.photo_uses(meeting_id, record_seq, photos, max_distance, true, None)
    }

    fn media_facts(&mut self, shas: &[String]) -> Result<Vec<MediaRecord>> {
        let mut by_sha: HashMap<String, MediaRecord> = HashMap::new();
        for chunk in shas.chunks(CHUNK) {
            let rows: Vec<MediaRow> = media::table
                .filter(media::sha256.eq_any(chunk))
                .select(MediaRow::as_select())
                .load(self)?;
            for m in parse_media(rows)? {
                by_sha.insert(m.sha256.clone(), m);
            }
        }
        Ok(shas.iter().filter_map(|s| by_sha.get(s).cloned()).collect())
    }

    fn missing_media(&mut self, shas: &[String]) -> Result<Vec<String>> {
        let mut present: HashSet<String> = HashSet::new();
        for chunk in shas.chunks(CHUNK) {
            let rows: Vec<String> = media::table
                .filter(media::sha256.eq_any(chunk))
                .select(media::sha256)
                .load(self)?;
            present.extend(rows);
        }
        let mut seen = HashSet::new();
        Ok(shas
            .iter()
            .filter(|s| !present.contains(*s) && seen.insert(s.as_str()))
            .cloned()
            .collect())
    }

    fn policy(&mut self) -> Result<Option<PolicyRecord>> {
        let row: Option<PolicyRow> = policy::table
            .find(1)
            .select(PolicyRow::as_select())
            .first(self)
            .optional()?;
        row.map(PolicyRecord::try_from).transpose()
    }

    fn user(&mut self, id: UserId) -> Result<User> {
        Ok(self.user_with_hash(id)?.0)
    }

    fn append_audit_event(&mut self, event: &AuditEvent) -> Result<()> {
        self.append_audit(event, now_utc())?;
        Ok(())
    }
});

/// Photos in order with repeats dropped; each must look like a SHA-256.
fn photo_list(photos: &[String]) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(photos.len());
    for p in photos {
        check_sha(p)?;
        if seen.insert(p.as_str()) {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn to_position(i: usize) -> Result<i32> {
    i32::try_from(i).map_err(|_| StoreError::Invalid("too many photos".into()))
}

impl MeetingWrite {
    /// Whether the stored meeting already says exactly this.
    fn same_as(&self, row: &MeetingRow, stored_photos: &[String], photos: &[String]) -> bool {
        row.kind == self.kind
            && row.area_id == self.area_id.to_string()
            && row.occurred_at == truncate(self.occurred_at)
            && row.occurred_offset_minutes == self.occurred_offset_minutes
            && row.ended_at == self.ended_at.map(truncate)
            && row.local_day == self.local_day
            && row.lat == self.lat
            && row.lon == self.lon
            && row.accuracy_m == self.accuracy_m
            && row.attendee_count == self.attendee_count
            && row.topic == self.topic
            && row.notes == self.notes
            && stored_photos == photos
    }
}

impl Store {
    /// The ledger entry of a mutation, if it was applied.
    pub fn ledger_get(&self, device_id: &str, mutation_id: Uuid) -> Result<Option<LedgerEntry>> {
        with_conn!(self, |c| {
            let row: Option<LedgerRow> = mutation_ledger::table
                .find((device_id, mutation_id.to_string()))
                .select(LedgerRow::as_select())
                .first(c)
                .optional()?;
            row.map(|r| {
                Ok(LedgerEntry {
                    user_id: r.user_id.parse().map_err(|_| {
                        StoreError::Corrupt(format!("user of mutation {}", r.mutation_id))
                    })?,
                    content_hash: r.content_hash,
                    result: r.result,
                    created_at: r.created_at,
                })
            })
            .transpose()
        })
    }

    /// Forgets ledger entries created before `before` (devices retry for days, not
    /// months; keep at least 90 days). Returns how many were removed.
    pub fn prune_ledger(&self, before: NaiveDateTime) -> Result<usize> {
        with_conn!(self, |c| Ok(diesel::delete(
            mutation_ledger::table.filter(mutation_ledger::created_at.lt(before))
        )
        .execute(c)?))
    }

    /// Loads the in-process photo index (see `photo_index.rs`) so that the first push
    /// after a start does not pay for it; returns the number of distinct pHashes in it.
    pub fn warm_photo_index(&self) -> Result<usize> {
        write_tx!(self, |c| lock_and_catch_up(c, &self.photo_index))
    }

    /// Runs `f` in one write transaction. Work that evaluates quota should call
    /// [`SyncTx::lock_meeting_writes`] first, so that no meeting write interleaves.
    pub fn sync_tx<R, F>(&self, f: F) -> Result<R>
    where
        F: FnOnce(&mut dyn SyncTx) -> Result<R>,
    {
        write_tx!(self, |c| f(&mut IndexedTx::new(c, &self.photo_index)))
    }

    /// Applies a `meeting.upsert` exactly once, in one write transaction:
    ///
    /// 1. takes the meeting write lock, then re-checks the ledger (a concurrent retry
    ///    may have won): `Duplicate` with the stored result, or `Conflict`;
    /// 2. an existing meeting must be the same in-charge's (`Forbidden`), undecided
    ///    and at `expected_version` when given (`VersionConflict`);
    /// 3. every photo must be stored (`MissingMedia`, listing those that are not);
    /// 4. inserts (next `record_seq`, version 1) or updates (version + 1, photos
    ///    replaced; an identical edit changes nothing), and appends
    ///    `meeting.create`/`meeting.edit` to the audit log;
    /// 5. runs `after` — the quota re-evaluation hook — whose returned JSON is stored
    ///    in the ledger as this mutation's result.
    ///
    /// Every outcome but `Applied` writes nothing. An unknown `area_id` is `Invalid`.
    pub fn upsert_meeting<F>(
        &self,
        w: &MeetingWrite,
        ledger: &LedgerWrite,
        after: F,
    ) -> Result<UpsertOutcome<MeetingApplied>>
    where
        F: FnOnce(&mut dyn SyncTx, &MeetingApplied) -> Result<String>,
    {
        let photos = photo_list(&w.photos)?;
        let id = w.id.to_string();
        let now = now_utc();
        write_tx!(self, |c| {
            // Photos are never deleted, so which are missing can be read before the
            // lock, keeping a round trip out of the time other pushes wait. (One that
            // lands in between is reported missing once; the device's re-upload is
            // then answered "already stored" and its next push applies.)
            let missing = SyncTx::missing_media(c, &photos)?;
            // Likewise an area's id and path never change (imports add areas or rename
            // them) and areas are never deleted.
            let area = match self.area_places.lookup(c, w.area_id) {
                Err(StoreError::NotFound) => None,
                other => Some(other?),
            };
            lock_and_catch_up(c, &self.photo_index)?;
            let prior: Option<LedgerRow> = mutation_ledger::table
                .find((&ledger.device_id, ledger.mutation_id.to_string()))
                .select(LedgerRow::as_select())
                .first(c)
                .optional()?;
            if let Some(prior) = prior {
                return Ok(prior.replay(ledger));
            }
            let existing = c.meeting_row(&id)?;
            if let Some(m) = &existing {
                if m.incharge_id != w.incharge_id.to_string() {
                    return Ok(UpsertOutcome::Forbidden);
                }
                if m.decision.is_some() {
                    return Ok(UpsertOutcome::VersionConflict {
                        current_version: m.version,
                        decided: true,
                    });
                }
                if let Some(v) = w.expected_version
                    && v != m.version
                {
                    return Ok(UpsertOutcome::VersionConflict {
                        current_version: m.version,
                        decided: false,
                    });
                }
            }
            if !missing.is_empty() {
                return Ok(UpsertOutcome::MissingMedia(missing));
            }
            let Some(area) = area else {
                return Err(StoreError::Invalid("area does not exist".into()));
            };
            let applied = match existing {
                None => {
                    let record_seq = c.next_record_seq()?;
                    diesel::insert_into(meetings::table)
                        .values(&MeetingRow {
                            id: id.clone(),
                            incharge_id: w.incharge_id.to_string(),
                            area_id: area.id.to_string(),
                            area_path: area.path.as_str().to_owned(),
                            kind: w.kind.clone(),
                            occurred_at: truncate(w.occurred_at),
                            occurred_offset_minutes: w.occurred_offset_minutes,
                            ended_at: w.ended_at.map(truncate),
                            local_day: w.local_day.clone(),
                            received_at: truncate(w.received_at),
                            lat: w.lat,
                            lon: w.lon,
                            accuracy_m: w.accuracy_m,
                            attendee_count: w.attendee_count,
                            topic: w.topic.clone(),
                            notes: w.notes.clone(),
                            version: 1,
                            decision: None,
                            decision_reason: None,
                            decided_by: None,
                            decided_at: None,
                            counted: false,
                            flags: "[]".to_owned(),
                            record_seq,
                            created_at: now,
                            updated_at: now,
                        })
                        .execute(c)?;
                    MeetingApplied {
                        meeting_id: w.id,
                        incharge_id: w.incharge_id,
                        area_path: area.path.clone(),
                        version: 1,
                        record_seq,
                        created: true,
                        changed: true,
                        local_day: w.local_day.clone(),
                        previous_local_day: None,
                        previous_photos: Vec::new(),
                    }
                }
                Some(old) => {
                    let old_photos: Vec<String> = meeting_photos::table
                        .filter(meeting_photos::meeting_id.eq(&id))
                        .order(meeting_photos::position.asc())
                        .select(meeting_photos::sha256)
                        .load(c)?;
                    let changed = !w.same_as(&old, &old_photos, &photos);
                    let version = if changed {
                        old.version + 1
                    } else {
                        old.version
                    };
                    if changed {
                        diesel::update(meetings::table.find(&id))
                            .set((
                                meetings::area_id.eq(area.id.to_string()),
                                meetings::area_path.eq(area.path.as_str()),
                                meetings::kind.eq(&w.kind),
                                meetings::occurred_at.eq(truncate(w.occurred_at)),
                                meetings::occurred_offset_minutes.eq(w.occurred_offset_minutes),
                                meetings::ended_at.eq(w.ended_at.map(truncate)),
                                meetings::local_day.eq(&w.local_day),
                                meetings::lat.eq(w.lat),
                                meetings::lon.eq(w.lon),
                                meetings::accuracy_m.eq(w.accuracy_m),
                                meetings::attendee_count.eq(w.attendee_count),
                                meetings::topic.eq(&w.topic),
                                meetings::notes.eq(&w.notes),
                                meetings::version.eq(version),
                                meetings::updated_at.eq(now),
                            ))
                            .execute(c)?;
                        diesel::delete(
                            meeting_photos::table.filter(meeting_photos::meeting_id.eq(&id)),
                        )
                        .execute(c)?;
                    }
                    MeetingApplied {
                        meeting_id: w.id,
                        incharge_id: w.incharge_id,
                        area_path: area.path.clone(),
                        version,
                        record_seq: old.record_seq,
                        created: false,
                        changed,
                        previous_local_day: (old.local_day != w.local_day)
                            .then(|| old.local_day.clone()),
                        local_day: w.local_day.clone(),
                        previous_photos: old_photos,
                    }
                }
            };
            if applied.changed {
                // The photo index reads uses by this stamp (see `photo_index.rs`): an
                // edit's rewritten uses need a number above every one already read.
                let use_seq = if applied.created {
                    applied.record_seq
                } else {
                    c.next_record_seq()?
                };
                for (i, sha) in photos.iter().enumerate() {
                    diesel::insert_into(meeting_photos::table)
                        .values((
                            meeting_photos::meeting_id.eq(&id),
                            meeting_photos::sha256.eq(sha),
                            meeting_photos::position.eq(to_position(i)?),
                            meeting_photos::use_seq.eq(use_seq),
                        ))
                        .execute(c)?;
                }
                c.append_audit(
                    &AuditEvent::new(
                        Some(w.incharge_id),
                        if applied.created {
                            "meeting.create"
                        } else {
                            "meeting.edit"
                        },
                        "meeting",
                        &id,
                        serde_json::json!({
                            "version": applied.version,
                            "local_day": applied.local_day,
                            "area_id": w.area_id,
                            "photos": photos,
                            "device_id": ledger.device_id,
                            "mutation_id": ledger.mutation_id,
                        }),
                    ),
                    now,
                )?;
            }
            let result = after(&mut IndexedTx::caught_up(c, &self.photo_index), &applied)?;
            diesel::insert_into(mutation_ledger::table)
                .values(&LedgerRow {
                    device_id: ledger.device_id.clone(),
                    mutation_id: ledger.mutation_id.to_string(),
                    user_id: ledger.user_id.to_string(),
                    content_hash: ledger.content_hash.clone(),
                    result: result.clone(),
                    created_at: now,
                })
                .execute(c)?;
            Ok(UpsertOutcome::Applied { applied, result })
        })
    }

    /// Applies a `feedback.create` exactly once (insert-only). The ledger row is
    /// claimed first, so a concurrent retry waits for this one and then replays it.
    /// The same feedback id with the same content (sent again under a new mutation
    /// id) is applied with `created: false`; with other content it is `Conflict`.
    /// An unknown constituency is `Invalid`.
    pub fn create_feedback<F>(
        &self,
        w: &FeedbackWrite,
        ledger: &LedgerWrite,
        after: F,
    ) -> Result<UpsertOutcome<FeedbackApplied>>
    where
        F: FnOnce(&mut dyn SyncTx, &FeedbackApplied) -> Result<String>,
    {
        let id = w.id.to_string();
        let now = now_utc();
        let key = (ledger.device_id.clone(), ledger.mutation_id.to_string());
        write_tx!(self, |c| {
            let claimed = diesel::insert_into(mutation_ledger::table)
                .values(&LedgerRow {
                    device_id: key.0.clone(),
                    mutation_id: key.1.clone(),
                    user_id: ledger.user_id.to_string(),
                    content_hash: ledger.content_hash.clone(),
                    result: String::new(),
                    created_at: now,
                })
                .on_conflict_do_nothing()
                .execute(c)?;
            if claimed == 0 {
                let prior: LedgerRow = mutation_ledger::table
                    .find((&key.0, &key.1))
                    .select(LedgerRow::as_select())
                    .first(c)?;
                return Ok(prior.replay(ledger));
            }
            let area = match self.area_places.lookup(c, w.constituency_id) {
                Err(StoreError::NotFound) => {
                    return Err(StoreError::Invalid("constituency does not exist".into()));
                }
                other => other?,
            };
            let row = FeedbackRow {
                id: id.clone(),
                incharge_id: w.incharge_id.to_string(),
                constituency_id: area.id.to_string(),
                constituency_path: area.path.as_str().to_owned(),
                subject: w.subject.clone(),
                rating: w.rating,
                text: w.text.clone(),
                collected_at: truncate(w.collected_at),
                respondents: w.respondents,
                received_at: truncate(w.received_at),
            };
            let inserted = diesel::insert_into(feedback::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)?;
            if inserted == 0 {
                let stored: FeedbackRow = feedback::table
                    .find(&id)
                    .select(FeedbackRow::as_select())
                    .first(c)?;
                if !stored.same_content(w) {
                    // Give the claimed ledger row back: a rejection stores nothing.
                    diesel::delete(mutation_ledger::table.find((&key.0, &key.1))).execute(c)?;
                    return Ok(UpsertOutcome::Conflict);
                }
            } else {
                c.append_audit(
                    &AuditEvent::new(
                        Some(w.incharge_id),
                        "feedback.create",
                        "feedback",
                        &id,
                        serde_json::json!({
                            "constituency_id": w.constituency_id,
                            "subject": w.subject,
                            "rating": w.rating,
                            "respondents": w.respondents,
                            "device_id": ledger.device_id,
                            "mutation_id": ledger.mutation_id,
                        }),
                    ),
                    now,
                )?;
            }
            let applied = FeedbackApplied {
                feedback_id: w.id,
                constituency_path: area.path.clone(),
                created: inserted > 0,
            };
            let result = after(&mut *c, &applied)?;
            diesel::update(mutation_ledger::table.find((&key.0, &key.1)))
                .set(mutation_ledger::result.eq(&result))
                .execute(c)?;
            Ok(UpsertOutcome::Applied { applied, result })
        })
    }
}
