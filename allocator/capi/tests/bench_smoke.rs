//! The allocator workload suite (`scripts/bench_suite.sh`, issue 9) at
//! `SCALE=smoke`, one run: every program compiles with `-Werror`, runs to
//! completion under hakmem, mimalloc, jemalloc and glibc, and the table has
//! every row with a figure for every allocator. Timings are never asserted.
//! Also checks that the script refuses to report a preload that did not take.
//! Debian packages: bash, coreutils, gcc, libmimalloc2.0, libjemalloc2
//! (scripts/setup.sh).

mod common;

use common::{libhakmem, require, run, TempDir};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The suite's rows, as the table's first column names them.
const ROWS: [&str; 9] = [
    "larson",
    "larson-sized",
    "mstress",
    "large",
    "live",
    "simple",
    "xchurn",
    "prodcons",
    "mixed",
];
const ALLOCATORS: [&str; 5] = ["hakmem", "hardened", "mimalloc", "jemalloc", "glibc"];

/// Deadline for one smoke run: seconds of work, minutes of margin for a
/// loaded machine (a hang fails, it does not stall the test run).
const LIMIT: Duration = Duration::from_secs(240);

/// `scripts/bench_suite.sh` at smoke scale, one run, on `hakmem` (the
/// library given as `HAKMEM`), with `extra` environment.
fn suite(hakmem: &Path, extra: &[(&str, &str)]) -> Output {
    require("bash", "bash");
    require("cc", "gcc");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench_suite.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("HAKMEM_") || ["ONLY", "MIMALLOC", "JEMALLOC"].contains(&k.as_str()) {
            cmd.env_remove(k);
        }
    }
    // No optional mi-secure column: the table's shape is fixed here.
    cmd.env("SCALE", "smoke")
        .env("RUNS", "1")
        .env("MIMALLOC_SECURE", "")
        .env("HAKMEM", hakmem)
        .envs(extra.iter().copied());
    run(cmd, LIMIT)
}

/// `x` parsed as a finite, non-negative number, or a failure naming `what`.
fn number(x: &str, what: &str) -> f64 {
    let v: f64 = x
        .parse()
        .unwrap_or_else(|_| panic!("{what}: `{x}` is not a number"));
    assert!(v.is_finite() && v >= 0.0, "{what}: `{x}` is not a figure");
    v
}

/// Checks one allocator's cell: `<time> s (<ratio>x), <rss> MiB`.
fn check_cell(cell: &str, what: &str) {
    let (time, rest) = cell
        .split_once(" s (")
        .unwrap_or_else(|| panic!("{what}: no time in `{cell}`"));
    let (ratio, rss) = rest
        .split_once("x), ")
        .unwrap_or_else(|| panic!("{what}: no ratio in `{cell}`"));
    let rss = rss
        .strip_suffix(" MiB")
        .unwrap_or_else(|| panic!("{what}: no peak RSS in `{cell}`"));
    number(time, what);
    number(ratio, what);
    assert!(number(rss, what) > 0.0, "{what}: peak RSS 0 in `{cell}`");
}

#[test]
fn suite_completes_with_a_full_table() {
    let out = suite(libhakmem(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench_suite.sh failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let header = format!(
        "| workload | hakmem / mimalloc | {} |",
        ALLOCATORS.join(" | ")
    );
    assert!(
        stdout.lines().any(|l| l == header),
        "no table header `{header}` in:\n{stdout}"
    );
    for row in ROWS {
        let prefix = format!("| {row}: ");
        let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&prefix)).collect();
        assert_eq!(lines.len(), 1, "row {row}: want one line in:\n{stdout}");
        let cells: Vec<&str> = lines[0]
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        assert_eq!(
            cells.len(),
            2 + ALLOCATORS.len(),
            "row {row}: want {} cells in `{}`",
            2 + ALLOCATORS.len(),
            lines[0]
        );
        let ratio = cells[1]
            .strip_prefix("**")
            .and_then(|c| c.strip_suffix("x**"))
            .unwrap_or_else(|| panic!("row {row}: no hakmem / mimalloc ratio in `{}`", cells[1]));
        number(ratio, row);
        for (alloc, cell) in ALLOCATORS.iter().zip(&cells[2..]) {
            check_cell(cell, &format!("row {row}, {alloc}"));
        }
    }
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("| ")).count(),
        1 + ROWS.len(),
        "the table has rows the test does not know:\n{stdout}"
    );
}

/// A preload that the loader ignores (here an empty file: "cannot be
/// preloaded") leaves malloc to glibc; the script must stop, not report it.
#[test]
fn suite_refuses_a_preload_that_did_not_take() {
    let dir = TempDir::new("bench-refuse");
    let fake = dir.path().join("libhakmem.so");
    std::fs::write(&fake, b"").expect("writing an empty file");
    let out = suite(&fake, &[("ONLY", "simple")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "bench_suite.sh reported a preload that did not take:\n{stdout}"
    );
    assert!(
        stderr.contains("refusing to report hakmem"),
        "bench_suite.sh failed for another reason:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
