//! Large blocks: what the size classes do not serve (over 64 KiB, or aligned
//! beyond 64 KiB). Four shapes, by size and alignment:
//!
//! - **Page blocks** (up to 1 MiB, alignment up to 1 MiB): a run of 4 KiB
//!   pages inside a *page chunk*, an arena chunk (`Chunk::LargePages`) whose
//!   first page holds bitmaps (pages used, live block starts, pages that may
//!   be dirty, starts of freed blocks) and each block's length in pages. No
//!   per-block header: a block starts on a page; 20 blocks of 100 KiB share a
//!   chunk, so 100,000 of them take 5,000 chunks in about 160 arenas.
//! - **Run blocks** (a run of up to 16 chunks, 32 MiB): whole arena chunks;
//!   the header is at the run's base (`Chunk::Large`), the block starts
//!   `max(64, align)` bytes in; the other chunks are `Chunk::LargeTail`.
//! - **Direct blocks** (bigger): their own mapping of whole chunks, aligned to
//!   2 MiB, laid out like run blocks, every chunk in the chunk map (so no
//!   foreign mapping can sit inside one of hakmem's chunks); unmapped on free.
//! - **Aligned blocks** (alignment >= 2 MiB): the block starts on a chunk
//!   (`Chunk::LargeAligned`) and its header sits in the page before it, in a
//!   `LargeTail` chunk; an arena run for 2 MiB alignment, else a direct mapping.
//!
//! **The large cache.** Freed memory of page and run blocks stays committed
//! for reuse, `large_cache_bytes` in all (freed dirty pages of page chunks and
//! whole freed runs, the oldest run evicted first). What sits unused for
//! `release::large_decay_ms()` is decommitted by [`decay`], which the release
//! thread calls, and which large allocations and frees also call at most every
//! `DECAY_TICK_MS`; [`trim`] gives everything back at once. Empty page
//! chunks decay like the rest while their freed pages are cached; beyond one,
//! an empty chunk with nothing committed goes back to its arena at once.
//!
//! Invariants:
//! - Page-chunk bitmaps, lists and the cache change only under `LOCK`; the
//!   bitmaps are atomics so that `owns` may read them without it. Lock order:
//!   `LOCK`, then the arena lock; nothing else is locked under `LOCK`.
//! - In a page chunk, page 0 (the metadata) is always used; a live block's
//!   pages are used, its first page has its `starts` bit and its length in
//!   `len`. A `dirty` page may hold non-zero bytes; the dirty free pages are
//!   counted in the cache, and a chunk that has some (or is empty) is on the
//!   dirty list.
//! - A run header's `live` is true exactly while the block is handed out.
//!   Cached runs keep their chunk map entries and their header, so a stale
//!   free of one is reported as a double free.
//! - `free` aborts (in every build) on a pointer into a chunk that holds no
//!   block start (`ArenaFree`, `LargeTail`); the default build also validates
//!   the block itself (`check::CHECKS`).
//! - Nothing here allocates.

use crate::check;
use crate::lock::SpinLock;
use crate::segmap::{self, Chunk, CHUNK};
use crate::{arena, list, os, release, stats};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};

const MAGIC: u64 = 0x6861_6b6d_656d_4c47; // "hakmemLG"
const PAGE_MAGIC: u64 = 0x6861_6b6d_656d_4c50; // "hakmemLP"
const HEADER: usize = 64;
const PAGE: usize = os::PAGE;
/// Pages per chunk, and 64-bit words of a page bitmap.
const PAGES: usize = CHUNK / PAGE;
const WORDS: usize = PAGES / 64;
/// The largest page block (and the largest alignment one can have).
pub(crate) const PAGE_BLOCK_MAX: usize = 1 << 20;
/// A page chunk whose longest free run is shorter (in pages) leaves the list
/// searched for room: just over 64 KiB, the smallest unaligned large block.
const AVAIL_RUN: usize = 17;
/// The longest run block; bigger blocks are mapped directly.
pub(crate) const RUN_MAX_CHUNKS: usize = 16;
const CACHE_SLOTS: usize = 32;
const PENDING_SLOTS: usize = 16;
/// Empty page chunks kept for reuse (until they decay).
const KEEP_EMPTY: u32 = 1;
/// Allocations and frees look at the decay clock at most this often.
const DECAY_TICK_MS: u64 = 100;

/// A page bitmap, written under `LOCK`, readable without it.
struct Bits([AtomicU64; WORDS]);

impl Bits {
    fn get(&self, i: usize) -> bool {
        self.0[i / 64].load(Relaxed) >> (i % 64) & 1 == 1
    }

    fn words(&self) -> [u64; WORDS] {
        core::array::from_fn(|w| self.0[w].load(Relaxed))
    }

    /// Sets (`on`) or clears bits `[i, i+n)`. Under `LOCK` only.
    fn update(&self, i: usize, n: usize, on: bool) {
        let mut b = i;
        while b < i + n {
            let w = b / 64;
            let lo = b % 64;
            let hi = (i + n - w * 64).min(64);
            let m = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let v = self.0[w].load(Relaxed);
            self.0[w].store(if on { v | m } else { v & !m }, Relaxed);
            b = w * 64 + hi;
        }
    }
}

/// The first bit at or after `from` that is `one` (set) or not, if any.
fn next_bit(words: &[u64; WORDS], from: usize, one: bool) -> Option<usize> {
    let mut b = from;
    while b < PAGES {
        let w = if one { words[b / 64] } else { !words[b / 64] };
        let rest = w >> (b % 64);
        if rest != 0 {
            return Some(b + rest.trailing_zeros() as usize);
        }
        b = (b / 64 + 1) * 64;
    }
    None
}

