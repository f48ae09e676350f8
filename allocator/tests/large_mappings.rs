//! Large blocks share hakmem's arenas instead of holding a mapping each, and
//! freed large memory is reused while warm and given back when idle:
//!
//! - 100,000 live blocks of 100 KiB leave `std::thread::spawn` working and
//!   fewer than 1,000 mappings (lines of `/proc/self/maps`), live and after
//!   they are freed (one mapping each exhausted `vm.max_map_count`, 65,530);
//! - an 8 MiB block freed and allocated again in a loop takes (almost) no
//!   page fault after the first round, yet `hakmem::trim()` and the decay
//!   give the memory back.
//!
//! Each scenario runs in its own child process: mappings, page faults and
//! hakmem's counters are process-wide, and other tests would blur them.

mod common;

use std::time::Duration;

use hakmem::Hakmem;

#[global_allocator]
static A: Hakmem = Hakmem;

/// A test whose body runs in a child process, whose `large:` lines are echoed.
macro_rules! child_test {
    ($(#[$doc:meta])* $name:ident, $scenario:block) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            if common::is_child() {
                $scenario
                return;
            }
            let out = common::run_child(stringify!($name), &[("HAKMEM_PROFILE", "balanced")]);
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some(at) = line.find("large:") {
                    println!("{}", &line[at..]);
                }
            }
            common::assert_child_passed(&out);
        }
    };
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("read /proc/self/maps")
        .lines()
        .count()
}

/// Minor page faults of the calling thread so far.
fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is a valid out-parameter.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable; RUSAGE_THREAD exists on Linux.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

const MIB: usize = 1 << 20;

child_test!(
    /// 100,000 live 100 KiB blocks: threads still start, and mappings stay
    /// few, live and after the free.
    hundred_thousand_live_100k_blocks_share_mappings,
    {
        const N: usize = 100_000;
        const SIZE: usize = 100 << 10;
        let before = mappings();
        let mut blocks = Vec::with_capacity(N);
        for i in 0..N {
            // SAFETY: 16 is a power of two.
            let p = unsafe { hakmem::raw::alloc(SIZE, 16) };
            assert!(!p.is_null(), "block {i} of {N}: out of memory");
            if i % 64 == 0 {
                // Touch a few, to show the memory is real (not all: 10 GB).
                // SAFETY: a live block of SIZE bytes.
                unsafe {
                    p.write(i as u8);
                    p.add(SIZE - 1).write(i as u8);
                }
            }
            blocks.push(p);
        }
        let live = mappings();
        let s = hakmem::stats();
        let t = std::thread::spawn(|| {
            let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 200]).collect();
            v.iter().map(|b| b.len()).sum::<usize>()
        });
        assert_eq!(
            t.join().expect("a thread started with the blocks live"),
            200_000
        );
        for (i, &p) in blocks.iter().enumerate() {
            if i % 64 == 0 {
                // SAFETY: still live.
                unsafe { assert_eq!(p.add(SIZE - 1).read(), i as u8) };
            }
            // SAFETY: each block is live and freed once.
            unsafe { hakmem::raw::free(p) };
        }
        drop(blocks);
        let after = mappings();
        let f = hakmem::stats();
        println!(
            "large: {N} live blocks of 100 KiB: {before} mappings before, {live} live, \
             {after} after the free; reserved {:.1} GiB; mapped {:.1} MiB live, {:.1} MiB \
             after (cache {:.1} MiB); {} syscall failures",
            s.reserved_bytes as f64 / (1u64 << 30) as f64,
            common::mib(s.mapped_bytes),
            common::mib(f.mapped_bytes),
            common::mib(f.large_cached_bytes),
            f.syscall_failures
        );
        assert!(live < 1000, "{live} mappings with the blocks live");
        assert!(after < 1000, "{after} mappings after the free");
        assert!(
            s.mapped_bytes >= (N * SIZE) as u64,
            "the blocks are in mapped_bytes"
        );
        // Freed: the chunks went back to their arenas, but for the bounded
        // cache (64 MiB under balanced).
        assert!(
            f.mapped_bytes < 128 << 20,
            "{:.1} MiB still in use after the free",
            common::mib(f.mapped_bytes)
        );
        assert_eq!(f.syscall_failures, 0);
        assert_eq!(f.large_blocks, 0);
    }
);

