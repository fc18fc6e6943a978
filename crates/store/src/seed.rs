//! Bulk seeding of meeting history, for benchmarks and load tests only.
//!
//! [`Store::seed_history`] writes in-charges, their photos' facts, meetings, meeting
//! photos and per-day quota results in large multi-row `INSERT`s, a few transactions
//! in all, on both backends: ~1.4 M rows (1,000 in-charges × 90 days × 5 meetings) in
//! tens of seconds, where the same history pushed meeting by meeting would take hours.
//!
//! The rows have the shape pushes give them. Meetings are v7 ids, `small_meeting`,
//! spread over 08:00–20:00 of each local day in the policy's time zone (at least a
//! third of their slot apart: 48 min for five a day), with a location and photos
//! whose EXIF time and GPS agree with it. Their verdict (`counted`, `flags`) and each
//! day's `quota_days` row come from the domain's own `evaluate_meeting` /
//! `evaluate_day`, run as the push of the day's last meeting would have run them (so
//! `is_final` is false, as for pushed days: nothing makes a day final later). `record_seq` continues from `meeting_head` and the head is moved on,
//! so later pushes continue the sequence. Photo hashes come from [`seed_photo`]: no two
//! seeded photos are within pHash distance 12, so nothing is a duplicate.
//!
//! What is deliberately *not* written: audit entries, pull-feed changes and mutation
//! ledger rows. Seeded history is therefore not auditable, devices pulling the feed
//! do not hear of it, and it must never be run against a production database.
//! On PostgreSQL the seeded tables are vacuumed and analysed at the end, as autovacuum
//! would do shortly after a bulk load (the visibility map lets covering indexes answer
//! index-only); SQLite is left as the server leaves it (no statistics).

use crate::db::{Backend, Store, write_tx};
use crate::error::{Result, StoreError};
use crate::meetings::MeetingConn;
use crate::schema::{media, meeting_head, meeting_photos, meetings, quota_days, users};
use crate::{compliance::QuotaDayRow, media::phash_bands};
use baithak_domain::meeting::{FlagEntry, GeoPoint, MeetingId, sort_flags};
use baithak_domain::quota::{
    DayMeeting, MeetingFacts, PhotoFacts, evaluate_day, evaluate_meeting, local_day,
    start_of_local_day,
};
use baithak_domain::{AreaId, MeetingKind, Policy, Role, UserId};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, Timelike, Utc};
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::{NoContext, Timestamp, Uuid};

/// How many distinct photos [`seed_photo`] can make.
pub const SEED_PHOTO_CAPACITY: u64 = 1 << PHASH_DIMENSION;

/// Pairwise pHash distance of any two seed photos is at least this (verified by a
/// test over all 2^24 of them): above the default duplicate threshold of 10.
pub const SEED_PHOTO_MIN_DISTANCE: u32 = 13;

const PHASH_DIMENSION: u32 = 24;
/// The SplitMix64 seed whose first 24 outputs generate a binary linear [64, 24] code
/// of minimum distance 13 (found by search; the test checks it).
const PHASH_GENERATOR_SEED: u64 = 25;

/// Meetings per write transaction (plus as many photos and media rows each).
const MEETINGS_PER_TX: usize = 50_000;
/// Rows per `INSERT`: below SQLite's 32,766 and PostgreSQL's 65,535 bind parameters
/// for the widest table (meetings, 26 columns).
const ROWS_PER_INSERT: usize = 1_000;

const TOPICS: [&str; 6] = ["बिजली", "पानी", "सड़क", "स्वास्थ्य", "शिक्षा", "रोज़गार"];

/// What [`Store::seed_history`] generates.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// In-charges to create, assigned to `areas` in turn.
    pub incharges: u32,
    pub areas: Vec<AreaId>,
    /// Local days of history per in-charge, ending with `last_day`, which must be
    /// before today in the policy's time zone (no meeting lies in the future).
    pub days: u32,
    pub last_day: NaiveDate,
    /// Spread over 08:00–20:00 local time.
    pub meetings_per_day: u32,
    pub photos_per_meeting: u32,
    /// Logins are `{login_prefix}{n:05}`, `n` from 1.
    pub login_prefix: String,
    /// Stored for every in-charge: hash one password once, so load tests can log in.
    pub password_hash: String,
    /// First index into the [`seed_photo`] sequence. Seeding the same database again
    /// must start at the previous report's `next_photo`.
    pub first_photo: u64,
    /// Seeds times, places and attendance (ids are fresh every run).
    pub rng_seed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededIncharge {
    pub id: UserId,
    pub login: String,
    pub area_id: AreaId,
}

