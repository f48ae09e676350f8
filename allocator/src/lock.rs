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

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

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
                spins += 1;
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions.
                    unsafe { libc::sched_yield() };
                }
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
