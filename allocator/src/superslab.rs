//! SuperSlabs and slabs: where tiny, small and medium blocks live.
//!
//! A superslab is a 2 MiB region aligned to 2 MiB. Its first slab holds this
//! header (the seed's "region id" is the pair superslab + slab index); the
//! others are slabs of one kind:
//! - small kind: 32 slabs of 64 KiB (classes up to 8 KiB), 31 usable;
//! - medium kind: 4 slabs of 512 KiB (classes up to 64 KiB), 3 usable.
//!
//! Invariants:
//! - `free` finds a block's slab in O(1) from the pointer alone: superslab =
//!   pointer & !(2 MiB - 1), slab = (pointer - superslab) >> slab_shift. No
//!   per-block header exists, so every block keeps the alignment of its class.
//! - A slab is either in the shared pool (`FREE`, no owner) or owned by exactly
//!   one thread heap, which alone touches its free list, counters and state. The
//!   owner changes only while the slab has no live block.
//! - The pool lock guards superslab-level fields (`free_mask`, lists, kind);
//!   slab fields are never written under it except for a slab in the pool.
//! - A slab's memory from `dirty` on has not been written since the slab was
//!   last decommitted or mapped, so it reads as zero; below `dirty` it may hold
//!   old data, whatever `carve` says (a slab re-initialised for another class
//!   restarts `carve` but keeps `dirty`). This is what `calloc` relies on.
//! - Fields that other threads read while the owner writes them (`used`,
//!   `carve`, `owner`) are atomics with plain loads and stores: no RMW.

use crate::heap::Heap;
use crate::lock::{Guard, SpinLock};
use crate::remote::Block;
use crate::segmap::{self, Chunk, CHUNK};
use crate::size_class::{is_medium, CLASS_SIZE};
use crate::{arena, large, list, os, release, stats};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering::Relaxed};

pub(crate) const SUPERSLAB: usize = CHUNK;
const MAX_SLABS: usize = 32;
const MAGIC: u64 = 0x6861_6b6d_656d_5353; // "hakmemSS"

/// Slab states, as seen by the owning heap.
pub(crate) mod state {
    /// In the shared pool.
    pub const FREE: u8 = 0;
    /// The heap's allocation slab for its class.
    pub const CURRENT: u8 = 1;
    /// Has free blocks; on the heap's partial list.
    pub const PARTIAL: u8 = 2;
    /// No free block when last looked at; on no list.
    pub const FULL: u8 = 3;
    /// Empty, kept by the heap for reuse.
    pub const CACHED: u8 = 4;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Small = 0,
    Medium = 1,
}

impl Kind {
    pub(crate) fn of_class(class: usize) -> Kind {
        if is_medium(class) {
            Kind::Medium
        } else {
            Kind::Small
        }
    }
    /// The chunk map entry of a superslab of this kind.
    fn chunk(self) -> Chunk {
        match self {
            Kind::Small => Chunk::SmallSlabs,
            Kind::Medium => Chunk::MediumSlabs,
        }
    }
    fn slab_shift(self) -> u32 {
        self.chunk().slab_shift()
    }
    fn slabs(self) -> u32 {
        (SUPERSLAB >> self.slab_shift()) as u32
    }
    /// Bits of the slabs that hold blocks (all but slab 0, the header's).
    fn usable_mask(self) -> u32 {
        (((1u64 << self.slabs()) - 1) & !1) as u32
    }
}

