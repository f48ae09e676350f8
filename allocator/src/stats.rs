//! Always-on counters and the `stats()` snapshot.
//!
//! Invariants:
//! - Global counters change only on slow paths (a syscall, a superslab coming or
//!   going), so their atomic adds never touch the alloc/free fast path.
//! - Per-path counters (`observe` feature) live in each thread heap and are
//!   written only by the owning thread with plain relaxed stores; a snapshot sums
//!   them without stopping anyone, so it may be a few operations stale. The
//!   one exception is a free from a thread that has no heap (it never
//!   allocated): it is counted in a global atomic, off the fast path's shape
//!   (`observe` builds only).

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub(crate) static MMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MUNMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MADVISE: AtomicU64 = AtomicU64::new(0);
pub(crate) static MREMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MPROTECT: AtomicU64 = AtomicU64::new(0);
pub(crate) static MAPPED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS_RELEASED: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static SYSCALL_FAILURES: AtomicU64 = AtomicU64::new(0);
pub(crate) static RESERVED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_CACHED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static PREWARMED: AtomicU64 = AtomicU64::new(0);

/// A snapshot of the allocator's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// `mmap` calls made.
    pub mmap: u64,
    /// `munmap` calls made.
    pub munmap: u64,
    /// `madvise` calls made.
    pub madvise: u64,
    /// `mremap` calls made.
    pub mremap: u64,
    /// `mprotect` calls made (guard pages of the hardened profile; zero
    /// under the other profiles).
    pub mprotect: u64,
    /// Bytes hakmem holds from the OS for its use: arena chunks handed out
    /// (superslabs, large blocks and the large cache, which may be partly
    /// decommitted inside), direct mappings and metadata. Free arena chunks,
    /// which are decommitted, are not counted (see `reserved_bytes`).
    pub mapped_bytes: u64,
    /// Superslabs currently mapped.
    pub superslabs: u64,
    /// Superslabs given back to the OS so far.
    pub superslabs_released: u64,
    /// Large blocks (over 64 KiB or over-aligned) currently live.
    pub large_blocks: u64,
    /// munmap / madvise / mremap calls that failed (each also reported once
    /// per kind on stderr); zero on a healthy system.
    pub syscall_failures: u64,
    /// Address space reserved for arenas (never unmapped: this is the peak).
    pub reserved_bytes: u64,
    /// Bytes of freed large blocks kept committed for reuse (the large cache),
    /// bounded by `Options::large_cache_bytes` and decaying when idle.
    pub large_cached_bytes: u64,
    /// Superslabs mapped and pre-faulted by the prewarm box: 1 once the
    /// `prewarm` option took effect (at start-up or when turned on later), else 0.
    pub prewarmed: u64,
    /// Per-path counters (feature `observe`; zero without it).
    pub paths: PathCounters,
}

impl Stats {
    /// Every syscall the allocator makes, by name, with its count.
    pub fn syscalls(&self) -> [(&'static str, u64); 5] {
        [
            ("mmap", self.mmap),
            ("munmap", self.munmap),
            ("madvise", self.madvise),
            ("mremap", self.mremap),
            ("mprotect", self.mprotect),
        ]
    }

    /// All syscalls together.
    pub fn syscalls_total(&self) -> u64 {
        self.syscalls().iter().map(|(_, n)| n).sum()
    }
}

/// A cheap snapshot of the counters (a handful of relaxed loads).
pub fn stats() -> Stats {
    Stats {
        mmap: MMAP.load(Relaxed),
        munmap: MUNMAP.load(Relaxed),
        madvise: MADVISE.load(Relaxed),
        mremap: MREMAP.load(Relaxed),
        mprotect: MPROTECT.load(Relaxed),
        mapped_bytes: MAPPED_BYTES.load(Relaxed),
        superslabs: SUPERSLABS.load(Relaxed),
        superslabs_released: SUPERSLABS_RELEASED.load(Relaxed),
        large_blocks: LARGE_LIVE.load(Relaxed),
        syscall_failures: SYSCALL_FAILURES.load(Relaxed),
        reserved_bytes: RESERVED_BYTES.load(Relaxed),
        large_cached_bytes: LARGE_CACHED_BYTES.load(Relaxed),
        prewarmed: PREWARMED.load(Relaxed),
        paths: paths(),
    }
}

/// Per-path counters of small blocks (64 KiB and under; feature `observe`;
/// all zero without it). Every small allocation counts once, as `alloc_fast`
/// or `alloc_slow`, and every small free once, as `free_local` or
/// `free_remote`, whichever thread makes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// Allocations (zeroed or not) served from the current slab's free list.
    pub alloc_fast: u64,
    /// Allocations that took the slow path (carve, inbox, slab change).
    pub alloc_slow: u64,
    /// Frees of a block of the freeing thread's own heap.
    pub free_local: u64,
    /// Frees of a block of another heap: pushed to its inbox, or, when that
    /// heap is an orphan, done at once (the freeing thread adopts the slab),
    /// also by threads that have no heap of their own. Counted once, where
    /// the free starts: the owner's later draining or forwarding of its
    /// inbox, and the local free into an adopted slab, count nothing more.
    pub free_remote: u64,
}

