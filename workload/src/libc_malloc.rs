//! An allocator that calls the C library's malloc family directly, so that
//! `LD_PRELOAD=other.so` swaps in any malloc under the same workload.

use core::alloc::{GlobalAlloc, Layout};

/// The alignment malloc guarantees on every Linux target we build for
/// (glibc's `MALLOC_ALIGNMENT`: 16 on 64-bit).
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

/// `malloc`/`free`/`posix_memalign` through the dynamic linker.
#[derive(Clone, Copy, Debug, Default)]
pub struct LibcMalloc;

impl LibcMalloc {
    /// Whether plain malloc already satisfies `l`'s alignment (a malloc block
    /// smaller than its alignment is only aligned to its size class).
    fn malloc_suffices(l: &Layout) -> bool {
        l.align() <= MALLOC_ALIGN && l.align() <= l.size()
    }
}

// SAFETY: every path returns either null or a block from the C allocator that
// is at least `size` bytes and aligned to `align` (malloc for alignments it
// guarantees, posix_memalign otherwise), and frees with the matching `free`.
unsafe impl GlobalAlloc for LibcMalloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if Self::malloc_suffices(&l) {
            // SAFETY: malloc has no preconditions.
            return unsafe { libc::malloc(l.size()) }.cast();
        }
        let mut p = core::ptr::null_mut();
        let align = l.align().max(core::mem::size_of::<usize>());
        // SAFETY: `align` is a power of two and a multiple of sizeof(void*).
        if unsafe { libc::posix_memalign(&mut p, align, l.size()) } != 0 {
            return core::ptr::null_mut();
        }
        p.cast()
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if Self::malloc_suffices(&l) {
            // SAFETY: calloc has no preconditions.
            return unsafe { libc::calloc(1, l.size()) }.cast();
        }
        // SAFETY: forwarded contract; the block is `l.size()` bytes when non-null.
        unsafe {
            let p = self.alloc(l);
            if !p.is_null() {
                core::ptr::write_bytes(p, 0, l.size());
            }
            p
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` came from malloc/calloc/posix_memalign/realloc above.
        unsafe { libc::free(p.cast()) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds GlobalAlloc::realloc's contract; realloc
        // keeps malloc's alignment, which suffices when malloc does.
        unsafe {
            match Layout::from_size_align(new_size, l.align()) {
                Ok(n) if Self::malloc_suffices(&n) => libc::realloc(p.cast(), new_size).cast(),
                Ok(n) => {
                    let q = self.alloc(n);
                    if !q.is_null() {
                        core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                        self.dealloc(p, l);
                    }
                    q
                }
                Err(_) => core::ptr::null_mut(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honours_size_and_alignment() {
        let a = LibcMalloc;
        for &(size, align) in &[(1, 1), (8, 8), (24, 16), (100, 64), (4096, 4096), (3, 32)] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; the block is written within bounds and freed once.
            unsafe {
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                p.write_bytes(0xab, size);
                let q = a.realloc(p, l, size * 3);
                assert_eq!(q as usize % align, 0);
                assert_eq!(*q.add(size - 1), 0xab);
                a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                let z = a.alloc_zeroed(l);
                assert!(core::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, l);
            }
        }
    }
}
