//! Content-addressed photo facts and the perceptual-hash neighbour search.
//!
//! A photo is stored once per SHA-256 whatever number of meetings use it. Its 64-bit
//! pHash is kept whole (as i64 bits) and split into four 16-bit bands, each indexed.
//! Multi-index hashing: if two hashes differ in at most `d` bits, the differing bits
//! fall into four bands, so at least one band differs in at most `floor(d/4)` bits
//! (pigeonhole). Looking up every band value within that radius of the probe's band
//! (for d = 10: 1 + 16 + 120 = 137 values per band) finds every candidate through an
//! index, and the exact distance filters them.

use crate::audit::{AuditConn, AuditEvent};
use crate::db::{Store, with_conn, write_tx};
use crate::error::{Result, StoreError};
use crate::schema::{media, media_uploaders, meeting_photos, meetings, uploads};
use crate::time::{now_utc, truncate};
use baithak_domain::{AreaPath, UserId};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// The largest pHash distance a neighbour search accepts: beyond it every band radius
/// is 8+ bits (over half of each band's values) and distinct photos start to match.
pub const MAX_PHASH_DISTANCE: u32 = 32;

/// Band values per query, below both backends' bind-parameter limits.
pub(crate) const BAND_CHUNK: usize = 2000;

/// Facts about a verified photo, as ingest produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    /// 64 lowercase hex digits.
    pub sha256: String,
    /// MIME type, e.g. `image/jpeg`.
    pub media_type: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// UTC, when the EXIF capture time carried an offset.
    pub taken_at: Option<NaiveDateTime>,
    /// Naive local `YYYY-MM-DDTHH:MM:SS`, when the EXIF time had no offset.
    pub taken_at_local: Option<String>,
    pub gps_lat: Option<f64>,
    pub gps_lon: Option<f64>,
    /// EXIF orientation (1 = upright).
    pub orientation: u8,
    pub phash: u64,
    pub uploaded_by: UserId,
}

/// A stored photo.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRecord {
    pub sha256: String,
    pub media_type: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub taken_at: Option<NaiveDateTime>,
    pub taken_at_local: Option<String>,
    pub gps_lat: Option<f64>,
    pub gps_lon: Option<f64>,
    pub orientation: u8,
    pub phash: u64,
    pub uploaded_by: UserId,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = media, treat_none_as_default_value = false)]
pub(crate) struct MediaRow {
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

impl TryFrom<MediaRow> for MediaRecord {
    type Error = StoreError;
    fn try_from(r: MediaRow) -> Result<Self> {
        let bad = |what: &str| StoreError::Corrupt(format!("{what} of media {}", r.sha256));
        Ok(MediaRecord {
            bytes: u64::try_from(r.bytes).map_err(|_| bad("bytes"))?,
            width: u32::try_from(r.width).map_err(|_| bad("width"))?,
            height: u32::try_from(r.height).map_err(|_| bad("height"))?,
            orientation: u8::try_from(r.orientation).map_err(|_| bad("orientation"))?,
            uploaded_by: r.uploaded_by.parse().map_err(|_| bad("uploader"))?,
            phash: r.phash as u64,
            sha256: r.sha256,
            media_type: r.media_type,
            taken_at: r.taken_at,
            taken_at_local: r.taken_at_local,
            gps_lat: r.gps_lat,
            gps_lon: r.gps_lon,
            created_at: r.created_at,
        })
    }
}

pub(crate) fn parse_media(rows: Vec<MediaRow>) -> Result<Vec<MediaRecord>> {
    rows.into_iter().map(MediaRecord::try_from).collect()
}

/// True for 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn check_sha(s: &str) -> Result<()> {
    if is_sha256_hex(s) {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "sha256 must be 64 lowercase hex digits".into(),
        ))
    }
}

/// The four 16-bit bands of a pHash, lowest bits first.
pub fn phash_bands(phash: u64) -> [i32; 4] {
    [0, 1, 2, 3].map(|k| ((phash >> (16 * k)) & 0xFFFF) as i32)
}

/// Hamming distance of two 64-bit hashes.
pub fn phash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Every 16-bit value within `radius` bits of `band`, `band` itself first, then by
/// distance. Built from the flip masks (137 at radius 2) rather than by testing all
/// 65,536 values, since every pushed photo asks for four of these lists.
fn band_neighbours(band: i32, radius: u32) -> Vec<i32> {
    let mut out = vec![band];
    let mut masks: Vec<i32> = vec![0];
    for _ in 0..radius.min(16) {
        // Extend every mask by one more bit above its highest, so each set of bits is
        // built exactly once.
        let mut next = Vec::new();
        for &m in &masks {
            let from = if m == 0 {
                0
            } else {
                32 - (m as u32).leading_zeros()
            };
            for bit in from..16 {
                next.push(m | (1 << bit));
            }
        }
        out.extend(next.iter().map(|m| band ^ m));
        masks = next;
    }
    out
}

/// For each band, the values a hash within `max_distance` must match in at least one.
pub(crate) fn band_candidates(phash: u64, max_distance: u32) -> [Vec<i32>; 4] {
    let radius = max_distance / 4;
    phash_bands(phash).map(|b| band_neighbours(b, radius))
}

