//! hakmem: a memory allocator fastest on tiny objects and flat over hours.
//!
//! Use it as the global allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static A: hakmem::Hakmem = hakmem::Hakmem;
//! ```
//!
//! or through `libhakmem.so` (package `hakmem-capi`) with `LD_PRELOAD`.
//!
//! Module map (each file states its invariants at the top):
//! - `size_class`: request size -> class, in O(1);
//! - `heap` (thread cache): the lock-free fast path and its slow paths;
//! - `remote`: frees from other threads (lock-free inboxes);
//! - `superslab`: 2 MiB regions cut into slabs, and the shared pool of them;
//! - `arena`: hakmem's address space, 64 MiB arenas handing out 2 MiB chunks;
//! - `segmap`: which 2 MiB chunks are hakmem's (routes `free` in O(1));
//! - `large`: blocks over 64 KiB, in page chunks or chunk runs of the arenas
//!   (direct mappings beyond 32 MiB), with a decaying reuse cache;
//! - `hardened`: the hardened profile (guard pages, canaries, quarantine),
//!   chosen at start-up; it takes over every allocation when on;
//! - `os`: every syscall, counted; `release` and `prewarm`: policy boxes;
//! - `reclaim`: the background release thread (memory of idle and gone threads);
//! - `options`, `stats`, `init` (start-up, fork, exit), `check` (fatal errors),
//!   `tls` (the thread's heap pointer), `lock`.
//!
//! The C ABI lives in the `hakmem-capi` package and calls [`raw`].

use core::alloc::{GlobalAlloc, Layout};

/// Bumps a per-path counter when the `observe` feature is on; nothing otherwise.
macro_rules! observe {
    ($heap:expr, $field:ident) => {
        #[cfg(feature = "observe")]
        {
            crate::stats::bump(&(*$heap).paths.$field);
        }
    };
}

mod arena;
mod check;
mod hardened;
mod heap;
mod init;
mod large;
mod list;
mod lock;
pub mod options;
mod os;
mod prewarm;
mod reclaim;
mod release;
mod remote;
mod segmap;
mod size_class;
pub mod stats;
mod superslab;
mod tls;

pub use init::print_summary as print_stats;
pub use options::{options, set_options, set_profile, Options, Profile};
pub use stats::{stats, PathCounters, Stats};

/// This crate's version, for programs that report what they were built with.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The cargo features this build of hakmem has on, in a fixed order
/// (`fast` drops the integrity checks, `observe` adds per-path counters):
/// two builds of one version measure differently, so reports name them.
pub const FEATURES: &[&str] = &[
    #[cfg(feature = "fast")]
    "fast",
    #[cfg(feature = "observe")]
    "observe",
];

/// Where hakmem's memory is, for `mallinfo2` (a walk over hakmem's
/// superslabs: cheap, but not for every operation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of superslab memory mapped (slabs of every state).
    pub slab_bytes: u64,
    /// Bytes in small blocks handed out (block sizes, not requested sizes).
    pub small_in_use: u64,
    /// Large blocks handed out.
    pub large_blocks: u64,
    /// Bytes usable in them.
    pub large_in_use: u64,
}

/// Where hakmem's memory is now (see [`Usage`]).
pub fn usage() -> Usage {
    let (slab_bytes, small_in_use) = superslab::usage();
    let (large_blocks, large_in_use) = large::usage();
    Usage {
        slab_bytes,
        small_in_use,
        large_blocks,
        large_in_use,
    }
}

/// Gives free memory back to the OS now, as `malloc_trim` does: the calling
/// thread's empty slabs, every heap's spare and cached slabs, the slabs whose
/// blocks all came back, and the large-block cache. Returns whether any
/// memory went back.
pub fn trim() -> bool {
    let before = stats::stats();
    reclaim::trim();
    let after = stats::stats();
    after.madvise + after.munmap > before.madvise + before.munmap
}

/// Prepares this copy of hakmem for being unloaded: no thread may call it
/// afterwards. Every free byte goes back to the OS; live blocks stay valid.
/// `libhakmem.so` calls it when it is `dlclose`d as a private allocator.
pub fn unload() {
    reclaim::unload();
}

#[cfg(test)]
#[global_allocator]
static GLOBAL: Hakmem = Hakmem;

/// The allocator, usable as `#[global_allocator] static A: hakmem::Hakmem = hakmem::Hakmem;`
/// or as a plain `GlobalAlloc` value.
pub struct Hakmem;

