//! A real Prometheus scrapes soakd; its query API must show the workload's
//! and the allocator's counters.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http_get, tool, Daemon};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// Kills Prometheus when the test ends, however it ends.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant query's single series, if Prometheus has one yet.
fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={}", url_encode(q))).ok()?;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{body}");
    let result = v["data"]["result"].as_array()?;
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_increasing_counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut soakd = Daemon::spawn_ci(&dir.path().join("out"));
    let target = soakd.wait_started();

    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: soakd\n    scrape_interval: 1s\n    scrape_timeout: 1s\n\
             \x20   static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Prometheus(
        Command::new(tool("/usr/bin/prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Collect scraped values until the ops counter rose three times.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ops, mut syscalls) = (Vec::new(), Vec::new());
    while ops.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "prometheus saw ops {ops:?}, syscalls {syscalls:?}\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(1100));
        let (Some(o), Some(s)) = (
            query(prom_addr, "sum(soakd_ops_total)"),
            query(prom_addr, "sum(hakmem_syscalls_total)"),
        ) else {
            continue;
        };
        if ops.last().is_none_or(|&last| o > last) {
            ops.push(o);
            syscalls.push(s);
        }
    }
    assert!(ops.windows(2).all(|w| w[1] > w[0]), "ops {ops:?}");
    assert!(ops[0] > 0.0);
    // The allocator's syscalls only go up, and it has mapped memory.
    assert!(
        syscalls.windows(2).all(|w| w[1] >= w[0]),
        "syscalls {syscalls:?}"
    );
    assert!(
        syscalls[0] > 0.0,
        "hakmem reported no syscalls: {syscalls:?}"
    );
    // Every op kind and the scrape health, through the same API.
    assert!(query(prom_addr, "soakd_ops_total{op=\"alloc\",profile=\"ci\"}").unwrap() > 0.0);
    assert!(query(prom_addr, "soakd_ops_total{op=\"free\",profile=\"ci\"}").unwrap() > 0.0);
    assert!(query(prom_addr, "hakmem_syscalls_total{syscall=\"mmap\"}").unwrap() > 0.0);
    assert_eq!(query(prom_addr, "up{job=\"soakd\"}"), Some(1.0));
    assert!(soakd.is_running(), "{}", soakd.log());
}
