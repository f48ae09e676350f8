//! The epoch runner: samples throughput and RSS every `sample_secs` on the
//! monotonic clock, closes each epoch with its figures, writes it durably and
//! publishes it; on a shutdown signal it writes the running epoch as partial
//! (none when it has no sample yet).
//!
//! Epochs abut on a fixed schedule, except after a stall (SIGSTOP, a paused
//! VM, a starved machine): missed sample deadlines are skipped rather than
//! caught up with near-empty samples, and an epoch that would start more
//! than a sample interval late starts now instead, with the gap logged.
//!
//! An epoch that cannot be written stays queued (see `Results`) and is
//! retried at every sample; each failed try is counted in
//! `soakd_results_write_errors_total` and logged. Only at exit does an
//! unwritten epoch become an error.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hakmem_workload::{OpCounts, Workload};
use tracing::{error, info, warn};

use crate::config::{Backend, Config};
use crate::epoch::{self, Sample};
use crate::error::Error;
use crate::host::{LoadSampler, Machine};
use crate::notify;
use crate::results::{EpochRecord, Ops, Results};
use crate::rss::RssReader;
use crate::state::AppState;

/// Why the runner returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The requested number of epochs ran.
    EpochLimit,
    /// A signal asked to stop (its name).
    Signal(&'static str),
}

pub struct Runner {
    pub cfg: Config,
    pub state: Arc<AppState>,
    pub results: Results,
    pub workload: Arc<Workload>,
    pub rss: RssReader,
    /// The first epoch's number (continuing an existing results file).
    pub first_epoch: u64,
    /// Stop after this many epochs.
    pub max_epochs: Option<u64>,
}

/// The workload allocator's syscalls so far, where it is hakmem: soakd's
/// own, or a preloaded libhakmem.so under the libc backend.
fn syscalls(b: Backend) -> Option<u64> {
    match b {
        Backend::Hakmem => Some(hakmem::stats().syscalls_total()),
        Backend::Libc => crate::preloaded::syscalls(),
    }
}

