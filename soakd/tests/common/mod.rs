//! Helpers shared by the integration tests: each test drives a real soakd
//! process and talks to it over real sockets.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SOAKD: &str = env!("CARGO_BIN_EXE_soakd");

/// The repository's `config/` folder.
pub fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config")
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
        let mut child = Command::new(SOAKD)
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

/// Sends raw bytes and reads the whole answer (until close or 5 s).
pub fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        // A reset after the server answered and closed still counts as the answer.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(out),
        Err(e) => Err(e),
    }
}

/// A GET over HTTP/1.1; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = exchange(addr, req.as_bytes())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, decode_chunked_if_needed(&text, body)))
}

fn decode_chunked_if_needed(head_and_body: &str, body: &str) -> String {
    let head = head_and_body.split("\r\n\r\n").next().unwrap_or("");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
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
    let deadline = Instant::now() + limit;
    loop {
        let e = read_epochs(path);
        if e.len() >= n {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {} of {n} epochs",
            path.display(),
            e.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A required tool; CI installs it (Debian package `prometheus`), so a missing one fails.
pub fn tool(path: &str) -> &str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's `prometheus` package (apt-get install prometheus)"
    );
    path
}
