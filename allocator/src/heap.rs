//! Thread heaps: the lock-free, atomic-free fast path for tiny to medium blocks.
//!
//! Each thread that allocates gets a heap (through the TLS slot in `tls`). A
//! heap owns slabs: per class a current slab to allocate from, a list of
//! partial slabs, and a small cache of empty slabs.
//!
//! Invariants:
//! - The fast paths touch only the current slab's free list (alloc) and the
//!   freed block's slab (free, when the caller owns it): no lock and no atomic
//!   read-modify-write. Every slow path of the owner runs under the heap's
//!   `lock` (which the owner usually enters without an atomic: `OwnerLock`);
//!   so does everything another thread does to the heap (the release thread,
//!   frees into an orphan heap), so the lists, spares, the empty cache, slab
//!   states and `rfree` are only ever touched under it.
//! - Other threads never touch a slab's free list. A remote free pushes to the
//!   owner's inbox; the release thread may park inbox blocks on a `FULL`
//!   slab's `rfree` (the owner's fast paths never touch a `FULL` slab's free
//!   list for allocation) and hand the slab back to the pool once all of its
//!   blocks are parked.
//! - `cur[c]` is never null: a heap starts with every class on `EMPTY_SLAB`,
//!   whose free list is empty, so the fast path needs no null check.
//! - A slab on the partial list has free blocks or uncarved space; a `FULL` slab
//!   is on no list, and goes back to the partial list once an eighth of its
//!   blocks are free (`Slab::mark_full`); until then its frees only link blocks.
//! - Life cycle: a heap is *attached* (one thread owns it) or *orphan* (its
//!   thread exited, died, or is a fork parent's other thread). An orphan heap
//!   keeps only slabs with live blocks; frees into it are done directly under
//!   its lock and return each slab as it empties. Heaps are never unmapped: an
//!   orphan waits on the idle list and the next new thread adopts it, so 10,000
//!   short-lived threads need one heap each at most at a time.

use crate::lock::{Held, OwnerLock, Revoke, SpinLock};
use crate::remote::{Block, Inbox};
use crate::segmap::Chunk;
use crate::size_class::{CLASS_SIZE, NUM_CLASSES};
use crate::superslab::{self, state, Kind, Slab, EMPTY_SLAB};
use crate::{check, hardened, init, list, os, reclaim, release, tls};
use core::ptr::{self, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

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
    /// Serialises the owner's slow paths with other threads' work on the heap
    /// (the owner usually enters without an atomic: see `OwnerLock`).
    lock: OwnerLock,
    /// The owner's slow paths so far; the release thread calls a heap idle
    /// when this has not moved for `release::IDLE_MS`.
    slow_paths: AtomicU32,
    /// Release thread's view (under the lock): `slow_paths` when last seen
    /// moving, when that was, and when the owner's thread was last looked for.
    seen_slow_paths: u32,
    seen_at: u64,
    tid_checked_at: u64,
    /// The owner's kernel thread id.
    tid: i32,
    /// Attached after the thread's own exit hook ran (an allocating TLS
    /// destructor of another library): reclaimed as soon as the thread is gone.
    exiting: bool,
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
        self.lock = OwnerLock::new();
        self.slow_paths = AtomicU32::new(0);
        self.seen_slow_paths = 0;
        self.seen_at = 0;
        self.tid_checked_at = 0;
        self.tid = 0;
        self.exiting = false;
        self.inbox = Inbox::new();
    }
}

/// A held heap lock. Made from a raw pointer, not a reference, so that the
/// heap can be used through `&mut` while it is held (heaps are never freed,
/// so the lock outlives the guard).
type Locked = Held<'static>;

/// The calling thread's own heap (`tls::get`), locked by its owner.
unsafe fn lock_own(h: *mut Heap) -> Locked {
    (*ptr::addr_of!((*h).lock)).lock_as_owner()
}

/// A heap with no owner: an orphan (the caller checks under the lock that it
/// still is), one being attached, or the caller's own heap being detached.
unsafe fn lock_unowned(h: *mut Heap) -> Locked {
    (*ptr::addr_of!((*h).lock)).lock_spin()
}

/// Any heap, inside a revoke window.
unsafe fn lock_revoked(h: *mut Heap, r: &Revoke) -> Locked {
    (*ptr::addr_of!((*h).lock)).lock_revoked(r)
}

