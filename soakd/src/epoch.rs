//! Epoch maths: pure functions from samples to SPEC 5's figures and verdicts.
//!
//! Definitions (SPEC 5):
//! - throughput summary (mean, median, min, p99) over every sample of the epoch;
//! - CV = population standard deviation / mean of the samples after warm-up;
//! - RSS drift = (last RSS - first RSS after warm-up) / first RSS after warm-up;
//! - syscalls per op = allocator syscalls in the epoch / operations in the epoch;
//! - a verdict per threshold, and `all`, the conjunction of the judged checks.
//!
//! A figure that cannot be computed (no sample after warm-up, no operation) is
//! `None`, and its check is not judged rather than passed or failed on noise.

use serde::{Deserialize, Serialize};

/// One throughput sample, with the RSS read beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds from the epoch's start to the end of this sample's interval.
    pub t_secs: f64,
    /// Operations in the interval.
    pub ops: u64,
    /// ops / interval length.
    pub ops_per_sec: f64,
    /// Resident set size at the end of the interval.
    pub rss_bytes: u64,
    /// Whether the sample falls in the warm-up.
    pub warmup: bool,
}

/// Summary statistics of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub p99: f64,
}

/// The limits an epoch is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub max_cv: f64,
    pub max_rss_drift: f64,
    pub max_syscalls_per_op: f64,
}

impl Default for Thresholds {
    /// SPEC 5's defaults.
    fn default() -> Self {
        Thresholds {
            max_cv: 0.05,
            max_rss_drift: 0.01,
            max_syscalls_per_op: 1e-4,
        }
    }
}

/// Pass (`Some(true)`), fail (`Some(false)`) or not judged (`None`) per check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub cv: Option<bool>,
    pub rss_drift: Option<bool>,
    pub syscalls_per_op: Option<bool>,
    /// Every judged check passed (and at least one was judged).
    pub all: Option<bool>,
}

impl Verdict {
    /// The checks by their metric label (`check="..."`), `all` last.
    pub fn checks(&self) -> [(&'static str, Option<bool>); 4] {
        [
            ("cv", self.cv),
            ("rss_drift", self.rss_drift),
            ("syscalls_per_op", self.syscalls_per_op),
            ("all", self.all),
        ]
    }

    /// A short word for tables and logs.
    pub fn word(&self) -> &'static str {
        match self.all {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        }
    }
}

/// An epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Over all samples; `None` without samples.
    pub throughput: Option<Summary>,
    pub cv: Option<f64>,
    pub rss_drift: Option<f64>,
    pub syscalls_per_op: Option<f64>,
    pub verdict: Verdict,
}

pub fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// The middle value, or the mean of the two middle values for an even count.
pub fn median(xs: &[f64]) -> Option<f64> {
    let s = sorted(xs)?;
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

pub fn min(xs: &[f64]) -> Option<f64> {
    xs.iter().copied().reduce(f64::min)
}

/// Nearest-rank percentile: the smallest sample with at least `p`% of the
/// samples at or below it (no interpolation, so it is always a real sample).
pub fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    let s = sorted(xs)?;
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

fn sorted(xs: &[f64]) -> Option<Vec<f64>> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s)
}

pub fn summary(xs: &[f64]) -> Option<Summary> {
    Some(Summary {
        mean: mean(xs)?,
        median: median(xs)?,
        min: min(xs)?,
        p99: percentile(xs, 99.0)?,
    })
}

/// Population standard deviation / mean; `None` without samples or with a zero mean.
pub fn cv(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    if m == 0.0 {
        return None;
    }
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
    Some(var.sqrt() / m)
}

/// (last - first) / first; `None` without samples or from a zero first value.
pub fn drift(first: u64, last: u64) -> Option<f64> {
    (first != 0).then(|| (last as f64 - first as f64) / first as f64)
}

