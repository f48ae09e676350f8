//! Lifecycle regressions of libhakmem.so (issue 8, SPEC section 3a): one test
//! per numbered item of the issue (item 11's parts as separate tests), each
//! reproducing under `LD_PRELOAD` what the issue says was seen and asserting
//! what must hold. The C programs (tests/c/lc_*.c) measure and print
//! `key=value` figures; the assertions are here, and each failure message
//! says what was measured.
//!
//! Memory figures are VmRSS readings the programs take themselves, polling
//! every 100 ms until the figure is under the limit or the deadline
//! has passed, so a test waits only as long as memory takes to come back. The
//! limits are the issue's, in KiB (40 MB = 40 MiB here), under the default
//! (`balanced`) profile. Every program runs with a deadline: a hang fails the
//! test instead of stalling the suite.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{
    compile, compile_shared, compile_with, field, hakmem_abort_line, label, libhakmem,
    no_core_dump, preloaded, run, run_ok, text_field, TempDir, PROFILES,
};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Deadline of a program that should take a few seconds at most.
const LIMIT: Duration = Duration::from_secs(60);
/// Deadline of the fork programs, which take well under a second unless a
/// fork deadlocks.
const FORK_LIMIT: Duration = Duration::from_secs(30);

/// 40 MB (the target for items 5, 6, 11a and 11d), in KiB.
const RSS_40_MB: i64 = 40 * 1024;
/// 10 MB (the target for item 7), in KiB.
const RSS_10_MB: i64 = 10 * 1024;

/// Serialises the tests that measure memory or load the machine, so that a
/// parallel test run cannot slow one down past its deadline.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fails with every message in `failures`, one per line.
fn assert_none(what: &str, failures: &[String]) {
    assert!(failures.is_empty(), "{what}:\n{}", failures.join("\n---\n"));
}

// ---- item 1: calloc ----------------------------------------------------------

/// Item 1: a thread fills and frees ~3 slabs of 64-byte blocks (0xAA) and 8
/// blocks of 200 bytes, and exits; 4000 calloc(1, 1000) must then all read as
/// zero. Seen: 60 blocks (52,324 bytes of 0xAA) under balanced and lean.
#[test]
fn item01_calloc_after_thread_exit_is_zero() {
    let dir = TempDir::new("lc-calloc");
    let exe = compile("lc_calloc.c", dir.path());
    let mut failures = Vec::new();
    for profile in [None, Some("lean"), Some("speed-first")] {
        let out = run_ok(preloaded(Command::new(&exe), profile), LIMIT);
        let (blocks, bytes) = (field(&out, "nonzero_blocks"), field(&out, "nonzero_bytes"));
        if blocks != 0 || bytes != 0 {
            failures.push(format!(
                "{}: {blocks} of 4000 calloc(1, 1000) blocks not zero ({bytes} non-zero bytes, \
                 {} of them 0xAA)",
                label(profile),
                field(&out, "aa_bytes")
            ));
        }
    }
    assert_none("calloc returned old data", &failures);
}

// ---- item 2: fork ------------------------------------------------------------

/// lc_fork linked against lc_atfork_lib.so (a DT_NEEDED dependency found
/// through its rpath), both built in `dir`.
fn fork_with_atfork_lib(dir: &Path) -> std::path::PathBuf {
    compile_shared("lc_atfork_lib.c", dir);
    let mut rpath = OsString::from("-Wl,-rpath,");
    rpath.push(dir);
    compile_with(
        "lc_fork.c",
        dir,
        [
            OsString::from("-Wl,--no-as-needed"),
            OsString::from("-L"),
            dir.as_os_str().to_owned(),
            OsString::from("-l:lc_atfork_lib.so"),
            rpath,
        ],
    )
}

/// Checks lc_fork's report: every fork done, every child exited 0, and the
/// prepare handler under test ran once per fork.
fn check_forks(what: &str, out: &str, want: i64) {
    assert_eq!(field(out, "forks"), want, "{what}: forks done: {out}");
    assert_eq!(field(out, "failed"), 0, "{what}: children failed: {out}");
    assert_eq!(
        field(out, "prepare"),
        want,
        "{what}: prepare handler runs: {out}"
    );
}

