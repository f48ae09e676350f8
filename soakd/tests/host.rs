//! What a user sees of the build and the machine: `soakd --version` and
//! `soakd host`, run as processes.

mod common;

use std::process::Command;

use common::{run, SOAKD};

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

#[test]
fn version_names_soakd_hakmem_and_the_features() {
    let (status, stdout, _) = run(&["--version"]);
    assert!(status.success());
    // This test's soakd is the default build: hakmem without features.
    let want = format!(
        "soakd {} (hakmem {}, hakmem features: none)\n",
        env!("CARGO_PKG_VERSION"),
        hakmem::VERSION
    );
    assert_eq!(stdout, want);
}

#[test]
fn host_prints_the_machine_and_the_malloc_in_use() {
    let (status, stdout, _) = run(&["host"]);
    assert!(status.success());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stdout.starts_with(&format!("host:    {}\n", host.trim())),
        "{stdout}"
    );
    let keys: Vec<&str> = stdout.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(
        keys,
        ["host", "os", "cpu", "memory", "build", "malloc", "load"]
    );

    // Preloaded (by soname, as a user would), the malloc named is that
    // library's file: jemalloc, from Debian's libjemalloc2 (scripts/setup.sh).
    let out = Command::new(SOAKD)
        .arg("host")
        .env("LD_PRELOAD", "libjemalloc.so.2")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let malloc = text.lines().find(|l| l.starts_with("malloc:")).unwrap();
    assert!(
        malloc.starts_with("malloc:  /") && malloc.contains("/libjemalloc.so.2"),
        "{text}"
    );
}
