//! The release policy box: when free memory goes back to the OS.
//!
//! Every decision about giving memory back is taken here, from the options in
//! force, so a profile switches the whole policy and no `if lean` is scattered
//! over the allocator. The policy has three levels of hysteresis so that a
//! working set sitting near a boundary does not thrash:
//! 1. a thread heap keeps up to `heap_empty_slabs` empty slabs for reuse;
//! 2. a slab handed back to the shared pool is decommitted (lean) or kept
//!    committed (speed-first);
//! 3. an empty superslab is kept mapped while fewer than `retain_superslabs`
//!    are, and unmapped beyond that.
//!
//! Invariants: nothing here is called on a fast path; all functions are pure
//! reads of the options.

use crate::options::options;

/// Whether a heap holding `cached` empty slabs keeps one more.
pub(crate) fn heap_keeps_empty_slab(cached: u32) -> bool {
    cached < options().heap_empty_slabs
}

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
        assert!(lean.mem_lean && lean.heap_empty_slabs == 0 && lean.retain_superslabs == 0);
        assert!(!speed.mem_lean && speed.retain_superslabs == u32::MAX);
        // The functions read the options in force (balanced by default in tests).
        let o = options();
        assert_eq!(heap_keeps_empty_slab(0), o.heap_empty_slabs > 0);
        assert_eq!(decommit_pooled_slabs(), o.mem_lean);
        assert!(!cache_large(u64::MAX, 1) || o.large_cache_bytes == u64::MAX);
    }
}
