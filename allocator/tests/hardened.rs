//! The hardened profile (`HAKMEM_PROFILE=hardened`): each mechanism catches
//! its misuse with its `hakmem:` message, and correct programs still work.
//! Every scenario runs in a child process (this binary, re-executed for that
//! one test with the profile set, since the profile is chosen at start-up);
//! the parent checks how the child ended.

mod common;

use hakmem::raw;
use std::hint::black_box;
use std::process::Output;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

fn run_hardened(name: &str) -> Output {
    common::run_child(name, &[("HAKMEM_PROFILE", "hardened")])
}

/// Panics unless the child died of SIGABRT after one `hakmem:` line that
/// contains one of `want`.
fn assert_caught(out: &Output, want: &[&str]) {
    let line = common::assert_hakmem_abort(out);
    assert!(
        want.iter().any(|w| line.contains(w)),
        "want the `hakmem:` line to contain one of {want:?}: {}",
        common::describe(out)
    );
}

/// A misuse the child must die of, with a message containing one of the strings.
macro_rules! caught {
    ($(#[$doc:meta])* $name:ident, [$($want:expr),+], $scenario:block) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            if common::is_child() {
                hakmem_is_hardened();
                $scenario
                return;
            }
            assert_caught(&run_hardened(stringify!($name)), &[$($want),+]);
        }
    };
}

/// A correct program that must pass under the hardened profile.
macro_rules! works {
    ($(#[$doc:meta])* $name:ident, $scenario:block) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            if common::is_child() {
                hakmem_is_hardened();
                $scenario
                return;
            }
            common::assert_child_passed(&run_hardened(stringify!($name)));
        }
    };
}

fn hakmem_is_hardened() {
    common::assert_profile(hakmem::Profile::Hardened);
}

fn alloc(size: usize) -> *mut u8 {
    // SAFETY: 16 is a power of two.
    let p = unsafe { raw::alloc(size, 16) };
    assert!(!p.is_null());
    black_box(p)
}

fn free(p: *mut u8) {
    // SAFETY: none in the misuse scenarios: the bad free is the test.
    unsafe { raw::free(black_box(p)) }
}

const CANARY: &str = "heap overflow detected (canary)";
const GUARD: &str = "access to a guard page";

caught!(overflow_by_one_byte_is_caught_on_free, [CANARY], {
    for size in [8, 100, 4096] {
        let p = alloc(size);
        // SAFETY: none: the 1-byte overflow under test.
        unsafe { p.add(size).write_volatile(1) };
        free(p);
    }
});

caught!(
    overflow_by_32_bytes_with_memset_is_caught,
    [CANARY, GUARD],
    {
        let p = alloc(8);
        // SAFETY: none: the overflow under test.
        unsafe { p.write_bytes(0x41, 8 + 32) };
        free(p);
    }
);

caught!(large_overflow_by_one_byte_hits_the_guard_page, [GUARD], {
    let p = alloc(256 << 10);
    // SAFETY: none: the overflow under test.
    unsafe { p.add(256 << 10).write_volatile(1) };
});

caught!(overflow_by_1_mib_hits_a_guard_page, [GUARD], {
    let p = alloc(4096);
    // SAFETY: none: the overflow under test.
    unsafe { p.write_bytes(0x41, 1 << 20) };
});

caught!(
    underflow_by_one_byte_is_caught,
    [CANARY, GUARD, "a freed block was modified"],
    {
        for size in [8, 100, 4096, 256 << 10] {
            let p = alloc(size);
            // SAFETY: none: the underflow under test.
            unsafe { p.sub(1).write_volatile(1) };
            free(p);
        }
    }
);

caught!(double_free_is_caught, ["double free"], {
    let p = alloc(64);
    free(p);
    free(p);
});

caught!(
    interleaved_double_free_of_a_large_block_is_caught,
    ["double free"],
    {
        let p = alloc(256 << 10);
        let q = alloc(256 << 10);
        free(p);
        free(q);
        free(p);
    }
);

caught!(cross_thread_double_free_is_caught, ["double free"], {
    let p = alloc(48) as usize;
    std::thread::spawn(move || free(p as *mut u8))
        .join()
        .unwrap();
    free(p as *mut u8);
});

caught!(interior_free_is_caught, ["invalid pointer"], {
    let p = alloc(64);
    // SAFETY: none: the invalid free under test.
    free(unsafe { p.add(16) });
});

caught!(free_of_a_stack_address_is_caught, ["invalid pointer"], {
    let mut x = 0u64;
    free(&mut x as *mut u64 as *mut u8);
});

