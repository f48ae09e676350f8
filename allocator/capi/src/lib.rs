//! libhakmem.so: hakmem as a drop-in malloc for any Linux program.
//!
//! `LD_PRELOAD=target/release/libhakmem.so PROGRAM` runs PROGRAM on hakmem: this
//! library exports the whole C allocation family (plus glibc's `__libc_*`
//! aliases) and serves it from `hakmem::raw`.
//!
//! Choices, and why:
//! - C++ `operator new`/`delete` are *not* exported. libstdc++'s own operators
//!   call `malloc`/`free` (and `aligned_alloc` for `align_val_t`), so they land
//!   here anyway, and libstdc++ keeps the semantics Rust cannot provide: calling
//!   the `new_handler` and throwing `std::bad_alloc` on failure. The cost is one
//!   extra call per `new`.
//! - `malloc_trim`, `malloc_stats`, `mallinfo2` and `mallinfo` answer with
//!   hakmem's own figures ([`glibc`]); `mallopt` and `malloc_info` are not
//!   exported (glibc's only see glibc's idle arenas, which is harmless).
//! - Pointers hakmem never returned are handed to glibc (see [`foreign`]).
//! - Nothing here allocates, formats or panics: every entry point can be
//!   reached from inside the dynamic loader, `dlsym` or a TLS destructor.
//!   Errors are reported the C way (NULL plus `errno`, or an error code).
//! - `malloc` asks the core for 16-byte alignment (C's `max_align_t`) from 16
//!   bytes up and 8 below, since no C object smaller than 16 bytes needs more;
//!   this is what mimalloc and jemalloc do too, and it lets 8-byte requests use
//!   an 8-byte class.

#![deny(unsafe_op_in_unsafe_fn)]

mod ext;
mod foreign;
mod glibc;

use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use hakmem::raw;

/// The alignment C's malloc promises for a block of `size` bytes.
#[inline(always)]
fn malloc_align(size: usize) -> usize {
    if size < 16 {
        8
    } else {
        16
    }
}

#[cold]
fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e }
}

/// NULL with errno set to ENOMEM: every allocation failure ends here.
#[cold]
fn enomem() -> *mut c_void {
    set_errno(libc::ENOMEM);
    null_mut()
}

/// `size` bytes aligned to `align` (a power of two), or NULL with ENOMEM.
#[inline(always)]
unsafe fn alloc(size: usize, align: usize) -> *mut c_void {
    // SAFETY: callers pass a power-of-two alignment.
    let p = unsafe { raw::alloc(size, align) };
    if p.is_null() {
        return enomem();
    }
    p.cast()
}

/// memalign's rules, which valloc and pvalloc share: alignments up to 16 are
/// plain malloc, others are rounded up to a power of two, and the ones no power
/// of two can reach fail with EINVAL.
unsafe fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    if align <= 16 {
        // SAFETY: a power-of-two alignment.
        return unsafe { alloc(size, malloc_align(size)) };
    }
    match align.checked_next_power_of_two() {
        // SAFETY: a power of two.
        Some(a) => unsafe { alloc(size, a) },
        None => {
            set_errno(libc::EINVAL);
            null_mut()
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it reads a value the loader cached.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Frees a block hakmem does not own.
#[cold]
unsafe fn free_foreign(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    match foreign::libc() {
        // SAFETY: p is not hakmem's, so (by free's contract) it is glibc's.
        foreign::Lookup::Found(libc) if libc.may_own_blocks() => unsafe { libc.free(p) },
        foreign::Lookup::Found(_) => raw::fatal(
            "free(): invalid pointer (neither hakmem's nor glibc's)",
            p.cast(),
        ),
        // Freeing it is impossible while the lookup is running; leaking one
        // block is the only safe way out.
        foreign::Lookup::Recursive => {}
        foreign::Lookup::Missing => {
            raw::fatal("free(): invalid pointer (not from hakmem)", p.cast())
        }
    }
}

/// realloc for a block hakmem does not own: moved into a hakmem block.
#[cold]
unsafe fn realloc_foreign(p: *mut c_void, size: usize) -> *mut c_void {
    let libc = match foreign::libc() {
        foreign::Lookup::Found(libc) if libc.may_own_blocks() => libc,
        _ => raw::fatal("realloc(): invalid pointer (not from hakmem)", p.cast()),
    };
    // SAFETY: p is glibc's live block (realloc's contract), so glibc knows its
    // usable size; the new block is a fresh hakmem block of at least `size`
    // bytes, so copying min(old, size) bytes stays inside both.
    unsafe {
        let old = libc.usable_size(p);
        let n = alloc(size, malloc_align(size));
        if !n.is_null() {
            core::ptr::copy_nonoverlapping(p.cast::<u8>(), n.cast::<u8>(), old.min(size));
            libc.free(p);
        }
        n
    }
}

/// Allocates `size` bytes; `malloc(0)` returns a unique pointer.
///
/// # Safety
/// C's contract: the result must be freed once, with this library's `free`.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: any size is fine for the fast path.
    let p = unsafe { raw::malloc_fast(size) };
    if !p.is_null() {
        return p.cast();
    }
    // SAFETY: as for malloc.
    unsafe { malloc_slow(size) }
}

/// Out of line, so that `malloc`'s fast path needs no stack frame.
#[cold]
#[inline(never)]
unsafe fn malloc_slow(size: usize) -> *mut c_void {
    // SAFETY: malloc_align returns a power of two.
    unsafe { alloc(size, malloc_align(size)) }
}

/// Frees `p` (NULL is a no-op).
///
/// # Safety
/// `p` must be NULL or a live block from this process's malloc family.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: p is null or live (caller's contract); try_free leaves blocks
    // that are not hakmem's alone (null among them: its chunk is never
    // hakmem's), and those are glibc's.
    unsafe {
        if !raw::try_free(p.cast()) {
            free_foreign(p)
        }
    }
}

