//! libhakmem.so under threads, fork and thread exit: tests/c/stress.c,
//! tests/c/fork.c and tests/c/tls_dtor.c, with each profile.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{compile, label, preloaded, run_on_hakmem, TempDir, PROFILES};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

/// 32 threads re-created each of 6 rounds, 40k steps each, half the frees
/// through a shared buffer, every block checked at free.
#[test]
fn threads_with_cross_thread_frees() {
    let dir = TempDir::new("stress");
    let exe = compile("stress.c", dir.path());
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.args(["6", "32", "40000"]);
        let out = run_on_hakmem(cmd, LIMIT);
        assert!(out.contains("stress: ok"), "{}: {out}", label(profile));
    }
}

/// 100 forks while 8 threads allocate; every child allocates, frees and exits 0.
#[test]
fn fork_from_busy_threads() {
    let dir = TempDir::new("fork");
    let exe = compile("fork.c", dir.path());
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.arg("100");
        let out = run_on_hakmem(cmd, LIMIT);
        assert!(out.contains("fork: ok"), "{}: {out}", label(profile));
    }
}

/// malloc/free from thread_local and pthread key destructors that run before
/// and after hakmem's own thread teardown, and from atexit/destructors.
#[test]
fn tls_destructors_can_allocate() {
    let dir = TempDir::new("tls");
    let exe = compile("tls_dtor.c", dir.path());
    for profile in PROFILES {
        let out = run_on_hakmem(preloaded(Command::new(&exe), profile), LIMIT);
        assert!(out.contains("tls: ok"), "{}: {out}", label(profile));
    }
}
