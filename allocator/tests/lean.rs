//! Memory-lean behaviour of the profiles, each in its own child process
//! (options are global) selected with `HAKMEM_PROFILE`:
//!
//! - balanced and lean: after a 512 MiB working set of tiny blocks is freed,
//!   RSS falls back to within 10% of where it started, and superslabs went
//!   back to the OS (madvise / munmap counted);
//! - speed-first keeps its memory (no release syscall while freeing) but stays
//!   bounded: a second fill reuses it, peaking within 1.1x of the first.
//!
//! Each child first keeps a 64 MiB baseline of live blocks for the whole run,
//! an application's own data, so that "start" is the RSS of a working process
//! rather than of a bare test binary (about 4 MiB). What stays resident after
//! the free does not grow with the working set: it is the slabs that hold
//! baseline blocks and were topped up by the fill (about one per size class)
//! plus the heap's small cache of empty slabs, some 3-4 MiB in all, which
//! against a bare binary's start would fail a 10% bound that is about the
//! 512 MiB going back.
//!
//! The blocks are chained through their own first bytes, so the test holds no
//! side table whose memory would blur the RSS readings. The children run one
//! at a time, which keeps the machine's memory use at one working set.

mod common;

use std::alloc::{GlobalAlloc, Layout};

use hakmem::{Hakmem, Profile, Stats};
use hakmem_workload::SplitMix64;

#[global_allocator]
static A: Hakmem = Hakmem;

static H: Hakmem = Hakmem;

const WORKING_SET: usize = 512 << 20;
const WARMUP_SET: usize = 8 << 20;
const BASELINE_SET: usize = 64 << 20;
/// Marks a block's header word, so a broken chain fails loudly.
const TAG: u64 = 0x1ea0_0000_0000_0000;

/// Allocates `bytes` of blocks, half 64-byte and half of sizes 16..=1024, each
/// holding the previous block's address and its own size; returns the last.
fn fill(bytes: usize) -> *mut u8 {
    let mut rng = SplitMix64::new(0x1ea0);
    let mut head: *mut u8 = std::ptr::null_mut();
    let mut total = 0;
    while total < bytes {
        let size = if total < bytes / 2 {
            64
        } else {
            16 + (rng.next_u64() % 1009) as usize
        };
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: size > 0.
        let p = unsafe { H.alloc(l) };
        assert!(!p.is_null(), "alloc {size} failed after {total} bytes");
        // SAFETY: the block has at least 16 bytes, 8-aligned.
        unsafe {
            p.cast::<*mut u8>().write(head);
            p.add(8).cast::<u64>().write(TAG | size as u64);
        }
        head = p;
        total += size;
    }
    head
}

/// Frees every block of a chain built by [`fill`].
fn free_chain(mut head: *mut u8) {
    while !head.is_null() {
        // SAFETY: `head` is a live block written by `fill`; it is freed once,
        // after its link has been read.
        unsafe {
            let next = head.cast::<*mut u8>().read();
            let word = head.add(8).cast::<u64>().read();
            assert_eq!(word & !0xffff, TAG, "chain corrupted at {head:p}");
            let size = (word & 0xffff) as usize;
            H.dealloc(head, Layout::from_size_align(size, 8).unwrap());
            head = next;
        }
    }
}

/// One fill and free, with RSS and counters at each step.
struct Cycle {
    peak_rss: u64,
    end_rss: u64,
    filled: Stats,
    freed: Stats,
}

fn cycle() -> Cycle {
    let head = fill(WORKING_SET);
    let peak_rss = common::rss_bytes();
    let filled = hakmem::stats();
    free_chain(head);
    Cycle {
        peak_rss,
        end_rss: common::rss_bytes(),
        filled,
        freed: hakmem::stats(),
    }
}

/// The child's first steps: the profile came from the environment, a small
/// fill and free warms the allocator up, and a baseline is allocated to stay.
/// Returns the baseline (to free at the end) and RSS after all that.
fn start(profile: Profile) -> (*mut u8, u64) {
    common::assert_profile(profile);
    free_chain(fill(WARMUP_SET));
    let baseline = fill(BASELINE_SET);
    (baseline, common::rss_bytes())
}

