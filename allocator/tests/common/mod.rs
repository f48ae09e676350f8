//! Helpers shared by hakmem's integration tests: block patterns, RSS readings
//! and re-executing the test binary to run one scenario in a child process.
//!
//! Each test binary includes this module with `mod common;` and uses only a
//! part of it, hence the `dead_code` allowance below.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::process::{Command, Output};
use std::sync::Mutex;

use hakmem::Hakmem;

/// The environment variable that marks a process as a scenario child.
pub const CHILD_ENV: &str = "HAKMEM_TEST_CHILD";

/// The bytes of the pattern of block `seed`, 8 at a time: byte `i` of the
/// block is byte `i % 8` of `word(seed, i / 8)`. Distinct seeds and distinct
/// offsets give distinct words, so a block written over by another block, or
/// shifted, fails `check`.
fn word(seed: u64, i: usize) -> u64 {
    let mut z = seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z ^ (z >> 29)
}

/// Writes block `seed`'s pattern over `[p, p + len)`.
///
/// # Safety
/// `p` must be valid for writes of `len` bytes.
pub unsafe fn fill(p: *mut u8, len: usize, seed: u64) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: `8 * i + 8 <= len`, inside the caller's range; unaligned
        // writes because blocks may be 1-aligned.
        unsafe { p.add(8 * i).cast::<u64>().write_unaligned(word(seed, i)) };
    }
    let tail = word(seed, words).to_le_bytes();
    for (j, b) in tail.iter().enumerate().take(len % 8) {
        // SAFETY: `8 * words + j < len`.
        unsafe { p.add(8 * words + j).write(*b) };
    }
}

/// The first offset in `[p, p + len)` that does not hold block `seed`'s pattern.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes.
pub unsafe fn first_mismatch(p: *const u8, len: usize, seed: u64) -> Option<usize> {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: as in `fill`.
        let got = unsafe { p.add(8 * i).cast::<u64>().read_unaligned() };
        if got != word(seed, i) {
            let want = word(seed, i).to_le_bytes();
            let bad = got
                .to_le_bytes()
                .iter()
                .zip(want)
                .position(|(g, w)| *g != w);
            return Some(8 * i + bad.unwrap_or(0));
        }
    }
    let tail = word(seed, words).to_le_bytes();
    (0..len % 8)
        // SAFETY: `8 * words + j < len`.
        .find(|&j| unsafe { p.add(8 * words + j).read() } != tail[j])
        .map(|j| 8 * words + j)
}

/// Panics, naming the block and offset, unless `[p, p + len)` holds block `seed`'s pattern.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes.
pub unsafe fn check(p: *const u8, len: usize, seed: u64) {
    // SAFETY: forwarded contract.
    if let Some(off) = unsafe { first_mismatch(p, len, seed) } {
        panic!("block {seed:#x} at {p:p} ({len} bytes) corrupted at offset {off}");
    }
}

/// Panics unless `[p, p + len)` is all zero.
///
/// # Safety
/// `p` must be valid for reads of `len` bytes.
pub unsafe fn check_zero(p: *const u8, len: usize) {
    // SAFETY: forwarded contract.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    if let Some(off) = s.iter().position(|&b| b != 0) {
        panic!(
            "zeroed block at {p:p} ({len} bytes) has {:#x} at offset {off}",
            s[off]
        );
    }
}

/// Resident set size of this process in bytes (`/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm has a resident field");
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).expect("page size")
}

/// Mebibytes, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Whether this process is a scenario child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Re-runs this test binary for the single test `name` (a top-level test
/// function of the calling binary), with [`CHILD_ENV`] and `env` set, and
/// returns its output. The child runs the scenario in place of the parent's
/// checks; core dumps are disabled so that expected aborts stay cheap.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .envs(env.iter().copied());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit, which is async-signal-safe, on a stack value.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    cmd.output().expect("spawn the test binary again")
}

/// A child's exit and its output, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics unless the child died of SIGABRT after exactly one line starting
/// `hakmem:` on stderr; returns that line.
pub fn assert_hakmem_abort(out: &Output) -> String {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "want death by SIGABRT: {}",
        describe(out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hakmem:"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "want one line starting `hakmem:` on stderr: {}",
        describe(out)
    );
    lines[0].to_string()
}

/// Panics unless the child ran its test to success.
pub fn assert_child_passed(out: &Output) {
    assert!(out.status.success(), "child failed: {}", describe(out));
    // libtest exits 0 when the filter matched nothing: make sure it ran.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child did not run exactly one test: {}",
        describe(out)
    );
}

/// Serialises [`run_profile_child`]'s children within one test binary.
static ONE_CHILD_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs this binary's test `name` in a child under `HAKMEM_PROFILE=profile`,
/// one such child at a time, echoes the child's stdout from each `prefix`
/// on (its measurements) and panics unless the child's test passed.
pub fn run_profile_child(name: &str, profile: hakmem::Profile, prefix: &str) {
    let _one = ONE_CHILD_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let out = run_child(name, &[("HAKMEM_PROFILE", profile.name())]);
    // libtest prints `test <name> ... ` before the test's own output, on the same line.
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(at) = line.find(prefix) {
            println!("{}", &line[at..]);
        }
    }
    assert_child_passed(&out);
}

/// Panics unless `HAKMEM_PROFILE` (set by [`run_profile_child`]) took effect.
pub fn assert_profile(profile: hakmem::Profile) {
    assert_eq!(
        hakmem::options().profile,
        profile,
        "HAKMEM_PROFILE={} was not applied",
        profile.name()
    );
}

/// A live hakmem block holding the pattern of `seed`; the only handle to it.
pub struct Block {
    pub p: *mut u8,
    pub layout: Layout,
    pub seed: u64,
}

// SAFETY: a Block is the only handle to its allocation, and hakmem blocks may
// be freed on any thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `layout` from hakmem and fills it with the pattern of `seed`.
    pub fn alloc(layout: Layout, seed: u64) -> Block {
        assert!(layout.size() > 0);
        // SAFETY: the size is non-zero.
        let p = unsafe { Hakmem.alloc(layout) };
        assert!(!p.is_null(), "alloc {layout:?} failed");
        assert_eq!(
            p as usize % layout.align(),
            0,
            "{p:p} not aligned for {layout:?}"
        );
        // SAFETY: `p` is a fresh block of `layout.size()` bytes.
        unsafe { fill(p, layout.size(), seed) };
        Block { p, layout, seed }
    }

    /// Checks the pattern and frees the block.
    pub fn free(self) {
        // SAFETY: the block is live, holds its pattern and is freed once.
        unsafe {
            check(self.p, self.layout.size(), self.seed);
            Hakmem.dealloc(self.p, self.layout);
        }
    }
}
