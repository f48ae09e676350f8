//! The release thread: gives back the memory that no allocation or free of
//! its owner would give back, because the owner is idle or gone.
//!
//! Every `release::TICK_MS` it runs `heap::reclaim_pass`: an idle heap's
//! spares and cached slabs go back to the pool, the slabs whose blocks all
//! came back to an idle heap's inbox are handed back, and heaps whose thread
//! is gone become orphans; then the large-block cache decays.
//!
//! Invariants:
//! - It exists only in multi-threaded processes: it starts when a second heap
//!   is attached (a single-threaded process, a fork child included, runs the
//!   same pass from its own slow path now and then instead), so programs that
//!   must stay single-threaded (`unshare`, sandboxes) are unaffected.
//! - It is named `hakmem-release`, blocks every signal, never allocates, and
//!   is off under `speed-first` (`release_thread`).
//! - Fork: it holds heap or pool locks only inside a pass, and fork's prepare
//!   handler takes those locks, so the child never inherits a half-done pass;
//!   the child has no release thread until it attaches a second heap.
//! - Unload: `stop` wakes and joins it, so a `dlclose`d private libhakmem
//!   leaves no thread running in unmapped code; at process exit it is only
//!   asked to stop (`request_stop`), never waited for.

use crate::{heap, large, os, release, superslab};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const STOPPING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(IDLE);
/// Futex word: non-zero asks the thread to stop.
static WAKE: AtomicU32 = AtomicU32::new(0);
static THREAD: AtomicUsize = AtomicUsize::new(0);
/// Heaps attached to a thread now.
static ATTACHED: AtomicU32 = AtomicU32::new(0);

/// Whether the release thread runs.
pub(crate) fn running() -> bool {
    STATE.load(Relaxed) == RUNNING
}

/// A thread attached a heap: the second one starts the release thread.
pub(crate) fn heap_attached() {
    let n = ATTACHED.fetch_add(1, Relaxed) + 1;
    if n >= 2 && release::release_thread() && STATE.load(Relaxed) == IDLE {
        start();
    }
}

pub(crate) fn heap_detached() {
    let _ = ATTACHED.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
}

/// When an allocating thread last ran the pass itself (`os::coarse_ms`).
static LAST_OWN_PASS: AtomicU64 = AtomicU64::new(0);

/// The pass from an allocation slow path, when no release thread runs: at
/// most once per `TICK_MS` in the process, as the release thread would (its
/// revoke window costs a process-wide fence when other threads exist).
pub(crate) fn pass_from_slow_path() {
    let now = os::coarse_ms();
    let last = LAST_OWN_PASS.load(Relaxed);
    if now.saturating_sub(last) < release::TICK_MS
        || LAST_OWN_PASS
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    pass(false);
}

/// One pass, on the calling thread (`all`: as if every heap were idle).
pub(crate) fn pass(all: bool) {
    let now = os::coarse_ms();
    heap::reclaim_pass(now, all);
    superslab::purge_pool(now, all);
    large::decay(now);
}

/// Gives back whatever memory can go now (`malloc_trim`): the calling
/// thread's empty slabs, every heap's spares and caches, the large cache.
pub(crate) fn trim() {
    heap::trim();
    superslab::purge_pool(u64::MAX, true);
    large::trim();
}

/// Gives back everything free before this copy of hakmem is unloaded.
pub(crate) fn unload() {
    stop();
    heap::orphan_all();
    superslab::purge_pool(u64::MAX, true);
    large::trim();
    crate::superslab::release_retained();
}

fn start() {
    if STATE
        .compare_exchange(IDLE, RUNNING, AcqRel, Relaxed)
        .is_err()
    {
        return;
    }
    WAKE.store(0, Relaxed);
    // SAFETY: plain pthread calls on local, initialised values. The new thread
    // starts with every signal blocked (the mask is inherited), so the
    // program's signals are never delivered to it; this thread's mask is
    // restored at once. pthread_create may call malloc: no hakmem lock is
    // held here.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        // Default attributes: a smaller stack could not hold a program's
        // large static TLS, and untouched stack pages cost nothing.
        let mut t: libc::pthread_t = 0;
        let r = libc::pthread_create(
            &mut t,
            core::ptr::null(),
            thread_main,
            core::ptr::null_mut(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r == 0 {
            THREAD.store(t as usize, Release);
        } else {
            // Try again at the next attach.
            STATE.store(IDLE, Relaxed);
        }
    }
}

extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"hakmem-release".as_ptr()) };
    let tick = libc::timespec {
        tv_sec: 0,
        tv_nsec: (release::TICK_MS * 1_000_000) as libc::c_long,
    };
    while WAKE.load(Acquire) == 0 {
        // SAFETY: waits on a static futex word with a relative timeout; a
        // spurious or early wake only runs the loop again.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                WAKE.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                0u32,
                &tick,
            );
        }
        if WAKE.load(Acquire) != 0 {
            break;
        }
        // Turned off after it started (set_options): it idles until turned
        // on again rather than exiting, so it can never be left half-stopped.
        if release::release_thread() {
            pass(false);
        }
    }
    core::ptr::null_mut()
}

/// Asks the release thread to stop, without waiting for it (process exit:
/// waiting could deadlock with a thread stopped inside hakmem, say by a
/// signal handler that calls `exit`, and `exit_group` ends the thread anyway).
/// It stays STOPPING: threads that still allocate while the process exits
/// must not start it again.
pub(crate) fn request_stop() {
    if STATE
        .compare_exchange(RUNNING, STOPPING, AcqRel, Relaxed)
        .is_err()
    {
        return;
    }
    WAKE.store(1, Release);
    // SAFETY: wakes waiters on a static futex word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            WAKE.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Stops the release thread and waits for it: a private copy of hakmem is
/// being unloaded, and the thread must not outlive its code.
pub(crate) fn stop() {
    request_stop();
    let t = THREAD.swap(0, AcqRel);
    if t != 0 {
        // SAFETY: `t` is the thread `start` created and nobody joined yet
        // (the swap hands it to one caller only).
        unsafe { libc::pthread_join(t as libc::pthread_t, core::ptr::null_mut()) };
    }
}

/// In a fork child: no release thread exists; only the forking thread's heap
/// is attached.
pub(crate) fn after_fork_in_child(have_heap: bool) {
    STATE.store(IDLE, Relaxed);
    WAKE.store(0, Relaxed);
    THREAD.store(0, Relaxed);
    ATTACHED.store(have_heap as u32, Relaxed);
}
