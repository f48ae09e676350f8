//! A tiny spin lock for the allocator's few shared structures.
//!
//! Invariants:
//! - Only slow paths take a lock (superslab pool, heap registry, large cache,
//!   each heap's slow-path lock); the alloc/free fast path never does.
//! - It never allocates, so it is usable inside malloc and before the C library
//!   is initialised, and `force_unlock` lets a fork child reset it.
//! - It is re-entrant for the thread that holds it. Normal code never nests a
//!   lock; the case is fork: hakmem's prepare handler holds every lock, and
//!   glibc then runs the prepare handlers registered *before* hakmem's, which
//!   may malloc and free on the same thread. Re-entry lets them, where a plain
//!   spin lock would spin for ever.
//! - `OwnerLock` (a heap's lock) is a spin lock that its owner thread usually
//!   enters without one: see there. Everybody else takes the spin lock, and
//!   waits for the owner to leave, inside a `Revoke` window; only a lock of a
//!   heap without an owner may be taken as a plain spin lock.

use crate::os;
use core::cell::UnsafeCell;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};

extern "C" {
    /// glibc (2.32 and later): non-zero while the process has never had a
    /// second thread; `pthread_create` clears it before the thread exists.
    static __libc_single_threaded: core::ffi::c_char;
}

/// Whether another thread may take a lock now. While the process is
/// single-threaded nobody else can, and no thread can appear while this one
/// is inside malloc, so callers may skip their lock (an atomic that also
/// waits for every pending store: a third of an uncontended slow path).
/// Threads made with a raw `clone`, unknown to glibc, are not supported.
#[inline(always)]
pub(crate) fn threaded() -> bool {
    // SAFETY: a plain byte of glibc's, written only by the thread that
    // creates threads (this one, while single-threaded).
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) == 0 }
}

/// One wait of a spin loop: a CPU pause at first, then the rest of the time
/// slice to whoever holds what we wait for.
fn pause(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        core::hint::spin_loop();
    } else {
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

pub(crate) struct SpinLock<T> {
    /// `pthread_self()` of the holder; 0 when free.
    holder: AtomicUsize,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `holder` (see `lock`).
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// This thread's identity: its thread pointer (never 0; what
/// `pthread_self` returns), read inline, since every slow path takes a lock.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[inline(always)]
fn me() -> usize {
    let tp: usize;
    // SAFETY: on x86-64 Linux the word at fs:0 is the thread control
    // block's pointer to itself (the TLS ABI), readable by every thread.
    unsafe {
        core::arch::asm!(
            "mov {}, qword ptr fs:[0]",
            out(reg) tp,
            options(nostack, preserves_flags, readonly)
        )
    };
    tp
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn me() -> usize {
    // SAFETY: pthread_self has no preconditions and does not allocate.
    unsafe { libc::pthread_self() as usize }
}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            holder: AtomicUsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> Guard<'_, T> {
        let taken = self.acquire();
        Guard { lock: self, taken }
    }

    /// [`lock`](Self::lock) only when `needed`: a caller that knows no other
    /// thread can exist (a single-threaded process) skips the atomic. The
    /// guard then releases nothing.
    pub(crate) fn lock_if(&self, needed: bool) -> Guard<'_, T> {
        if needed {
            self.lock()
        } else {
            Guard {
                lock: self,
                taken: false,
            }
        }
    }

    /// `acquire` without waiting: `None` if another thread holds the lock.
    pub(crate) fn try_acquire(&self) -> Option<bool> {
        let me = me();
        match self
            .holder
            .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(true),
            Err(h) if h == me => Some(false),
            Err(_) => None,
        }
    }

    /// Takes the lock without a guard (paired with `force_unlock` around
    /// fork). Returns false when this thread already held it.
    pub(crate) fn acquire(&self) -> bool {
        let me = me();
        let mut spins = 0u32;
        loop {
            match self
                .holder
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(h) if h == me => return false,
                Err(_) => {}
            }
            while self.holder.load(Ordering::Relaxed) != 0 {
                pause(&mut spins);
            }
        }
    }

    /// Releases the lock whoever holds it: after `acquire`, or in a fork child.
    pub(crate) fn force_unlock(&self) {
        self.holder.store(0, Ordering::Release);
    }
}

pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
    /// False for a re-entrant guard, which leaves the lock to its outer holder.
    taken: bool,
}

