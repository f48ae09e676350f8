//! Always-on counters and the `stats()` snapshot.
//!
//! Invariants:
//! - Global counters change only on slow paths (a syscall, a superslab coming or
//!   going), so their atomic adds never touch the alloc/free fast path.
//! - Per-path counters (`observe` feature) live in each thread heap and are
//!   written only by the owning thread with plain relaxed stores; a snapshot sums
//!   them without stopping anyone, so it may be a few operations stale.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub(crate) static MMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MUNMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MADVISE: AtomicU64 = AtomicU64::new(0);
pub(crate) static MREMAP: AtomicU64 = AtomicU64::new(0);
pub(crate) static MAPPED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS: AtomicU64 = AtomicU64::new(0);
pub(crate) static SUPERSLABS_RELEASED: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_LIVE: AtomicU64 = AtomicU64::new(0);
pub(crate) static SYSCALL_FAILURES: AtomicU64 = AtomicU64::new(0);
pub(crate) static RESERVED_BYTES: AtomicU64 = AtomicU64::new(0);
pub(crate) static LARGE_CACHED_BYTES: AtomicU64 = AtomicU64::new(0);

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
    /// Per-path counters (feature `observe`; zero without it).
    pub paths: PathCounters,
}

impl Stats {
    /// Every syscall the allocator makes, by name, with its count.
    pub fn syscalls(&self) -> [(&'static str, u64); 4] {
        [
            ("mmap", self.mmap),
            ("munmap", self.munmap),
            ("madvise", self.madvise),
            ("mremap", self.mremap),
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
        mapped_bytes: MAPPED_BYTES.load(Relaxed),
        superslabs: SUPERSLABS.load(Relaxed),
        superslabs_released: SUPERSLABS_RELEASED.load(Relaxed),
        large_blocks: LARGE_LIVE.load(Relaxed),
        syscall_failures: SYSCALL_FAILURES.load(Relaxed),
        reserved_bytes: RESERVED_BYTES.load(Relaxed),
        large_cached_bytes: LARGE_CACHED_BYTES.load(Relaxed),
        paths: paths(),
    }
}

/// Per-path counters (feature `observe`; all zero without it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// Allocations served from the current slab's free list.
    pub alloc_fast: u64,
    /// Allocations that took the slow path (carve, inbox, slab change).
    pub alloc_slow: u64,
    /// Frees of a block of the freeing thread's own heap.
    pub free_local: u64,
    /// Frees pushed to another heap's inbox.
    pub free_remote: u64,
}

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
        assert_eq!(s.syscalls_total(), s.mmap + s.munmap + s.madvise + s.mremap);
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
}
