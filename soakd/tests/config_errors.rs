//! Bad configuration and flags: non-zero exit, the key and the line named,
//! nothing written.

mod common;

use common::{config_dir, run, write_config};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// Runs `soakd run` and `soakd check-config` on `text`; both must refuse it,
/// naming `key` and `line`, and the output folder must not appear.
fn rejected(text: &str, key: &str, line: usize) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "bad.toml", text);
    let out = dir.path().join("out");
    let (status, _, stderr) = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!status.success(), "accepted:\n{text}");
    assert!(stderr.contains(key), "key {key} not named: {stderr}");
    assert!(
        stderr.contains(&format!("line {line}")),
        "line {line} not named: {stderr}"
    );
    assert!(stderr.contains("bad.toml"), "file not named: {stderr}");
    assert!(!out.exists(), "output folder created for a bad config");

    let (status, stdout, stderr) = run(&["check-config", cfg.to_str().unwrap()]);
    assert!(!status.success());
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(key) && stderr.contains(&format!("line {line}")),
        "{stderr}"
    );
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "only the config file is there");
}

#[test]
fn unknown_key() {
    rejected(
        "name = \"x\"\n[workload]\nthreads = 1\nthreds = 2\n",
        "workload.threds",
        4,
    );
    rejected("[epochs]\nlength_secs = 1\n", "epochs", 1);
}

#[test]
fn wrong_type() {
    rejected("[workload]\nthreads = \"two\"\n", "workload.threads", 2);
    rejected(
        "[allocator]\n\nmem_lean = \"yes\"\n",
        "allocator.mem_lean",
        3,
    );
}

#[test]
fn out_of_range_values() {
    rejected("[workload]\nthreads = 0\n", "workload.threads", 2);
    rejected(
        "[workload]\nmax_size = 64\nmin_size = 128\n",
        "workload.min_size",
        3,
    );
    rejected(
        "[workload]\nremote_free_ratio = 1.5\n",
        "workload.remote_free_ratio",
        2,
    );
    rejected(
        "[workload]\nremote_free_ratio = -0.2\n",
        "workload.remote_free_ratio",
        2,
    );
    rejected("[thresholds]\nmax_cv = 3.0\n", "thresholds.max_cv", 2);
}

#[test]
fn bad_flags_name_the_flag_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (flag, value) in [
        ("--epoch-secs", "abc"),
        ("--epochs", "0"),
        ("--listen", "nowhere"),
    ] {
        let (status, _, stderr) = run(&["run", flag, value, "--out", out.to_str().unwrap()]);
        assert!(!status.success(), "{flag} {value} accepted");
        assert!(stderr.contains(flag), "{flag} not named: {stderr}");
    }
    let (status, _, stderr) = run(&["run", "--bogus"]);
    assert!(!status.success() && stderr.contains("--bogus"));
    assert!(!out.exists());
}

#[test]
fn check_config_prints_the_effective_configuration() {
    for profile in ["speed-first", "balanced", "lean", "ci"] {
        let path = config_dir().join(format!("{profile}.toml"));
        let (status, stdout, stderr) = run(&["check-config", path.to_str().unwrap()]);
        assert!(status.success(), "{profile}: {stderr}");
        // Effective: every key is printed, the profile's resolved too.
        for key in [
            &format!("name = \"{profile}\"") as &str,
            "mem_lean = ",
            "retain_superslabs = ",
            "threads = ",
            "length_secs = ",
            "max_syscalls_per_op = ",
            "listen = ",
            "dir = ",
        ] {
            assert!(stdout.contains(key), "{profile}: {key} missing:\n{stdout}");
        }
        // ...and it is itself a valid profile.
        let dir = tempfile::tempdir().unwrap();
        let again = write_config(dir.path(), "again.toml", &stdout);
        let (status, stdout2, _) = run(&["check-config", again.to_str().unwrap()]);
        assert!(status.success());
        assert_eq!(stdout, stdout2);
    }
}

#[test]
fn a_workload_larger_than_the_machine() {
    let text = "[workload]\nthreads = 1024\nworking_set = 16777216\nmax_size = 1073741824\n";
    rejected(text, "workload.threads", 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "oom.toml", text);
    let (status, _, stderr) = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    for part in [
        "workload.working_set 16777216",
        "workload.max_size",
        "MemTotal",
    ] {
        assert!(stderr.contains(part), "{part} not named: {stderr}");
    }
}
