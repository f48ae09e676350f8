//! A real Prometheus scrapes soakd; its query API must show the workload's
//! and the allocator's counters.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use hakmem_e2e::Prometheus;
use soakd::metrics::metric;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

/// The value of an instant query's single series, if Prometheus has one yet.
fn query(prom: &mut Prometheus, q: &str) -> Option<f64> {
    let result = prom.query(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    result.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_increasing_counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut soakd = Daemon::spawn_ci(&dir.path().join("out"));
    let target = soakd.wait_started();
    let mut prom = Prometheus::start(dir.path(), &target.to_string());
    let (ops, syscalls) = (metric::ops.name, metric::syscalls.name);

    // Collect scraped values until the ops counter rose three times.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen_ops, mut seen_syscalls) = (Vec::new(), Vec::new());
    while seen_ops.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "prometheus saw ops {seen_ops:?}, syscalls {seen_syscalls:?}",
        );
        std::thread::sleep(Duration::from_millis(1100));
        let (Some(o), Some(s)) = (
            query(&mut prom, &format!("sum({ops})")),
            query(&mut prom, &format!("sum({syscalls})")),
        ) else {
            continue;
        };
        if seen_ops.last().is_none_or(|&last| o > last) {
            seen_ops.push(o);
            seen_syscalls.push(s);
        }
    }
    assert!(seen_ops.windows(2).all(|w| w[1] > w[0]), "ops {seen_ops:?}");
    assert!(seen_ops[0] > 0.0);
    // The allocator's syscalls only go up, and it has mapped memory.
    assert!(
        seen_syscalls.windows(2).all(|w| w[1] >= w[0]),
        "syscalls {seen_syscalls:?}"
    );
    assert!(
        seen_syscalls[0] > 0.0,
        "hakmem reported no syscalls: {seen_syscalls:?}"
    );
    // Every op kind and the scrape health, through the same API.
    for op in ["alloc", "free"] {
        let q = format!("{ops}{{op=\"{op}\",profile=\"ci\"}}");
        assert!(query(&mut prom, &q).unwrap() > 0.0, "{q}");
    }
    let mmap = format!("{syscalls}{{syscall=\"mmap\"}}");
    assert!(query(&mut prom, &mmap).unwrap() > 0.0);
    assert_eq!(query(&mut prom, "up{job=\"soakd\"}"), Some(1.0));
    assert!(soakd.is_running(), "{}", soakd.log());
}
