//! Zeroed allocations stay zero when they recycle memory another thread
//! dirtied and gave back at exit (issue 8, item 1; SPEC 3a: "calloc /
//! alloc_zeroed memory reads as zero, always").
//!
//! A thread fills about three slabs of 64-byte blocks with 0xAA and frees
//! them, allocates and frees 8 blocks of 200 bytes, and exits. Then the test's
//! thread takes 4000 zeroed 1000-byte blocks, through `vec![0u8; 1000]` (which
//! is `alloc_zeroed`: safe Rust code trusts it) and through `alloc_zeroed`
//! itself, and counts the bytes that are not zero. Each profile runs in its
//! own child process (options are global, and a fresh process has no other
//! memory to recycle).

mod common;

use std::alloc::{GlobalAlloc, Layout};

use hakmem::{Hakmem, Profile};

#[global_allocator]
static A: Hakmem = Hakmem;

const BLOCKS: usize = 4000;

/// Dirties and frees memory on a thread that then exits.
fn dirty_on_an_exiting_thread() {
    std::thread::spawn(|| {
        let small: Vec<Box<[u8; 64]>> = (0..3 * 1024).map(|_| Box::new([0xAA; 64])).collect();
        drop(std::hint::black_box(small));
        let mid: Vec<Box<[u8; 200]>> = (0..8).map(|_| Box::new([0xAA; 200])).collect();
        drop(std::hint::black_box(mid));
    })
    .join()
    .expect("the dirtying thread");
}

/// Bytes that are not zero in `s`.
fn nonzero(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b != 0).count()
}

fn zeroed_blocks_are_zero(profile: Profile) {
    common::assert_profile(profile);
    dirty_on_an_exiting_thread();
    let vecs: Vec<Vec<u8>> = (0..BLOCKS).map(|_| vec![0u8; 1000]).collect();
    let bad_vecs: Vec<usize> = vecs.iter().map(|v| nonzero(v)).filter(|&n| n > 0).collect();
    drop(vecs);

    dirty_on_an_exiting_thread();
    let mut bad_raw = Vec::new();
    let mut raw = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        let l = Layout::from_size_align(1000, if i % 2 == 0 { 8 } else { 16 }).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { A.alloc_zeroed(l) };
        assert!(!p.is_null(), "alloc_zeroed(1000) failed");
        // SAFETY: a live block of 1000 bytes.
        let n = nonzero(unsafe { std::slice::from_raw_parts(p, 1000) });
        if n > 0 {
            bad_raw.push(n);
        }
        raw.push((p, l));
    }
    for (p, l) in raw {
        // SAFETY: each block is live and freed once, with its layout.
        unsafe { A.dealloc(p, l) };
    }
    println!(
        "zeroed: {}: vec![0u8; 1000]: {} of {BLOCKS} blocks with {} non-zero bytes; \
         alloc_zeroed: {} blocks with {} non-zero bytes",
        profile.name(),
        bad_vecs.len(),
        bad_vecs.iter().sum::<usize>(),
        bad_raw.len(),
        bad_raw.iter().sum::<usize>()
    );
    assert!(
        bad_vecs.is_empty() && bad_raw.is_empty(),
        "{}: zeroed memory holds old data: vec![0u8; 1000] gave {} non-zero blocks \
         ({} bytes), alloc_zeroed gave {} non-zero blocks ({} bytes)",
        profile.name(),
        bad_vecs.len(),
        bad_vecs.iter().sum::<usize>(),
        bad_raw.len(),
        bad_raw.iter().sum::<usize>()
    );
}

#[test]
fn zeroed_after_thread_exit_balanced() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::Balanced);
    } else {
        common::run_profile_child(
            "zeroed_after_thread_exit_balanced",
            Profile::Balanced,
            "zeroed:",
        );
    }
}

#[test]
fn zeroed_after_thread_exit_lean() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::Lean);
    } else {
        common::run_profile_child("zeroed_after_thread_exit_lean", Profile::Lean, "zeroed:");
    }
}

#[test]
fn zeroed_after_thread_exit_speed_first() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::SpeedFirst);
    } else {
        common::run_profile_child(
            "zeroed_after_thread_exit_speed_first",
            Profile::SpeedFirst,
            "zeroed:",
        );
    }
}