/// First fit: the lowest multiple of `align` (pages) starting `n` clear bits.
fn find_free(used: &[u64; WORDS], n: usize, align: usize) -> Option<usize> {
    let mut i = 0;
    loop {
        let start = next_bit(used, i, false)?.next_multiple_of(align);
        if start + n > PAGES {
            return None;
        }
        match next_bit(used, start, true) {
            Some(o) if o < start + n => i = o + 1,
            _ => return Some(start),
        }
    }
}

/// The runs `(start, len)` of set bits of `words`, in order, to `f`.
fn for_each_run(words: &[u64; WORDS], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while let Some(s) = next_bit(words, i, true) {
        let e = next_bit(words, s, false).unwrap_or(PAGES);
        f(s, e - s);
        i = e;
    }
}

fn longest_free(used: &[u64; WORDS]) -> usize {
    let mut best = 0;
    for_each_run(&used.map(|w| !w), |_, n| best = best.max(n));
    best
}

fn count_in(words: &[u64; WORDS], i: usize, n: usize) -> usize {
    let mut total = 0;
    let mut b = i;
    while b < i + n {
        let w = b / 64;
        let lo = b % 64;
        let hi = (i + n - w * 64).min(64);
        let m = if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        total += (words[w] & m).count_ones() as usize;
        b = w * 64 + hi;
    }
    total
}

/// A page chunk's metadata, in its first page.
#[repr(C)]
struct PageChunk {
    magic: u64,
    used: Bits,
    starts: Bits,
    dirty: Bits,
    /// Starts of freed blocks whose first page has not been reused since.
    freed: Bits,
    /// Pages of the block starting at each page.
    len: [AtomicU16; PAGES],
    // Under LOCK only:
    in_avail: bool,
    in_dirty: bool,
    /// When pages were last freed into the chunk (decay clock).
    last_free_ms: u64,
    next: *mut PageChunk,
    prev: *mut PageChunk,
    dnext: *mut PageChunk,
    dprev: *mut PageChunk,
}

impl PageChunk {
    unsafe fn avail_links(c: *mut PageChunk) -> (*mut *mut PageChunk, *mut *mut PageChunk) {
        (&raw mut (*c).next, &raw mut (*c).prev)
    }

    unsafe fn dirty_links(c: *mut PageChunk) -> (*mut *mut PageChunk, *mut *mut PageChunk) {
        (&raw mut (*c).dnext, &raw mut (*c).dprev)
    }
}

/// A run or direct block's header.
#[repr(C)]
struct Header {
    magic: u64,
    /// The run or mapping, and its length (whole chunks).
    base: *mut u8,
    len: usize,
    /// The block's start, from `base`.
    offset: usize,
    live: AtomicBool,
    /// A mapping of its own (else an arena run).
    direct: bool,
}

#[derive(Clone, Copy)]
struct Cached {
    base: usize,
    chunks: usize,
    since: u64,
}

struct State {
    /// Page chunks whose longest free run is at least `AVAIL_RUN`.
    avail: *mut PageChunk,
    /// Page chunks with dirty free pages, or empty.
    dirty: *mut PageChunk,
    empty: u32,
    runs: [Cached; CACHE_SLOTS],
    nruns: usize,
    /// Bytes of the cache: dirty free pages and cached runs.
    cached: u64,
    /// Direct mappings whose munmap failed (decommitted), to retry.
    pending: [(usize, usize); PENDING_SLOTS],
    npending: usize,
}

// SAFETY: the raw pointers name page chunks in arena memory, which is never
// unmapped, and are only followed under LOCK.
unsafe impl Send for State {}

static LOCK: SpinLock<State> = SpinLock::new(State {
    avail: null_mut(),
    dirty: null_mut(),
    empty: 0,
    runs: [Cached {
        base: 0,
        chunks: 0,
        since: 0,
    }; CACHE_SLOTS],
    nruns: 0,
    cached: 0,
    pending: [(0, 0); PENDING_SLOTS],
    npending: 0,
});

/// Empty page chunks plus pending unmaps: with `LARGE_CACHED_BYTES`, whether
/// `decay` has anything to look at (read without the lock).
static WORK: AtomicU64 = AtomicU64::new(0);
static LAST_TICK: AtomicU64 = AtomicU64::new(0);

impl State {
    fn add_cached(&mut self, bytes: usize) {
        self.cached += bytes as u64;
    }

    fn sub_cached(&mut self, bytes: usize) {
        self.cached -= bytes as u64;
    }

    /// Mirrors the counters that `decay` and `stats()` read without the lock.
    fn publish(&self) {
        stats::LARGE_CACHED_BYTES.store(self.cached, Relaxed);
        WORK.store(self.empty as u64 + self.npending as u64, Relaxed);
    }

    unsafe fn push_avail(&mut self, c: *mut PageChunk) {
        list::push_front(&mut self.avail, c, PageChunk::avail_links);
        (*c).in_avail = true;
    }

    unsafe fn remove_avail(&mut self, c: *mut PageChunk) {
        list::unlink(&mut self.avail, c, PageChunk::avail_links);
        (*c).in_avail = false;
    }

    unsafe fn push_dirty(&mut self, c: *mut PageChunk) {
        list::push_front(&mut self.dirty, c, PageChunk::dirty_links);
        (*c).in_dirty = true;
    }

