//! scripts/ab.sh end to end: a short A/B (2 runs per side, tiny epochs)
//! writes a markdown result with a verdict.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::process::Command;

use hakmem_e2e::{soakd_bin, workspace_root};

/// A profile with 1 s samples and a 1 s warm-up, so each run lasts 3 s.
const TINY: &str = r#"
name = "ab-tiny"
[epoch]
sample_secs = 1
warmup_secs = 1
[server]
listen = "127.0.0.1:0"
"#;

#[test]
fn short_ab_writes_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("tiny.toml");
    std::fs::write(&profile, TINY).unwrap();
    let out = dir.path().join("perf/AB_test.md");
    let bin = soakd_bin();
    // Two prebuilt binaries is the "two builds" form (here the same build).
    let run = Command::new(workspace_root().join("scripts/ab.sh"))
        .arg("--a-config")
        .arg(&profile)
        .arg("--a-bin")
        .arg(bin)
        .arg("--b-bin")
        .arg(bin)
        .args(["--a-name", "base", "--b-name", "cand"])
        .args([
            "--runs", "2", "--secs", "2", "--go", "2.5", "--nogo", "-2.5",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("running scripts/ab.sh");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "ab.sh failed ({}):\n{stderr}",
        run.status
    );

    let md = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{}: {e}\n{stderr}", out.display()));
    let verdicts: Vec<_> = md.lines().filter(|l| l.starts_with("Verdict: ")).collect();
    assert_eq!(verdicts.len(), 1, "one verdict line in:\n{md}");
    assert!(
        ["Verdict: GO", "Verdict: NEUTRAL", "Verdict: NO-GO"].contains(&verdicts[0]),
        "verdict line {:?}",
        verdicts[0]
    );
    assert!(
        md.contains("GO at +2.5% or more, NO-GO at -2.5% or less"),
        "thresholds are settable:\n{md}"
    );
    assert!(
        md.contains("| A `base` | 2 |") && md.contains("| B `cand` | 2 |"),
        "2 runs per side:\n{md}"
    );
    // Interleaved ABBA: run order A, B, B, A.
    let order: Vec<_> = md
        .lines()
        .filter_map(|l| l.strip_prefix("| ").and_then(|r| r.split(" | ").nth(1)))
        .filter(|s| *s == "A" || *s == "B")
        .collect();
    assert_eq!(order, ["A", "B", "B", "A"], "run order in:\n{md}");
    assert!(md.contains("Delta (B vs A): mean "), "{md}");
}
