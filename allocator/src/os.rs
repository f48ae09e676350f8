//! The only place that talks to the kernel: mmap, munmap, madvise, mremap,
//! mprotect; and, off the allocation paths, the thread probes and the
//! process-wide fence of the heap locks (gettid, tgkill, membarrier).
//!
//! Invariants:
//! - Every memory syscall made here bumps its counter in `stats`, so `stats()`
//!   sees all of the allocator's memory syscalls (SPEC: syscalls per op). The
//!   others are made by the release thread (at most one membarrier per pass)
//!   or once per thread, and are not counted.
//! - Every failed munmap, madvise or mremap is counted in
//!   `stats::SYSCALL_FAILURES` and reported (the first failure of each kind
//!   writes one `hakmem: warning:` line to stderr); madvise is retried on
//!   EAGAIN. Callers get the outcome and keep their books right with it: a
//!   range whose munmap failed is still mapped and still counted. The one
//!   refusal that is an answer rather than a failure, and is not counted, is
//!   mremap declining to grow a mapping in place (ENOMEM: the neighbour is
//!   taken).
//! - `stats::MAPPED_BYTES` counts what `map`/`map_aligned` mapped (direct
//!   large blocks, metadata) and is given back only by a successful
//!   `unmap`/`remap_in_place`; arena chunks are counted by `arena` when handed
//!   out. `reserve` counts arena address space in `stats::RESERVED_BYTES`.
//! - `map_aligned` and `reserve` return regions aligned to the requested
//!   alignment, which is what lets `free` find a chunk's header by masking.
//! - Nothing here allocates.

use crate::stats;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub(crate) const PAGE: usize = 4096;

/// Maps `len` bytes (a multiple of PAGE) aligned to `align` (a power of two >= PAGE).
/// `populate` pre-faults the pages. Null if the kernel refuses.
pub(crate) fn map_aligned(len: usize, align: usize, populate: bool) -> *mut u8 {
    let p = map_aligned_raw(ptr::null_mut(), len, align);
    if p.is_null() {
        return p;
    }
    stats::MAPPED_BYTES.fetch_add(len as u64, Relaxed);
    if populate {
        self::populate(p, len);
    }
    p
}

/// Reserves `len` bytes of address space aligned to `align` for an arena:
/// read-write, private, anonymous, without MAP_NORESERVE (so the kernel's
/// overcommit rules apply here, once, rather than at a page fault). Tries
/// `hint` first (an address next to the previous arena, so that the two share
/// a VMA). Counted in `RESERVED_BYTES`, not `MAPPED_BYTES`. Null if refused.
pub(crate) fn reserve(len: usize, align: usize, hint: *mut u8) -> *mut u8 {
    let p = map_aligned_raw(hint, len, align);
    if !p.is_null() {
        stats::RESERVED_BYTES.fetch_add(len as u64, Relaxed);
    }
    p
}

/// `mmap` of `len` fresh bytes at `hint` or anywhere; null if refused.
fn mmap(hint: *mut u8, len: usize, populate: bool) -> *mut u8 {
    // No MAP_NORESERVE: under the kernel's overcommit heuristics a request the
    // machine cannot back fails here, and malloc returns NULL as glibc's does.
    let flags =
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | if populate { libc::MAP_POPULATE } else { 0 };
    stats::MMAP.fetch_add(1, Relaxed);
    // SAFETY: an anonymous private mapping without MAP_FIXED: the kernel only
    // takes the hint if that range is free, so no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            hint.cast(),
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
    p.cast()
}

