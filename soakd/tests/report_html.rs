//! `soakd report --html` as a user sees it: the page rendered in headless
//! Chromium loads without script errors and draws every plot, for a fresh
//! run and for a results file written before the robust figures existed.

mod common;

use std::path::Path;

use common::{run, write_config};
use hakmem_e2e::chromium::assert_draws_every_plot;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// `soakd report FILE --html OUT`: its table, and the figures the page draws.
fn report(results: &Path, html: &Path) -> (String, Vec<String>) {
    let (status, stdout, stderr) = run(&[
        "report",
        results.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(status.success(), "{stderr}");
    (stdout, assert_draws_every_plot(html))
}

#[test]
fn a_fresh_runs_report_draws_every_plot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "p.toml",
        "name = \"html\"\n[epoch]\nlength_secs = 4\nsample_secs = 1\nwarmup_secs = 1\n\
         [server]\nlisten = \"127.0.0.1:0\"\n",
    );
    let out = dir.path().join("out");
    let (status, _, stderr) = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--epochs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(status.success(), "{stderr}");
    let (table, figures) = report(&out, &dir.path().join("r.html"));
    assert!(table.contains("RSS trend/h"), "{table}");
    assert_eq!(figures, ["throughput", "load1", "others_cpu", "rss"]);
}

#[test]
fn an_old_results_files_report_draws_every_plot() {
    let old = hakmem_e2e::workspace_root().join("docs/perf/SOAK_2026-11-26_balanced.epochs.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let (table, figures) = report(&old, &dir.path().join("old.html"));
    assert!(!table.contains("warning"), "{table}");
    // Written before soakd recorded the load: no load plots.
    assert_eq!(figures, ["throughput", "rss"]);
}
