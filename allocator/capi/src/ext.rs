//! hakmem's own C entry points (declared in `include/hakmem.h`): the options in
//! force and the counters, so that C programs (and the tests) can see what
//! `HAKMEM_*` did without parsing the exit summary.

use core::ffi::c_char;
use hakmem_core::Profile;

/// `struct hakmem_options` in hakmem.h.
#[repr(C)]
pub struct HakmemOptions {
    profile: *const c_char,
    mem_lean: i32,
    prewarm: i32,
    heap_empty_slabs: u32,
    retain_superslabs: u32,
    large_cache_bytes: u64,
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
}

/// Fills `*out` with the options in force.
///
/// # Safety
/// `out` must be valid for writing a `struct hakmem_options`.
#[no_mangle]
pub unsafe extern "C" fn hakmem_get_options(out: *mut HakmemOptions) {
    let o = hakmem_core::options();
    let profile = match o.profile {
        Profile::SpeedFirst => c"speed-first",
        Profile::Balanced => c"balanced",
        Profile::Lean => c"lean",
    };
    // SAFETY: the caller passes a writable struct; the name is a static string.
    unsafe {
        out.write(HakmemOptions {
            profile: profile.as_ptr(),
            mem_lean: o.mem_lean.into(),
            prewarm: o.prewarm.into(),
            heap_empty_slabs: o.heap_empty_slabs,
            retain_superslabs: o.retain_superslabs,
            large_cache_bytes: o.large_cache_bytes,
        })
    }
}

/// Fills `*out` with a snapshot of the counters.
///
/// # Safety
/// `out` must be valid for writing a `struct hakmem_stats`.
#[no_mangle]
pub unsafe extern "C" fn hakmem_get_stats(out: *mut HakmemStats) {
    let s = hakmem_core::stats();
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
        })
    }
}
