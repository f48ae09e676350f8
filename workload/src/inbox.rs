//! A worker's inbox for remote frees: a bounded multi-producer single-consumer
//! ring (D. Vyukov's bounded queue, single-consumer half). Producers claim a
//! cell with one CAS on `tail`; the owner pops without any read-modify-write.
//! No lock anywhere, and no allocation after construction, so handing a block
//! over never disturbs the allocator being measured.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::Block;

/// Pads a value to its own cache lines so producers and the consumer do not
/// false-share (128 bytes: adjacent-line prefetch pairs lines on x86).
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

struct Cell {
    /// `pos` when free for the producer at `pos`, `pos + 1` when it holds that
    /// producer's block, `pos + capacity` once the consumer has taken it.
    seq: AtomicUsize,
    block: UnsafeCell<Option<Block>>,
}

pub(crate) struct Inbox {
    cells: Box<[Cell]>,
    mask: usize,
    tail: Padded<AtomicUsize>,
    /// Only the owning worker (or, after every worker has stopped, the thread
    /// that joined them) pops, so this needs no atomicity, only a home.
    head: Padded<UnsafeCell<usize>>,
}

// SAFETY: cells are handed between threads by the `seq` protocol (a cell's
// `block` is written only by the producer that claimed it through `tail` and
// read only by the consumer after observing the Release store of its `seq`),
// and `head` is touched by one consumer at a time (see `pop`'s contract).
unsafe impl Sync for Inbox {}
// SAFETY: the blocks inside are owned allocations with no thread affinity.
unsafe impl Send for Inbox {}

impl Inbox {
    /// An empty inbox of `capacity` cells (rounded up to a power of two).
    pub(crate) fn new(capacity: usize) -> Inbox {
        let capacity = capacity.next_power_of_two();
        Inbox {
            cells: (0..capacity)
                .map(|i| Cell {
                    seq: AtomicUsize::new(i),
                    block: UnsafeCell::new(None),
                })
                .collect(),
            mask: capacity - 1,
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(UnsafeCell::new(0)),
        }
    }

    /// Hands `b` to the owner; gives it back if the ring is full.
    pub(crate) fn push(&self, b: Block) -> Result<(), Block> {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let cell = &self.cells[pos & self.mask];
            let seq = cell.seq.load(Ordering::Acquire);
            let diff = seq as isize - pos as isize;
            if diff == 0 {
                match self.tail.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` makes this producer the
                        // cell's only writer until it publishes `seq = pos + 1`.
                        unsafe { *cell.block.get() = Some(b) };
                        cell.seq.store(pos + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                // The consumer has not yet emptied this cell from the last lap.
                return Err(b);
            } else {
                pos = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest block handed over, if any.
    ///
    /// # Safety
    /// At most one thread may pop at a time (the owner, or the joiner after it).
    pub(crate) unsafe fn pop(&self) -> Option<Block> {
        // SAFETY: single consumer, per this function's contract.
        let head = unsafe { &mut *self.head.0.get() };
        let cell = &self.cells[*head & self.mask];
        if cell.seq.load(Ordering::Acquire) != *head + 1 {
            return None;
        }
        // SAFETY: `seq == head + 1` (Acquire) means the producer's write of the
        // block happened before, and no producer touches the cell until the
        // Release below hands it back.
        let b = unsafe { (*cell.block.get()).take() };
        cell.seq.store(*head + self.mask + 1, Ordering::Release);
        *head += 1;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ptr::NonNull;
    use std::sync::Arc;

    fn fake(i: usize) -> Block {
        Block {
            ptr: NonNull::new((i + 1) as *mut u8).unwrap(),
            size: i,
        }
    }

    #[test]
    fn fifo_and_full() {
        let q = Inbox::new(4);
        for i in 0..4 {
            assert!(q.push(fake(i)).is_ok());
        }
        assert_eq!(q.push(fake(9)).unwrap_err().size, 9);
        for i in 0..4 {
            // SAFETY: this test is the only consumer.
            assert_eq!(unsafe { q.pop() }.unwrap().size, i);
        }
        // SAFETY: as above.
        assert!(unsafe { q.pop() }.is_none());
        assert!(q.push(fake(5)).is_ok(), "cells are reused after a lap");
    }

    #[test]
    fn many_producers_lose_nothing() {
        let q = Arc::new(Inbox::new(64));
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let q = Arc::clone(&q);
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        let mut b = fake(t * 10_000 + i);
                        while let Err(back) = q.push(b) {
                            b = back;
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        let mut seen = vec![false; 40_000];
        let mut n = 0;
        while n < 40_000 {
            // SAFETY: this thread is the only consumer.
            if let Some(b) = unsafe { q.pop() } {
                assert!(!seen[b.size], "block {} delivered twice", b.size);
                seen[b.size] = true;
                n += 1;
            }
        }
        producers.into_iter().for_each(|p| p.join().unwrap());
        // SAFETY: as above.
        assert!(unsafe { q.pop() }.is_none());
    }
}