unsafe fn try_lock_revoked(h: *mut Heap, r: &Revoke) -> Option<Locked> {
    (*ptr::addr_of!((*h).lock)).try_lock_revoked(r)
}

#[inline(always)]
unsafe fn used(s: *mut Slab) -> u32 {
    (*s).used.load(Ordering::Relaxed)
}

/// Allocates a block of `class` for a request of `size` bytes (fast path;
/// only the slow path uses `size`, which the caller has in a register).
#[inline(always)]
pub(crate) unsafe fn alloc(class: usize, size: usize) -> *mut u8 {
    let b = alloc_fast(class);
    if !b.is_null() {
        return b;
    }
    alloc_slow(class, size, false)
}

/// The fast path alone: a block of `class` from the current slab's free
/// list, or null when the slow path is due.
#[inline(always)]
pub(crate) unsafe fn alloc_fast(class: usize) -> *mut u8 {
    let heap = tls::get();
    if heap.is_null() {
        return null_mut();
    }
    let s = *(*heap).cur.get_unchecked(class);
    let b = (*s).free;
    if b.is_null() {
        return null_mut();
    }
    (*s).free = (*b).next;
    (*b).mark_used();
    (*s).used.store(used(s) + 1, Ordering::Relaxed);
    observe!(heap, alloc_fast);
    b.cast()
}

/// Allocates a zeroed block of `class`.
pub(crate) unsafe fn alloc_zeroed(class: usize, size: usize) -> *mut u8 {
    let heap = tls::get();
    if !heap.is_null() {
        let s = (*heap).cur[class];
        if !(*s).free.is_null() {
            let b = pop(s);
            ptr::write_bytes(b, 0, size);
            observe!(heap, alloc_fast);
            return b;
        }
    }
    alloc_slow(class, size, true)
}

/// Frees a block of a superslab (fast path); `chunk` is its chunk map entry.
#[inline(always)]
pub(crate) unsafe fn free(p: *mut u8, chunk: Chunk) {
    let s = superslab::slab_at(p, chunk);
    // Also rejects pointers into the header slab, which is always FREE.
    if check::CHECKS && !(*s).is_block(p) {
        return check::reject("free(): invalid pointer or double free", p);
    }
    let b = p.cast::<Block>();
    if !(*b).mark_free() {
        return check::reject("free(): double free", p);
    }
    let heap = tls::get();
    let owner = (*s).owner.load(Ordering::Relaxed);
    if owner == heap {
        observe!(heap, free_local);
        free_local(heap, s, b);
    } else {
        // Counted here, once: `free_remote` and `free_orphan` may pass the
        // block on (to the slab's new owner, or locally to an adopted slab).
        #[cfg(feature = "observe")]
        if heap.is_null() {
            // A thread that never allocated has no cells of its own.
            crate::stats::FREE_REMOTE_NO_HEAP.fetch_add(1, Ordering::Relaxed);
        } else {
            observe!(heap, free_remote);
        }
        free_remote(heap, owner, s, b);
    }
}

/// A free of another heap's block (already counted by `free`).
#[inline(always)]
unsafe fn free_remote(heap: *mut Heap, owner: *mut Heap, s: *mut Slab, b: *mut Block) {
    if (*owner).inbox.is_orphan() {
        free_orphan(heap, owner, s, b);
    } else {
        (*owner).inbox.push(b);
    }
}

#[inline(always)]
unsafe fn free_local(heap: *mut Heap, s: *mut Slab, b: *mut Block) {
    // No `used == 0` test here: the block's tag already caught a double free.
    if push_free(s, b) {
        free_slow(heap, s);
    }
}

/// Links `b` onto its slab's free list (the owner, or under the heap lock).
/// True when the slab's slow path is due: it became empty, or it was FULL
/// and enough of its blocks are free again (`Slab::mark_full`).
#[inline(always)]
unsafe fn push_free(s: *mut Slab, b: *mut Block) -> bool {
    let head = (*s).free;
    let n = used(s);
    (*b).next = head;
    (*s).free = b;
    // Release: the release thread reads `used` to decide that a FULL slab has
    // no live block left; the link and the list head must be visible first.
    (*s).used.store(n - 1, Ordering::Release);
    n == 1 || n - 1 == (*s).unfull_at
}

