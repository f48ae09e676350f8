//! Random sequences of alloc, alloc_zeroed, realloc and free through
//! `hakmem::Hakmem` (as a `GlobalAlloc` value, and through `hakmem::raw` for
//! zero-size blocks), checked against a model of the live blocks: contents,
//! zeroing, alignment, usable size and no overlap.

mod common;

use std::alloc::{GlobalAlloc, Layout};

use hakmem::Hakmem;
use proptest::prelude::*;
use proptest::sample::Index;

#[global_allocator]
static A: Hakmem = Hakmem;

/// The allocator under test, used as a plain value.
static H: Hakmem = Hakmem;

const MAX_SIZE: usize = 4 << 20;
const MAX_ALIGN_LOG: u32 = 12;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_log: u32,
        zeroed: bool,
    },
    Realloc {
        pick: Index,
        new_size: usize,
    },
    Free {
        pick: Index,
    },
}

/// Block sizes, mostly tiny and small, some mid, a few up to 4 MiB.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        12 => 1usize..=128,
        7 => 129usize..=1024,
        3 => 1025usize..=65536,
        1 => 65537usize..=MAX_SIZE,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (size(), 0..=MAX_ALIGN_LOG, any::<bool>())
            .prop_map(|(size, align_log, zeroed)| Op::Alloc { size, align_log, zeroed }),
        // GlobalAlloc::realloc requires a non-zero new size.
        2 => (any::<Index>(), size().prop_map(|s| s.max(1)))
            .prop_map(|(pick, new_size)| Op::Realloc { pick, new_size }),
        3 => any::<Index>().prop_map(|pick| Op::Free { pick }),
    ]
}

/// A live block of the model.
struct Block {
    p: *mut u8,
    size: usize,
    align: usize,
    /// Pattern seed (the block's id).
    seed: u64,
    /// Allocated with size 0 through `hakmem::raw` (GlobalAlloc forbids size
    /// 0), so resized and freed through `hakmem::raw` too.
    raw: bool,
}

impl Block {
    fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).expect("model layout")
    }
}

/// Panics unless `p` is a usable block of `size` bytes aligned to `align`.
fn check_block(p: *mut u8, size: usize, align: usize) {
    assert!(!p.is_null(), "null for size {size} align {align}");
    let min_align = if size >= 16 { align.max(16) } else { align };
    assert_eq!(
        p as usize % min_align,
        0,
        "{p:p} (size {size}) not aligned to {min_align}"
    );
    assert!(
        hakmem::raw::owns(p),
        "owns({p:p}) is false for a live block"
    );
    let usable = hakmem::raw::usable_size(p);
    assert!(
        usable.is_some_and(|u| u >= size),
        "usable_size({p:p}) = {usable:?} < {size}"
    );
}

/// Panics if the usable ranges of two live blocks overlap.
fn check_disjoint(live: &[Block]) {
    let mut ranges: Vec<(usize, usize)> = live
        .iter()
        .map(|b| {
            let usable = hakmem::raw::usable_size(b.p).unwrap_or(b.size);
            (b.p as usize, b.p as usize + usable.max(b.size).max(1))
        })
        .collect();
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "blocks overlap: [{:#x}, {:#x}) and [{:#x}, {:#x})",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
}

fn free(b: Block) {
    // SAFETY: `b` is live and holds its pattern over `size` bytes.
    unsafe { common::check(b.p, b.size, b.seed) };
    if b.raw {
        // SAFETY: `b.p` came from hakmem::raw and is freed once.
        unsafe { hakmem::raw::free(b.p) };
    } else {
        // SAFETY: `b.p` came from `H` with `b.layout()` and is freed once.
        unsafe { H.dealloc(b.p, b.layout()) };
    }
}

fn run(ops: &[Op]) {
    let mut live: Vec<Block> = Vec::new();
    for (seed, op) in (1u64..).zip(ops) {
        match *op {
            Op::Alloc {
                size,
                align_log,
                zeroed,
            } => {
                let align = 1usize << align_log;
                let raw = size == 0;
                // SAFETY: `align` is a power of two; GlobalAlloc gets size > 0 only.
                let p = unsafe {
                    match (raw, zeroed) {
                        (true, false) => hakmem::raw::alloc(0, align),
                        (true, true) => hakmem::raw::alloc_zeroed(0, align),
                        (false, z) => {
                            let l = Layout::from_size_align(size, align).unwrap();
                            if z {
                                H.alloc_zeroed(l)
                            } else {
                                H.alloc(l)
                            }
                        }
                    }
                };
                check_block(p, size, align);
                if zeroed {
                    // SAFETY: `p` is a fresh block of `size` bytes.
                    unsafe { common::check_zero(p, size) };
                }
                // SAFETY: as above.
                unsafe { common::fill(p, size, seed) };
                live.push(Block {
                    p,
                    size,
                    align,
                    seed,
                    raw,
                });
            }
            Op::Realloc { pick, new_size } => {
                if live.is_empty() {
                    continue;
                }
                let i = pick.index(live.len());
                let b = &mut live[i];
                // SAFETY: `b` is live with its pattern over `size` bytes.
                unsafe { common::check(b.p, b.size, b.seed) };
                // SAFETY: `b.p` is live, from the allocator it is resized with,
                // and `new_size` > 0 (well below isize::MAX once aligned).
                let q = unsafe {
                    if b.raw {
                        hakmem::raw::realloc(b.p, new_size, b.align)
                    } else {
                        H.realloc(b.p, b.layout(), new_size)
                    }
                };
                check_block(q, new_size, b.align);
                // SAFETY: `q` is live with `new_size` bytes, whose prefix is the old block's.
                unsafe {
                    common::check(q, b.size.min(new_size), b.seed);
                    common::fill(q, new_size, b.seed);
                }
                b.p = q;
                b.size = new_size;
            }
            Op::Free { pick } => {
                if live.is_empty() {
                    continue;
                }
                free(live.swap_remove(pick.index(live.len())));
            }
        }
        check_disjoint(&live);
    }
    live.into_iter().for_each(free);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}

/// Sizes around every boundary a size-class table is likely to have, at every
/// alignment, all live at once: catches off-by-one class lookups that random
/// draws hit rarely.
#[test]
fn class_boundaries_at_every_alignment() {
    let mut live = Vec::new();
    let mut seed = 0u64;
    for shift in 3..=22 {
        for delta in [-1isize, 0, 1] {
            let size = ((1usize << shift) as isize + delta) as usize;
            // Big blocks at a few alignments only, to keep the fill cheap.
            let aligns: Vec<u32> = if shift < 16 {
                (0..=MAX_ALIGN_LOG).collect()
            } else {
                vec![0, 4, MAX_ALIGN_LOG]
            };
            for align_log in aligns {
                let align = 1usize << align_log;
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: size > 0.
                let p = unsafe { H.alloc(l) };
                check_block(p, size, align);
                seed += 1;
                // SAFETY: fresh block of `size` bytes.
                unsafe { common::fill(p, size, seed) };
                live.push(Block {
                    p,
                    size,
                    align,
                    seed,
                    raw: false,
                });
            }
        }
        // Keep at most a few MiB live at once.
        if shift >= 16 {
            check_disjoint(&live);
            live.drain(..).for_each(free);
        }
    }
    check_disjoint(&live);
    live.into_iter().for_each(free);
}
