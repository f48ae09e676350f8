//! Pointers hakmem never handed out ("foreign" pointers).
//!
//! A process can hold blocks from glibc's own malloc even when hakmem is
//! preloaded: when libhakmem.so is dlopen'ed or linked after libc, glibc served
//! every allocation made before that, and a program can also call glibc's
//! malloc explicitly through a `dlsym` handle on libc.so.6. Passing such a block
//! to our `free`, `realloc` or `malloc_usable_size` must not crash the program,
//! so those functions hand it to glibc's own `free` / `malloc_usable_size`.
//!
//! A pointer that is neither hakmem's nor glibc's (a stack or static buffer,
//! an `mmap`ed page) must not reach glibc either: its `free` would read a
//! made-up chunk header and might not stop. While glibc's malloc holds no block
//! at all (`mallinfo2`: nothing in use; the usual case under `LD_PRELOAD`, where
//! glibc's malloc is never called), every foreign pointer is such a pointer,
//! and hakmem rejects it itself with its `hakmem:` message.
//!
//! glibc's functions are looked up lazily, the first time a foreign pointer
//! shows up, never during hakmem's initialisation: `dlopen`/`dlsym` allocate
//! (through our malloc), which is fine once hakmem is up. They are looked up on
//! the libc.so.6 handle rather than with `RTLD_NEXT` so that the lookup finds
//! glibc's definitions whether libhakmem.so was preloaded, linked or dlopen'ed.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

type FreeFn = unsafe extern "C" fn(*mut c_void);
type UsableSizeFn = unsafe extern "C" fn(*mut c_void) -> usize;
type MallinfoFn = unsafe extern "C" fn() -> libc::mallinfo2;

/// glibc's `free`, as an address; 0 until resolved. Written after `USABLE_SIZE`
/// with release ordering, so a reader that sees it also sees `USABLE_SIZE`.
static FREE: AtomicUsize = AtomicUsize::new(0);
/// glibc's `malloc_usable_size`, as an address.
static USABLE_SIZE: AtomicUsize = AtomicUsize::new(0);
/// glibc's `mallinfo2`, as an address; 0 if this glibc lacks it.
static MALLINFO: AtomicUsize = AtomicUsize::new(0);
/// Set once glibc's malloc was seen holding blocks: from then on foreign
/// pointers go to glibc, which judges them itself (never cleared, so the
/// arena walk of `mallinfo2` runs only until glibc is first seen in use).
static GLIBC_IN_USE: AtomicBool = AtomicBool::new(false);
/// `pthread_self()` of the thread that is resolving, 0 when none: if the lookup
/// itself frees a foreign pointer, the inner call must not start a second lookup.
static RESOLVER: AtomicUsize = AtomicUsize::new(0);

/// glibc's functions for foreign blocks.
#[derive(Clone, Copy)]
pub struct Libc {
    free: FreeFn,
    usable_size: UsableSizeFn,
}

/// What a lookup found.
pub enum Lookup {
    Found(Libc),
    /// This thread is inside the lookup already (dlsym freed a foreign block).
    Recursive,
    /// No glibc in this process (or it lacks the functions).
    Missing,
}

/// glibc's functions, resolving them on first use.
pub fn libc() -> Lookup {
    if let Some(l) = resolved() {
        return Lookup::Found(l);
    }
    // SAFETY: pthread_self has no preconditions and does not allocate.
    let me = unsafe { libc::pthread_self() } as usize;
    let owner = match RESOLVER.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => true,
        Err(other) if other == me => return Lookup::Recursive,
        // Another thread is resolving: resolving again in parallel is harmless
        // (same answer) and cannot deadlock the way waiting for it could.
        Err(_) => false,
    };
    // SAFETY: the names are NUL-terminated literals; dlopen with RTLD_NOLOAD only
    // returns a handle for the libc.so.6 already mapped into this process, and
    // dlsym on it yields glibc's own definitions with these exact C signatures.
    let found = unsafe {
        let h = libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
        if h.is_null() {
            None
        } else {
            let f = libc::dlsym(h, c"free".as_ptr()) as usize;
            let u = libc::dlsym(h, c"malloc_usable_size".as_ptr()) as usize;
            let m = libc::dlsym(h, c"mallinfo2".as_ptr()) as usize;
            (f != 0 && u != 0).then_some((f, u, m))
        }
    };
    if let Some((f, u, m)) = found {
        MALLINFO.store(m, Ordering::Relaxed);
        USABLE_SIZE.store(u, Ordering::Relaxed);
        FREE.store(f, Ordering::Release);
    }
    if owner {
        RESOLVER.store(0, Ordering::Release);
    }
    resolved().map_or(Lookup::Missing, Lookup::Found)
}

fn resolved() -> Option<Libc> {
    let f = FREE.load(Ordering::Acquire);
    if f == 0 {
        return None;
    }
    // SAFETY: both addresses were stored from dlsym lookups of glibc's `free`
    // and `malloc_usable_size`, which have exactly these signatures; FREE is
    // non-zero only after USABLE_SIZE was stored (release/acquire above).
    unsafe {
        Some(Libc {
            free: core::mem::transmute::<usize, FreeFn>(f),
            usable_size: core::mem::transmute::<usize, UsableSizeFn>(
                USABLE_SIZE.load(Ordering::Relaxed),
            ),
        })
    }
}

impl Libc {
    /// Frees a block glibc's malloc returned.
    ///
    /// # Safety
    /// `p` must be a live block from glibc's malloc.
    pub unsafe fn free(self, p: *mut c_void) {
        // SAFETY: forwarded to the allocator that owns p (caller's contract).
        unsafe { (self.free)(p) }
    }

    /// Whether glibc's malloc may own a foreign pointer: false only when it
    /// holds no block at all, so that the pointer cannot be a live block of
    /// any allocator in the process.
    pub fn may_own_blocks(self) -> bool {
        if GLIBC_IN_USE.load(Ordering::Relaxed) {
            return true;
        }
        let m = MALLINFO.load(Ordering::Relaxed);
        if m == 0 {
            // An old glibc without mallinfo2: it judges the pointer itself.
            return true;
        }
        // SAFETY: `m` was stored (before FREE, which `resolved` saw) from a
        // dlsym lookup of glibc's `mallinfo2`, which has this signature; it
        // neither allocates nor reads anything of ours.
        let info = unsafe { core::mem::transmute::<usize, MallinfoFn>(m)() };
        let in_use = info.uordblks + info.hblkhd > 0;
        if in_use {
            GLIBC_IN_USE.store(true, Ordering::Relaxed);
        }
        in_use
    }

    /// glibc's usable size of one of its blocks.
    ///
    /// # Safety
    /// `p` must be a live block from glibc's malloc.
    pub unsafe fn usable_size(self, p: *mut c_void) -> usize {
        // SAFETY: as in `free`.
        unsafe { (self.usable_size)(p) }
    }
}
