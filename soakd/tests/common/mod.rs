//! soakd-specific helpers for the integration tests: each test drives a real
//! soakd process (`CARGO_BIN_EXE_soakd`, only known to this package's tests)
//! and reads its JSON logs and results. Generic helpers (HTTP client, free
//! ports, Prometheus, required tools) come from `hakmem_e2e`.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SOAKD: &str = env!("CARGO_BIN_EXE_soakd");

/// The repository's `config/` folder.
pub fn config_dir() -> PathBuf {
    hakmem_e2e::workspace_root().join("config")
}

/// Writes a profile file into `dir` and returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A quick-epoch profile: 2-second epochs of 1-second samples, no warm-up.
pub const FAST_EPOCHS: &str = r#"
name = "fast"
[epoch]
length_secs = 2
sample_secs = 1
warmup_secs = 0
[server]
listen = "127.0.0.1:0"
"#;

/// A soakd process whose stderr (JSON log lines) is collected as it comes.
pub struct Daemon {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `soakd run` on the ci profile (20 s epochs, an ephemeral port),
    /// writing its results under `out`.
    pub fn spawn_ci(out: &std::path::Path) -> Daemon {
        let ci = config_dir().join("ci.toml");
        Daemon::spawn(&[
            "run",
            "--config",
            ci.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    }

    /// Starts `soakd --log-format json <args>`.
    pub fn spawn(args: &[&str]) -> Daemon {
        Daemon::spawn_with_env(args, &[])
    }

    /// Starts `soakd --log-format json <args>` with extra environment variables.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(SOAKD)
            .envs(env.iter().copied())
            .arg("--log-format")
            .arg("json")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start soakd");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, lines }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Starts `soakd run` on [`FAST_EPOCHS`] plus `extra` (more TOML
    /// sections), its results under `dir/out`.
    pub fn spawn_fast(dir: &Path, extra: &str) -> Daemon {
        let cfg = write_config(dir, "fast.toml", &format!("{FAST_EPOCHS}{extra}"));
        let out = dir.join("out");
        Daemon::spawn(&[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    }

    /// The first log line whose text contains `part`, parsed.
    pub fn log_line(&self, part: &str) -> Option<serde_json::Value> {
        let lines = self.lines.lock().unwrap();
        let line = lines.iter().find(|l| l.contains(part))?;
        serde_json::from_str(line).ok()
    }

    /// The first log line carrying `field`, parsed.
    fn field(&self, field: &str) -> Option<String> {
        self.lines.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get(field)?.as_str().map(str::to_string)
        })
    }

    /// Waits for the start line and returns the bound address it logs.
    pub fn wait_started(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(a) = self.field("listen") {
                return a.parse().expect("listen field is an address");
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("soakd exited ({status}) before starting:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "soakd did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The results file the start line names.
    pub fn results_path(&self) -> PathBuf {
        PathBuf::from(
            self.field("results")
                .expect("start line names the results file"),
        )
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs soakd to completion with `args`; returns (status, stdout, stderr).
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(SOAKD).args(args).output().expect("run soakd");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The records of an epochs.jsonl, each line parsed (panics on a bad line).
pub fn read_epochs(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{}: line {} does not parse: {e}", path.display(), i + 1)
            })
        })
        .collect()
}

/// Waits until `path` holds at least `n` records.
pub fn wait_epochs(path: &Path, n: usize, limit: Duration) -> Vec<serde_json::Value> {
    let what = format!("{n} epochs in {}", path.display());
    hakmem_e2e::wait_for(&what, limit, || {
        let e = read_epochs(path);
        match e.len() {
            len if len >= n => Ok(e),
            len => Err(format!("{len} so far")),
        }
    })
}