/// Item 2: a library linked by the program (its constructor runs before the
/// preloaded hakmem's) registers fork handlers that free, malloc(300000) and
/// allocate; 20 forks from main, then 30 from 3 threads while 3 others
/// allocate and free. Seen: fork() spins for ever. Must: every fork returns,
/// every child (allocating, freeing, exiting) exits 0.
#[test]
fn item02_fork_with_allocating_handlers_registered_before_hakmem() {
    let dir = TempDir::new("lc-fork-lib");
    let exe = fork_with_atfork_lib(dir.path());
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.args(["lib", "20", "3", "10", "3"]);
        let out = run_ok(cmd, FORK_LIMIT);
        check_forks(label(profile), &out, 50);
    }
}

/// Item 2, the other order: handlers registered by main after hakmem's (so
/// glibc runs their prepare before hakmem's) that free, malloc(300000) and
/// allocate. Not reported broken; kept so that a fix for the first order does
/// not break this one.
#[test]
fn item02_fork_with_allocating_handlers_registered_after_hakmem() {
    let dir = TempDir::new("lc-fork-after");
    let exe = compile("lc_fork.c", dir.path());
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.args(["after", "20", "3", "10", "3"]);
        let out = run_ok(cmd, FORK_LIMIT);
        check_forks(label(profile), &out, 50);
    }
}

// ---- items 3, 4, 11b, 11c: misuse ------------------------------------------------

/// Runs `lc_misuse MODE` preloaded (no core dump).
fn misuse(exe: &Path, mode: &str) -> Output {
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.arg(mode);
    no_core_dump(&mut cmd);
    run(cmd, LIMIT)
}