/// Fields read by `free` come first, so that they share one cache line.
#[repr(C, align(64))]
pub(crate) struct Slab {
    /// Free blocks, linked through their first word (owner only).
    pub(crate) free: *mut Block,
    /// Blocks handed out and not yet freed locally. Written by the owner
    /// only; the release thread reads it (see `rfree`).
    pub(crate) used: AtomicU32,
    pub(crate) block_size: u32,
    /// Next never-handed-out byte (owner writes; remote frees read it).
    pub(crate) carve: AtomicPtr<u8>,
    /// The owning heap; null while in the pool. Read by other threads' frees.
    pub(crate) owner: AtomicPtr<Heap>,
    pub(crate) start: *mut u8,
    /// Multiplier for exact division of offsets by `block_size` (checks).
    div_magic: u64,
    pub(crate) state: u8,
    pub(crate) class: u8,
    pub(crate) kind: Kind,
    /// A `FULL` slab goes back to the partial list when `used` falls to this
    /// (see `mark_full`); `u32::MAX` in every other state.
    pub(crate) unfull_at: u32,
    /// The end of the last whole block.
    pub(crate) carve_end: *mut u8,
    /// Memory from here to the slab's end reads as zero (see the invariants).
    pub(crate) dirty: *mut u8,
    /// Blocks of a `FULL` slab that the release thread took from the owner's
    /// inbox (they still count in `used`), and how many; touched only under
    /// the owning heap's lock. When `rcount == used` no block is live.
    pub(crate) rfree: *mut Block,
    pub(crate) rcount: u32,
    /// Heap list links (partial list, empty cache); in the pool, the links
    /// of the list of slabs waiting for their purge.
    pub(crate) next: *mut Slab,
    pub(crate) prev: *mut Slab,
    /// In the pool: when the slab came back with pages to purge later
    /// (`os::coarse_ms`, at least 1); 0 when none wait (under the pool lock).
    pooled_at: u64,
}

#[repr(C)]
pub(crate) struct SuperSlab {
    magic: u64,
    kind: Kind,
    /// Bit i set: slab i is in the pool.
    free_mask: u32,
    in_avail: bool,
    next: *mut SuperSlab,
    prev: *mut SuperSlab,
    /// Every mapped superslab, for `usage` (under the pool lock).
    all_next: *mut SuperSlab,
    all_prev: *mut SuperSlab,
    slabs: [Slab; MAX_SLABS],
}

impl SuperSlab {
    unsafe fn avail_links(ss: *mut SuperSlab) -> (*mut *mut SuperSlab, *mut *mut SuperSlab) {
        (&raw mut (*ss).next, &raw mut (*ss).prev)
    }

    unsafe fn all_links(ss: *mut SuperSlab) -> (*mut *mut SuperSlab, *mut *mut SuperSlab) {
        (&raw mut (*ss).all_next, &raw mut (*ss).all_prev)
    }
}

/// A slab that no heap owns and that owns no block; never written.
pub(crate) static EMPTY_SLAB: EmptySlab = EmptySlab(Slab {
    free: null_mut(),
    used: AtomicU32::new(0),
    block_size: 0,
    carve: AtomicPtr::new(null_mut()),
    carve_end: null_mut(),
    dirty: null_mut(),
    rfree: null_mut(),
    rcount: 0,
    owner: AtomicPtr::new(null_mut()),
    start: null_mut(),
    next: null_mut(),
    prev: null_mut(),
    div_magic: 0,
    state: state::CURRENT,
    class: 0,
    kind: Kind::Small,
    unfull_at: u32::MAX,
    pooled_at: 0,
});

pub(crate) struct EmptySlab(Slab);
// SAFETY: EMPTY_SLAB is never written (heaps only write slabs they own, and
// nobody owns it), so sharing it between threads is sound.
unsafe impl Sync for EmptySlab {}

impl EmptySlab {
    pub(crate) fn get(&'static self) -> *mut Slab {
        &self.0 as *const Slab as *mut Slab
    }
}

impl Slab {
    /// The heap list links (partial list).
    pub(crate) unsafe fn links(s: *mut Slab) -> (*mut *mut Slab, *mut *mut Slab) {
        (&raw mut (*s).next, &raw mut (*s).prev)
    }

    /// Prepares a slab just taken from the pool or an empty cache for `class`.
    pub(crate) fn init(&mut self, class: usize, owner: *mut Heap) {
        let bs = CLASS_SIZE[class] as usize;
        let slab_len = 1usize << self.kind.slab_shift();
        self.free = null_mut();
        self.used.store(0, Relaxed);
        self.block_size = bs as u32;
        self.class = class as u8;
        self.carve.store(self.start, Relaxed);
        self.rfree = null_mut();
        self.rcount = 0;
        self.carve_end = self.start.wrapping_add(slab_len / bs * bs);
        self.div_magic = (1u64 << 40).div_ceil(bs as u64);
        self.unfull_at = u32::MAX;
        self.next = null_mut();
        self.prev = null_mut();
        self.owner.store(owner, Relaxed);
    }