    unsafe fn remove_dirty(&mut self, c: *mut PageChunk) {
        list::unlink(&mut self.dirty, c, PageChunk::dirty_links);
        (*c).in_dirty = false;
    }

    /// Puts `c` on the lists its bitmaps call for.
    unsafe fn refresh(&mut self, c: *mut PageChunk) {
        let used = (*c).used.words();
        let avail = longest_free(&used) >= AVAIL_RUN;
        if avail != (*c).in_avail {
            if avail {
                self.push_avail(c);
            } else {
                self.remove_avail(c);
            }
        }
        let dirty = is_empty(&used) || dirty_free(c).iter().any(|&w| w != 0);
        if dirty != (*c).in_dirty {
            if dirty {
                self.push_dirty(c);
            } else {
                self.remove_dirty(c);
            }
        }
    }

    /// Takes an empty page chunk off the lists and out of the books; the
    /// caller gives it back to its arena.
    unsafe fn retire(&mut self, c: *mut PageChunk) {
        let d = dirty_free(c);
        self.sub_cached(count_in(&d, 0, PAGES) * PAGE);
        if (*c).in_avail {
            self.remove_avail(c);
        }
        if (*c).in_dirty {
            self.remove_dirty(c);
        }
        self.empty -= 1;
        (*c).magic = 0;
    }

    /// Decommits the dirty free pages of `c`, under the lock (so that no page
    /// is handed out meanwhile).
    unsafe fn purge(&mut self, c: *mut PageChunk) {
        let d = dirty_free(c);
        let base = c as *mut u8;
        for_each_run(&d, |s, n| {
            if os::decommit(base.add(s * PAGE), n * PAGE) {
                (*c).dirty.update(s, n, false);
                self.sub_cached(n * PAGE);
            }
        });
    }

    /// Hands out the cached run that fits `n` chunks best; the excess is the
    /// caller's to give back.
    fn take_run(&mut self, n: usize) -> Option<Cached> {
        let mut best: Option<usize> = None;
        for i in 0..self.nruns {
            let c = self.runs[i].chunks;
            if c >= n && best.is_none_or(|b| c < self.runs[b].chunks) {
                best = Some(i);
            }
        }
        let r = self.runs[best?];
        self.remove_run(best?);
        Some(r)
    }

    fn remove_run(&mut self, i: usize) {
        let r = self.runs[i];
        // Keep the array in age order: the oldest first.
        self.runs.copy_within(i + 1..self.nruns, i);
        self.nruns -= 1;
        self.sub_cached(r.chunks * CHUNK);
    }

    /// Releases what has sat unused for `age` ms at `now` (everything if
    /// `age` is 0); runs to give back are collected in `out`. True if
    /// anything went.
    unsafe fn release_idle(
        &mut self,
        now: u64,
        age: u64,
        out: &mut [Cached; CACHE_SLOTS],
        nout: &mut usize,
    ) -> bool {
        let before = (self.cached, self.empty, self.npending);
        let old = |since: u64| now.saturating_sub(since) >= age;
        let mut i = 0;
        while i < self.nruns {
            if old(self.runs[i].since) {
                out[*nout] = self.runs[i];
                *nout += 1;
                self.remove_run(i);
            } else {
                i += 1;
            }
        }
        let mut c = self.dirty;
        while !c.is_null() {
            let next = (*c).dnext;
            if old((*c).last_free_ms) {
                if is_empty(&(*c).used.words()) {
                    self.retire(c);
                    arena::release_run(c.cast(), 1);
                } else {
                    self.purge(c);
                    self.refresh(c);
                }
            }
            c = next;
        }
        let mut k = 0;
        while k < self.npending {
            let (base, len) = self.pending[k];
            if unmap_direct(base as *mut u8, len) {
                self.pending[k] = self.pending[self.npending - 1];
                self.npending -= 1;
            } else {
                k += 1;
            }
        }
        self.publish();
        (self.cached, self.empty, self.npending) != before || *nout > 0
    }
}

fn is_empty(used: &[u64; WORDS]) -> bool {
    used[0] == 1 && used[1..].iter().all(|&w| w == 0)
}

/// The dirty pages of `c` that are free.
unsafe fn dirty_free(c: *const PageChunk) -> [u64; WORDS] {
    let (d, u) = ((*c).dirty.words(), (*c).used.words());
    core::array::from_fn(|w| d[w] & !u[w])
}

/// Runs `decay` if the decay clock has ticked; returns the time.
fn tick() -> u64 {
    let now = os::coarse_ms();
    let last = LAST_TICK.load(Relaxed);
    if now >= last + DECAY_TICK_MS
        && LAST_TICK
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_ok()
    {
        decay(now);
    }
    now
}

/// Gives back the large cache's memory that has sat unused for the release
/// policy's decay time (`release::large_decay_ms()`) at `now_ms` (from
/// `os::coarse_ms()`): cached runs and empty page chunks return to their
/// arena, dirty free pages are decommitted, failed unmaps are retried. Cheap
/// when there is nothing to do (two relaxed loads); meant to be called every
/// 100-250 ms by the background release thread.
pub(crate) fn decay(now_ms: u64) {
    release_idle(now_ms, release::large_decay_ms());
}

/// Gives back everything the large cache holds, now (`malloc_trim`). True if
/// anything was released.
pub(crate) fn trim() -> bool {
    release_idle(u64::MAX, 0)
}

