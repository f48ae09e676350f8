//! SPEC section 4's mixed tiny workload through hakmem, mimalloc, jemalloc and
//! the system allocator: `cargo bench -p hakmem --bench mixed`.
//!
//! Method:
//! - Every allocator is reached through the same `&'static dyn GlobalAlloc`
//!   (a vtable call the compiler cannot inline), from the same workload code
//!   (`hakmem_workload`), so none gains from cross-crate inlining.
//! - Each measurement runs in a fresh child process (this binary re-executed
//!   with `HAKMEM_BENCH_CHILD=<allocator>/<case>`): peak RSS cannot be told
//!   apart per allocator inside one process, and a fresh process gives every
//!   allocator the same cold start. The parent only schedules and reports; the
//!   binary's own global allocator is the system one, which every child uses
//!   alike for its bookkeeping.
//! - Interleaved: run r measures every case with every allocator, in an
//!   order rotated by one per run (H M J S, M J S H, ...), so drift in the
//!   machine's load spreads over all allocators. BENCH_RUNS runs (default 5,
//!   at least 1), each BENCH_SECS long (default 2). Without `--bench` (that
//!   is, under `cargo test --benches`) one 0.1 s run checks that every case
//!   works with every allocator.
//! - Throughput: the workload starts, warms up for a tenth of the run, then
//!   operations are counted over the rest (steady state); the median over runs
//!   is reported, and its ratio to mimalloc's median.
//! - Peak RSS delta: the child's VmHWM at the end minus its VmRSS just before
//!   the workload starts (VmHWM is reset through /proc/self/clear_refs
//!   first); the median over runs.
//! - Syscalls per op: hakmem's own counters (`hakmem::stats()`) over the same
//!   steady-state window as the throughput; "n/a" for the others.
//!
//! The output is markdown, ready for docs/perf/SCORECARD.md.

use std::alloc::{GlobalAlloc, System};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hakmem_workload::{Workload, WorkloadConfig};

static HAKMEM: hakmem::Hakmem = hakmem::Hakmem;
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
static SYSTEM: System = System;

const CHILD_ENV: &str = "HAKMEM_BENCH_CHILD";
const RESULT_TAG: &str = "BENCH_RESULT";

struct Allocator {
    name: &'static str,
    imp: &'static (dyn GlobalAlloc + Sync),
}

static ALLOCATORS: [Allocator; 4] = [
    Allocator {
        name: "hakmem",
        imp: &HAKMEM,
    },
    Allocator {
        name: "mimalloc",
        imp: &MIMALLOC,
    },
    Allocator {
        name: "jemalloc",
        imp: &JEMALLOC,
    },
    Allocator {
        name: "system",
        imp: &SYSTEM,
    },
];

/// The allocator every ratio is taken against.
const BASELINE: &str = "mimalloc";

struct Case {
    title: &'static str,
    config: fn() -> WorkloadConfig,
}

const CASES: [Case; 4] = [
    Case {
        title: "1 thread, defaults (sizes 16..=1024, working set 400)",
        config: WorkloadConfig::default,
    },
    Case {
        title: "2 threads, remote_free_ratio 0.3",
        config: || WorkloadConfig {
            threads: 2,
            remote_free_ratio: 0.3,
            ..WorkloadConfig::default()
        },
    },
    Case {
        title: "1 thread, sizes 16..=128",
        config: || WorkloadConfig {
            max_size: 128,
            ..WorkloadConfig::default()
        },
    },
    Case {
        title: "1 thread, sizes 1024..=65536",
        config: || WorkloadConfig {
            min_size: 1024,
            max_size: 65536,
            ..WorkloadConfig::default()
        },
    },
];

/// One child's measurement.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ops_per_sec: f64,
    rss_delta_kib: u64,
    /// Syscalls per op, for hakmem only.
    syscalls_per_op: Option<f64>,
}

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(which) => child(&which),
        Err(_) => parent(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// Seconds per run: BENCH_SECS, else `default`.
fn run_secs(default: f64) -> f64 {
    let secs: f64 = env_or("BENCH_SECS", default);
    assert!(secs > 0.0 && secs.is_finite(), "BENCH_SECS must be > 0");
    secs
}

// ---------------------------------------------------------------- child

/// Measures one allocator on one case and prints a `BENCH_RESULT` line.
fn child(which: &str) {
    let (name, case) = which
        .split_once('/')
        .unwrap_or_else(|| panic!("{CHILD_ENV}={which:?}: want <allocator>/<case>"));
    let alloc = ALLOCATORS
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("unknown allocator {name:?}"));
    let case: usize = case.parse().expect("case index");
    let cfg = (CASES[case].config)();
    // The parent passes BENCH_SECS, so the default here is never used.
    let total = Duration::from_secs_f64(run_secs(2.0));
    let warmup = total / 10;

    reset_peak_rss();
    let rss_start = proc_status_kib("VmRSS");
    let w = Workload::start(&cfg, alloc.imp);
    std::thread::sleep(warmup);
    let (ops0, t0, s0) = (w.ops(), Instant::now(), hakmem::stats());
    std::thread::sleep(total - warmup);
    let (ops1, t1, s1) = (w.ops(), Instant::now(), hakmem::stats());
    w.stop();
    let rss_peak = proc_status_kib("VmHWM");

    let ops = ops1.total() - ops0.total();
    let sample = Sample {
        ops_per_sec: ops as f64 / (t1 - t0).as_secs_f64(),
        rss_delta_kib: rss_peak.saturating_sub(rss_start),
        syscalls_per_op: (alloc.name == "hakmem")
            .then(|| (s1.syscalls_total() - s0.syscalls_total()) as f64 / ops as f64),
    };
    println!(
        "{RESULT_TAG} {} {} {}",
        sample.ops_per_sec,
        sample.rss_delta_kib,
        sample.syscalls_per_op.map_or(-1.0, |s| s)
    );
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); a no-op where refused, in
/// which case the delta is taken against the start-up peak instead.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A `kB` field of /proc/self/status.
fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

