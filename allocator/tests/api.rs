//! Edge cases of the allocation API: zero-size requests, alignments above a
//! page, impossible requests, usable sizes and in-place resizing.

mod common;

use std::alloc::{GlobalAlloc, Layout};

use hakmem::Hakmem;

#[global_allocator]
static A: Hakmem = Hakmem;

static H: Hakmem = Hakmem;

#[test]
fn zero_size_raw_allocations_are_non_null_unique_and_freeable() {
    let mut ptrs = Vec::new();
    for align_log in 0..=12 {
        let align = 1usize << align_log;
        for zeroed in [false, true] {
            for _ in 0..8 {
                // SAFETY: `align` is a power of two.
                let p = unsafe {
                    if zeroed {
                        hakmem::raw::alloc_zeroed(0, align)
                    } else {
                        hakmem::raw::alloc(0, align)
                    }
                };
                assert!(!p.is_null(), "alloc(0, {align}) returned null");
                assert_eq!(p as usize % align, 0, "alloc(0, {align}) = {p:p}");
                assert!(hakmem::raw::owns(p), "owns(alloc(0, {align})) is false");
                assert!(hakmem::raw::usable_size(p).is_some());
                ptrs.push(p);
            }
        }
    }
    let mut sorted: Vec<usize> = ptrs.iter().map(|&p| p as usize).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        ptrs.len(),
        "alloc(0) returned a live pointer twice"
    );
    for p in ptrs {
        // SAFETY: each pointer is live and freed once.
        unsafe { hakmem::raw::free(p) };
    }
}

#[test]
fn free_of_null_is_a_no_op() {
    // SAFETY: null is explicitly allowed.
    unsafe { hakmem::raw::free(std::ptr::null_mut()) };
}

#[test]
fn alignments_above_a_page_are_served() {
    for align_log in 13..=21 {
        let align = 1usize << align_log;
        for size in [1, 16, 100, 5000, 70_000, 1 << 20] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: size > 0.
            let p = unsafe { H.alloc(l) };
            assert!(!p.is_null(), "size {size} align {align}: null");
            assert_eq!(p as usize % align, 0, "size {size} align {align}: {p:p}");
            // SAFETY: `p` is a live block of `size` bytes, freed once with its layout.
            unsafe {
                common::fill(p, size, size as u64);
                common::check(p, size, size as u64);
                H.dealloc(p, l);
            }
        }
    }
}

#[test]
fn impossible_requests_return_null() {
    for (size, align) in [
        (usize::MAX, 16),
        (usize::MAX - 4095, 4096),
        (isize::MAX as usize, 1),
        (1 << 60, 8),
        (1 << 48, 16),
    ] {
        // SAFETY: `align` is a power of two; a null result is what is tested.
        let p = unsafe { hakmem::raw::alloc(size, align) };
        assert!(p.is_null(), "alloc({size:#x}, {align}) = {p:p}");
    }
    let l = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
    // SAFETY: non-zero size; null is the expected answer.
    assert!(unsafe { H.alloc(l) }.is_null());
    // SAFETY: as above.
    assert!(unsafe { H.alloc_zeroed(l) }.is_null());
}

#[test]
fn failed_realloc_leaves_the_block_intact() {
    let l = Layout::from_size_align(100, 16).unwrap();
    // SAFETY: non-zero size; the block is used within bounds and freed once.
    unsafe {
        let p = H.alloc(l);
        assert!(!p.is_null());
        common::fill(p, 100, 7);
        let q = H.realloc(p, l, isize::MAX as usize - 15);
        assert!(q.is_null(), "realloc to an impossible size returned {q:p}");
        common::check(p, 100, 7);
        let q = hakmem::raw::realloc(p, 1 << 60, 16);
        assert!(
            q.is_null(),
            "raw realloc to an impossible size returned {q:p}"
        );
        common::check(p, 100, 7);
        H.dealloc(p, l);
    }
}

#[test]
fn the_whole_usable_size_is_writable() {
    // Blocks of each size, all live, each filled over its whole usable size:
    // a usable_size that reaches into a neighbour corrupts that neighbour.
    let sizes: Vec<usize> = (1..=64)
        .chain((65..=4096).step_by(61))
        .chain([10_000, 70_000, 300_000, 1 << 20])
        .collect();
    let blocks: Vec<(*mut u8, usize)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            // SAFETY: size > 0 and 16 is a power of two.
            let p = unsafe { hakmem::raw::alloc(size, 16) };
            assert!(!p.is_null());
            let usable = hakmem::raw::usable_size(p).expect("usable_size of a live block");
            assert!(usable >= size, "usable_size {usable} < size {size}");
            // SAFETY: the block has `usable` writable bytes.
            unsafe { common::fill(p, usable, i as u64) };
            (p, usable)
        })
        .collect();
    for (i, &(p, usable)) in blocks.iter().enumerate() {
        // SAFETY: still live, filled above; freed once.
        unsafe {
            common::check(p, usable, i as u64);
            hakmem::raw::free(p);
        }
    }
}

#[test]
fn realloc_grows_and_shrinks_across_every_size_range() {
    // One block walked up through the size ranges and back down: each move
    // keeps the prefix that both sizes share.
    let up: Vec<usize> = (0..=22).map(|s| (1usize << s) + s).collect();
    let path: Vec<usize> = up.iter().chain(up.iter().rev()).copied().collect();
    for align in [1usize, 16, 4096] {
        let mut size = path[0];
        let mut l = Layout::from_size_align(size, align).unwrap();
        // SAFETY: size > 0; every later access stays within the current size,
        // and the block is freed once with its current layout.
        unsafe {
            let mut p = H.alloc(l);
            assert!(!p.is_null());
            common::fill(p, size, 1);
            for &next in &path[1..] {
                p = H.realloc(p, l, next);
                assert!(!p.is_null(), "realloc {size} -> {next} (align {align})");
                assert_eq!(p as usize % align, 0);
                common::check(p, size.min(next), 1);
                common::fill(p, next, 1);
                size = next;
                l = Layout::from_size_align(size, align).unwrap();
            }
            H.dealloc(p, l);
        }
    }
}
