//! Prometheus metrics: SPEC 5's table on soakd's own registry, every series
//! labelled `profile` (a registry-wide label, so no row lists it).
//!
//! # One table
//!
//! Every metric soakd exports is one row of the `metrics!` table below:
//! field, Rust type (which gives the Prometheus type), name, labels, HELP
//! text, and where its value comes from. The table is the only place a
//! metric name is written in Rust: registration, the constants in [`metric`]
//! and the list [`TABLE`] come from it, and every test (here, in
//! `soakd/tests/` and in `tests-e2e`) takes names from [`metric`] or
//! [`TABLE`]. Tests check `docs/metrics.md`, the Grafana dashboard and the
//! Prometheus rules against [`TABLE`], and a live `/metrics` against it.
//!
//! # Pushed or read at scrape time
//!
//! The table's sections say which, and the rule is:
//! - **pushed**: soakd computes the value at a moment of its own schedule
//!   (a sample, an epoch's start or end, start-up for `soakd_build_info`).
//!   The runner sets it through a [`Metrics`] method; between events it
//!   reads the last value pushed. Only those methods touch pushed series.
//! - **scraped**: the value is a counter or a level that something else
//!   keeps current all the time (the workload's per-thread operation
//!   counters, the allocator's stats). It is read in one function,
//!   `Metrics::refresh`, when `/metrics` is served, so it is never stale and
//!   costs nothing between scrapes. Nothing else sets these series.
//! - **process**: read at scrape time too, by the `prometheus` crate's
//!   process collector; the rows only describe what it exports, and a test
//!   holds them to it.
//!
//! A value never comes from both: a figure of soakd's own making is pushed,
//! a count kept elsewhere is scraped.
//!
//! Figures that are not defined yet (before the first epoch ends, during a
//! warm-up) read NaN rather than 0, which would look like a perfect result:
//! such rows say `starts_nan: true`. An unjudged check has no
//! `soakd_epoch_pass` series.

use std::collections::HashMap;
use std::sync::Mutex;

use hakmem_workload::OpCounts;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::epoch::{Figures, Thresholds};
use crate::host::{Load, Machine};
use crate::version;

/// A metric's Prometheus type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    /// As written on a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// Where a metric's value comes from (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Set by the runner when soakd computes it.
    Pushed,
    /// Read from its source when `/metrics` is served.
    Scraped,
    /// Read at scrape time by the `prometheus` crate's process collector.
    Process,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Label names besides `profile`, which every series carries.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
    pub source: Source,
    /// Reads NaN until a first value is pushed.
    pub starts_nan: bool,
}

/// A Rust metric type the table can declare: how to build it from its row.
trait Build: Collector + Clone + 'static {
    const KIND: Kind;
    fn build(def: &MetricDef) -> Self;
}

fn opts(def: &MetricDef) -> Opts {
    Opts::new(def.name, def.help)
}

/// Types without labels; only `Gauge` (f64) can start NaN.
macro_rules! scalar {
    ($($ty:ident => $kind:ident, nan: $nan:expr;)*) => {$(
        impl Build for $ty {
            const KIND: Kind = Kind::$kind;
            fn build(def: &MetricDef) -> Self {
                assert!(def.labels.is_empty(), "{}: a {} has no labels", def.name, stringify!($ty));
                let m = $ty::with_opts(opts(def)).expect("valid metric name");
                let set_nan: fn(&$ty) = $nan;
                if def.starts_nan {
                    set_nan(&m);
                }
                m
            }
        }
    )*};
}

scalar! {
    Gauge => Gauge, nan: |g| g.set(f64::NAN);
    IntGauge => Gauge, nan: |_| panic!("an IntGauge cannot read NaN");
    IntCounter => Counter, nan: |_| panic!("a counter cannot read NaN");
}

/// Labelled types.
macro_rules! labelled {
    ($($ty:ident => $kind:ident;)*) => {$(
        impl Build for $ty {
            const KIND: Kind = Kind::$kind;
            fn build(def: &MetricDef) -> Self {
                assert!(!def.labels.is_empty(), "{}: a {} needs labels", def.name, stringify!($ty));
                assert!(!def.starts_nan, "{}: only a Gauge can start NaN", def.name);
                $ty::new(opts(def), def.labels).expect("valid metric name")
            }
        }
    )*};
}

labelled! {
    GaugeVec => Gauge;
    IntGaugeVec => Gauge;
    IntCounterVec => Counter;
}