fn release_idle(now: u64, age: u64) -> bool {
    if stats::LARGE_CACHED_BYTES.load(Relaxed) == 0 && WORK.load(Relaxed) == 0 {
        return false;
    }
    let mut out = [Cached {
        base: 0,
        chunks: 0,
        since: 0,
    }; CACHE_SLOTS];
    let mut nout = 0;
    let mut st = LOCK.lock();
    // SAFETY: under the lock; the lists hold live page chunks.
    let released = unsafe { st.release_idle(now, age, &mut out, &mut nout) };
    drop(st);
    for r in &out[..nout] {
        arena::release_run(r.base as *mut u8, r.chunks);
    }
    released
}

/// Allocates a large block. Null (never abort) when impossible.
pub(crate) fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    let now = tick();
    let p = if align >= CHUNK {
        alloc_aligned(size, align)
    } else if size <= PAGE_BLOCK_MAX && align <= PAGE_BLOCK_MAX {
        alloc_pages(size, align, zero, now)
    } else {
        alloc_run_block(size, align, zero, now)
    };
    if !p.is_null() {
        stats::LARGE_LIVE.fetch_add(1, Relaxed);
        // SAFETY: p is the live large block just made.
        LIVE_BYTES.fetch_add(unsafe { usable_size(p, segmap::lookup(p)) } as u64, Relaxed);
    }
    p
}

/// Usable bytes of the live large blocks (for `usage`).
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

/// Live large blocks and their usable bytes.
pub(crate) fn usage() -> (u64, u64) {
    (stats::LARGE_LIVE.load(Relaxed), LIVE_BYTES.load(Relaxed))
}

/// An arena run of `n` chunks; on failure the cache is trimmed and it is
/// tried again.
fn arena_run(n: usize) -> *mut u8 {
    let p = arena::alloc_run(n);
    if p.is_null() && trim() {
        return arena::alloc_run(n);
    }
    p
}

fn alloc_pages(size: usize, align: usize, zero: bool, now: u64) -> *mut u8 {
    let n = size.div_ceil(PAGE).max(1);
    let ap = (align / PAGE).max(1);
    let mut fresh: *mut u8 = null_mut();
    loop {
        let mut st = LOCK.lock();
        // SAFETY: under the lock; list members are live page chunks, whose
        // first page holds their metadata.
        unsafe {
            let mut c = st.avail;
            let mut at = None;
            while !c.is_null() {
                at = find_free(&(*c).used.words(), n, ap);
                if at.is_some() {
                    break;
                }
                c = (*c).next;
            }
            if at.is_none() && !fresh.is_null() {
                c = format_page_chunk(fresh, now);
                fresh = null_mut();
                st.empty += 1;
                st.refresh(c);
                at = find_free(&(*c).used.words(), n, ap);
            }
            if let Some(i) = at {
                let p = take_pages(&mut st, c, i, n);
                st.publish();
                drop(st);
                if !fresh.is_null() {
                    // Another thread made room meanwhile.
                    arena::release_run(fresh, 1);
                }
                if zero && p.1 {
                    ptr::write_bytes(p.0, 0, size);
                }
                return p.0;
            }
        }
        drop(st);
        fresh = arena_run(1);
        if fresh.is_null() {
            return null_mut();
        }
    }
}

/// Lays out a page chunk in a fresh (zero) arena chunk.
unsafe fn format_page_chunk(p: *mut u8, now: u64) -> *mut PageChunk {
    let c = p as *mut PageChunk;
    // The memory reads as zero: every bitmap and length is empty already.
    (*c).magic = PAGE_MAGIC;
    (*c).used.update(0, 1, true);
    (*c).dirty.update(0, 1, true);
    (*c).last_free_ms = now;
    segmap::set(p, Chunk::LargePages);
    c
}

/// Marks pages `[i, i+n)` of `c` as a block; returns it and whether any of
/// its pages may be dirty. Under the lock.
unsafe fn take_pages(st: &mut State, c: *mut PageChunk, i: usize, n: usize) -> (*mut u8, bool) {
    if is_empty(&(*c).used.words()) {
        st.empty -= 1;
    }
    let dirty = count_in(&dirty_free(c), i, n);
    st.sub_cached(dirty * PAGE);
    (*c).used.update(i, n, true);
    (*c).dirty.update(i, n, true);
    (*c).freed.update(i, n, false);
    (*c).len[i].store(n as u16, Relaxed);
    (*c).starts.update(i, 1, true);
    st.refresh(c);
    ((c as *mut u8).add(i * PAGE), dirty > 0)
}

/// Frees pages `[i, i+n)` of `c` (a block's, or the tail of one), keeping
/// them in the cache or decommitting them. Called under the lock, which it
/// may drop and retake around the decommit; returns an empty chunk to retire
/// (already off the books), if any.
unsafe fn free_pages_locked(
    mut st: crate::lock::Guard<'_, State>,
    c: *mut PageChunk,
    i: usize,
    n: usize,
    now: u64,
) -> *mut PageChunk {
    let bytes = n * PAGE;
    let keep = release::cache_large(st.cached, bytes as u64);
    if !keep {
        // Drop the pages before they are free, without holding the lock
        // over the syscall: they stay marked used meanwhile.
        drop(st);
        let ok = os::decommit((c as *mut u8).add(i * PAGE), bytes);
        st = LOCK.lock();
        if ok {
            (*c).dirty.update(i, n, false);
        }
    }
    let dirty = count_in(&(*c).dirty.words(), i, n);
    st.add_cached(dirty * PAGE);
    if dirty > 0 {
        (*c).last_free_ms = now;
    }
    (*c).used.update(i, n, false);
    let mut retire = null_mut();
    if is_empty(&(*c).used.words()) {
        st.empty += 1;
        (*c).last_free_ms = now;
        // An empty chunk whose freed pages the cache kept committed waits for
        // the decay like them (thread churn frees and re-allocates whole
        // chunks); beyond `KEEP_EMPTY`, one with nothing committed goes now.
        if st.empty > KEEP_EMPTY && dirty_free(c).iter().all(|&w| w == 0) {
            st.retire(c);
            retire = c;
        }
    }
    if retire.is_null() {
        st.refresh(c);
    }
    st.publish();
    retire
}

