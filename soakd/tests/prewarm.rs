//! A profile's allocator options take effect under soakd, including those
//! hakmem reads once: soakd applies its profile after the allocator started,
//! so `prewarm = true` must prewarm then (it used to be silently ignored).

mod common;

use std::process::Command;

use common::{write_config, SOAKD};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// Runs one 1-second epoch of soakd on `[allocator]` `allocator` (no
/// `HAKMEM_*` inherited) and returns the `allocator` field of its start line.
fn started_allocator(allocator: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"prewarm\"\n[allocator]\n{allocator}\n[epoch]\nlength_secs = 1\n\
         sample_secs = 1\nwarmup_secs = 0\n[server]\nlisten = \"127.0.0.1:0\"\n"
    );
    let cfg = write_config(dir.path(), "p.toml", &text);
    let mut cmd = Command::new(SOAKD);
    cmd.args(["--log-format", "json", "run", "--epochs", "1", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HAKMEM_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run soakd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{allocator}:\n{stderr}");
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| Some(v.get("allocator")?.as_str()?.to_string()))
        .unwrap_or_else(|| panic!("no start line naming the allocator:\n{stderr}"))
}

#[test]
fn a_profile_that_sets_prewarm_prewarms() {
    // speed-first has prewarm on; hakmem started balanced (no HAKMEM_*).
    assert_eq!(
        started_allocator("profile = \"speed-first\""),
        "hakmem (speed-first, prewarmed)"
    );
    // The single key works on any profile...
    assert_eq!(
        started_allocator("profile = \"lean\"\nprewarm = true"),
        "hakmem (lean, prewarmed)"
    );
    // ...and without it nothing is prewarmed.
    assert_eq!(
        started_allocator("profile = \"balanced\""),
        "hakmem (balanced)"
    );
}
