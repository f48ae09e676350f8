//! Durable results: `<out>/epochs.jsonl`, one JSON object per epoch.
//!
//! Each record is one `write` of a whole line on an `O_APPEND` descriptor
//! followed by `fdatasync`, so a kill -9 loses at most the running epoch and
//! never tears an earlier line. Should a crash of the machine itself leave a
//! partial last line, the next start cuts it off (with a warning) before
//! appending, so every line of the file keeps parsing; a last line that only
//! lacks its `\n` is a whole record and gets the newline instead.
//!
//! One soakd at a time per folder: `open` takes an exclusive `flock` on
//! `<out>/soakd.lock` (released by the kernel however the process ends), so
//! two daemons cannot interleave lines or repeat epoch numbers.
//!
//! A record that cannot be written (disk full, read-only folder, a file-size
//! limit) stays queued in memory and is written, in order, by a later
//! [`Results::flush`]; a failed write is cut back so no torn line remains.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::epoch::{Figures, Sample, Thresholds};
use crate::error::{Error, OutputStep};
use crate::host::{Load, Machine};

/// Operations in an epoch, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ops {
    pub alloc: u64,
    pub free: u64,
}

/// One line of epochs.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// From 1, continuing across restarts on the same output folder.
    pub epoch: u64,
    /// The configuration's name (the metrics' `profile` label).
    pub profile: String,
    /// `hakmem` or `libc`.
    pub backend: String,
    /// hakmem's option profile (`speed-first`, `balanced`, `lean`).
    pub allocator_profile: String,
    /// False when soakd was stopped before the epoch's end.
    pub complete: bool,
    /// Wall-clock start, seconds since the Unix epoch (for plotting runs over time).
    pub started_unix_secs: f64,
    /// Monotonic length actually covered.
    pub duration_secs: f64,
    pub length_secs: u64,
    pub sample_secs: u64,
    pub warmup_secs: u64,
    pub threads: usize,
    pub ops: Ops,
    /// Allocator syscalls during the epoch; null where not observable (libc
    /// backend without a preloaded libhakmem.so).
    pub syscalls: Option<u64>,
    #[serde(flatten)]
    pub figures: Figures,
    pub thresholds: Thresholds,
    pub samples: Vec<Sample>,
    /// The machine and build at the epoch's start (absent in older records).
    #[serde(default)]
    pub machine: Option<Machine>,
    /// The machine's load at each sample (empty in older records).
    #[serde(default)]
    pub load: Vec<Load>,
}

/// A parsed results file.
pub struct Existing {
    pub records: Vec<EpochRecord>,
    /// Lines that did not parse, as (line number, error); they are left in place.
    pub bad_lines: Vec<(usize, String)>,
    /// What `Results::open` found after the last `\n`.
    pub tail: Tail,
}

/// The end of the file as `Results::open` found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Empty, or ending with `\n`.
    Clean,
    /// A whole record without its `\n`: kept, and the newline added.
    Completed,
    /// A partial line of this many bytes: cut off.
    Cut(usize),
}

impl Existing {
    /// The number the next epoch gets.
    pub fn next_epoch(&self) -> u64 {
        self.records.iter().map(|r| r.epoch).max().unwrap_or(0) + 1
    }
}

/// The lock file's name inside the output folder.
pub const LOCK_FILE: &str = "soakd.lock";

/// A record waiting to be written.
struct Pending {
    epoch: u64,
    line: String,
}

/// The open results file.
pub struct Results {
    path: PathBuf,
    file: File,
    /// Holds the folder's `flock` for as long as this value lives.
    _lock: File,
    /// The length of the file's whole lines: a failed write is cut back to it.
    len: u64,
    /// Records not written yet, oldest first.
    pending: VecDeque<Pending>,
}