/// One row: `name`, optional `labels`, `help`, optional `starts_nan`.
macro_rules! row {
    ($kind:expr, $source:ident;
     name: $name:literal,
     $(labels: [$($label:literal),* $(,)?],)?
     help: $help:literal
     $(, starts_nan: $nan:literal)? $(,)?) => {
        MetricDef {
            name: $name,
            kind: $kind,
            labels: &[$($($label),*)?],
            help: $help,
            source: Source::$source,
            starts_nan: false $(|| $nan)?,
        }
    };
}

/// The table: pushed and scraped rows become a field of `Pushed` or
/// `Scraped` of the given type; every row becomes a constant in [`metric`]
/// and an entry of [`TABLE`].
macro_rules! metrics {
    (
        pushed { $($p:ident: $pty:ident { $($pdef:tt)* },)* }
        scraped { $($s:ident: $sty:ident { $($sdef:tt)* },)* }
        process { $($x:ident: $xkind:ident { $($xdef:tt)* },)* }
    ) => {
        /// Every metric's row, by the field name soakd's code uses for it.
        #[allow(non_upper_case_globals)]
        pub mod metric {
            use super::*;
            $(pub const $p: MetricDef = row!(<$pty as Build>::KIND, Pushed; $($pdef)*);)*
            $(pub const $s: MetricDef = row!(<$sty as Build>::KIND, Scraped; $($sdef)*);)*
            $(pub const $x: MetricDef = row!(Kind::$xkind, Process; $($xdef)*);)*
        }

        /// Every metric soakd exports, `profile` label aside.
        pub const TABLE: &[MetricDef] = &[$(metric::$p,)* $(metric::$s,)* $(metric::$x,)*];

        /// The series the runner sets.
        struct Pushed {
            $($p: $pty,)*
        }

        /// The series read at scrape time.
        struct Scraped {
            $($s: $sty,)*
        }

        impl Pushed {
            fn new() -> Pushed {
                Pushed { $($p: Build::build(&metric::$p),)* }
            }

            fn collectors(&self) -> Vec<Box<dyn Collector>> {
                vec![$(Box::new(self.$p.clone()),)*]
            }
        }

        impl Scraped {
            fn new() -> Scraped {
                Scraped { $($s: Build::build(&metric::$s),)* }
            }

            fn collectors(&self) -> Vec<Box<dyn Collector>> {
                vec![$(Box::new(self.$s.clone()),)*]
            }
        }
    };
}

