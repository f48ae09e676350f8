//! Thread heaps: the lock-free, atomic-free fast path for tiny to medium blocks.
//!
//! Each thread that allocates gets a heap (through the TLS slot in `tls`). A
//! heap owns slabs: per class a current slab to allocate from, a list of
//! partial slabs, and a small cache of empty slabs.
//!
//! Invariants:
//! - Only the owning thread touches a heap's lists and its slabs' free lists,
//!   counters and states, so alloc and free of one's own blocks need no lock and
//!   no atomic read-modify-write. Other threads only push to the heap's inbox.
//! - `cur[c]` is never null: a heap starts with every class on `EMPTY_SLAB`,
//!   whose free list is empty, so the fast path needs no null check.
//! - A slab on the partial list has free blocks or uncarved space; a `FULL` slab
//!   is on no list and goes back to the partial list on its first local free.
//! - Heaps are never unmapped: at thread exit a heap goes to the idle list with
//!   whatever it still owns, and the next new thread adopts it, so blocks freed
//!   remotely into an exited thread's heap are reused, and 10,000 short-lived
//!   threads need one heap each at most at a time.

use crate::lock::SpinLock;
use crate::remote::{Block, Inbox};
use crate::segmap::Chunk;
use crate::size_class::{CLASS_SIZE, NUM_CLASSES};
use crate::superslab::{self, state, Kind, Slab, EMPTY_SLAB};
use crate::{check, init, os, release, tls};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, Ordering};

#[repr(C)]
pub(crate) struct Heap {
    cur: [*mut Slab; NUM_CLASSES],
    partial: [*mut Slab; NUM_CLASSES],
    /// One empty slab per class, kept for the class's next refill.
    spare: [*mut Slab; NUM_CLASSES],
    /// Empty slabs kept for reuse, per kind, linked through `next`.
    empty: [*mut Slab; 2],
    /// 64 KiB units of slabs in the empty cache.
    empty_units: u32,
    /// Slow-path refills, which pace the clock reads of the cache's decay.
    refills: u32,
    /// The fewest cache units seen since `period_start` (ms, coarse clock):
    /// units that sat unused for a whole period are surplus.
    cache_low: u32,
    period_start: u64,
    /// Units retired since the heap last took a slab: a heap that keeps
    /// retiring without taking is shrinking, not churning.
    retired_since_take: u32,
    /// Next heap in the registry of all heaps (append-only).
    next_all: *mut Heap,
    /// Next heap on the idle list.
    next_idle: *mut Heap,
    #[cfg(feature = "observe")]
    pub(crate) paths: crate::stats::PathCells,
    inbox: Inbox,
}

/// Most blocks linked into a free list by one carve.
const CARVE_MAX: usize = 64;

impl Heap {
    fn init(&mut self) {
        for c in 0..NUM_CLASSES {
            self.cur[c] = EMPTY_SLAB.get();
            self.partial[c] = null_mut();
            self.spare[c] = null_mut();
        }
        self.empty = [null_mut(); 2];
        self.empty_units = 0;
        self.refills = 0;
        self.cache_low = 0;
        self.period_start = 0;
        self.retired_since_take = 0;
        self.inbox = Inbox::new();
    }
}

/// Allocates a block of `class` (fast path).
#[inline(always)]
pub(crate) unsafe fn alloc(class: usize) -> *mut u8 {
    let heap = tls::get();
    if !heap.is_null() {
        let s = *(*heap).cur.get_unchecked(class);
        let b = (*s).free;
        if !b.is_null() {
            (*s).free = (*b).next;
            (*s).used += 1;
            observe!(heap, alloc_fast);
            return b.cast();
        }
    }
    alloc_slow(class, false)
}

/// Allocates a zeroed block of `class`.
pub(crate) unsafe fn alloc_zeroed(class: usize, size: usize) -> *mut u8 {
    let heap = tls::get();
    if !heap.is_null() {
        let s = (*heap).cur[class];
        if !(*s).free.is_null() {
            let b = pop(s);
            ptr::write_bytes(b, 0, size);
            return b;
        }
    }
    alloc_slow(class, true)
}

