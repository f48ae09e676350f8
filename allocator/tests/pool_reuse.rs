//! Thread churn under the default (`balanced`, lean) profile: threads that
//! fill a few MiB of tiny blocks, free them and exit, round after round, hand
//! their slabs back to the shared pool, and the next round's threads take
//! them again. Decommitting each slab as it went back made every round pay a
//! syscall per slab and fault every page in again (the thread-churn stress
//! benchmark spent twice mimalloc's time on it): a pooled slab now keeps its
//! pages for the purge delay. Lean still means lean: once the churn stops,
//! the pooled slabs' pages go back to the OS without any call from the
//! program.

use std::alloc::{GlobalAlloc, Layout};
use std::time::{Duration, Instant};

use hakmem::Hakmem;

#[global_allocator]
static A: Hakmem = Hakmem;

const ROUNDS: usize = 60;
const THREADS: usize = 2;
/// Per thread and round: 4 MiB of 256-byte blocks, 64 small slabs.
const BLOCKS: usize = 16 << 10;
const SIZE: usize = 256;

fn fill_and_free() {
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    let mut blocks = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        // SAFETY: a valid, non-zero-sized layout; the block is freed below
        // with the same layout.
        let p = unsafe { A.alloc(layout) };
        assert!(!p.is_null());
        // SAFETY: p is a fresh block of SIZE bytes.
        unsafe { p.write_bytes(i as u8, SIZE) };
        blocks.push(p);
    }
    for p in blocks {
        // SAFETY: allocated above with `layout`, freed once.
        unsafe { A.dealloc(p, layout) };
    }
}

#[test]
fn churned_threads_reuse_pooled_slabs_and_lean_still_returns_them() {
    assert_eq!(hakmem::options().profile, hakmem::Profile::Balanced);
    // Warm-up round: the pool's superslabs get mapped once.
    std::thread::spawn(fill_and_free).join().unwrap();
    let before = hakmem::stats();
    let t0 = Instant::now();
    for _ in 0..ROUNDS {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| std::thread::spawn(fill_and_free))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    let churn = t0.elapsed();
    let during = hakmem::stats();
    let madvise = during.madvise - before.madvise;
    // Each round hands back and takes again 128 slabs; decommitting them as
    // they went back cost about that many calls per round. A round that
    // takes longer than the purge delay (a slow debug build, a loaded
    // machine) may see its predecessor's slabs purged: allow one call per
    // slab for every delay's worth of the churn's time.
    let allowed = 128 * (churn.as_millis() as u64 / 100 + 1);
    println!("churn: {ROUNDS} rounds in {churn:?}, {madvise} madvise (allowed {allowed})");
    assert!(
        madvise <= allowed,
        "{madvise} madvise calls over {ROUNDS} rounds of thread churn in {churn:?}: pooled \
         slabs were decommitted as they went back (allowed {allowed})"
    );
    // Lean: what the exited threads left in the pool goes back on its own.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hakmem::stats().madvise == during.madvise && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = hakmem::stats();
    assert!(
        after.madvise > during.madvise,
        "no pooled slab was decommitted within 5 s after the churn stopped ({after:?})"
    );
}
