//! Large blocks (over 64 KiB, or aligned beyond what a class can give): one
//! mapping each, reused through a bounded cache rather than unmapped and mapped
//! again on every cycle.
//!
//! Layout: a mapping starts on a 2 MiB boundary with a `Header`; the block
//! starts `offset` bytes in (64 bytes, or the alignment when larger), inside the
//! first chunk, so `free` finds the header by masking. Blocks aligned to 2 MiB
//! or more start on a chunk boundary themselves and keep the header in the page
//! before them (`Chunk::LargeAligned`).
//!
//! Invariants:
//! - The chunk map entry of the chunk holding the block's start is set while
//!   the mapping is live or cached, and cleared before it is unmapped.
//! - `live` is true exactly while the block is handed out: freeing a block whose
//!   header says otherwise is a double free.
//! - The cache holds whole mappings (never `LargeAligned` ones), bounded by the
//!   release policy's `large_cache_bytes`; it is the only state under a lock.

use crate::check;
use crate::lock::SpinLock;
use crate::segmap::{self, Chunk, CHUNK};
use crate::{os, release, stats};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

const MAGIC: u64 = 0x6861_6b6d_656d_4c47; // "hakmemLG"
const HEADER: usize = 64;
/// Alignments up to this keep the block in the mapping's first chunk.
const MAX_INLINE_ALIGN: usize = CHUNK / 2;
const CACHE_SLOTS: usize = 16;

#[repr(C)]
struct Header {
    magic: u64,
    map: *mut u8,
    map_len: usize,
    offset: usize,
    live: bool,
    /// While cached: every page after the header page was decommitted.
    decommitted: bool,
}

struct Cache {
    maps: [(usize, usize); CACHE_SLOTS],
    count: usize,
    bytes: u64,
}

// SAFETY: plain integers only.
unsafe impl Send for Cache {}

static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    maps: [(0, 0); CACHE_SLOTS],
    count: 0,
    bytes: 0,
});

/// Bytes of the mappings of live large blocks.
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Live large blocks, the bytes mapped for them, and (roughly, headers and
/// page rounding aside) the bytes usable in them.
pub(crate) fn usage() -> (u64, u64, u64) {
    let bytes = LIVE_BYTES.load(Relaxed);
    (stats::LARGE_LIVE.load(Relaxed), bytes, bytes)
}

fn offset_for(align: usize) -> usize {
    align.max(HEADER)
}

/// Allocates a large block. Null (never abort) when impossible.
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    if align > MAX_INLINE_ALIGN {
        // Fresh mappings read as zero, whatever `zero` asks.
        return alloc_aligned(size, align);
    }
    let off = offset_for(align);
    let Some(need) = size
        .checked_add(off)
        .and_then(|n| n.checked_next_multiple_of(os::PAGE))
    else {
        return null_mut();
    };
    if need > isize::MAX as usize / 2 {
        return null_mut();
    }
    let (map, map_len, fresh) = match take_cached(need) {
        Some((m, l)) => (m, l, false),
        None => {
            let m = os::map_aligned(need, CHUNK, false);
            if m.is_null() {
                return null_mut();
            }
            (m, need, true)
        }
    };
    let h = map as *mut Header;
    // SAFETY: `map` is a mapping of at least `need` bytes owned by us alone now.
    unsafe {
        let decommitted = !fresh && (*h).decommitted;
        ptr::write(
            h,
            Header {
                magic: MAGIC,
                map,
                map_len,
                offset: off,
                live: true,
                decommitted: false,
            },
        );
        let user = map.add(off);
        if zero && !fresh {
            // Decommitted pages read as zero; only the header page may be dirty.
            let dirty = if decommitted {
                os::PAGE.saturating_sub(off)
            } else {
                size
            };
            ptr::write_bytes(user, 0, dirty.min(size));
        }
        segmap::set(map, Chunk::Large);
        stats::LARGE_LIVE.fetch_add(1, Relaxed);
        LIVE_BYTES.fetch_add(map_len as u64, Relaxed);
        user
    }
}

fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    let Some(len) = size
        .checked_add(align + os::PAGE)
        .and_then(|n| n.checked_next_multiple_of(os::PAGE))
    else {
        return null_mut();
    };
    if len > isize::MAX as usize / 2 {
        return null_mut();
    }
    let map = os::map(len, false);
    if map.is_null() {
        return null_mut();
    }
    let user = (map as usize + os::PAGE).next_multiple_of(align) as *mut u8;
    let h = (user as usize - os::PAGE) as *mut Header;
    // SAFETY: the header page and the block lie inside the fresh mapping.
    unsafe {
        ptr::write(
            h,
            Header {
                magic: MAGIC,
                map,
                map_len: len,
                offset: user as usize - map as usize,
                live: true,
                decommitted: false,
            },
        );
    }
    segmap::set(user, Chunk::LargeAligned);
    stats::LARGE_LIVE.fetch_add(1, Relaxed);
    LIVE_BYTES.fetch_add(len as u64, Relaxed);
    user
}

/// The header of a large block, validated (default build) or trusted (`fast`).
unsafe fn header(p: *const u8, kind: Chunk) -> *mut Header {
    let h = if kind == Chunk::Large {
        segmap::chunk_base(p) as *mut Header
    } else {
        if check::CHECKS && segmap::chunk_base(p) != p as usize {
            check::fatal("free(): invalid pointer", p);
        }
        (p as usize - os::PAGE) as *mut Header
    };
    if check::CHECKS {
        if (*h).magic != MAGIC || !ptr::eq((*h).map.add((*h).offset), p) {
            check::fatal("free(): invalid pointer", p);
        }
        if !(*h).live {
            check::fatal("free(): double free", p);
        }
    }
    h
}

