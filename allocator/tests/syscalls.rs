//! Steady state makes no syscalls: SPEC section 4's workload, after a
//! warm-up, runs with hakmem's syscall counters moving by at most 1e-6 per
//! operation, under every profile (each in its own child process, selected
//! with `HAKMEM_PROFILE`), single-threaded, with remote frees and with
//! mid-size blocks. The one exception is by design: `lean` gives emptied
//! 512 KiB slabs back at once, so its mid-size shape may spend up to SPEC's
//! soak threshold (1e-4 per op) instead.

mod common;

use std::time::{Duration, Instant};

use hakmem::{Hakmem, Profile};
use hakmem_workload::{Workload, WorkloadConfig};

#[global_allocator]
static A: Hakmem = Hakmem;

static H: Hakmem = Hakmem;

/// Warm-up: at least this long and `WARMUP_OPS` operations (class occupancy
/// settles with operations, not time: a debug build needs seconds for what a
/// release build does in a tenth of one), at most `WARMUP_MAX`.
const WARMUP: Duration = Duration::from_millis(500);
const WARMUP_OPS: u64 = 4_000_000;
const WARMUP_MAX: Duration = Duration::from_secs(5);
const MEASURE: Duration = Duration::from_millis(1000);
const MAX_SYSCALLS_PER_OP: f64 = 1e-6;
/// SPEC section 5's default `max_syscalls_per_op`: lean's bound for mid sizes.
const LEAN_MID_SIZE_MAX: f64 = 1e-4;

/// Runs `cfg` through hakmem; the problem with its steady-state window, if any.
fn steady_state_problem(profile: Profile, what: &str, cfg: &WorkloadConfig) -> Option<String> {
    let max = if profile == Profile::Lean && cfg.max_size > 1024 {
        LEAN_MID_SIZE_MAX
    } else {
        MAX_SYSCALLS_PER_OP
    };
    // What the previous shape's exited workers left for the release thread
    // goes back now, not in this shape's window (the release thread returns
    // an exited thread's cache a second after the thread is gone).
    hakmem::trim();
    let w = Workload::start(cfg, &H);
    let t0 = Instant::now();
    while t0.elapsed() < WARMUP_MAX && (t0.elapsed() < WARMUP || w.ops().total() < WARMUP_OPS) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ops0, s0) = (w.ops(), hakmem::stats());
    std::thread::sleep(MEASURE);
    let (ops1, s1) = (w.ops(), hakmem::stats());
    w.stop();
    let ops = ops1.total() - ops0.total();
    let syscalls = s1.syscalls_total() - s0.syscalls_total();
    let per_op = syscalls as f64 / ops as f64;
    println!(
        "syscalls: {} {what}: {ops} ops, {syscalls} syscalls, {per_op:.2e}/op ({s0:?} -> {s1:?})",
        profile.name()
    );
    if ops <= 10_000 {
        Some(format!("{what}: only {ops} ops in {MEASURE:?}"))
    } else if per_op > max {
        Some(format!(
            "{what}: {syscalls} syscalls over {ops} ops = {per_op:.2e}/op > {max:e}"
        ))
    } else {
        None
    }
}

/// The child: the benchmark's workload shapes under `profile` (its sizes
/// 16..=128 case uses a subset of the defaults' classes, so is left out).
fn steady_state(profile: Profile) {
    common::assert_profile(profile);
    let shapes = [
        ("1 thread, defaults", WorkloadConfig::default()),
        (
            "2 threads, remote_free_ratio 0.3",
            WorkloadConfig {
                threads: 2,
                remote_free_ratio: 0.3,
                ..WorkloadConfig::default()
            },
        ),
        (
            "1 thread, sizes 1024..=65536",
            WorkloadConfig {
                min_size: 1024,
                max_size: 65536,
                ..WorkloadConfig::default()
            },
        ),
    ];
    // Every shape runs, so one failure does not hide another.
    let problems: Vec<String> = shapes
        .iter()
        .filter_map(|(what, cfg)| steady_state_problem(profile, what, cfg))
        .collect();
    assert!(
        problems.is_empty(),
        "{}: {}",
        profile.name(),
        problems.join("; ")
    );
}

macro_rules! profile_test {
    ($name:ident, $profile:expr) => {
        #[test]
        fn $name() {
            if common::is_child() {
                steady_state($profile);
            } else {
                common::run_profile_child(stringify!($name), $profile, "syscalls:");
            }
        }
    };
}

profile_test!(balanced_steady_state_makes_no_syscalls, Profile::Balanced);
profile_test!(lean_steady_state_makes_no_syscalls, Profile::Lean);
profile_test!(
    speed_first_steady_state_makes_no_syscalls,
    Profile::SpeedFirst
);