child_test!(
    /// An 8 MiB block in a free/alloc loop reuses its committed memory; trim
    /// and the decay give it back.
    big_blocks_reuse_committed_memory_then_decay,
    {
        const SIZE: usize = 8 * MIB;
        const ROUNDS: usize = 20;
        let round = || {
            // SAFETY: 16 is a power of two; the block is written within its
            // size and freed once.
            unsafe {
                let p = hakmem::raw::alloc(SIZE, 16);
                assert!(!p.is_null());
                for off in (0..SIZE).step_by(4096) {
                    p.add(off).write(off as u8);
                }
                hakmem::raw::free(p);
            }
        };
        round();
        let f0 = minor_faults();
        for _ in 1..ROUNDS {
            round();
        }
        let faults = minor_faults() - f0;
        let cached = hakmem::stats();
        let rss_cached = common::rss_bytes();
        let trimmed = hakmem::trim();
        let t = hakmem::stats();
        let rss_trimmed = common::rss_bytes();
        println!(
            "large: 8 MiB free/alloc loop: {faults} minor faults over {} rounds after the \
             first ({} pages a round if fresh); cache {:.1} MiB, mapped {:.1} MiB, RSS \
             {:.1} MiB -> trim -> cache {:.1} MiB, mapped {:.1} MiB, RSS {:.1} MiB",
            ROUNDS - 1,
            SIZE / 4096,
            common::mib(cached.large_cached_bytes),
            common::mib(cached.mapped_bytes),
            common::mib(rss_cached),
            common::mib(t.large_cached_bytes),
            common::mib(t.mapped_bytes),
            common::mib(rss_trimmed)
        );
        assert!(
            faults < (SIZE / 4096 / 4) as i64,
            "{faults} faults over {} rounds: freed memory was not reused",
            ROUNDS - 1
        );
        assert!(cached.large_cached_bytes >= SIZE as u64);
        assert!(trimmed, "trim released nothing");
        assert_eq!(t.large_cached_bytes, 0);
        assert!(t.mapped_bytes + SIZE as u64 <= cached.mapped_bytes);
        assert!(rss_trimmed + (SIZE as u64) * 3 / 4 <= rss_cached);

        // The decay: cached again, then idle for longer than the decay time;
        // the next large operation's decay tick releases it.
        round();
        let warm = hakmem::stats();
        assert!(warm.large_cached_bytes >= SIZE as u64);
        std::thread::sleep(Duration::from_millis(1300));
        // SAFETY: a live 100 KiB block, freed once.
        unsafe { hakmem::raw::free(hakmem::raw::alloc(100 << 10, 16)) };
        let d = hakmem::stats();
        println!(
            "large: decay: cache {:.1} MiB, mapped {:.1} MiB -> idle 1.3 s -> cache {:.1} \
             MiB, mapped {:.1} MiB",
            common::mib(warm.large_cached_bytes),
            common::mib(warm.mapped_bytes),
            common::mib(d.large_cached_bytes),
            common::mib(d.mapped_bytes)
        );
        assert!(d.large_cached_bytes < SIZE as u64, "{d:?}");
        assert!(d.mapped_bytes + SIZE as u64 <= warm.mapped_bytes, "{d:?}");
        assert_eq!(d.syscall_failures, 0);
    }
);

child_test!(
    /// Blocks of every large shape, many at once, keep their contents and
    /// realloc moves between the shapes.
    large_shapes_keep_their_contents,
    {
        let sizes = [
            70_000usize,
            100 << 10,
            300_000,
            MIB,
            MIB + 1,
            3 * MIB,
            9 * MIB,
            31 * MIB,
            40 * MIB,
        ];
        let mut live = Vec::new();
        for round in 0..3u64 {
            for (i, &size) in sizes.iter().enumerate() {
                let l = std::alloc::Layout::from_size_align(size, 16).unwrap();
                live.push(common::Block::alloc(l, round * 100 + i as u64));
            }
        }
        // Grow and shrink every third block through realloc.
        for b in live.iter_mut().step_by(3) {
            let old = b.layout.size();
            for new in [old * 2 + 4096, old / 3 + 1] {
                // SAFETY: the block is live with `b.layout`; the new size is
                // non-zero; the prefix both sizes share is checked.
                unsafe {
                    use std::alloc::GlobalAlloc;
                    let q = Hakmem.realloc(b.p, b.layout, new);
                    assert!(!q.is_null());
                    common::check(q, b.layout.size().min(new), b.seed);
                    b.p = q;
                    b.layout = std::alloc::Layout::from_size_align(new, 16).unwrap();
                    common::fill(q, new, b.seed);
                }
            }
        }
        for b in live {
            b.free();
        }
        assert_eq!(hakmem::stats().large_blocks, 0);
    }
);