#[cold]
#[inline(never)]
unsafe fn free_slow(heap: *mut Heap, s: *mut Slab) {
    // A malloc/free ping-pong empties the current slab on every free: it
    // stays current, and that needs no lock. (Only the owner changes the
    // state of its current slab, and the release thread never touches it.)
    if (*s).state == state::CURRENT
        && (used(s) != 0 || release::keep_empty_current(units((*s).kind), (*heap).shrinking()))
    {
        return;
    }
    let _l = lock_own(heap);
    // The release thread may have handed the slab back meanwhile (all its
    // other blocks were parked): then it is no longer ours to touch.
    if (*s).owner.load(Ordering::Relaxed) == heap {
        (*heap).note_slow_path();
        (*heap).free_slow_locked(s);
    }
}

/// A free into a heap no thread owns. The freeing thread adopts the whole
/// slab if it is FULL, so that its next frees of the slab's blocks are local
/// (a new thread taking over an exited one's data frees them all); otherwise
/// the block is freed under the orphan's lock.
#[cold]
#[inline(never)]
unsafe fn free_orphan(heap: *mut Heap, owner: *mut Heap, s: *mut Slab, b: *mut Block) {
    let l = lock_unowned(owner);
    let now = (*s).owner.load(Ordering::Relaxed);
    if now != owner {
        // Another thread adopted the slab meanwhile.
        drop(l);
        if now == heap {
            free_local(heap, s, b);
        } else {
            free_remote(heap, now, s, b);
        }
        return;
    }
    if !(*owner).inbox.is_orphan() {
        // A new thread adopted the whole heap meanwhile: it drains its inbox.
        drop(l);
        (*owner).inbox.push(b);
        return;
    }
    // Only a FULL slab moves: one with free blocks stays, so that the thread
    // that adopts the whole orphan allocates from it (moving those too
    // quadrupled the peak RSS of the thread-churn stress benchmark).
    if heap.is_null() || (*s).state != state::FULL {
        (*owner).give_back(s, b);
        return;
    }
    (*owner).disown(s, heap);
    drop(l);
    {
        let _m = lock_own(heap);
        (*heap).adopt(s);
    }
    free_local(heap, s, b);
}

#[cold]
#[inline(never)]
unsafe fn alloc_slow(class: usize, size: usize, zero: bool) -> *mut u8 {
    let mut heap = tls::get();
    if heap.is_null() {
        // The hardened profile is chosen at initialisation; its threads
        // never get a heap, so all their requests come this way.
        init::ensure();
        if hardened::on() {
            return hardened::alloc(size, 1);
        }
        heap = attach();
        if heap.is_null() {
            return null_mut();
        }
    }
    observe!(heap, alloc_slow);
    let l = lock_own(heap);
    (*heap).note_slow_path();
    let Fresh(b, dirty) = (*heap).refill(class, zero);
    let pass_due = (*heap).pass_due();
    drop(l);
    if zero && dirty && !b.is_null() {
        ptr::write_bytes(b, 0, CLASS_SIZE[class] as usize);
    }
    if pass_due {
        // No release thread runs (a single-threaded process, or a fork
        // child): this thread does its work now and then, outside its lock.
        reclaim::pass_from_slow_path();
    }
    b
}

