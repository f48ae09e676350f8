//! Shared by the libhakmem.so integration tests: building the library and the
//! C programs, and running programs under `LD_PRELOAD` with a deadline.
//!
//! The library under test is the release build (`cargo build --release -p
//! hakmem-capi`), what users preload: the tests build it themselves, once per
//! test binary, into the same target directory cargo uses for the tests, so a
//! plain `cargo test --workspace` in a clean clone works. Tools the tests need
//! (cc, c++, python3, git, sort, bash, xz) must be installed: a missing one
//! fails the test, it never skips it.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every test runs with the default options and again with the lean profile.
pub const PROFILES: [Option<&str>; 2] = [None, Some("lean")];

/// The target directory of this build: test binaries live in
/// `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("test executable is in <target>/<profile>/deps")
        .to_path_buf()
}

/// `<target>/release/libhakmem.so`, built (or brought up to date) on first use.
pub fn libhakmem() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| build_libhakmem(target_dir(), &[]))
}

/// `<target>/fast/release/libhakmem.so`: the `fast` build (integrity checks
/// compiled out), built on first use into its own target directory
/// (`cargo build --release -p hakmem-capi --features fast --target-dir
/// <target>/fast`), so that it never replaces the default build.
pub fn libhakmem_fast() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| build_libhakmem(target_dir().join("fast"), &["--features", "fast"]))
}

/// Builds libhakmem.so with `cargo build --release` into `target`.
fn build_libhakmem(target: PathBuf, extra: &[&str]) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "hakmem-capi",
            "--manifest-path",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .args(extra)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("running cargo build for libhakmem.so");
    assert!(
        status.success(),
        "cargo build --release -p hakmem-capi {} failed",
        extra.join(" ")
    );
    let so = target.join("release/libhakmem.so");
    assert!(so.is_file(), "{} was not built", so.display());
    so
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hakmem-capi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The absolute path of a tool, or a failure naming the Debian package to install.
pub fn require(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{tool}` is not installed: apt-get install {package}"))
}

/// Compiles `tests/c/<source>` (C, or C++ for `.cpp`) into `dir`, returning the
/// executable. `-fno-builtin` keeps the compiler from folding allocations away.
pub fn compile(source: &str, dir: &Path) -> PathBuf {
    compile_with(source, dir, std::iter::empty::<&OsStr>())
}

/// [`compile`] with `extra` arguments after the source file (libraries to
/// link, `-Wl,...` options).
pub fn compile_with<I, S>(source: &str, dir: &Path, extra: I) -> PathBuf
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let exe = dir.join(source.split('.').next().expect("source name"));
    cc(source, &exe, &[], extra);
    exe
}

/// Compiles the C file `tests/c/<source>` into the shared library
/// `dir/<name>.so` (`-shared -fPIC`), returning its path.
pub fn compile_shared(source: &str, dir: &Path) -> PathBuf {
    let so = dir.join(format!(
        "{}.so",
        source.split('.').next().expect("source name")
    ));
    cc(
        source,
        &so,
        &["-shared", "-fPIC"],
        std::iter::empty::<&OsStr>(),
    );
    so
}

/// Runs the C (or C++) compiler on `tests/c/<source>` with the tests' flags.
fn cc<I, S>(source: &str, out: &Path, before: &[&str], after: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cxx = source.ends_with(".cpp");
    let compiler = if cxx {
        require("c++", "g++")
    } else {
        require("cc", "gcc")
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(source);
    let mut cmd = Command::new(compiler);
    cmd.arg(if cxx { "-O0" } else { "-O2" })
        .args([
            "-g",
            "-fno-builtin",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
            "-I",
        ])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/include"))
        .args(before)
        .arg("-o")
        .arg(out)
        .arg(&src);
    if !cxx {
        cmd.arg("-std=gnu11");
    }
    let out = cmd
        .args(after)
        .arg("-ldl")
        .output()
        .expect("running the C compiler");
    assert!(
        out.status.success(),
        "compiling {source} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cmd` set up to run on libhakmem.so: `LD_PRELOAD` set, every `HAKMEM_*`
/// inherited from the test's own environment removed, and `HAKMEM_PROFILE` set
/// when `profile` is given.
pub fn preloaded(cmd: Command, profile: Option<&str>) -> Command {
    preloaded_with(cmd, libhakmem(), profile)
}

/// [`preloaded`] with the library `so` (for example [`libhakmem_fast`]).
pub fn preloaded_with(mut cmd: Command, so: &Path, profile: Option<&str>) -> Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HAKMEM_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("LD_PRELOAD", so);
    if let Some(p) = profile {
        cmd.env("HAKMEM_PROFILE", p);
    }
    cmd
}

