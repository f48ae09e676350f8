//! malloc(0): unique pointers into inaccessible memory, so that any read or
//! write through them faults (and `guard.rs` reports it).
//!
//! A zero chunk: this header and a live bitmap, then from `BODY` on one
//! PROT_NONE range whose every 16th address is a slot.
//!
//! Invariants:
//! - A slot is live or not (its bit); slots are handed out round robin, so
//!   a freed pointer comes back only after every other slot of its chunk.

use super::{Kind, Misuse};
use crate::os::{self, PAGE};
use crate::segmap::{self, Chunk, CHUNK};
use core::ptr::null_mut;

const BODY: usize = 32 << 10;
const SLOTS: usize = (CHUNK - BODY) / 16;
const WORDS: usize = SLOTS / 64;

#[repr(C)]
struct Header {
    kind: Kind,
    live_count: u32,
    /// Where the search for the next free slot starts.
    cursor: u32,
    next: *mut Header,
    live: [u64; WORDS],
}

const _: () = assert!(core::mem::size_of::<Header>() <= BODY - PAGE && SLOTS.is_multiple_of(64));

pub(super) struct Block {
    h: *mut Header,
    slot: usize,
}

pub(super) struct Zero {
    chunks: *mut Header,
}

impl Zero {
    pub(super) const fn new() -> Zero {
        Zero { chunks: null_mut() }
    }

    pub(super) unsafe fn alloc(&mut self) -> *mut u8 {
        let mut h = self.chunks;
        while !h.is_null() && (*h).live_count as usize == SLOTS {
            h = (*h).next;
        }
        if h.is_null() {
            h = crate::arena::alloc_run(1).cast();
            if h.is_null() {
                return null_mut();
            }
            // The arena's chunk reads as zero: an empty header.
            (*h).kind = Kind::Zero;
            (*h).next = self.chunks;
            os::protect(h.cast::<u8>().add(BODY), CHUNK - BODY, false);
            segmap::set(h.cast(), Chunk::Hardened);
            self.chunks = h;
        }
        let from = (*h).cursor as usize;
        let slot = (0..SLOTS)
            .map(|d| (from + d) % SLOTS)
            .find(|&s| (*h).live[s / 64] & (1 << (s % 64)) == 0)
            .expect("a chunk with room has a free slot");
        (*h).live[slot / 64] |= 1 << (slot % 64);
        (*h).live_count += 1;
        (*h).cursor = ((slot + 1) % SLOTS) as u32;
        h.cast::<u8>().add(BODY + 16 * slot)
    }

    pub(super) unsafe fn free(&mut self, b: Block) {
        (*b.h).live[b.slot / 64] &= !(1 << (b.slot % 64));
        (*b.h).live_count -= 1;
    }
}

/// The live zero-size block `p` in the zero chunk at `base`.
pub(super) unsafe fn find(base: usize, p: *const u8) -> Result<Block, Misuse> {
    let h = base as *mut Header;
    let off = (p as usize - base).wrapping_sub(BODY);
    let slot = off / 16;
    if !off.is_multiple_of(16) || slot >= SLOTS || (*h).live[slot / 64] & (1 << (slot % 64)) == 0 {
        return Err(Misuse::Invalid);
    }
    Ok(Block { h, slot })
}
