//! Torture suite of libhakmem.so (issue 8, "What must hold"): thread churn with
//! blocks freed by later threads, forks from many threads while others
//! allocate and free (with fork handlers that allocate), producer/consumer
//! bursts with idle phases, thread-exit destructors that allocate in every
//! pass, and dlopen/dlclose cycles. Each scenario runs under the default build
//! and under the `fast` build (integrity checks compiled out, built into
//! `<target>/fast`), with a deadline, and asserts survival (exit 0 in time, no
//! corrupted block) and memory return (RSS or hakmem's mapped bytes).
//!
//! Sized for well under three minutes in all on two cores (about 25 s of
//! scenarios when nothing fails, plus building the `fast` library once; a
//! scenario that hangs costs its deadline, 30 to 90 s). The scenarios run one
//! at a time within this binary, so that memory readings and deadlines do not
//! depend on what runs beside them.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{
    compile, compile_shared, compile_with, field, libhakmem, libhakmem_fast, no_core_dump,
    preloaded_with, run_ok, text_field, TempDir,
};
use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// 40 MB, in KiB: what a process may keep once its blocks are freed.
const RSS_40_MB: i64 = 40 * 1024;

#[derive(Clone, Copy)]
enum Build {
    Default,
    Fast,
}

impl Build {
    fn so(self) -> &'static Path {
        match self {
            Build::Default => libhakmem(),
            Build::Fast => libhakmem_fast(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Build::Default => "default build",
            Build::Fast => "fast build",
        }
    }
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---- thread churn ----------------------------------------------------------------

/// 2000 threads in waves of 16, 5000 steps each on a shared ring of 2^18
/// pointers: every step allocates a block and frees the one it displaces,
/// mostly a block of an earlier, exited thread. Then main frees the ~140 MB
/// left: RSS <= 40 MB within 3 s.
fn thread_churn(build: Build) {
    let _serial = one_at_a_time();
    let so = build.so();
    let dir = TempDir::new("torture-churn");
    let exe = compile("lc_torture.c", dir.path());
    let mut cmd = preloaded_with(Command::new(exe), so, None);
    cmd.args([
        "churn",
        "2000",
        "16",
        "5000",
        &RSS_40_MB.to_string(),
        "3000",
    ]);
    let out = run_ok(cmd, Duration::from_secs(90));
    assert_eq!(field(&out, "corrupt"), 0, "{}: {out}", build.name());
    let after = field(&out, "after_free_kb");
    assert!(
        after <= RSS_40_MB,
        "{}: RSS after the churn's blocks were all freed: {after} KiB after {} ms (peak \
         {} KiB, {} bytes mapped); want <= {RSS_40_MB} KiB within 3 s",
        build.name(),
        field(&out, "after_free_ms"),
        field(&out, "peak_kb"),
        field(&out, "mapped_bytes")
    );
}

#[test]
fn thread_churn_default() {
    thread_churn(Build::Default);
}

#[test]
fn thread_churn_fast() {
    thread_churn(Build::Fast);
}

// ---- fork --------------------------------------------------------------------------

/// 10 forks from main, then 60 from 4 threads while 4 others allocate and
/// free, with lc_atfork_lib.so's allocating fork handlers registered before
/// hakmem's. Every child allocates, frees and exits 0; afterwards, with
/// everything freed, RSS <= 40 MB.
fn fork_from_many_threads(build: Build) {
    let _serial = one_at_a_time();
    let so = build.so();
    let dir = TempDir::new("torture-fork");
    compile_shared("lc_atfork_lib.c", dir.path());
    let mut rpath = OsString::from("-Wl,-rpath,");
    rpath.push(dir.path());
    let exe = compile_with(
        "lc_fork.c",
        dir.path(),
        [
            OsString::from("-Wl,--no-as-needed"),
            OsString::from("-L"),
            dir.path().as_os_str().to_owned(),
            OsString::from("-l:lc_atfork_lib.so"),
            rpath,
        ],
    );
    let mut cmd = preloaded_with(Command::new(exe), so, None);
    cmd.args(["lib", "10", "4", "15", "4"]);
    let out = run_ok(cmd, Duration::from_secs(30));
    assert_eq!(
        (field(&out, "forks"), field(&out, "failed")),
        (70, 0),
        "{}: forks done, children failed: {out}",
        build.name()
    );
    let rss = field(&out, "rss_kb");
    assert!(
        rss <= RSS_40_MB,
        "{}: RSS after the forks, everything freed: {rss} KiB; want <= {RSS_40_MB} KiB",
        build.name()
    );
}

#[test]
fn fork_from_many_threads_default() {
    fork_from_many_threads(Build::Default);
}

#[test]
fn fork_from_many_threads_fast() {
    fork_from_many_threads(Build::Fast);
}

// ---- producer/consumer -------------------------------------------------------------

/// 2 producers build 64 MB bursts of mixed sizes; once a burst is complete,
/// 2 consumers free it all (remote frees to owners that are now idle); then
/// every thread idles. In each idle phase (300 ms, then polling for up to 3 s)
/// RSS must come back to <= 40 MB. 5 bursts.
fn producer_consumer_with_idle_phases(build: Build) {
    let _serial = one_at_a_time();
    let so = build.so();
    let dir = TempDir::new("torture-prodcons");
    let exe = compile("lc_torture.c", dir.path());
    let mut cmd = preloaded_with(Command::new(exe), so, None);
    cmd.args(["prodcons", "5", "64", &RSS_40_MB.to_string(), "3000"]);
    let out = run_ok(cmd, Duration::from_secs(90));
    assert_eq!(field(&out, "corrupt"), 0, "{}: {out}", build.name());
    let worst = field(&out, "max_idle_kb");
    assert!(
        worst <= RSS_40_MB,
        "{}: RSS in the idle phases after 64 MB bursts: {} KiB (worst {worst} KiB, peak {} \
         KiB); want <= {RSS_40_MB} KiB within 300 ms + 3 s of each",
        build.name(),
        text_field(&out, "idle_kb"),
        field(&out, "peak_kb")
    );
}

#[test]
fn producer_consumer_with_idle_phases_default() {
    producer_consumer_with_idle_phases(Build::Default);
}

#[test]
fn producer_consumer_with_idle_phases_fast() {
    producer_consumer_with_idle_phases(Build::Fast);
}

// ---- thread-exit destructors -------------------------------------------------------

/// 2000 threads, 16 at a time, each with a pthread key destructor that
/// allocates and re-arms itself in all 4 of glibc's passes, and thread_local
/// destructors that allocate and free. Afterwards hakmem maps <= 64 MiB in <=
/// 16 superslabs within 2 s (no heap stranded; exited threads' caches wait
/// for the release thread).
fn exit_destructors_allocate(build: Build) {
    let _serial = one_at_a_time();
    let so = build.so();
    let dir = TempDir::new("torture-tsd");
    let exe = compile("lc_tsd.c", dir.path());
    let mut cmd = preloaded_with(Command::new(exe), so, None);
    cmd.args(["2000", "16", "mix"]);
    let out = run_ok(cmd, Duration::from_secs(60));
    assert_eq!(
        field(&out, "passes"),
        4 * 2000,
        "{}: key destructor passes: {out}",
        build.name()
    );
    let (mapped, superslabs) = (field(&out, "mapped_bytes"), field(&out, "superslabs"));
    assert!(
        mapped <= 64 << 20 && superslabs <= 16,
        "{}: after 2000 threads whose exit destructors allocate: {mapped} bytes ({} MiB) \
         mapped in {superslabs} superslabs; want <= 64 MiB and <= 16",
        build.name(),
        mapped >> 20
    );
}

#[test]
fn exit_destructors_allocate_default() {
    exit_destructors_allocate(Build::Default);
}

#[test]
fn exit_destructors_allocate_fast() {
    exit_destructors_allocate(Build::Fast);
}

// ---- dlopen/dlclose ----------------------------------------------------------------

/// 20 cycles of dlopen(libhakmem.so), 8 threads using its malloc/free, half
/// exiting before and half after the dlclose. Exit 0, and RSS <= 40 MB at the
/// end (the unloaded copies keep nothing resident).
fn dlopen_dlclose_cycles(build: Build) {
    let _serial = one_at_a_time();
    let so = build.so();
    let dir = TempDir::new("torture-dlclose");
    let exe = compile("lc_dlclose.c", dir.path());
    let mut cmd = Command::new(exe);
    cmd.arg(so).args(["20", "8"]).env_remove("LD_PRELOAD");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HAKMEM_") {
            cmd.env_remove(k);
        }
    }
    no_core_dump(&mut cmd);
    let out = run_ok(cmd, Duration::from_secs(60));
    assert_eq!(field(&out, "cycles"), 20, "{}: {out}", build.name());
    let rss = field(&out, "rss_kb");
    assert!(
        rss <= RSS_40_MB,
        "{}: RSS after 20 dlopen/dlclose cycles: {rss} KiB; want <= {RSS_40_MB} KiB",
        build.name()
    );
}

#[test]
fn dlopen_dlclose_cycles_default() {
    dlopen_dlclose_cycles(Build::Default);
}

#[test]
fn dlopen_dlclose_cycles_fast() {
    dlopen_dlclose_cycles(Build::Fast);
}
