//! A bounded cache of large freed blocks in front of the system allocator.
//!
//! `tune_allocator` makes every block of 128 KiB or more a mapping of its own, so RSS
//! follows the live heap. The price is that each photo's megabytes of decode, resize,
//! encode and read buffers are fresh pages every time: mapped, faulted in and zeroed by
//! the kernel, then unmapped. In the 8 MP load run (32 devices) three quarters of the
//! server's page faults were in the two ingest threads, and letting glibc keep large
//! blocks in its arenas instead cut the server's CPU by a fifth, but cost 580–710 MiB
//! of RSS. Holding a few recently freed large blocks, at most [`DEFAULT_CAP`] bytes in
//! all, and handing them to the next request of the same size class gets the CPU back
//! for a bounded amount of memory.
//!
//! Sizes are rounded up to a quarter of their power of two, so buffers of one photo
//! size (or of nearby sizes) share a class; the rounding is address space only until
//! a longer request of the class touches it.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::{Mutex, PoisonError};

/// Blocks at least this large are cached: the mmap threshold the server sets.
const MIN_BIG: usize = 128 * 1024;
/// What the server's cache may hold in all. An 8 MP photo's 1/2-scale decode, display
/// resize and encode buffers add up to roughly 20 MiB by their sizes, and two photos
/// are ingested at once; in the 8 MP load run this cap took peak RSS from 112 to about
/// 135 MiB.
pub const DEFAULT_CAP: usize = 48 << 20;
const SLOTS: usize = 48;
/// glibc's malloc alignment; blocks that need more are left to the system allocator.
const MAX_ALIGN: usize = 16;

pub struct BigBlockCache {
    cap: usize,
    slots: Mutex<Slots>,
}

#[derive(Clone, Copy)]
struct Slot {
    addr: usize,
    class: usize,
    align: usize,
    /// Insertion order: the oldest block goes first when the cap is reached.
    stamp: u64,
}

const EMPTY: Slot = Slot {
    addr: 0,
    class: 0,
    align: 0,
    stamp: 0,
};

struct Slots {
    blocks: [Slot; SLOTS],
    held: usize,
    next_stamp: u64,
}

/// The layout a cacheable block is really allocated with, or `None` for a block the
/// cache leaves alone.
fn class_layout(layout: Layout) -> Option<Layout> {
    let size = layout.size();
    if size < MIN_BIG || layout.align() > MAX_ALIGN {
        return None;
    }
    let step = (1usize << (usize::BITS - 1 - size.leading_zeros())) / 4;
    let class = size.div_ceil(step).checked_mul(step)?;
    Layout::from_size_align(class, layout.align()).ok()
}

impl BigBlockCache {
    pub const fn new(cap: usize) -> BigBlockCache {
        BigBlockCache {
            cap,
            slots: Mutex::new(Slots {
                blocks: [EMPTY; SLOTS],
                held: 0,
                next_stamp: 1,
            }),
        }
    }

    fn take(&self, class: usize) -> Option<*mut u8> {
        let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let i = s
            .blocks
            .iter()
            .position(|b| b.addr != 0 && b.class == class)?;
        let block = s.blocks[i];
        s.blocks[i] = EMPTY;
        s.held -= block.class;
        Some(block.addr as *mut u8)
    }