impl<T> core::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock; a re-entrant guard exists only
        // while its outer holder (fork's prepare handler) does not use the value.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        if self.taken {
            self.lock.force_unlock();
        }
    }
}

/// Threads inside a `Revoke` window: while there are any, owners take
/// their spin lock too.
static REVOKERS: AtomicU32 = AtomicU32::new(0);
/// The kernel's process-wide fence (membarrier) is registered: owners may
/// enter their lock without the spin lock.
static BIASED: AtomicBool = AtomicBool::new(false);

/// Lets owners enter their `OwnerLock` without the spin lock, if the kernel
/// offers the fence that revokers need (at start-up, and in a fork child,
/// which is single-threaded then). Without it every lock stays a spin lock.
pub(crate) fn enable_owner_bias() {
    BIASED.store(os::register_membarrier(), Ordering::Release);
}

/// A heap's lock. The owner thread takes it in every slow path, and an
/// atomic read-modify-write there waits for all of the thread's pending
/// stores: in a program whose blocks miss the cache that wait was most of
/// the slow path. So the owner enters with plain stores and loads, as in
/// Dekker's algorithm with asymmetric fences: it announces itself
/// (`owner_in`), then looks for revokers; a revoker announces itself
/// (`REVOKERS`), makes every thread of the process pass a full fence
/// (`membarrier`), takes the spin lock, then waits for `owner_in` to clear.
/// Either the owner sees the revoker and takes the spin lock, or the
/// revoker sees the owner and waits. (The owner's compiler fence is enough
/// only because the revoker's membarrier stands in for its CPU fence.)
pub(crate) struct OwnerLock {
    spin: SpinLock<()>,
    /// The owner is inside a section it entered without the spin lock.
    owner_in: AtomicBool,
}

/// A held `OwnerLock`, released on drop.
pub(crate) struct Held<'a> {
    lock: &'a OwnerLock,
    /// Entered by the owner without the spin lock.
    biased: bool,
    /// The spin lock was taken here (not re-entered).
    taken: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.biased {
            self.lock.owner_in.store(false, Ordering::Release);
        } else if self.taken {
            self.lock.spin.force_unlock();
        }
    }
}

impl OwnerLock {
    pub(crate) const fn new() -> Self {
        OwnerLock {
            spin: SpinLock::new(()),
            owner_in: AtomicBool::new(false),
        }
    }

    /// The owner thread's entry.
    #[inline]
    pub(crate) fn lock_as_owner(&self) -> Held<'_> {
        if self.owner_in.load(Ordering::Relaxed) {
            // Re-entered (only the owner sets it): the outer entry releases.
            return Held {
                lock: self,
                biased: false,
                taken: false,
            };
        }
        if BIASED.load(Ordering::Acquire) {
            self.owner_in.store(true, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            if REVOKERS.load(Ordering::Acquire) == 0 {
                return Held {
                    lock: self,
                    biased: true,
                    taken: false,
                };
            }
            self.owner_in.store(false, Ordering::Release);
        }
        self.lock_spin()
    }

    /// The spin lock alone. It excludes everybody except an owner inside a
    /// biased section, so it is only for a lock whose heap has no owner (and
    /// the caller checks that under it), or for the owner itself.
    pub(crate) fn lock_spin(&self) -> Held<'_> {
        Held {
            lock: self,
            biased: false,
            taken: self.spin.acquire(),
        }
    }

    /// Another thread's entry: waits for the spin lock and for the owner.
    pub(crate) fn lock_revoked(&self, _: &Revoke) -> Held<'_> {
        let held = self.lock_spin();
        let mut spins = 0u32;
        while self.owner_in.load(Ordering::Acquire) {
            pause(&mut spins);
        }
        held
    }

    /// Another thread's entry without waiting: `None` while the spin lock
    /// is taken or the owner is inside.
    pub(crate) fn try_lock_revoked(&self, _: &Revoke) -> Option<Held<'_>> {
        let held = Held {
            lock: self,
            biased: false,
            taken: self.spin.try_acquire()?,
        };
        if self.owner_in.load(Ordering::Acquire) {
            return None;
        }
        Some(held)
    }

    /// Fork: `lock_revoked` without a guard, released by `force_unlock`.
    pub(crate) fn acquire_revoked(&self, r: &Revoke) {
        core::mem::forget(self.lock_revoked(r));
    }

    pub(crate) fn force_unlock(&self) {
        self.spin.force_unlock();
    }
}

