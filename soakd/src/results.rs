//! Durable results: `<out>/epochs.jsonl`, one JSON object per epoch.
//!
//! Each record is one `write` of a whole line on an `O_APPEND` descriptor
//! followed by `fdatasync`, so a kill -9 loses at most the running epoch and
//! never tears an earlier line. Should a crash of the machine itself leave a
//! partial last line, the next start cuts it off (with a warning) before
//! appending, so every line of the file keeps parsing.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::epoch::{Figures, Sample, Thresholds};
use crate::error::{Error, OutputStep};

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
}

/// A parsed results file.
pub struct Existing {
    pub records: Vec<EpochRecord>,
    /// Lines that did not parse, as (line number, error); they are left in place.
    pub bad_lines: Vec<(usize, String)>,
    /// Bytes of a partial last line cut off.
    pub truncated_tail: usize,
}

impl Existing {
    /// The number the next epoch gets.
    pub fn next_epoch(&self) -> u64 {
        self.records.iter().map(|r| r.epoch).max().unwrap_or(0) + 1
    }
}

/// The open results file.
pub struct Results {
    path: PathBuf,
    file: File,
}

impl Results {
    /// Creates `dir` if needed and opens its epochs.jsonl for appending, so an
    /// unwritable folder is an error now rather than at the first epoch's end.
    pub fn open(dir: &Path) -> Result<(Results, Existing), Error> {
        std::fs::create_dir_all(dir).map_err(fail(OutputStep::CreateFolder, dir))?;
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
        let complete_len = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let truncated_tail = text.len() - complete_len;
        if truncated_tail > 0 {
            file.set_len(complete_len as u64)
                .map_err(fail(OutputStep::RepairFile, &path))?;
        }
        let mut existing = parse_lines(&String::from_utf8_lossy(&text[..complete_len]));
        existing.truncated_tail = truncated_tail;
        // Make the file's directory entry durable too, in case it was just created.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail(OutputStep::SyncFolder, dir))?;
        Ok((Results { path, file }, existing))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line and waits until it is on disk.
    pub fn append(&mut self, r: &EpochRecord) -> io::Result<()> {
        let mut line = serde_json::to_string(r).map_err(io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()
    }
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
        truncated_tail: 0,
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
            samples,
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
        assert_eq!(existing.truncated_tail, 40);
        assert_eq!(existing.next_epoch(), 2);
        r.append(&record(2, true)).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.records.len(), 2);
        assert!(back.bad_lines.is_empty());
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
