//! The hardened profile: a misuse-detecting allocator behind the same entry
//! points (SPEC 3b), in the family of Scudo and hardened_malloc.
//!
//! `HAKMEM_PROFILE=hardened` turns it on once, at start-up: `options::load_env`
//! calls [`enable`] before the first allocation is served (the first
//! allocation runs `init::ensure` before it asks [`on`]). It is never turned
//! off, and no other profile turns it on later.
//!
//! Invariants:
//! - When on, no thread ever gets a thread heap: `heap::alloc_slow` (reached
//!   because the thread's heap pointer is null) hands every small request
//!   here, and `raw`'s cold paths hand over the rest, so the default fast
//!   paths pay nothing for this box. `free` finds hardened blocks by their
//!   chunk map entry: `Hardened` (the chunk's base holds metadata whose first
//!   word says which kind, see `Kind`) or `HardenedTail` (a large block's
//!   continuation chunk).
//! - Blocks carry no in-band data: no free-list links, no headers. Requested
//!   sizes, live bits and secrets are out of line, behind guard pages.
//! - A small block is live (handed out), quarantined (freed, zero, not yet
//!   reusable) or free (zero, reusable): every byte of a small slab that is
//!   not in a live block's requested size is zero or its canary.
//! - One lock guards everything here (the speed goal is single-threaded),
//!   skipped while the process has only one thread (`threaded`); it is held
//!   across fork like the other locks. Aborts never allocate.

mod guard;
mod large;
mod quarantine;
mod random;
mod slab;
mod zero;

use crate::check;
use crate::lock::{self, SpinLock};
use crate::segmap::{self, Chunk};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

static ON: AtomicBool = AtomicBool::new(false);

/// Whether the hardened profile serves this process (one relaxed load).
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Relaxed)
}

/// Turns the hardened profile on: at start-up only, before any allocation.
pub(crate) fn enable() {
    if !ON.swap(true, Relaxed) {
        guard::install();
    }
}

/// What a hardened chunk's base holds (its first word).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Kind {
    Small = 0x4853_4d31,
    Zero = 0x4853_4d32,
    Large = 0x4853_4d33,
}

/// Everything the lock guards.
struct State {
    rng: random::Rng,
    small: slab::Slabs,
    zero: zero::Zero,
    large: large::Large,
}

// SAFETY: the raw pointers in `State` name hakmem's own chunks, which any
// thread may use under the lock.
unsafe impl Send for State {}

static STATE: SpinLock<State> = SpinLock::new(State {
    rng: random::Rng::new(),
    small: slab::Slabs::new(),
    zero: zero::Zero::new(),
    large: large::Large::new(),
});

/// A live block, found from a pointer.
enum Found {
    Small(slab::Block),
    Zero(zero::Block),
    Large(large::Block),
}

/// Why a pointer handed to free or realloc is no live block.
#[derive(Clone, Copy)]
enum Misuse {
    Invalid,
    DoubleFree,
}

#[derive(Clone, Copy)]
enum Op {
    Free,
    Realloc,
}

#[cold]
fn fail(op: Op, m: Misuse, p: *const u8) -> ! {
    check::fatal(
        match (op, m) {
            (Op::Free, Misuse::Invalid) => "free(): invalid pointer (not a live block)",
            (Op::Free, Misuse::DoubleFree) => "free(): double free",
            (Op::Realloc, Misuse::Invalid) => "realloc(): invalid pointer (not a live block)",
            (Op::Realloc, Misuse::DoubleFree) => "realloc(): pointer already freed",
        },
        p,
    )
}

/// The smallest alignment every block has.
const MIN_ALIGN: usize = 16;

/// Allocates `size` bytes aligned to `align` (a power of two); memory reads
/// as zero (calloc needs nothing more). Null if impossible.
///
/// # Safety
/// `align` must be a power of two.
pub(crate) unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
    let mut st = STATE.lock_if(lock::threaded());
    let st = &mut *st;
    if align <= MIN_ALIGN {
        if size == 0 {
            return st.zero.alloc();
        }
        // One more byte than asked: at least one canary byte after the block.
        if let Some(class) = crate::size_class::class_for(size + 1) {
            return st.small.alloc(class, size, &mut st.rng);
        }
    }
    st.large.alloc(size, align, &mut st.rng)
}

/// The live block at `p` (entry `kind` in the chunk map).
unsafe fn locate(p: *const u8, kind: Chunk) -> Result<Found, Misuse> {
    let base = match kind {
        Chunk::Hardened => segmap::chunk_base(p),
        Chunk::HardenedTail => large::run_base(p),
        _ => return Err(Misuse::Invalid),
    };
    match *(base as *const u32) {
        k if k == Kind::Small as u32 => slab::find(base, p).map(Found::Small),
        k if k == Kind::Zero as u32 => zero::find(base, p).map(Found::Zero),
        k if k == Kind::Large as u32 => large::find(base, p).map(Found::Large),
        _ => Err(Misuse::Invalid),
    }
}