impl Runner {
    /// Runs epochs until the limit or until `shutdown` resolves.
    pub async fn run<S>(mut self, shutdown: S) -> Result<Ended, Error>
    where
        S: Future<Output = &'static str>,
    {
        let e = self.cfg.epoch;
        let length = Duration::from_secs(e.length_secs);
        let sample = Duration::from_secs(e.sample_secs);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut epoch_start = Instant::now();
        let mut last = (epoch_start, self.workload.ops());
        let mut load_sampler = LoadSampler::start();
        for index in self.first_epoch.. {
            self.state.metrics.epoch_started(index);
            if index == self.first_epoch {
                notify::send(notify::READY);
            }
            let machine = Machine::read(self.cfg.backend);
            let started_unix = unix_now();
            let (ops_at_start, sys_at_start) = (last.1, syscalls(self.cfg.backend));
            let mut samples = Vec::new();
            let mut load = Vec::new();
            let mut signal = None;
            let mut k: u32 = 1;
            loop {
                let offset = (sample * k).min(length);
                let deadline = tokio::time::Instant::from_std(epoch_start + offset);
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    name = &mut shutdown => {
                        signal = Some(name);
                        break;
                    }
                }
                let s = self.take_sample(&mut last, epoch_start, offset)?;
                self.state.metrics.sample(s.ops_per_sec, s.rss());
                let l = load_sampler.sample(s.t_secs);
                self.state.metrics.load(&l);
                load.push(l);
                samples.push(s);
                self.state.metrics.current(
                    epoch::steady_cv(&samples),
                    epoch::steady_rss_drift(&samples),
                );
                if !self.results.pending().is_empty() {
                    // Counted and logged inside; the epochs stay queued.
                    let _ = self.write(None);
                }
                let behind = epoch_start.elapsed();
                if offset >= length || behind >= length {
                    break;
                }
                // Past deadlines (a stall) are skipped, not caught up.
                let due = behind.as_nanos() / sample.as_nanos() + 1;
                k = (k + 1).max(u32::try_from(due).unwrap_or(u32::MAX));
            }
            if let (Some(name), []) = (signal, samples.as_slice()) {
                info!(
                    epoch = index,
                    "{name} before epoch {index}'s first sample: nothing to write for it"
                );
                self.write_before_exit()?;
                return Ok(Ended::Signal(name));
            }
            let ops_now = if signal.is_some() {
                self.workload.ops()
            } else {
                last.1
            };
            let ops = OpCounts {
                allocs: ops_now.allocs - ops_at_start.allocs,
                frees: ops_now.frees - ops_at_start.frees,
            };
            let syscalls = sys_at_start
                .zip(syscalls(self.cfg.backend))
                .map(|(a, b)| b - a);
            let record = EpochRecord {
                epoch: index,
                profile: self.cfg.name.clone(),
                backend: self.cfg.backend.name().into(),
                allocator_profile: crate::workload::allocator_profile(&self.cfg),
                complete: signal.is_none(),
                started_unix_secs: started_unix,
                duration_secs: epoch_start
                    .elapsed()
                    .as_secs_f64()
                    .min(length.as_secs_f64()),
                length_secs: e.length_secs,
                sample_secs: e.sample_secs,
                warmup_secs: e.warmup_secs,
                threads: self.cfg.workload.threads,
                ops: Ops {
                    alloc: ops.allocs,
                    free: ops.frees,
                },
                syscalls,
                figures: epoch::figures(&samples, syscalls, ops.total(), &self.cfg.thresholds),
                thresholds: self.cfg.thresholds,
                samples,
                machine: Some(machine),
                load,
            };
            // Counted and logged inside; a failure leaves the epoch queued.
            let _ = self.write(Some(&record));
            log_epoch(&record);
            if let Some(name) = signal {
                self.write_before_exit()?;
                return Ok(Ended::Signal(name));
            }
            self.state.metrics.epoch_completed(&record.figures);
            self.state.push_epoch(record);
            if self
                .max_epochs
                .is_some_and(|max| index + 1 - self.first_epoch >= max)
            {
                self.write_before_exit()?;
                return Ok(Ended::EpochLimit);
            }
            // Epochs abut on the schedule, so timer lateness never accumulates.
            epoch_start += length;
            let late = Instant::now().saturating_duration_since(epoch_start);
            if late > sample {
                warn!(
                    epoch = index + 1,
                    gap_secs = late.as_secs_f64(),
                    "the schedule fell {:.1} s behind (soakd was stopped or starved): \
                     epoch {} starts now rather than catch up",
                    late.as_secs_f64(),
                    index + 1
                );
                epoch_start = Instant::now();
            }
        }
        unreachable!("epoch numbers do not run out")
    }

    /// Writes `record` after any epochs still queued, or only those. A
    /// failure is counted and logged here; what was not written stays queued.
    fn write(&mut self, record: Option<&EpochRecord>) -> io::Result<()> {
        let waited = self.results.pending();
        let results = &mut self.results;
        let written = tokio::task::block_in_place(|| match record {
            Some(r) => results.append(r),
            None => results.flush(),
        });
        match &written {
            Ok(()) if !waited.is_empty() => info!(
                epochs = ?waited,
                "wrote epochs {waited:?} to {}, which had failed before",
                self.results.path().display()
            ),
            Ok(()) => {}
            Err(e) => {
                self.state.metrics.results_write_failed();
                let pending = self.results.pending();
                error!(
                    epochs = ?pending,
                    "cannot write {}: {e}; epochs {pending:?} wait in memory, retried at every sample",
                    self.results.path().display()
                );
            }
        }
        written
    }

    /// A last try at the queued epochs: at exit, an unwritten one is lost.
    fn write_before_exit(&mut self) -> Result<(), Error> {
        if self.results.pending().is_empty() {
            return Ok(());
        }
        self.write(None).map_err(|source| {
            error!(
                "exiting with epochs {:?} not written",
                self.results.pending()
            );
            Error::Write {
                path: self.results.path().to_path_buf(),
                source,
            }
        })
    }

    fn take_sample(
        &self,
        last: &mut (Instant, OpCounts),
        epoch_start: Instant,
        offset: Duration,
    ) -> Result<Sample, Error> {
        let now = Instant::now();
        let ops = self.workload.ops();
        let rss = self.rss.read().map_err(Error::ReadRss)?;
        let n = ops.total() - last.1.total();
        let dt = (now - last.0).as_secs_f64();
        *last = (now, ops);
        Ok(Sample {
            t_secs: (now - epoch_start).as_secs_f64(),
            ops: n,
            ops_per_sec: if dt > 0.0 { n as f64 / dt } else { 0.0 },
            rss_bytes: rss.total,
            rss_anon_bytes: Some(rss.anon),
            // Classified by schedule, so a late timer cannot move a sample across.
            warmup: epoch::is_warmup(offset.as_secs_f64(), self.cfg.epoch.warmup_secs as f64),
        })
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn log_epoch(r: &EpochRecord) {
    let f = &r.figures;
    info!(
        epoch = r.epoch,
        complete = r.complete,
        samples = r.samples.len(),
        ops = r.ops.alloc + r.ops.free,
        throughput_mean = f.throughput.map(|t| t.mean),
        throughput_min = f.throughput.map(|t| t.min),
        cv = f.cv,
        rss_drift = f.rss_drift,
        rss_trend_per_hour = f.rss_trend,
        throughput_trend_per_hour = f.throughput_trend,
        syscalls_per_op = f.syscalls_per_op,
        verdict = f.verdict.word(),
        verdict_cv = f.verdict.cv,
        verdict_rss_drift = f.verdict.rss_drift,
        verdict_rss_trend = f.verdict.rss_trend,
        verdict_throughput_trend = f.verdict.throughput_trend,
        verdict_syscalls_per_op = f.verdict.syscalls_per_op,
        "epoch {} {}",
        r.epoch,
        if r.complete {
            "finished"
        } else {
            "interrupted"
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EpochTiming;
    use crate::metrics::{metric, Metrics};

    /// A runner on a fresh results folder with `length`-second epochs of 1 s samples.
    fn runner(dir: &std::path::Path, length: u64, max_epochs: Option<u64>) -> Runner {
        let cfg = Config {
            epoch: EpochTiming {
                length_secs: length,
                sample_secs: 1,
                warmup_secs: 1,
            },
            ..Config::default()
        };
        let workload = Arc::new(crate::workload::start(&cfg));
        let weak = Arc::downgrade(&workload);
        let (results, existing) = Results::open(dir).unwrap();
        Runner {
            state: Arc::new(AppState::new(
                Metrics::new(
                    &cfg.name,
                    "hakmem",
                    Box::new(move || weak.upgrade().map(|w| w.ops())),
                ),
                Vec::new(),
                cfg.history,
                dir.join("epochs.jsonl"),
            )),
            cfg,
            results,
            workload,
            rss: RssReader::open().unwrap(),
            first_epoch: existing.next_epoch() + 4,
            max_epochs,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_the_requested_epochs_on_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 2, Some(2));
        let state = Arc::clone(&r.state);
        let t = Instant::now();
        assert_eq!(
            r.run(std::future::pending()).await.unwrap(),
            Ended::EpochLimit
        );
        let took = t.elapsed().as_secs_f64();
        assert!((4.0..8.0).contains(&took), "two 2 s epochs took {took}");
        let recs = crate::results::read(dir.path()).unwrap().records;
        assert_eq!(recs.iter().map(|r| r.epoch).collect::<Vec<_>>(), [5, 6]);
        for r in &recs {
            assert!(r.complete);
            assert_eq!(r.samples.len(), 2);
            assert!(r.samples[0].warmup && !r.samples[1].warmup);
            assert!((r.samples[1].t_secs - 2.0).abs() < 1.0, "{:?}", r.samples);
            let sampled: u64 = r.samples.iter().map(|s| s.ops).sum();
            assert_eq!(sampled, r.ops.alloc + r.ops.free, "samples cover the epoch");
            assert!(r.syscalls.is_some() && r.figures.cv == Some(0.0));
            let load_times: Vec<f64> = r.load.iter().map(|l| l.t_secs).collect();
            let sample_times: Vec<f64> = r.samples.iter().map(|s| s.t_secs).collect();
            assert_eq!(load_times, sample_times, "one load reading per sample");
            let m = r.machine.as_ref().expect("machine context");
            assert!(m.logical_cores > 0 && !m.kernel.is_empty(), "{m:?}");
        }
        assert_eq!(state.epoch_count(), 2);
        let completed = format!("{}{{profile=\"default\"}} 2", metric::epochs_completed.name);
        assert!(state.metrics.encode().contains(&completed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_writes_the_running_epoch_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 60, None);
        let state = Arc::clone(&r.state);
        let stop = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            "TEST"
        };
        assert_eq!(r.run(stop).await.unwrap(), Ended::Signal("TEST"));
        let recs = crate::results::read(dir.path()).unwrap().records;
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert!(!r.complete);
        assert_eq!(r.samples.len(), 1);
        assert!((1.4..3.0).contains(&r.duration_secs), "{}", r.duration_secs);
        assert!(
            r.ops.alloc > r.samples[0].ops / 2,
            "ops up to the signal count"
        );
        assert!(state.epoch_count() == 0, "partial epochs are not completed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_before_the_first_sample_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 60, None);
        assert_eq!(
            r.run(std::future::ready("TEST")).await.unwrap(),
            Ended::Signal("TEST")
        );
        let text = std::fs::read_to_string(dir.path().join("epochs.jsonl")).unwrap();
        assert_eq!(text, "", "no empty partial epoch");
    }
}