/// What [`Store::seed_history`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub incharges: Vec<SeededIncharge>,
    pub meetings: u64,
    pub photos: u64,
    pub quota_days: u64,
    /// The next unused [`seed_photo`] index.
    pub next_photo: u64,
    /// `meeting_head` after seeding.
    pub last_record_seq: i64,
}

/// The `n`th seed photo: a SHA-256 (of a label, not of image bytes) and a pHash.
/// The pHashes are the codewords of a linear [64, 24] code, offset by a constant, so
/// any two differ in at least [`SEED_PHOTO_MIN_DISTANCE`] bits while their bands are
/// spread like real hashes. Benchmarks use indices past the seeded ones for photos
/// that must not be duplicates of the history. `Invalid` from `SEED_PHOTO_CAPACITY` on.
pub fn seed_photo(n: u64) -> Result<(String, u64)> {
    if n >= SEED_PHOTO_CAPACITY {
        return Err(StoreError::Invalid(format!(
            "seed photo index {n} is past the {SEED_PHOTO_CAPACITY} available"
        )));
    }
    let mut gen_state = PHASH_GENERATOR_SEED;
    let mut phash = 0u64;
    for bit in 0..PHASH_DIMENSION {
        let row = splitmix64(&mut gen_state);
        if n >> bit & 1 == 1 {
            phash ^= row;
        }
    }
    phash ^= splitmix64(&mut gen_state);
    let sha = hex::encode(Sha256::digest(format!("baithak seed photo {n}").as_bytes()));
    Ok((sha, phash))
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator for jitter (no cryptographic claim).
struct Jitter(u64);

impl Jitter {
    fn new(parts: &[u64]) -> Self {
        let mut s = 0x6261_6974_6861_6b21;
        for p in parts {
            s ^= *p;
            splitmix64(&mut s);
        }
        Jitter(s)
    }

    /// Uniform in `[0, n)` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        splitmix64(&mut self.0) % n.max(1)
    }

    /// Uniform in `[-r, r)`.
    fn spread(&mut self, r: f64) -> f64 {
        let unit = (splitmix64(&mut self.0) >> 11) as f64 / (1u64 << 53) as f64;
        (unit * 2.0 - 1.0) * r
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
struct SeedUser {
    id: String,
    login: String,
    name: String,
    role: String,
    area_id: String,
    password_hash: String,
    active: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

// `treat_none_as_default_value = false`: a `None` is bound as NULL rather than
// DEFAULT, which lets SQLite take many rows in one INSERT (it has no DEFAULT in VALUES,
// so diesel would otherwise insert row by row).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = media, treat_none_as_default_value = false)]
struct SeedMedia {
    sha256: String,
    media_type: String,
    bytes: i64,
    width: i32,
    height: i32,
    taken_at: Option<NaiveDateTime>,
    taken_at_local: Option<String>,
    gps_lat: Option<f64>,
    gps_lon: Option<f64>,
    orientation: i32,
    phash: i64,
    phash_b0: i32,
    phash_b1: i32,
    phash_b2: i32,
    phash_b3: i32,
    uploaded_by: String,
    created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meetings, treat_none_as_default_value = false)]
struct SeedMeeting {
    id: String,
    incharge_id: String,
    area_id: String,
    area_path: String,
    kind: String,
    occurred_at: NaiveDateTime,
    occurred_offset_minutes: i32,
    ended_at: Option<NaiveDateTime>,
    local_day: String,
    received_at: NaiveDateTime,
    lat: Option<f64>,
    lon: Option<f64>,
    accuracy_m: Option<f64>,
    attendee_count: i32,
    topic: String,
    notes: String,
    version: i64,
    decision: Option<String>,
    decision_reason: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<NaiveDateTime>,
    counted: bool,
    flags: String,
    record_seq: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = meeting_photos)]
struct SeedMeetingPhoto {
    meeting_id: String,
    sha256: String,
    position: i32,
    use_seq: i64,
}

struct Incharge {
    id: UserId,
    area_id: AreaId,
    area_path: String,
    /// Where this in-charge works: its meetings lie within ~2 km.
    home: (f64, f64),
    index: u64,
}

/// Rows of one write transaction.
#[derive(Default)]
struct Batch {
    media: Vec<SeedMedia>,
    meetings: Vec<SeedMeeting>,
    photos: Vec<SeedMeetingPhoto>,
    days: Vec<QuotaDayRow>,
}

/// Everything one day of one in-charge needs, shared by the day's meetings.
struct DayPlan<'a> {
    spec: &'a SeedSpec,
    policy: &'a Policy,
    incharge: &'a Incharge,
    day: NaiveDate,
    day_index: u64,
    now: DateTime<Utc>,
}

