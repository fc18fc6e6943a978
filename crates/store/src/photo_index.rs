//! An in-process index of the pHashes of stored photos, so that the duplicate-photo
//! search of a pushed meeting costs the same whatever the history.
//!
//! The database's band indexes answer the same question, but each band lookup reads
//! every photo sharing a band value with the new one: about N × 0.0084 index entries
//! for N stored photos, plus the B-tree descents, which is what made a push slower as
//! history grew. Here the same multi-index search (see `media.rs`) runs over hash maps
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
//! Memory: about 32 bytes per distinct pHash (four band maps), 15 MiB for 450,000.

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

struct Loaded {
    /// Every use with a `use_seq` up to this one has its pHash in the maps.
    watermark: i64,
    /// Per band: the band's 16-bit value → the distinct pHashes with that value.
    bands: [HashMap<u16, Vec<u64>>; 4],
    len: usize,
}

impl Loaded {
    fn new(watermark: i64) -> Self {
        Loaded {
            watermark,
            bands: Default::default(),
            len: 0,
        }
    }

    fn insert(&mut self, phash: u64) {
        let bands = phash_bands(phash).map(|b| b as u16);
        // Band 0's bucket holds every pHash with that band value, so it alone says
        // whether this one is known; buckets are tiny (N / 65,536 on average).
        let first = self.bands[0].entry(bands[0]).or_default();
        if first.contains(&phash) {
            return;
        }
        first.push(phash);
        for (k, b) in bands.iter().enumerate().skip(1) {
            self.bands[k].entry(*b).or_default().push(phash);
        }
        self.len += 1;
    }

    fn near(&self, phash: u64, max_distance: u32) -> HashMap<u64, u32> {
        let mut out = HashMap::new();
        for (k, values) in band_candidates(phash, max_distance).iter().enumerate() {
            for v in values {
                let Some(bucket) = self.bands[k].get(&(*v as u16)) else {
                    continue;
                };
                for &other in bucket {
                    let d = phash_distance(phash, other);
                    if d <= max_distance {
                        out.insert(other, d);
                    }
                }
            }
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
                let mut loaded = Loaded::new(c.max_use_seq()?);
                for h in c.all_phashes()? {
                    loaded.insert(h as u64);
                }
                let len = loaded.len;
                *state = Some(loaded);
                Ok(len)
            }
            Some(loaded) => {
                for (seq, h) in c.phashes_used_after(loaded.watermark)? {
                    loaded.insert(h as u64);
                    loaded.watermark = loaded.watermark.max(seq);
                }
                Ok(loaded.len)
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
        let mut l = Loaded::new(0);
        // Spread over all four bands, up to the distance and one past it.
        let near_ones = [
            base,
            base ^ 0b111,
            base ^ (0xF << 20) ^ (0x3F << 50),
            base ^ 0x3FF,
        ];
        let far = base ^ 0x7FF;
        for h in near_ones.iter().chain([&far]) {
            l.insert(*h);
            l.insert(*h);
        }
        assert_eq!(l.len, 5);
        let got = l.near(base, 10);
        assert_eq!(got.len(), 4);
        for h in near_ones {
            assert_eq!(got.get(&h), Some(&phash_distance(base, h)));
        }
        assert!(!got.contains_key(&far));
        assert_eq!(l.near(base, 0).len(), 1);
    }
}
