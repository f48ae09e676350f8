//! Tests of the workload's definition, through allocators that watch it.

use super::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread::ThreadId;

/// Wraps the system allocator and records every live block: its layout and
/// the thread that allocated it, so tests can see sizes, balance and remote frees.
struct Tracking {
    live: Mutex<BTreeMap<usize, (Layout, ThreadId)>>,
    /// Sizes in allocation order (for determinism checks).
    sizes: Mutex<Vec<usize>>,
    /// Frees made by a thread other than the allocating one.
    remote_frees: AtomicU64,
}

impl Tracking {
    const fn new() -> Self {
        Tracking {
            live: Mutex::new(BTreeMap::new()),
            sizes: Mutex::new(Vec::new()),
            remote_frees: AtomicU64::new(0),
        }
    }
    fn live_blocks(&self) -> usize {
        self.live.lock().unwrap().len()
    }
}

// SAFETY: forwards to `System`, which upholds the contract; the bookkeeping
// only reads layouts and pointers.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        assert_eq!(
            l.align(),
            if l.size() >= 16 { 16 } else { 8 },
            "SPEC 4 alignment"
        );
        // SAFETY: forwarded contract.
        let p = unsafe { std::alloc::System.alloc(l) };
        self.live
            .lock()
            .unwrap()
            .insert(p as usize, (l, std::thread::current().id()));
        self.sizes.lock().unwrap().push(l.size());
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let (al, owner) = self
            .live
            .lock()
            .unwrap()
            .remove(&(p as usize))
            .expect("free of a block not live");
        assert_eq!(al, l, "freed with the layout it was allocated with");
        if owner != std::thread::current().id() {
            self.remote_frees.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded contract.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

fn cfg(threads: usize, ratio: f64) -> WorkloadConfig {
    WorkloadConfig {
        threads,
        working_set: 64,
        remote_free_ratio: ratio,
        ..WorkloadConfig::default()
    }
}

/// Runs until at least `ops` operations, then stops the workers without freeing.
fn run_until(w: &mut Workload, ops: u64) -> Stopped {
    while w.ops().total() < ops {
        std::thread::sleep(Duration::from_millis(1));
    }
    w.stop_workers()
}

#[test]
fn defaults_are_spec_4() {
    let c = WorkloadConfig::default();
    assert_eq!(
        (c.threads, c.working_set, c.min_size, c.max_size),
        (1, 400, 16, 1024)
    );
    assert_eq!(c.size_distribution, SizeDistribution::Uniform);
    assert_eq!(c.remote_free_ratio, 0.0);
    assert!(c.validate().is_ok());
}

#[test]
fn validate_names_the_field() {
    let field = |f: fn(&mut WorkloadConfig)| {
        let mut c = WorkloadConfig::default();
        f(&mut c);
        c.validate().unwrap_err().field
    };
    assert_eq!(field(|c| c.threads = 0), "threads");
    assert_eq!(field(|c| c.working_set = 0), "working_set");
    assert_eq!(field(|c| c.min_size = 0), "min_size");
    assert_eq!(field(|c| c.max_size = MAX_BLOCK_SIZE + 1), "max_size");
    assert_eq!(field(|c| c.min_size = 2000), "min_size");
    assert_eq!(field(|c| c.remote_free_ratio = 1.5), "remote_free_ratio");
    assert_eq!(field(|c| c.remote_free_ratio = -0.1), "remote_free_ratio");
    assert_eq!(
        field(|c| c.remote_free_ratio = f64::NAN),
        "remote_free_ratio"
    );
}

#[test]
fn distribution_names_round_trip() {
    for d in SizeDistribution::ALL {
        assert_eq!(SizeDistribution::parse(d.name()), Some(d));
    }
    assert_eq!(SizeDistribution::parse("normal"), None);
}

#[test]
fn sampled_sizes_stay_in_range() {
    let mut g = SplitMix64::new(7);
    for dist in SizeDistribution::ALL {
        for (min, max) in [
            (16, 1024),
            (1, 1),
            (1, 8),
            (1000, 1001),
            (1, MAX_BLOCK_SIZE),
        ] {
            let c = WorkloadConfig {
                min_size: min,
                max_size: max,
                size_distribution: dist,
                ..WorkloadConfig::default()
            };
            let s = SizeSampler::new(&c);
            let (mut lo, mut hi) = (usize::MAX, 0);
            for _ in 0..20_000 {
                let x = s.sample(g.next_u64());
                assert!((min..=max).contains(&x), "{dist:?} {min}..={max} gave {x}");
                (lo, hi) = (lo.min(x), hi.max(x));
            }
            if max - min < 100 {
                assert_eq!((lo, hi), (min, max), "{dist:?} reaches both ends");
            }
        }
    }
    // The extremes of the log-uniform map.
    let c = WorkloadConfig {
        size_distribution: SizeDistribution::LogUniform,
        ..WorkloadConfig::default()
    };
    let s = SizeSampler::new(&c);
    assert_eq!(s.sample(0), 16);
    assert_eq!(s.sample(u64::MAX), 1024);
}

#[test]
fn mean_block_size_matches_the_draws() {
    for dist in SizeDistribution::ALL {
        for (min, max) in [(16, 1024), (1, 1), (100, 100), (8, 1 << 20)] {
            let c = WorkloadConfig {
                min_size: min,
                max_size: max,
                size_distribution: dist,
                ..WorkloadConfig::default()
            };
            let s = SizeSampler::new(&c);
            let mut g = SplitMix64::new(7);
            let n = 200_000;
            let drawn = (0..n).map(|_| s.sample(g.next_u64()) as f64).sum::<f64>() / n as f64;
            let want = c.mean_block_size();
            assert!(
                (drawn - want).abs() <= 0.01 * want,
                "{dist:?} {min}..={max}: drawn mean {drawn}, mean_block_size {want}"
            );
        }
    }
}

#[test]
fn log_uniform_favours_small_sizes() {
    let median = |dist| {
        let c = WorkloadConfig {
            size_distribution: dist,
            ..WorkloadConfig::default()
        };
        let s = SizeSampler::new(&c);
        let mut g = SplitMix64::new(1);
        let mut v: Vec<usize> = (0..10_001).map(|_| s.sample(g.next_u64())).collect();
        v.sort_unstable();
        v[5000]
    };
    let (u, l) = (
        median(SizeDistribution::Uniform),
        median(SizeDistribution::LogUniform),
    );
    // Uniform over 16..=1024 has median ~520; log-uniform ~sqrt(16*1025) ~ 128.
    assert!((480..560).contains(&u), "uniform median {u}");
    assert!((100..160).contains(&l), "log-uniform median {l}");
}

#[test]
fn a_seed_fixes_the_operation_sequence() {
    static A: Tracking = Tracking::new();
    static B: Tracking = Tracking::new();
    let c = WorkloadConfig {
        seed: 99,
        ..cfg(1, 0.0)
    };
    for t in [&A, &B] {
        let mut w = Workload::start(&c, t);
        let s = run_until(&mut w, 20_000);
        free_all(t, s.held);
    }
    let (a, b) = (A.sizes.lock().unwrap(), B.sizes.lock().unwrap());
    let n = a.len().min(b.len());
    assert!(n > 5_000);
    assert_eq!(a[..n], b[..n]);
    // The first allocation is slot draw then size draw from seed 99.
    let mut g = SplitMix64::new(99);
    g.next_u64();
    assert_eq!(a[0], 16 + (g.next_u64() % 1009) as usize);
}

#[test]
fn counts_balance_with_blocks_held() {
    static T: Tracking = Tracking::new();
    for ratio in [0.0, 0.5] {
        let mut w = Workload::start(&cfg(3, ratio), &T);
        let s = run_until(&mut w, 100_000);
        assert!(s.ops.allocs >= s.ops.frees);
        assert_eq!(
            s.ops.allocs - s.ops.frees,
            s.held.len() as u64,
            "ratio {ratio}"
        );
        assert_eq!(T.live_blocks(), s.held.len());
        if ratio == 0.0 {
            // Without remote frees nothing waits in an inbox: only slots hold blocks.
            assert!(s.held.len() <= 3 * 64);
        }
        free_all(&T, s.held);
    }
}

#[test]
fn remote_frees_happen_only_when_asked() {
    static LOCAL: Tracking = Tracking::new();
    static REMOTE: Tracking = Tracking::new();
    let mut w = Workload::start(&cfg(2, 0.0), &LOCAL);
    let s = run_until(&mut w, 50_000);
    assert_eq!(LOCAL.remote_frees.load(Ordering::Relaxed), 0);
    free_all(&LOCAL, s.held);

    let mut w = Workload::start(&cfg(2, 0.5), &REMOTE);
    let s = run_until(&mut w, 50_000);
    let remote = REMOTE.remote_frees.load(Ordering::Relaxed) as f64;
    let share = remote / s.ops.frees as f64;
    // Half the frees are handed over; fewer arrive when a stalled receiver's
    // inbox fills (the sender then frees locally) or blocks still wait in one.
    assert!((0.2..0.6).contains(&share), "remote share {share}");
    free_all(&REMOTE, s.held);
}

#[test]
fn stop_frees_everything() {
    static T: Tracking = Tracking::new();
    for (threads, ratio) in [(1, 0.0), (4, 1.0)] {
        let w = Workload::start(&cfg(threads, ratio), &T);
        while w.ops().total() < 20_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ops = w.stop();
        assert!(ops.total() >= 20_000);
        assert_eq!(T.live_blocks(), 0, "threads {threads} ratio {ratio}");
    }
}

#[test]
fn drop_without_stop_stops_and_frees() {
    static T: Tracking = Tracking::new();
    let w = Workload::start(&cfg(2, 0.3), &T);
    while w.ops().total() < 10_000 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(w);
    assert_eq!(T.live_blocks(), 0);
}

#[test]
fn ops_grow_while_running_and_run_for_times_itself() {
    static T: Tracking = Tracking::new();
    let w = Workload::start(&cfg(1, 0.0), &T);
    let mut last = w.ops();
    for _ in 0..3 {
        // Generous: on a loaded machine the worker may wait long for a core.
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.ops().total() <= last.total() {
            assert!(Instant::now() < deadline, "ops stuck at {last:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        last = w.ops();
    }
    assert!(w.stop().total() >= last.total());

    let (ops, elapsed) = run_for(&cfg(2, 0.2), &LibcMalloc, Duration::from_millis(100));
    assert!(elapsed >= Duration::from_millis(100));
    assert!(elapsed < Duration::from_secs(5));
    assert!(ops.allocs > 1000 && ops.frees > 1000);
}

#[test]
#[should_panic(expected = "threads")]
fn start_rejects_an_invalid_config() {
    Workload::start(&cfg(0, 0.0), &LibcMalloc);
}
