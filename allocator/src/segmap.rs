//! The chunk map: which 2 MiB chunks of the address space hakmem manages.
//!
//! Invariants:
//! - One byte per 2 MiB chunk of the 47-bit user address space (64 MiB of
//!   zero-initialised .bss; only pages of entries in use are ever touched, one
//!   page covering 8 GiB of address space).
//! - Every chunk of an arena (`arena.rs`) has a non-zero entry for the life of
//!   the process (`ArenaFree` while it holds nothing), and so does every chunk
//!   of a direct large mapping while it is mapped: any pointer whose entry is
//!   not `Foreign` is hakmem's, and only `Foreign` pointers may be handed to
//!   another allocator.
//! - An entry names the chunk's content before the chunk's first block is
//!   handed out; a direct mapping's entries are cleared before it is
//!   unmapped. Reading an entry is one plain load: `free` uses it to route a
//!   pointer (superslab, large block, or not ours) without any lock.

use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

pub(crate) const CHUNK_SHIFT: usize = 21;
pub(crate) const CHUNK: usize = 1 << CHUNK_SHIFT;
const ADDRESS_BITS: usize = 47;
const ENTRIES: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);

/// What a chunk holds. A superslab's entry is its slab shift, so `free` finds
/// the slab from this one byte and the pointer, without reading the header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Chunk {
    /// Not hakmem's.
    Foreign = 0,
    /// hakmem's, holding no block (a free arena chunk, or one waiting to be
    /// unmapped): no pointer into it may be freed.
    ArenaFree = 1,
    /// The first chunk of a large block (a run of chunks or a direct
    /// mapping), whose header is at the chunk base.
    Large = 2,
    /// A large block with alignment >= 2 MiB: the user pointer is the chunk base
    /// and its header sits in the page before it.
    LargeAligned = 3,
    /// A continuation chunk of a large block: no block starts in it.
    LargeTail = 4,
    /// A chunk of page-granular large blocks (up to 1 MiB), whose page bitmaps
    /// are in its first page.
    LargePages = 5,
    /// A chunk of the hardened profile whose base holds its metadata (small
    /// slabs, zero-size blocks, or the first chunk of a large block).
    Hardened = 6,
    /// A continuation chunk of a hardened large block.
    HardenedTail = 7,
    /// A superslab of 64 KiB slabs; its header is at the chunk base.
    SmallSlabs = 16,
    /// A superslab of 512 KiB slabs; its header is at the chunk base.
    MediumSlabs = 19,
}

impl Chunk {
    #[inline(always)]
    pub(crate) fn is_superslab(self) -> bool {
        self as u8 >= Chunk::SmallSlabs as u8
    }

    /// Whether the hardened profile owns the chunk.
    #[inline(always)]
    pub(crate) fn is_hardened(self) -> bool {
        matches!(self, Chunk::Hardened | Chunk::HardenedTail)
    }

    /// log2 of the slab size (superslabs only).
    #[inline(always)]
    pub(crate) fn slab_shift(self) -> u32 {
        self as u32
    }
}

static MAP: [AtomicU8; ENTRIES] = [const { AtomicU8::new(0) }; ENTRIES];

#[inline(always)]
pub(crate) fn lookup(p: *const u8) -> Chunk {
    let i = p as usize >> CHUNK_SHIFT;
    if i >= ENTRIES {
        return Chunk::Foreign;
    }
    // SAFETY: `set` is the only writer and stores `Chunk` discriminants only.
    unsafe { core::mem::transmute::<u8, Chunk>(MAP[i].load(Relaxed)) }
}

/// Records what the chunk containing `p` holds (`Foreign` to forget it).
pub(crate) fn set(p: *const u8, what: Chunk) {
    let i = p as usize >> CHUNK_SHIFT;
    if i < ENTRIES {
        MAP[i].store(what as u8, Relaxed);
    }
}

/// Records `what` for the `n` chunks starting with the one containing `p`.
pub(crate) fn set_run(p: *const u8, n: usize, what: Chunk) {
    for i in 0..n {
        set(
            (p as usize).wrapping_add(i << CHUNK_SHIFT) as *const u8,
            what,
        );
    }
}

/// The base address of the chunk containing `p`.
#[inline(always)]
pub(crate) fn chunk_base(p: *const u8) -> usize {
    p as usize & !(CHUNK - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_high_addresses_are_foreign() {
        let p = 0x7000_1234_5678usize as *const u8;
        assert_eq!(lookup(p), Chunk::Foreign);
        set(p, Chunk::MediumSlabs);
        let last = (chunk_base(p) + CHUNK - 1) as *const u8;
        assert_eq!(lookup(last), Chunk::MediumSlabs);
        assert!(lookup(last).is_superslab() && lookup(last).slab_shift() == 19);
        set(p, Chunk::Large);
        assert!(!lookup(p).is_superslab());
        assert_eq!(lookup((chunk_base(p) + CHUNK) as *const u8), Chunk::Foreign);
        set(p, Chunk::Foreign);
        assert_eq!(lookup(p), Chunk::Foreign);
        assert_eq!(lookup(usize::MAX as *const u8), Chunk::Foreign);
    }
}
