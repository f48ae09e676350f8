//! scripts/soak.sh end to end, shortened: a ci-profile soak of one 6 s epoch
//! lands in a dated folder with its summary.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::process::Command;

use hakmem_e2e::{soakd_bin, workspace_root};

#[test]
fn soak_writes_a_dated_folder_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let run = Command::new(workspace_root().join("scripts/soak.sh"))
        .args(["ci", "--seconds", "6", "--listen", "127.0.0.1:0"])
        .arg("--soakd")
        .arg(soakd_bin())
        .arg("--results")
        .arg(&results)
        .output()
        .expect("running scripts/soak.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "soak.sh failed ({}):\n{stdout}\n{stderr}",
        run.status
    );

    let folders: Vec<_> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 1, "one results folder: {folders:?}");
    let name = folders[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    // <YYYYmmdd-HHMMSS>-<profile>
    let (date, profile) = name.split_at(15);
    assert!(
        date.len() == 15
            && date.chars().enumerate().all(|(i, c)| if i == 8 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }),
        "dated folder name {name}"
    );
    assert_eq!(profile, "-ci");

    let epochs = std::fs::read_to_string(folders[0].join("epochs.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = epochs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "one epoch: {epochs}");
    assert_eq!(lines[0]["complete"], true);
    assert_eq!(lines[0]["length_secs"], 6);

    let summary = std::fs::read_to_string(folders[0].join("summary.txt")).unwrap();
    assert!(
        summary.contains("epoch") && summary.lines().count() >= 2,
        "summary: {summary}"
    );
    assert!(
        stdout.contains(summary.trim()),
        "the summary is printed at the end:\n{stdout}"
    );
    for f in ["run.txt", "soakd.log", "profile.toml", "report.html"] {
        assert!(folders[0].join(f).is_file(), "{f} in the results folder");
    }
    // The machine lines come from soakd, in the run notes and the summary.
    let run = std::fs::read_to_string(folders[0].join("run.txt")).unwrap();
    for key in ["host:", "os:", "cpu:", "memory:", "build:", "load:"] {
        assert!(
            run.lines().any(|l| l.starts_with(key)),
            "no {key} in run.txt:\n{run}"
        );
    }
    assert!(
        summary.starts_with("machine, epoch 1:\n"),
        "summary: {summary}"
    );
}
