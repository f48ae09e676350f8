//! Hardened small blocks (up to 64 KiB): slabs of one size class per 2 MiB
//! chunk, each slab followed by a guard page, all metadata out of line.
//!
//! Chunk layout (stride: 64 KiB for blocks up to 8 KiB, else 512 KiB):
//! ```text
//! | metadata ... guard | slab 0 ... guard | slab 1 ... guard | ... |
//!   `first` strides       one stride each, to the chunk's end
//! ```
//! The metadata: this header, then per slab its secret, live and free
//! bitmaps (bit i: block i), free count and the requested size of each block.
//!
//! Invariants:
//! - A block is live (live bit), quarantined (neither bit) or free (free
//!   bit). Its bytes from the requested size to the block's end hold the
//!   canary while it is live; a block that is not live reads as zero
//!   (zeroed on free, checked whole when it is handed out again).
//! - Chunks stay hardened for the life of the process (never given back).

use super::quarantine::Ring;
use super::random::Rng;
use super::{canary, canary_intact, fill_canary, is_zero, overflow, Kind, Misuse};
use crate::check;
use crate::os::{self, PAGE};
use crate::segmap::{self, Chunk as Entry, CHUNK};
use crate::size_class::{CLASS_SIZE, NUM_CLASSES};
use core::ptr::null_mut;

/// Freed blocks whose reuse is delayed (write-after-free detection window).
const QUARANTINE: usize = 64;

#[repr(C)]
struct Header {
    kind: Kind,
    block_size: u32,
    /// log2 of the stride.
    shift: u32,
    /// Strides of metadata before slab 0.
    first: u32,
    slabs: u32,
    /// Blocks per slab.
    blocks: u32,
    /// `ceil(2^40 / block_size)`: offsets in a slab divide by the block size
    /// as a multiplication (see `index`).
    div_magic: u64,
    /// Bitmap words per slab.
    words: u32,
    /// The next chunk of the same class.
    next: *mut Header,
    secrets: *mut u64,
    live: *mut u64,
    free: *mut u64,
    free_count: *mut u32,
    /// Per block (indexed like the bitmaps): its requested size.
    requested: *mut u16,
}

/// A live block.
pub(super) struct Block {
    h: *mut Header,
    slab: usize,
    /// Index of the block in its slab.
    k: usize,
    p: usize,
}

impl Block {
    pub(super) fn size(&self) -> usize {
        // SAFETY: `find` made the block from a valid header and index.
        unsafe { *(*self.h).requested.add(bit(self.h, self.slab, self.k)) as usize }
    }
}

/// The classes' chunks and where each allocates now.
pub(super) struct Slabs {
    chunks: [*mut Header; NUM_CLASSES],
    cur: [(*mut Header, usize); NUM_CLASSES],
    quarantine: Ring<QUARANTINE>,
}

#[inline(always)]
unsafe fn bit(h: *const Header, slab: usize, k: usize) -> usize {
    slab * (*h).words as usize * 64 + k
}

#[inline(always)]
unsafe fn test(map: *const u64, i: usize) -> bool {
    *map.add(i / 64) & (1 << (i % 64)) != 0
}

#[inline(always)]
unsafe fn flip(map: *mut u64, i: usize) {
    *map.add(i / 64) ^= 1 << (i % 64);
}

/// `within / block_size` for an offset in a slab (< 2^19), without a
/// division: with `m = ceil(2^40 / bs) = (2^40 + e) / bs` (e < bs <= 2^16),
/// `within * m / 2^40` exceeds `within / bs` by less than
/// `within * e / 2^40 / bs < 1 / bs`, too little to reach the next integer.
#[inline(always)]
fn index(div_magic: u64, within: usize) -> usize {
    ((within as u64 * div_magic) >> 40) as usize
}

#[inline(always)]
unsafe fn block_at(h: *const Header, slab: usize, k: usize) -> usize {
    h as usize + (((*h).first as usize + slab) << (*h).shift) + k * (*h).block_size as usize
}

/// The stride's log2, the metadata strides and the slab count for `bs`.
fn geometry(bs: usize) -> (u32, usize, usize) {
    let shift = if bs <= 8192 { 16 } else { 19 };
    let stride = 1usize << shift;
    let blocks = (stride - PAGE) / bs;
    let words = blocks.div_ceil(64);
    let per_slab = 8 + 2 * 8 * words + 4 + 2 * 64 * words;
    let strides = CHUNK / stride;
    let first = (1..strides)
        .find(|&f| core::mem::size_of::<Header>() + (strides - f) * per_slab <= f * stride - PAGE)
        .unwrap_or(strides - 1);
    (shift, first, strides - first)
}