    /// Keeps `ptr` for reuse, evicting the oldest blocks to stay within the cap; what
    /// does not stay is freed after the lock is released.
    ///
    /// # Safety
    /// `ptr` was allocated by `System` with `big` and is no longer used.
    unsafe fn put(&self, ptr: *mut u8, big: Layout) {
        let class = big.size();
        if class > self.cap {
            // SAFETY: the caller's contract.
            unsafe { System.dealloc(ptr, big) };
            return;
        }
        let mut evicted = [EMPTY; SLOTS + 1];
        let mut n_evicted = 0;
        {
            let mut s = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            while s.held + class > self.cap || s.blocks.iter().all(|b| b.addr != 0) {
                let Some(oldest) = (0..SLOTS)
                    .filter(|&i| s.blocks[i].addr != 0)
                    .min_by_key(|&i| s.blocks[i].stamp)
                else {
                    break;
                };
                let block = s.blocks[oldest];
                s.blocks[oldest] = EMPTY;
                s.held -= block.class;
                evicted[n_evicted] = block;
                n_evicted += 1;
            }
            if let Some(free) = s.blocks.iter().position(|b| b.addr == 0) {
                let stamp = s.next_stamp;
                s.next_stamp += 1;
                s.blocks[free] = Slot {
                    addr: ptr as usize,
                    class,
                    align: big.align(),
                    stamp,
                };
                s.held += class;
            } else {
                evicted[n_evicted] = Slot {
                    addr: ptr as usize,
                    class,
                    align: big.align(),
                    stamp: 0,
                };
                n_evicted += 1;
            }
        }
        for block in &evicted[..n_evicted] {
            // SAFETY: every cached block was allocated by `System` with its class size
            // and alignment, both recorded when it was put here.
            unsafe {
                System.dealloc(
                    block.addr as *mut u8,
                    Layout::from_size_align_unchecked(block.class, block.align),
                )
            };
        }
    }

    /// Bytes held for reuse.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held
    }
}

