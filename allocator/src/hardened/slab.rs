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
//!   (zeroed on free, checked when it leaves the quarantine and again when
//!   it is handed out).
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

/// Bytes either side of a freed block whose neighbours are checked (1- and
/// 32-byte overflows and underflows that skipped the block's own canary).
const NEAR: usize = 64;

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

    /// A block of `class` for a request of `size` bytes (< the block size).
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
        if !is_zero(p, bs) {
            check::fatal(
                "write after free detected (a free block was modified)",
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

/// A free block of the slab, from a random position on.
unsafe fn pick(h: *const Header, slab: usize, r: u64) -> usize {
    let words = (*h).words as usize;
    let map = (*h).free.add(slab * words);
    let start = ((r as u32 as u64 * (*h).blocks as u64) >> 32) as usize;
    let (w0, b0) = (start / 64, start % 64);
    let first = *map.add(w0) & (!0u64 << b0);
    if first != 0 {
        return w0 * 64 + first.trailing_zeros() as usize;
    }
    // The free count says there is one: wrap around to find it.
    let w = (1..=words)
        .map(|d| (w0 + d) % words)
        .find(|&w| *map.add(w) != 0)
        .expect("a slab with a free count has a free bit");
    w * 64 + (*map.add(w)).trailing_zeros() as usize
}

/// Checks the blocks within `NEAR` bytes of `b`: a live one's canary, a
/// free or quarantined one's zeros (an overflow or underflow of `b` that
/// landed beyond its own canary).
unsafe fn check_neighbours(b: &Block) {
    let h = b.h;
    let bs = (*h).block_size as usize;
    let n = NEAR.div_ceil(bs);
    let (lo, hi) = (b.p - NEAR, b.p + bs + NEAR);
    let last = (b.k + n).min((*h).blocks as usize - 1);
    for k in b.k.saturating_sub(n)..=last {
        if k == b.k {
            continue;
        }
        let q = block_at(h, b.slab, k);
        let i = bit(h, b.slab, k);
        if test((*h).live, i) {
            let size = *(*h).requested.add(i) as usize;
            if !canary_intact(canary(*(*h).secrets.add(b.slab), q), q + size, q + bs) {
                overflow(q as *const u8);
            }
        } else {
            let (from, to) = (q.max(lo), (q + bs).min(hi));
            if !is_zero(from, to - from) {
                check::fatal(
                    "heap overflow or write after free detected (a freed block was modified)",
                    q as *const u8,
                );
            }
        }
    }
}

/// A block leaves the quarantine: still zero, it becomes free.
unsafe fn release(p: usize) {
    let h = segmap::chunk_base(p as *const u8) as *mut Header;
    let off = p - h as usize;
    let slab = (off >> (*h).shift) - (*h).first as usize;
    let k = (off & ((1 << (*h).shift) - 1)) / (*h).block_size as usize;
    if !is_zero(p, (*h).block_size as usize) {
        check::fatal("write after free detected", p as *const u8);
    }
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
    let k = within / bs;
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
}
