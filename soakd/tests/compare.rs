//! `soakd compare` end to end: real child soakd processes under LD_PRELOAD
//! (a freshly built libhakmem.so, and glibc), alternating epochs, one
//! epochs.jsonl per allocator, the side-by-side table, and its HTML page
//! rendered in headless Chromium.

mod common;

use std::path::Path;

use common::{read_epochs, run, write_config};
use hakmem_e2e::chromium::assert_draws_every_plot;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

const PROFILE: &str = "name = \"cmp\"\n[workload]\nthreads = 1\n\
    [epoch]\nlength_secs = 3\nsample_secs = 1\nwarmup_secs = 1\n";

fn compare(dir: &Path, with: &str) -> (std::process::ExitStatus, String, String) {
    let cfg = write_config(dir, "p.toml", PROFILE);
    run(&[
        "compare",
        "--config",
        cfg.to_str().unwrap(),
        "--with",
        with,
        "--hakmem-lib",
        hakmem_e2e::libhakmem().to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        dir.join("out").to_str().unwrap(),
    ])
}

#[test]
fn a_short_comparison_alternates_and_writes_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) = compare(dir.path(), "glibc,gone=/nonexistent/libgone.so");
    assert!(status.success(), "{stderr}");
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.contains("skipped")).collect();
    assert_eq!(skipped.len(), 1, "{stderr}");
    assert!(
        skipped[0].contains("gone: /nonexistent/libgone.so not found"),
        "{stderr}"
    );

    let out = dir.path().join("out");
    let mut starts = Vec::new();
    for alloc in ["hakmem", "glibc"] {
        let recs = read_epochs(&out.join(alloc).join("epochs.jsonl"));
        assert_eq!(recs.len(), 2, "{alloc}: {recs:?}");
        for r in &recs {
            assert_eq!(r["complete"], true, "{alloc}");
            assert_eq!(r["backend"], "libc", "every allocator through malloc");
            // Syscalls are counted for the preloaded hakmem only.
            assert_eq!(r["syscalls"].is_u64(), alloc == "hakmem", "{alloc}: {r}");
            starts.push((r["started_unix_secs"].as_f64().unwrap(), alloc));
        }
        assert!(out.join(alloc).join("soakd.log").is_file());
    }
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let order: Vec<&str> = starts.iter().map(|s| s.1).collect();
    assert_eq!(
        order,
        ["hakmem", "glibc", "glibc", "hakmem"],
        "rotated each round"
    );

    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("allocator") && lines[0].contains("syscalls/op"),
        "{stdout}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("hakmem")[1], "2/2");
    assert_eq!(row("glibc")[1], "2/2");
    assert_eq!(row("glibc")[9], "-", "glibc's syscalls are not known");
    assert_ne!(row("hakmem")[9], "-", "hakmem's are");

    let md = std::fs::read_to_string(out.join("compare.md")).unwrap();
    assert!(
        md.contains("| hakmem | 2/2 |") && md.contains("| glibc | 2/2 |"),
        "{md}"
    );
    let figures = assert_draws_every_plot(&out.join("compare.html"));
    assert_eq!(figures, ["throughput", "load1", "others_cpu", "rss"]);
}

#[test]
fn bad_requests_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = compare(dir.path(), "tcmalloc");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown allocator `tcmalloc`"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing written");

    // Results already in the folder are never mixed with a new run.
    let glibc = dir.path().join("out/glibc");
    std::fs::create_dir_all(&glibc).unwrap();
    std::fs::write(glibc.join("epochs.jsonl"), "{}\n").unwrap();
    let (status, _, stderr) = compare(dir.path(), "glibc");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("already holds results"), "{stderr}");
    assert!(!dir.path().join("out/hakmem").exists(), "nothing written");
}