/// `lc_misuse MODE` must have died of SIGABRT after one `hakmem:` line naming
/// the pointer it printed as `p=` and containing each of `words`.
fn aborted_naming_p(mode: &str, out: &Output, words: &[&str]) -> Result<(), String> {
    let line = hakmem_abort_line(out).map_err(|e| format!("{mode}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p = text_field(&stdout, "p");
    if !line.contains(p) {
        return Err(format!(
            "{mode}: the `hakmem:` line does not name {p}: {line}"
        ));
    }
    if let Some(w) = words.iter().find(|w| !line.contains(*w)) {
        return Err(format!(
            "{mode}: the `hakmem:` line does not say {w:?}: {line}"
        ));
    }
    Ok(())
}

/// [`misuse`] then [`aborted_naming_p`]; also fails if main's
/// `main: joined` line (written once its pthread_join returned) is on stderr.
fn misuse_aborts(exe: &Path, mode: &str, words: &[&str]) -> Result<(), String> {
    let out = misuse(exe, mode);
    aborted_naming_p(mode, &out, words)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("main: joined") {
        return Err(format!(
            "{mode}: aborted late, after main's pthread_join returned:\n{stderr}"
        ));
    }
    Ok(())
}

/// Item 3: double frees abort with one `hakmem: ... double free ... 0x<p>`
/// line: `free(p); free(p)`; `free(p); free(q); free(p)` with another block of
/// the slab live (seen: accepted, the next mallocs returned p, q, p, q); and
/// the same from thread B on main's p and q while main waits in pthread_join
/// (seen: accepted, p and q handed out ~19,000 times in 20,000 mallocs). The
/// remote one must abort on B: main writes "main: joined" to stderr as soon
/// as the join returns, and that line must never appear.
#[test]
fn item03_double_free_aborts() {
    let dir = TempDir::new("lc-double-free");
    let exe = compile("lc_misuse.c", dir.path());
    let mut failures = Vec::new();
    for mode in ["immediate", "interleaved", "remote"] {
        if let Err(e) = misuse_aborts(&exe, mode, &["double free"]) {
            failures.push(e);
        }
    }
    assert_none("double free not caught", &failures);
}

/// Item 4: large-block misuse stays in hakmem. a, p = malloc(200000);
/// free(a); free(p); q = malloc(450000) reuses their memory (q != p); free(p)
/// must abort with a `hakmem:` line (seen: handed to glibc's free). free() of a pointer 16 bytes into a
/// page of a live 1 MiB block, behind a fake glibc mmapped-chunk header, must
/// abort with a `hakmem:` line (seen: glibc unmapped one of hakmem's pages,
/// then SIGSEGV). And the same for a pointer into a live 64-byte block.
#[test]
fn item04_large_block_misuse_aborts_in_hakmem() {
    let dir = TempDir::new("lc-large-misuse");
    let exe = compile("lc_misuse.c", dir.path());
    let mut failures = Vec::new();
    // The second free must be of p itself, not of a block that took its place.
    let out = misuse(&exe, "large_double");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if text_field(&stdout, "p") == text_field(&stdout, "q") {
        failures.push(format!("large_double: q took p's place: {stdout}"));
    } else if let Err(e) = aborted_naming_p("large_double", &out, &[]) {
        failures.push(e);
    }
    for mode in ["large_interior", "small_interior"] {
        if let Err(e) = misuse_aborts(&exe, mode, &[]) {
            failures.push(e);
        }
    }
    assert_none("large-block misuse not caught by hakmem", &failures);
}

// ---- items 5, 6, 7: memory return ----------------------------------------------

/// Runs `lc_memory MODE LIMIT_KB DEADLINE_MS` under the default profile.
fn memory(mode: &str, limit_kb: i64, deadline_ms: u64) -> String {
    let dir = TempDir::new(&format!("lc-memory-{mode}"));
    let exe = compile("lc_memory.c", dir.path());
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args([mode, &limit_kb.to_string(), &deadline_ms.to_string()]);
    run_ok(cmd, LIMIT)
}

/// Item 5: 4 threads each allocate ~100 MB of 256-byte blocks and exit; main
/// frees them all: RSS <= 40 MB within 2 s; then after 4 new short threads
/// RSS is still <= 40 MB. Seen: 394 MB, then 296 MB.
#[test]
fn item05_memory_of_exited_threads_returns() {
    let _serial = one_at_a_time();
    let out = memory("exited", RSS_40_MB, 2000);
    let after_free = field(&out, "after_free_kb");
    let after_new = field(&out, "after_new_threads_kb");
    assert!(
        after_free <= RSS_40_MB && after_new <= RSS_40_MB,
        "RSS after main freed the exited threads' 400 MB: {after_free} KiB after {} ms \
         (peak {} KiB), after 4 new short threads: {after_new} KiB; want <= {RSS_40_MB} \
         KiB within 2 s",
        field(&out, "after_free_ms"),
        field(&out, "peak_kb")
    );
}

/// Item 6: a producer builds ~100 MB of 256-byte blocks and idles (blocked,
/// alive); a consumer frees it all: RSS <= 40 MB within 3 s while the
/// producer still idles. Seen: 102 MB until the producer exits.
#[test]
fn item06_remote_frees_to_an_idle_owner_return() {
    let _serial = one_at_a_time();
    let out = memory("idle_producer", RSS_40_MB, 3000);
    let after = field(&out, "after_free_kb");
    assert!(
        after <= RSS_40_MB,
        "RSS while the producer idles after the consumer freed its 100 MB: {after} KiB \
         after {} ms (peak {} KiB); want <= {RSS_40_MB} KiB within 3 s",
        field(&out, "after_free_ms"),
        field(&out, "peak_kb")
    );
}

/// Item 7: 8 threads each allocate ~10 MB of mixed sizes, free it all and
/// sleep: RSS <= 10 MB within 3 s while they sleep. Seen: 77 MB.
#[test]
fn item07_idle_threads_release_their_caches() {
    let _serial = one_at_a_time();
    let out = memory("idle_threads", RSS_10_MB, 3000);
    let after = field(&out, "after_free_kb");
    assert!(
        after <= RSS_10_MB,
        "RSS while 8 threads sleep after freeing 10 MB each: {after} KiB after {} ms; \
         want <= {RSS_10_MB} KiB within 3 s",
        field(&out, "after_free_ms")
    );
}

// ---- item 8: stranded heaps --------------------------------------------------

/// Item 8: 3000 threads (8 at a time) whose pthread key destructor frees,
/// allocates 64 and 4096 bytes and sets the key again in every one of glibc's
/// 4 passes, the last included. After all are joined (and the blocks set in
/// the last pass freed by main) hakmem maps <= 64 MiB in <= 16 superslabs.
/// Seen: 97 superslabs, 200 MB mapped (stranded heaps).
#[test]
fn item08_destructors_allocating_in_the_last_pass_strand_no_heap() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("lc-tsd");
    let exe = compile("lc_tsd.c", dir.path());
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args(["3000", "8"]);
    let out = run_ok(cmd, LIMIT);
    assert_eq!(
        field(&out, "passes"),
        4 * 3000,
        "the key destructor must run in 4 passes per thread: {out}"
    );
    let (mapped, superslabs) = (field(&out, "mapped_bytes"), field(&out, "superslabs"));
    assert!(
        mapped <= 64 << 20 && superslabs <= 16,
        "after 3000 threads allocating in their last destructor pass: {mapped} bytes \
         ({} MiB) mapped in {superslabs} superslabs; want <= 64 MiB and <= 16",
        mapped >> 20
    );
}

// ---- item 9: mappings ----------------------------------------------------------

/// Item 9: 100,000 live 100 KiB blocks (one byte written in each): every
/// malloc succeeds and pthread_create still works; after they are all freed
/// the process has fewer than 1000 mappings. Seen: vm.max_map_count
/// exhausted, pthread_create failed with EAGAIN, VSZ 75 GB, 34,554 mappings
/// left after the free.
#[test]
fn item09_many_live_large_blocks_share_mappings() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("lc-vma");
    let exe = compile("lc_vma.c", dir.path());
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args(["100000", "102400"]);
    let out = run_ok(cmd, LIMIT);
    let (failed, created, freed_maps) = (
        field(&out, "failed"),
        field(&out, "pthread_create"),
        field(&out, "freed_maps"),
    );
    assert!(
        failed == 0 && created == 0 && freed_maps < 1000,
        "100,000 live 100 KiB blocks: {failed} mallocs failed, {} mappings and VmSize {} \
         KiB while live, pthread_create returned {created}, {freed_maps} mappings after \
         the free; want 0 failures, pthread_create 0 and < 1000 mappings",
        field(&out, "live_maps"),
        field(&out, "vmsize_kb")
    );
}