impl Heap {
    fn note_slow_path(&self) {
        let n = self.slow_paths.load(Ordering::Relaxed);
        self.slow_paths.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Finds a block for `class` once the current slab's free list is empty.
    /// Returns the block and whether it may hold old data.
    unsafe fn refill(&mut self, class: usize, zero: bool) -> Fresh {
        self.refills = self.refills.wrapping_add(1);
        if self.refills.is_multiple_of(release::DECAY_CHECK_EVERY) {
            self.decay_cache();
        }
        // Blocks other threads gave back come before fresh memory.
        if !self.inbox.is_empty() {
            self.drain_inbox();
        }
        let s = self.cur[class];
        if !(*s).free.is_null() {
            return Fresh(pop(s), true);
        }
        if let Some(b) = carve(s, zero) {
            return b;
        }
        if s != EMPTY_SLAB.get() {
            (*s).mark_full();
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
            (*p).mark_full();
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

    /// Whether this thread should run the release thread's pass itself.
    fn pass_due(&self) -> bool {
        self.refills.is_multiple_of(release::DECAY_CHECK_EVERY) && !reclaim::running()
    }

    /// The owner's slow path for a `FULL` slab with enough free blocks
    /// again, or a slab that has just become empty.
    unsafe fn free_slow_locked(&mut self, s: *mut Slab) {
        let class = (*s).class as usize;
        if (*s).state == state::FULL {
            self.unpark(s);
            (*s).state = state::PARTIAL;
            (*s).unfull_at = u32::MAX;
            self.push_partial(class, s);
        }
        if used(s) != 0 {
            return;
        }
        match (*s).state {
            state::PARTIAL => self.unlink_partial(class, s),
            state::CURRENT => {
                let u = units((*s).kind);
                if !self.is_orphan() && release::keep_empty_current(u, self.shrinking()) {
                    return;
                }
                self.cur[class] = EMPTY_SLAB.get();
            }
            _ => return,
        }
        self.empty_slab(class, s);
    }

    /// An empty slab leaves its class: the class's spare, the cache, or the pool.
    unsafe fn empty_slab(&mut self, class: usize, s: *mut Slab) {
        if self.is_orphan() {
            superslab::return_to_pool(s);
        } else if self.spare[class].is_null() && release::keep_spare(units((*s).kind)) {
            // Each class keeps its last empty slab as a spare, so a class
            // hovering at a slab boundary does not thrash.
            (*s).state = state::CACHED;
            self.spare[class] = s;
        } else {
            self.retire(s);
        }
    }

    fn is_orphan(&self) -> bool {
        self.inbox.is_orphan()
    }

    /// Retiring more than the cache target without taking a slab back.
    fn shrinking(&self) -> bool {
        self.retired_since_take > release::heap_cache_target()
    }

    /// Gives a parked block list (`rfree`, see `park`) back to the slab's free list.
    unsafe fn unpark(&mut self, s: *mut Slab) {
        let mut b = (*s).rfree;
        while !b.is_null() {
            let next = (*b).next;
            (*b).next = (*s).free;
            (*s).free = b;
            b = next;
        }
        (*s).used.store(used(s) - (*s).rcount, Ordering::Relaxed);
        (*s).rfree = null_mut();
        (*s).rcount = 0;
    }

    /// Hands a slab with live blocks to `to` (under this orphan heap's lock):
    /// off this heap's lists, parked blocks back on its free list. Until `to`
    /// adopts it, it is PARTIAL and on no list, so the release thread leaves
    /// it alone.
    unsafe fn disown(&mut self, s: *mut Slab, to: *mut Heap) {
        let class = (*s).class as usize;
        match (*s).state {
            state::PARTIAL => self.unlink_partial(class, s),
            state::CURRENT => self.cur[class] = EMPTY_SLAB.get(),
            _ => {}
        }
        self.unpark(s);
        (*s).state = state::PARTIAL;
        (*s).unfull_at = u32::MAX;
        (*s).owner.store(to, Ordering::Release);
    }

    /// Takes in a slab `disown` handed over (under this heap's lock).
    unsafe fn adopt(&mut self, s: *mut Slab) {
        if (*s).free.is_null() && (*s).carve.load(Ordering::Relaxed) >= (*s).carve_end {
            (*s).mark_full();
        } else {
            self.push_partial((*s).class as usize, s);
        }
    }

    /// Frees a block of one of this heap's slabs under the lock (a drained
    /// inbox block, or a free into an orphan heap). Its tag is already set.
    unsafe fn give_back(&mut self, s: *mut Slab, b: *mut Block) {
        if check::CHECKS && used(s) == 0 {
            check::fatal("free(): double free", b.cast());
        }
        if push_free(s, b) {
            self.free_slow_locked(s);
        }
    }

    /// Frees every block other threads pushed into this heap's inbox.
    unsafe fn drain_inbox(&mut self) {
        let mut b = self.inbox.take_all();
        while !b.is_null() {
            let next = (*b).next;
            let s = superslab::slab_of(b.cast());
            if !self.forward(s, b) {
                self.give_back(s, b);
            }
            b = next;
        }
    }

    /// An inbox block whose slab another heap adopted while the block
    /// waited (this heap was an orphan then) goes on to that heap's inbox.
    unsafe fn forward(&self, s: *mut Slab, b: *mut Block) -> bool {
        let o = (*s).owner.load(Ordering::Acquire);
        if ptr::eq(o, self) {
            return false;
        }
        (*o).inbox.push(b);
        true
    }

    unsafe fn push_partial(&mut self, class: usize, s: *mut Slab) {
        list::push_front(&mut self.partial[class], s, Slab::links);
    }

    unsafe fn unlink_partial(&mut self, class: usize, s: *mut Slab) {
        list::unlink(&mut self.partial[class], s, Slab::links);
    }

    /// An empty slab goes to the heap's cache or the pool, and the cache is
    /// trimmed to what the release policy allows now.
    unsafe fn retire(&mut self, s: *mut Slab) {
        let u = units((*s).kind);
        let was_shrinking = self.shrinking();
        self.retired_since_take = self.retired_since_take.saturating_add(u);
        // A heap that retired more than its cache can hold without taking a
        // slab back is shrinking: its cache settles at the target at once.
        let limit = if self.retired_since_take > release::heap_cache_cap() {
            release::heap_cache_target()
        } else {
            release::heap_cache_cap()
        };
        if self.empty_units + u <= limit {
            (*s).state = state::CACHED;
            (*s).next = self.empty[(*s).kind as usize];
            self.empty[(*s).kind as usize] = s;
            self.empty_units += u;
        } else {
            superslab::return_to_pool(s);
        }
        while self.empty_units > limit {
            self.release_cached();
        }
        if !was_shrinking && self.shrinking() {
            self.retire_empty_current();
        }
    }

    /// A shrinking heap lets go of its empty current slabs too, so a thread
    /// that freed everything and went idle does not sit on one per class.
    unsafe fn retire_empty_current(&mut self) {
        for c in 0..NUM_CLASSES {
            let s = self.cur[c];
            if s != EMPTY_SLAB.get() && used(s) == 0 {
                self.cur[c] = EMPTY_SLAB.get();
                self.empty_slab(c, s);
            }
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
        superslab::return_to_pool(s);
        units(k)
    }

    unsafe fn release_spares(&mut self) {
        for c in 0..NUM_CLASSES {
            let spare = self.spare[c];
            if !spare.is_null() {
                self.spare[c] = null_mut();
                superslab::return_to_pool(spare);
            }
        }
    }

    /// Gives back every spare and cached slab (the owner need not be stopped:
    /// its fast paths never touch them).
    unsafe fn release_spares_and_cache(&mut self) {
        self.release_spares();
        self.release_cache();
    }

    /// Gives back every cached empty slab.
    unsafe fn release_cache(&mut self) {
        while self.empty_units > 0 {
            self.release_cached();
        }
    }

    /// The heap loses its thread: everything that can go goes, and the rest
    /// waits for frees, which come directly from now on.
    unsafe fn make_orphan(&mut self) {
        self.inbox.set_orphan(true);
        self.trim_own();
        self.tid = 0;
        if self.exiting {
            self.exiting = false;
            EXITING.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Parks the inbox's blocks of `FULL` slabs on their slab (`rfree`), and
    /// hands back each slab whose blocks are now all parked; blocks of other
    /// slabs go back to the inbox for the owner. For an idle owner, whose
    /// inbox nobody else drains.
    unsafe fn park_inbox(&mut self) {
        let mut b = self.inbox.take_all();
        let (mut first, mut last): (*mut Block, *mut Block) = (null_mut(), null_mut());
        while !b.is_null() {
            let next = (*b).next;
            let s = superslab::slab_of(b.cast());
            if self.forward(s, b) {
                b = next;
                continue;
            }
            if (*s).state == state::FULL {
                (*b).next = (*s).rfree;
                (*s).rfree = b;
                (*s).rcount += 1;
                // Acquire: pairs with the owner's release store in `free_local`.
                if (*s).rcount == (*s).used.load(Ordering::Acquire) {
                    superslab::return_to_pool(s);
                }
            } else {
                (*b).next = first;
                if first.is_null() {
                    last = b;
                }
                first = b;
            }
            b = next;
        }
        if !first.is_null() {
            self.inbox.push_chain(first, last);
        }
    }

    /// Gives back every empty slab, current ones too: only for the calling
    /// thread's own heap, or one no thread owns.
    unsafe fn trim_own(&mut self) {
        self.drain_inbox();
        for c in 0..NUM_CLASSES {
            let s = self.cur[c];
            if s != EMPTY_SLAB.get() && used(s) == 0 {
                self.cur[c] = EMPTY_SLAB.get();
                superslab::return_to_pool(s);
            }
        }
        self.release_spares_and_cache();
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
    (*b).mark_used();
    (*s).used.store(used(s) + 1, Ordering::Relaxed);
    b.cast()
}

/// Carves fresh blocks from the slab's never-used space: one straight away, and
/// a batch of up to a page (at most `CARVE_MAX` blocks) onto the free list.
unsafe fn carve(s: *mut Slab, zero: bool) -> Option<Fresh> {
    let bs = (*s).block_size as usize;
    let first = (*s).carve.load(Ordering::Relaxed);
    if first >= (*s).carve_end {
        return None;
    }
    (*s).used.store(used(s) + 1, Ordering::Relaxed);
    if zero && first >= (*s).dirty {
        // Hand out one untouched block: its pages read as zero.
        (*s).carve.store(first.add(bs), Ordering::Relaxed);
        (*s).dirty = first.add(bs);
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
    (*s).carve.store(end, Ordering::Relaxed);
    (*first.cast::<Block>()).mark_used();
    let dirty = first < (*s).dirty;
    (*s).dirty = (*s).dirty.max(end);
    Some(Fresh(first, dirty))
}

struct Registry {
    idle: *mut Heap,
    arena: *mut u8,
    arena_left: usize,
}

// SAFETY: the raw pointers are only used under REGISTRY's lock.
unsafe impl Send for Registry {}

/// Lock order: REGISTRY, then heap locks, then the pool's and large cache's.
/// Nobody takes REGISTRY while holding a heap lock.
static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry {
    idle: null_mut(),
    arena: null_mut(),
    arena_left: 0,
});

/// Every heap ever made (append-only, lock-free reads).
static ALL_HEAPS: AtomicPtr<Heap> = AtomicPtr::new(null_mut());

/// Heaps attached by a thread after its exit hook ran (see `Heap::exiting`).
static EXITING: AtomicU32 = AtomicU32::new(0);

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
    } else if let Some(x) = exited_heap() {
        h = x;
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
    {
        let _l = lock_unowned(h);
        (*h).inbox.set_orphan(false);
        (*h).tid = os::gettid();
        (*h).exiting = init::thread_has_exited();
        if (*h).exiting {
            EXITING.fetch_add(1, Ordering::Relaxed);
        }
    }
    tls::set(h);
    init::register_thread_exit(h);
    reclaim::heap_attached();
    h
}

/// A heap attached after its thread's exit hook whose thread is gone now,
/// made an orphan for adoption (under the registry lock). Without this, a
/// thread pool whose TLS destructors allocate in glibc's last pass would
/// strand one heap per thread until the release thread's next pass.
unsafe fn exited_heap() -> Option<*mut Heap> {
    if EXITING.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let mut found = None;
    let r = Revoke::begin();
    each_heap(|h| {
        if found.is_some() {
            return;
        }
        // SAFETY: heaps are never freed; the heap is changed under its lock.
        unsafe {
            if let Some(_l) = try_lock_revoked(h, &r) {
                if (*h).exiting && !os::thread_alive((*h).tid) {
                    (*h).make_orphan();
                    reclaim::heap_detached();
                    found = Some(h);
                }
            }
        }
    });
    found
}

/// Thread exit: hands the heap back (the thread-exit hook calls this).
pub(crate) unsafe fn detach(h: *mut Heap) {
    tls::set(null_mut());
    if h.is_null() {
        return;
    }
    {
        // The spin lock, not the owner's entry: frees into the orphan it
        // becomes take the spin lock alone.
        let _l = lock_unowned(h);
        // Its current slabs and class spares stay (not its cache) for
        // the next thread to adopt the heap (thread pools re-create threads
        // all the time, and each exit would otherwise decommit what the next
        // thread faults in again); the release thread gives the rest back
        // once the heap has waited on the idle list for IDLE_MS.
        (*h).inbox.set_orphan(true);
        (*h).drain_inbox();
        (*h).release_cache();
    }
    to_idle_list(h);
}

unsafe fn to_idle_list(h: *mut Heap) {
    reclaim::heap_detached();
    let mut reg = REGISTRY.lock();
    (*h).next_idle = reg.idle;
    reg.idle = h;
}

/// Visits every heap ever made.
fn each_heap(mut f: impl FnMut(*mut Heap)) {
    let mut h = ALL_HEAPS.load(Ordering::Acquire);
    while !h.is_null() {
        f(h);
        // SAFETY: heaps are never freed; the registry only appends.
        h = unsafe { (*h).next_all };
    }
}

/// One pass of the release thread over every heap (also run by a thread's
/// own slow path when no release thread runs). `all`: treat every heap as
/// idle (`malloc_trim`). Heaps whose lock is busy are skipped until next time.
pub(crate) fn reclaim_pass(now: u64, all: bool) {
    let me = tls::get();
    let r = Revoke::begin();
    each_heap(|h| {
        // SAFETY: heaps are never freed; everything below runs under the
        // heap's lock, as the owner's slow paths do.
        unsafe {
            let Some(l) = try_lock_revoked(h, &r) else {
                return;
            };
            let hp = &mut *h;
            let n = hp.slow_paths.load(Ordering::Relaxed);
            if n != hp.seen_slow_paths || hp.seen_at == 0 {
                hp.seen_slow_paths = n;
                hp.seen_at = now;
            }
            let idle = all || now.saturating_sub(hp.seen_at) >= release::IDLE_MS;
            if hp.is_orphan() {
                // Blocks pushed just before the heap lost its thread; and once
                // no thread adopted it for a while, its empty slabs.
                if idle {
                    hp.make_orphan();
                } else {
                    hp.drain_inbox();
                }
                return;
            }
            if h == me {
                if all {
                    hp.trim_own();
                }
                return;
            }
            if !(idle || hp.exiting) {
                return;
            }
            if hp.exiting || now.saturating_sub(hp.tid_checked_at) >= release::IDLE_MS {
                hp.tid_checked_at = now;
                if !os::thread_alive(hp.tid) {
                    // Its thread is gone without handing it back (an exit
                    // hook that could not run, or a late TLS destructor).
                    hp.make_orphan();
                    drop(l);
                    to_idle_list(h);
                    return;
                }
            }
            if idle {
                hp.release_spares_and_cache();
                hp.park_inbox();
            }
        }
    });
}

/// Fork support: the registry lock, then every heap's lock, are held across
/// fork, so that no heap is in the middle of a slow path in the child.
pub(crate) fn lock_for_fork() {
    REGISTRY.acquire();
    let r = Revoke::begin();
    // SAFETY: heaps are never freed.
    each_heap(|h| unsafe {
        (*h).lock.acquire_revoked(&r);
    });
    r.keep();
}

pub(crate) fn unlock_after_fork() {
    // SAFETY: heaps are never freed.
    each_heap(|h| unsafe { (*h).lock.force_unlock() });
    Revoke::end_kept();
    REGISTRY.force_unlock();
}

/// In a fork child only the forking thread survives: every other attached
/// heap becomes an orphan, so its blocks come back as the child frees them.
pub(crate) fn orphan_other_threads_heaps() {
    let me = tls::get();
    each_heap(|h| {
        // SAFETY: heaps are never freed; the child is single-threaded now.
        unsafe {
            if h != me && !(*h).is_orphan() {
                {
                    // No other thread exists to be its owner.
                    let _l = lock_unowned(h);
                    (*h).inbox.set_orphan(true);
                    (*h).tid = 0;
                }
                to_idle_list(h);
            }
        }
    });
}

/// Gives back whatever heap memory can go now (`malloc_trim`).
pub(crate) fn trim() {
    let me = tls::get();
    if !me.is_null() {
        // SAFETY: the calling thread's own heap, under its lock.
        unsafe {
            let _l = lock_own(me);
            (*me).trim_own();
        }
    }
    reclaim_pass(os::coarse_ms(), true);
}

/// This copy of hakmem is being unloaded (`dlclose`): no thread can call it
/// again, so every heap, attached or not, gives back everything free.
pub(crate) fn orphan_all() {
    let r = Revoke::begin();
    // SAFETY: heaps are never freed; each is changed under its lock.
    each_heap(|h| unsafe {
        let _l = lock_revoked(h, &r);
        (*h).make_orphan();
    });
}

/// Visits every heap ever made (statistics).
#[cfg(feature = "observe")]
pub(crate) fn for_each(mut f: impl FnMut(&Heap)) {
    // SAFETY: heaps are never freed.
    each_heap(|h| f(unsafe { &*h }));
}
