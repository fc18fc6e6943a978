//! An in-process index of the pHashes of stored photos, so that the duplicate-photo
//! search of a pushed meeting costs the same whatever the history.
//!
//! The database's band indexes answer the same question, but each band lookup reads
//! every photo sharing a band value with the new one: about N × 0.0084 index entries
//! for N stored photos, plus the B-tree descents, which is what made a push slower as
//! history grew. Here the same multi-index search (see `media.rs`) runs over arrays
//! in memory, and the database is asked only for the few photos whose pHash is within
//! the distance.
//!
//! # Why it cannot miss a photo
//!
//! The index may hold pHashes the database no longer has (a rolled-back upload, a
//! photo an edit dropped): harmless, the database is asked for each candidate. It must
//! never lack a pHash of a photo some committed meeting uses. That holds because:
//!
//! - every `meeting_photos` row is written under the meeting write lock and stamped
//!   with a `use_seq` drawn from `meeting_head` under that lock, so `use_seq` order is
//!   commit order (the argument of `feed.rs`);
//! - a transaction catches up (reads the rows with `use_seq` above the index's
//!   watermark) right after taking that lock and before writing anything, so it sees
//!   every committed use and none of its own, and the watermark never passes a
//!   `use_seq` that could still roll back and be handed out again;
//! - the first catch-up of a process reads the watermark first and then every stored
//!   pHash, so a use committed in between can only add more.
//!
//! Other processes on the same database (replicas) write uses too; the catch-up reads
//! theirs the same way. A transaction that has not caught up (it did not take the
//! lock) searches the database instead.
//!
//! Memory: 32 bytes per distinct pHash (four bands) and 2 MiB of band offsets: about
//! 16 MiB for 450,000 photos.

use crate::db::impl_both;
use crate::error::Result;
use crate::media::{band_candidates, phash_bands, phash_distance};
use crate::schema::{media, meeting_photos};
use diesel::dsl::max;
use diesel::prelude::*;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Shared by every clone of a [`crate::Store`]; loaded on the first catch-up.
#[derive(Default)]
pub(crate) struct PhotoIndex {
    state: Mutex<Option<Loaded>>,
}

/// What a catch-up needs from a connection.
pub(crate) trait PhotoIndexConn {
    /// The highest `meeting_photos.use_seq` (0 without any).
    fn max_use_seq(&mut self) -> Result<i64>;
    /// Every stored photo's pHash, repeats included.
    fn all_phashes(&mut self) -> Result<Vec<i64>>;
    /// `(use_seq, pHash)` of the photo uses stamped after `after`.
    fn phashes_used_after(&mut self, after: i64) -> Result<Vec<(i64, i64)>>;
}

impl_both!(PhotoIndexConn {
    fn max_use_seq(&mut self) -> Result<i64> {
        let head: Option<i64> = meeting_photos::table
            .select(max(meeting_photos::use_seq))
            .first(self)?;
        Ok(head.unwrap_or(0))
    }

    fn all_phashes(&mut self) -> Result<Vec<i64>> {
        Ok(media::table.select(media::phash).load(self)?)
    }

    fn phashes_used_after(&mut self, after: i64) -> Result<Vec<(i64, i64)>> {
        Ok(meeting_photos::table
            .inner_join(media::table)
            .filter(meeting_photos::use_seq.gt(after))
            .select((meeting_photos::use_seq, media::phash))
            .load(self)?)
    }
});

/// Photos indexed since the last rebuild, searched by a linear scan; past this many
/// the bands are rebuilt (O(N), so about every 4,096th new photo pays a few ms).
const RECENT_MAX: usize = 4096;

/// One band's pHashes grouped by the band's 16-bit value (compressed rows): those
/// with value `v` are `hashes[offsets[v]..offsets[v + 1]]`. A lookup is two reads of
/// contiguous memory; per-value vectors or a hash map cost a cache miss more per
/// probe, and a search makes 4 × 137 probes at distance 10.
struct Band {
    offsets: Vec<usize>,
    hashes: Vec<u64>,
}

impl Band {
    /// Groups `all` by band `k` (a counting sort).
    fn build(all: &[u64], k: usize) -> Band {
        let key = |h: u64| usize::from(phash_bands(h)[k] as u16);
        let mut offsets = vec![0usize; BAND_VALUES + 1];
        for &h in all {
            offsets[key(h) + 1] += 1;
        }
        for v in 0..BAND_VALUES {
            offsets[v + 1] += offsets[v];
        }
        let mut next = offsets.clone();
        let mut hashes = vec![0u64; all.len()];
        for &h in all {
            let at = &mut next[key(h)];
            hashes[*at] = h;
            *at += 1;
        }
        Band { offsets, hashes }
    }