    /// Validates that `p` is a block this slab handed out (default build).
    ///
    /// A slab in the pool has `carve == start`, so every pointer into it (and
    /// into the header slab) fails the first test. The second is an exact
    /// divisibility test: with `m = ceil(2^40 / size)`, the low 40 bits of
    /// `offset * m` stay below 2^20 for multiples of `size` and reach at least
    /// 2^24 for any other offset below 2^19.
    #[inline(always)]
    /// Takes the slab off allocation: its free list is empty and nothing is
    /// left to carve. It comes back to the partial list only once an eighth
    /// of its blocks are free again: coming back at its first free made a
    /// program that frees at random all over its slabs switch slabs, and take
    /// both slow paths, every few blocks.
    pub(crate) fn mark_full(&mut self) {
        let capacity =
            ((self.carve_end as usize - self.start as usize) as u64 * self.div_magic) >> 40;
        let gap = (capacity as u32 / 8).max(1);
        self.state = state::FULL;
        self.unfull_at = self.used.load(Relaxed).saturating_sub(gap);
    }

    /// Whether `p` is the start of a block this slab has handed out (carved).
    pub(crate) fn is_block(&self, p: *const u8) -> bool {
        let off = (p as usize).wrapping_sub(self.start as usize) as u64;
        p < self.carve.load(Relaxed) as *const u8
            && (off.wrapping_mul(self.div_magic) & ((1 << 40) - 1)) < 1 << 20
    }
}

/// The slab holding `p`, which lies in a superslab whose chunk map entry is `chunk`.
#[inline(always)]
pub(crate) fn slab_at(p: *const u8, chunk: Chunk) -> *mut Slab {
    let ss = segmap::chunk_base(p) as *mut SuperSlab;
    let idx = (p as usize - ss as usize) >> chunk.slab_shift();
    // SAFETY: the chunk map said this chunk is a live superslab, whose header
    // (and so its slab array) is initialised before the map entry is set.
    unsafe { ptr::addr_of_mut!((*ss).slabs).cast::<Slab>().add(idx) }
}

/// The slab holding `p`, which must lie in a superslab.
pub(crate) fn slab_of(p: *const u8) -> *mut Slab {
    slab_at(p, segmap::lookup(p))
}

struct Pool {
    /// Superslabs with at least one free slab, per kind.
    avail: [*mut SuperSlab; 2],
    /// Empty superslabs kept mapped, linked through `next`.
    retained: *mut SuperSlab,
    retained_count: u32,
    /// Every mapped superslab, linked through `all_next`.
    all: *mut SuperSlab,
    /// Free slabs whose pages wait for `purge_pool`, newest first, linked
    /// through the slabs' heap links (a pooled slab is on no heap list).
    to_purge: *mut Slab,
}

// SAFETY: the raw pointers are only dereferenced under POOL's lock.
unsafe impl Send for Pool {}

static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    avail: [null_mut(); 2],
    retained: null_mut(),
    retained_count: 0,
    all: null_mut(),
    to_purge: null_mut(),
});

impl Pool {
    unsafe fn push_avail(&mut self, ss: *mut SuperSlab) {
        list::push_front(
            &mut self.avail[(*ss).kind as usize],
            ss,
            SuperSlab::avail_links,
        );
        (*ss).in_avail = true;
    }

    unsafe fn remove_avail(&mut self, ss: *mut SuperSlab) {
        list::unlink(
            &mut self.avail[(*ss).kind as usize],
            ss,
            SuperSlab::avail_links,
        );
        (*ss).in_avail = false;
    }

    unsafe fn link_all(&mut self, ss: *mut SuperSlab) {
        list::push_front(&mut self.all, ss, SuperSlab::all_links);
    }

    unsafe fn unlink_all(&mut self, ss: *mut SuperSlab) {
        list::unlink(&mut self.all, ss, SuperSlab::all_links);
    }

    /// Takes `s` off the purge list if it is on it.
    unsafe fn unqueue(&mut self, s: *mut Slab) {
        if (*s).pooled_at != 0 {
            list::unlink(&mut self.to_purge, s, Slab::links);
            (*s).pooled_at = 0;
        }
    }

