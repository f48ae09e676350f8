//! `soakd compare`: runs one profile for hakmem and for other allocators,
//! one epoch per child `soakd run` under `LD_PRELOAD` (the `libc` backend,
//! so every allocator is reached the same way, through `malloc`), and
//! alternates them epoch by epoch so that whatever else the machine does
//! hits all alike. Each allocator's epochs go to `<out>/<name>/epochs.jsonl`
//! (with its profile and log beside them); the side-by-side table goes to
//! stdout and `<out>/compare.md`, the plots to `<out>/compare.html`.

pub mod allocators;
pub mod summary;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hakmem::options::{KNOBS, PROFILE_ENV};
use tracing::{info, warn};

use crate::config::{self, Backend, Config, Overrides};
use crate::error::{Error, OutputStep};
use crate::results::{self, EpochRecord};
use allocators::{Allocator, HAKMEM};

/// What `soakd compare` was asked (its command-line flags).
#[derive(clap::Args)]
pub struct Request {
    /// Profile file (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Allocators beside hakmem, comma-separated: mimalloc, jemalloc, glibc
    /// (Debian's libraries; glibc = no preload) or NAME=/path/lib.so.
    #[arg(long, default_value = "mimalloc,jemalloc,glibc")]
    pub with: String,
    /// libhakmem.so to preload (default: beside soakd, or target/release).
    #[arg(long)]
    pub hakmem_lib: Option<PathBuf>,
    /// Epochs per allocator.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Epoch length in seconds (overrides the profile).
    #[arg(long)]
    pub epoch_secs: Option<u64>,
    /// Output folder: <out>/<allocator>/epochs.jsonl, compare.md, compare.html.
    #[arg(long, default_value = "compare-results")]
    pub out: PathBuf,
}

/// The order of the allocators in round `round` (from 0): rotated by one
/// each round, so each allocator takes every position equally often.
pub fn order(n: usize, round: u64) -> Vec<usize> {
    let shift = (round % n.max(1) as u64) as usize;
    (0..n).map(|i| (i + shift) % n).collect()
}

/// Runs the comparison; returns the table and where the files went.
pub fn run(req: &Request) -> Result<String, Error> {
    let cfg = config::load_file(&req.config)?.apply(&Overrides {
        epoch_secs: req.epoch_secs,
        ..Overrides::default()
    })?;
    let with = allocators::parse_with(&req.with).map_err(Error::Compare)?;
    let exe = std::env::current_exe().map_err(|source| Error::Spawn {
        allocator: HAKMEM.into(),
        source,
    })?;
    let mut allocs = Vec::new();
    let wanted = std::iter::once(allocators::hakmem(req.hakmem_lib.clone(), &exe))
        .chain(with.into_iter().map(|(n, p)| allocators::resolve(&n, p)));
    for a in wanted {
        match a {
            Ok(a) => allocs.push(a),
            Err(skipped) => warn!("{skipped}"),
        }
    }
    if allocs.len() < 2 {
        return Err(Error::Compare(format!(
            "nothing to compare: only {} of the allocators is available",
            allocs.len()
        )));
    }
    for a in &allocs {
        refuse_existing(&req.out, a)?;
    }
    for a in &allocs {
        prepare(&cfg, a, &req.out)?;
    }
    let names: Vec<&str> = allocs.iter().map(|a| a.name.as_str()).collect();
    info!(
        allocators = %names.join(","),
        epochs = req.epochs,
        epoch_secs = cfg.epoch.length_secs,
        "comparing {} over {} epochs each of {} s, alternating: about {} min",
        names.join(", "),
        req.epochs,
        cfg.epoch.length_secs,
        (req.epochs * allocs.len() as u64 * cfg.epoch.length_secs).div_ceil(60)
    );
    ignore_interrupts_here();
    'rounds: for round in 0..req.epochs {
        for i in order(allocs.len(), round) {
            let a = &allocs[i];
            info!(allocator = %a.name, "epoch {} of {} for {}", round + 1, req.epochs, a.name);
            run_epoch(&cfg, a, &req.out)?;
            let last = results::read(&folder(&req.out, a))?.records.pop();
            if !last.is_some_and(|r| r.complete) {
                warn!(
                    "{}'s epoch was interrupted; stopping the comparison",
                    a.name
                );
                break 'rounds;
            }
        }
    }
    let mut runs: Vec<(String, Vec<EpochRecord>)> = Vec::new();
    for a in &allocs {
        runs.push((a.name.clone(), results::read(&folder(&req.out, a))?.records));
    }
    let rows: Vec<summary::Row> = runs.iter().map(|(n, r)| summary::row(n, r)).collect();
    let md = req.out.join("compare.md");
    let html = req.out.join("compare.html");
    write(&md, &summary::markdown(&cfg.name, &rows))?;
    write(&html, &summary::html(&cfg.name, &runs))?;
    Ok(format!(
        "{}wrote {} and {}\n",
        summary::table(&rows),
        md.display(),
        html.display()
    ))
}