/// Stored times are whole seconds here (devices send seconds; `now` is cut too).
fn whole_seconds(t: DateTime<Utc>) -> NaiveDateTime {
    let t = t.naive_utc();
    t.with_nanosecond(0).unwrap_or(t)
}

/// A v7 id whose time part is `at`, as the device that made the record would have.
fn v7_at(at: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(at.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        secs,
        at.timestamp_subsec_nanos(),
    ))
}

impl DayPlan<'_> {
    /// Appends the day's media, meetings, photos and quota row to `out`.
    fn build(&self, record_seq: &mut i64, next_photo: &mut u64, out: &mut Batch) -> Result<()> {
        let tz = self.policy.timezone;
        let n = u64::from(self.spec.meetings_per_day);
        let mut rng = Jitter::new(&[self.spec.rng_seed, self.incharge.index, self.day_index]);
        let midnight = start_of_local_day(self.day, tz);
        // Twelve working hours cut into one slot per meeting; each meeting starts in
        // the first two thirds of its slot, so neighbours are a third of a slot apart
        // at least (48 min for five a day).
        let slot = (12 * 60 / n.max(1)).max(1);
        let mut facts = Vec::with_capacity(self.spec.meetings_per_day as usize);
        let mut rows = Vec::with_capacity(facts.capacity());
        let mut last_received = midnight;
        for j in 0..n {
            let minute = 8 * 60 + j * slot + rng.below(slot * 2 / 3 + 1);
            let occurred = midnight
                + Duration::minutes(i64::try_from(minute).unwrap_or(0))
                + Duration::seconds(i64::try_from(rng.below(60)).unwrap_or(0));
            if local_day(occurred, tz) != self.day {
                return Err(StoreError::Invalid(format!(
                    "a seeded meeting of {} fell on another local day",
                    self.day
                )));
            }
            let received = (occurred
                + Duration::minutes(10 + i64::try_from(rng.below(230)).unwrap_or(0)))
            .min(self.now);
            last_received = last_received.max(received);
            let (lat, lon) = (
                self.incharge.home.0 + rng.spread(0.02),
                self.incharge.home.1 + rng.spread(0.02),
            );
            let id = v7_at(occurred);
            let mut photo_facts = Vec::new();
            for position in 0..self.spec.photos_per_meeting {
                let (sha, phash) = seed_photo(*next_photo)?;
                *next_photo += 1;
                let taken = occurred - Duration::minutes(i64::try_from(rng.below(10)).unwrap_or(0));
                let gps = (lat + rng.spread(0.0005), lon + rng.spread(0.0005));
                let [b0, b1, b2, b3] = phash_bands(phash);
                let portrait = rng.below(2) == 0;
                out.media.push(SeedMedia {
                    sha256: sha.clone(),
                    media_type: "image/jpeg".to_owned(),
                    bytes: 600_000 + i64::try_from(rng.below(1_900_000)).unwrap_or(0),
                    width: if portrait { 3000 } else { 4000 },
                    height: if portrait { 4000 } else { 3000 },
                    taken_at: None,
                    taken_at_local: Some(
                        taken
                            .with_timezone(&tz)
                            .naive_local()
                            .format("%Y-%m-%dT%H:%M:%S")
                            .to_string(),
                    ),
                    gps_lat: Some(gps.0),
                    gps_lon: Some(gps.1),
                    orientation: 1,
                    phash: phash as i64,
                    phash_b0: b0,
                    phash_b1: b1,
                    phash_b2: b2,
                    phash_b3: b3,
                    uploaded_by: self.incharge.id.to_string(),
                    created_at: whole_seconds(received - Duration::minutes(1)),
                });
                out.photos.push(SeedMeetingPhoto {
                    meeting_id: id.to_string(),
                    sha256: sha.clone(),
                    position: i32::try_from(position).unwrap_or(i32::MAX),
                    // The meeting's record_seq, assigned below.
                    use_seq: *record_seq + 1,
                });
                photo_facts.push(PhotoFacts {
                    sha256: sha,
                    phash: Some(phash),
                    taken_at: Some(taken),
                    gps: GeoPoint::new(gps.0, gps.1).ok(),
                });
            }
            facts.push(MeetingFacts {
                id: MeetingId(id),
                kind: MeetingKind::SmallMeeting,
                occurred_at: occurred,
                received_at: received,
                location: GeoPoint::new(lat, lon).ok(),
                photos: photo_facts,
                decision: None,
                duplicate_of: Vec::new(),
            });
            *record_seq += 1;
            rows.push(SeedMeeting {
                id: id.to_string(),
                incharge_id: self.incharge.id.to_string(),
                area_id: self.incharge.area_id.to_string(),
                area_path: self.incharge.area_path.clone(),
                kind: MeetingKind::SmallMeeting.as_str().to_owned(),
                occurred_at: whole_seconds(occurred),
                occurred_offset_minutes: occurred
                    .with_timezone(&tz)
                    .offset()
                    .fix()
                    .local_minus_utc()
                    / 60,
                ended_at: Some(whole_seconds(
                    occurred + Duration::minutes(30 + i64::try_from(rng.below(45)).unwrap_or(0)),
                )),
                local_day: self.day.format("%Y-%m-%d").to_string(),
                received_at: whole_seconds(received),
                lat: Some(lat),
                lon: Some(lon),
                accuracy_m: Some(5.0 + rng.below(25) as f64),
                attendee_count: 5 + i32::try_from(rng.below(55)).unwrap_or(0),
                topic: TOPICS[rng.below(TOPICS.len() as u64) as usize].to_owned(),
                notes: String::new(),
                version: 1,
                decision: None,
                decision_reason: None,
                decided_by: None,
                decided_at: None,
                counted: false,
                flags: "[]".to_owned(),
                record_seq: *record_seq,
                created_at: whole_seconds(received),
                updated_at: whole_seconds(received),
            });
        }
        self.evaluate(&facts, &mut rows, last_received, out)?;
        out.meetings.extend(rows);
        Ok(())
    }

    /// Sets each meeting's verdict and adds the day's row, as the re-evaluation after
    /// the push of the day's last meeting (at `at`) would have.
    fn evaluate(
        &self,
        facts: &[MeetingFacts],
        rows: &mut [SeedMeeting],
        at: DateTime<Utc>,
        out: &mut Batch,
    ) -> Result<()> {
        let verdicts: Vec<_> = facts
            .iter()
            .map(|f| evaluate_meeting(self.policy, f))
            .collect();
        let day_input: Vec<DayMeeting> = facts
            .iter()
            .zip(&verdicts)
            .map(|(f, v)| DayMeeting {
                id: f.id,
                occurred_at: f.occurred_at,
                eligible: v.eligible,
            })
            .collect();
        let result = evaluate_day(self.policy, self.day, &day_input, false, at);
        for ((row, f), verdict) in rows.iter_mut().zip(facts).zip(verdicts) {
            let mut flags: Vec<FlagEntry> = verdict.flags;
            if let Some(tc) = result.too_close.iter().find(|t| t.meeting_id == f.id) {
                flags.push(tc.flag_entry(self.policy));
                sort_flags(&mut flags);
            }
            row.counted = result.counted_ids.contains(&f.id);
            row.flags = serde_json::to_string(&flags)
                .map_err(|e| StoreError::Invalid(format!("flags: {e}")))?;
        }
        out.days.push(QuotaDayRow {
            incharge_id: self.incharge.id.to_string(),
            day: self.day.format("%Y-%m-%d").to_string(),
            counted: i32::try_from(result.counted).unwrap_or(i32::MAX),
            submitted: i32::try_from(result.submitted).unwrap_or(i32::MAX),
            status: result.status.as_str().to_owned(),
            target_met: result.target_met,
            is_final: result.is_final,
            updated_at: whole_seconds(at),
        });
        Ok(())
    }
}