// ---- item 10: dlclose --------------------------------------------------------

/// Item 10: a program (not preloaded) dlopen()s libhakmem.so, uses its malloc
/// and free from threads, dlclose()s it, then lets the threads exit; 3 cycles.
/// Must exit 0. Seen: SIGSEGV (the thread-exit hook pointed into unmapped code).
#[test]
fn item10_dlclose_with_threads_that_used_hakmem() {
    let dir = TempDir::new("lc-dlclose");
    let exe = compile("lc_dlclose.c", dir.path());
    for profile in PROFILES {
        let mut cmd = Command::new(&exe);
        cmd.arg(libhakmem())
            .args(["3", "2"])
            .env_remove("LD_PRELOAD");
        if let Some(p) = profile {
            cmd.env("HAKMEM_PROFILE", p);
        }
        no_core_dump(&mut cmd);
        let out = run_ok(cmd, LIMIT);
        assert_eq!(field(&out, "cycles"), 3, "{}: {out}", label(profile));
    }
}

// ---- item 11 -------------------------------------------------------------------

/// Item 11a: thread T allocates ~100 MB of 256-byte blocks and stays alive,
/// blocked; main forks; the child frees all of T's blocks and its RSS drops to
/// <= 40 MB within 3 s. Seen: the child never reclaims the inboxes of the
/// parent's other threads' heaps.
#[test]
fn item11a_fork_child_reclaims_blocks_of_the_parents_other_threads() {
    let _serial = one_at_a_time();
    let out = memory("fork_reclaim", RSS_40_MB, 3000);
    let after = field(&out, "child_after_kb");
    assert!(
        after <= RSS_40_MB,
        "fork child's RSS after freeing the 100 MB of the parent's thread T: {after} KiB \
         after {} ms (at fork {} KiB); want <= {RSS_40_MB} KiB within 3 s",
        field(&out, "child_after_ms"),
        field(&out, "child_before_kb")
    );
}