// ---------------------------------------------------------------- parent

fn parent() {
    // `cargo bench` passes --bench; `cargo test --benches` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize = env_or("BENCH_RUNS", if smoke { 1 } else { 5 }).max(1);
    let secs = run_secs(if smoke { 0.1 } else { 2.0 });
    let exe = std::env::current_exe().expect("current_exe");
    let commit = git_commit();
    // samples[case][allocator]
    let mut samples: Vec<Vec<Vec<Sample>>> = CASES
        .iter()
        .map(|_| ALLOCATORS.iter().map(|_| Vec::new()).collect())
        .collect();
    eprintln!(
        "mixed: {runs} runs x {} cases x {} allocators x {secs} s",
        CASES.len(),
        ALLOCATORS.len()
    );
    for run in 0..runs {
        for (c, case) in CASES.iter().enumerate() {
            for k in 0..ALLOCATORS.len() {
                let a = (run + k) % ALLOCATORS.len();
                let s = measure(&exe, a, c, secs);
                eprintln!(
                    "run {}/{runs} | {} | {:>8}: {:7.2} Mops/s, {} KiB",
                    run + 1,
                    case.title,
                    ALLOCATORS[a].name,
                    s.ops_per_sec / 1e6,
                    s.rss_delta_kib
                );
                samples[c][a].push(s);
            }
        }
    }
    let command = if smoke {
        "cargo test -p hakmem --benches (smoke run, not a measurement)"
    } else {
        "cargo bench -p hakmem --bench mixed"
    };
    let run = RunInfo {
        command,
        commit,
        runs,
        secs,
    };
    print!("{}", report(&samples, &run));
}

/// Runs one child and parses its result line.
fn measure(exe: &std::path::Path, a: usize, c: usize, secs: f64) -> Sample {
    let out = Command::new(exe)
        .env(CHILD_ENV, format!("{}/{c}", ALLOCATORS[a].name))
        .env("BENCH_SECS", secs.to_string())
        .output()
        .expect("spawn benchmark child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_TAG))
        .filter(|_| out.status.success())
        .unwrap_or_else(|| {
            panic!(
                "child {}/{c} failed ({}):\n{stdout}\n{}",
                ALLOCATORS[a].name,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let f: Vec<f64> = line
        .split_whitespace()
        .map(|v| v.parse().expect("numeric result"))
        .collect();
    Sample {
        ops_per_sec: f[0],
        rss_delta_kib: f[1] as u64,
        syscalls_per_op: (f[2] >= 0.0).then_some(f[2]),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// What the report's header says about the run.
struct RunInfo {
    command: &'static str,
    /// `git describe` when the run started (the build's source, as near as
    /// can be told without a build script).
    commit: String,
    runs: usize,
    secs: f64,
}

fn report(samples: &[Vec<Vec<Sample>>], run: &RunInfo) -> String {
    let RunInfo {
        command,
        commit,
        runs,
        secs,
    } = run;
    let mut s = String::new();
    let _ = writeln!(s, "## mixed tiny workload (SPEC section 4)\n");
    let _ = writeln!(
        s,
        "- command: `{command}` (BENCH_RUNS={runs}, BENCH_SECS={secs})"
    );
    let _ = writeln!(s, "- date: {} (UTC)", utc_date());
    let _ = writeln!(s, "- machine: {} CPUs, {}", nproc(), cpu_model());
    let _ = writeln!(s, "- commit: {commit}");
    let _ = writeln!(
        s,
        "- hakmem profile: {}",
        std::env::var("HAKMEM_PROFILE").unwrap_or_else(|_| "balanced (default)".into())
    );
    let _ = writeln!(
        s,
        "- method: each figure is the median of {runs} interleaved runs, each in a fresh \
         process; Mops/s over the steady-state 90% of each run; peak RSS delta = VmHWM at \
         the end - VmRSS before the workload; syscalls/op from hakmem::stats() over the \
         same window"
    );
    let base = ALLOCATORS
        .iter()
        .position(|a| a.name == BASELINE)
        .expect("baseline allocator");
    for (c, case) in CASES.iter().enumerate() {
        let per = &samples[c];
        let mops = |a: usize| median(per[a].iter().map(|x| x.ops_per_sec / 1e6).collect());
        let base_mops = mops(base);
        let _ = writeln!(s, "\n### {}\n", case.title);
        let _ = writeln!(
            s,
            "| allocator | median Mops/s | vs mimalloc | peak RSS delta KiB | syscalls/op |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: |");
        for (a, alloc) in ALLOCATORS.iter().enumerate() {
            let m = mops(a);
            let rss = median(per[a].iter().map(|x| x.rss_delta_kib as f64).collect());
            let sys = if per[a].iter().all(|x| x.syscalls_per_op.is_some()) {
                match median(per[a].iter().filter_map(|x| x.syscalls_per_op).collect()) {
                    0.0 => "0".to_string(),
                    v => format!("{v:.2e}"),
                }
            } else {
                "n/a".to_string()
            };
            let _ = writeln!(
                s,
                "| {} | {m:.2} | {:.2}x | {rss:.0} | {sys} |",
                alloc.name,
                m / base_mops
            );
        }
    }
    s
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn git_commit() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Today's date from the system clock, as YYYY-MM-DD (days-to-civil, H. Hinnant).
fn utc_date() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