metrics! {
    pushed {
        throughput: Gauge {
            name: "soakd_throughput_ops_per_second",
            help: "Workload throughput over the last sample interval.",
        },
        rss: IntGauge {
            name: "soakd_rss_bytes",
            help: "Anonymous resident memory (RssAnon) at the last sample.",
        },
        epoch_index: IntGauge {
            name: "soakd_epoch_index",
            help: "The running epoch, numbered from 1 across restarts.",
        },
        epochs_completed: IntCounter {
            name: "soakd_epochs_completed_total",
            help: "Epochs completed by this process.",
        },
        epoch_mean: Gauge {
            name: "soakd_epoch_throughput_mean_ops_per_second",
            help: "Mean throughput of the last completed epoch.",
            starts_nan: true,
        },
        epoch_cv: Gauge {
            name: "soakd_epoch_throughput_cv_ratio",
            help: "Throughput coefficient of variation (after warm-up) of the last completed epoch.",
            starts_nan: true,
        },
        epoch_drift: Gauge {
            name: "soakd_epoch_rss_drift_ratio",
            help: "RSS drift (medians of the first and last windows after warm-up) of the last completed epoch.",
            starts_nan: true,
        },
        epoch_throughput_trend: Gauge {
            name: "soakd_epoch_throughput_trend_ratio_per_hour",
            help: "Theil-Sen throughput trend (after warm-up) of the last completed epoch, relative change per hour.",
            starts_nan: true,
        },
        epoch_rss_trend: Gauge {
            name: "soakd_epoch_rss_trend_ratio_per_hour",
            help: "Theil-Sen RSS trend (after warm-up) of the last completed epoch, relative growth per hour.",
            starts_nan: true,
        },
        epoch_syscalls_per_op: Gauge {
            name: "soakd_epoch_syscalls_per_op",
            help: "Allocator syscalls per workload operation in the last completed epoch.",
            starts_nan: true,
        },
        epoch_pass: IntGaugeVec {
            name: "soakd_epoch_pass",
            labels: ["check"],
            help: "Whether the last completed epoch passed a check (1) or failed it (0).",
        },
        threshold: GaugeVec {
            name: "soakd_threshold",
            labels: ["check"],
            help: "The profile's threshold per check, for dashboards.",
        },
        current_cv: Gauge {
            name: "soakd_current_epoch_throughput_cv_ratio",
            help: "Throughput coefficient of variation of the running epoch so far.",
            starts_nan: true,
        },
        current_drift: Gauge {
            name: "soakd_current_epoch_rss_drift_ratio",
            help: "RSS drift of the running epoch so far.",
            starts_nan: true,
        },
        results_write_errors: IntCounter {
            name: "soakd_results_write_errors_total",
            help: "Failed tries to write epochs.jsonl (disk full, read-only, file-size limit); the epochs wait in memory and are retried.",
        },
        build_info: IntGaugeVec {
            name: "soakd_build_info",
            labels: ["version", "allocator", "hakmem_version", "hakmem_features"],
            help: "soakd's version, workload allocator, hakmem's version and features; always 1.",
        },
        // Machine context (host.rs).
        host_info: IntGaugeVec {
            name: "soakd_host_info",
            labels: ["host_name", "os", "kernel", "cpu_model", "logical_cores", "physical_cores"],
            help: "The machine soakd runs on; always 1.",
        },
        host_load1: Gauge {
            name: "soakd_host_load1",
            help: "1-minute load average at the last sample.",
            starts_nan: true,
        },
        host_others_cpu: Gauge {
            name: "soakd_host_others_cpu_busy_ratio",
            help: "Share of all CPUs busy with other processes than soakd over the last sample interval.",
            starts_nan: true,
        },
    }
    scraped {
        ops: IntCounterVec {
            name: "soakd_ops_total",
            labels: ["op"],
            help: "Workload operations.",
        },
        syscalls: IntCounterVec {
            name: "hakmem_syscalls_total",
            labels: ["syscall"],
            help: "System calls made by the hakmem allocator.",
        },
        mapped: IntGauge {
            name: "hakmem_mapped_bytes",
            help: "Bytes hakmem has mapped from the OS.",
        },
        superslabs: IntGauge {
            name: "hakmem_superslabs",
            help: "Superslabs hakmem has mapped.",
        },
        released: IntCounter {
            name: "hakmem_superslabs_released_total",
            help: "Superslabs hakmem has given back to the OS.",
        },
    }
    process {
        process_cpu_seconds: Counter {
            name: "process_cpu_seconds_total",
            help: "Total user and system CPU time spent in seconds.",
        },
        process_open_fds: Gauge {
            name: "process_open_fds",
            help: "Number of open file descriptors.",
        },
        process_max_fds: Gauge {
            name: "process_max_fds",
            help: "Maximum number of open file descriptors.",
        },
        process_virtual_memory: Gauge {
            name: "process_virtual_memory_bytes",
            help: "Virtual memory size in bytes.",
        },
        process_resident_memory: Gauge {
            name: "process_resident_memory_bytes",
            help: "Resident memory size in bytes.",
        },
        process_start_time: Gauge {
            name: "process_start_time_seconds",
            help: "Start time of the process since unix epoch in seconds.",
        },
        process_threads: Gauge {
            name: "process_threads",
            help: "Number of OS threads in the process.",
        },
    }
}

/// Reads the workload's operation counts at scrape time; `None` once it is gone.
pub type OpsSource = Box<dyn Fn() -> Option<OpCounts> + Send + Sync>;

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub struct Metrics {
    registry: Registry,
    pushed: Pushed,
    scraped: Scraped,
    ops_source: OpsSource,
    /// The sources' values at the last scrape. Counters only go up, so each
    /// scrape adds what changed since; the lock keeps concurrent scrapes
    /// from adding twice.
    last: Mutex<(OpCounts, hakmem::Stats)>,
}

