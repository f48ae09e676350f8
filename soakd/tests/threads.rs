//! `threads = "auto"` leaves a core to soakd's own threads, and soakd warns
//! at start when the workers are as many as the cores or more.

mod common;

use common::{run, write_config};
use soakd::config::{auto_threads, available_cores};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

const WARNING: &str = "they compete with soakd's own threads";

/// Runs one 1-second epoch with `threads` and returns soakd's stderr.
fn start_with(threads: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "t.toml",
        &format!(
            "name = \"t\"\n[workload]\nthreads = {threads}\n[epoch]\nlength_secs = 1\n\
             sample_secs = 1\nwarmup_secs = 0\n[server]\nlisten = \"127.0.0.1:0\"\n"
        ),
    );
    let out = dir.path().join("out");
    let (status, _, stderr) = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(status.success(), "{stderr}");
    stderr
}

#[test]
fn workers_on_every_core_are_warned_about_and_auto_is_not() {
    let cores = available_cores();
    let crowded = start_with(&cores.to_string());
    assert!(crowded.contains(WARNING), "{crowded}");
    assert!(
        crowded.contains(&format!("{cores} workload threads on {cores} cores")),
        "{crowded}"
    );
    let auto = start_with("\"auto\"");
    // On a single core even "auto" (1 worker) fills it.
    assert_eq!(
        auto.contains(WARNING),
        auto_threads(cores) >= cores,
        "{auto}"
    );
}