/// Frees a large block; `kind` is its chunk map entry.
pub(crate) unsafe fn free(p: *mut u8, kind: Chunk) {
    let h = header(p, kind);
    (*h).live = false;
    stats::LARGE_LIVE.fetch_sub(1, Relaxed);
    let (map, len) = ((*h).map, (*h).map_len);
    LIVE_BYTES.fetch_sub(len as u64, Relaxed);
    if kind == Chunk::Large && offer_to_cache(map, len) {
        return;
    }
    segmap::set(p, Chunk::Foreign);
    os::unmap(map, len);
}

/// Usable bytes of a large block.
pub(crate) unsafe fn usable_size(p: *const u8, kind: Chunk) -> usize {
    let h = header(p, kind);
    (*h).map_len - (*h).offset
}

/// Whether `p` is a live large block (used for foreign-pointer checks).
pub(crate) fn owns(p: *const u8, kind: Chunk) -> bool {
    // SAFETY: the chunk map says the chunk holds a large mapping, whose header
    // page is mapped; the fields read are plain words.
    unsafe {
        let h = match kind {
            Chunk::Large => segmap::chunk_base(p) as *const Header,
            _ if segmap::chunk_base(p) == p as usize => (p as usize - os::PAGE) as *const Header,
            _ => return false,
        };
        (*h).magic == MAGIC && (*h).live && ptr::eq((*h).map.add((*h).offset), p)
    }
}

/// Resizes in place when the mapping has room or can grow where it is.
/// Returns false when the caller must move the block.
pub(crate) unsafe fn resize_in_place(p: *mut u8, kind: Chunk, new_size: usize) -> bool {
    let h = header(p, kind);
    let Some(need) = new_size
        .checked_add((*h).offset)
        .and_then(|n| n.checked_next_multiple_of(os::PAGE))
    else {
        return false;
    };
    if need <= (*h).map_len {
        // Shrinking a lot gives the tail back; a little is kept for regrowth.
        if need < (*h).map_len / 2 && os::remap_in_place((*h).map, (*h).map_len, need) {
            LIVE_BYTES.fetch_sub(((*h).map_len - need) as u64, Relaxed);
            (*h).map_len = need;
        }
        return true;
    }
    if os::remap_in_place((*h).map, (*h).map_len, need) {
        LIVE_BYTES.fetch_add((need - (*h).map_len) as u64, Relaxed);
        (*h).map_len = need;
        return true;
    }
    false
}

fn take_cached(need: usize) -> Option<(*mut u8, usize)> {
    let mut c = CACHE.lock();
    let mut best: Option<usize> = None;
    for i in 0..c.count {
        let len = c.maps[i].1;
        if len >= need && len <= need * 2 && best.is_none_or(|b| len < c.maps[b].1) {
            best = Some(i);
        }
    }
    let i = best?;
    let (map, len) = c.maps[i];
    c.count -= 1;
    c.maps[i] = c.maps[c.count];
    c.bytes -= len as u64;
    Some((map as *mut u8, len))
}

/// Keeps a freed mapping for reuse if the policy allows; false if it must go.
unsafe fn offer_to_cache(map: *mut u8, len: usize) -> bool {
    {
        let c = CACHE.lock();
        if c.count == CACHE_SLOTS || !release::cache_large(c.bytes, len as u64) {
            return false;
        }
    }
    let decommit = release::decommit_cached_large() && len > os::PAGE;
    if decommit {
        os::decommit(map.add(os::PAGE), len - os::PAGE);
    }
    (*(map as *mut Header)).decommitted = decommit;
    let mut c = CACHE.lock();
    if c.count == CACHE_SLOTS || !release::cache_large(c.bytes, len as u64) {
        drop(c);
        segmap::set(map, Chunk::Foreign);
        os::unmap(map, len);
        return true;
    }
    let n = c.count;
    c.maps[n] = (map as usize, len);
    c.count += 1;
    c.bytes += len as u64;
    true
}

/// Placeholder until the large cache decays by age (merged from the arena work).
pub(crate) fn decay(_now: u64) {}

/// Unmaps every cached mapping now (`malloc_trim`).
pub(crate) fn trim() {
    loop {
        let mut c = CACHE.lock();
        if c.count == 0 {
            return;
        }
        c.count -= 1;
        let (map, len) = c.maps[c.count];
        c.bytes -= len as u64;
        drop(c);
        segmap::set(map as *const u8, Chunk::Foreign);
        os::unmap(map as *mut u8, len);
    }
}

/// Fork support: the cache lock is held across fork.
pub(crate) fn lock_for_fork() {
    CACHE.acquire();
}

pub(crate) fn unlock_after_fork() {
    CACHE.force_unlock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_and_found_again() {
        for align in [16, 4096, 1 << 20, 4 << 20] {
            let p = alloc(300_000, align, true);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            let kind = segmap::lookup(p);
            assert!(owns(p, kind));
            // SAFETY: p is a live block of 300,000 zeroed bytes.
            unsafe {
                assert!(usable_size(p, kind) >= 300_000);
                assert_eq!(*p.add(299_999), 0);
                *p.add(299_999) = 1;
                free(p, kind);
            }
            assert!(!crate::raw::owns(p));
        }
    }

    #[test]
    fn impossible_sizes_return_null() {
        assert!(alloc(usize::MAX - 10, 16, false).is_null());
        assert!(alloc(isize::MAX as usize, 16, false).is_null());
        assert!(alloc(usize::MAX / 2, 8 << 20, false).is_null());
    }
}