fn alloc_run_block(size: usize, align: usize, zero: bool, now: u64) -> *mut u8 {
    let offset = align.max(HEADER);
    let Some(total) = size.checked_add(offset) else {
        return null_mut();
    };
    let n = total.div_ceil(CHUNK);
    if n > RUN_MAX_CHUNKS {
        return alloc_direct(size, offset);
    }
    let mut st = LOCK.lock();
    let cached = st.take_run(n);
    st.publish();
    drop(st);
    let (base, dirty) = match cached {
        Some(r) => {
            if r.chunks > n {
                // The rest stays cached (its bytes were counted already):
                // decommitting it made the next bigger block fault it in again.
                offer_run((r.base + n * CHUNK) as *mut u8, r.chunks - n, now);
            }
            (r.base as *mut u8, true)
        }
        None => (arena_run(n), false),
    };
    if base.is_null() {
        return null_mut();
    }
    // SAFETY: `base` starts a run of `n` chunks that is ours alone.
    unsafe {
        let user = write_header(base, n * CHUNK, offset, false);
        segmap::set_run(base, n, Chunk::LargeTail);
        segmap::set(base, Chunk::Large);
        if zero && dirty {
            ptr::write_bytes(user, 0, size);
        }
        user
    }
}

/// Writes the header of a run or direct block at `base`; returns the block.
unsafe fn write_header(base: *mut u8, len: usize, offset: usize, direct: bool) -> *mut u8 {
    ptr::write(
        base as *mut Header,
        Header {
            magic: MAGIC,
            base,
            len,
            offset,
            live: AtomicBool::new(true),
            direct,
        },
    );
    base.add(offset)
}

fn alloc_direct(size: usize, offset: usize) -> *mut u8 {
    let Some(len) = size
        .checked_add(offset)
        .and_then(|n| n.checked_next_multiple_of(CHUNK))
    else {
        return null_mut();
    };
    if len > isize::MAX as usize / 2 {
        return null_mut();
    }
    let base = os::map_aligned(len, CHUNK, false);
    if base.is_null() {
        return null_mut();
    }
    // SAFETY: a fresh mapping of `len` bytes, ours alone.
    let user = unsafe { write_header(base, len, offset, true) };
    segmap::set_run(base, len / CHUNK, Chunk::LargeTail);
    segmap::set(base, Chunk::Large);
    user
}

fn alloc_aligned(size: usize, align: usize) -> *mut u8 {
    let m = size.max(1).div_ceil(CHUNK);
    let (base, len, user, direct) = if align == CHUNK && m < RUN_MAX_CHUNKS {
        let base = arena_run(m + 1);
        if base.is_null() {
            return null_mut();
        }
        (base, (m + 1) * CHUNK, base as usize + CHUNK, false)
    } else {
        let Some(len) = (m * CHUNK).checked_add(align) else {
            return null_mut();
        };
        if len > isize::MAX as usize / 2 {
            return null_mut();
        }
        let base = os::map_aligned(len, CHUNK, false);
        if base.is_null() {
            return null_mut();
        }
        let user = (base as usize + PAGE).next_multiple_of(align);
        (base, len, user, true)
    };
    let h = (user - PAGE) as *mut Header;
    // SAFETY: the header page and the block lie inside the fresh run or mapping.
    unsafe {
        ptr::write(
            h,
            Header {
                magic: MAGIC,
                base,
                len,
                offset: user - base as usize,
                live: AtomicBool::new(true),
                direct,
            },
        );
    }
    segmap::set_run(base, len / CHUNK, Chunk::LargeTail);
    segmap::set(user as *const u8, Chunk::LargeAligned);
    user as *mut u8
}

/// Aborts for a free (or resize) of `p`, which is in hakmem's memory (chunk
/// map entry `kind`) but is no live block's start.
#[cold]
fn invalid(what: &'static str, p: *const u8, kind: Chunk) -> ! {
    // SAFETY: these chunks are mapped (arena memory is never unmapped, and a
    // large block's chunks are mapped while their entries name them), so the
    // reads are sound whatever the memory holds.
    let double = unsafe {
        match kind {
            Chunk::LargePages => {
                let c = segmap::chunk_base(p) as *const PageChunk;
                let i = (p as usize - c as usize) / PAGE;
                (p as usize).is_multiple_of(PAGE) && (*c).freed.get(i) && !(*c).used.get(i)
            }
            Chunk::Large | Chunk::LargeAligned | Chunk::ArenaFree => {
                let h = if kind == Chunk::LargeAligned {
                    (p as usize).wrapping_sub(PAGE) as *const Header
                } else {
                    segmap::chunk_base(p) as *const Header
                };
                (kind != Chunk::LargeAligned || segmap::chunk_base(p) == p as usize)
                    && (*h).magic == MAGIC
                    && ptr::eq((*h).base.wrapping_add((*h).offset), p)
                    && !(*h).live.load(Relaxed)
            }
            _ => false,
        }
    };
    if double {
        check::fatal(
            if what == "free" {
                "free(): double free"
            } else {
                "realloc(): double free"
            },
            p,
        )
    }
    check::fatal(
        if what == "free" {
            "free(): invalid pointer"
        } else {
            "realloc(): invalid pointer"
        },
        p,
    )
}

