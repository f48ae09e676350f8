//! The heap slow paths of libhakmem.so as processes live them (issue 9): the
//! owner entering its heap lock without an atomic while other threads lock
//! that heap (the release thread's pass over idle heaps, fork's prepare
//! handler), under thread churn and remote frees; full slabs coming back to
//! allocation; and the release pass that an allocating thread runs itself
//! when no release thread exists. The C program (tests/c/lc_slowpath.c)
//! stamps every block and prints what it saw; the assertions are here. Every
//! run has a deadline, so a deadlock fails the test.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{compile, field, label, preloaded, run_ok, TempDir};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A scenario takes about 4 s; a hang costs this.
const LIMIT: Duration = Duration::from_secs(60);

/// The scenarios load the machine and read RSS: one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 4 workers re-created every round replace random blocks of 8..2000 bytes
/// (both slow paths all the time), hand some to each other (remote frees) and
/// each idle 1.2 s once a round, so the release thread's pass locks their
/// heaps while they and the others run; main forks every 50 ms. Under every
/// profile (`speed-first` has no release thread: the workers run the pass),
/// no stamp breaks, every fork's child exits cleanly and nothing hangs. A
/// survival guard: the lock's exclusion itself is tested in `lock.rs`, where
/// the race is forced (this scenario still passes with a revoker that does
/// not wait for the owner, its window being that narrow).
#[test]
fn owners_and_the_threads_that_lock_their_heaps_never_overlap() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("slowpath-owners");
    let exe = compile("lc_slowpath.c", dir.path());
    let mut failures = Vec::new();
    for profile in [None, Some("lean"), Some("speed-first")] {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.args(["owners", "3"]);
        let out = run_ok(cmd, LIMIT);
        let (ops, forks) = (field(&out, "ops"), field(&out, "forks"));
        let (failed, corrupt) = (field(&out, "failed"), field(&out, "corrupt"));
        if ops != 3 * 4 * 150_000 || forks == 0 || failed != 0 || corrupt != 0 {
            failures.push(format!(
                "{}: {ops} operations, {forks} forks of which {failed} failed, \
                 {corrupt} broken stamps: {out}",
                label(profile)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A single-threaded process has no release thread: its own slow paths run
/// the pass, now at most once per tick. 60 MiB of 512 KiB blocks freed into
/// the large cache, which only the pass decays, must leave within 5 s while
/// the thread goes on allocating small blocks.
#[test]
fn a_single_thread_still_decays_the_large_cache_itself() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("slowpath-single");
    let exe = compile("lc_slowpath.c", dir.path());
    const LIMIT_KB: i64 = 20 * 1024;
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args(["single_return", &LIMIT_KB.to_string(), "5000"]);
    let out = run_ok(cmd, LIMIT);
    let (before, after) = (field(&out, "before_kb"), field(&out, "after_kb"));
    assert!(
        before > 50 * 1024,
        "the freed blocks did not stay cached to begin with ({before} KiB): {out}"
    );
    assert!(
        after <= LIMIT_KB,
        "RSS {after} KiB after {} ms of allocating (from {before} KiB); want <= {LIMIT_KB} KiB \
         within 5 s",
        field(&out, "after_ms")
    );
}