/// Frees `p`, whose chunk map entry is `kind` (hardened or not: anything
/// but a live hardened block aborts).
///
/// # Safety
/// `p` lies in a chunk whose entry is `kind`.
pub(crate) unsafe fn free(p: *mut u8, kind: Chunk) {
    let mut st = STATE.lock_if(lock::threaded());
    let st = &mut *st;
    match locate(p, kind) {
        Ok(Found::Small(b)) => st.small.free(b),
        Ok(Found::Zero(b)) => st.zero.free(b),
        Ok(Found::Large(b)) => st.large.free(b),
        Err(m) => fail(Op::Free, m, p),
    }
}

/// The requested size of the live block at `p`, or why it is none.
unsafe fn requested(p: *const u8, kind: Chunk) -> Result<usize, Misuse> {
    let _st = STATE.lock_if(lock::threaded());
    Ok(match locate(p, kind)? {
        Found::Small(b) => b.size(),
        Found::Zero(_) => 0,
        Found::Large(b) => b.size(),
    })
}

/// Moves the live block `p` to a new block of `new_size` bytes aligned to
/// `align`; null (and `p` untouched) if impossible.
///
/// # Safety
/// `p` lies in a chunk whose entry is `kind`; `align` is a power of two.
pub(crate) unsafe fn realloc(p: *mut u8, kind: Chunk, new_size: usize, align: usize) -> *mut u8 {
    let old = requested(p, kind).unwrap_or_else(|m| fail(Op::Realloc, m, p));
    let q = alloc(new_size, align);
    if !q.is_null() {
        core::ptr::copy_nonoverlapping(p, q, old.min(new_size));
        // Checks the old block's canary, as any free does.
        free(p, kind);
    }
    q
}

/// The requested size of the live block at `p`; `None` if `p` is none.
pub(crate) fn usable_size(p: *const u8, kind: Chunk) -> Option<usize> {
    // SAFETY: `kind` is p's chunk map entry (callers just looked it up), and
    // `locate` reads only metadata that entry vouches for.
    unsafe { requested(p, kind).ok() }
}

/// Fork support: the lock is held across fork.
pub(crate) fn lock_for_fork() {
    STATE.acquire();
}

pub(crate) fn unlock_after_fork() {
    STATE.force_unlock();
}

/// The canary of the block at `block`, whose slab (or large block) has
/// secret `secret`: the word stored at every 8-aligned address of its slack
/// (one word per block, so filling and checking are plain word loops). Every
/// byte has its high bit set: never a NUL nor an ASCII character, so an
/// overflow by a string (its text or its terminating NUL) is always caught,
/// not just with probability 1 - 1/128.
#[inline(always)]
fn canary(secret: u64, block: usize) -> u64 {
    (secret ^ block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 0x8080_8080_8080_8080
}

/// The bytes of a word at and above byte `from` (0..8), as a mask.
#[inline(always)]
fn bytes_from(from: usize) -> u64 {
    !0u64 << (from * 8)
}

/// Writes the canary `word` over `[start, end)`: every 8-aligned word of it,
/// the first one merged under a mask when `start` is not aligned.
///
/// # Safety
/// The range is writable memory of one block, the 8-aligned word holding
/// `start` is readable, and `end` is 8-aligned.
unsafe fn fill_canary(word: u64, start: usize, end: usize) {
    debug_assert!(end.is_multiple_of(8) && start <= end);
    let mut a = start & !7;
    if a != start {
        let (w, m) = (a as *mut u64, bytes_from(start & 7));
        *w = (*w & !m) | (word & m);
        a += 8;
    }
    while a < end {
        *(a as *mut u64) = word;
        a += 8;
    }
}

/// Whether `[start, end)` still holds the canary `word`.
///
/// # Safety
/// As [`fill_canary`], readable instead of writable.
unsafe fn canary_intact(word: u64, start: usize, end: usize) -> bool {
    debug_assert!(end.is_multiple_of(8) && start <= end);
    let mut a = start & !7;
    let mut diff = 0;
    if a != start {
        diff = (*(a as *const u64) ^ word) & bytes_from(start & 7);
        a += 8;
    }
    while a < end {
        diff |= *(a as *const u64) ^ word;
        a += 8;
    }
    diff == 0
}

/// Whether `[start, start + len)` reads as zero: its first word is zero and
/// every word equals the next one, which one `memcmp` of the range against
/// itself shifted by a word tells (libc's vectorised loop, several times
/// faster than a word loop here).
///
/// # Safety
/// The range is readable; `start` and `len` are multiples of 8.
unsafe fn is_zero(start: usize, len: usize) -> bool {
    debug_assert!(start.is_multiple_of(8) && len.is_multiple_of(8));
    if len == 0 {
        return true;
    }
    let bytes = core::slice::from_raw_parts(start as *const u8, len);
    *(start as *const u64) == 0 && bytes[..len - 8] == bytes[8..]
}

#[cold]
fn overflow(p: *const u8) -> ! {
    check::fatal("heap overflow detected (canary)", p)
}
