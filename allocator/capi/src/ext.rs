//! hakmem's own C entry points (declared in `include/hakmem.h`): the options in
//! force and the counters, so that C programs (and the tests) can see what
//! `HAKMEM_*` did without parsing the exit summary.

use core::ffi::c_char;
use hakmem::{Options, Profile};

/// `struct hakmem_options` in hakmem.h: hand-written, because its layout is
/// an ABI (new knobs are appended). `hakmem_get_options` names every field
/// of `Options`, so a knob missing here does not compile, and the conformance
/// test checks that every knob is in the header.
#[repr(C)]
pub struct HakmemOptions {
    profile: *const c_char,
    mem_lean: i32,
    prewarm: i32,
    heap_empty_slabs: u32,
    retain_superslabs: u32,
    large_cache_bytes: u64,
    release_thread: i32,
}

/// `struct hakmem_stats` in hakmem.h.
#[repr(C)]
pub struct HakmemStats {
    mmap: u64,
    munmap: u64,
    madvise: u64,
    mremap: u64,
    mapped_bytes: u64,
    superslabs: u64,
    superslabs_released: u64,
    large_blocks: u64,
    syscall_failures: u64,
    reserved_bytes: u64,
    large_cached_bytes: u64,
    mprotect: u64,
}

/// Fills `*out` with the options in force.
///
/// # Safety
/// `out` must be valid for writing a `struct hakmem_options`.
#[no_mangle]
pub unsafe extern "C" fn hakmem_get_options(out: *mut HakmemOptions) {
    // No `..`: a knob added to `Options` must be added here (and to hakmem.h).
    let Options {
        profile,
        mem_lean,
        prewarm,
        heap_empty_slabs,
        retain_superslabs,
        large_cache_bytes,
        release_thread,
    } = hakmem::options();
    let profile = match profile {
        Profile::SpeedFirst => c"speed-first",
        Profile::Balanced => c"balanced",
        Profile::Lean => c"lean",
        Profile::Hardened => c"hardened",
    };
    // SAFETY: the caller passes a writable struct; the name is a static string.
    unsafe {
        out.write(HakmemOptions {
            profile: profile.as_ptr(),
            mem_lean: mem_lean.into(),
            prewarm: prewarm.into(),
            heap_empty_slabs,
            retain_superslabs,
            large_cache_bytes,
            release_thread: release_thread.into(),
        })
    }
}

/// Fills `*out` with a snapshot of the counters.
///
/// # Safety
/// `out` must be valid for writing a `struct hakmem_stats`.
#[no_mangle]
pub unsafe extern "C" fn hakmem_get_stats(out: *mut HakmemStats) {
    let s = hakmem::stats();
    // SAFETY: the caller passes a writable struct.
    unsafe {
        out.write(HakmemStats {
            mmap: s.mmap,
            munmap: s.munmap,
            madvise: s.madvise,
            mremap: s.mremap,
            mapped_bytes: s.mapped_bytes,
            superslabs: s.superslabs,
            superslabs_released: s.superslabs_released,
            large_blocks: s.large_blocks,
            syscall_failures: s.syscall_failures,
            reserved_bytes: s.reserved_bytes,
            large_cached_bytes: s.large_cached_bytes,
            mprotect: s.mprotect,
        })
    }
}