    /// Takes every slab of `ss` off the purge list: before its slabs are
    /// formatted anew, or its chunk goes back to its arena (decommitted whole).
    unsafe fn unqueue_all(&mut self, ss: *mut SuperSlab) {
        for i in 1..(*ss).kind.slabs() as usize {
            self.unqueue(ptr::addr_of_mut!((*ss).slabs).cast::<Slab>().add(i));
        }
    }

    unsafe fn pop_retained(&mut self) -> *mut SuperSlab {
        let ss = self.retained;
        if !ss.is_null() {
            self.retained = (*ss).next;
            self.retained_count -= 1;
        }
        ss
    }
}

/// Marks slab `idx` of `ss` free again; an emptied superslab is kept
/// (retained) or handed back to its arena, as the release policy says.
unsafe fn put_back(mut pool: Guard<'_, Pool>, ss: *mut SuperSlab, idx: usize) {
    (*ss).free_mask |= 1 << idx;
    if (*ss).free_mask != (*ss).kind.usable_mask() {
        if !(*ss).in_avail {
            pool.push_avail(ss);
        }
        return;
    }
    // The superslab is empty.
    if (*ss).in_avail {
        pool.remove_avail(ss);
    }
    let lean = release::pooled_slab_purge_delay().is_some();
    let retain = release::retain_empty_superslab(pool.retained_count);
    // Its memory goes back to the OS either way under lean (a retained one's
    // slabs stay on the purge list), and when it is unmapped under any profile.
    if lean || !retain {
        stats::SUPERSLABS_RELEASED.fetch_add(1, Relaxed);
    }
    if retain {
        (*ss).next = pool.retained;
        pool.retained = ss;
        pool.retained_count += 1;
        return;
    }
    pool.unlink_all(ss);
    pool.unqueue_all(ss);
    drop(pool);
    to_arena(ss);
}

/// Lays out a superslab header for `kind`. `pristine`: its slabs read as zero.
unsafe fn format(ss: *mut SuperSlab, kind: Kind, pristine: bool) {
    let slab_len = 1usize << kind.slab_shift();
    (*ss).magic = MAGIC;
    (*ss).kind = kind;
    (*ss).free_mask = kind.usable_mask();
    (*ss).in_avail = false;
    (*ss).next = null_mut();
    (*ss).prev = null_mut();
    for i in 0..kind.slabs() as usize {
        let s = ptr::addr_of_mut!((*ss).slabs).cast::<Slab>().add(i);
        let start = (ss as *mut u8).add(i * slab_len);
        ptr::write(
            s,
            Slab {
                free: null_mut(),
                used: AtomicU32::new(0),
                block_size: 0,
                carve: AtomicPtr::new(start),
                carve_end: null_mut(),
                dirty: if pristine { start } else { start.add(slab_len) },
                rfree: null_mut(),
                rcount: 0,
                owner: AtomicPtr::new(null_mut()),
                start,
                next: null_mut(),
                prev: null_mut(),
                div_magic: 0,
                state: state::FREE,
                class: 0,
                kind,
                unfull_at: u32::MAX,
                pooled_at: 0,
            },
        );
    }
    segmap::set(ss as *const u8, kind.chunk());
}

/// Takes a chunk from an arena (trimming the large cache if none is left) and
/// formats it as a superslab, registering it in the chunk map.
fn map_superslab(kind: Kind, populate: bool) -> *mut SuperSlab {
    let mut ss = arena::alloc_run(1) as *mut SuperSlab;
    if ss.is_null() && large::trim() {
        ss = arena::alloc_run(1) as *mut SuperSlab;
    }
    if ss.is_null() {
        return ss;
    }
    if populate {
        os::populate(ss.cast(), SUPERSLAB);
    }
    // SAFETY: a fresh, exclusively owned 2 MiB chunk, large enough for the
    // header; linked under the pool lock.
    unsafe {
        format(ss, kind, true);
        POOL.lock().link_all(ss);
    }
    stats::SUPERSLABS.fetch_add(1, Relaxed);
    ss
}