/// Item 11b: a freed small block is no longer hakmem's: `realloc(p, 48)` and
/// `malloc_usable_size(p)` of a freed 64-byte block abort with a `hakmem:` line
/// naming p. Seen: realloc returned p, malloc_usable_size answered 64.
#[test]
fn item11b_freed_small_block_is_not_owned() {
    let dir = TempDir::new("lc-freed");
    let exe = compile("lc_misuse.c", dir.path());
    let failures: Vec<String> = ["realloc_freed", "usable_freed"]
        .into_iter()
        .filter_map(|mode| misuse_aborts(&exe, mode, &[]).err())
        .collect();
    assert_none("use of a freed small block not caught", &failures);
}

/// Item 11c: a remote double free (thread B frees main's p twice while main
/// waits in pthread_join) aborts on B, with a `hakmem: ... double free ...
/// 0x<p>` line and before main's join returns. Seen: caught late, on the
/// owner's thread.
#[test]
fn item11c_remote_double_free_aborts_on_the_freeing_thread() {
    let dir = TempDir::new("lc-remote-double");
    let exe = compile("lc_misuse.c", dir.path());
    if let Err(e) = misuse_aborts(&exe, "remote_immediate", &["double free"]) {
        panic!("remote double free not caught on the freeing thread: {e}");
    }
}

/// Item 11c, the inbox: 2,000,000 blocks freed once each by 2 other threads
/// (remote frees), main allocating all along: no pointer malloc returns is a
/// block that is still live (a set of the live pointers is kept). Guards the
/// inbox against dropping or duplicating blocks; not itself reported broken.
#[test]
fn item11c_remote_free_stress_never_hands_out_a_live_block() {
    let _serial = one_at_a_time();
    let dir = TempDir::new("lc-remote-stress");
    let exe = compile("lc_misuse.c", dir.path());
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args(["remote_stress", "2", "2000000"]);
    let out = run_ok(cmd, LIMIT);
    assert_eq!(
        (field(&out, "duplicates"), field(&out, "missing")),
        (0, 0),
        "live blocks handed out again / freed blocks missing from the live set: {out}"
    );
}

/// Item 11d: `malloc_trim(0)` after 200 MB of 256-byte blocks were freed
/// returns 1 and RSS is <= 40 MB right after the call (no waiting). Seen:
/// glibc's malloc_trim, which only sees glibc's empty arenas.
#[test]
fn item11d_malloc_trim_returns_memory_now() {
    let _serial = one_at_a_time();
    let out = memory("trim", RSS_40_MB, 0);
    let (ret, after) = (field(&out, "ret"), field(&out, "after_trim_kb"));
    assert!(
        ret == 1 && after <= RSS_40_MB,
        "malloc_trim(0) after freeing 200 MB returned {ret} (want 1); RSS {} KiB before \
         the call, {after} KiB right after it (want <= {RSS_40_MB} KiB)",
        field(&out, "before_trim_kb")
    );
}

/// Item 11d: `mallinfo2()` with 50 MiB of 256-byte blocks live reports them:
/// uordblks >= 50 MB (decimal, a little headroom for counters that lag) and
/// arena + hblkhd >= uordblks. Seen: glibc's, all zero.
#[test]
fn item11d_mallinfo2_reports_hakmems_figures() {
    let _serial = one_at_a_time();
    let out = memory("mallinfo", 0, 0);
    let (arena, hblkhd, uord) = (
        field(&out, "arena"),
        field(&out, "hblkhd"),
        field(&out, "uordblks"),
    );
    assert!(
        uord >= 50_000_000 && arena + hblkhd >= uord,
        "mallinfo2 with 50 MiB of 256-byte blocks live: uordblks {uord}, arena {arena}, \
         hblkhd {hblkhd}; want uordblks >= 50 MB (50,000,000) and arena + hblkhd >= uordblks"
    );
}

/// Item 11d: `malloc_stats()` writes hakmem's figures to stderr. Seen:
/// glibc's "Arena 0:" report of its unused arenas.
#[test]
fn item11d_malloc_stats_reports_hakmems_figures() {
    let dir = TempDir::new("lc-malloc-stats");
    let exe = compile("lc_memory.c", dir.path());
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.args(["malloc_stats", "0", "0"]);
    let out = run(cmd, LIMIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("hakmem"),
        "malloc_stats() ({}) wrote to stderr: {stderr:?}; want hakmem's figures",
        out.status
    );
}
