//! The guard pages' reporter: a SIGSEGV/SIGBUS handler that turns a fault in
//! or next to hakmem's memory (a guard page, a malloc(0) block, a freed large
//! block) into one `hakmem:` line and an abort.
//!
//! Invariants:
//! - Installed once, when the hardened profile is turned on (before `main`
//!   in practice, so a language runtime that only installs its own handler
//!   over the default one keeps ours).
//! - The handler neither allocates nor locks. A fault elsewhere restores the
//!   disposition found at installation and returns: the access faults again
//!   and is handled as if hakmem had never been there.

use crate::check;
use crate::segmap::{self, Chunk, CHUNK};

const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The dispositions found at installation, per entry of `SIGNALS`.
static mut PREVIOUS: [core::mem::MaybeUninit<libc::sigaction>; 2] =
    [core::mem::MaybeUninit::zeroed(); 2];

pub(super) fn install() {
    for (i, &sig) in SIGNALS.iter().enumerate() {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler is an `extern "C"` function with the SA_SIGINFO signature.
        // PREVIOUS is written here, once, before the handler can run.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = handler as extern "C" fn(_, _, _) as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(
                sig,
                &sa,
                (&raw mut PREVIOUS).cast::<libc::sigaction>().add(i),
            );
        }
    }
}

/// Whether `a` is in hakmem's memory or in a chunk next to it (an overflow
/// that ran off the end of hakmem's memory).
fn near_hakmem(a: usize) -> bool {
    [a, a.wrapping_add(CHUNK), a.wrapping_sub(CHUNK)]
        .into_iter()
        .any(|x| segmap::lookup(x as *const u8) != Chunk::Foreign)
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    if near_hakmem(addr) {
        let mut buf = [0u8; 128];
        let msg = b"hakmem: heap overflow or use after free: access to a guard page (address 0x";
        buf[..msg.len()].copy_from_slice(msg);
        let mut n = msg.len();
        n += check::write_hex(&mut buf[n..], addr);
        buf[n..n + 2].copy_from_slice(b")\n");
        check::write_stderr(&buf[..n + 2]);
        // SAFETY: abort is async-signal-safe and never returns.
        unsafe { libc::abort() }
    }
    let i = SIGNALS.iter().position(|&s| s == sig).unwrap_or(0);
    // SAFETY: PREVIOUS[i] was filled by `install` before this handler was
    // registered; re-installing it makes the faulting access, which runs
    // again on return, reach the previous disposition.
    unsafe {
        libc::sigaction(
            sig,
            (&raw const PREVIOUS).cast::<libc::sigaction>().add(i),
            core::ptr::null_mut(),
        )
    };
}