/// The page chunk and page index of a page block; validated (default build).
unsafe fn page_block(p: *const u8, what: &'static str) -> (*mut PageChunk, usize) {
    let c = segmap::chunk_base(p) as *mut PageChunk;
    let i = (p as usize - c as usize) / PAGE;
    if check::CHECKS && (!(p as usize).is_multiple_of(PAGE) || i == 0 || !(*c).starts.get(i)) {
        invalid(what, p, Chunk::LargePages);
    }
    (c, i)
}

/// The header of a run, direct or aligned block, validated (default build).
unsafe fn header(p: *const u8, kind: Chunk, what: &'static str) -> *mut Header {
    let h = if kind == Chunk::Large {
        segmap::chunk_base(p) as *mut Header
    } else {
        if check::CHECKS && segmap::chunk_base(p) != p as usize {
            invalid(what, p, kind);
        }
        (p as usize - PAGE) as *mut Header
    };
    if check::CHECKS
        && ((*h).magic != MAGIC
            || !ptr::eq((*h).base.add((*h).offset), p)
            || !(*h).live.load(Relaxed))
    {
        invalid(what, p, kind);
    }
    h
}

/// Frees a large block; `kind` is its chunk map entry (not `Foreign`).
pub(crate) unsafe fn free(p: *mut u8, kind: Chunk) {
    if matches!(kind, Chunk::LargePages | Chunk::Large | Chunk::LargeAligned) {
        // usable_size validates p (aborting on misuse) before it is counted.
        LIVE_BYTES.fetch_sub(usable_size(p, kind) as u64, Relaxed);
    }
    match kind {
        Chunk::LargePages => free_page_block(p),
        Chunk::Large | Chunk::LargeAligned => free_chunked(p, kind),
        _ => invalid("free", p, kind),
    }
}

unsafe fn free_page_block(p: *mut u8) {
    let now = tick();
    let st = LOCK.lock();
    // Validated under the lock, so that two racing frees of one block cannot
    // both pass.
    let c = segmap::chunk_base(p) as *mut PageChunk;
    let i = (p as usize - c as usize) / PAGE;
    if check::CHECKS && (!(p as usize).is_multiple_of(PAGE) || i == 0 || !(*c).starts.get(i)) {
        drop(st);
        invalid("free", p, Chunk::LargePages);
    }
    let n = (*c).len[i].load(Relaxed) as usize;
    (*c).starts.update(i, 1, false);
    (*c).freed.update(i, 1, true);
    stats::LARGE_LIVE.fetch_sub(1, Relaxed);
    let retire = free_pages_locked(st, c, i, n, now);
    if !retire.is_null() {
        arena::release_run(retire.cast(), 1);
    }
}

unsafe fn free_chunked(p: *mut u8, kind: Chunk) {
    let now = tick();
    let h = header(p, kind, "free");
    if !(*h).live.swap(false, Relaxed) && check::CHECKS {
        invalid("free", p, kind);
    }
    stats::LARGE_LIVE.fetch_sub(1, Relaxed);
    let (base, len) = ((*h).base, (*h).len);
    if (*h).direct {
        free_direct(base, len);
    } else if kind == Chunk::Large {
        offer_run(base, len / CHUNK, now);
    } else {
        arena::release_run(base, len / CHUNK);
    }
}

/// Keeps a freed run in the cache (evicting the oldest runs to make room) or
/// gives it back to its arena.
fn offer_run(base: *mut u8, chunks: usize, now: u64) {
    let bytes = (chunks * CHUNK) as u64;
    let mut evict = [(0usize, 0usize); CACHE_SLOTS];
    let mut nevict = 0;
    let mut st = LOCK.lock();
    let mut keep = release::cache_large(0, bytes);
    while keep && (st.nruns == CACHE_SLOTS || !release::cache_large(st.cached, bytes)) {
        if st.nruns == 0 {
            keep = false;
            break;
        }
        evict[nevict] = (st.runs[0].base, st.runs[0].chunks);
        nevict += 1;
        st.remove_run(0);
    }
    if keep {
        let n = st.nruns;
        st.runs[n] = Cached {
            base: base as usize,
            chunks,
            since: now,
        };
        st.nruns += 1;
        st.add_cached(chunks * CHUNK);
    }
    st.publish();
    drop(st);
    for &(b, n) in &evict[..nevict] {
        arena::release_run(b as *mut u8, n);
    }
    if !keep {
        arena::release_run(base, chunks);
    }
}

/// Unmaps a direct mapping (entries cleared first); on failure it stays
/// hakmem's (entries `ArenaFree`) and false is returned.
pub(crate) fn unmap_direct(base: *mut u8, len: usize) -> bool {
    segmap::set_run(base, len / CHUNK, Chunk::Foreign);
    if os::unmap(base, len) {
        return true;
    }
    segmap::set_run(base, len / CHUNK, Chunk::ArenaFree);
    false
}

fn free_direct(base: *mut u8, len: usize) {
    if unmap_direct(base, len) {
        return;
    }
    // Still mapped: give the memory back now, the address space later.
    os::decommit(base, len);
    let mut st = LOCK.lock();
    if st.npending < PENDING_SLOTS {
        let k = st.npending;
        st.pending[k] = (base as usize, len);
        st.npending += 1;
        st.publish();
    }
    // Else it stays mapped for good, counted in MAPPED_BYTES and hakmem's in
    // the chunk map (the failure was counted and reported by `os`).
}

