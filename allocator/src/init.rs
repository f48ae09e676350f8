//! Process-level set-up: options, the thread-exit hook, fork handlers, and the
//! exit summary.
//!
//! Invariants:
//! - Initialisation never allocates: the dynamic loader, dlsym and TLS set-up
//!   call malloc, possibly before or during it. Everything the fast path needs
//!   is statically initialised, so an allocation that arrives while
//!   initialisation runs (even recursively) simply proceeds.
//! - It runs at load time from `.init_array` (so an LD_PRELOADed library has its
//!   fork handlers before `main`), and lazily on the first heap attach.
//! - Thread exit: the pthread key's destructor re-arms itself until glibc's
//!   last destructor pass, so allocating destructors of other libraries in the
//!   earlier passes keep the heap; one that allocates after that attaches a
//!   heap marked `exiting`, which the release thread reclaims once the thread
//!   is gone. At unload the key is deleted, so a `dlclose`d libhakmem is never
//!   called back.
//! - Fork: the prepare handler takes every lock (registry, each heap, pool,
//!   large cache, the hardened profile's). Locks are re-entrant, so the prepare handlers glibc runs
//!   after ours (those registered before hakmem's, in reverse order) may
//!   malloc and free. The child releases them and turns the other threads'
//!   heaps into orphans, so their blocks come back as the child frees them.

use crate::{
    check, hardened, heap, large, lock, options, os, reclaim, remote, stats, superslab, tls,
};
use core::sync::atomic::{AtomicU8, Ordering};

static STATE: AtomicU8 = AtomicU8::new(0);
const DONE: u8 = 2;

/// The pthread key whose destructor hands a thread's heap back at exit.
static mut EXIT_KEY: libc::pthread_key_t = 0;
static KEY_READY: AtomicU8 = AtomicU8::new(0);

#[inline]
pub(crate) fn ensure() {
    if STATE.load(Ordering::Acquire) != DONE {
        initialise();
    }
}

#[cold]
fn initialise() {
    if STATE
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return; // done, or being done (perhaps by this very thread, recursively)
    }
    options::load_env();
    remote::init_tag_key();
    os::note_pid();
    lock::enable_owner_bias();
    // SAFETY: pthread_key_create and pthread_atfork only register callbacks,
    // which are `extern "C"` functions valid for the life of the process; the
    // key is written once, here, before KEY_READY publishes it.
    unsafe {
        if libc::pthread_key_create(&raw mut EXIT_KEY, Some(thread_exit)) == 0 {
            KEY_READY.store(1, Ordering::Release);
        }
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child));
    }
    crate::prewarm::run();
    STATE.store(DONE, Ordering::Release);
}

/// Arms the thread-exit hook for a thread that just got `h`.
pub(crate) fn register_thread_exit(h: *mut heap::Heap) {
    if KEY_READY.load(Ordering::Acquire) == 1 {
        // SAFETY: the key was created (KEY_READY); setspecific on a small key
        // does not allocate.
        unsafe { libc::pthread_setspecific(EXIT_KEY, h as *const libc::c_void) };
    }
}

/// glibc's `PTHREAD_DESTRUCTOR_ITERATIONS`: key destructors run in at most
/// this many passes.
const DESTRUCTOR_PASSES: usize = 4;
/// Set in the thread's exit-state word once its heap was handed back.
const EXITED: usize = 1 << 8;

/// Whether this thread's exit hook already handed its heap back.
pub(crate) fn thread_has_exited() -> bool {
    tls::state() & EXITED != 0
}

extern "C" fn thread_exit(h: *mut libc::c_void) {
    let st = tls::state();
    let pass = (st & 0xff) + 1;
    if pass < DESTRUCTOR_PASSES && st & EXITED == 0 {
        // Not the last pass: stay armed, so that destructors of other keys
        // that allocate in this pass still find the heap.
        tls::set_state(pass);
        // SAFETY: the key exists (this destructor runs for it); setspecific
        // on a small key does not allocate.
        unsafe { libc::pthread_setspecific(EXIT_KEY, h) };
        return;
    }
    tls::set_state(st | EXITED);
    // SAFETY: the key's value is the heap this thread attached, and the thread
    // is exiting, so nobody else uses it as its own heap.
    unsafe { heap::detach(h.cast()) };
}

extern "C" fn fork_prepare() {
    // First: the hardened lock's holder takes the arena lock inside it.
    hardened::lock_for_fork();
    heap::lock_for_fork();
    superslab::lock_for_fork();
    large::lock_for_fork();
}

extern "C" fn fork_parent() {
    large::unlock_after_fork();
    superslab::unlock_after_fork();
    heap::unlock_after_fork();
    hardened::unlock_after_fork();
}

/// In the child only the forking thread survives: the locks, held by it
/// across fork, are released, and the other threads' heaps become orphans.
extern "C" fn fork_child() {
    fork_parent();
    os::note_pid();
    // Registration may not survive fork; the child is single-threaded here.
    lock::enable_owner_bias();
    heap::orphan_other_threads_heaps();
    reclaim::after_fork_in_child(!tls::get().is_null());
}

extern "C" fn at_load() {
    ensure();
}

extern "C" fn at_unload() {
    reclaim::request_stop();
    if KEY_READY.swap(0, Ordering::AcqRel) == 1 {
        // SAFETY: the key was created at start-up; deleting it means no
        // thread calls `thread_exit` after this library is unmapped.
        unsafe { libc::pthread_key_delete(EXIT_KEY) };
    }
    if options::print_stats_at_exit() {
        print_summary();
    }
}

#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

#[used]
#[link_section = ".fini_array"]
static AT_UNLOAD: extern "C" fn() = at_unload;

/// Writes one summary line of the counters to stderr, without allocating.
pub fn print_summary() {
    let s = stats::stats();
    let mut buf = [0u8; 512];
    let mut n = 0;
    let mut put = |bytes: &[u8], buf: &mut [u8; 512]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(b"hakmem: stats profile=", &mut buf);
    put(options::options().profile.name().as_bytes(), &mut buf);
    let fields: [(&[u8], u64); 9] = [
        (b" mmap=", s.mmap),
        (b" munmap=", s.munmap),
        (b" madvise=", s.madvise),
        (b" mremap=", s.mremap),
        (b" mprotect=", s.mprotect),
        (b" mapped_bytes=", s.mapped_bytes),
        (b" superslabs=", s.superslabs),
        (b" superslabs_released=", s.superslabs_released),
        (b" large_blocks=", s.large_blocks),
    ];
    for (name, v) in fields {
        put(name, &mut buf);
        let mut d = [0u8; 20];
        let k = check::write_dec(&mut d, v);
        put(&d[..k], &mut buf);
    }
    put(b"\n", &mut buf);
    check::write_stderr(&buf[..n]);
}
