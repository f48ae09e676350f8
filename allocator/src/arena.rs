//! Arenas: hakmem's address space.
//!
//! hakmem reserves address space in arenas of 64 MiB (32 chunks of 2 MiB),
//! each aligned to 64 MiB: one plain read-write, private, anonymous mapping
//! without MAP_NORESERVE, so the kernel's overcommit rules apply when an arena
//! is reserved. Superslabs (one chunk each) and large blocks (runs of up to 32
//! chunks) are carved from arenas, first fit, so thousands of them share a few
//! VMAs instead of holding one each (`vm.max_map_count` is 65,530).
//!
//! Invariants:
//! - Arenas are never unmapped. A range that became hakmem's stays hakmem's for
//!   the life of the process, so a stale or bogus pointer into it always
//!   reaches hakmem's checks and never another allocator. The cost is that
//!   hakmem's virtual size stays at its peak (`Stats::reserved_bytes`); the
//!   memory itself goes back: free chunks are decommitted.
//! - Every chunk of an arena has a non-`Foreign` chunk map entry from its
//!   reservation on: `ArenaFree` while it is free (set here, before the chunk
//!   becomes free), whatever its user sets while it is handed out.
//! - A free chunk holds no committed page: `release_run` decommits (or, if the
//!   kernel refuses, zeroes) a run before marking it free, so a run handed out
//!   reads as zero.
//! - Chunks handed out are counted in `MAPPED_BYTES` until released; arena
//!   address space is counted in `RESERVED_BYTES`.
//! - One spin lock guards the bitmaps. It is a leaf: nothing else is locked and
//!   no syscall is made while it is held (reservation and decommit happen
//!   outside it). Nothing here allocates: the tables are static (.bss, touched
//!   only where arenas exist).

use crate::lock::SpinLock;
use crate::segmap::{self, Chunk, CHUNK, CHUNK_SHIFT};
use crate::{os, stats};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::Relaxed;

const ARENA_SHIFT: usize = 26;
/// Bytes of address space an arena reserves.
pub(crate) const ARENA: usize = 1 << ARENA_SHIFT;
/// Chunks per arena: the longest run `alloc_run` can hand out.
pub(crate) const ARENA_CHUNKS: usize = ARENA >> CHUNK_SHIFT;
const ADDRESS_BITS: usize = 47;
/// One slot per 64 MiB of the user address space.
const SLOTS: usize = 1 << (ADDRESS_BITS - ARENA_SHIFT);
/// At most 4 TiB of arenas.
const MAX_ARENAS: usize = 1 << 16;

#[derive(Clone, Copy)]
struct Desc {
    /// The arena's base >> ARENA_SHIFT.
    slot: u32,
    /// Bit i set: chunk i is handed out.
    used: u32,
}

struct Arenas {
    /// Reserved arenas, in reservation order (scanned first fit).
    descs: [Desc; MAX_ARENAS],
    count: usize,
    /// `descs[..first_free]` are full.
    first_free: usize,
    /// Slot -> index in `descs` (meaningful for reserved slots only).
    index: [u16; SLOTS],
}

static ARENAS: SpinLock<Arenas> = SpinLock::new(Arenas {
    descs: [Desc { slot: 0, used: 0 }; MAX_ARENAS],
    count: 0,
    first_free: 0,
    index: [0; SLOTS],
});

const FULL: u32 = u32::MAX;

fn run_mask(n: usize) -> u32 {
    if n >= 32 {
        FULL
    } else {
        (1u32 << n) - 1
    }
}

/// The first chunk index where `n` free chunks start, if any.
fn find(used: u32, n: usize) -> Option<usize> {
    let m = run_mask(n);
    (0..=ARENA_CHUNKS - n).find(|&s| used & (m << s) == 0)
}

/// The arena slot and chunk index of a chunk address.
fn locate(p: *const u8) -> (usize, usize) {
    let a = p as usize;
    (a >> ARENA_SHIFT, (a >> CHUNK_SHIFT) & (ARENA_CHUNKS - 1))
}

/// Hands out `n` (1..=ARENA_CHUNKS) contiguous chunks, chunk-aligned and
/// reading as zero; their chunk map entries are still `ArenaFree`, for the
/// caller to set. Reserves a new arena when none has room. Null if `n` is out
/// of range or the OS refuses address space.
pub(crate) fn alloc_run(n: usize) -> *mut u8 {
    if n == 0 || n > ARENA_CHUNKS {
        return null_mut();
    }
    loop {
        let mut a = ARENAS.lock();
        let mut i = a.first_free;
        while i < a.count && a.descs[i].used == FULL {
            i += 1;
        }
        a.first_free = i;
        for j in i..a.count {
            let d = a.descs[j];
            if let Some(s) = find(d.used, n) {
                a.descs[j].used |= run_mask(n) << s;
                drop(a);
                stats::MAPPED_BYTES.fetch_add((n * CHUNK) as u64, Relaxed);
                return (((d.slot as usize) << ARENA_SHIFT) | (s << CHUNK_SHIFT)) as *mut u8;
            }
        }
        if a.count >= MAX_ARENAS {
            return null_mut();
        }
        // Next to the latest arena (the kernel allocates downwards), so that
        // the two merge into one VMA.
        let hint = match a.count {
            0 => null_mut(),
            c => ((a.descs[c - 1].slot as usize) << ARENA_SHIFT).wrapping_sub(ARENA) as *mut u8,
        };
        drop(a);
        let base = os::reserve(ARENA, ARENA, hint);
        if base.is_null() {
            return null_mut();
        }
        segmap::set_run(base, ARENA_CHUNKS, Chunk::ArenaFree);
        let mut a = ARENAS.lock();
        let c = a.count;
        if c >= MAX_ARENAS {
            // Lost a race for the last descriptor: the range stays hakmem's
            // (its entries say ArenaFree), unused.
            return null_mut();
        }
        let slot = base as usize >> ARENA_SHIFT;
        a.descs[c] = Desc {
            slot: slot as u32,
            used: 0,
        };
        a.index[slot] = c as u16;
        a.count = c + 1;
    }
}

