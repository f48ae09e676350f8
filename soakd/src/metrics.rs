//! Prometheus metrics: SPEC 5's table on soakd's own registry, every series
//! labelled `profile`, plus the process collector and allocator counters.
//!
//! Figures that are not defined yet (before the first epoch ends, during a
//! warm-up) read NaN rather than 0, which would look like a perfect result;
//! an unjudged check has no `soakd_epoch_pass` series.

use std::collections::HashMap;
use std::sync::Mutex;

use hakmem_workload::OpCounts;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::epoch::Figures;

/// Reads the workload's operation counts at scrape time; `None` once it is gone.
pub type OpsSource = Box<dyn Fn() -> Option<OpCounts> + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    throughput: Gauge,
    rss: IntGauge,
    epoch_index: IntGauge,
    epochs_completed: IntCounter,
    epoch_mean: Gauge,
    epoch_cv: Gauge,
    epoch_drift: Gauge,
    epoch_syscalls_per_op: Gauge,
    epoch_pass: IntGaugeVec,
    current_cv: Gauge,
    current_drift: Gauge,
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::with_opts(Opts::new(name, help)).expect("valid metric name")
}

fn nan_gauge(name: &str, help: &str) -> Gauge {
    let g = gauge(name, help);
    g.set(f64::NAN);
    g
}