/// Maps `len` bytes aligned to `align`, trying `hint` first, and counts no
/// bytes (except pieces a failed trim left mapped, counted as mapped).
fn map_aligned_raw(hint: *mut u8, len: usize, align: usize) -> *mut u8 {
    if !hint.is_null() && (hint as usize).is_multiple_of(align) {
        let p = mmap(hint, len, false);
        if !p.is_null() {
            if (p as usize).is_multiple_of(align) {
                return p;
            }
            if !munmap(p, len) {
                stats::MAPPED_BYTES.fetch_add(len as u64, Relaxed);
            }
        }
    }
    let Some(over) = len.checked_add(align - PAGE) else {
        return ptr::null_mut();
    };
    let base = mmap(ptr::null_mut(), over, false);
    if base.is_null() {
        return base;
    }
    let start = (base as usize).next_multiple_of(align);
    let head = start - base as usize;
    let tail = over - head - len;
    // A trim that fails leaves a piece mapped that nobody uses: counted as
    // mapped, so MAPPED_BYTES still equals what hakmem holds.
    if head > 0 && !munmap(base, head) {
        stats::MAPPED_BYTES.fetch_add(head as u64, Relaxed);
    }
    if tail > 0 && !munmap((start + len) as *mut u8, tail) {
        stats::MAPPED_BYTES.fetch_add(tail as u64, Relaxed);
    }
    start as *mut u8
}

/// Maps `len` fresh zeroed bytes anywhere. Null if the kernel refuses.
pub(crate) fn map(len: usize, populate: bool) -> *mut u8 {
    let p = mmap(ptr::null_mut(), len, populate);
    if !p.is_null() {
        stats::MAPPED_BYTES.fetch_add(len as u64, Relaxed);
    }
    p
}

/// The munmap syscall, counted; a failure is counted and reported.
fn munmap(p: *mut u8, len: usize) -> bool {
    stats::MUNMAP.fetch_add(1, Relaxed);
    // SAFETY: callers pass whole pages of a mapping they own and no longer use.
    if unsafe { libc::munmap(p.cast(), len) } == 0 {
        return true;
    }
    failed(Failure::Munmap);
    false
}

/// Unmaps a region `map`/`map_aligned` mapped (or a page-aligned part of
/// one). False if the kernel refused: the range is then still mapped, still
/// counted in `MAPPED_BYTES`, and the caller must keep it (or retry).
#[must_use]
pub(crate) fn unmap(p: *mut u8, len: usize) -> bool {
    let ok = munmap(p, len);
    if ok {
        stats::MAPPED_BYTES.fetch_sub(len as u64, Relaxed);
    }
    ok
}

/// Gives the physical pages of `[p, p+len)` back; the range reads as zero
/// afterwards. False if the kernel refused (after retries): the pages are then
/// still committed and keep their contents.
pub(crate) fn decommit(p: *mut u8, len: usize) -> bool {
    advise(p, len, libc::MADV_DONTNEED)
}

/// Decommits `[p, p+len)`, or zeroes it by hand if the kernel refuses, so
/// that the range reads as zero either way.
pub(crate) fn decommit_or_zero(p: *mut u8, len: usize) {
    if !decommit(p, len) {
        // SAFETY: the caller owns the range, which is mapped read-write.
        unsafe { ptr::write_bytes(p, 0, len) };
    }
}

/// Pre-faults `[p, p+len)` (best effort, Linux 5.14+: a failure only means
/// the pages fault in later; it is still counted).
pub(crate) fn populate(p: *mut u8, len: usize) {
    advise(p, len, libc::MADV_POPULATE_WRITE);
}

fn advise(p: *mut u8, len: usize, advice: libc::c_int) -> bool {
    if len == 0 {
        return true;
    }
    for _ in 0..8 {
        stats::MADVISE.fetch_add(1, Relaxed);
        // SAFETY: callers pass page-aligned ranges inside mappings they own; the
        // advice values used here never invalidate the mapping itself.
        if unsafe { libc::madvise(p.cast(), len, advice) } == 0 {
            return true;
        }
        if errno() != libc::EAGAIN {
            break;
        }
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    failed(Failure::Madvise);
    false
}

/// Sets the protection of `[p, p+len)` (whole pages of a mapping hakmem
/// owns): `PROT_NONE` for the hardened profile's guard pages, read-write to
/// give them back. Aborts if the kernel refuses: a guard page that silently
/// stays writable would defeat its purpose, and one that stays inaccessible
/// would fault in correct code.
pub(crate) fn protect(p: *mut u8, len: usize, writable: bool) {
    if len == 0 {
        return;
    }
    stats::MPROTECT.fetch_add(1, Relaxed);
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_NONE
    };
    // SAFETY: callers pass page-aligned ranges of mappings hakmem owns that
    // hold no live data the change would hide.
    if unsafe { libc::mprotect(p.cast(), len, prot) } != 0 {
        stats::SYSCALL_FAILURES.fetch_add(1, Relaxed);
        crate::check::fatal("mprotect failed (out of memory mappings?)", p);
    }
}