/// Usable bytes of a large block.
pub(crate) unsafe fn usable_size(p: *const u8, kind: Chunk) -> usize {
    match kind {
        Chunk::LargePages => {
            let (c, i) = page_block(p, "free");
            (*c).len[i].load(Relaxed) as usize * PAGE
        }
        Chunk::Large | Chunk::LargeAligned => {
            let h = header(p, kind, "free");
            (*h).len - (*h).offset
        }
        _ => invalid("free", p, kind),
    }
}

/// Whether `p` is a live large block (read without locks: a racing free may
/// make the answer stale, never unsound).
pub(crate) fn owns(p: *const u8, kind: Chunk) -> bool {
    // SAFETY: the chunk map says the chunk holds large-block metadata, whose
    // pages are mapped; the fields read are plain words or atomics.
    unsafe {
        match kind {
            Chunk::LargePages => {
                let c = segmap::chunk_base(p) as *const PageChunk;
                let i = (p as usize - c as usize) / PAGE;
                (p as usize).is_multiple_of(PAGE) && i > 0 && (*c).starts.get(i)
            }
            Chunk::Large | Chunk::LargeAligned => {
                let h = if kind == Chunk::Large {
                    segmap::chunk_base(p) as *const Header
                } else if segmap::chunk_base(p) == p as usize {
                    (p as usize - PAGE) as *const Header
                } else {
                    return false;
                };
                (*h).magic == MAGIC
                    && (*h).live.load(Relaxed)
                    && ptr::eq((*h).base.wrapping_add((*h).offset), p)
            }
            _ => false,
        }
    }
}

/// Resizes in place when the block has room or can grow where it is: a page
/// block into free pages after it (up to 1 MiB), a run block into free
/// chunks after it in its arena, a direct block with mremap (never moving).
/// Shrinking by more than half gives the tail back. Returns false when the
/// caller must move the block.
pub(crate) unsafe fn resize_in_place(p: *mut u8, kind: Chunk, new_size: usize) -> bool {
    let before = usable_size(p, kind);
    let done = match kind {
        Chunk::LargePages => resize_page_block(p, new_size),
        Chunk::Large | Chunk::LargeAligned => resize_chunked(p, kind, new_size),
        _ => invalid("realloc", p, kind),
    };
    if done {
        LIVE_BYTES.fetch_add(usable_size(p, kind) as u64, Relaxed);
        LIVE_BYTES.fetch_sub(before as u64, Relaxed);
    }
    done
}

unsafe fn resize_page_block(p: *mut u8, new_size: usize) -> bool {
    let (c, i) = page_block(p, "realloc");
    if new_size > PAGE_BLOCK_MAX {
        return false;
    }
    let n = new_size.div_ceil(PAGE).max(1);
    let now = os::coarse_ms();
    let mut st = LOCK.lock();
    let cur = (*c).len[i].load(Relaxed) as usize;
    if n <= cur {
        if n * 2 < cur {
            (*c).len[i].store(n as u16, Relaxed);
            // The block keeps its first pages, so the chunk cannot empty.
            let retire = free_pages_locked(st, c, i + n, cur - n, now);
            debug_assert!(retire.is_null());
        }
        return true;
    }
    let used = (*c).used.words();
    if i + n > PAGES || next_bit(&used, i + cur, true).is_some_and(|o| o < i + n) {
        return false;
    }
    let dirty = count_in(&dirty_free(c), i + cur, n - cur);
    st.sub_cached(dirty * PAGE);
    (*c).used.update(i + cur, n - cur, true);
    (*c).dirty.update(i + cur, n - cur, true);
    (*c).freed.update(i + cur, n - cur, false);
    (*c).len[i].store(n as u16, Relaxed);
    st.refresh(c);
    st.publish();
    true
}

unsafe fn resize_chunked(p: *mut u8, kind: Chunk, new_size: usize) -> bool {
    let h = header(p, kind, "realloc");
    let (base, len, offset) = ((*h).base, (*h).len, (*h).offset);
    let Some(need) = new_size
        .checked_add(offset)
        .and_then(|n| n.checked_next_multiple_of(CHUNK))
    else {
        return false;
    };
    if kind == Chunk::LargeAligned {
        return need <= len;
    }
    let (cur, want) = (len / CHUNK, need / CHUNK);
    if (*h).direct {
        if need <= len && need * 2 >= len {
            return true;
        }
        if need < len {
            // Shrink: the tail's entries go before the tail itself.
            segmap::set_run(base.add(need), cur - want, Chunk::Foreign);
            if os::remap_in_place(base, len, need) {
                (*h).len = need;
            } else {
                segmap::set_run(base.add(need), cur - want, Chunk::LargeTail);
            }
            return true;
        }
        if need > isize::MAX as usize / 2 || !os::remap_in_place(base, len, need) {
            return false;
        }
        segmap::set_run(base.add(len), want - cur, Chunk::LargeTail);
        (*h).len = need;
        return true;
    }
    if want <= cur {
        if want * 2 < cur {
            (*h).len = need;
            arena::release_run(base.add(need), cur - want);
        }
        return true;
    }
    if !arena::try_extend(base, cur, want - cur) {
        return false;
    }
    segmap::set_run(base.add(len), want - cur, Chunk::LargeTail);
    (*h).len = need;
    true
}

/// Fork support: the large lock and the arena lock are held across fork.
pub(crate) fn lock_for_fork() {
    LOCK.acquire();
    arena::lock_for_fork();
}