/// A window in which this thread may take `OwnerLock`s of heaps it does not
/// own (one membarrier per window, however many heaps it visits).
pub(crate) struct Revoke(());

impl Revoke {
    pub(crate) fn begin() -> Revoke {
        REVOKERS.fetch_add(1, Ordering::SeqCst);
        // A single-threaded process has no owner inside a section but us,
        // and we are not inside one.
        if BIASED.load(Ordering::Acquire) && threaded() && !os::membarrier() {
            // Not expected once registered. Owners keep to the spin lock
            // from now on; one that entered biased has made its `owner_in`
            // visible long before a millisecond is over (store buffers drain
            // in nanoseconds), and the revoker then waits for it.
            BIASED.store(false, Ordering::SeqCst);
            // SAFETY: usleep has no memory arguments.
            unsafe { libc::usleep(1000) };
        }
        Revoke(())
    }

    /// Fork: the window stays open across fork, in both processes, until
    /// `end_kept` there.
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }

    pub(crate) fn end_kept() {
        REVOKERS.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for Revoke {
    fn drop(&mut self) {
        Revoke::end_kept();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_serialises_increments() {
        static L: SpinLock<u64> = SpinLock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        *L.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*L.lock(), 40_000);
    }

    /// A plain (non-atomic) counter: lost increments show a broken lock.
    struct Racy(UnsafeCell<u64>);
    // SAFETY: only touched under the lock being tested.
    unsafe impl Sync for Racy {}

    impl Racy {
        fn bump(&self) {
            // SAFETY: the caller holds the lock under test; the read-pause-
            // write widens the window a broken lock would let others into.
            unsafe {
                let v = core::ptr::read_volatile(self.0.get());
                core::hint::spin_loop();
                core::ptr::write_volatile(self.0.get(), v + 1);
            }
        }
    }

    #[test]
    fn owner_entries_and_revokers_exclude_each_other() {
        static L: OwnerLock = OwnerLock::new();
        static N: Racy = Racy(UnsafeCell::new(0));
        enable_owner_bias();
        if BIASED.load(Ordering::Relaxed) {
            // Alone (but for other tests' release passes, which are short),
            // the owner enters without the spin lock.
            let start = std::time::Instant::now();
            while !L.lock_as_owner().biased {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(5),
                    "the owner never entered without the spin lock"
                );
            }
        }
        let owner = std::thread::spawn(|| {
            for _ in 0..300_000 {
                let _h = L.lock_as_owner();
                N.bump();
            }
        });
        let revokers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(|| {
                    for i in 0..3_000 {
                        let r = Revoke::begin();
                        if i % 2 == 0 {
                            let _h = L.lock_revoked(&r);
                            N.bump();
                        } else if let Some(_h) = L.try_lock_revoked(&r) {
                            N.bump();
                        } else {
                            // Counted anyway, so the total stays exact.
                            let _h = L.lock_revoked(&r);
                            N.bump();
                        }
                    }
                })
            })
            .collect();
        owner.join().unwrap();
        for r in revokers {
            r.join().unwrap();
        }
        // SAFETY: every thread that touched it has been joined.
        assert_eq!(unsafe { *N.0.get() }, 306_000);
    }

    #[test]
    fn an_owner_entry_inside_another_leaves_the_lock_to_the_outer_one() {
        static L: OwnerLock = OwnerLock::new();
        enable_owner_bias();
        let outer = L.lock_as_owner();
        drop(L.lock_as_owner());
        let other = std::thread::spawn(|| L.try_lock_revoked(&Revoke::begin()).is_none())
            .join()
            .unwrap();
        assert!(other, "the lock was free while the outer entry held it");
        drop(outer);
        let other = std::thread::spawn(|| L.try_lock_revoked(&Revoke::begin()).is_some())
            .join()
            .unwrap();
        assert!(other);
    }

    #[test]
    fn the_holder_may_take_it_again() {
        static L: SpinLock<u32> = SpinLock::new(0);
        let outer = L.lock();
        {
            let mut inner = L.lock();
            *inner += 1;
            assert_eq!(L.try_acquire(), Some(false));
        }
        // Still held by `outer`: another thread cannot take it.
        let other = std::thread::spawn(|| L.try_acquire().is_none())
            .join()
            .unwrap();
        assert!(other);
        drop(outer);
        let taken = std::thread::spawn(|| {
            let t = L.try_acquire();
            L.force_unlock();
            t
        });
        assert_eq!(taken.join().unwrap(), Some(true));
    }
}