/// Takes a slab of `kind` from the pool (mapping a superslab if none is free).
/// Null when the OS refuses memory. The slab is `FREE`, to be `init`ed.
pub(crate) fn acquire(kind: Kind) -> *mut Slab {
    let mut pool = POOL.lock();
    // SAFETY: superslab headers reached from the pool are live and guarded by its lock.
    unsafe {
        let mut ss = pool.avail[kind as usize];
        if ss.is_null() {
            ss = pool.pop_retained();
            if ss.is_null() {
                drop(pool);
                ss = map_superslab(kind, false);
                if ss.is_null() {
                    return null_mut();
                }
                pool = POOL.lock();
            } else if (*ss).kind != kind {
                pool.unqueue_all(ss);
                let pristine = (&(*ss).slabs)[1..(*ss).kind.slabs() as usize]
                    .iter()
                    .all(|s| s.dirty == s.start);
                format(ss, kind, pristine);
            }
            pool.push_avail(ss);
        }
        let idx = (*ss).free_mask.trailing_zeros() as usize;
        (*ss).free_mask &= !(1 << idx);
        if (*ss).free_mask == 0 {
            pool.remove_avail(ss);
        }
        let s = ptr::addr_of_mut!((*ss).slabs).cast::<Slab>().add(idx);
        // Taken again before its purge: its pages are reused as they are.
        pool.unqueue(s);
        s
    }
}

/// Hands an empty slab back to the pool; returns its superslab's chunk to its
/// arena if that empties it and the release policy says so.
///
/// # Safety
/// `s` must be owned by the caller's heap and hold no live block.
pub(crate) unsafe fn return_to_pool(s: *mut Slab) {
    let delay = release::pooled_slab_purge_delay();
    // Decommit before the slab is visible in the pool, so that nobody can
    // carve from it while its pages are being dropped.
    if delay == Some(0) {
        decommit_slab(s);
    }
    (*s).carve.store((*s).start, Relaxed);
    (*s).state = state::FREE;
    (*s).free = null_mut();
    (*s).owner.store(null_mut(), Relaxed);
    let mut pool = POOL.lock();
    if delay.is_some_and(|d| d > 0) && (*s).dirty != (*s).start {
        (*s).pooled_at = os::coarse_ms().max(1);
        list::push_front(&mut pool.to_purge, s, Slab::links);
    }
    let ss = segmap::chunk_base((*s).start) as *mut SuperSlab;
    put_back(
        pool,
        ss,
        ((*s).start as usize - ss as usize) >> (*ss).kind.slab_shift(),
    );
}

/// Decommits the pages of `s` that may hold data (a refused decommit leaves
/// the mark where it was). `s` is the caller's: owned, or held off the pool.
unsafe fn decommit_slab(s: *mut Slab) {
    let touched = ((*s).dirty as usize - (*s).start as usize).next_multiple_of(os::PAGE);
    if touched > 0 && os::decommit((*s).start, touched) {
        (*s).dirty = (*s).start;
    }
}

/// Most slabs one `purge_pool` round decommits under the pool lock.
const PURGE_BATCH: usize = 32;

/// Decommits the pooled slabs that have waited `release::POOL_PURGE_DELAY_MS`
/// at `now` (`os::coarse_ms`), or all of them (`all`, for `malloc_trim`).
/// The syscalls run under the pool lock, so nobody carves from a slab being
/// decommitted and a fork never sees one half done; batches bound the wait of
/// threads that need a slab meanwhile.
pub(crate) fn purge_pool(now: u64, all: bool) {
    loop {
        let mut pool = POOL.lock();
        let mut n = 0;
        // SAFETY: slabs on the purge list are free slabs of live superslabs,
        // guarded by the pool lock we hold.
        unsafe {
            let mut s = pool.to_purge;
            while !s.is_null() && n < PURGE_BATCH {
                let next = (*s).next;
                if all || now.saturating_sub((*s).pooled_at) >= release::POOL_PURGE_DELAY_MS {
                    pool.unqueue(s);
                    decommit_slab(s);
                    n += 1;
                }
                s = next;
            }
        }
        if n < PURGE_BATCH {
            return;
        }
    }
}

/// Hands an empty superslab's chunk back to its arena, decommitted; the
/// chunk stays hakmem's (`ArenaFree`). It must be off every pool list.
unsafe fn to_arena(ss: *mut SuperSlab) {
    (*ss).magic = 0;
    arena::release_run(ss as *mut u8, 1);
    stats::SUPERSLABS.fetch_sub(1, Relaxed);
}