impl Metrics {
    /// Builds and registers every metric. `allocator` names the backend in
    /// `soakd_build_info`.
    pub fn new(profile: &str, allocator: &str, ops: OpsSource) -> Metrics {
        let labels = HashMap::from([("profile".to_string(), profile.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry labels");
        let m = Metrics {
            throughput: gauge(
                "soakd_throughput_ops_per_second",
                "Workload throughput over the last sample interval.",
            ),
            rss: IntGauge::new("soakd_rss_bytes", "Resident set size at the last sample.")
                .expect("valid metric name"),
            epoch_index: IntGauge::new(
                "soakd_epoch_index",
                "The running epoch, numbered from 1 across restarts.",
            )
            .expect("valid metric name"),
            epochs_completed: IntCounter::new(
                "soakd_epochs_completed_total",
                "Epochs completed by this process.",
            )
            .expect("valid metric name"),
            epoch_mean: nan_gauge(
                "soakd_epoch_throughput_mean_ops_per_second",
                "Mean throughput of the last completed epoch.",
            ),
            epoch_cv: nan_gauge(
                "soakd_epoch_throughput_cv_ratio",
                "Throughput coefficient of variation (after warm-up) of the last completed epoch.",
            ),
            epoch_drift: nan_gauge(
                "soakd_epoch_rss_drift_ratio",
                "RSS drift (after warm-up) of the last completed epoch.",
            ),
            epoch_syscalls_per_op: nan_gauge(
                "soakd_epoch_syscalls_per_op",
                "Allocator syscalls per workload operation in the last completed epoch.",
            ),
            epoch_pass: IntGaugeVec::new(
                Opts::new(
                    "soakd_epoch_pass",
                    "Whether the last completed epoch passed a check (1) or failed it (0).",
                ),
                &["check"],
            )
            .expect("valid metric name"),
            current_cv: nan_gauge(
                "soakd_current_epoch_throughput_cv_ratio",
                "Throughput coefficient of variation of the running epoch so far.",
            ),
            current_drift: nan_gauge(
                "soakd_current_epoch_rss_drift_ratio",
                "RSS drift of the running epoch so far.",
            ),
            registry,
        };
        let build_info = IntGaugeVec::new(
            Opts::new(
                "soakd_build_info",
                "soakd's version and workload allocator; always 1.",
            ),
            &["version", "allocator"],
        )
        .expect("valid metric name");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), allocator])
            .set(1);
        let collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(m.throughput.clone()),
            Box::new(m.rss.clone()),
            Box::new(m.epoch_index.clone()),
            Box::new(m.epochs_completed.clone()),
            Box::new(m.epoch_mean.clone()),
            Box::new(m.epoch_cv.clone()),
            Box::new(m.epoch_drift.clone()),
            Box::new(m.epoch_syscalls_per_op.clone()),
            Box::new(m.epoch_pass.clone()),
            Box::new(m.current_cv.clone()),
            Box::new(m.current_drift.clone()),
            Box::new(build_info),
            Box::new(Live::new(ops)),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// A new sample was taken.
    pub fn sample(&self, ops_per_sec: f64, rss_bytes: u64) {
        self.throughput.set(ops_per_sec);
        self.rss.set(i64::try_from(rss_bytes).unwrap_or(i64::MAX));
    }

    /// Epoch `index` started.
    pub fn epoch_started(&self, index: u64) {
        self.epoch_index
            .set(i64::try_from(index).unwrap_or(i64::MAX));
        self.current_cv.set(f64::NAN);
        self.current_drift.set(f64::NAN);
    }

    /// The running epoch's figures so far.
    pub fn current(&self, cv: Option<f64>, rss_drift: Option<f64>) {
        self.current_cv.set(cv.unwrap_or(f64::NAN));
        self.current_drift.set(rss_drift.unwrap_or(f64::NAN));
    }

    /// An epoch completed with these figures.
    pub fn epoch_completed(&self, f: &Figures) {
        self.epochs_completed.inc();
        self.epoch_mean
            .set(f.throughput.map_or(f64::NAN, |t| t.mean));
        self.epoch_cv.set(f.cv.unwrap_or(f64::NAN));
        self.epoch_drift.set(f.rss_drift.unwrap_or(f64::NAN));
        self.epoch_syscalls_per_op
            .set(f.syscalls_per_op.unwrap_or(f64::NAN));
        for (check, pass) in f.verdict.checks() {
            match pass {
                Some(p) => self
                    .epoch_pass
                    .with_label_values(&[check])
                    .set(i64::from(p)),
                None => {
                    // Absent already is fine: the check just has no series.
                    let _ = self.epoch_pass.remove_label_values(&[check]);
                }
            }
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of valid metrics");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Metrics read from their sources at scrape time: the workload's operation
/// counters and the allocator's stats. Counters only go up, so each scrape
/// adds what changed since the last one (under a lock, so concurrent scrapes
/// never add twice).
struct Live {
    ops_source: OpsSource,
    ops: IntCounterVec,
    syscalls: IntCounterVec,
    mapped: IntGauge,
    superslabs: IntGauge,
    released: IntCounter,
    last: Mutex<(OpCounts, hakmem::Stats)>,
}

impl Live {
    fn new(ops_source: OpsSource) -> Live {
        let counter_vec = |name, help, label| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric name")
        };
        Live {
            ops_source,
            ops: counter_vec("soakd_ops_total", "Workload operations.", "op"),
            syscalls: counter_vec(
                "hakmem_syscalls_total",
                "System calls made by the hakmem allocator.",
                "syscall",
            ),
            mapped: IntGauge::new(
                "hakmem_mapped_bytes",
                "Bytes hakmem has mapped from the OS.",
            )
            .expect("valid metric name"),
            superslabs: IntGauge::new("hakmem_superslabs", "Superslabs hakmem has mapped.")
                .expect("valid metric name"),
            released: IntCounter::new(
                "hakmem_superslabs_released_total",
                "Superslabs hakmem has given back to the OS.",
            )
            .expect("valid metric name"),
            last: Mutex::new(Default::default()),
        }
    }

    fn refresh(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = (self.ops_source)() {
            self.ops
                .with_label_values(&["alloc"])
                .inc_by(now.allocs.saturating_sub(last.0.allocs));
            self.ops
                .with_label_values(&["free"])
                .inc_by(now.frees.saturating_sub(last.0.frees));
            last.0 = now;
        }
        let s = hakmem::stats();
        for ((name, n), (_, before)) in s.syscalls().into_iter().zip(last.1.syscalls()) {
            self.syscalls
                .with_label_values(&[name])
                .inc_by(n.saturating_sub(before));
        }
        self.released.inc_by(
            s.superslabs_released
                .saturating_sub(last.1.superslabs_released),
        );
        self.mapped
            .set(i64::try_from(s.mapped_bytes).unwrap_or(i64::MAX));
        self.superslabs
            .set(i64::try_from(s.superslabs).unwrap_or(i64::MAX));
        last.1 = s;
    }
}

impl Collector for Live {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.ops.desc(),
            self.syscalls.desc(),
            self.mapped.desc(),
            self.superslabs.desc(),
            self.released.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        [
            self.ops.collect(),
            self.syscalls.collect(),
            self.mapped.collect(),
            self.superslabs.collect(),
            self.released.collect(),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::{self, Thresholds};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
    }

    #[test]
    fn every_spec_metric_is_exposed_with_the_profile_label() {
        let n = Arc::new(AtomicU64::new(100));
        let src = Arc::clone(&n);
        let m = Metrics::new(
            "ci",
            "hakmem",
            Box::new(move || {
                let v = src.load(Ordering::Relaxed);
                Some(OpCounts {
                    allocs: v,
                    frees: v / 2,
                })
            }),
        );
        m.epoch_started(3);
        m.sample(1234.5, 4096);
        let f = epoch::figures(&[], Some(0), 0, &Thresholds::default());
        m.epoch_completed(&f);
        let text = m.encode();
        for name in [
            "soakd_ops_total",
            "soakd_throughput_ops_per_second",
            "soakd_rss_bytes",
            "soakd_epoch_index",
            "soakd_epochs_completed_total",
            "soakd_epoch_throughput_mean_ops_per_second",
            "soakd_epoch_throughput_cv_ratio",
            "soakd_epoch_rss_drift_ratio",
            "soakd_epoch_syscalls_per_op",
            "soakd_current_epoch_throughput_cv_ratio",
            "soakd_current_epoch_rss_drift_ratio",
            "hakmem_syscalls_total",
            "hakmem_mapped_bytes",
            "hakmem_superslabs",
            "hakmem_superslabs_released_total",
            "soakd_build_info",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_threads",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("profile=\"ci\""), "unlabelled: {line}");
        }
        assert_eq!(
            value_of(&text, "soakd_ops_total{op=\"alloc\",profile=\"ci\"}"),
            Some("100")
        );
        assert_eq!(value_of(&text, "soakd_epoch_index{"), Some("3"));
        assert_eq!(value_of(&text, "soakd_rss_bytes{"), Some("4096"));
        assert!(text.contains("allocator=\"hakmem\""));
        for s in ["mmap", "munmap", "madvise", "mremap"] {
            assert!(text.contains(&format!(
                "hakmem_syscalls_total{{syscall=\"{s}\",profile=\"ci\"}}"
            )));
        }

        // Counters follow their source across scrapes without double counting.
        n.store(250, Ordering::Relaxed);
        let text = m.encode();
        let text2 = m.encode();
        for t in [&text, &text2] {
            assert_eq!(
                value_of(t, "soakd_ops_total{op=\"alloc\",profile=\"ci\"}"),
                Some("250")
            );
            assert_eq!(
                value_of(t, "soakd_ops_total{op=\"free\",profile=\"ci\"}"),
                Some("125")
            );
        }
    }

    #[test]
    fn verdicts_become_pass_series_and_unknowns_nan() {
        let m = Metrics::new("p", "libc", Box::new(|| None));
        let text = m.encode();
        assert_eq!(
            value_of(&text, "soakd_epoch_throughput_cv_ratio{"),
            Some("NaN")
        );
        assert!(!text.contains("soakd_epoch_pass{"));

        let t = Thresholds::default();
        let samples: Vec<epoch::Sample> = (1..=3)
            .map(|k| epoch::Sample {
                t_secs: k as f64,
                ops: 100,
                ops_per_sec: 100.0,
                rss_bytes: 1000,
                warmup: false,
            })
            .collect();
        m.epoch_completed(&epoch::figures(&samples, None, 300, &t));
        let text = m.encode();
        assert_eq!(value_of(&text, "soakd_epoch_pass{check=\"cv\""), Some("1"));
        assert_eq!(value_of(&text, "soakd_epoch_pass{check=\"all\""), Some("1"));
        assert!(
            !text.contains("check=\"syscalls_per_op\""),
            "unjudged: no series"
        );
        assert_eq!(
            value_of(&text, "soakd_epoch_throughput_cv_ratio{"),
            Some("0")
        );
        assert_eq!(value_of(&text, "soakd_epochs_completed_total{"), Some("1"));
    }
}
