//! The release policy box: when free memory goes back to the OS.
//!
//! Every decision about giving memory back is taken here, from the options in
//! force, so a profile switches the whole policy and no `if lean` is scattered
//! over the allocator. The policy has three levels of hysteresis so that a
//! working set sitting near a boundary does not thrash:
//! 1. a thread heap keeps empty slabs for reuse, counted in 64 KiB units (a
//!    medium slab is 8): at least `heap_empty_slabs` units, and that many per
//!    32 units it has in use, so a big heap absorbs the churn of its classes
//!    without syscalls while an idle one holds little; bursts may take it to
//!    twice that, trimmed back one slab per `HEAP_TRIM_EVERY` refills;
//! 2. a slab handed back to the shared pool is decommitted (lean) or kept
//!    committed (speed-first);
//! 3. an empty superslab is kept mapped while fewer than `retain_superslabs`
//!    are, and unmapped beyond that.
//!
//! Invariants: nothing here is called on a fast path; all functions are pure
//! reads of the options.

use crate::options::options;

/// How many 64 KiB units of empty slabs a heap with `in_use` units of other
/// slabs should settle at. The cache may hold up to twice this (`heap_cache_cap`)
/// and is trimmed back towards it slowly, so a burst of frees followed by a
/// burst of allocations reuses the cache instead of paying syscalls twice.
pub(crate) fn heap_cache_target(in_use: u32) -> u32 {
    let n = options().heap_empty_slabs;
    n.max(in_use.saturating_mul(n) / 32)
}

/// The most units of empty slabs a heap with `in_use` units in use may hold.
pub(crate) fn heap_cache_cap(in_use: u32) -> u32 {
    heap_cache_target(in_use).saturating_mul(2)
}

/// A heap trims one slab above its target every this many slow-path refills.
pub(crate) const HEAP_TRIM_EVERY: u32 = 64;

/// Whether a slab going back to the shared pool gives its pages back.
pub(crate) fn decommit_pooled_slabs() -> bool {
    options().mem_lean
}

/// Whether an empty superslab stays mapped, given how many already do.
pub(crate) fn retain_empty_superslab(retained: u32) -> bool {
    retained < options().retain_superslabs
}

/// Whether a freed large mapping of `len` bytes joins a cache holding `cached`.
pub(crate) fn cache_large(cached: u64, len: u64) -> bool {
    cached.saturating_add(len) <= options().large_cache_bytes
}

/// Whether cached large mappings give their pages back while they wait.
pub(crate) fn decommit_cached_large() -> bool {
    options().mem_lean
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Options, Profile};

    #[test]
    fn profiles_switch_the_whole_policy() {
        let lean = Options::for_profile(Profile::Lean);
        let speed = Options::for_profile(Profile::SpeedFirst);
        assert!(lean.mem_lean && lean.retain_superslabs == 0 && lean.large_cache_bytes == 0);
        assert!(!speed.mem_lean && speed.retain_superslabs == u32::MAX);
        // The functions read the options in force (balanced by default in tests).
        let o = options();
        assert_eq!(heap_cache_target(0), o.heap_empty_slabs);
        assert_eq!(heap_cache_target(128), 4 * o.heap_empty_slabs);
        assert_eq!(heap_cache_cap(0), 2 * o.heap_empty_slabs);
        assert_eq!(decommit_pooled_slabs(), o.mem_lean);
        assert!(!cache_large(u64::MAX, 1) || o.large_cache_bytes == u64::MAX);
    }
}