fn report(profile: Profile, start: u64, c: &Cycle) {
    println!(
        "lean: {}: RSS start {:.1} MiB, peak {:.1} MiB, after free {:.1} MiB ({:+} KiB); \
         stats filled {:?}, freed {:?}",
        profile.name(),
        common::mib(start),
        common::mib(c.peak_rss),
        common::mib(c.end_rss),
        (c.end_rss as i64 - start as i64) / 1024,
        c.filled,
        c.freed
    );
}

/// Panics unless the fill was actually resident.
fn assert_resident(start: u64, c: &Cycle) {
    assert!(
        c.peak_rss >= start + (WORKING_SET as u64) * 3 / 4,
        "RSS peaked at {:.1} MiB from {:.1} MiB: the working set was not resident",
        common::mib(c.peak_rss),
        common::mib(start)
    );
}

/// The child of the balanced and lean tests.
fn gives_memory_back(profile: Profile) {
    let (baseline, start) = start(profile);
    let c = cycle();
    // Bounded time, not at once: slabs that go back to the pool are purged
    // 100 ms later by the release thread, which looks every 250 ms. (Read at
    // once, the figure depends on how long the frees took: a `fast` build
    // frees the 512 MiB before the first slabs are due.)
    std::thread::sleep(std::time::Duration::from_millis(600));
    let c = Cycle {
        end_rss: common::rss_bytes(),
        freed: hakmem::stats(),
        ..c
    };
    report(profile, start, &c);
    assert_resident(start, &c);
    assert!(
        c.end_rss * 10 <= start * 11,
        "{}: RSS after free {:.1} MiB, more than 1.1x its start {:.1} MiB",
        profile.name(),
        common::mib(c.end_rss),
        common::mib(start)
    );
    assert!(
        c.freed.superslabs_released > c.filled.superslabs_released,
        "{}: no superslab released while freeing: {:?} -> {:?}",
        profile.name(),
        c.filled,
        c.freed
    );
    assert!(
        c.freed.madvise + c.freed.munmap > c.filled.madvise + c.filled.munmap,
        "{}: no madvise or munmap while freeing: {:?} -> {:?}",
        profile.name(),
        c.filled,
        c.freed
    );
    free_chain(baseline);
}

#[test]
fn balanced_gives_memory_back() {
    if common::is_child() {
        gives_memory_back(Profile::Balanced);
    } else {
        common::run_profile_child("balanced_gives_memory_back", Profile::Balanced, "lean:");
    }
}

#[test]
fn lean_gives_memory_back() {
    if common::is_child() {
        gives_memory_back(Profile::Lean);
    } else {
        common::run_profile_child("lean_gives_memory_back", Profile::Lean, "lean:");
    }
}

#[test]
fn speed_first_keeps_memory_but_stays_bounded() {
    if !common::is_child() {
        common::run_profile_child(
            "speed_first_keeps_memory_but_stays_bounded",
            Profile::SpeedFirst,
            "lean:",
        );
        return;
    }
    let (baseline, start) = start(Profile::SpeedFirst);
    let first = cycle();
    report(Profile::SpeedFirst, start, &first);
    let second = cycle();
    report(Profile::SpeedFirst, start, &second);
    assert_resident(start, &first);
    for (n, c) in [(1, &first), (2, &second)] {
        let (f, d) = (c.filled, c.freed);
        assert_eq!(
            (d.madvise, d.munmap, d.superslabs_released),
            (f.madvise, f.munmap, f.superslabs_released),
            "speed-first released memory while freeing (cycle {n}): {f:?} -> {d:?}"
        );
    }
    assert!(
        second.peak_rss * 10 <= first.peak_rss * 11,
        "second fill peaked at {:.1} MiB, first at {:.1} MiB: freed memory was not reused",
        common::mib(second.peak_rss),
        common::mib(first.peak_rss)
    );
    assert!(
        second.filled.mapped_bytes * 10 <= first.filled.mapped_bytes * 11,
        "mapped bytes grew from {} to {} between identical fills",
        first.filled.mapped_bytes,
        second.filled.mapped_bytes
    );
    free_chain(baseline);
}
