//! Thread churn: 10,000 short-lived threads each allocate 100 to 300 tiny
//! blocks, free most of them, and exit holding the rest, which the main thread
//! frees after the owner is gone. Whatever a thread caches must be handed
//! back at its exit: RSS afterwards stays within 2x of RSS before.

mod common;

use common::Block;

use std::alloc::Layout;

use hakmem::Hakmem;
use hakmem_workload::SplitMix64;

#[global_allocator]
static A: Hakmem = Hakmem;

const THREADS: usize = 10_000;
/// Threads alive at once.
const BATCH: usize = 16;
/// Batches run before the "before" measurement, so that the allocator, the
/// thread stack cache and this test's own bookkeeping are warm.
const WARMUP_BATCHES: usize = 4;

/// One short-lived thread's work; returns the blocks it leaves to the main thread.
fn short_life(i: usize) -> Vec<Block> {
    let mut rng = SplitMix64::new(i as u64);
    let n = 100 + (rng.next_u64() % 200) as usize;
    let blocks: Vec<Block> = (0..n)
        .map(|k| {
            // Tiny sizes, one in four up to 1 KiB.
            let r = rng.next_u64();
            let size = 8 + (r >> 8) as usize % if r & 3 == 0 { 1017 } else { 121 };
            let layout = Layout::from_size_align(size, 8).unwrap();
            Block::alloc(layout, ((i as u64) << 20) | k as u64)
        })
        .collect();
    let mut kept = Vec::new();
    for b in blocks {
        // About one block in ten is kept.
        if rng.next_u64() < u64::MAX / 10 {
            kept.push(b);
        } else {
            b.free();
        }
    }
    kept
}

fn run_batch(first: usize) {
    let handles: Vec<_> = (first..first + BATCH)
        .map(|i| {
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || short_life(i))
                .expect("spawn")
        })
        .collect();
    // join() returns after the thread has exited, so these frees reach blocks
    // whose owning thread is gone.
    for h in handles {
        h.join()
            .expect("thread panicked")
            .into_iter()
            .for_each(Block::free);
    }
}

#[test]
fn ten_thousand_threads_leave_rss_within_2x() {
    let batches = THREADS / BATCH;
    for b in 0..WARMUP_BATCHES {
        run_batch(b * BATCH);
    }
    let rss_before = common::rss_bytes();
    let mapped_before = hakmem::stats().mapped_bytes;
    for b in WARMUP_BATCHES..batches {
        run_batch(b * BATCH);
    }
    let rss_after = common::rss_bytes();
    let mapped_after = hakmem::stats().mapped_bytes;
    assert!(
        rss_after <= 2 * rss_before,
        "RSS grew from {:.1} MiB to {:.1} MiB over {THREADS} threads",
        common::mib(rss_before),
        common::mib(rss_after)
    );
    // Mapped but untouched memory is invisible to RSS; a per-thread leak of
    // even 4 KiB would still show here.
    assert!(
        mapped_after <= 2 * mapped_before + (32 << 20),
        "hakmem's mapped bytes grew from {:.1} MiB to {:.1} MiB over {THREADS} threads",
        common::mib(mapped_before),
        common::mib(mapped_after)
    );
}