impl Results {
    /// Creates `dir` if needed, locks it, and opens its epochs.jsonl for
    /// appending, so an unwritable or busy folder is an error now rather than
    /// at the first epoch's end. Nothing is written before the lock is held.
    pub fn open(dir: &Path) -> Result<(Results, Existing), Error> {
        std::fs::create_dir_all(dir).map_err(fail(OutputStep::CreateFolder, dir))?;
        let lock = lock(dir)?;
        let path = dir.join("epochs.jsonl");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(fail(OutputStep::OpenFile, &path))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .map_err(fail(OutputStep::ReadFile, &path))?;
        let mut len = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let tail = match &text[len..] {
            [] => Tail::Clean,
            last if serde_json::from_slice::<EpochRecord>(last).is_ok() => {
                file.write_all(b"\n")
                    .and_then(|()| file.sync_data())
                    .map_err(fail(OutputStep::RepairFile, &path))?;
                text.push(b'\n');
                len = text.len();
                Tail::Completed
            }
            torn => {
                file.set_len(len as u64)
                    .map_err(fail(OutputStep::RepairFile, &path))?;
                Tail::Cut(torn.len())
            }
        };
        let mut existing = parse_lines(&String::from_utf8_lossy(&text[..len]));
        existing.tail = tail;
        // Make the file's directory entry durable too, in case it was just created.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail(OutputStep::SyncFolder, dir))?;
        let results = Results {
            path,
            file,
            _lock: lock,
            len: len as u64,
            pending: VecDeque::new(),
        };
        Ok((results, existing))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one record and writes every queued one (see [`Results::flush`]).
    /// On error the record stays queued.
    pub fn append(&mut self, r: &EpochRecord) -> io::Result<()> {
        let mut line = serde_json::to_string(r).map_err(io::Error::other)?;
        line.push('\n');
        self.pending.push_back(Pending {
            epoch: r.epoch,
            line,
        });
        self.flush()
    }

    /// Writes the queued records in order, each as one line, and waits until
    /// they are on disk. A write that fails part-way is cut back, so the file
    /// only ever holds whole lines; what was not written stays queued.
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(p) = self.pending.front() {
            let written = self
                .file
                .write_all(p.line.as_bytes())
                .and_then(|()| self.file.sync_data());
            if let Err(e) = written {
                // Best effort: should this fail too, the next flush cuts first.
                let _ = self.file.set_len(self.len);
                return Err(e);
            }
            self.len += p.line.len() as u64;
            self.pending.pop_front();
        }
        Ok(())
    }

    /// The epochs queued but not written yet, oldest first.
    pub fn pending(&self) -> Vec<u64> {
        self.pending.iter().map(|p| p.epoch).collect()
    }
}

/// Takes the folder's exclusive lock and writes our pid into the lock file
/// (for the message a second soakd prints).
fn lock(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(fail(OutputStep::Lock, &path))?;
    // SAFETY: flock takes a valid descriptor (ours, open) and flags; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let source = io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(fail(OutputStep::Lock, &path)(source));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
            holder: holder.trim().parse().ok(),
        });
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(fail(OutputStep::Lock, &path))?;
    Ok(file)
}

/// An `Error::Output` maker for `map_err`.
fn fail(step: OutputStep, path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Output {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Parses epochs.jsonl text (blank lines are ignored).
pub fn parse_lines(text: &str) -> Existing {
    let mut records = Vec::new();
    let mut bad_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => records.push(r),
            Err(e) => bad_lines.push((i + 1, e.to_string())),
        }
    }
    Existing {
        records,
        bad_lines,
        tail: Tail::Clean,
    }
}

/// Reads a results file, or `epochs.jsonl` inside a results folder.
pub fn read(path: &Path) -> Result<Existing, Error> {
    let path = if path.is_dir() {
        path.join("epochs.jsonl")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })?;
    Ok(parse_lines(&text))
}