/// Syscalls per operation; `None` when no operation ran.
pub fn per_op(syscalls: u64, ops: u64) -> Option<f64> {
    (ops != 0).then(|| syscalls as f64 / ops as f64)
}

/// Whether a sample ending `t_secs` into the epoch is warm-up.
pub fn is_warmup(t_secs: f64, warmup_secs: f64) -> bool {
    t_secs <= warmup_secs
}

/// CV of the post-warm-up throughput samples.
pub fn steady_cv(samples: &[Sample]) -> Option<f64> {
    let xs: Vec<f64> = steady(samples).map(|s| s.ops_per_sec).collect();
    cv(&xs)
}

/// RSS drift from the first post-warm-up sample to the last sample.
pub fn steady_rss_drift(samples: &[Sample]) -> Option<f64> {
    let first = steady(samples).next()?;
    drift(first.rss_bytes, samples.last()?.rss_bytes)
}

fn steady(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(|s| !s.warmup)
}

/// Judges each figure against its threshold (at most the threshold passes).
pub fn verdict(
    t: &Thresholds,
    cv: Option<f64>,
    rss_drift: Option<f64>,
    syscalls_per_op: Option<f64>,
) -> Verdict {
    let cv = cv.map(|v| v <= t.max_cv);
    let rss_drift = rss_drift.map(|v| v <= t.max_rss_drift);
    let syscalls_per_op = syscalls_per_op.map(|v| v <= t.max_syscalls_per_op);
    let judged: Vec<bool> = [cv, rss_drift, syscalls_per_op]
        .into_iter()
        .flatten()
        .collect();
    let all = (!judged.is_empty()).then(|| judged.iter().all(|&p| p));
    Verdict {
        cv,
        rss_drift,
        syscalls_per_op,
        all,
    }
}