// SAFETY: every method forwards to `raw`, which returns blocks of at least the
// requested size and alignment that stay valid until freed, and never unwinds.
unsafe impl GlobalAlloc for Hakmem {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        raw::alloc(l.size(), l.align())
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        raw::free(p)
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        raw::alloc_zeroed(l.size(), l.align())
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        raw::realloc(p, new_size, l.align())
    }
}

/// Untyped entry points, used by the C ABI (`libhakmem.so`) and by benchmarks.
pub mod raw {
    use crate::segmap::{self, Chunk};
    use crate::size_class::{class_for, class_for_aligned};
    use crate::{check, hardened, heap, large, superslab};

    /// Whether `align` needs no more than a class's natural alignment.
    #[inline(always)]
    fn plain(size: usize, align: usize) -> bool {
        align <= 8 || (align <= 16 && size > 8)
    }

    /// Allocates `size` bytes aligned to `align`; null if impossible (never aborts).
    /// `size` 0 gives a unique pointer.
    ///
    /// # Safety
    /// `align` must be a power of two.
    #[inline(always)]
    pub unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
        if plain(size, align) {
            if let Some(c) = class_for(size) {
                return heap::alloc(c, size);
            }
        }
        alloc_other(size, align, false)
    }

    /// The fast path of C's `malloc` (every class block is 16-aligned, all
    /// that malloc promises): a block, or null when the caller must take
    /// [`alloc`] (which may still find one).
    ///
    /// # Safety
    /// None beyond [`alloc`]'s: any size is fine.
    #[inline(always)]
    pub unsafe fn malloc_fast(size: usize) -> *mut u8 {
        match class_for(size) {
            Some(c) => heap::alloc_fast(c),
            None => core::ptr::null_mut(),
        }
    }

    /// Like [`alloc`], but the memory is zeroed (without a memset on fresh pages).
    ///
    /// # Safety
    /// `align` must be a power of two.
    pub unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
        if plain(size, align) {
            if let Some(c) = class_for(size) {
                return heap::alloc_zeroed(c, size);
            }
        }
        alloc_other(size, align, true)
    }

    #[cold]
    unsafe fn alloc_other(size: usize, align: usize, zero: bool) -> *mut u8 {
        if !align.is_power_of_two() {
            return core::ptr::null_mut();
        }
        if hardened::on() {
            return hardened::alloc(size, align);
        }
        match class_for_aligned(size, align) {
            Some(c) if zero => heap::alloc_zeroed(c, size),
            Some(c) => heap::alloc(c, size),
            None => large::alloc(size, align, zero),
        }
    }

    /// Frees a block hakmem returned (null is ignored). A pointer hakmem never
    /// returned, or a detectable double free, aborts with a `hakmem:` message.
    ///
    /// # Safety
    /// `p` must be null or a live block from this allocator.
    #[inline(always)]
    pub unsafe fn free(p: *mut u8) {
        let kind = segmap::lookup(p);
        if kind.is_superslab() {
            heap::free(p, kind)
        } else {
            free_other(p, kind)
        }
    }

    #[cold]
    unsafe fn free_other(p: *mut u8, kind: Chunk) {
        match kind {
            Chunk::Foreign if p.is_null() => {}
            Chunk::Foreign => check::fatal("free(): invalid pointer (not from hakmem)", p),
            k if hardened::on() || k.is_hardened() => hardened::free(p, k),
            k => large::free(p, k),
        }
    }

    /// Frees `p` and returns true if it is hakmem's; returns false, doing
    /// nothing, for a pointer from elsewhere (or null). A pointer into
    /// hakmem's memory that is not a live block aborts, as in [`free`]:
    /// hakmem's chunks hold nothing but hakmem's blocks.
    ///
    /// # Safety
    /// If hakmem's, `p` must be a live block.
    #[inline(always)]
    pub unsafe fn try_free(p: *mut u8) -> bool {
        let kind = segmap::lookup(p);
        if kind.is_superslab() {
            heap::free(p, kind);
            true
        } else if kind != Chunk::Foreign {
            free_other(p, kind);
            true
        } else {
            false
        }
    }

    /// Whether `p` lies in hakmem's memory (any chunk of an arena or of a
    /// large mapping), so that hakmem's `free` must judge it: it rejects it
    /// loudly if it is not a live block. Anything else came from another
    /// allocator.
    pub fn manages(p: *const u8) -> bool {
        segmap::lookup(p) != Chunk::Foreign
    }

    /// Resizes `p` to `new_size` bytes aligned to `align`, in place where it can.
    /// Null (and `p` untouched) if impossible; `p` null acts as [`alloc`].
    /// `align` is the alignment the result needs (it may exceed `p`'s).
    ///
    /// # Safety
    /// `p` must be null or a live block from this allocator; `align` a power of two.
    pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> *mut u8 {
        if p.is_null() {
            return alloc(new_size, align);
        }
        let kind = segmap::lookup(p);
        if kind.is_hardened() {
            return hardened::realloc(p, kind, new_size, align);
        }
        if check::CHECKS && !owns(p) {
            check::fatal("realloc(): invalid pointer", p);
        }
        let old = match kind {
            k if k.is_superslab() => {
                let bs = superslab::block_size(p);
                // Keep the block while the new size still fits and wastes at
                // most half of it.
                if new_size <= bs && new_size >= bs / 2 {
                    return p;
                }
                bs
            }
            Chunk::Foreign => check::fatal("realloc(): invalid pointer", p),
            k => {
                if new_size > crate::size_class::MAX_SIZE && large::resize_in_place(p, k, new_size)
                {
                    return p;
                }
                large::usable_size(p, k)
            }
        };
        let q = alloc(new_size, align);
        if !q.is_null() {
            core::ptr::copy_nonoverlapping(p, q, old.min(new_size));
            free(p);
        }
        q
    }

    /// Prints `hakmem: <what> (pointer 0x...)` on stderr and aborts, without
    /// allocating: how every misuse is reported.
    pub fn fatal(what: &str, p: *const u8) -> ! {
        check::fatal(what, p)
    }

    /// Usable size of a block hakmem owns; `None` for pointers it does not own.
    // Safe for any pointer value: only metadata the chunk map vouches for is read.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn usable_size(p: *const u8) -> Option<usize> {
        if !owns(p) {
            return None;
        }
        Some(match segmap::lookup(p) {
            k if k.is_superslab() => superslab::block_size(p),
            // The requested size: the bytes past it are the canary.
            k if k.is_hardened() => return hardened::usable_size(p, k),
            // SAFETY: `owns` validated p as a live large block.
            k => unsafe { large::usable_size(p, k) },
        })
    }

    /// Whether `p` is the start of a live block in memory hakmem manages.
    pub fn owns(p: *const u8) -> bool {
        match segmap::lookup(p) {
            Chunk::Foreign => false,
            k if k.is_superslab() => superslab::owns_block(p),
            k if k.is_hardened() => hardened::usable_size(p, k).is_some(),
            k => large::owns(p, k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raw;

    #[test]
    fn sizes_and_alignments_round_trip() {
        for &size in &[
            0usize,
            1,
            8,
            9,
            16,
            100,
            1024,
            1025,
            8192,
            65536,
            65537,
            1 << 20,
        ] {
            for &align in &[1usize, 8, 16, 64, 4096, 65536, 1 << 21] {
                // SAFETY: powers of two; each block is written within bounds and freed once.
                unsafe {
                    let p = raw::alloc(size, align);
                    assert!(!p.is_null(), "size {size} align {align}");
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if size >= 16 {
                        assert_eq!(p as usize % 16, 0);
                    }
                    assert!(raw::owns(p));
                    assert!(raw::usable_size(p).unwrap() >= size);
                    core::ptr::write_bytes(p, 0xab, size);
                    raw::free(p);
                }
            }
        }
    }

    #[test]
    fn a_full_slab_comes_back_once_an_eighth_of_its_blocks_are_free() {
        use crate::superslab::{slab_of, state};
        // 1792-byte blocks (a class no other test uses): 36 to a 64 KiB slab.
        const PER_SLAB: usize = 36;
        // SAFETY: every block is live until freed once here; the slab record
        // is read on this thread, which owns it.
        unsafe {
            let ps: Vec<*mut u8> = (0..PER_SLAB * 4).map(|_| raw::alloc(1700, 16)).collect();
            // A slab in the middle: wholly this loop's, and no longer current.
            let s = slab_of(ps[PER_SLAB * 2]);
            let mine: Vec<*mut u8> = ps.iter().copied().filter(|&p| slab_of(p) == s).collect();
            assert_eq!(mine.len(), PER_SLAB);
            assert_eq!((*s).state, state::FULL);
            let gap = PER_SLAB / 8;
            for &p in &mine[..gap - 1] {
                raw::free(p);
            }
            assert_eq!(
                (*s).state,
                state::FULL,
                "a few free blocks keep it off allocation"
            );
            raw::free(mine[gap - 1]);
            assert_eq!((*s).state, state::PARTIAL);
            for &p in ps.iter().filter(|p| !mine[..gap].contains(p)) {
                raw::free(p);
            }
        }
    }

    #[test]
    fn zero_sized_blocks_are_unique() {
        // SAFETY: size 0 blocks are valid pointers that are only freed.
        unsafe {
            let a = raw::alloc(0, 1);
            let b = raw::alloc(0, 1);
            assert!(!a.is_null() && !b.is_null() && a != b);
            raw::free(a);
            raw::free(b);
        }
    }

    #[test]
    fn realloc_keeps_contents_and_stays_in_place_when_it_fits() {
        // SAFETY: blocks are used within their sizes and freed once.
        unsafe {
            let p = raw::alloc(100, 8);
            core::ptr::write_bytes(p, 7, 100);
            assert_eq!(raw::realloc(p, 110, 8), p);
            let q = raw::realloc(p, 5000, 8);
            assert!((0..100).all(|i| *q.add(i) == 7));
            let r = raw::realloc(q, 3 << 20, 8);
            assert!((0..100).all(|i| *r.add(i) == 7));
            let s = raw::realloc(r, 4 << 20, 8);
            assert!((0..100).all(|i| *s.add(i) == 7));
            raw::free(s);
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_even_when_recycled() {
        for size in [24usize, 700, 5000, 40_000, 200_000] {
            // SAFETY: blocks are used within their sizes and freed once.
            unsafe {
                let p = raw::alloc(size, 8);
                core::ptr::write_bytes(p, 0xff, size);
                raw::free(p);
                let q = raw::alloc_zeroed(size, 8);
                assert!((0..size).all(|i| *q.add(i) == 0), "size {size}");
                raw::free(q);
            }
        }
    }

    #[test]
    fn foreign_pointers_are_not_owned() {
        let x = 5u64;
        assert!(!raw::owns(&x as *const u64 as *const u8));
        // SAFETY: try_free does nothing for pointers hakmem does not manage.
        assert!(!unsafe { raw::try_free(&x as *const u64 as *mut u8) });
    }

    /// Whether the page at `p` is mapped: MAP_FIXED_NOREPLACE refuses a
    /// mapped range with EEXIST (and a page it did place is removed again).
    fn page_is_mapped(p: usize) -> bool {
        // SAFETY: NOREPLACE never replaces an existing mapping; a page it
        // placed at a free address is unmapped at once.
        unsafe {
            let q = libc::mmap(
                p as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            );
            if q == libc::MAP_FAILED {
                return *libc::__errno_location() == libc::EEXIST;
            }
            libc::munmap(q, 4096);
            false
        }
    }

    #[test]
    fn no_foreign_mapping_can_sit_in_a_large_blocks_chunks() {
        // Page blocks, run blocks and direct blocks: every page of every chunk
        // they touch is mapped (reserved by hakmem), so no other mapping can
        // land there and a pointer into them is always hakmem's to judge.
        for size in [300_000usize, 5 << 20, 40 << 20] {
            // SAFETY: each block is live until try_free, which frees it once.
            unsafe {
                let p = raw::alloc(size, 16);
                assert!(!p.is_null());
                let first = p as usize & !((2 << 20) - 1);
                let last = (p as usize + size - 1) & !((2 << 20) - 1);
                let mut chunk = first;
                while chunk <= last {
                    for off in [0, 1 << 20, (2 << 20) - 4096] {
                        assert!(page_is_mapped(chunk + off), "{size}: {:#x}", chunk + off);
                        assert!(raw::manages((chunk + off) as *const u8));
                    }
                    chunk += 2 << 20;
                }
                let inside = p.add(size / 2);
                assert!(raw::manages(p) && raw::manages(inside));
                assert!(!raw::owns(inside));
                assert_eq!(raw::usable_size(inside), None);
                assert!(raw::try_free(p));
                // Freed, the arena's chunks stay hakmem's (a direct mapping
                // is gone and forgotten).
                assert_eq!(raw::manages(p), size < (32 << 20));
            }
        }
    }

    #[test]
    fn impossible_requests_return_null() {
        // SAFETY: null results are not dereferenced.
        unsafe {
            assert!(raw::alloc(usize::MAX, 8).is_null());
            assert!(raw::alloc(usize::MAX - 4096, 4096).is_null());
            assert!(raw::alloc_zeroed(isize::MAX as usize, 16).is_null());
        }
    }
}