impl Metrics {
    /// Builds and registers every metric. `allocator` names the backend in
    /// `soakd_build_info`.
    pub fn new(profile: &str, allocator: &str, ops_source: OpsSource) -> Metrics {
        let labels = HashMap::from([("profile".to_string(), profile.to_string())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry labels");
        let pushed = Pushed::new();
        let scraped = Scraped::new();
        let process: Box<dyn Collector> =
            Box::new(prometheus::process_collector::ProcessCollector::for_self());
        for c in pushed
            .collectors()
            .into_iter()
            .chain(scraped.collectors())
            .chain([process])
        {
            registry.register(c).expect("metric names are unique");
        }
        pushed
            .build_info
            .with_label_values(&[
                version::SOAKD,
                allocator,
                hakmem::VERSION,
                &version::hakmem_features(),
            ])
            .set(1);
        Metrics {
            registry,
            pushed,
            scraped,
            ops_source,
            last: Mutex::new(Default::default()),
        }
    }

    /// The profile's thresholds, set once at start-up.
    pub fn thresholds(&self, t: &Thresholds) {
        for (check, limit) in t.by_check() {
            self.pushed.threshold.with_label_values(&[check]).set(limit);
        }
    }

    /// A new sample was taken.
    pub fn sample(&self, ops_per_sec: f64, rss_bytes: u64) {
        self.pushed.throughput.set(ops_per_sec);
        self.pushed.rss.set(clamp_i64(rss_bytes));
    }

    /// The machine soakd runs on, read at start.
    pub fn host(&self, m: &Machine) {
        let labels = m.info_labels();
        self.pushed
            .host_info
            .with_label_values(&labels.each_ref().map(String::as_str))
            .set(1);
    }

    /// The machine's load at a sample.
    pub fn load(&self, l: &Load) {
        self.pushed.host_load1.set(l.load1);
        self.pushed.host_others_cpu.set(l.others_cpu_busy);
    }

    /// Epoch `index` started.
    pub fn epoch_started(&self, index: u64) {
        let p = &self.pushed;
        p.epoch_index.set(clamp_i64(index));
        p.current_cv.set(f64::NAN);
        p.current_drift.set(f64::NAN);
    }

    /// The running epoch's figures so far.
    pub fn current(&self, cv: Option<f64>, rss_drift: Option<f64>) {
        self.pushed.current_cv.set(cv.unwrap_or(f64::NAN));
        self.pushed.current_drift.set(rss_drift.unwrap_or(f64::NAN));
    }

    /// An epoch completed with these figures.
    pub fn epoch_completed(&self, f: &Figures) {
        let p = &self.pushed;
        p.epochs_completed.inc();
        p.epoch_mean.set(f.throughput.map_or(f64::NAN, |t| t.mean));
        p.epoch_cv.set(f.cv.unwrap_or(f64::NAN));
        p.epoch_drift.set(f.rss_drift.unwrap_or(f64::NAN));
        p.epoch_throughput_trend
            .set(f.throughput_trend.unwrap_or(f64::NAN));
        p.epoch_rss_trend.set(f.rss_trend.unwrap_or(f64::NAN));
        p.epoch_syscalls_per_op
            .set(f.syscalls_per_op.unwrap_or(f64::NAN));
        for (check, pass) in f.verdict.checks() {
            match pass {
                Some(ok) => p.epoch_pass.with_label_values(&[check]).set(i64::from(ok)),
                None => {
                    // Absent already is fine: the check just has no series.
                    let _ = p.epoch_pass.remove_label_values(&[check]);
                }
            }
        }
    }

    /// A try to write the results file failed.
    pub fn results_write_failed(&self) {
        self.pushed.results_write_errors.inc();
    }

    /// Reads the scraped series' sources.
    fn refresh(&self) {
        let s = &self.scraped;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = (self.ops_source)() {
            s.ops
                .with_label_values(&["alloc"])
                .inc_by(now.allocs.saturating_sub(last.0.allocs));
            s.ops
                .with_label_values(&["free"])
                .inc_by(now.frees.saturating_sub(last.0.frees));
            last.0 = now;
        }
        let stats = hakmem::stats();
        for ((name, n), (_, before)) in stats.syscalls().into_iter().zip(last.1.syscalls()) {
            s.syscalls
                .with_label_values(&[name])
                .inc_by(n.saturating_sub(before));
        }
        s.released.inc_by(
            stats
                .superslabs_released
                .saturating_sub(last.1.superslabs_released),
        );
        s.mapped.set(clamp_i64(stats.mapped_bytes));
        s.superslabs.set(clamp_i64(stats.superslabs));
        last.1 = stats;
    }

    /// The Prometheus text exposition (format 0.0.4), scraped series read now.
    pub fn encode(&self) -> String {
        self.refresh();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of valid metrics");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::{self, Thresholds};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// The value of the first sample line starting with `series`.
    fn value_of<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
    }

    /// `name{labels` for a series of `def` (close it with `}`).
    fn series(def: &MetricDef, labels: &str) -> String {
        format!("{}{{{labels}", def.name)
    }

    /// `# HELP` and `# TYPE` per metric name.
    fn declared(text: &str) -> BTreeMap<String, (String, String)> {
        let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
        for line in text.lines() {
            let (field, rest) = if let Some(r) = line.strip_prefix("# HELP ") {
                (0, r)
            } else if let Some(r) = line.strip_prefix("# TYPE ") {
                (1, r)
            } else {
                continue;
            };
            let (name, value) = rest.split_once(' ').unwrap();
            let e = out.entry(name.to_string()).or_default();
            *(if field == 0 { &mut e.0 } else { &mut e.1 }) = value.to_string();
        }
        out
    }

    /// Label names of a sample line, `profile` left out.
    fn label_names(line: &str) -> BTreeSet<&str> {
        let Some((_, rest)) = line.split_once('{') else {
            return BTreeSet::new();
        };
        let inner = rest.split_once('}').unwrap().0;
        inner
            .split("\",")
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
            .filter(|k| *k != "profile")
            .collect()
    }

    fn steady_samples(n: u64) -> Vec<epoch::Sample> {
        (1..=n)
            .map(|k| epoch::Sample {
                t_secs: k as f64,
                ops: 100,
                ops_per_sec: 100.0,
                rss_bytes: 1000,
                rss_anon_bytes: Some(900),
                warmup: false,
            })
            .collect()
    }

    #[test]
    fn table_names_are_unique_and_rows_are_consistent() {
        let names: BTreeSet<_> = TABLE.iter().map(|d| d.name).collect();
        assert_eq!(names.len(), TABLE.len(), "a name appears twice");
        for d in TABLE {
            assert!(!d.help.is_empty(), "{}: no help", d.name);
            assert_eq!(
                d.name.ends_with("_total"),
                d.kind == Kind::Counter,
                "{}: counters and only counters end in _total",
                d.name
            );
            assert!(!d.labels.contains(&"profile"), "{}", d.name);
            assert!(!d.starts_nan || d.source == Source::Pushed, "{}", d.name);
        }
    }

    /// What /metrics declares is exactly the table: names, types, HELP texts
    /// and label names; every series carries `profile`.
    #[test]
    fn the_exposition_is_the_table() {
        let m = Metrics::new("ci", "hakmem", Box::new(|| Some(OpCounts::default())));
        m.host(&Machine::read(crate::config::Backend::Hakmem));
        m.thresholds(&Thresholds::default());
        m.epoch_started(1);
        m.epoch_completed(&epoch::figures(
            &steady_samples(3),
            Some(0),
            300,
            &Thresholds::default(),
        ));
        let text = m.encode();
        let declared = declared(&text);
        let table: BTreeMap<String, (String, String)> = TABLE
            .iter()
            .map(|d| {
                let decl = (d.help.to_string(), d.kind.as_str().to_string());
                (d.name.to_string(), decl)
            })
            .collect();
        assert_eq!(declared, table, "/metrics (left) against TABLE (right)");
        for d in TABLE {
            let lines: Vec<_> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter(|l| l.split(['{', ' ']).next() == Some(d.name))
                .collect();
            assert!(!lines.is_empty(), "{} has no series:\n{text}", d.name);
            for l in lines {
                assert!(l.contains("profile=\"ci\""), "unlabelled: {l}");
                let want: BTreeSet<&str> = d.labels.iter().copied().collect();
                assert_eq!(label_names(l), want, "{l}");
            }
        }
    }

    #[test]
    fn undefined_figures_read_nan_until_pushed() {
        let m = Metrics::new("p", "libc", Box::new(|| None));
        let text = m.encode();
        for d in TABLE.iter().filter(|d| d.starts_nan) {
            assert_eq!(value_of(&text, &series(d, "")), Some("NaN"), "{}", d.name);
        }
        m.current(Some(0.5), Some(0.25));
        let text = m.encode();
        let cv = &metric::current_cv;
        assert_eq!(value_of(&text, &series(cv, "")), Some("0.5"));
        m.epoch_started(2);
        let text = m.encode();
        assert_eq!(value_of(&text, &series(cv, "")), Some("NaN"));
        let index = series(&metric::epoch_index, "");
        assert_eq!(value_of(&text, &index), Some("2"));
    }

    #[test]
    fn pushed_values_and_scraped_counters() {
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
        let text = m.encode();
        let alloc = series(&metric::ops, "op=\"alloc\",profile=\"ci\"}");
        let free = series(&metric::ops, "op=\"free\",profile=\"ci\"}");
        assert_eq!(value_of(&text, &alloc), Some("100"));
        let index = series(&metric::epoch_index, "");
        assert_eq!(value_of(&text, &index), Some("3"));
        assert_eq!(value_of(&text, &series(&metric::rss, "")), Some("4096"));
        let tput = series(&metric::throughput, "");
        assert_eq!(value_of(&text, &tput), Some("1234.5"));
        let info = series(&metric::build_info, "allocator=\"hakmem\"");
        assert_eq!(value_of(&text, &info), Some("1"));
        let write_errors = series(&metric::results_write_errors, "");
        assert_eq!(value_of(&text, &write_errors), Some("0"));
        m.results_write_failed();
        m.results_write_failed();
        assert_eq!(value_of(&m.encode(), &write_errors), Some("2"));
        let features = format!("hakmem_features=\"{}\"", version::hakmem_features());
        let line = text.lines().find(|l| l.starts_with(&info)).unwrap();
        assert!(line.contains(&features), "{line}");
        m.load(&Load {
            t_secs: 1.0,
            load1: 2.5,
            others_cpu_busy: 0.125,
        });
        let text = m.encode();
        let load1 = series(&metric::host_load1, "");
        assert_eq!(value_of(&text, &load1), Some("2.5"));
        let others = series(&metric::host_others_cpu, "");
        assert_eq!(value_of(&text, &others), Some("0.125"));
        let host = Machine {
            host_name: "box-1".into(),
            physical_cores: None,
            ..Machine::default()
        };
        m.host(&host);
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with(metric::host_info.name))
            .unwrap();
        assert!(
            line.contains("host_name=\"box-1\"") && line.contains("physical_cores=\"unknown\""),
            "{line}"
        );
        for s in ["mmap", "munmap", "madvise", "mremap", "mprotect"] {
            let syscall = series(&metric::syscalls, &format!("syscall=\"{s}\""));
            assert!(text.contains(&syscall), "{syscall}");
        }

        // Counters follow their source across scrapes without double counting.
        n.store(250, Ordering::Relaxed);
        let text = m.encode();
        let text2 = m.encode();
        for t in [&text, &text2] {
            assert_eq!(value_of(t, &alloc), Some("250"));
            assert_eq!(value_of(t, &free), Some("125"));
        }
    }

    #[test]
    fn verdicts_become_pass_series_and_unknowns_nan() {
        let m = Metrics::new("p", "libc", Box::new(|| None));
        let pass = |check: &str| series(&metric::epoch_pass, &format!("check=\"{check}\""));
        let cv = series(&metric::epoch_cv, "");
        let text = m.encode();
        assert_eq!(value_of(&text, &cv), Some("NaN"));
        assert!(!text.contains(&series(&metric::epoch_pass, "")));

        let t = Thresholds::default();
        m.epoch_completed(&epoch::figures(&steady_samples(3), None, 300, &t));
        let text = m.encode();
        assert_eq!(value_of(&text, &pass("cv")), Some("1"));
        assert_eq!(value_of(&text, &pass("all")), Some("1"));
        assert!(
            !text.contains(&pass("syscalls_per_op")),
            "unjudged: no series"
        );
        assert_eq!(value_of(&text, &cv), Some("0"));
        let completed = series(&metric::epochs_completed, "");
        assert_eq!(value_of(&text, &completed), Some("1"));
        let trend = series(&metric::epoch_rss_trend, "");
        assert_eq!(value_of(&text, &trend), Some("0"));
    }

    #[test]
    fn thresholds_are_exported_per_check() {
        let m = Metrics::new("p", "hakmem", Box::new(|| None));
        let t = Thresholds {
            max_throughput_decline_per_hour: 0.07,
            ..Thresholds::default()
        };
        m.thresholds(&t);
        let text = m.encode();
        let at = |check: &str| {
            let s = series(&metric::threshold, &format!("check=\"{check}\""));
            value_of(&text, &s).map(str::to_string)
        };
        assert_eq!(at("throughput_trend").as_deref(), Some("0.07"));
        assert_eq!(at("cv").as_deref(), Some("0.05"));
        assert_eq!(at("syscalls_per_op").as_deref(), Some("0.0001"));
        assert_eq!(at("all"), None, "`all` has no threshold");
    }
}