/// Grows or shrinks a mapping in place (never moves it). False if it cannot.
pub(crate) fn remap_in_place(p: *mut u8, old_len: usize, new_len: usize) -> bool {
    stats::MREMAP.fetch_add(1, Relaxed);
    // SAFETY: flags 0 forbids moving, so on success the same address now spans
    // `new_len` bytes and on failure nothing changed.
    let r = unsafe { libc::mremap(p.cast(), old_len, new_len, 0) };
    if r == libc::MAP_FAILED {
        // Growth refused for lack of room is an answer, not a failure.
        if new_len <= old_len || errno() != libc::ENOMEM {
            failed(Failure::Mremap);
        }
        return false;
    }
    if new_len >= old_len {
        stats::MAPPED_BYTES.fetch_add((new_len - old_len) as u64, Relaxed);
    } else {
        stats::MAPPED_BYTES.fetch_sub((old_len - new_len) as u64, Relaxed);
    }
    true
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

#[derive(Clone, Copy)]
enum Failure {
    Munmap = 0,
    Madvise = 1,
    Mremap = 2,
}

/// Whether a failure of each kind was reported on stderr already.
static REPORTED: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];

/// Counts a failed syscall; the first of each kind is reported on stderr
/// (without allocating), the rest are only counted.
#[cold]
fn failed(what: Failure) {
    let e = errno();
    stats::SYSCALL_FAILURES.fetch_add(1, Relaxed);
    if REPORTED[what as usize].swap(true, Relaxed) {
        return;
    }
    let name: &[u8] = match what {
        Failure::Munmap => b"munmap",
        Failure::Madvise => b"madvise",
        Failure::Mremap => b"mremap",
    };
    let mut buf = [0u8; 128];
    let mut n = 0;
    for part in [b"hakmem: warning: ".as_slice(), name, b" failed, errno "] {
        buf[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    n += crate::check::write_dec(&mut buf[n..], e as u64);
    let tail = b" (counted in stats().syscall_failures; further ones are not printed)\n";
    buf[n..n + tail.len()].copy_from_slice(tail);
    n += tail.len();
    crate::check::write_stderr(&buf[..n]);
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

/// Registers this process for `membarrier`'s private expedited fence;
/// false when the kernel (or a sandbox) refuses it.
pub(crate) fn register_membarrier() -> bool {
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    // SAFETY: membarrier registration has no memory arguments.
    unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
}

/// Makes every running thread of this process execute a full memory
/// barrier (after `register_membarrier` succeeded).
pub(crate) fn membarrier() -> bool {
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    // SAFETY: membarrier has no memory arguments.
    unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) == 0 }
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
        assert!(unmap(p, align));
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
        assert!(unmap(p, len));
    }

    #[test]
    fn failed_syscalls_are_counted_and_books_stay_exact() {
        let before = stats::stats();
        // An unaligned address: munmap and madvise fail with EINVAL.
        let p = map(2 * PAGE, false);
        assert!(!p.is_null());
        // SAFETY: none needed: the calls below are refused by the kernel
        // before touching anything (the address is not page-aligned).
        let odd = unsafe { p.add(1) };
        assert!(!unmap(odd, PAGE));
        assert!(!decommit(odd, PAGE));
        assert!(!remap_in_place(odd, PAGE, PAGE / 2));
        let after = stats::stats();
        assert!(after.syscall_failures >= before.syscall_failures + 3);
        assert!(unmap(p, 2 * PAGE));
    }
}
