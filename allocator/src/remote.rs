//! Remote frees: blocks freed by a thread that does not own their slab.
//!
//! Each thread heap has one inbox, a lock-free stack of blocks. Any thread
//! pushes with a CAS; only the owner takes, and it takes the whole stack at once
//! with a swap, then frees the batch locally.
//!
//! Invariants:
//! - Push-only plus take-all has no ABA hazard: a taken node is never compared
//!   against again.
//! - A block in an inbox still counts as used in its slab, so the slab cannot be
//!   recycled while the block waits; the owner heap is never freed (heaps are
//!   reused, not unmapped), so pushing to it is always safe.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// A free block's first word links it into a list.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
}

#[repr(C, align(64))]
pub(crate) struct Inbox {
    head: AtomicPtr<Block>,
}

impl Inbox {
    pub(crate) const fn new() -> Self {
        Inbox {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes a block freed by another thread.
    ///
    /// # Safety
    /// `b` must be a live block of a slab owned by this inbox's heap, no longer
    /// used by the caller.
    pub(crate) unsafe fn push(&self, b: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller gave up `b`, so its first word is ours to link.
            unsafe { (*b).next = head };
            match self
                .head
                .compare_exchange_weak(head, b, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Whether blocks are waiting (a plain load).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Takes every waiting block, as a list linked through `next`.
    pub(crate) fn take_all(&self) -> *mut Block {
        if self.is_empty() {
            return ptr::null_mut();
        }
        self.head.swap(ptr::null_mut(), Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_pushes_are_all_taken_once() {
        static INBOX: Inbox = Inbox::new();
        const PER: usize = 1000;
        let blocks: Vec<usize> = (0..4 * PER)
            .map(|_| {
                Box::into_raw(Box::new(Block {
                    next: ptr::null_mut(),
                })) as usize
            })
            .collect();
        std::thread::scope(|s| {
            for chunk in blocks.chunks(PER) {
                s.spawn(move || {
                    for &b in chunk {
                        // SAFETY: each block is pushed exactly once and not used after.
                        unsafe { INBOX.push(b as *mut Block) };
                    }
                });
            }
        });
        let mut seen = Vec::new();
        let mut b = INBOX.take_all();
        while !b.is_null() {
            seen.push(b as usize);
            // SAFETY: taken blocks are ours; each came from Box::into_raw.
            unsafe {
                let next = (*b).next;
                drop(Box::from_raw(b));
                b = next;
            }
        }
        seen.sort_unstable();
        let mut expected = blocks.clone();
        expected.sort_unstable();
        assert_eq!(seen, expected);
        assert!(INBOX.is_empty());
    }
}
