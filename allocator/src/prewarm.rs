//! The prewarm box: pay for the first superslab's page faults at start-up.
//!
//! With `prewarm` on, initialisation maps one superslab with its pages
//! pre-faulted and parks it in the pool, so the first thousands of allocations
//! take no page fault. Off (the balanced default), nothing is mapped until it is
//! needed. Invariant: runs once, from initialisation, never on a fast path.

use crate::{options::options, superslab};

pub(crate) fn run() {
    if options().prewarm {
        superslab::prewarm();
    }
}