pub(crate) fn check_distance(max_distance: u32) -> Result<()> {
    if max_distance > MAX_PHASH_DISTANCE {
        Err(StoreError::Invalid(format!(
            "pHash distance must be at most {MAX_PHASH_DISTANCE}"
        )))
    } else {
        Ok(())
    }
}

/// Runs `$query` (an expression over the boxed query `$q`) once per band and chunk of
/// candidate values, with `$q` pre-filtered on that band. Expanded per backend.
macro_rules! for_each_band_chunk {
    ($cands:expr, $base:expr, |$q:ident| $query:expr) => {{
        for (band, values) in $cands.iter().enumerate() {
            for chunk in values.chunks($crate::media::BAND_CHUNK) {
                let base = $base;
                let $q = match band {
                    0 => base.filter($crate::schema::media::phash_b0.eq_any(chunk)),
                    1 => base.filter($crate::schema::media::phash_b1.eq_any(chunk)),
                    2 => base.filter($crate::schema::media::phash_b2.eq_any(chunk)),
                    _ => base.filter($crate::schema::media::phash_b3.eq_any(chunk)),
                };
                $query;
            }
        }
    }};
}
pub(crate) use for_each_band_chunk;

impl Store {
    /// Stores a photo's facts unless a photo with that SHA-256 is already stored.
    /// Returns the stored record and whether this call created it; of any number of
    /// racing callers with one hash, exactly one gets `true`.
    pub fn record_media(&self, new: &NewMedia) -> Result<(MediaRecord, bool)> {
        self.record_media_inner(new, None)
    }

    /// [`Store::record_media`] for the photo a resumable upload just completed, and
    /// forgets that upload in the same transaction: one durable commit (an fsync of
    /// SQLite's WAL, under its write lock) where there were two. If recording fails,
    /// the upload stays, so its client can retry the completion.
    pub fn record_uploaded_media(
        &self,
        new: &NewMedia,
        upload: Uuid,
    ) -> Result<(MediaRecord, bool)> {
        self.record_media_inner(new, Some(upload))
    }

