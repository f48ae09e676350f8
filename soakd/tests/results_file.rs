//! The results folder under real soakd processes: a last line without its
//! newline, two daemons on one folder, a disk that fills mid-run (a
//! file-size limit) and the bounded epoch history behind `/epochs?since=K`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{config_dir, read_epochs, run, wait_epochs, write_config, Daemon, FAST_EPOCHS};
use hakmem_e2e::{http_get, wait_for};
use soakd::metrics::metric;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// Runs one fast epoch on `out` to completion; returns the text log.
fn one_epoch(cfg: &Path, out: &Path) -> String {
    let (status, _, stderr) = run(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    assert!(status.success(), "{stderr}");
    stderr
}

fn epoch_numbers(path: &Path) -> Vec<u64> {
    read_epochs(path)
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_last_record_without_newline_is_kept_and_a_torn_one_cut() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "fast.toml", FAST_EPOCHS);
    let out = dir.path().join("out");
    let file = out.join("epochs.jsonl");
    one_epoch(&cfg, &out);
    let first = std::fs::read_to_string(&file).unwrap();

    // A whole record that lacks its newline (a crash between the two).
    std::fs::write(&file, first.trim_end()).unwrap();
    let log = one_epoch(&cfg, &out);
    assert!(log.contains("lacked its newline"), "{log}");
    assert_eq!(epoch_numbers(&file), [1, 2]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&first), "record 1 kept as it was");

    // A torn record: cut, and only it.
    let mut torn = text.clone();
    torn.push_str(&first[..first.len() / 2]);
    std::fs::write(&file, &torn).unwrap();
    let log = one_epoch(&cfg, &out);
    assert!(log.contains("cut a partial last line"), "{log}");
    assert_eq!(epoch_numbers(&file), [1, 2, 3]);
    assert!(std::fs::read_to_string(&file).unwrap().starts_with(&text));
}

/// Every file in `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_second_soakd_on_the_same_folder_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // The ci profile's 20 s epochs: the first daemon writes no epoch meanwhile.
    let mut first = Daemon::spawn_ci(&out);
    first.wait_started();
    let before = snapshot(&out);
    let ci = config_dir().join("ci.toml");
    let (status, _, stderr) = run(&[
        "run",
        "--config",
        ci.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(out.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains(&format!("in use by soakd pid {}", first.pid())),
        "{stderr}"
    );
    assert_eq!(snapshot(&out), before, "the second soakd wrote nothing");
    assert!(first.is_running());

    // The lock goes with its holder, however it ends.
    first.signal(libc::SIGKILL);
    first.wait_exit(Duration::from_secs(5)).expect("killed");
    let mut again = Daemon::spawn_ci(&out);
    again.wait_started();
}

/// Sets soakd's file-size limit (`RLIMIT_FSIZE`), as a full disk would.
fn limit_file_size(d: &Daemon, bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `lim` (valid for the call) and writes nothing (null old limit).
    let rc = unsafe { libc::prlimit(d.pid(), libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// The value of an unlabelled series (besides `profile`) in `/metrics`.
fn scrape(addr: std::net::SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
}

#[test]
fn a_full_disk_mid_run_is_counted_and_the_epochs_written_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn_fast(dir.path(), "");
    let addr = d.wait_started();
    let file = d.results_path();
    wait_epochs(&file, 1, Duration::from_secs(30));
    let errors = metric::results_write_errors.name;
    assert_eq!(scrape(addr, errors), 0.0);

    // Room for a fraction of a line: the next write is cut short, then refused.
    let size = std::fs::metadata(&file).unwrap().len();
    limit_file_size(&d, size + 100);
    let failed_at = wait_for("failed writes", Duration::from_secs(30), || {
        match scrape(addr, errors) {
            n if n >= 2.0 => Ok(n),
            n => Err(format!("{n} so far")),
        }
    });
    assert!(d.is_running(), "soakd died:\n{}", d.log());
    let kept = read_epochs(&file);
    assert!(!kept.is_empty());
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(len, size, "the short write was cut back");
    let logged = d.log_line("cannot write").expect("the failure is logged");
    assert!(
        logged["message"]
            .as_str()
            .unwrap()
            .contains("File too large"),
        "{logged}"
    );

    limit_file_size(&d, libc::RLIM_INFINITY);
    let after = wait_epochs(&file, kept.len() + 2, Duration::from_secs(30));
    let numbers: Vec<u64> = after.iter().map(|e| e["epoch"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=numbers.len() as u64).collect();
    assert_eq!(numbers, want, "every epoch once, in order");
    assert!(after.iter().all(|e| e["complete"] == true));
    assert!(
        d.log_line("which had failed before").is_some(),
        "{}",
        d.log()
    );
    assert!(scrape(addr, errors) >= failed_at);
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{}", d.log());
}

#[test]
fn memory_keeps_the_last_epochs_and_since_pages_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn_fast(dir.path(), "[output]\nhistory = 2\n");
    let addr = d.wait_started();
    wait_epochs(&d.results_path(), 4, Duration::from_secs(30));
    let get = |path: &str| -> Vec<u64> {
        let (status, body) = http_get(addr, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        v.iter().map(|e| e["epoch"].as_u64().unwrap()).collect()
    };
    let recent = get("/epochs");
    assert_eq!(recent.len(), 2, "{recent:?}");
    assert!(recent[0] >= 3 && recent[1] == recent[0] + 1, "{recent:?}");
    let all = get("/epochs?since=0");
    assert_eq!(all[..4], [1, 2, 3, 4], "older epochs come from the file");
    assert_eq!(get("/epochs?since=2")[0], 3);
    let last = *all.last().unwrap();
    assert!(get(&format!("/epochs?since={}", last + 100)).is_empty());
    let (status, body) = http_get(addr, "/epochs?since=yesterday").unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("since"), "{body}");
    assert!(d.is_running());
}