/// Frees a block of a superslab (fast path); `chunk` is its chunk map entry.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, chunk: Chunk) {
    let s = superslab::slab_at(p, chunk);
    if check::CHECKS {
        // Also rejects pointers into the header slab, which is always FREE.
        (*s).check_block(p);
    }
    let heap = tls::get();
    let owner = (*s).owner.load(Ordering::Relaxed);
    if owner == heap {
        free_local(heap, s, p.cast());
    } else {
        if !heap.is_null() {
            observe!(heap, free_remote);
        }
        (*owner).inbox.push(p.cast());
    }
}

#[inline(always)]
unsafe fn free_local(heap: *mut Heap, s: *mut Slab, b: *mut Block) {
    let head = (*s).free;
    if check::CHECKS && (head == b || (*s).used == 0) {
        check::fatal("free(): double free", b.cast());
    }
    (*b).next = head;
    (*s).free = b;
    (*s).used -= 1;
    observe!(heap, free_local);
    // A FULL slab had an empty free list, so one test covers both cases.
    if (*s).used == 0 || head.is_null() {
        free_slow(&mut *heap, s);
    }
}

#[cold]
#[inline(never)]
unsafe fn free_slow(heap: &mut Heap, s: *mut Slab) {
    let class = (*s).class as usize;
    if (*s).used == 0 && (*s).state != state::CURRENT {
        if (*s).state == state::PARTIAL {
            heap.unlink_partial(class, s);
        }
        // Each class keeps its last empty slab as a spare, so a class hovering
        // at a slab boundary does not thrash; any further one leaves the class.
        if heap.spare[class].is_null() && release::keep_spare(units((*s).kind)) {
            (*s).state = state::CACHED;
            heap.spare[class] = s;
        } else {
            heap.retire(s);
        }
    } else if (*s).state == state::FULL {
        (*s).state = state::PARTIAL;
        heap.push_partial(class, s);
    }
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(class: usize, zero: bool) -> *mut u8 {
    let mut heap = tls::get();
    if heap.is_null() {
        heap = attach();
        if heap.is_null() {
            return null_mut();
        }
    }
    observe!(heap, alloc_slow);
    let Fresh(b, dirty) = (*heap).refill(class, zero);
    if zero && dirty && !b.is_null() {
        ptr::write_bytes(b, 0, CLASS_SIZE[class] as usize);
    }
    b
}

impl Heap {
    /// Finds a block for `class` once the current slab's free list is empty.
    /// Returns the block and whether it may hold old data.
    unsafe fn refill(&mut self, class: usize, zero: bool) -> Fresh {
        self.refills = self.refills.wrapping_add(1);
        if self.refills.is_multiple_of(release::DECAY_CHECK_EVERY) {
            self.decay_cache();
        }
        let s = self.cur[class];
        // Blocks other threads gave back come before fresh memory.
        if !self.inbox.is_empty() {
            self.drain_inbox();
        }
        if !(*s).free.is_null() {
            return Fresh(pop(s), true);
        }
        if let Some(b) = carve(s, zero) {
            return b;
        }
        if s != EMPTY_SLAB.get() {
            (*s).state = state::FULL;
        }
        loop {
            let p = self.partial[class];
            if p.is_null() {
                break;
            }
            self.unlink_partial(class, p);
            (*p).state = state::CURRENT;
            self.cur[class] = p;
            if !(*p).free.is_null() {
                return Fresh(pop(p), true);
            }
            if let Some(b) = carve(p, zero) {
                return b;
            }
            (*p).state = state::FULL;
        }
        let kind = Kind::of_class(class);
        self.retired_since_take = 0;
        let spare = self.spare[class];
        if !spare.is_null() {
            // Still initialised for this class: its free list is intact.
            self.spare[class] = null_mut();
            (*spare).state = state::CURRENT;
            self.cur[class] = spare;
            if !(*spare).free.is_null() {
                return Fresh(pop(spare), true);
            }
            return carve(spare, zero).unwrap_or(Fresh(null_mut(), false));
        }
        let mut n = self.empty[kind as usize];
        if n.is_null() {
            n = superslab::acquire(kind);
            if n.is_null() {
                self.cur[class] = EMPTY_SLAB.get();
                return Fresh(null_mut(), false);
            }
        } else {
            self.empty[kind as usize] = (*n).next;
            self.empty_units -= units(kind);
            self.cache_low = self.cache_low.min(self.empty_units);
        }
        (*n).init(class, self);
        (*n).state = state::CURRENT;
        self.cur[class] = n;
        carve(n, zero).unwrap_or(Fresh(null_mut(), false))
    }

    /// Frees every block other threads pushed into this heap's inbox.
    unsafe fn drain_inbox(&mut self) {
        let mut b = self.inbox.take_all();
        while !b.is_null() {
            let next = (*b).next;
            free_local(self as *mut Heap, superslab::slab_of(b.cast()), b);
            b = next;
        }
    }

    unsafe fn push_partial(&mut self, class: usize, s: *mut Slab) {
        (*s).prev = null_mut();
        (*s).next = self.partial[class];
        if !(*s).next.is_null() {
            (*(*s).next).prev = s;
        }
        self.partial[class] = s;
    }

    unsafe fn unlink_partial(&mut self, class: usize, s: *mut Slab) {
        if (*s).prev.is_null() {
            self.partial[class] = (*s).next;
        } else {
            (*(*s).prev).next = (*s).next;
        }
        if !(*s).next.is_null() {
            (*(*s).next).prev = (*s).prev;
        }
    }

    /// An empty slab leaves its class: kept in the heap's cache or pooled, and
    /// the cache trimmed to what the release policy allows now.
    unsafe fn retire(&mut self, s: *mut Slab) {
        let u = units((*s).kind);
        self.retired_since_take = self.retired_since_take.saturating_add(u);
        // A heap that retired more than its cache can hold without taking a
        // slab back is shrinking: its cache settles at the target at once.
        let shrinking = self.retired_since_take > release::heap_cache_cap();
        let limit = if shrinking {
            release::heap_cache_target()
        } else {
            release::heap_cache_cap()
        };
        if self.empty_units + u <= limit {
            (*s).state = state::CACHED;
            (*s).pristine &= (*s).carve == (*s).start;
            (*s).next = self.empty[(*s).kind as usize];
            self.empty[(*s).kind as usize] = s;
            self.empty_units += u;
        } else {
            superslab::release(s);
        }
        while self.empty_units > limit {
            self.release_cached();
        }
    }

    /// Gives back the cached slabs that sat unused for a whole decay period,
    /// down to the cache target.
    unsafe fn decay_cache(&mut self) {
        let now = os::coarse_ms();
        if now.wrapping_sub(self.period_start) < release::DECAY_MS {
            return;
        }
        let mut surplus = self.cache_low.saturating_sub(release::heap_cache_target());
        while surplus > 0 && self.empty_units > 0 {
            surplus = surplus.saturating_sub(self.release_cached());
        }
        self.cache_low = self.empty_units;
        self.period_start = now;
    }

    /// Hands one cached empty slab back to the pool (medium ones first);
    /// returns its units.
    unsafe fn release_cached(&mut self) -> u32 {
        let k = if self.empty[Kind::Medium as usize].is_null() {
            Kind::Small
        } else {
            Kind::Medium
        };
        let s = self.empty[k as usize];
        self.empty[k as usize] = (*s).next;
        self.empty_units -= units(k);
        self.cache_low = self.cache_low.min(self.empty_units);
        superslab::release(s);
        units(k)
    }

    /// Gives back everything that can go: called when the owning thread exits.
    unsafe fn detach(&mut self) {
        self.drain_inbox();
        for c in 0..NUM_CLASSES {
            let s = self.cur[c];
            if s != EMPTY_SLAB.get() && (*s).used == 0 {
                superslab::release(s);
                self.cur[c] = EMPTY_SLAB.get();
            }
            let spare = self.spare[c];
            if !spare.is_null() {
                self.spare[c] = null_mut();
                superslab::release(spare);
            }
        }
        while self.empty_units > 0 {
            self.release_cached();
        }
    }
}

/// A slab's size in 64 KiB units (the release policy's currency).
fn units(k: Kind) -> u32 {
    match k {
        Kind::Small => 1,
        Kind::Medium => 8,
    }
}

/// A block and whether it may hold old data (false: untouched zero pages).
struct Fresh(*mut u8, bool);

#[inline]
unsafe fn pop(s: *mut Slab) -> *mut u8 {
    let b = (*s).free;
    (*s).free = (*b).next;
    (*s).used += 1;
    b.cast()
}

/// Carves fresh blocks from the slab's never-used space: one straight away, and
/// a batch of up to a page (at most `CARVE_MAX` blocks) onto the free list.
unsafe fn carve(s: *mut Slab, zero: bool) -> Option<Fresh> {
    let bs = (*s).block_size as usize;
    let first = (*s).carve;
    if first >= (*s).carve_end {
        return None;
    }
    (*s).used += 1;
    if zero && (*s).pristine {
        // Hand out one untouched block: its pages read as zero.
        (*s).carve = first.add(bs);
        return Some(Fresh(first, false));
    }
    let left = ((*s).carve_end as usize - first as usize) / bs;
    let end = first.add((os::PAGE / bs).clamp(1, CARVE_MAX).min(left) * bs);
    // Link blocks 1..n back to front so that they come out in address order.
    let mut head: *mut Block = null_mut();
    let mut q = end;
    while q > first.add(bs) {
        q = q.sub(bs);
        (*q.cast::<Block>()).next = head;
        head = q.cast();
    }
    (*s).free = head;
    (*s).carve = end;
    Some(Fresh(first, true))
}

struct Registry {
    idle: *mut Heap,
    arena: *mut u8,
    arena_left: usize,
}

// SAFETY: the raw pointers are only used under REGISTRY's lock.
unsafe impl Send for Registry {}

static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    idle: null_mut(),
    arena: null_mut(),
    arena_left: 0,
});