/// `free_remote` of threads without a heap (they have no cells).
#[cfg(feature = "observe")]
pub(crate) static FREE_REMOTE_NO_HEAP: AtomicU64 = AtomicU64::new(0);

/// The owning thread's cells behind `PathCounters`.
#[cfg(feature = "observe")]
#[derive(Default)]
pub(crate) struct PathCells {
    pub(crate) alloc_fast: AtomicU64,
    pub(crate) alloc_slow: AtomicU64,
    pub(crate) free_local: AtomicU64,
    pub(crate) free_remote: AtomicU64,
}

/// Adds one to a cell only its owner writes: a load and a store, no RMW.
#[cfg(feature = "observe")]
#[inline(always)]
pub(crate) fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Relaxed);
}

#[cfg(feature = "observe")]
fn paths() -> PathCounters {
    let mut p = PathCounters::default();
    crate::heap::for_each(|h| {
        p.alloc_fast += h.paths.alloc_fast.load(Relaxed);
        p.alloc_slow += h.paths.alloc_slow.load(Relaxed);
        p.free_local += h.paths.free_local.load(Relaxed);
        p.free_remote += h.paths.free_remote.load(Relaxed);
    });
    p.free_remote += FREE_REMOTE_NO_HEAP.load(Relaxed);
    p
}

#[cfg(not(feature = "observe"))]
fn paths() -> PathCounters {
    PathCounters::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_totals_add_up() {
        let s = stats();
        assert_eq!(
            s.syscalls_total(),
            s.mmap + s.munmap + s.madvise + s.mremap + s.mprotect
        );
        assert!(
            s.mmap > 0,
            "the test harness has allocated, so hakmem has mapped"
        );
    }

    #[cfg(feature = "observe")]
    #[test]
    fn path_counters_follow_allocations() {
        let before = stats().paths;
        let v: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
        drop(v);
        let after = stats().paths;
        assert!(
            after.alloc_fast + after.alloc_slow >= before.alloc_fast + before.alloc_slow + 1000
        );
        assert!(after.free_local >= before.free_local + 1000);
    }

    /// Blocks freed by another thread count as `free_remote`, also when that
    /// thread has no heap, and never as `free_local` of the owner, which
    /// drains them from its inbox later.
    #[cfg(feature = "observe")]
    #[test]
    fn remote_frees_count_once_as_remote() {
        use crate::{raw, tls};
        const N: usize = 1000;
        let mut blocks: Vec<usize> = (0..N)
            .map(|_| {
                // SAFETY: plain allocations of 64 bytes, freed below by other threads.
                unsafe { raw::alloc(64, 16) as usize }
            })
            .collect();
        let own = tls::get();
        assert!(!own.is_null());
        // SAFETY: this thread's heap lives for ever; only this thread writes its cells.
        let own_local = || unsafe { (*own).paths.free_local.load(Relaxed) };
        let (local0, remote0) = (own_local(), stats().paths.free_remote);
        let heapless0 = FREE_REMOTE_NO_HEAP.load(Relaxed);

        // Half freed by a thread with a heap of its own...
        let half = blocks.split_off(N / 2);
        std::thread::spawn(move || {
            drop(Box::new(1u8)); // attaches a heap
            for p in half {
                // SAFETY: each block is live and freed once.
                unsafe { raw::free(p as *mut u8) };
            }
        })
        .join()
        .unwrap();
        // ...half by a raw thread that never allocates, so has no heap.
        extern "C" fn free_all(arg: *mut libc::c_void) -> *mut libc::c_void {
            // SAFETY: `arg` is the vector below, alive until the join.
            let v = unsafe { &*(arg as *const Vec<usize>) };
            assert!(tls::get().is_null(), "the thread has no heap");
            for &p in v {
                // SAFETY: each block is live and freed once.
                unsafe { raw::free(p as *mut u8) };
            }
            core::ptr::null_mut()
        }
        // SAFETY: the thread only reads `blocks`, which outlives the join.
        unsafe {
            let mut t: libc::pthread_t = 0;
            let arg = &blocks as *const Vec<usize> as *mut libc::c_void;
            assert_eq!(
                libc::pthread_create(&mut t, core::ptr::null(), free_all, arg),
                0
            );
            assert_eq!(libc::pthread_join(t, core::ptr::null_mut()), 0);
        }
        assert!(FREE_REMOTE_NO_HEAP.load(Relaxed) >= heapless0 + (N / 2) as u64);
        assert!(stats().paths.free_remote >= remote0 + N as u64);
        // The owner drains its inbox (enough allocations to refill the class).
        let again: Vec<Box<[u8; 64]>> = (0..4 * N).map(|_| Box::new([0; 64])).collect();
        drop(again);
        let local = own_local() - local0;
        // This thread's own frees since (thread handles, `again`) are local;
        // the N drained blocks are not.
        assert!(
            local < 4 * N as u64 + N as u64 / 2,
            "drained remote frees counted as free_local ({local})"
        );
    }
}