    fn with_value(&self, v: usize) -> &[u64] {
        match (self.offsets.get(v), self.offsets.get(v + 1)) {
            (Some(&a), Some(&b)) => self.hashes.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }
}

const BAND_VALUES: usize = 1 << 16;

struct Loaded {
    /// Every use with a `use_seq` up to this one has its pHash in the index.
    watermark: i64,
    /// The distinct pHashes as of the last rebuild, grouped by each band.
    bands: [Band; 4],
    /// Distinct pHashes added since, not in `bands`.
    recent: Vec<u64>,
}

impl Loaded {
    /// An index of `all` (repeats allowed).
    fn new(watermark: i64, mut all: Vec<u64>) -> Self {
        all.sort_unstable();
        all.dedup();
        Loaded {
            watermark,
            bands: std::array::from_fn(|k| Band::build(&all, k)),
            recent: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.bands[0].hashes.len() + self.recent.len()
    }

    fn contains(&self, phash: u64) -> bool {
        let v = usize::from(phash_bands(phash)[0] as u16);
        self.bands[0].with_value(v).contains(&phash) || self.recent.contains(&phash)
    }

    fn insert(&mut self, phash: u64) {
        if self.contains(phash) {
            return;
        }
        self.recent.push(phash);
        if self.recent.len() > RECENT_MAX {
            let mut all = std::mem::take(&mut self.bands[0].hashes);
            all.append(&mut self.recent);
            self.bands = std::array::from_fn(|k| Band::build(&all, k));
        }
    }

    fn near(&self, phash: u64, max_distance: u32) -> HashMap<u64, u32> {
        let mut out = HashMap::new();
        let mut check = |other: u64| {
            let d = phash_distance(phash, other);
            if d <= max_distance {
                out.insert(other, d);
            }
        };
        // All bucket bounds first, then the buckets: each probe is a cache miss into
        // megabytes of arrays, and loads that do not wait on one another overlap,
        // where a probe-then-scan loop would take its misses one after another.
        let mut buckets: Vec<&[u64]> = Vec::with_capacity(4 * 137);
        for (band, values) in self.bands.iter().zip(band_candidates(phash, max_distance)) {
            for v in values {
                let bucket = band.with_value(usize::from(v as u16));
                if !bucket.is_empty() {
                    buckets.push(bucket);
                }
            }
        }
        for bucket in buckets {
            for &other in bucket {
                check(other);
            }
        }
        for &other in &self.recent {
            check(other);
        }
        out
    }
}

impl PhotoIndex {
    fn state(&self) -> MutexGuard<'_, Option<Loaded>> {
        self.state.lock().unwrap_or_else(|poisoned| {
            // A panic mid-insert may have left a pHash in some bands only: start over
            // from the database rather than search a partial index.
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        })
    }

    /// Brings the index up to every committed photo use. Call it right after taking
    /// the meeting write lock and before the transaction writes any photo use (see
    /// the module docs); returns the number of distinct pHashes indexed.
    pub(crate) fn catch_up<C: PhotoIndexConn + ?Sized>(&self, c: &mut C) -> Result<usize> {
        let mut state = self.state();
        match state.as_mut() {
            None => {
                let watermark = c.max_use_seq()?;
                let all = c.all_phashes()?.into_iter().map(|h| h as u64).collect();
                let loaded = Loaded::new(watermark, all);
                let len = loaded.len();
                *state = Some(loaded);
                Ok(len)
            }
            Some(loaded) => {
                for (seq, h) in c.phashes_used_after(loaded.watermark)? {
                    loaded.insert(h as u64);
                    loaded.watermark = loaded.watermark.max(seq);
                }
                Ok(loaded.len())
            }
        }
    }

    /// The indexed pHashes within `max_distance` of `phash`, with their distance;
    /// `None` before the first catch-up.
    pub(crate) fn near(&self, phash: u64, max_distance: u32) -> Option<HashMap<u64, u32>> {
        self.state().as_ref().map(|l| l.near(phash, max_distance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_hash_within_the_distance_once() {
        let base: u64 = 0x0123_4567_89ab_cdef;
        // Spread over all four bands, up to the distance and one past it.
        let near_ones = [
            base,
            base ^ 0b111,
            base ^ (0xF << 20) ^ (0x3F << 50),
            base ^ 0x3FF,
        ];
        let far = base ^ 0x7FF;
        // Some in the rebuilt bands, some recent; repeats either way.
        let mut l = Loaded::new(0, vec![near_ones[0], near_ones[1], near_ones[1]]);
        for h in near_ones.iter().chain([&far]) {
            l.insert(*h);
            l.insert(*h);
        }
        assert_eq!((l.len(), l.recent.len()), (5, 3));
        let got = l.near(base, 10);
        assert_eq!(got.len(), 4);
        for h in near_ones {
            assert_eq!(got.get(&h), Some(&phash_distance(base, h)));
        }
        assert!(!got.contains_key(&far));
        assert_eq!(l.near(base, 0).len(), 1);
    }

    #[test]
    fn agrees_with_a_linear_scan_across_rebuilds() {
        // splitmix64 hashes, a third of them near one of a few centres.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let centres: Vec<u64> = (0..8).map(|_| next()).collect();
        let mut all = Vec::new();
        for i in 0..3 * RECENT_MAX {
            let h = if i % 3 == 0 {
                let c = centres[i % centres.len()];
                (0..next() % 14).fold(c, |h, _| h ^ (1 << (next() % 64)))
            } else {
                next()
            };
            all.push(h);
        }
        let mut l = Loaded::new(0, all[..100].to_vec());
        for h in &all[100..] {
            l.insert(*h);
        }
        let mut distinct = all.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(l.len(), distinct.len());
        assert!(l.recent.len() < RECENT_MAX && l.bands[0].hashes.len() > RECENT_MAX);
        for probe in centres.iter().chain(&all[..50]) {
            let expected: HashMap<u64, u32> = distinct
                .iter()
                .map(|h| (*h, phash_distance(*probe, *h)))
                .filter(|(_, d)| *d <= 10)
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(l.near(*probe, 10), expected);
        }
    }
}