fn folder(out: &Path, a: &Allocator) -> PathBuf {
    out.join(&a.name)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A folder that already holds results is refused, so runs never mix.
fn refuse_existing(out: &Path, a: &Allocator) -> Result<(), Error> {
    let results = folder(out, a).join("epochs.jsonl");
    if fs::metadata(&results).is_ok_and(|m| m.len() > 0) {
        return Err(Error::Compare(format!(
            "--out: {} already holds results; give a new folder",
            results.display()
        )));
    }
    Ok(())
}

/// Creates the allocator's folder with the profile its child runs: the
/// given one on the `libc` backend, an ephemeral port, results in the folder.
fn prepare(cfg: &Config, a: &Allocator, out: &Path) -> Result<(), Error> {
    let dir = folder(out, a);
    fs::create_dir_all(&dir).map_err(|source| Error::Output {
        step: OutputStep::CreateFolder,
        path: dir.clone(),
        source,
    })?;
    let child = Config {
        backend: Backend::Libc,
        listen: ([127, 0, 0, 1], 0).into(),
        out_dir: dir.clone(),
        ..cfg.clone()
    };
    write(&dir.join("profile.toml"), &child.to_toml())
}

/// One epoch of `a` in a child soakd, its output appended to the folder's
/// `soakd.log`.
fn run_epoch(cfg: &Config, a: &Allocator, out: &Path) -> Result<(), Error> {
    let dir = folder(out, a);
    let log = dir.join("soakd.log");
    let spawn_error = |source| Error::Spawn {
        allocator: a.name.clone(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(spawn_error)?;
    let exe = std::env::current_exe().map_err(spawn_error)?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--config")
        .arg(dir.join("profile.toml"))
        .args(["--epochs", "1"])
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(spawn_error)?)
        .stderr(file);
    if let Some(lib) = &a.preload {
        cmd.env("LD_PRELOAD", lib);
    }
    if a.name == HAKMEM {
        // The preloaded hakmem reads its options from the environment: the
        // profile's [allocator] section, as `soakd run` would apply it.
        cmd.env(PROFILE_ENV, cfg.allocator.profile.name());
        for k in KNOBS {
            cmd.env(k.env, k.to_external(k.get(&cfg.allocator)).to_string());
        }
    }
    let status = cmd.status().map_err(spawn_error)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Child {
            allocator: a.name.clone(),
            status,
            log,
        })
    }
}

/// Ctrl-C reaches the whole process group: the running child writes its
/// epoch as partial and exits, and this process, still alive, stops at that
/// partial epoch and writes the table of what ran.
fn ignore_interrupts_here() {
    // SAFETY: installing SIG_IGN has no preconditions; the child's soakd
    // installs its own handler after exec, which replaces the inherited
    // disposition.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_allocator_takes_every_position() {
        assert_eq!(order(3, 0), [0, 1, 2]);
        assert_eq!(order(3, 1), [1, 2, 0]);
        assert_eq!(order(3, 2), [2, 0, 1]);
        assert_eq!(order(3, 3), [0, 1, 2]);
        assert_eq!(order(2, 1), [1, 0]);
    }
}
