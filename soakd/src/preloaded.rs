//! hakmem's syscall counters when it is the preloaded malloc rather than
//! soakd's own allocator (`soakd compare` runs hakmem as libhakmem.so under
//! the `libc` backend): its C API's `hakmem_get_stats`, looked up once with
//! `dlsym`. Under any other allocator the symbol is absent and the syscalls
//! are not observable.

use std::sync::OnceLock;

/// `void hakmem_get_stats(struct hakmem_stats *out)` (hakmem.h).
type GetStats = unsafe extern "C" fn(*mut u64);

/// Room for `struct hakmem_stats`: its fields are all `uint64_t` and only
/// ever appended (hakmem.h), so a buffer well above today's 12 stays large
/// enough for a newer library.
const STATS_WORDS: usize = 64;
/// The index of `mprotect` in `struct hakmem_stats`.
const MPROTECT_WORD: usize = 11;

fn get_stats() -> Option<GetStats> {
    static F: OnceLock<Option<GetStats>> = OnceLock::new();
    *F.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
        // other preconditions.
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"hakmem_get_stats".as_ptr()) };
        // SAFETY: a symbol of this name is hakmem.h's function, whose C
        // signature `GetStats` matches.
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut libc::c_void, GetStats>(p) })
    })
}

/// mmap + munmap + madvise + mremap + mprotect made so far by the preloaded hakmem;
/// `None` when no hakmem is preloaded.
pub fn syscalls() -> Option<u64> {
    let f = get_stats()?;
    let mut stats = [0u64; STATS_WORDS];
    // SAFETY: `stats` is writable and larger than `struct hakmem_stats`.
    unsafe { f(stats.as_mut_ptr()) };
    // The struct's first four fields are syscall counts, and so is its
    // twelfth, `mprotect` (appended; an older library leaves it zero).
    Some(stats[..4].iter().sum::<u64>() + stats[MPROTECT_WORD])
}

#[cfg(test)]
mod tests {
    /// soakd's own hakmem is linked in, not preloaded: nothing to find.
    /// (The compare test sees a preloaded one counted.)
    #[test]
    fn without_a_preloaded_hakmem_syscalls_are_unknown() {
        assert_eq!(super::syscalls(), None);
    }
}
