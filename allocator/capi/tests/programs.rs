//! Real programs under `LD_PRELOAD=libhakmem.so`, each with each profile, each
//! checked for exit 0 and for the same output as without hakmem (or a known
//! answer): python3, git, sort, a bash pipeline, and multi-threaded xz.
//! Debian packages: python3, git, coreutils, bash, sed, grep, xz-utils.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{label, preloaded, require, run_ok, run_on_hakmem, TempDir, PROFILES};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

/// Writes `bytes` (about) of text lines from a seeded PRNG: words and numbers,
/// with repeats, so the file sorts and compresses like real text.
fn write_text(path: &Path, bytes: usize) {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("creating input"));
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut written = 0;
    while written < bytes {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let line = format!(
            "{} {} {:08x} {}\n",
            WORDS[(s & 15) as usize],
            WORDS[((s >> 4) & 15) as usize],
            (s >> 16) as u32 % 5_000_000,
            s % 1000
        );
        f.write_all(line.as_bytes()).expect("writing input");
        written += line.len();
    }
    f.flush().expect("writing input");
}

/// Builds big dicts and strings and drops them. PYTHONMALLOC=malloc sends
/// every object to malloc, not only the ones above pymalloc's 512 bytes.
const PYTHON_SCRIPT: &str = r#"
import hashlib
h = hashlib.sha256()
for rnd in range(5):
    d = {}
    for i in range(150000):
        d["key-%d-%d" % (rnd, i)] = ("v" * (i % 97)) + str(i)
    joined = "|".join(d[k] for k in list(d)[:40000])
    big = ("x" * (8 << 20)) + str(rnd)
    h.update(joined.encode())
    h.update(str(len(d) + len(big) + sum(len(v) for v in d.values())).encode())
    del d, joined, big
chunks = [bytes(range(i % 256)) * 3 for i in range(60000)]
h.update(b"".join(chunks[::7]))
del chunks
print("python-ok", h.hexdigest())
"#;

#[test]
fn python_dicts_and_strings() {
    let python = require("python3", "python3");
    let mut plain = Command::new(&python);
    plain.args(["-c", PYTHON_SCRIPT]);
    let want = run_ok(plain, LIMIT);
    assert!(want.starts_with("python-ok"), "{want}");
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&python), profile);
        cmd.args(["-c", PYTHON_SCRIPT])
            .env("PYTHONMALLOC", "malloc");
        assert_eq!(run_on_hakmem(cmd, LIMIT), want, "{}", label(profile));
    }
}

/// git init/add/commit/repack/fsck of a generated tree. With fixed dates and
/// identity the commit id is a function of the content, so it must equal the
/// one git computes without hakmem.
#[test]
fn git_commit_of_a_generated_tree() {
    let git = require("git", "git");
    let tmp = TempDir::new("git");
    let commit = |dir: &Path, profile: Option<Option<&str>>| -> String {
        for d in 0..30 {
            let sub = dir.join(format!("dir{d:02}"));
            std::fs::create_dir_all(&sub).expect("mkdir");
            for f in 0..30 {
                let body: String = (0..(d * 31 + f * 17) % 200)
                    .map(|i| format!("line {i} of file {f} in dir {d}\n"))
                    .collect();
                std::fs::write(sub.join(format!("file{f:02}.txt")), body).expect("write");
            }
        }
        let git_cmd = |args: &[&str]| -> String {
            let cmd = Command::new(&git);
            let mut cmd = match profile {
                Some(p) => preloaded(cmd, p),
                None => cmd,
            };
            cmd.current_dir(dir)
                .args([
                    "-c",
                    "user.name=hakmem",
                    "-c",
                    "user.email=hakmem@example.org",
                ])
                .args(["-c", "init.defaultBranch=main"])
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
            match profile {
                Some(_) => run_on_hakmem(cmd, LIMIT),
                None => run_ok(cmd, LIMIT),
            }
        };
        git_cmd(&["init", "-q", "."]);
        git_cmd(&["add", "-A"]);
        git_cmd(&["commit", "-q", "-m", "generated tree"]);
        git_cmd(&["repack", "-adq"]);
        git_cmd(&["fsck", "--strict", "--no-progress"]);
        assert_eq!(git_cmd(&["ls-files"]).lines().count(), 900);
        assert_eq!(git_cmd(&["status", "--porcelain"]), "");
        git_cmd(&["rev-parse", "HEAD"])
    };
    let want = commit(&tmp.path().join("plain"), None);
    for profile in PROFILES {
        let got = commit(&tmp.path().join(label(profile)), Some(profile));
        assert_eq!(got, want, "{}", label(profile));
    }
}