// SAFETY: every block handed out is either fresh from `System` with at least the
// requested size and alignment, or a block that was freed with a layout of the same
// class (so at least as large, allocated with an alignment of at most `MAX_ALIGN`,
// which `System` treats alike up to that bound) and is no longer used by anyone.
unsafe impl GlobalAlloc for BigBlockCache {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_layout(layout) {
            Some(big) => match self.take(big.size()) {
                Some(p) => p,
                // SAFETY: `big` has a non-zero size.
                None => unsafe { System.alloc(big) },
            },
            // SAFETY: the caller's contract.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_layout(layout) {
            Some(big) => match self.take(big.size()) {
                Some(p) => {
                    // SAFETY: the block holds at least `big.size()` ≥ `layout.size()`
                    // bytes and nobody else uses it.
                    unsafe { p.write_bytes(0, layout.size()) };
                    p
                }
                // SAFETY: `big` has a non-zero size.
                None => unsafe { System.alloc_zeroed(big) },
            },
            // SAFETY: the caller's contract.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_layout(layout) {
            // SAFETY: a block of this layout was allocated with `big` (see `alloc`,
            // `alloc_zeroed`, `realloc`).
            Some(big) => unsafe { self.put(ptr, big) },
            // SAFETY: the caller's contract.
            None => unsafe { System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let wanted = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let old = class_layout(layout);
        let new = class_layout(wanted);
        if let (Some(o), Some(n)) = (old, new)
            && o.size() == n.size()
        {
            // Same class: the block is already long enough.
            return ptr;
        }
        // Resize through the system allocator (mremap for a mapped block, no copy) to
        // the size the block must have under its new layout.
        let size = new.map_or(new_size, |n| n.size());
        // SAFETY: `ptr` was allocated with `old` if it is cacheable, else with `layout`.
        unsafe { System.realloc(ptr, old.unwrap_or(layout), size) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn classes_round_up_by_a_quarter_of_the_power_of_two() {
        let class = |s| class_layout(layout(s)).map(|l| l.size());
        assert_eq!(class(MIN_BIG - 1), None);
        assert_eq!(class(MIN_BIG), Some(MIN_BIG));
        assert_eq!(class(MIN_BIG + 1), Some(MIN_BIG + MIN_BIG / 4));
        // A 1632 × 1224 RGB plane and a slightly smaller one share a class.
        assert_eq!(class(1632 * 1224 * 3), Some(6 * MIB));
        assert_eq!(class(1600 * 1200 * 3), Some(6 * MIB));
        assert_eq!(class(4 * MIB), Some(4 * MIB));
        assert_eq!(class(4 * MIB + 1), Some(5 * MIB));
        assert_eq!(
            class_layout(Layout::from_size_align(MIB, 4096).unwrap()),
            None
        );
        // A size whose class would not be a valid layout is left to the system.
        let near_max = Layout::from_size_align(isize::MAX as usize - 15, 16).unwrap();
        assert_eq!(class_layout(near_max), None);
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let cache = BigBlockCache::new(16 * MIB);
        unsafe {
            let a = cache.alloc(layout(3 * MIB + 5));
            a.write_bytes(7, 3 * MIB + 5);
            cache.dealloc(a, layout(3 * MIB + 5));
            assert_eq!(cache.held(), 3 * MIB + MIB / 2);
            let b = cache.alloc(layout(3 * MIB + 100));
            assert_eq!(a, b, "same class, same block");
            assert_eq!(cache.held(), 0);
            // Another class does not take it.
            cache.dealloc(b, layout(3 * MIB + 100));
            let c = cache.alloc(layout(MIB));
            assert_ne!(c, b);
            cache.dealloc(c, layout(MIB));
            // Zeroed requests get zeroes even from a reused block.
            let z = cache.alloc_zeroed(layout(3 * MIB + 200));
            assert_eq!(z, b);
            assert!(
                std::slice::from_raw_parts(z, 3 * MIB + 200)
                    .iter()
                    .all(|&x| x == 0)
            );
            cache.dealloc(z, layout(3 * MIB + 200));
            // Small blocks never enter the cache.
            let s = cache.alloc(layout(1000));
            cache.dealloc(s, layout(1000));
            assert_eq!(cache.held(), 3 * MIB + MIB / 2 + MIB);
        }
    }

    #[test]
    fn the_cap_evicts_the_oldest_blocks() {
        let cache = BigBlockCache::new(10 * MIB);
        unsafe {
            let blocks: Vec<*mut u8> = (0..4).map(|_| cache.alloc(layout(4 * MIB))).collect();
            for &p in &blocks {
                cache.dealloc(p, layout(4 * MIB));
                assert!(cache.held() <= 10 * MIB);
            }
            assert_eq!(cache.held(), 8 * MIB);
            // The two kept are the two freed last.
            let x = cache.alloc(layout(4 * MIB));
            let y = cache.alloc(layout(4 * MIB));
            assert!([blocks[2], blocks[3]].contains(&x) && [blocks[2], blocks[3]].contains(&y));
            cache.dealloc(x, layout(4 * MIB));
            cache.dealloc(y, layout(4 * MIB));
            // A block larger than the whole cap is freed at once.
            let huge = cache.alloc(layout(11 * MIB));
            cache.dealloc(huge, layout(11 * MIB));
            assert_eq!(cache.held(), 8 * MIB);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_across_classes() {
        let cache = BigBlockCache::new(16 * MIB);
        unsafe {
            let mut size = 1000;
            let mut p = cache.alloc(layout(size));
            for i in 0..size {
                *p.add(i) = (i % 251) as u8;
            }
            // Grow small → big → same class → bigger class, then shrink to small.
            for next in [200 * 1024, 210 * 1024, 3 * MIB, 9 * MIB, 5000] {
                p = cache.realloc(p, layout(size), next);
                let kept = size.min(next);
                assert!((0..kept).all(|i| *p.add(i) == (i % 251) as u8));
                for i in kept..next {
                    *p.add(i) = (i % 251) as u8;
                }
                size = next;
            }
            cache.dealloc(p, layout(size));
        }
    }

    #[test]
    fn threads_sharing_the_cache_never_share_a_block() {
        let cache = BigBlockCache::new(32 * MIB);
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let cache = &cache;
                s.spawn(move || unsafe {
                    for round in 0..200usize {
                        let size = MIB + (round % 3) * 300 * 1024;
                        let p = cache.alloc(layout(size));
                        let mark = t.wrapping_mul(31).wrapping_add(round as u8);
                        p.write_bytes(mark, size);
                        std::thread::yield_now();
                        let all = std::slice::from_raw_parts(p, size);
                        assert!(
                            all.iter().all(|&x| x == mark),
                            "a block was handed out twice"
                        );
                        cache.dealloc(p, layout(size));
                    }
                });
            }
        });
        assert!(cache.held() <= 32 * MIB);
    }
}
