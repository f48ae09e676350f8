//! The C API of libhakmem.so under LD_PRELOAD: every exported function and its
//! edge cases (tests/c/conformance.c), C++ new/delete (tests/c/cxx.cpp),
//! loading by dlopen (tests/c/dlopen.c) and the `HAKMEM_*` environment
//! (tests/c/options.c).

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{
    compile, has_stats_summary, label, libhakmem, preloaded, run, run_ok, TempDir, PROFILES,
};
use hakmem::options::{Type, KNOBS};
use hakmem::Profile;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Compiles the check program `source` and runs it preloaded under each
/// profile; it must exit 0 and report that its checks passed.
fn checks_pass(source: &str, dir_name: &str) {
    let dir = TempDir::new(dir_name);
    let exe = compile(source, dir.path());
    for profile in PROFILES {
        let out = run_ok(preloaded(Command::new(&exe), profile), LIMIT);
        assert!(
            out.contains("checks passed"),
            "{source}, {}: unexpected output {out:?}",
            label(profile)
        );
    }
}

#[test]
fn c_api_conformance() {
    checks_pass("conformance.c", "conformance");
}

#[test]
fn cxx_new_delete() {
    checks_pass("cxx.cpp", "cxx");
}

/// libhakmem.so dlopen'ed by a process that ran on glibc until then: glibc's
/// blocks go to hakmem's free/realloc/malloc_usable_size, and hakmem's
/// initial-exec TLS slot works in a dlopen'ed library.
#[test]
fn dlopen_after_start_handles_glibc_blocks() {
    let dir = TempDir::new("dlopen");
    let exe = compile("dlopen.c", dir.path());
    for profile in PROFILES {
        let mut cmd = Command::new(&exe);
        cmd.arg(libhakmem()).env_remove("LD_PRELOAD");
        if let Some(p) = profile {
            cmd.env("HAKMEM_PROFILE", p);
        }
        let out = run_ok(cmd, LIMIT);
        assert!(out.contains("dlopen: ok"), "{}: {out}", label(profile));
    }
}

/// Runs tests/c/options.c with `env` and parses its `key=value` lines.
fn options_with(exe: &std::path::Path, env: &[(&str, &str)]) -> HashMap<String, String> {
    let mut cmd = preloaded(Command::new(exe), None);
    cmd.envs(env.iter().copied());
    run_ok(cmd, LIMIT)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k)
        .unwrap_or_else(|| panic!("{k} missing from {m:?}"))
        .parse()
        .expect("a number")
}