/// Gives back `n` chunks starting at `p` (a run, or the tail of one, handed
/// out by `alloc_run`/`try_extend`): their entries become `ArenaFree`, their
/// pages are decommitted, and then they are free for `alloc_run`.
pub(crate) fn release_run(p: *mut u8, n: usize) {
    segmap::set_run(p, n, Chunk::ArenaFree);
    os::decommit_or_zero(p, n * CHUNK);
    let (slot, s) = locate(p);
    let mut a = ARENAS.lock();
    let i = a.index[slot] as usize;
    debug_assert!(i < a.count && a.descs[i].slot as usize == slot);
    debug_assert_eq!(a.descs[i].used & (run_mask(n) << s), run_mask(n) << s);
    a.descs[i].used &= !(run_mask(n) << s);
    if i < a.first_free {
        a.first_free = i;
    }
    drop(a);
    stats::MAPPED_BYTES.fetch_sub((n * CHUNK) as u64, Relaxed);
}

/// Extends the run of `n` chunks at `p` by the `extra` chunks right after it,
/// if they are in the same arena and free (in-place growth). The new chunks
/// read as zero and keep their `ArenaFree` entries for the caller to set.
pub(crate) fn try_extend(p: *mut u8, n: usize, extra: usize) -> bool {
    let (slot, s) = locate(p);
    if extra == 0 || s + n + extra > ARENA_CHUNKS {
        return extra == 0;
    }
    let want = run_mask(extra) << (s + n);
    let mut a = ARENAS.lock();
    let i = a.index[slot] as usize;
    if a.descs[i].used & want != 0 {
        return false;
    }
    a.descs[i].used |= want;
    drop(a);
    stats::MAPPED_BYTES.fetch_add((extra * CHUNK) as u64, Relaxed);
    true
}

/// Fork support: the arena lock is held across fork (taken last, released first).
pub(crate) fn lock_for_fork() {
    ARENAS.acquire();
}

pub(crate) fn unlock_after_fork() {
    ARENAS.force_unlock();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_is_mapped(p: *const u8) -> bool {
        // MAP_FIXED_NOREPLACE fails with EEXIST on a range that is mapped.
        // SAFETY: NOREPLACE never replaces an existing mapping; a page it did
        // place (the range was free) is unmapped again at once.
        unsafe {
            let q = libc::mmap(
                p as *mut libc::c_void,
                os::PAGE,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            if q == libc::MAP_FAILED {
                return *libc::__errno_location() == libc::EEXIST;
            }
            libc::munmap(q, os::PAGE);
            false
        }
    }

    #[test]
    fn runs_are_aligned_zeroed_and_owned_for_ever() {
        let p = alloc_run(3);
        assert!(!p.is_null());
        assert_eq!(p as usize % CHUNK, 0);
        for i in 0..3 {
            // SAFETY: the run is ours: 3 chunks.
            let c = unsafe { p.add(i * CHUNK) };
            assert_eq!(segmap::lookup(c), Chunk::ArenaFree);
            // SAFETY: as above; the run reads as zero.
            unsafe {
                assert_eq!(*c, 0);
                *c = 0xaa;
                *c.add(CHUNK - 1) = 0xbb;
            }
        }
        release_run(p, 3);
        // Released chunks stay mapped and hakmem's, and read as zero again.
        for i in 0..3 {
            // SAFETY: arena memory is never unmapped, so reading it is sound.
            let c = unsafe { p.add(i * CHUNK) };
            assert_eq!(segmap::lookup(c), Chunk::ArenaFree);
            assert!(chunk_is_mapped(c));
            // SAFETY: as above.
            assert_eq!(unsafe { *c }, 0);
        }
    }

    #[test]
    fn runs_extend_in_place_into_free_neighbours() {
        let p = alloc_run(ARENA_CHUNKS);
        assert!(!p.is_null(), "a whole arena");
        release_run(p, ARENA_CHUNKS);
        // Other tests may take chunks of this arena meanwhile: only check
        // that an extension either succeeds on free chunks or refuses.
        let q = alloc_run(2);
        assert!(!q.is_null());
        if try_extend(q, 2, 2) {
            // SAFETY: the run now has 4 chunks; the new ones read as zero.
            unsafe { assert_eq!(*q.add(3 * CHUNK), 0) };
            release_run(q, 4);
        } else {
            release_run(q, 2);
        }
        let (_, s) = locate(q);
        assert!(!try_extend(q, ARENA_CHUNKS - s, 1), "past the arena's end");
    }

    #[test]
    fn bitmaps_find_first_fit() {
        assert_eq!(find(0, 32), Some(0));
        assert_eq!(find(1, 32), None);
        assert_eq!(find(0b1011, 1), Some(2));
        assert_eq!(find(0b1011, 2), Some(4));
        assert_eq!(find(FULL >> 1, 1), Some(31));
        assert_eq!(find(FULL, 1), None);
        assert_eq!(run_mask(32), FULL);
    }

    #[test]
    fn impossible_runs_are_refused() {
        assert!(alloc_run(0).is_null());
        assert!(alloc_run(ARENA_CHUNKS + 1).is_null());
    }
}
