//! Faults at start and during a run: a busy port, an unwritable folder,
//! SIGTERM/SIGINT mid-epoch, kill -9 and restart.

mod common;

use std::time::{Duration, Instant};

use common::{read_epochs, run, wait_epochs, write_config, Daemon, FAST_EPOCHS};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

#[test]
fn busy_listen_address_fails_fast_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let (status, _, stderr) = run(&[
        "run",
        "--listen",
        &addr,
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let took = t.elapsed();
    assert!(!status.success());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(stderr.contains(&addr), "address not named: {stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
}

#[test]
fn unwritable_output_folder_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // Root can write anywhere, but not below a regular file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = file.join("results");
    let t = Instant::now();
    let (status, _, stderr) = run(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(t.elapsed() < Duration::from_secs(2), "not at start");
    assert!(stderr.contains(out.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("cannot create"), "{stderr}");
}

/// Starts the ci profile (20 s epochs), lets it sample, sends `sig`.
fn stop_mid_epoch(sig: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut d = Daemon::spawn_ci(&out);
    d.wait_started();
    std::thread::sleep(Duration::from_millis(3000)); // one sample (at 2 s) in
    d.signal(sig);
    let t = Instant::now();
    let status = d.wait_exit(Duration::from_secs(5));
    let status = status.unwrap_or_else(|| panic!("still running 5 s after signal {sig}"));
    assert!(
        status.success(),
        "exit {status} after signal {sig}:\n{}",
        d.log()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let epochs = read_epochs(&out.join("epochs.jsonl"));
    let last = epochs.last().expect("the running epoch is written");
    assert_eq!(last["complete"], false);
    assert_eq!(last["epoch"], 1);
    assert!(!last["samples"].as_array().unwrap().is_empty(), "{last}");
    assert!(last["ops"]["alloc"].as_u64().unwrap() > 0);
}

#[test]
fn sigterm_mid_epoch_writes_a_partial_epoch_and_exits_0() {
    stop_mid_epoch(libc::SIGTERM);
}

#[test]
fn sigint_mid_epoch_writes_a_partial_epoch_and_exits_0() {
    stop_mid_epoch(libc::SIGINT);
}

#[test]
fn kill_9_keeps_lines_and_a_restart_continues_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "fast.toml", FAST_EPOCHS);
    let out = dir.path().join("out");
    let args = [
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let mut d = Daemon::spawn(&args);
    d.wait_started();
    let file = d.results_path();
    wait_epochs(&file, 2, Duration::from_secs(30));
    d.signal(libc::SIGKILL);
    d.wait_exit(Duration::from_secs(5)).expect("killed");
    let before = read_epochs(&file); // every line parses
    assert!(before.len() >= 2);
    for (i, e) in before.iter().enumerate() {
        assert_eq!(e["epoch"], i as u64 + 1);
        assert_eq!(e["complete"], true);
    }

    let mut args = args.to_vec();
    args.extend(["--epochs", "1"]);
    let mut d = Daemon::spawn(&args);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("one epoch then exit");
    assert!(status.success(), "{}", d.log());
    let after = read_epochs(&file);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..], "earlier lines untouched");
    let last = after.last().unwrap();
    assert_eq!(last["epoch"], before.len() as u64 + 1);
    assert_eq!(last["complete"], true);
}

#[test]
fn a_second_signal_during_shutdown_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn_fast(dir.path(), "");
    d.wait_started();
    let file = d.results_path();
    wait_epochs(&file, 1, Duration::from_secs(30));
    // Stopped, both signals wait; resumed, they arrive together.
    d.signal(libc::SIGSTOP);
    let before = read_epochs(&file);
    d.signal(libc::SIGTERM);
    d.signal(libc::SIGINT);
    d.signal(libc::SIGCONT);
    let status = d.wait_exit(Duration::from_secs(5)).expect("exits at once");
    let code = status.code();
    assert!(
        code == Some(128 + libc::SIGTERM) || code == Some(128 + libc::SIGINT),
        "{status}:\n{}",
        d.log()
    );
    assert!(
        d.log_line("during shutdown: exiting now").is_some(),
        "{}",
        d.log()
    );
    let after = read_epochs(&file);
    assert_eq!(
        after, before,
        "earlier epochs intact, the running one not written"
    );
}

#[test]
fn a_signal_between_epochs_writes_no_empty_epoch() {
    let dir = tempfile::tempdir().unwrap();
    // 3 s from an epoch's end to the next epoch's first sample.
    let timing = "[epoch]\nlength_secs = 6\nsample_secs = 3\nwarmup_secs = 0\n";
    let text = FAST_EPOCHS.replace(
        "[epoch]\nlength_secs = 2\nsample_secs = 1\nwarmup_secs = 0\n",
        timing,
    );
    assert!(text.contains("length_secs = 6"));
    let cfg = write_config(dir.path(), "slow.toml", &text);
    let out = dir.path().join("out");
    let mut d = Daemon::spawn(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    d.wait_started();
    let file = d.results_path();
    wait_epochs(&file, 1, Duration::from_secs(30));
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{}", d.log());
    let epochs = read_epochs(&file);
    assert_eq!(epochs.len(), 1, "no record for epoch 2: {epochs:?}");
    assert_eq!(epochs[0]["complete"], true);
    assert!(
        d.log_line("before epoch 2's first sample").is_some(),
        "{}",
        d.log()
    );
}

#[test]
fn a_stall_longer_than_an_epoch_restarts_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::spawn_fast(dir.path(), "");
    d.wait_started();
    let file = d.results_path();
    let n = wait_epochs(&file, 1, Duration::from_secs(30)).len();
    d.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(5)); // two and a half 2 s epochs
    d.signal(libc::SIGCONT);
    let epochs = wait_epochs(&file, n + 3, Duration::from_secs(30));
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(5)).expect("exits");
    let gap = d
        .log_line("schedule fell")
        .unwrap_or_else(|| panic!("{}", d.log()));
    assert!(gap["gap_secs"].as_f64().unwrap() > 1.0, "{gap}");
    // Catch-up epochs would start together; restarted ones are an epoch apart.
    let starts: Vec<f64> = epochs
        .iter()
        .map(|e| e["started_unix_secs"].as_f64().unwrap())
        .collect();
    for w in starts.windows(2) {
        assert!(w[1] - w[0] > 1.0, "epochs started {starts:?}");
    }
    for e in &epochs {
        let t: Vec<f64> = e["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["t_secs"].as_f64().unwrap())
            .collect();
        assert!(t.windows(2).all(|w| w[1] - w[0] > 0.5), "samples at {t:?}");
    }
}