/// Zeroed array of `n` elements of `size` bytes; NULL with ENOMEM on overflow.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        return enomem();
    };
    // SAFETY: malloc_align returns a power of two.
    let p = unsafe { raw::alloc_zeroed(total, malloc_align(total)) };
    if p.is_null() {
        return enomem();
    }
    p.cast()
}

/// Resizes `p`. `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p`
/// and returns NULL (glibc's behaviour); on failure `p` is left untouched.
///
/// # Safety
/// `p` must be NULL or a live block from this process's malloc family.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: p is NULL or live (caller's contract); raw::realloc only sees
    // blocks hakmem owns, the rest are glibc's.
    unsafe {
        if p.is_null() {
            return malloc(size);
        }
        if size == 0 {
            free(p);
            return null_mut();
        }
        if !raw::manages(p.cast()) {
            return realloc_foreign(p, size);
        }
        let n = raw::realloc(p.cast(), size, malloc_align(size));
        if n.is_null() {
            return enomem();
        }
        n.cast()
    }
}

/// `realloc(p, n * size)`, but NULL with ENOMEM (and `p` untouched) on overflow.
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded with the caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => enomem(),
    }
}

/// Stores in `*out` a block of `size` bytes aligned to `align`. Returns EINVAL
/// if `align` is not a power of two multiple of `sizeof(void *)`, ENOMEM if the
/// block cannot be had (`*out` is then left alone), 0 otherwise.
///
/// # Safety
/// `out` must be valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // A power of two is a multiple of sizeof(void *) exactly when it is not smaller.
    if !align.is_power_of_two() || align < core::mem::size_of::<*mut c_void>() {
        return libc::EINVAL;
    }
    // SAFETY: a power-of-two alignment; `out` is writable (caller's contract).
    unsafe {
        let p = raw::alloc(size, align.max(malloc_align(size)));
        if p.is_null() {
            return libc::ENOMEM;
        }
        *out = p.cast();
    }
    0
}

/// C11 aligned allocation with glibc 2.38's (C17's) rule: an alignment that is
/// not a power of two fails with EINVAL. Any size is accepted, as in glibc.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    // SAFETY: a power of two.
    unsafe { alloc(size, align.max(malloc_align(size))) }
}

/// glibc's memalign: alignments up to 16 are plain malloc, others are rounded
/// up to a power of two, and one above `SIZE_MAX / 2 + 1` fails with EINVAL.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { memalign_impl(align, size) }
}

/// A page-aligned block.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { memalign_impl(page_size(), size) }
}

/// A page-aligned block, its size rounded up to whole pages.
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.checked_add(page - 1) {
        // SAFETY: forwarded.
        Some(s) => unsafe { memalign_impl(page, s & !(page - 1)) },
        None => enomem(),
    }
}

/// Bytes usable in `p` (at least what was asked for); 0 for NULL.
///
/// # Safety
/// `p` must be NULL or a live block from this process's malloc family.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    if raw::manages(p.cast()) {
        return match raw::usable_size(p.cast()) {
            Some(n) => n,
            None => raw::fatal(
                "malloc_usable_size(): invalid pointer or freed block",
                p.cast(),
            ),
        };
    }
    match foreign::libc() {
        // SAFETY: not hakmem's, so glibc's live block (caller's contract).
        foreign::Lookup::Found(libc) if libc.may_own_blocks() => unsafe { libc.usable_size(p) },
        _ => raw::fatal(
            "malloc_usable_size(): invalid pointer (not from hakmem)",
            p.cast(),
        ),
    }
}

/// C23 `free_sized`: the size hint is not needed.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: forwarded.
    unsafe { free(p) }
}

/// C23 `free_aligned_sized`: the hints are not needed.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _align: usize, _size: usize) {
    // SAFETY: forwarded.
    unsafe { free(p) }
}

/// The old SunOS name of `free`, still exported by glibc.
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { free(p) }
}

// glibc's `__libc_*` names: libraries that wrap malloc (and glibc's own
// malloc-debug library) call these to reach "the real" allocator, which must be
// us, or they would hand our blocks to glibc's arenas.

/// Alias of [`malloc`].
///
/// # Safety
/// As [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { malloc(size) }
}

/// Alias of [`free`].
///
/// # Safety
/// As [`free`].
#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { free(p) }
}

/// Alias of [`calloc`].
///
/// # Safety
/// As [`calloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_calloc(n: usize, size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { calloc(n, size) }
}

/// Alias of [`realloc`].
///
/// # Safety
/// As [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { realloc(p, size) }
}

/// Alias of [`memalign`].
///
/// # Safety
/// As [`memalign`].
#[no_mangle]
pub unsafe extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { memalign_impl(align, size) }
}

/// Alias of [`valloc`].
///
/// # Safety
/// As [`valloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { valloc(size) }
}

/// Alias of [`pvalloc`].
///
/// # Safety
/// As [`pvalloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    // SAFETY: forwarded.
    unsafe { pvalloc(size) }
}