pub(crate) fn unlock_after_fork() {
    arena::unlock_after_fork();
    LOCK.force_unlock();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fits_the_first_page() {
        assert!(core::mem::size_of::<PageChunk>() <= PAGE);
        assert!(core::mem::size_of::<Header>() <= HEADER);
        const { assert!(RUN_MAX_CHUNKS < arena::ARENA_CHUNKS) };
    }

    #[test]
    fn bitmaps_find_first_fit_runs() {
        let mut w = [0u64; WORDS];
        w[0] = 0b1011; // pages 0, 1, 3 used
        assert_eq!(find_free(&w, 1, 1), Some(2));
        assert_eq!(find_free(&w, 2, 1), Some(4));
        assert_eq!(find_free(&w, 2, 8), Some(8));
        assert_eq!(find_free(&w, 508, 1), Some(4));
        assert_eq!(find_free(&w, 509, 1), None);
        assert_eq!(find_free(&w, 256, 256), Some(256));
        assert_eq!(find_free(&w, 257, 256), None);
        assert_eq!(longest_free(&w), 508);
        w[7] = 1 << 63;
        assert_eq!(find_free(&w, 508, 1), None);
        assert_eq!(longest_free(&w), 507);
        let mut runs = [(0, 0); 4];
        let mut k = 0;
        for_each_run(&w, |s, n| {
            runs[k] = (s, n);
            k += 1;
        });
        assert_eq!(&runs[..k], &[(0, 2), (3, 1), (511, 1)]);
        let b = Bits([const { AtomicU64::new(0) }; WORDS]);
        b.update(60, 70, true);
        assert_eq!(count_in(&b.words(), 0, PAGES), 70);
        assert!(b.get(60) && b.get(129) && !b.get(59) && !b.get(130));
        b.update(64, 64, false);
        assert_eq!(b.words()[1], 0);
        assert_eq!(count_in(&b.words(), 0, PAGES), 6);
        assert!(is_empty(&[1, 0, 0, 0, 0, 0, 0, 0]));
    }

    /// Every shape: where it lives, that it is found again, usable and freed.
    #[test]
    fn shapes_are_placed_found_and_freed() {
        let cases: [(usize, usize, Chunk); 7] = [
            (100_000, 16, Chunk::LargePages),
            (1 << 20, 1 << 20, Chunk::LargePages),
            (70_000, 256 << 10, Chunk::LargePages),
            (4 << 20, 16, Chunk::Large),
            (40 << 20, 4096, Chunk::Large),
            (300_000, 2 << 20, Chunk::LargeAligned),
            (5 << 20, 8 << 20, Chunk::LargeAligned),
        ];
        for (size, align, want) in cases {
            let p = alloc(size, align, true);
            assert!(!p.is_null(), "{size} {align}");
            assert_eq!(p as usize % align, 0);
            let kind = segmap::lookup(p);
            assert_eq!(kind, want, "{size} {align}");
            assert!(owns(p, kind));
            // SAFETY: p is a live zeroed block of `size` bytes.
            unsafe {
                let usable = usable_size(p, kind);
                assert!(usable >= size);
                assert_eq!(*p.add(size - 1), 0);
                *p.add(usable - 1) = 1;
                // Its last byte's chunk is hakmem's too.
                assert_ne!(segmap::lookup(p.add(usable - 1)), Chunk::Foreign);
                if size > CHUNK {
                    assert_eq!(segmap::lookup(p.add(CHUNK)), Chunk::LargeTail);
                }
                free(p, kind);
            }
            assert!(!crate::raw::owns(p));
        }
    }

    #[test]
    fn page_blocks_share_chunks() {
        let mut ps = [null_mut(); 100];
        for p in ps.iter_mut() {
            *p = alloc(100 << 10, 16, false);
            assert_eq!(segmap::lookup(*p), Chunk::LargePages);
        }
        let mut chunks: [usize; 100] = ps.map(|p| segmap::chunk_base(p));
        chunks.sort_unstable();
        let distinct = 1 + chunks.windows(2).filter(|w| w[0] != w[1]).count();
        // 20 per chunk; other tests may hold pages of the first one.
        assert!(distinct <= 7, "{distinct} chunks for 100 blocks of 100 KiB");
        for p in ps {
            // SAFETY: each block is live and freed once.
            unsafe { free(p, Chunk::LargePages) };
        }
    }

    #[test]
    fn resizing_in_place_keeps_the_block() {
        for (size, grown) in [(100_000, 300_000), (3 << 20, 6 << 20), (40 << 20, 44 << 20)] {
            let p = alloc(size, 16, false);
            let kind = segmap::lookup(p);
            // SAFETY: p is live; sizes stay within what usable_size reports.
            unsafe {
                *p = 7;
                if resize_in_place(p, kind, grown) {
                    assert!(usable_size(p, kind) >= grown);
                    *p.add(grown - 1) = 8;
                }
                assert!(resize_in_place(p, kind, size / 4 + 1));
                assert!(usable_size(p, kind) > size / 4);
                assert_eq!(*p, 7);
                free(p, kind);
            }
        }
    }

    #[test]
    fn impossible_sizes_return_null() {
        assert!(alloc(usize::MAX - 10, 16, false).is_null());
        assert!(alloc(isize::MAX as usize, 16, false).is_null());
        assert!(alloc(usize::MAX / 2, 8 << 20, false).is_null());
        assert!(alloc(1 << 48, 16, false).is_null());
    }
}
