//! The release policy box: when free memory goes back to the OS.
//!
//! Every decision about giving memory back is taken here, from the options in
//! force, so a profile switches the whole policy and no `if lean` is scattered
//! over the allocator. The policy has three levels of hysteresis so that a
//! working set sitting near a boundary does not thrash:
//! 1. a thread heap keeps, per class, its last empty slab as a spare, and a
//!    cache of `heap_empty_slabs` 64 KiB units of other empty slabs (a medium
//!    slab is 8 units); bursts may take the cache to four times that. Slabs
//!    that sit unused in the cache for a whole `DECAY_MS` period go back (down
//!    to the target), and a heap that retires more than the cap without taking
//!    a slab back (it is shrinking) keeps only the target;
//! 2. a slab handed back to the shared pool is decommitted (lean) or kept
//!    committed (speed-first); under lean, where the release thread runs,
//!    `POOL_PURGE_DELAY_MS` after it went back unless a heap took it again
//!    meanwhile (thread churn hands slabs back and takes them again within
//!    milliseconds, and decommitting each one made every reuse fault);
//! 3. an empty superslab is kept mapped while fewer than `retain_superslabs`
//!    are, and its chunk goes back to its arena (decommitted) beyond that.
//!
//! Freed large blocks stay committed in the large cache, up to
//! `large_cache_bytes`, and are decommitted after `large_decay_ms` unused.
//!
//! Invariants: nothing here is called on a fast path; all functions are pure
//! reads of the options (one relaxed load each, `options::now`).

use crate::options::now;
use crate::reclaim;

/// How many 64 KiB units of empty slabs a heap's cache settles at. It may hold
/// up to four times this (`heap_cache_cap`) and decays back slowly, so a burst
/// of frees followed by a burst of allocations reuses the cache instead of
/// paying syscalls twice.
pub(crate) fn heap_cache_target() -> u32 {
    now::heap_empty_slabs()
}

/// The most units of empty slabs a heap's cache may hold.
pub(crate) fn heap_cache_cap() -> u32 {
    heap_cache_target().saturating_mul(4)
}

/// Whether a class keeps its last empty slab, of `units` 64 KiB units, as a
/// spare: only if the heap's cache target could hold one that size. Spares
/// are not kept for ever: the release thread takes them back from an idle
/// thread.
pub(crate) fn keep_spare(units: u32) -> bool {
    units <= now::heap_empty_slabs()
}

/// Whether a current slab that has just become empty stays current, so that
/// a malloc/free ping-pong never leaves the fast path. A 512 KiB slab does
/// not (it becomes the spare, which the release thread can take back when
/// the thread goes idle), nor does any slab of a shrinking heap.
pub(crate) fn keep_empty_current(units: u32, shrinking: bool) -> bool {
    units == 1 && !shrinking
}

/// A thread whose heap took no slow path for this long is idle: the release
/// thread hands back its spares and cached slabs, and the slabs whose blocks
/// all came back to its inbox. A heap is also checked this often for a
/// thread that is gone.
pub(crate) const IDLE_MS: u64 = 1000;

/// How often the release thread wakes.
pub(crate) const TICK_MS: u64 = 250;

/// Whether a background release thread runs (once a second thread allocates).
pub(crate) fn release_thread() -> bool {
    now::release_thread()
}

/// A heap's cache decays: slabs unused for a whole period of this many
/// milliseconds are released (down to the target).
pub(crate) const DECAY_MS: u64 = 1000;

/// Refills between two looks at the clock for the decay.
pub(crate) const DECAY_CHECK_EVERY: u32 = 256;

/// When a slab going back to the shared pool gives its pages back: `None`
/// never (it stays committed), `Some(0)` at once, `Some(ms)` once it has sat
/// in the pool that long (`superslab::purge_pool`, from the release thread).
/// Without a release thread nothing would purge later, so it is at once.
pub(crate) fn pooled_slab_purge_delay() -> Option<u64> {
    if !now::mem_lean() {
        None
    } else if reclaim::running() {
        Some(POOL_PURGE_DELAY_MS)
    } else {
        Some(0)
    }
}

/// How long a lean slab waits in the pool before its pages go back (see
/// `pooled_slab_purge_delay`): mimalloc's purge delay is of the same order.
pub(crate) const POOL_PURGE_DELAY_MS: u64 = 100;

/// Whether an empty superslab stays mapped, given how many already do.
pub(crate) fn retain_empty_superslab(retained: u32) -> bool {
    retained < now::retain_superslabs()
}

/// Whether a freed large mapping of `len` bytes joins a cache holding `cached`.
pub(crate) fn cache_large(cached: u64, len: u64) -> bool {
    cached.saturating_add(len) <= now::large_cache_bytes()
}

/// How long freed large memory stays committed in the large cache, unused,
/// before `large::decay` gives it back: a second when lean (balanced), ten
/// under speed-first (whose cache is also bigger).
pub(crate) fn large_decay_ms() -> u64 {
    if now::mem_lean() {
        DECAY_MS
    } else {
        10 * DECAY_MS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{options, Options, Profile};

    #[test]
    fn profiles_switch_the_whole_policy() {
        let lean = Options::for_profile(Profile::Lean);
        let speed = Options::for_profile(Profile::SpeedFirst);
        assert!(lean.mem_lean && lean.retain_superslabs == 0 && lean.large_cache_bytes == 0);
        assert!(!speed.mem_lean && speed.retain_superslabs == u32::MAX);
        // The functions read the options in force (balanced by default in tests).
        let o = options();
        assert_eq!(heap_cache_target(), o.heap_empty_slabs);
        assert_eq!(heap_cache_cap(), 4 * o.heap_empty_slabs);
        assert_eq!(pooled_slab_purge_delay().is_some(), o.mem_lean);
        assert!(!cache_large(u64::MAX, 1) || o.large_cache_bytes == u64::MAX);
    }
}