/// Up to `max` complete epochs numbered above `since`, oldest first, read
/// line by line from a results file that may be growing: a last line
/// without its `\n` (a write in progress) and lines that do not parse are
/// skipped.
pub fn completed_since(path: &Path, since: u64, max: usize) -> io::Result<Vec<EpochRecord>> {
    /// Read first, so that most lines are skipped without building a record.
    #[derive(Deserialize)]
    struct Head {
        epoch: u64,
        complete: bool,
    }
    let mut out = Vec::new();
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = String::new();
    while out.len() < max {
        line.clear();
        if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
            break;
        }
        match serde_json::from_str::<Head>(&line) {
            Ok(h) if h.complete && h.epoch > since => {}
            _ => continue,
        }
        if let Ok(r) = serde_json::from_str(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::epoch::{self, Thresholds};

    /// A plausible record for tests elsewhere too.
    pub(crate) fn record(epoch: u64, complete: bool) -> EpochRecord {
        let samples: Vec<Sample> = (1..=5)
            .map(|k| Sample {
                t_secs: 2.0 * k as f64,
                ops: 2_000_000 + 10_000 * k,
                ops_per_sec: 1_000_000.0 + 5_000.0 * k as f64,
                rss_bytes: 10_000_000 + 1_000 * k,
                rss_anon_bytes: Some(9_000_000),
                warmup: k <= 2,
            })
            .collect();
        let t = Thresholds::default();
        EpochRecord {
            epoch,
            profile: "test".into(),
            backend: "hakmem".into(),
            allocator_profile: "balanced".into(),
            complete,
            started_unix_secs: 1.7e9 + 10.0 * epoch as f64,
            duration_secs: 10.0,
            length_secs: 10,
            sample_secs: 2,
            warmup_secs: 4,
            threads: 1,
            ops: Ops {
                alloc: 5_100_000,
                free: 5_050_000,
            },
            syscalls: Some(12),
            figures: epoch::figures(&samples, Some(12), 10_150_000, &t),
            thresholds: t,
            load: samples
                .iter()
                .map(|s| Load {
                    t_secs: s.t_secs,
                    load1: 1.5,
                    others_cpu_busy: 0.25,
                })
                .collect(),
            samples,
            machine: Some(Machine {
                host_name: "test-host".into(),
                cpu_model: "Test CPU".into(),
                logical_cores: 2,
                ..Machine::default()
            }),
        }
    }

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, existing) = Results::open(dir.path()).unwrap();
        assert_eq!(existing.next_epoch(), 1);
        r.append(&record(1, true)).unwrap();
        r.append(&record(2, false)).unwrap();
        drop(r);
        let (_, existing) = Results::open(dir.path()).unwrap();
        assert_eq!(existing.records, vec![record(1, true), record(2, false)]);
        assert_eq!(existing.next_epoch(), 3);
        assert!(existing.bad_lines.is_empty());
        assert_eq!(read(dir.path()).unwrap().records.len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs.jsonl");
        let good = serde_json::to_string(&record(1, true)).unwrap();
        std::fs::write(&path, format!("{good}\n{}", &good[..40])).unwrap();
        let (mut r, existing) = Results::open(dir.path()).unwrap();
        assert_eq!(existing.tail, Tail::Cut(40));
        assert_eq!(existing.next_epoch(), 2);
        r.append(&record(2, true)).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.records.len(), 2);
        assert!(back.bad_lines.is_empty());
    }

    #[test]
    fn a_whole_last_record_without_newline_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("epochs.jsonl");
        let line = |n| serde_json::to_string(&record(n, true)).unwrap();
        std::fs::write(&path, format!("{}\n{}", line(1), line(2))).unwrap();
        let (mut r, existing) = Results::open(dir.path()).unwrap();
        assert_eq!(existing.tail, Tail::Completed);
        assert_eq!(existing.records, vec![record(1, true), record(2, true)]);
        assert_eq!(existing.next_epoch(), 3);
        r.append(&record(3, true)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n{}\n{}\n", line(1), line(2), line(3)));
        drop(r);
        let (_, again) = Results::open(dir.path()).unwrap();
        assert_eq!(again.tail, Tail::Clean);
    }

    #[test]
    fn a_second_open_of_a_locked_folder_fails_naming_it_and_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = Results::open(dir.path()).unwrap();
        let err = Results::open(dir.path()).err().unwrap();
        let Error::Locked { dir: d, holder } = &err else {
            panic!("{err}")
        };
        assert_eq!(
            (d.as_path(), *holder),
            (dir.path(), Some(std::process::id()))
        );
        assert_eq!(err.exit_code(), crate::error::EXIT_CONFIG);
        assert!(
            err.to_string().contains(dir.path().to_str().unwrap()),
            "{err}"
        );
        drop(first);
        assert!(
            Results::open(dir.path()).is_ok(),
            "the lock goes with its holder"
        );
    }

    #[test]
    fn completed_since_pages_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut r, _) = Results::open(dir.path()).unwrap();
        for n in 1..=7 {
            r.append(&record(n, n != 4)).unwrap();
        }
        let path = r.path().to_path_buf();
        // A write in progress: no newline yet.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&serde_json::to_vec(&record(8, true)).unwrap())
            .unwrap();
        let epochs = |since, max| -> Vec<u64> {
            let page = completed_since(&path, since, max).unwrap();
            page.iter().map(|r| r.epoch).collect()
        };
        assert_eq!(epochs(0, 3), [1, 2, 3]);
        assert_eq!(epochs(3, 3), [5, 6, 7], "partial epoch 4 is left out");
        assert_eq!(epochs(7, 3), Vec::<u64>::new());
    }

    #[test]
    fn bad_lines_are_reported_not_fatal() {
        let good = serde_json::to_string(&record(4, true)).unwrap();
        let e = parse_lines(&format!("{good}\n\n{{\"x\":1}}\n"));
        assert_eq!(e.records.len(), 1);
        assert_eq!(e.bad_lines.len(), 1);
        assert_eq!(e.bad_lines[0].0, 3);
        assert_eq!(e.next_epoch(), 5);
    }

    #[test]
    fn an_output_folder_under_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = Results::open(&file.join("out")).err().unwrap();
        assert!(matches!(
            err,
            Error::Output {
                step: OutputStep::CreateFolder,
                ..
            }
        ));
        let err = err.to_string();
        assert!(err.contains("cannot create"), "{err}");
        assert!(err.contains("plain-file/out"), "{err}");
    }

    #[test]
    fn records_without_machine_context_still_parse() {
        let mut v = serde_json::to_value(record(3, true)).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("machine").unwrap();
        obj.remove("load").unwrap();
        let old: EpochRecord = serde_json::from_value(v).unwrap();
        assert_eq!(old.machine, None);
        assert!(old.load.is_empty());
        assert_eq!(old.samples, record(3, true).samples);
    }

    #[test]
    fn null_figures_round_trip() {
        let mut r = record(1, false);
        r.samples.truncate(1);
        r.syscalls = None;
        r.figures = epoch::figures(&r.samples, None, 10, &r.thresholds);
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"cv\":null") && line.contains("\"complete\":false"));
        let back: EpochRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }
}