/// sort (multi-threaded, --parallel=2) of a 50 MiB file: the output must be
/// byte for byte what sort writes without hakmem.
#[test]
fn sort_50_mib() {
    let sort = require("sort", "coreutils");
    let tmp = TempDir::new("sort");
    let input = tmp.path().join("input.txt");
    write_text(&input, 50 << 20);
    let sorted = |out: &Path, profile: Option<Option<&str>>| -> Vec<u8> {
        let cmd = Command::new(&sort);
        let mut cmd = match profile {
            Some(p) => preloaded(cmd, p),
            None => cmd,
        };
        cmd.args(["--parallel=2", "-S", "256M", "-k3,3", "-k1,1", "-o"])
            .arg(out)
            .arg(&input)
            .env("LC_ALL", "C");
        match profile {
            Some(_) => run_on_hakmem(cmd, LIMIT),
            None => run_ok(cmd, LIMIT),
        };
        std::fs::read(out).expect("reading sort output")
    };
    let want = sorted(&tmp.path().join("plain.txt"), None);
    assert_eq!(
        want.len(),
        std::fs::metadata(&input).expect("input").len() as usize
    );
    for profile in PROFILES {
        let got = sorted(&tmp.path().join("out.txt"), Some(profile));
        assert!(got == want, "{}: sort output differs", label(profile));
    }
}

/// A bash script whose every process (bash, seq, sed, sort, uniq, tr, wc) runs
/// on hakmem: pipes, process substitution, an associative array, string
/// building. The answer is known.
const BASH_SCRIPT: &str = r#"
set -euo pipefail
declare -A count
while read -r n d; do count[$d]=$n; done < <(seq 1 200000 | sed 's/.*\(.\)$/\1/' | sort | uniq -c)
out=""
for d in $(printf '%s\n' "${!count[@]}" | sort -n); do out+="$d=${count[$d]} "; done
words=$(for i in $(seq 1 5000); do printf 'w%d ' $((i * 7919 % 1000)); done | tr ' ' '\n' | sort -u | wc -l)
s=""
for i in $(seq 1 20000); do s+="$i,"; done
echo "$out| $words | ${#s}"
"#;

#[test]
fn bash_pipeline() {
    let bash = require("bash", "bash");
    let want = "0=20000 1=20000 2=20000 3=20000 4=20000 5=20000 6=20000 7=20000 8=20000 9=20000 \
                | 1000 | 108894\n";
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&bash), profile);
        cmd.args(["-c", BASH_SCRIPT]).env("LC_ALL", "C");
        assert_eq!(run_on_hakmem(cmd, LIMIT), want, "{}", label(profile));
    }
}

/// xz with 2 threads (1 MiB blocks, so both threads get work) compresses and
/// decompresses 16 MiB; the round trip must give the input back.
#[test]
fn xz_two_threads_round_trip() {
    let xz = require("xz", "xz-utils");
    let tmp = TempDir::new("xz");
    let input = tmp.path().join("input.txt");
    write_text(&input, 16 << 20);
    let want = std::fs::read(&input).expect("input");
    for profile in PROFILES {
        let packed = tmp.path().join("input.txt.xz");
        let mut c = preloaded(Command::new(&xz), profile);
        c.args(["-1", "-T2", "--block-size=1MiB", "-k", "-f"])
            .arg(&input);
        run_on_hakmem(c, LIMIT);
        let mut d = preloaded(Command::new(&xz), profile);
        d.args(["-d", "-T2", "-c"]).arg(&packed);
        // The input is ASCII, so the text round trip is lossless.
        let got = run_on_hakmem(d, LIMIT);
        assert!(
            got.as_bytes() == want,
            "{}: round trip differs",
            label(profile)
        );
    }
}
