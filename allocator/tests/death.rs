//! Integrity checks of the default build: freeing a pointer hakmem never
//! returned, or freeing a block twice, aborts the process with one line
//! starting `hakmem:` on stderr. Each scenario runs in a child process (this
//! binary, re-executed for that one test); the parent asserts the child died
//! of SIGABRT with that line. Feature `fast` compiles the checks out, and
//! these tests with them.
//!
//! The ownership queries (`owns`, `usable_size`, `try_free`) must answer
//! foreign pointers without aborting, in every build: checked in a child too,
//! since a wrong answer may well crash.

mod common;

use std::hint::black_box;

use hakmem::Hakmem;

#[global_allocator]
static A: Hakmem = Hakmem;

/// A test whose body runs only in the child, where it must abort.
macro_rules! death_test {
    ($(#[$doc:meta])* $name:ident, $scenario:block) => {
        $(#[$doc])*
        #[cfg(not(feature = "fast"))]
        #[test]
        fn $name() {
            if common::is_child() {
                $scenario
                // Reaching here means hakmem let the bad free through: the
                // child exits 0 and the parent's assertion reports it.
                return;
            }
            common::assert_hakmem_abort(&common::run_child(stringify!($name), &[]));
        }
    };
}

/// A live block from hakmem, deliberately never freed by the scenario.
fn live_block(size: usize) -> *mut u8 {
    // SAFETY: 16 is a power of two.
    let p = unsafe { hakmem::raw::alloc(size, 16) };
    assert!(!p.is_null());
    // SAFETY: fresh block of `size` bytes.
    unsafe { p.write_bytes(0x5a, size) };
    black_box(p)
}

death_test!(
    /// A pointer 8 bytes into a live 64-byte block.
    free_of_interior_pointer_of_tiny_block_aborts,
    {
        let p = live_block(64);
        // SAFETY: none: this is the invalid free under test.
        unsafe { hakmem::raw::free(black_box(p.add(8))) };
    }
);

death_test!(
    /// A pointer 16 bytes into a live 20,000-byte block.
    free_of_interior_pointer_of_mid_block_aborts,
    {
        let p = live_block(20_000);
        // SAFETY: none: this is the invalid free under test.
        unsafe { hakmem::raw::free(black_box(p.add(16))) };
    }
);

death_test!(
    /// A page-aligned pointer one page into a live 1 MiB block.
    free_of_interior_pointer_of_large_block_aborts,
    {
        let p = live_block(1 << 20);
        // SAFETY: none: this is the invalid free under test.
        unsafe { hakmem::raw::free(black_box(p.add(4096))) };
    }
);

death_test!(
    /// A pointer into the third chunk of a live 8 MiB block (a continuation
    /// chunk), after bytes crafted to look like a large block's header.
    free_of_interior_pointer_in_a_later_chunk_of_a_large_block_aborts,
    {
        let p = live_block(8 << 20);
        // SAFETY: writes inside the live block; the free is the invalid one
        // under test.
        unsafe {
            let q = p.add(5 << 20);
            let fake: [u64; 4] = [0x6861_6b6d_656d_4c47, q as u64, 8 << 20, 0];
            q.sub(32).cast::<[u64; 4]>().write_unaligned(fake);
            hakmem::raw::free(black_box(q));
        }
    }
);

death_test!(
    /// A 100 KiB block freed twice, its pages reused meanwhile by a 200 KiB
    /// block that starts at another offset (the first of the pair before it).
    double_free_of_page_block_reused_at_another_offset_aborts,
    {
        let a = live_block(100 << 10);
        let b = live_block(100 << 10);
        let _c = live_block(100 << 10);
        // SAFETY: a and b are live and freed once here; the second free of b
        // is the double free under test.
        unsafe {
            hakmem::raw::free(b);
            hakmem::raw::free(a);
            let d = live_block(200 << 10);
            assert!(
                d < b && b < d.add(200 << 10),
                "precondition: the 200 KiB block {d:p} should cover {b:p}"
            );
            hakmem::raw::free(black_box(b));
        }
    }
);

death_test!(
    /// A 4 MiB block freed twice, its run reused meanwhile (from the large
    /// cache) by a page-aligned block, which starts at another offset.
    double_free_of_run_block_reused_at_another_offset_aborts,
    {
        let p = live_block(4 << 20);
        // SAFETY: p is freed once here; the second free is the double free
        // under test.
        unsafe {
            hakmem::raw::free(p);
            let q = hakmem::raw::alloc(4 << 20, 4096);
            assert!(
                q as usize & !((2 << 20) - 1) == p as usize & !((2 << 20) - 1) && q != p,
                "precondition: {q:p} should reuse the run of {p:p}"
            );
            hakmem::raw::free(black_box(p));
        }
    }
);

death_test!(
    /// An 8 MiB block freed twice, its chunks back in the arena meanwhile.
    double_free_of_large_block_after_trim_aborts,
    {
        let p = live_block(8 << 20);
        // SAFETY: p is freed once here; the second free is the double free
        // under test.
        unsafe {
            hakmem::raw::free(p);
            hakmem::trim();
            hakmem::raw::free(black_box(p));
        }
    }
);

death_test!(
    /// A pointer to a local variable.
    free_of_stack_pointer_aborts,
    {
        let mut local = [0u8; 64];
        let p = black_box(local.as_mut_ptr());
        // SAFETY: none: this is the invalid free under test.
        unsafe { hakmem::raw::free(black_box(p.add(16))) };
    }
);

death_test!(
    /// A block from the C library's malloc.
    free_of_libc_malloc_pointer_aborts,
    {
        // SAFETY: malloc has no preconditions.
        let p = unsafe { libc::malloc(64) }.cast::<u8>();
        assert!(!p.is_null());
        // SAFETY: none: this is the invalid free under test.
        unsafe { hakmem::raw::free(black_box(p)) };
    }
);

death_test!(
    /// `dealloc` twice in a row through GlobalAlloc, tiny block.
    double_dealloc_of_tiny_block_aborts,
    {
        use std::alloc::{GlobalAlloc, Layout};
        let l = Layout::from_size_align(48, 8).unwrap();
        // SAFETY: non-zero size; the second dealloc is the double free under test.
        unsafe {
            let p = black_box(Hakmem.alloc(l));
            assert!(!p.is_null());
            Hakmem.dealloc(p, l);
            Hakmem.dealloc(black_box(p), l);
        }
    }
);

death_test!(
    /// `raw::free` twice in a row, small block.
    double_free_of_small_block_aborts,
    {
        let p = live_block(700);
        // SAFETY: the second free is the double free under test.
        unsafe {
            hakmem::raw::free(p);
            hakmem::raw::free(black_box(p));
        }
    }
);

death_test!(
    /// `raw::free` twice in a row, 2 MiB block.
    double_free_of_large_block_aborts,
    {
        let p = live_block(2 << 20);
        // SAFETY: the second free is the double free under test.
        unsafe {
            hakmem::raw::free(p);
            hakmem::raw::free(black_box(p));
        }
    }
);

#[test]
fn foreign_pointers_are_not_owned_and_not_freed() {
    if !common::is_child() {
        common::assert_child_passed(&common::run_child(
            "foreign_pointers_are_not_owned_and_not_freed",
            &[],
        ));
        return;
    }
    let mut local = [0u8; 64];
    let stack = black_box(local.as_mut_ptr());
    // SAFETY: malloc has no preconditions.
    let c = unsafe { libc::malloc(64) }.cast::<u8>();
    assert!(!c.is_null());
    let block = live_block(64);
    let interior = black_box(block.wrapping_add(8));
    for (what, p) in [("stack", stack), ("libc malloc", c), ("interior", interior)] {
        assert!(!hakmem::raw::owns(p), "owns({what} pointer) is true");
        assert_eq!(
            hakmem::raw::usable_size(p),
            None,
            "usable_size({what} pointer)"
        );
    }
    // try_free declines memory hakmem does not manage (an interior pointer
    // lies in hakmem's memory: freeing it is the invalid free tested above).
    for (what, p) in [("stack", stack), ("libc malloc", c)] {
        // SAFETY: `p` is not in hakmem's memory, so try_free must leave it alone.
        assert!(
            !unsafe { hakmem::raw::try_free(p) },
            "try_free({what} pointer)"
        );
    }
    assert!(hakmem::raw::owns(block));
    // SAFETY: `c` came from malloc and `block` from hakmem; each is still live
    // (try_free refused them) and freed once here.
    unsafe {
        libc::free(c.cast());
        assert!(hakmem::raw::try_free(block), "try_free of a live block");
    }
}
