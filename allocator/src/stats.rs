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
    /// Bytes currently mapped from the OS (superslabs, large blocks, metadata).
    pub mapped_bytes: u64,
    /// Superslabs currently mapped.
    pub superslabs: u64,
    /// Superslabs given back to the OS so far.
    pub superslabs_released: u64,
    /// Large (directly mapped) blocks currently live or cached.
    pub large_blocks: u64,
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
    }
}