impl Slabs {
    pub(super) const fn new() -> Slabs {
        Slabs {
            chunks: [null_mut(); NUM_CLASSES],
            cur: [(null_mut(), 0); NUM_CLASSES],
            quarantine: Ring::new(),
        }
    }

    /// A block of `class` for a request of `size` bytes (< the block size);
    pub(super) unsafe fn alloc(&mut self, class: usize, size: usize, rng: &mut Rng) -> *mut u8 {
        let (mut h, mut slab) = self.cur[class];
        if h.is_null() || *(*h).free_count.add(slab) == 0 {
            match self.slab_with_room(class, rng) {
                Some(x) => (h, slab) = x,
                None => return null_mut(),
            }
            self.cur[class] = (h, slab);
        }
        let k = pick(h, slab, rng.next());
        let i = bit(h, slab, k);
        flip((*h).free, i);
        flip((*h).live, i);
        *(*h).free_count.add(slab) -= 1;
        *(*h).requested.add(i) = size as u16;
        let p = block_at(h, slab, k);
        let bs = (*h).block_size as usize;
        // Checked here, not when it left the quarantine: the check then
        // brings the block into the cache for its new owner (8% faster on
        // the mixed workload than checking on release and the first 64
        // bytes here), and a write after the quarantine is caught as well.
        if !is_zero(p, bs) {
            check::fatal(
                "write after free detected (a freed block was modified)",
                p as *const u8,
            );
        }
        fill_canary(canary(*(*h).secrets.add(slab), p), p + size, p + bs);
        p as *mut u8
    }

    /// A slab of `class` with a free block: in the class's chunks, or in a new one.
    unsafe fn slab_with_room(
        &mut self,
        class: usize,
        rng: &mut Rng,
    ) -> Option<(*mut Header, usize)> {
        let mut h = self.chunks[class];
        while !h.is_null() {
            if let Some(s) = (0..(*h).slabs as usize).find(|&s| *(*h).free_count.add(s) > 0) {
                return Some((h, s));
            }
            h = (*h).next;
        }
        let h = new_chunk(class, rng)?;
        (*h).next = self.chunks[class];
        self.chunks[class] = h;
        Some((h, 0))
    }

    /// Frees a live block: canaries checked (its own and its neighbours'),
    /// zeroed, quarantined; the block leaving the quarantine becomes free.
    pub(super) unsafe fn free(&mut self, b: Block) {
        let h = b.h;
        let bs = (*h).block_size as usize;
        let word = canary(*(*h).secrets.add(b.slab), b.p);
        if !canary_intact(word, b.p + b.size(), b.p + bs) {
            overflow(b.p as *const u8);
        }
        check_neighbours(&b);
        flip((*h).live, bit(h, b.slab, b.k));
        core::ptr::write_bytes(b.p as *mut u8, 0, bs);
        if let Some(old) = self.quarantine.push(b.p) {
            release(old);
        }
    }
}

/// A free block of the slab: a random one of the (up to 64) free blocks
/// of the lowest bitmap word that has any. Allocation order is random
/// within that window, while live blocks stay packed at the slab's start
/// instead of spread over all of it: far fewer cache lines in use.
unsafe fn pick(h: *const Header, slab: usize, r: u64) -> usize {
    let map = (*h).free.add(slab * (*h).words as usize);
    let mut w = 0;
    // The free count says there is a free bit: the scan stops.
    while *map.add(w) == 0 {
        w += 1;
    }
    let r = (r % 64) as u32;
    // The first free bit at or after bit r, wrapping around.
    w * 64 + ((((*map.add(w)).rotate_right(r).trailing_zeros() + r) % 64) as usize)
}

/// Checks the words that touch `b`: the previous block's last word (its
/// canary while it is live, zero otherwise) and the next block's first word
/// (zero unless it is live, when it is its owner's data). An overflow or
/// underflow of `b` by 1 to 32 bytes that skipped `b`'s own canary lands
/// there; both words share cache lines with `b`, so this costs two loads.
unsafe fn check_neighbours(b: &Block) {
    let h = b.h;
    let bs = (*h).block_size as usize;
    if b.k > 0 {
        let (q, i) = (b.p - bs, bit(h, b.slab, b.k - 1));
        if test((*h).live, i) {
            let from = (q + *(*h).requested.add(i) as usize).max(b.p - 8);
            if !canary_intact(canary(*(*h).secrets.add(b.slab), q), from, b.p) {
                overflow(q as *const u8);
            }
        } else if *((b.p - 8) as *const u64) != 0 {
            modified(q);
        }
    }
    if b.k + 1 < (*h).blocks as usize {
        let (q, i) = (b.p + bs, bit(h, b.slab, b.k + 1));
        if !test((*h).live, i) && *(q as *const u64) != 0 {
            modified(q);
        }
    }
}

