//! hakmem: a memory allocator fastest on tiny objects and flat over hours.
//!
//! TEMPORARY API SKELETON: forwards to libc while the real allocator lands.

use core::alloc::{GlobalAlloc, Layout};

pub mod options;
pub mod stats;

pub use options::{options, set_options, set_profile, Options, Profile};
pub use stats::{stats, Stats};

/// The allocator, usable as `#[global_allocator] static A: hakmem::Hakmem = hakmem::Hakmem;`.
pub struct Hakmem;

// SAFETY: temporary forwarder to libc, which honours the GlobalAlloc contract.
unsafe impl GlobalAlloc for Hakmem {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        raw::alloc(l.size(), l.align())
    }
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        raw::free(p)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        raw::alloc_zeroed(l.size(), l.align())
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        raw::realloc(p, new_size, l.align())
    }
}

/// Untyped entry points, used by the C ABI (`libhakmem.so`) and by benchmarks.
pub mod raw {
    /// Allocates `size` bytes aligned to `align` (a power of two); null if impossible.
    ///
    /// # Safety
    /// `align` must be a power of two.
    pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
        let mut p = core::ptr::null_mut();
        if libc::posix_memalign(&mut p, align.max(16), size.max(1)) != 0 {
            return core::ptr::null_mut();
        }
        p.cast()
    }
    /// Like [`alloc`], but the memory is zeroed.
    ///
    /// # Safety
    /// `align` must be a power of two.
    pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
        let p = alloc(size, align);
        if !p.is_null() {
            core::ptr::write_bytes(p, 0, size);
        }
        p
    }
    /// Frees a block hakmem returned; aborts with a `hakmem:` message on a pointer it never returned.
    ///
    /// # Safety
    /// `p` must be null or a live block from this allocator.
    pub unsafe fn free(p: *mut u8) {
        libc::free(p.cast())
    }
    /// Frees `p` if hakmem owns it and returns true; returns false (doing nothing) otherwise.
    ///
    /// # Safety
    /// If owned, `p` must be live.
    pub unsafe fn try_free(p: *mut u8) -> bool {
        free(p);
        true
    }
    /// Resizes `p` to `new_size`, in place where it can. Null (and `p` untouched) if impossible.
    ///
    /// # Safety
    /// `p` must be a live block from this allocator; `align` its alignment.
    pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
        let _ = align;
        libc::realloc(p.cast(), new_size).cast()
    }
    /// Usable size of a block hakmem owns, `None` for pointers it does not own.
    pub fn usable_size(p: *const u8) -> Option<usize> {
        // SAFETY: temporary forwarder.
        Some(unsafe { libc::malloc_usable_size(p as *mut _) })
    }
    /// Whether `p` points at (the start of) a block in memory hakmem manages.
    pub fn owns(_p: *const u8) -> bool {
        true
    }
}