#[test]
fn options_come_from_the_environment() {
    let dir = TempDir::new("options");
    let exe = compile("options.c", dir.path());

    let balanced = options_with(&exe, &[]);
    assert_eq!(balanced["profile"], "balanced", "{balanced:?}");
    assert_eq!(num(&balanced, "mem_lean"), 1);
    // The counters prove the memory came from hakmem, not glibc.
    assert!(num(&balanced, "mmap") > 0, "{balanced:?}");
    assert!(num(&balanced, "mapped_bytes") > 0, "{balanced:?}");
    // The appended fields of struct hakmem_stats: arenas were reserved, no
    // syscall failed, and the last 8 MiB block freed sits in the large cache.
    assert!(num(&balanced, "reserved_bytes") >= 64 << 20, "{balanced:?}");
    assert_eq!(num(&balanced, "syscall_failures"), 0, "{balanced:?}");
    assert!(
        num(&balanced, "large_cached_bytes") >= 8 << 20,
        "{balanced:?}"
    );

    let lean = options_with(&exe, &[("HAKMEM_PROFILE", "lean")]);
    assert_eq!(lean["profile"], "lean", "{lean:?}");
    assert_eq!(num(&lean, "mem_lean"), 1);
    assert_eq!(num(&lean, "retain_superslabs"), 0);
    assert_eq!(num(&lean, "large_cache_bytes"), 0);
    assert_eq!(num(&lean, "large_cached_bytes"), 0);

    let tuned = options_with(
        &exe,
        &[
            ("HAKMEM_PROFILE", "speed-first"),
            ("HAKMEM_PREWARM", "0"),
            ("HAKMEM_HEAP_EMPTY_SLABS", "5"),
            ("HAKMEM_RETAIN_SUPERSLABS", "3"),
            ("HAKMEM_LARGE_CACHE_MB", "7"),
        ],
    );
    assert_eq!(tuned["profile"], "speed-first", "{tuned:?}");
    assert_eq!(num(&tuned, "mem_lean"), 0);
    assert_eq!(num(&tuned, "prewarm"), 0);
    assert_eq!(num(&tuned, "heap_empty_slabs"), 5);
    assert_eq!(num(&tuned, "retain_superslabs"), 3);
    assert_eq!(num(&tuned, "large_cache_bytes"), 7 << 20);

    // The options take effect: after the same churn (64 MiB of small blocks,
    // all freed) lean has handed memory back, speed-first has kept it.
    let fast = options_with(&exe, &[("HAKMEM_PROFILE", "speed-first")]);
    assert!(num(&lean, "superslabs_released") > 0, "{lean:?}");
    assert!(
        num(&lean, "mapped_bytes") * 2 < num(&fast, "mapped_bytes"),
        "lean {lean:?}\nspeed-first {fast:?}"
    );

    let lean_off = options_with(
        &exe,
        &[("HAKMEM_PROFILE", "lean"), ("HAKMEM_MEM_LEAN", "0")],
    );
    assert_eq!(num(&lean_off, "mem_lean"), 0, "{lean_off:?}");

    // Every knob of the table reaches C (struct hakmem_options, printed by
    // options.c) with its profile's value...
    for (out, p) in [
        (&fast, Profile::SpeedFirst),
        (&balanced, Profile::Balanced),
        (&lean, Profile::Lean),
    ] {
        for k in KNOBS {
            assert_eq!(num(out, k.name), k.default_for(p), "{p:?}: {}", k.name);
        }
    }
    // ...and is read from its variable: each set to a value speed-first has not.
    let mut env = vec![("HAKMEM_PROFILE", "speed-first".to_string())];
    let mut want = Vec::new();
    for k in KNOBS {
        let x = match k.ty {
            Type::Bool => 1 - k.default_for(Profile::SpeedFirst),
            Type::U32 | Type::U64 => 3,
        };
        assert_ne!(k.from_external(x), Some(k.default_for(Profile::SpeedFirst)));
        env.push((k.env, x.to_string()));
        want.push((k.name, k.from_external(x).unwrap()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let every = options_with(&exe, &env);
    for (name, v) in want {
        assert_eq!(num(&every, name), v, "{name}: {every:?}");
    }
}

/// Every knob is a field of `struct hakmem_options` in the public header
/// (which is hand-written: its layout is an ABI).
#[test]
fn every_knob_is_in_the_c_header() {
    let h = include_str!("../include/hakmem.h");
    let start = h.find("struct hakmem_options {").expect("the struct");
    let body = &h[start..start + h[start..].find("};").unwrap()];
    let body: String = body
        .lines()
        .map(|l| l.split("/*").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    for k in KNOBS {
        let field = format!("{};", k.name);
        assert!(
            body.split_whitespace().any(|w| w == field),
            "struct hakmem_options lacks `{}`",
            k.name
        );
    }
}

/// Large-block misuse through the C ABI ends in hakmem's abort, naming the
/// pointer, under every profile: nothing of hakmem's address range reaches
/// glibc's free.
#[test]
fn large_block_misuse_aborts_in_hakmem() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("large-misuse");
    let exe = compile("large_misuse.c", dir.path());
    for mode in [
        "interior-run",
        "interior-page",
        "double-reused",
        "double-evicted",
    ] {
        for profile in PROFILES {
            let mut cmd = preloaded(Command::new(&exe), profile);
            cmd.arg(mode);
            // The expected aborts dump no core.
            common::no_core_dump(&mut cmd);
            let out = run(cmd, LIMIT);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.signal(),
                Some(libc::SIGABRT),
                "{mode}, {}: want hakmem's abort, got {}; stdout {:?}, stderr {err:?}",
                label(profile),
                out.status,
                String::from_utf8_lossy(&out.stdout)
            );
            assert!(
                err.lines()
                    .any(|l| l.starts_with("hakmem: free(): ") && l.contains("(pointer 0x")),
                "{mode}, {}: no hakmem line on stderr: {err:?}",
                label(profile)
            );
        }
    }
}

#[test]
fn stats_at_exit_only_when_asked() {
    let dir = TempDir::new("stats");
    let exe = compile("options.c", dir.path());
    for profile in PROFILES {
        let mut cmd = preloaded(Command::new(&exe), profile);
        cmd.env("HAKMEM_STATS", "1");
        let out = run(cmd, LIMIT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {err}", label(profile));
        assert!(
            has_stats_summary(&err),
            "{}: no stats summary on stderr: {err:?}",
            label(profile)
        );

        let quiet = run(preloaded(Command::new(&exe), profile), LIMIT);
        assert!(quiet.status.success());
        assert!(
            quiet.stderr.is_empty(),
            "{}: stderr without HAKMEM_STATS: {:?}",
            label(profile),
            String::from_utf8_lossy(&quiet.stderr)
        );
    }
}