/// Reads a child's pipe to the end on its own thread, so that a chatty child
/// cannot block on a full pipe while we wait for it.
fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` to completion, killing it after `limit`; its output is captured.
pub fn run(mut cmd: Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for the child") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?} (hang or deadlock)");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs `cmd` and requires exit status 0; returns stdout as text.
pub fn run_ok(cmd: Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd, limit);
    assert_success(&what, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics, with the command and its output, unless it exited with status 0.
fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a [`preloaded`] command, requires exit status 0 and proof that every
/// process it started ran on hakmem, and returns stdout as text.
///
/// A preload that fails only makes the loader print a warning, and the program
/// would then pass on glibc. The proof comes from the loader itself:
/// `LD_DEBUG=bindings` logs, per process, where each symbol reference was bound;
/// every binding of `malloc` must go to libhakmem.so. (The `HAKMEM_STATS`
/// summary cannot serve: coreutils and xz close stderr before exit.)
pub fn run_on_hakmem(mut cmd: Command, limit: Duration) -> String {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let log = TempDir::new(&format!("ld-{}", RUNS.fetch_add(1, Ordering::Relaxed)));
    cmd.env("LD_DEBUG", "bindings")
        .env("LD_DEBUG_OUTPUT", log.path().join("ld"));
    let what = format!("{cmd:?}");
    let out = run(cmd, limit);
    assert_success(&what, &out);
    let to_hakmem = format!("to {} [", libhakmem().display());
    let logs = std::fs::read_dir(log.path()).expect("reading LD_DEBUG logs");
    let mut processes = 0;
    for entry in logs {
        let path = entry.expect("LD_DEBUG log").path();
        let text = std::fs::read_to_string(&path).expect("reading an LD_DEBUG log");
        let mut mallocs = text
            .lines()
            .filter(|l| l.contains("normal symbol `malloc'"));
        let first = mallocs.next();
        assert!(
            first.is_some(),
            "{what}: {} binds no malloc",
            path.display()
        );
        if let Some(l) = first
            .into_iter()
            .chain(mallocs)
            .find(|l| !l.contains(&to_hakmem))
        {
            panic!("{what}: a process's malloc is not hakmem's:\n{l}");
        }
        processes += 1;
    }
    assert!(
        processes > 0,
        "{what}: no LD_DEBUG log, so no process was checked"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `stderr` holds hakmem's `HAKMEM_STATS=1` exit summary.
pub fn has_stats_summary(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("hakmem") && s.contains("mmap")
}

/// A short label for failure messages.
pub fn label(profile: Option<&str>) -> &str {
    profile.unwrap_or("default")
}

/// Stops `cmd`'s process from dumping core, so that expected aborts stay cheap.
pub fn no_core_dump(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit, which is async-signal-safe, on a stack value.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        })
    }
}

/// The `hakmem:` line of a process that hakmem killed for misuse: it must have
/// died of SIGABRT with exactly one stderr line starting with `hakmem:`.
/// Otherwise says how it ended, with its output.
pub fn hakmem_abort_line(out: &Output) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hakmem:"))
        .collect();
    let how = || {
        format!(
            "{} (want death by SIGABRT after one `hakmem:` line)\nstdout:\n{}stderr:\n{}",
            match (out.status.signal(), out.status.code()) {
                (Some(s), _) => format!("killed by signal {s}"),
                (None, Some(c)) => format!("exited with status {c}"),
                _ => format!("{}", out.status),
            },
            String::from_utf8_lossy(&out.stdout),
            stderr
        )
    };
    if out.status.signal() != Some(libc::SIGABRT) || lines.len() != 1 {
        return Err(format!("{} `hakmem:` lines, {}", lines.len(), how()));
    }
    Ok(lines[0].to_string())
}

/// The number after `key=` in a program's `key=value` output.
pub fn field(out: &str, key: &str) -> i64 {
    let want = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&want))
        .unwrap_or_else(|| panic!("no {key}= in the output: {out:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}= is not a number in {out:?}"))
}

/// The text after `key=` in a program's `key=value` output.
pub fn text_field<'a>(out: &'a str, key: &str) -> &'a str {
    let want = format!("{key}=");
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(&want))
        .unwrap_or_else(|| panic!("no {key}= in the output: {out:?}"))
}