fn check_spec(spec: &SeedSpec, today: NaiveDate) -> Result<()> {
    let bad = |m: &str| Err(StoreError::Invalid(format!("seed: {m}")));
    if spec.areas.is_empty() {
        return bad("at least one area is needed");
    }
    if spec.last_day >= today {
        return bad("last_day must be before today in the policy's time zone");
    }
    if spec.meetings_per_day == 0 || spec.meetings_per_day > 48 {
        return bad("meetings_per_day must be 1 to 48");
    }
    if spec.photos_per_meeting == 0 || spec.photos_per_meeting > 10 {
        return bad("photos_per_meeting must be 1 to 10");
    }
    let photos = u64::from(spec.incharges)
        * u64::from(spec.days)
        * u64::from(spec.meetings_per_day)
        * u64::from(spec.photos_per_meeting);
    if spec.first_photo.saturating_add(photos) > SEED_PHOTO_CAPACITY {
        return bad("more photos than seed_photo can make");
    }
    Ok(())
}

/// Inserts `$rows` in chunks of [`ROWS_PER_INSERT`] on the connection `$c`.
macro_rules! insert_chunks {
    ($c:expr, $table:expr, $rows:expr) => {
        for chunk in $rows.chunks(ROWS_PER_INSERT) {
            diesel::insert_into($table).values(chunk).execute($c)?;
        }
    };
}