/// Every figure of an epoch from its samples, its allocator syscalls and its
/// operations (`syscalls` is `None` when the allocator's are not observable).
pub fn figures(samples: &[Sample], syscalls: Option<u64>, ops: u64, t: &Thresholds) -> Figures {
    let all: Vec<f64> = samples.iter().map(|s| s.ops_per_sec).collect();
    let cv = steady_cv(samples);
    let rss_drift = steady_rss_drift(samples);
    let syscalls_per_op = syscalls.and_then(|n| per_op(n, ops));
    Figures {
        throughput: summary(&all),
        cv,
        rss_drift,
        syscalls_per_op,
        verdict: verdict(t, cv, rss_drift, syscalls_per_op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12 * b.abs().max(1.0)
    }

    fn sample(t: f64, ops_per_sec: f64, rss: u64, warmup: bool) -> Sample {
        Sample {
            t_secs: t,
            ops: ops_per_sec as u64,
            ops_per_sec,
            rss_bytes: rss,
            warmup,
        }
    }

    #[test]
    fn summary_by_hand() {
        let xs = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(mean(&xs), Some(2.5));
        assert_eq!(median(&xs), Some(2.5));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(min(&xs), Some(1.0));
        // Nearest rank: ceil(0.99 * 4) = 4th smallest.
        assert_eq!(percentile(&xs, 99.0), Some(4.0));
        // 200 samples 1..=200: ceil(0.99 * 200) = 198th smallest = 198.
        let hundreds: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&hundreds, 99.0), Some(198.0));
        assert_eq!(percentile(&hundreds, 50.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(summary(&[]), None);
        assert_eq!(
            summary(&[10.0]),
            Some(Summary {
                mean: 10.0,
                median: 10.0,
                min: 10.0,
                p99: 10.0
            })
        );
    }

    #[test]
    fn cv_is_population_stddev_over_mean() {
        // Mean 5, squared deviations 9+1+1+9 = 20, /4 = 5, sqrt 5 / 5.
        let c = cv(&[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert!(close(c, 5f64.sqrt() / 5.0), "{c}");
        // The classic population example: mean 5, sigma 2.
        let c = cv(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert!(close(c, 0.4), "{c}");
        assert_eq!(cv(&[3.0, 3.0, 3.0]), Some(0.0));
        assert_eq!(cv(&[42.0]), Some(0.0));
        assert_eq!(cv(&[]), None);
        assert_eq!(cv(&[0.0, 0.0]), None);
    }

    #[test]
    fn drift_and_per_op_by_hand() {
        assert_eq!(drift(1000, 1010), Some(0.01));
        assert_eq!(drift(1000, 900), Some(-0.1));
        assert_eq!(drift(0, 5), None);
        assert_eq!(per_op(3, 30_000), Some(1e-4));
        assert_eq!(per_op(0, 10), Some(0.0));
        assert_eq!(per_op(5, 0), None);
    }

    #[test]
    fn warmup_is_left_out_of_cv_and_drift_but_not_the_summary() {
        // 2 s samples, 4 s warm-up: samples at t=2 and t=4 are warm-up.
        assert!(is_warmup(2.0, 4.0) && is_warmup(4.0, 4.0) && !is_warmup(6.0, 4.0));
        let s = vec![
            sample(2.0, 10.0, 100, true),
            sample(4.0, 50.0, 200, true),
            sample(6.0, 90.0, 1000, false),
            sample(8.0, 110.0, 1005, false),
            sample(10.0, 100.0, 1020, false),
        ];
        // Steady samples 90, 110, 100: mean 100, deviations 100+100+0 = 200/3.
        let c = steady_cv(&s).unwrap();
        assert!(close(c, (200f64 / 3.0).sqrt() / 100.0), "{c}");
        // RSS from 1000 (first after warm-up) to 1020 (last).
        assert!(close(steady_rss_drift(&s).unwrap(), 0.02));
        let f = figures(&s, Some(12), 360, &Thresholds::default());
        let t = f.throughput.unwrap();
        assert!(close(t.mean, 72.0)); // (10+50+90+110+100)/5
        assert_eq!((t.median, t.min, t.p99), (90.0, 10.0, 110.0));
        assert!(close(f.syscalls_per_op.unwrap(), 12.0 / 360.0));
        // CV 0.0816 > 0.05, drift 0.02 > 0.01, 0.033 > 1e-4: all fail.
        assert_eq!(
            f.verdict,
            Verdict {
                cv: Some(false),
                rss_drift: Some(false),
                syscalls_per_op: Some(false),
                all: Some(false)
            }
        );
    }

    #[test]
    fn only_warmup_samples_judge_nothing_from_them() {
        let s = vec![sample(2.0, 10.0, 100, true)];
        let f = figures(&s, None, 20, &Thresholds::default());
        assert_eq!((f.cv, f.rss_drift, f.syscalls_per_op), (None, None, None));
        assert_eq!(f.verdict, Verdict::default());
        assert_eq!(f.verdict.word(), "n/a");
        assert_eq!(f.throughput.unwrap().mean, 10.0);
        assert_eq!(
            figures(&[], Some(0), 0, &Thresholds::default()).throughput,
            None
        );
    }

    #[test]
    fn verdict_per_threshold_with_equality_passing() {
        let t = Thresholds {
            max_cv: 0.05,
            max_rss_drift: 0.01,
            max_syscalls_per_op: 1e-4,
        };
        let v = verdict(&t, Some(0.05), Some(0.01), Some(1e-4));
        assert_eq!(v.all, Some(true));
        assert_eq!(v.word(), "PASS");
        let v = verdict(&t, Some(0.01), Some(0.5), None);
        assert_eq!(
            v,
            Verdict {
                cv: Some(true),
                rss_drift: Some(false),
                syscalls_per_op: None,
                all: Some(false)
            }
        );
        // Shrinking RSS is not drift upwards.
        assert_eq!(verdict(&t, None, Some(-0.3), None).all, Some(true));
        assert_eq!(v.checks()[3], ("all", Some(false)));
    }
}
