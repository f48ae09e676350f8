//! The prewarm box: pay for the first superslab's page faults up front.
//!
//! With `prewarm` on, one superslab is mapped with its pages pre-faulted and
//! parked in the pool, so the first thousands of allocations take no page
//! fault. Off (the balanced default), nothing is mapped until it is needed.
//!
//! Invariants: runs at most once per process (a refused mapping lets a later
//! call try again), never on a fast path. It runs from initialisation when the
//! environment turns `prewarm` on, and from `set_options` when a program turns
//! it on later (soakd applies its profile after the allocator started);
//! turning it off again leaves the superslab to the release policy like any
//! other.

use crate::{options, stats, superslab};
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Set once the prewarm ran (or is running) in this process.
static DONE: AtomicBool = AtomicBool::new(false);

/// The superslab the prewarm mapped, for the tests.
#[cfg(test)]
static AT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Runs the prewarm if the option is on and it has not run yet.
pub(crate) fn run() {
    if !options::now::prewarm() || DONE.swap(true, Relaxed) {
        return;
    }
    let ss = superslab::prewarm();
    if ss.is_null() {
        DONE.store(false, Relaxed);
        return;
    }
    #[cfg(test)]
    AT.store(ss as usize, Relaxed);
    stats::PREWARMED.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{options, set_options};

    /// `prewarm` turned on after start-up (as soakd does) maps one
    /// pre-faulted superslab, once.
    #[test]
    fn turning_prewarm_on_later_prewarms_once() {
        let before = stats::stats().prewarmed;
        let was = options();
        let mut o = was;
        o.prewarm = true;
        set_options(o);
        let s = stats::stats();
        assert_eq!(s.prewarmed, 1, "set_options(prewarm on) prewarms");
        if before == 0 {
            // This very call mapped it: its pages are resident (other tests
            // may have taken and handed back a slab or two meanwhile).
            let ss = AT.load(Relaxed) as *mut u8;
            let pages = superslab::SUPERSLAB / crate::os::PAGE;
            let mut resident = vec![0u8; pages];
            // SAFETY: the superslab is a live 2 MiB mapping of hakmem's (an
            // arena chunk, never unmapped); one byte per page.
            let r =
                unsafe { libc::mincore(ss.cast(), superslab::SUPERSLAB, resident.as_mut_ptr()) };
            assert_eq!(r, 0);
            let n = resident.iter().filter(|&&b| b & 1 == 1).count();
            assert!(n * 4 >= pages * 3, "{n} of {pages} pages resident");
        }
        set_options(o);
        set_options(was);
        set_options(o);
        assert_eq!(stats::stats().prewarmed, 1, "at most once per process");
        set_options(was);
    }
}