    fn record_media_inner(
        &self,
        new: &NewMedia,
        finished_upload: Option<Uuid>,
    ) -> Result<(MediaRecord, bool)> {
        check_sha(&new.sha256)?;
        let too_big = |what: &str| StoreError::Invalid(format!("{what} out of range"));
        let [b0, b1, b2, b3] = phash_bands(new.phash);
        let now = now_utc();
        let row = MediaRow {
            sha256: new.sha256.clone(),
            media_type: new.media_type.clone(),
            bytes: i64::try_from(new.bytes).map_err(|_| too_big("bytes"))?,
            width: i32::try_from(new.width).map_err(|_| too_big("width"))?,
            height: i32::try_from(new.height).map_err(|_| too_big("height"))?,
            taken_at: new.taken_at.map(truncate),
            taken_at_local: new.taken_at_local.clone(),
            gps_lat: new.gps_lat,
            gps_lon: new.gps_lon,
            orientation: i32::from(new.orientation),
            phash: new.phash as i64,
            phash_b0: b0,
            phash_b1: b1,
            phash_b2: b2,
            phash_b3: b3,
            uploaded_by: new.uploaded_by.to_string(),
            created_at: now,
        };
        write_tx!(self, |c| {
            // ON CONFLICT DO NOTHING waits for a concurrent inserter of the same key
            // and then reports no row, so the loser reads the winner's row below.
            let inserted = diesel::insert_into(media::table)
                .values(&row)
                .on_conflict_do_nothing()
                .execute(c)?;
            if inserted > 0 {
                c.append_audit(
                    &AuditEvent::new(
                        Some(new.uploaded_by),
                        "media.upload",
                        "media",
                        &new.sha256,
                        serde_json::json!({
                            "media_type": new.media_type,
                            "bytes": new.bytes,
                            "phash": format!("{:016x}", new.phash),
                        }),
                    ),
                    now,
                )?;
            }
            diesel::insert_into(media_uploaders::table)
                .values((
                    media_uploaders::sha256.eq(&new.sha256),
                    media_uploaders::user_id.eq(new.uploaded_by.to_string()),
                    media_uploaders::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            if let Some(id) = finished_upload {
                diesel::delete(uploads::table.find(id.to_string())).execute(c)?;
            }
            // The row just inserted is what the database holds (times are already
            // truncated to its microseconds), so only the loser reads the winner's.
            let stored = if inserted > 0 {
                row
            } else {
                media::table
                    .find(&new.sha256)
                    .select(MediaRow::as_select())
                    .first(c)?
            };
            Ok((MediaRecord::try_from(stored)?, inserted > 0))
        })
    }

    /// Records that `user` proved it holds the bytes of an already stored photo (it
    /// sent them and they hashed right), so the photo is visible to it too.
    pub fn add_media_uploader(&self, sha256: &str, user: UserId) -> Result<()> {
        let now = now_utc();
        write_tx!(self, |c| {
            diesel::insert_into(media_uploaders::table)
                .values((
                    media_uploaders::sha256.eq(sha256),
                    media_uploaders::user_id.eq(user.to_string()),
                    media_uploaders::created_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(c)?;
            Ok(())
        })
    }

    pub fn media(&self, sha256: &str) -> Result<Option<MediaRecord>> {
        with_conn!(self, |c| {
            let row: Option<MediaRow> = media::table
                .find(sha256)
                .select(MediaRow::as_select())
                .first(c)
                .optional()?;
            row.map(MediaRecord::try_from).transpose()
        })
    }

    /// The hashes of `shas` that are not stored, in input order (repeats kept once).
    pub fn missing_media(&self, shas: &[String]) -> Result<Vec<String>> {
        with_conn!(self, |c| crate::sync::SyncTx::missing_media(c, shas))
    }

    /// Stored photos whose pHash is within `max_distance` bits of `phash`, nearest
    /// first (ties by hash), leaving out `exclude_sha`. `max_distance` above
    /// [`MAX_PHASH_DISTANCE`] is refused.
    ///
    /// One indexed `phash_bK IN (…)` query per band (chunked when the radius makes
    /// the list long: 137 values at d = 10, 14 893 at d = 24), the union filtered by
    /// exact distance; equivalent to one `b0 IN … OR b1 IN …` query, and each query
    /// stays an index lookup on both backends.
    pub fn media_near(
        &self,
        phash: u64,
        max_distance: u32,
        exclude_sha: Option<&str>,
    ) -> Result<Vec<(String, u32)>> {
        check_distance(max_distance)?;
        let cands = band_candidates(phash, max_distance);
        let mut found: HashMap<String, u32> = HashMap::new();
        with_conn!(self, |c| {
            for_each_band_chunk!(cands, media::table.into_boxed(), |q| {
                let rows: Vec<(String, i64)> = q.select((media::sha256, media::phash)).load(c)?;
                for (sha, other) in rows {
                    let d = phash_distance(phash, other as u64);
                    if d <= max_distance && Some(sha.as_str()) != exclude_sha {
                        found.insert(sha, d);
                    }
                }
            });
            Ok::<_, StoreError>(())
        })?;
        let mut out: Vec<(String, u32)> = found.into_iter().collect();
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Whether `user_id` may see the photo: it uploaded it, or a meeting that uses it
    /// is its own or (with `scope`) lies in the subtree `scope`. Pass `None` for a user
    /// who sees only its own meetings (an in-charge).
    pub fn media_visible(
        &self,
        sha256: &str,
        user_id: UserId,
        scope: Option<&AreaPath>,
    ) -> Result<bool> {
        let uid = user_id.to_string();
        let range = scope.map(|s| (s.as_str().to_owned(), s.subtree_upper_bound()));
        with_conn!(self, |c| {
            let own: i64 = media_uploaders::table
                .filter(media_uploaders::sha256.eq(sha256))
                .filter(media_uploaders::user_id.eq(&uid))
                .count()
                .get_result(c)?;
            if own > 0 {
                return Ok(true);
            }
            let mine: i64 = meeting_photos::table
                .inner_join(meetings::table)
                .filter(meeting_photos::sha256.eq(sha256))
                .filter(meetings::incharge_id.eq(&uid))
                .count()
                .get_result(c)?;
            if mine > 0 {
                return Ok(true);
            }
            if let Some((lo, hi)) = &range {
                let scoped: i64 = meeting_photos::table
                    .inner_join(meetings::table)
                    .filter(meeting_photos::sha256.eq(sha256))
                    .filter(meetings::area_path.ge(lo))
                    .filter(meetings::area_path.lt(hi))
                    .count()
                    .get_result(c)?;
                return Ok(scoped > 0);
            }
            Ok(false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_neighbours() {
        let h = 0x0123_4567_89ab_cdefu64;
        assert_eq!(phash_bands(h), [0xcdef, 0x89ab, 0x4567, 0x0123]);
        assert_eq!(band_neighbours(0, 0), vec![0]);
        assert_eq!(band_neighbours(0x1234, 1).len(), 17);
        assert_eq!(band_neighbours(0x1234, 2).len(), 137);
        let c = band_candidates(h, 10);
        assert!(c.iter().all(|v| v.len() == 137));
        assert_eq!(c[0][0], 0xcdef);
        assert_eq!(phash_distance(h, h ^ 0b1011), 3);
    }

    #[test]
    fn neighbours_are_exactly_the_values_within_radius() {
        for (band, radius) in [(0, 1), (0xFFFF, 2), (0x1234, 3), (0x8001, 8)] {
            let mut got = band_neighbours(band, radius);
            assert_eq!(got[0], band);
            got.sort_unstable();
            let want: Vec<i32> = (0..=0xFFFF)
                .filter(|v: &i32| (v ^ band).count_ones() <= radius)
                .collect();
            assert_eq!(got, want, "band {band:#x} radius {radius}");
        }
    }

    #[test]
    fn sha_shape() {
        assert!(is_sha256_hex(&"a".repeat(64)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex(&"a".repeat(63)));
    }
}