impl Store {
    /// Seeds `spec.incharges` in-charges with `spec.days` days of counted history
    /// each, for benchmarks and load tests: no audit entries, no feed changes, no
    /// ledger rows (see the module documentation). Runs under the stored policy.
    #[tracing::instrument(skip_all, fields(incharges = spec.incharges, days = spec.days))]
    pub fn seed_history(&self, spec: &SeedSpec) -> Result<SeedReport> {
        let policy: Policy = match self.policy()? {
            Some(rec) => serde_json::from_str(&rec.body)
                .map_err(|e| StoreError::Corrupt(format!("stored policy: {e}")))?,
            None => Policy::default(),
        };
        let now = Utc::now();
        check_spec(spec, local_day(now, policy.timezone))?;
        let first_day = spec.last_day - Duration::days(i64::from(spec.days.max(1)) - 1);
        let areas: HashMap<AreaId, String> = self
            .areas_by_ids(&spec.areas)?
            .into_iter()
            .map(|a| (a.id, a.path.as_str().to_owned()))
            .collect();

        // In-charges joined the day before their history starts.
        let joined = start_of_local_day(first_day, policy.timezone) - Duration::days(1);
        let mut incharges = Vec::with_capacity(spec.incharges as usize);
        let mut user_rows = Vec::with_capacity(spec.incharges as usize);
        let mut report_incharges = Vec::with_capacity(spec.incharges as usize);
        for i in 0..spec.incharges {
            let area_id = spec.areas[i as usize % spec.areas.len()];
            let area_path = areas
                .get(&area_id)
                .ok_or_else(|| StoreError::Invalid(format!("seed: area {area_id} not found")))?
                .clone();
            // Creation order is id order, one millisecond apart.
            let created = joined + Duration::milliseconds(i64::from(i));
            let id = UserId(v7_at(created));
            let login = format!("{}{:05}", spec.login_prefix, i + 1);
            let mut rng = Jitter::new(&[spec.rng_seed, u64::from(i), u64::MAX]);
            user_rows.push(SeedUser {
                id: id.to_string(),
                login: login.clone(),
                name: format!("Seeded in-charge {}", i + 1),
                role: Role::Incharge.as_str().to_owned(),
                area_id: area_id.to_string(),
                password_hash: spec.password_hash.clone(),
                active: true,
                created_at: crate::time::truncate(created.naive_utc()),
                updated_at: crate::time::truncate(created.naive_utc()),
            });
            incharges.push(Incharge {
                id,
                area_id,
                area_path,
                // Somewhere in central Uttar Pradesh.
                home: (26.75 + rng.spread(0.75), 80.75 + rng.spread(0.75)),
                index: u64::from(i),
            });
            report_incharges.push(SeededIncharge { id, login, area_id });
        }
        write_tx!(self, |c| {
            insert_chunks!(c, users::table, user_rows);
            Ok(())
        })?;

        let per_day = spec.incharges as usize * spec.meetings_per_day as usize;
        let days_per_tx = (MEETINGS_PER_TX / per_day.max(1)).max(1);
        let mut next_photo = spec.first_photo;
        let mut totals = (0u64, 0u64, 0u64);
        let mut last_record_seq = 0;
        let mut day_index = 0u32;
        while day_index < spec.days {
            let span = (spec.days - day_index).min(u32::try_from(days_per_tx).unwrap_or(u32::MAX));
            let build = |head: i64, next_photo: &mut u64| -> Result<(Batch, i64)> {
                let mut batch = Batch::default();
                let mut seq = head;
                for d in day_index..day_index + span {
                    let day = first_day + Duration::days(i64::from(d));
                    for incharge in &incharges {
                        DayPlan {
                            spec,
                            policy: &policy,
                            incharge,
                            day,
                            day_index: u64::from(d),
                            now,
                        }
                        .build(&mut seq, next_photo, &mut batch)?;
                    }
                }
                Ok((batch, seq))
            };
            let (counts, seq) = write_tx!(self, |c| {
                let head = c.lock_meetings()?;
                let (batch, seq) = build(head, &mut next_photo)?;
                insert_chunks!(c, media::table, batch.media);
                insert_chunks!(c, meetings::table, batch.meetings);
                insert_chunks!(c, meeting_photos::table, batch.photos);
                insert_chunks!(c, quota_days::table, batch.days);
                diesel::update(meeting_head::table.find(1))
                    .set(meeting_head::seq.eq(seq))
                    .execute(c)?;
                Ok((
                    (
                        batch.meetings.len() as u64,
                        batch.photos.len() as u64,
                        batch.days.len() as u64,
                    ),
                    seq,
                ))
            })?;
            totals.0 += counts.0;
            totals.1 += counts.1;
            totals.2 += counts.2;
            last_record_seq = seq;
            day_index += span;
        }
        if self.backend() == Backend::Postgres {
            crate::db::with_conn!(self, |c| {
                diesel::sql_query(
                    "VACUUM (ANALYZE) users, media, meetings, meeting_photos, quota_days",
                )
                .execute(c)?;
                Ok::<_, StoreError>(())
            })?;
        }
        Ok(SeedReport {
            incharges: report_incharges,
            meetings: totals.0,
            photos: totals.1,
            quota_days: totals.2,
            next_photo,
            last_record_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every nonzero codeword, visited in Gray-code order, has weight ≥ 13: so do the
    /// differences of any two seed pHashes (the code is linear; the offset cancels).
    #[test]
    fn seed_phashes_are_far_apart() {
        let mut state = PHASH_GENERATOR_SEED;
        let rows: Vec<u64> = (0..PHASH_DIMENSION)
            .map(|_| splitmix64(&mut state))
            .collect();
        let mut word = 0u64;
        let mut min = 64;
        for i in 1u64..SEED_PHOTO_CAPACITY {
            word ^= rows[i.trailing_zeros() as usize];
            min = min.min(word.count_ones());
        }
        assert_eq!(min, SEED_PHOTO_MIN_DISTANCE);
        let (a, pa) = seed_photo(0).unwrap_or_default();
        let (b, pb) = seed_photo(SEED_PHOTO_CAPACITY - 1).unwrap_or_default();
        assert_ne!(a, b);
        assert!((pa ^ pb).count_ones() >= SEED_PHOTO_MIN_DISTANCE);
        assert!(seed_photo(SEED_PHOTO_CAPACITY).is_err());
    }
}
