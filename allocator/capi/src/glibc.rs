//! glibc's malloc introspection calls, answered with hakmem's own figures:
//! `malloc_trim`, `malloc_stats`, `mallinfo2` and `mallinfo`. Without them a
//! program would reach glibc's versions, which only see glibc's idle arenas
//! (all zero, and a trim that frees nothing).

use core::ffi::{c_int, c_void};

/// Gives free memory back to the OS now (hakmem ignores `pad`: it keeps no
/// top-of-heap to pad). Returns 1 if memory went back, 0 otherwise, as glibc.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    hakmem::trim().into()
}

/// Writes hakmem's counters to stderr (one `hakmem: stats ...` line).
#[no_mangle]
pub extern "C" fn malloc_stats() {
    hakmem::print_stats();
}

/// `struct mallinfo2` of `<malloc.h>` (glibc 2.33).
#[repr(C)]
pub struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

/// `struct mallinfo`: the same fields as `int`s (they wrap, as glibc's do).
#[repr(C)]
pub struct Mallinfo {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
}

/// hakmem's memory in glibc's terms: `arena` = bytes of superslabs (small
/// blocks), `hblks` = large blocks live, `hblkhd` = the rest of what hakmem
/// has from the OS (large blocks, their cache, metadata), `uordblks` = bytes
/// in blocks handed out, `fordblks` = the rest; the other fields are 0.
#[no_mangle]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    let u = hakmem::usage();
    let mapped = hakmem::stats().mapped_bytes.max(u.slab_bytes);
    let used = u.small_in_use + u.large_in_use;
    Mallinfo2 {
        arena: u.slab_bytes as usize,
        ordblks: 0,
        smblks: 0,
        hblks: u.large_blocks as usize,
        hblkhd: (mapped - u.slab_bytes) as usize,
        usmblks: 0,
        fsmblks: 0,
        uordblks: used as usize,
        fordblks: mapped.saturating_sub(used) as usize,
        keepcost: 0,
    }
}

/// The old `mallinfo`, from `mallinfo2`.
#[no_mangle]
pub extern "C" fn mallinfo() -> Mallinfo {
    let m = mallinfo2();
    Mallinfo {
        arena: m.arena as c_int,
        ordblks: 0,
        smblks: 0,
        hblks: m.hblks as c_int,
        hblkhd: m.hblkhd as c_int,
        usmblks: 0,
        fsmblks: 0,
        uordblks: m.uordblks as c_int,
        fordblks: m.fordblks as c_int,
        keepcost: 0,
    }
}

/// At unload: a libhakmem that is not the process's malloc (one `dlopen`ed
/// privately, as a plugin's allocator) gives its free memory back, since
/// nothing could reuse it after the `dlclose`. The process's own malloc
/// (preloaded or linked) does nothing here: at exit the kernel takes
/// everything back faster.
extern "C" fn at_unload() {
    // SAFETY: dlsym and dladdr with valid arguments only look things up (the
    // dynamic loader's lock is recursive, so this is safe inside dlclose);
    // `info` is a plain out-parameter. `malloc` itself cannot be compared by
    // address: inside this library a reference to it may bind to the
    // process's malloc, so the object each address lies in is compared.
    unsafe {
        let global = libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr());
        let mut theirs: libc::Dl_info = core::mem::zeroed();
        let mut ours: libc::Dl_info = core::mem::zeroed();
        let here = at_unload as *const c_void;
        if libc::dladdr(here, &mut ours) == 0 {
            return;
        }
        if global.is_null()
            || libc::dladdr(global, &mut theirs) == 0
            || theirs.dli_fbase != ours.dli_fbase
        {
            hakmem::unload();
        }
    }
}

#[used]
#[link_section = ".fini_array"]
static AT_UNLOAD: extern "C" fn() = at_unload;