/// Gives every retained empty superslab back to its arena (unload).
pub(crate) fn release_retained() {
    loop {
        let mut pool = POOL.lock();
        // SAFETY: retained superslabs are empty and ours under the pool lock;
        // once unlinked nobody else can reach them.
        unsafe {
            let ss = pool.pop_retained();
            if ss.is_null() {
                return;
            }
            pool.unlink_all(ss);
            pool.unqueue_all(ss);
            drop(pool);
            to_arena(ss);
        }
    }
}

/// Bytes of superslabs mapped, and bytes in blocks handed out from them (a
/// walk over every superslab under the pool lock; `used` is read racily, so
/// the figure is a snapshot).
pub(crate) fn usage() -> (u64, u64) {
    let pool = POOL.lock();
    let (mut mapped, mut in_use) = (0u64, 0u64);
    let mut ss = pool.all;
    // SAFETY: superslabs on `all` are mapped and formatted; the list is
    // guarded by the pool lock we hold.
    unsafe {
        while !ss.is_null() {
            mapped += SUPERSLAB as u64;
            for s in &(&(*ss).slabs)[1..(*ss).kind.slabs() as usize] {
                if s.state != state::FREE {
                    in_use += s.used.load(Relaxed) as u64 * s.block_size as u64;
                }
            }
            ss = (*ss).all_next;
        }
    }
    (mapped, in_use)
}

/// Maps one pre-faulted superslab into the pool (the prewarm box); returns
/// it, or null when the OS refused the memory.
pub(crate) fn prewarm() -> *mut u8 {
    let ss = map_superslab(Kind::Small, true);
    if ss.is_null() {
        return null_mut();
    }
    let mut pool = POOL.lock();
    // SAFETY: `ss` is fresh and only reachable from here until linked.
    unsafe { pool.push_avail(ss) };
    ss.cast()
}

/// Whether `p` is the start of a block handed out from a superslab slab.
pub(crate) fn owns_block(p: *const u8) -> bool {
    let s = slab_of(p);
    // SAFETY: `slab_of` yields a slab header inside a live superslab; the fields
    // read are plain words (a racy read only makes the answer stale). The header
    // slab is always FREE, so pointers into it are rejected.
    unsafe {
        (*s).state != state::FREE
            && p < (*s).carve.load(Relaxed) as *const u8
            && (p as usize - (*s).start as usize).is_multiple_of((*s).block_size as usize)
            && !(*(p as *const Block)).is_free()
    }
}

/// Fork support: hold the pool lock across fork so the child gets it consistent.
pub(crate) fn lock_for_fork() {
    POOL.acquire();
}

pub(crate) fn unlock_after_fork() {
    POOL.force_unlock();
}

/// Block size of the slab holding `p` (a superslab block).
pub(crate) fn block_size(p: *const u8) -> usize {
    // SAFETY: caller checked the chunk map; the slab header is live.
    unsafe { (*slab_of(p)).block_size as usize }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cover_the_superslab() {
        assert_eq!(Kind::Small.slabs(), 32);
        assert_eq!(Kind::Medium.slabs(), 4);
        assert_eq!(Kind::Small.usable_mask().count_ones(), 31);
        assert_eq!(Kind::Medium.usable_mask(), 0b1110);
        assert!(core::mem::size_of::<SuperSlab>() < 1 << Kind::Small.slab_shift());
    }

    #[test]
    fn acquired_slabs_map_back_to_themselves() {
        let s = acquire(Kind::Small);
        assert!(!s.is_null());
        // SAFETY: the slab is ours until returned to the pool; it holds no block.
        unsafe {
            (*s).init(3, null_mut());
            (*s).state = state::CURRENT;
            let p = (*s).start.add(5 * (*s).block_size as usize);
            assert_eq!(slab_of(p), s);
            assert_eq!(segmap::lookup(p), Chunk::SmallSlabs);
            assert!(!owns_block(p));
            (*s).carve.store(p.add(1), Relaxed);
            (*(p as *mut Block)).tag = 0;
            assert!(owns_block(p));
            (*s).carve.store((*s).start, Relaxed);
            assert_eq!((*s).start as usize % (1 << 16), 0);
            return_to_pool(s);
        }
    }
}