caught!(realloc_of_a_freed_pointer_is_caught, ["realloc()"], {
    let p = alloc(64);
    free(p);
    // SAFETY: none: the misuse under test.
    unsafe { raw::realloc(black_box(p), 128, 16) };
});

caught!(
    write_after_free_is_caught_when_the_block_is_handed_out_again,
    ["write after free"],
    {
        let p = alloc(200);
        free(p);
        // SAFETY: none: the write after free under test (its last byte:
        // the whole block is checked, not just its head).
        unsafe { p.add(199).write_volatile(7) };
        // Other sizes push it out of the quarantine; its own size reuses it.
        for _ in 0..100 {
            free(alloc(3000));
        }
        for _ in 0..1000 {
            free(alloc(200));
        }
    }
);

caught!(use_after_free_of_a_large_block_faults, [GUARD], {
    let p = alloc(256 << 10);
    free(p);
    // SAFETY: none: the use after free under test.
    unsafe { black_box(p.add(100).read_volatile()) };
});

caught!(reading_a_zero_size_block_faults, [GUARD], {
    let p = alloc(0);
    // SAFETY: none: the read under test.
    unsafe { black_box(p.read_volatile()) };
});

works!(zero_size_blocks_are_unique_and_freed_once, {
    let a = alloc(0);
    let b = alloc(0);
    assert_ne!(a, b);
    assert_eq!(raw::usable_size(a), Some(0));
    free(a);
    free(b);
});

works!(blocks_read_as_zero_and_usable_size_is_the_requested_size, {
    for size in [1, 8, 100, 1000, 4096, 40_000, 65_536, 256 << 10, 3 << 20] {
        let mut kept = vec![];
        for _ in 0..100 {
            let p = alloc(size);
            // SAFETY: `size` bytes are the block's.
            unsafe {
                assert!((0..size).all(|i| *p.add(i) == 0), "size {size}");
                p.write_bytes(0xff, size);
            }
            assert_eq!(raw::usable_size(p), Some(size));
            assert!(raw::owns(p));
            kept.push(p);
        }
        kept.into_iter().for_each(free);
    }
    // Over-aligned requests keep their alignment.
    for align in [32, 4096, 1 << 16, 4 << 20] {
        // SAFETY: powers of two.
        let p = unsafe { raw::alloc(100, align) };
        assert_eq!(p as usize % align, 0);
        // SAFETY: 100 bytes are the block's.
        unsafe { p.write_bytes(1, 100) };
        free(p);
    }
    let s = hakmem::stats();
    assert!(s.mprotect > 0, "guard pages are set with mprotect");
});

works!(realloc_keeps_the_contents, {
    let mut p = alloc(10);
    // SAFETY: 10 bytes are the block's.
    unsafe { p.write_bytes(9, 10) };
    for size in [20, 5000, 300_000, 50] {
        // SAFETY: p is live; 16 is a power of two.
        p = unsafe { raw::realloc(p, size, 16) };
        // SAFETY: at least 10 bytes are the block's.
        assert!((0..10).all(|i| unsafe { *p.add(i) } == 9));
        assert_eq!(raw::usable_size(p), Some(size));
    }
    free(p);
});

works!(threads_allocate_and_free_each_others_blocks, {
    let (tx, rx) = std::sync::mpsc::channel::<(usize, usize)>();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9u64 + t;
                let mut live: Vec<(usize, usize)> = vec![];
                for i in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let size = (x % 5000) as usize;
                    if live.len() > 200 || (x >> 40).is_multiple_of(3) && !live.is_empty() {
                        let (p, size) = live.swap_remove((x >> 20) as usize % live.len());
                        // SAFETY: the block is live and `size` bytes long.
                        unsafe { common::check(p as *const u8, size, p as u64) };
                        if i % 2 == 0 {
                            tx.send((p, size)).unwrap();
                        } else {
                            free(p as *mut u8);
                        }
                    } else {
                        let p = alloc(size);
                        // SAFETY: `size` bytes are the block's.
                        unsafe { common::fill(p, size, p as u64) };
                        live.push((p as usize, size));
                    }
                }
                for (p, _) in live {
                    free(p as *mut u8);
                }
            })
        })
        .collect();
    drop(tx);
    for (p, size) in rx {
        // SAFETY: sent live by its owner, which no longer touches it.
        unsafe { common::check(p as *const u8, size, p as u64) };
        free(p as *mut u8);
    }
    workers.into_iter().for_each(|w| w.join().unwrap());
});

works!(a_fork_child_can_allocate_while_threads_run, {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    free(alloc(100));
                    free(alloc(100_000));
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, frees and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for size in [0, 16, 5000, 300_000] {
                free(alloc(size));
            }
            // SAFETY: _exit ends the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.into_iter().for_each(|t| t.join().unwrap());
});
