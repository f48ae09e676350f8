//! Zeroed allocations stay zero when they recycle memory another thread
//! dirtied and gave back at exit (issue 8, item 1; SPEC 3a: "calloc /
//! alloc_zeroed memory reads as zero, always").
//!
//! A thread fills about three slabs of 64-byte blocks with 0xAA and frees
//! them, allocates and frees 8 blocks of 200 bytes, and exits. Then the test's
//! thread takes 4000 zeroed 1000-byte blocks, through `vec![0u8; 1000]` (which
//! is `alloc_zeroed`: safe Rust code trusts it) and through `alloc_zeroed`
//! itself, and counts the bytes that are not zero. Each profile and each of
//! the two interfaces runs in its own child process (options are global, and
//! a fresh process has no other memory to recycle).

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

/// Which interface the child takes its zeroed blocks through.
const VIA_ENV: &str = "HAKMEM_TEST_ZEROED_VIA";

/// The child's scenario: dirty on an exiting thread, then 4000 zeroed
/// 1000-byte blocks through `vec![0u8; 1000]` (`via` = "vec") or
/// `alloc_zeroed` (alignment 8 and 16 alternately); none may hold a non-zero
/// byte.
fn zeroed_blocks_are_zero(profile: Profile) {
    common::assert_profile(profile);
    let via = std::env::var(VIA_ENV).expect("HAKMEM_TEST_ZEROED_VIA is set");
    dirty_on_an_exiting_thread();
    let mut bad = Vec::new();
    if via == "vec" {
        let vecs: Vec<Vec<u8>> = (0..BLOCKS).map(|_| vec![0u8; 1000]).collect();
        bad.extend(vecs.iter().map(|v| nonzero(v)).filter(|&n| n > 0));
    } else {
        let mut raw = Vec::with_capacity(BLOCKS);
        for i in 0..BLOCKS {
            let l = Layout::from_size_align(1000, if i % 2 == 0 { 8 } else { 16 }).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { A.alloc_zeroed(l) };
            assert!(!p.is_null(), "alloc_zeroed(1000) failed");
            // SAFETY: a live block of 1000 bytes.
            let n = nonzero(unsafe { std::slice::from_raw_parts(p, 1000) });
            if n > 0 {
                bad.push(n);
            }
            raw.push((p, l));
        }
        for (p, l) in raw {
            // SAFETY: each block is live and freed once, with its layout.
            unsafe { A.dealloc(p, l) };
        }
    }
    let bytes: usize = bad.iter().sum();
    println!(
        "zeroed: {} via {via}: {} of {BLOCKS} blocks with {bytes} non-zero bytes",
        profile.name(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} via {via}: zeroed memory holds old data: {} of {BLOCKS} 1000-byte blocks \
         with {bytes} non-zero bytes",
        profile.name(),
        bad.len()
    );
}

/// Runs the scenario of test `name` in a child per interface, under `profile`.
fn in_children(name: &str, profile: Profile) {
    let mut failures = Vec::new();
    for via in ["vec", "alloc_zeroed"] {
        let out = common::run_child(name, &[("HAKMEM_PROFILE", profile.name()), (VIA_ENV, via)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if let Some(at) = stdout.find("zeroed:") {
            println!("{}", stdout[at..].lines().next().unwrap_or(""));
        }
        let passed = out.status.success() && stdout.contains("test result: ok. 1 passed");
        if !passed {
            failures.push(common::describe(&out));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn zeroed_after_thread_exit_balanced() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::Balanced);
    } else {
        in_children("zeroed_after_thread_exit_balanced", Profile::Balanced);
    }
}

#[test]
fn zeroed_after_thread_exit_lean() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::Lean);
    } else {
        in_children("zeroed_after_thread_exit_lean", Profile::Lean);
    }
}

#[test]
fn zeroed_after_thread_exit_speed_first() {
    if common::is_child() {
        zeroed_blocks_are_zero(Profile::SpeedFirst);
    } else {
        in_children("zeroed_after_thread_exit_speed_first", Profile::SpeedFirst);
    }
}