#[cold]
fn modified(q: usize) -> ! {
    check::fatal(
        "heap overflow or write after free detected (a freed block was modified)",
        q as *const u8,
    )
}

/// A block leaves the quarantine: it becomes free (its zero fill is
/// checked when it is handed out).
unsafe fn release(p: usize) {
    let h = segmap::chunk_base(p as *const u8) as *mut Header;
    let off = p - h as usize;
    let slab = (off >> (*h).shift) - (*h).first as usize;
    let k = index((*h).div_magic, off & ((1 << (*h).shift) - 1));
    flip((*h).free, bit(h, slab, k));
    *(*h).free_count.add(slab) += 1;
}

/// The live block `p` in the small chunk at `base`.
pub(super) unsafe fn find(base: usize, p: *const u8) -> Result<Block, Misuse> {
    let h = base as *mut Header;
    let off = p as usize - base;
    let pos = off >> (*h).shift;
    let first = (*h).first as usize;
    if pos < first || pos >= first + (*h).slabs as usize {
        return Err(Misuse::Invalid);
    }
    let slab = pos - first;
    let within = off & ((1 << (*h).shift) - 1);
    let bs = (*h).block_size as usize;
    let k = index((*h).div_magic, within);
    if k * bs != within || k >= (*h).blocks as usize {
        return Err(Misuse::Invalid);
    }
    let i = bit(h, slab, k);
    if !test((*h).live, i) {
        // Quarantined: freed recently. Free: never handed out, or freed
        // long ago (its second free is then reported as invalid).
        return Err(if test((*h).free, i) {
            Misuse::Invalid
        } else {
            Misuse::DoubleFree
        });
    }
    Ok(Block {
        h,
        slab,
        k,
        p: p as usize,
    })
}

/// A fresh chunk for `class`: metadata laid out, guard pages set, every
/// block free. None if the arena has no memory.
unsafe fn new_chunk(class: usize, rng: &mut Rng) -> Option<*mut Header> {
    let base = crate::arena::alloc_run(1);
    if base.is_null() {
        return None;
    }
    let bs = CLASS_SIZE[class] as usize;
    let (shift, first, slabs) = geometry(bs);
    let stride = 1usize << shift;
    let blocks = (stride - PAGE) / bs;
    let words = blocks.div_ceil(64);
    // Arrays in order of alignment, right after the header.
    let mut at = base as usize + core::mem::size_of::<Header>();
    let mut take = |bytes: usize| {
        let p = at;
        at += bytes;
        p
    };
    let h = base as *mut Header;
    h.write(Header {
        kind: Kind::Small,
        block_size: bs as u32,
        shift,
        first: first as u32,
        slabs: slabs as u32,
        blocks: blocks as u32,
        words: words as u32,
        div_magic: (1u64 << 40).div_ceil(bs as u64),
        next: null_mut(),
        secrets: take(8 * slabs) as *mut u64,
        live: take(8 * words * slabs) as *mut u64,
        free: take(8 * words * slabs) as *mut u64,
        free_count: take(4 * slabs) as *mut u32,
        requested: take(2 * 64 * words * slabs) as *mut u16,
    });
    debug_assert!(at <= base as usize + (first << shift) - PAGE);
    for s in 0..slabs {
        *(*h).secrets.add(s) = rng.next();
        *(*h).free_count.add(s) = blocks as u32;
        for k in 0..blocks {
            flip((*h).free, bit(h, s, k));
        }
    }
    // The arena's chunk reads as zero: only the guards need setting.
    for s in 0..=slabs {
        os::protect(base.add(((first + s) << shift) - PAGE), PAGE, false);
    }
    segmap::set(base, Entry::Hardened);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fits_before_the_first_slab_for_every_class() {
        for &bs in CLASS_SIZE.iter() {
            let bs = bs as usize;
            let (shift, first, slabs) = geometry(bs);
            let stride = 1usize << shift;
            let words = ((stride - PAGE) / bs).div_ceil(64);
            let meta = core::mem::size_of::<Header>() + slabs * (8 + 16 * words + 4 + 128 * words);
            assert!(slabs >= 1 && meta <= (first << shift) - PAGE, "{bs}");
            assert_eq!((first + slabs) << shift, CHUNK);
        }
    }

    #[test]
    fn offsets_divide_exactly_by_the_magic_multiplier() {
        for &bs in CLASS_SIZE.iter() {
            let magic = (1u64 << 40).div_ceil(bs as u64);
            let stride = 1usize << geometry(bs as usize).0;
            // Every block start and the offsets either side of it.
            for k in 0..stride / bs as usize {
                for within in [
                    k * bs as usize,
                    k * bs as usize + 1,
                    (k + 1) * bs as usize - 1,
                ] {
                    assert_eq!(index(magic, within), within / bs as usize, "{bs} {within}");
                }
            }
        }
    }
}
