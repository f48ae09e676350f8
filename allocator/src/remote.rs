//! Remote frees: blocks freed by a thread that does not own their slab.
//!
//! Each thread heap has one inbox, a lock-free stack of blocks. Any thread
//! pushes with a CAS; only the owner takes, and it takes the whole stack at once
//! with a swap, then frees the batch locally.
//!
//! Invariants:
//! - Push-only plus take-all has no ABA hazard: a taken node is never compared
//!   against again (the release thread also takes, with the same swap).
//! - A block in an inbox still counts as used in its slab, so the slab cannot be
//!   recycled while the block waits; the owner heap is never freed (heaps are
//!   reused, not unmapped), so pushing to it is always safe.
//! - A heap no thread owns (`orphan`) is not pushed to: its frees are done
//!   directly under the heap's lock (see `heap::free_orphan`), so memory of
//!   exited threads returns without anyone draining.
//!
//! Double-free tags (default build): a free block's second word holds
//! `TAG_KEY`, written when the block is freed (locally or remotely) and
//! cleared whenever the block is handed out, so a free that finds its block
//! already tagged is a double free, however many other frees came between.
//! The key is random per process, so live data never matches by accident
//! (and a stale tag left in recycled memory is cleared before the block at
//! that address can be freed).

use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

/// A free block: the free-list link, then the double-free tag. Every class
/// is at least 16 bytes, so both words fit.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
    pub(crate) tag: usize,
}

static TAG_KEY: AtomicUsize = AtomicUsize::new(0x5bd1_e995_9e37_79b9);

/// Sets the tag key from the kernel's per-process random bytes (`AT_RANDOM`).
/// Called once at initialisation, before any block is handed out.
pub(crate) fn init_tag_key() {
    // SAFETY: getauxval has no preconditions; AT_RANDOM points at 16 random
    // bytes the kernel placed on the initial stack for the life of the process.
    unsafe {
        let r = libc::getauxval(libc::AT_RANDOM) as *const u8;
        if !r.is_null() {
            let k = ptr::read_unaligned(r.add(8).cast::<usize>());
            TAG_KEY.store(k | 1, Ordering::Relaxed);
        }
    }
}

impl Block {
    /// Whether the block carries the free tag (it was freed and not handed out).
    #[inline(always)]
    pub(crate) fn is_free(&self) -> bool {
        crate::check::CHECKS && self.tag == TAG_KEY.load(Ordering::Relaxed)
    }

    /// Marks a block free; false if it already was (a double free).
    #[inline(always)]
    pub(crate) fn mark_free(&mut self) -> bool {
        if crate::check::CHECKS {
            let key = TAG_KEY.load(Ordering::Relaxed);
            if self.tag == key {
                return false;
            }
            self.tag = key;
        }
        true
    }

    /// Clears the tag of a block being handed out.
    #[inline(always)]
    pub(crate) fn mark_used(&mut self) {
        if crate::check::CHECKS {
            self.tag = 0;
        }
    }
}

#[repr(C, align(64))]
pub(crate) struct Inbox {
    head: AtomicPtr<Block>,
    /// No thread owns the heap: free directly instead of pushing.
    orphan: AtomicBool,
}

impl Inbox {
    pub(crate) const fn new() -> Self {
        Inbox {
            head: AtomicPtr::new(ptr::null_mut()),
            orphan: AtomicBool::new(false),
        }
    }

    /// Whether no thread owns the heap (a relaxed load; re-checked under the
    /// heap's lock by whoever acts on it).
    #[inline(always)]
    pub(crate) fn is_orphan(&self) -> bool {
        self.orphan.load(Ordering::Relaxed)
    }

    /// Changed only under the heap's lock.
    pub(crate) fn set_orphan(&self, v: bool) {
        self.orphan.store(v, Ordering::Relaxed);
    }

    /// Pushes a block freed by another thread.
    ///
    /// # Safety
    /// `b` must be a live block of a slab owned by this inbox's heap, no longer
    /// used by the caller.
    pub(crate) unsafe fn push(&self, b: *mut Block) {
        // SAFETY: forwarded; a single block is a chain of one.
        unsafe { self.push_chain(b, b) }
    }

    /// Pushes a chain `first ..= last` linked through `next`.
    ///
    /// # Safety
    /// As `push`, for every block of the chain.
    pub(crate) unsafe fn push_chain(&self, first: *mut Block, last: *mut Block) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller gave up the chain, so its links are ours.
            unsafe { (*last).next = head };
            match self
                .head
                .compare_exchange_weak(head, first, Ordering::Release, Ordering::Relaxed)
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
                    tag: 0,
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
