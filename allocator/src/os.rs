//! The only place that talks to the kernel: mmap, munmap, madvise, mremap.
//!
//! Invariants:
//! - Every syscall made here bumps its counter in `stats`, so `stats()` sees all
//!   of the allocator's syscalls (SPEC: syscalls per op).
//! - `map_aligned` returns regions aligned to their requested alignment, which
//!   is what lets `free` find a superslab from a pointer by masking.

use crate::stats;
use core::ptr;
use core::sync::atomic::Ordering::Relaxed;

pub(crate) const PAGE: usize = 4096;

/// Maps `len` bytes (a multiple of PAGE) aligned to `align` (a power of two >= PAGE).
/// `populate` pre-faults the pages. Null if the kernel refuses.
pub(crate) fn map_aligned(len: usize, align: usize, populate: bool) -> *mut u8 {
    let Some(over) = len.checked_add(align - PAGE) else {
        return ptr::null_mut();
    };
    let base = map(over, false);
    if base.is_null() {
        return base;
    }
    let start = (base as usize).next_multiple_of(align);
    let head = start - base as usize;
    let tail = over - head - len;
    if head > 0 {
        unmap(base, head);
    }
    if tail > 0 {
        unmap((start + len) as *mut u8, tail);
    }
    if populate {
        // Best effort (Linux 5.14+): a failure only means the pages fault in later.
        advise(start as *mut u8, len, libc::MADV_POPULATE_WRITE);
    }
    start as *mut u8
}

/// Maps `len` fresh zeroed bytes anywhere. Null if the kernel refuses.
pub(crate) fn map(len: usize, populate: bool) -> *mut u8 {
    // No MAP_NORESERVE: under the kernel's overcommit heuristics a request the
    // machine cannot back fails here, and malloc returns NULL as glibc's does.
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if populate { libc::MAP_POPULATE } else { 0 };
    stats::MMAP.fetch_add(1, Relaxed);
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    stats::MAPPED_BYTES.fetch_add(len as u64, Relaxed);
    p.cast()
}

/// Unmaps a region this module mapped (or a page-aligned part of one).
pub(crate) fn unmap(p: *mut u8, len: usize) {
    stats::MUNMAP.fetch_add(1, Relaxed);
    // SAFETY: callers pass whole pages of a mapping they own and no longer use.
    if unsafe { libc::munmap(p.cast(), len) } == 0 {
        stats::MAPPED_BYTES.fetch_sub(len as u64, Relaxed);
    }
}

/// Gives the physical pages of `[p, p+len)` back; the range reads as zero afterwards.
pub(crate) fn decommit(p: *mut u8, len: usize) {
    advise(p, len, libc::MADV_DONTNEED);
}

fn advise(p: *mut u8, len: usize, advice: libc::c_int) {
    if len == 0 {
        return;
    }
    stats::MADVISE.fetch_add(1, Relaxed);
    // SAFETY: callers pass page-aligned ranges inside mappings they own; the
    // advice values used here never invalidate the mapping itself.
    unsafe { libc::madvise(p.cast(), len, advice) };
}

/// Grows or shrinks a mapping in place (never moves it). False if it cannot.
pub(crate) fn remap_in_place(p: *mut u8, old_len: usize, new_len: usize) -> bool {
    stats::MREMAP.fetch_add(1, Relaxed);
    // SAFETY: flags 0 forbids moving, so on success the same address now spans
    // `new_len` bytes and on failure nothing changed.
    let r = unsafe { libc::mremap(p.cast(), old_len, new_len, 0) };
    if r == libc::MAP_FAILED {
        return false;
    }
    if new_len >= old_len {
        stats::MAPPED_BYTES.fetch_add((new_len - old_len) as u64, Relaxed);
    } else {
        stats::MAPPED_BYTES.fetch_sub((old_len - new_len) as u64, Relaxed);
    }
    true
}

/// A cheap monotonic clock in milliseconds (vDSO, no syscall), for policy
/// decisions on slow paths.
pub(crate) fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC_COARSE always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The calling thread's kernel id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

static PID: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

/// Remembers this process's id (at start-up, and in a fork child).
pub(crate) fn note_pid() {
    // SAFETY: getpid has no preconditions.
    PID.store(unsafe { libc::getpid() }, Relaxed);
}

/// Whether thread `tid` of this process still exists (signal 0 probes it).
/// A thread that is gone answers ESRCH; anything else counts as alive.
pub(crate) fn thread_alive(tid: i32) -> bool {
    if tid <= 0 {
        return true;
    }
    // SAFETY: tgkill with signal 0 sends nothing; it only checks the target.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, PID.load(Relaxed), tid, 0) };
    // SAFETY: reading this thread's errno.
    r == 0 || unsafe { *libc::__errno_location() } != libc::ESRCH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_mappings_are_aligned_and_counted() {
        let before = stats::MMAP.load(Relaxed);
        let align = 2 << 20;
        let p = map_aligned(align, align, false);
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0);
        // SAFETY: p is a fresh 2 MiB read-write mapping.
        unsafe {
            assert_eq!(*p, 0);
            *p.add(align - 1) = 7;
        }
        unmap(p, align);
        assert!(stats::MMAP.load(Relaxed) > before);
    }

    #[test]
    fn populated_mappings_are_resident() {
        let len = 64 * PAGE;
        let p = map_aligned(len, 2 << 20, true);
        assert!(!p.is_null());
        let mut resident = vec![0u8; len / PAGE];
        // SAFETY: p..p+len is a live mapping; the vector has one byte per page.
        let r = unsafe { libc::mincore(p.cast(), len, resident.as_mut_ptr()) };
        assert_eq!(r, 0);
        assert!(resident.iter().all(|b| b & 1 == 1), "pages not pre-faulted");
        unmap(p, len);
    }
}