/// Every heap ever made, for statistics (append-only, lock-free reads).
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(null_mut());

const ARENA_CHUNK: usize = 256 << 10;

/// Gives this thread a heap: an idle one if any, else a new one. Null if the OS
/// refuses memory.
#[cold]
unsafe fn attach() -> *mut Heap {
    init::ensure();
    let mut reg = REGISTRY.lock();
    let mut h = reg.idle;
    if !h.is_null() {
        reg.idle = (*h).next_idle;
    } else {
        let size = core::mem::size_of::<Heap>().next_multiple_of(64);
        if reg.arena_left < size {
            let a = os::map(ARENA_CHUNK, false);
            if a.is_null() {
                return null_mut();
            }
            reg.arena = a;
            reg.arena_left = ARENA_CHUNK;
        }
        h = reg.arena.cast();
        reg.arena = reg.arena.add(size);
        reg.arena_left -= size;
        // The arena is fresh zeroed memory: a zero `Heap` is valid but for `cur`.
        (*h).init();
        let mut head = ALL_HEAPS.load(Ordering::Relaxed);
        loop {
            (*h).next_all = head;
            match ALL_HEAPS.compare_exchange_weak(head, h, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(x) => head = x,
            }
        }
    }
    drop(reg);
    tls::set(h);
    init::register_thread_exit(h);
    h
}

/// Thread exit: hands the heap back (the pthread key destructor calls this).
pub(crate) unsafe fn detach(h: *mut Heap) {
    tls::set(null_mut());
    if h.is_null() {
        return;
    }
    (*h).detach();
    let mut reg = REGISTRY.lock();
    (*h).next_idle = reg.idle;
    reg.idle = h;
}

/// Fork support: the registry lock is held across fork.
pub(crate) fn lock_for_fork() {
    REGISTRY.acquire();
}

pub(crate) fn unlock_after_fork() {
    REGISTRY.force_unlock();
}

/// Visits every heap ever made (statistics).
#[cfg(feature = "observe")]
pub(crate) fn for_each(mut f: impl FnMut(&Heap)) {
    let mut h = ALL_HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        // SAFETY: heaps are never freed; the registry only appends.
        unsafe {
            f(&*h);
            h = (*h).next_all;
        }
    }
}
