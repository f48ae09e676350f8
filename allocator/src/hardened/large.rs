//! Hardened large blocks (over 64 KiB, over-aligned, or the rest): each in
//! its own run of 2 MiB chunks, between PROT_NONE guard ranges.
//!
//! ```text
//! | metadata page | guard ... | canary | block |pad| guard ... |
//!   run base                    slack    end within 15 bytes of the guard
//! ```
//! Runs of up to an arena's 32 chunks come from the arenas; longer ones are
//! direct mappings whose chunk map entries are set here, like `large.rs`'s.
//!
//! Invariants:
//! - The run's first chunk's entry is `Hardened`, the others `HardenedTail`,
//!   while the block is live or quarantined.
//! - A freed block's pages are decommitted and made PROT_NONE, and the run
//!   stays so in a bounded quarantine: a use after free faults until the run
//!   leaves it (read-write again, back to the arena or unmapped).

use super::quarantine::Ring;
use super::random::Rng;
use super::{canary, canary_intact, fill_canary, overflow, Kind, Misuse, MIN_ALIGN};
use crate::arena::{self, ARENA_CHUNKS};
use crate::os::{self, PAGE};
use crate::segmap::{self, Chunk, CHUNK};
use core::ptr::null_mut;

/// Freed runs kept inaccessible before their address space is reused: 256
/// runs are 512 MiB of reserved, decommitted address space (and 1 MiB of
/// metadata pages), enough for a use after 100 further frees to fault.
const QUARANTINE: usize = 256;

#[repr(C)]
struct Header {
    kind: Kind,
    live: bool,
    /// Whether the run is a direct mapping (not arena chunks).
    direct: bool,
    len: usize,
    /// The block's offset from the run's base.
    start: usize,
    size: usize,
    secret: u64,
}

pub(super) struct Block {
    h: *mut Header,
}

impl Block {
    pub(super) fn size(&self) -> usize {
        // SAFETY: `find` made the block from a valid header.
        unsafe { (*self.h).size }
    }

    /// The canary ranges: the slack before the block in its first page, and
    /// after it up to the trailing guard.
    unsafe fn slack(&self) -> [(usize, usize); 2] {
        let p = self.h as usize + (*self.h).start;
        let end = p + (*self.h).size;
        [(p & !(PAGE - 1), p), (end, end.next_multiple_of(PAGE))]
    }
}

pub(super) struct Large {
    quarantine: Ring<QUARANTINE>,
}

impl Large {
    pub(super) const fn new() -> Large {
        Large {
            quarantine: Ring::new(),
        }
    }

    pub(super) unsafe fn alloc(&mut self, size: usize, align: usize, rng: &mut Rng) -> *mut u8 {
        let align = align.max(MIN_ALIGN);
        // Metadata page, leading guard (at least one page whatever the
        // alignment), block, alignment slack, trailing guard.
        let Some(len) = size
            .checked_add(align + 4 * PAGE)
            .and_then(|n| n.checked_next_multiple_of(CHUNK))
            .filter(|&n| n <= isize::MAX as usize)
        else {
            return null_mut();
        };
        let chunks = len / CHUNK;
        let direct = chunks > ARENA_CHUNKS;
        let base = if direct {
            os::map_aligned(len, CHUNK, false)
        } else {
            arena::alloc_run(chunks)
        };
        if base.is_null() {
            return null_mut();
        }
        let end_guard = base as usize + len - PAGE;
        let p = (end_guard - size.next_multiple_of(MIN_ALIGN)) & !(align - 1);
        let h = base as *mut Header;
        h.write(Header {
            kind: Kind::Large,
            live: true,
            direct,
            len,
            start: p - base as usize,
            size,
            secret: rng.next(),
        });
        let b = Block { h };
        let [(lead, _), (_, tail)] = b.slack();
        for (from, to) in b.slack() {
            fill_canary(canary((*h).secret, p), from, to);
        }
        os::protect(base.add(PAGE), lead - base as usize - PAGE, false);
        os::protect(tail as *mut u8, base as usize + len - tail, false);
        segmap::set(base, Chunk::Hardened);
        segmap::set_run(base.add(CHUNK), chunks - 1, Chunk::HardenedTail);
        crate::stats::LARGE_LIVE.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        p as *mut u8
    }

    /// Frees a live block: canary checked, pages decommitted and made
    /// inaccessible, run quarantined.
    pub(super) unsafe fn free(&mut self, b: Block) {
        let h = b.h;
        let p = h as usize + (*h).start;
        for (from, to) in b.slack() {
            if !canary_intact(canary((*h).secret, p), from, to) {
                overflow(p as *const u8);
            }
        }
        (*h).live = false;
        let [(lead, _), (_, tail)] = b.slack();
        os::decommit(lead as *mut u8, tail - lead);
        os::protect(lead as *mut u8, tail - lead, false);
        crate::stats::LARGE_LIVE.fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
        if let Some(old) = self.quarantine.push(h as usize) {
            release(old as *mut Header);
        }
    }
}

/// A run leaves the quarantine: its address space goes back.
unsafe fn release(h: *mut Header) {
    let (base, len) = (h.cast::<u8>(), (*h).len);
    if (*h).direct {
        // A refused munmap leaves the range mapped, inaccessible, counted
        // (os.rs reports it) and still hakmem's in the chunk map.
        crate::large::unmap_direct(base, len);
    } else {
        // Arena chunks are read-write while free.
        os::protect(base.add(PAGE), len - PAGE, true);
        arena::release_run(base, len / CHUNK);
    }
}

/// The base of the hardened run containing `p`, whose entry is `HardenedTail`.
pub(super) fn run_base(p: *const u8) -> usize {
    let mut c = segmap::chunk_base(p);
    while segmap::lookup(c as *const u8) == Chunk::HardenedTail {
        c -= CHUNK;
    }
    c
}

/// The live block `p` of the run at `base`.
pub(super) unsafe fn find(base: usize, p: *const u8) -> Result<Block, Misuse> {
    let h = base as *mut Header;
    if p as usize != base + (*h).start {
        return Err(Misuse::Invalid);
    }
    if !(*h).live {
        return Err(Misuse::DoubleFree);
    }
    Ok(Block { h })
}
