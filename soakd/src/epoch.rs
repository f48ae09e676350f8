//! Epoch maths: pure functions from samples to SPEC 5's figures and verdicts.
//!
//! Definitions (SPEC 5), over the n samples after warm-up unless said:
//! - throughput summary (mean, median, min, p99) over every sample of the epoch;
//! - CV = population standard deviation / mean;
//! - RSS is the anonymous resident memory (`RssAnon`), total RSS kept beside it;
//! - RSS drift = (median of the last w samples - median of the first w) /
//!   median of the first w, with w = max(3, ceil(n / 10)) (at most n), so one
//!   noisy sample cannot decide it;
//! - trends = Theil-Sen slope (the median of the pairwise slopes, robust to
//!   outliers) x 3600 s / the series' median: relative change per hour;
//! - syscalls per op = allocator syscalls in the epoch / operations in the epoch;
//! - a verdict per threshold, and `all`, the conjunction of the judged checks.
//!
//! A figure that cannot be computed (no sample after warm-up, no operation) is
//! `None`, and its check is not judged rather than passed or failed on noise.
//! Records written before a figure existed read it back as `None` too.

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
    /// Total resident set size at the end of the interval.
    pub rss_bytes: u64,
    /// Anonymous resident memory (`RssAnon`) beside it; absent from records
    /// written before it was sampled.
    #[serde(default)]
    pub rss_anon_bytes: Option<u64>,
    /// Whether the sample falls in the warm-up.
    pub warmup: bool,
}

impl Sample {
    /// The RSS the figures use: `RssAnon`, or the total where a record
    /// predates it.
    pub fn rss(&self) -> u64 {
        self.rss_anon_bytes.unwrap_or(self.rss_bytes)
    }
}

/// Summary statistics of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub p99: f64,
}

fn default_max_rss_growth_per_hour() -> f64 {
    0.01
}

fn default_max_throughput_decline_per_hour() -> f64 {
    0.02
}

/// The limits an epoch is judged against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub max_cv: f64,
    pub max_rss_drift: f64,
    /// Older records lack the trend limits; they read SPEC's defaults.
    #[serde(default = "default_max_rss_growth_per_hour")]
    pub max_rss_growth_per_hour: f64,
    #[serde(default = "default_max_throughput_decline_per_hour")]
    pub max_throughput_decline_per_hour: f64,
    pub max_syscalls_per_op: f64,
}

impl Default for Thresholds {
    /// SPEC 5's defaults.
    fn default() -> Self {
        Thresholds {
            max_cv: 0.05,
            max_rss_drift: 0.01,
            max_rss_growth_per_hour: default_max_rss_growth_per_hour(),
            max_throughput_decline_per_hour: default_max_throughput_decline_per_hour(),
            max_syscalls_per_op: 1e-4,
        }
    }
}

impl Thresholds {
    /// Each limit by the check it judges (`check="..."`), in `Verdict::checks` order.
    pub fn by_check(&self) -> [(&'static str, f64); 5] {
        [
            ("cv", self.max_cv),
            ("rss_drift", self.max_rss_drift),
            ("rss_trend", self.max_rss_growth_per_hour),
            ("throughput_trend", self.max_throughput_decline_per_hour),
            ("syscalls_per_op", self.max_syscalls_per_op),
        ]
    }
}

/// Pass (`Some(true)`), fail (`Some(false)`) or not judged (`None`) per check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub cv: Option<bool>,
    pub rss_drift: Option<bool>,
    #[serde(default)]
    pub rss_trend: Option<bool>,
    #[serde(default)]
    pub throughput_trend: Option<bool>,
    pub syscalls_per_op: Option<bool>,
    /// Every judged check passed (and at least one was judged).
    pub all: Option<bool>,
}

impl Verdict {
    /// The checks by their metric label (`check="..."`), `all` last.
    pub fn checks(&self) -> [(&'static str, Option<bool>); 6] {
        [
            ("cv", self.cv),
            ("rss_drift", self.rss_drift),
            ("rss_trend", self.rss_trend),
            ("throughput_trend", self.throughput_trend),
            ("syscalls_per_op", self.syscalls_per_op),
            ("all", self.all),
        ]
    }

    /// The names of the failed checks, `all` left out.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks()[..5]
            .iter()
            .filter(|(_, p)| *p == Some(false))
            .map(|(name, _)| *name)
            .collect()
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
    /// Relative change per hour; `None` in records that predate it.
    #[serde(default)]
    pub throughput_trend: Option<f64>,
    #[serde(default)]
    pub rss_trend: Option<f64>,
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

/// The drift window for n samples: max(3, ceil(n / 10)), at most n.
pub fn window(n: usize) -> usize {
    n.div_ceil(10).max(3).min(n)
}

/// (median of the last w values - median of the first w) / median of the
/// first w; `None` without values or from a zero first median.
pub fn windowed_drift(xs: &[f64]) -> Option<f64> {
    let w = window(xs.len());
    let first = median(&xs[..w])?;
    let last = median(&xs[xs.len() - w..])?;
    (first != 0.0).then(|| (last - first) / first)
}

/// Above this many points the Theil-Sen slope is taken over this many evenly
/// spaced ones, so its O(n^2) pairs stay near 2 million (a 30-day epoch of
/// 10-second samples would otherwise have 3e10).
const MAX_TREND_POINTS: usize = 2048;

/// The Theil-Sen slope: the median of the slopes between every pair of
/// points with distinct times; `None` with fewer than two such points.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let stride = points.len().div_ceil(MAX_TREND_POINTS).max(1);
    let p: Vec<(f64, f64)> = points.iter().step_by(stride).copied().collect();
    let mut slopes = Vec::with_capacity(p.len() * p.len().saturating_sub(1) / 2);
    for (i, &(t0, y0)) in p.iter().enumerate() {
        for &(t1, y1) in &p[i + 1..] {
            if t1 != t0 {
                slopes.push((y1 - y0) / (t1 - t0));
            }
        }
    }
    median(&slopes)
}

/// The Theil-Sen line (slope, intercept): the intercept is the median of
/// y - slope * t, so the line runs through the bulk of the points.
pub fn theil_sen_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let slope = theil_sen(points)?;
    let rest: Vec<f64> = points.iter().map(|&(t, y)| y - slope * t).collect();
    Some((slope, median(&rest)?))
}

/// Theil-Sen slope per second x 3600 / the median value: relative change
/// per hour; `None` without a slope or with a zero median.
pub fn trend_per_hour(points: &[(f64, f64)]) -> Option<f64> {
    let slope = theil_sen(points)?;
    let ys: Vec<f64> = points.iter().map(|&(_, y)| y).collect();
    let m = median(&ys)?;
    (m != 0.0).then(|| slope * 3600.0 / m)
}

/// Syscalls per operation; `None` when no operation ran.
pub fn per_op(syscalls: u64, ops: u64) -> Option<f64> {
    (ops != 0).then(|| syscalls as f64 / ops as f64)
}

/// Whether a sample ending `t_secs` into the epoch is warm-up.
pub fn is_warmup(t_secs: f64, warmup_secs: f64) -> bool {
    t_secs <= warmup_secs
}

fn steady(samples: &[Sample]) -> impl Iterator<Item = &Sample> {
    samples.iter().filter(|s| !s.warmup)
}

/// (t_secs, value) of the samples after warm-up.
pub fn steady_points(samples: &[Sample], value: fn(&Sample) -> f64) -> Vec<(f64, f64)> {
    steady(samples).map(|s| (s.t_secs, value(s))).collect()
}

/// A sample's throughput, for `steady_points`.
pub fn throughput(s: &Sample) -> f64 {
    s.ops_per_sec
}

/// A sample's RSS (anonymous where known), for `steady_points`.
pub fn rss(s: &Sample) -> f64 {
    s.rss() as f64
}

/// CV of the post-warm-up throughput samples.
pub fn steady_cv(samples: &[Sample]) -> Option<f64> {
    let xs: Vec<f64> = steady(samples).map(throughput).collect();
    cv(&xs)
}

/// Windowed drift of the post-warm-up RSS.
pub fn steady_rss_drift(samples: &[Sample]) -> Option<f64> {
    let xs: Vec<f64> = steady(samples).map(rss).collect();
    windowed_drift(&xs)
}

/// Per-hour trend of the post-warm-up RSS.
pub fn steady_rss_trend(samples: &[Sample]) -> Option<f64> {
    trend_per_hour(&steady_points(samples, rss))
}

/// Per-hour trend of the post-warm-up throughput.
pub fn steady_throughput_trend(samples: &[Sample]) -> Option<f64> {
    trend_per_hour(&steady_points(samples, throughput))
}

/// Judges each figure against its threshold: at most the limit passes, and
/// a throughput trend passes down to minus its limit (speeding up is fine).
pub fn verdict(t: &Thresholds, f: &Figures) -> Verdict {
    let cv = f.cv.map(|v| v <= t.max_cv);
    let rss_drift = f.rss_drift.map(|v| v <= t.max_rss_drift);
    let rss_trend = f.rss_trend.map(|v| v <= t.max_rss_growth_per_hour);
    let throughput_trend = f
        .throughput_trend
        .map(|v| v >= -t.max_throughput_decline_per_hour);
    let syscalls_per_op = f.syscalls_per_op.map(|v| v <= t.max_syscalls_per_op);
    let judged: Vec<bool> = [cv, rss_drift, rss_trend, throughput_trend, syscalls_per_op]
        .into_iter()
        .flatten()
        .collect();
    let all = (!judged.is_empty()).then(|| judged.iter().all(|&p| p));
    Verdict {
        cv,
        rss_drift,
        rss_trend,
        throughput_trend,
        syscalls_per_op,
        all,
    }
}

/// Every figure of an epoch from its samples, its allocator syscalls and its
/// operations (`syscalls` is `None` when the allocator's are not observable).
pub fn figures(samples: &[Sample], syscalls: Option<u64>, ops: u64, t: &Thresholds) -> Figures {
    let all: Vec<f64> = samples.iter().map(throughput).collect();
    let mut f = Figures {
        throughput: summary(&all),
        cv: steady_cv(samples),
        rss_drift: steady_rss_drift(samples),
        throughput_trend: steady_throughput_trend(samples),
        rss_trend: steady_rss_trend(samples),
        syscalls_per_op: syscalls.and_then(|n| per_op(n, ops)),
        verdict: Verdict::default(),
    };
    f.verdict = verdict(t, &f);
    f
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
            rss_bytes: rss + 5000,
            rss_anon_bytes: Some(rss),
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
    fn window_is_a_tenth_but_at_least_three() {
        assert_eq!(window(0), 0);
        assert_eq!(window(2), 2, "never more than the samples");
        assert_eq!(window(10), 3);
        assert_eq!(window(31), 4, "ceil(3.1)");
        assert_eq!(window(354), 36);
    }

    #[test]
    fn drift_compares_window_medians() {
        // 10 samples, w = 3: first window 100, 104, 96 (median 100), last
        // window 110, 150, 108 (median 110): +10%, the 150 spike ignored.
        let xs = [
            100.0, 104.0, 96.0, 90.0, 130.0, 100.0, 100.0, 110.0, 150.0, 108.0,
        ];
        assert!(close(windowed_drift(&xs).unwrap(), 0.1));
        // One spike at either end no longer decides it.
        let mut flat = [1000.0; 30];
        flat[0] = 900.0;
        flat[29] = 1200.0;
        assert_eq!(windowed_drift(&flat), Some(0.0));
        assert_eq!(windowed_drift(&[]), None);
        assert_eq!(windowed_drift(&[0.0, 0.0, 5.0]), None);
        assert_eq!(windowed_drift(&[7.0]), Some(0.0));
    }

    #[test]
    fn theil_sen_is_the_median_pairwise_slope() {
        // Slopes: (0,1)->(1,3) 2, (0,1)->(2,4) 1.5, (1,3)->(2,4) 1: median 1.5.
        assert_eq!(theil_sen(&[(0.0, 1.0), (1.0, 3.0), (2.0, 4.0)]), Some(1.5));
        // An outlier cannot swing it: a line of slope 2 with one wild point.
        let mut line: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect();
        line[10].1 = 1e9;
        assert_eq!(theil_sen(&line), Some(2.0));
        // Equal times give no slope.
        assert_eq!(theil_sen(&[(1.0, 1.0), (1.0, 5.0)]), None);
        assert_eq!(theil_sen(&[(1.0, 1.0)]), None);
        // Thinned above MAX_TREND_POINTS, still exact on a line.
        let long: Vec<(f64, f64)> = (0..5000)
            .map(|i| (i as f64, 3.0 * i as f64 + 7.0))
            .collect();
        assert_eq!(theil_sen(&long), Some(3.0));
        // The line through 2t + 1 with one outlier: intercept 1.
        let mut p: Vec<(f64, f64)> = (0..9).map(|i| (i as f64, 2.0 * i as f64 + 1.0)).collect();
        p[4].1 = -50.0;
        assert_eq!(theil_sen_line(&p), Some((2.0, 1.0)));
        assert_eq!(theil_sen_line(&[]), None);
    }

    #[test]
    fn trend_is_slope_per_hour_over_median() {
        // +1 per second around a median of 3600: 3600 per hour / 3600 = 1.0.
        let p: Vec<(f64, f64)> = (0..5).map(|i| (i as f64, 3598.0 + i as f64)).collect();
        assert!(close(trend_per_hour(&p).unwrap(), 1.0));
        // Falling 36 per 10 s around 36000: -12960/36000 = -0.36 per hour.
        let p: Vec<(f64, f64)> = (0..3)
            .map(|i| (10.0 * i as f64, 36036.0 - 36.0 * i as f64))
            .collect();
        assert!(close(trend_per_hour(&p).unwrap(), -0.36));
        assert_eq!(trend_per_hour(&[(0.0, 0.0), (1.0, 0.0)]), None);
    }

    #[test]
    fn per_op_by_hand() {
        assert_eq!(per_op(3, 30_000), Some(1e-4));
        assert_eq!(per_op(0, 10), Some(0.0));
        assert_eq!(per_op(5, 0), None);
    }

    #[test]
    fn warmup_is_left_out_of_every_figure_but_the_summary() {
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
        // Three steady samples: w = 3, both windows are all of them.
        assert_eq!(steady_rss_drift(&s), Some(0.0));
        let f = figures(&s, Some(12), 360, &Thresholds::default());
        let t = f.throughput.unwrap();
        assert!(close(t.mean, 72.0)); // (10+50+90+110+100)/5
        assert_eq!((t.median, t.min, t.p99), (90.0, 10.0, 110.0));
        assert!(close(f.syscalls_per_op.unwrap(), 12.0 / 360.0));
        // RSS slopes (anon, not total): 2.5, 5, 7.5 per s: median 5 -> 18000 / 1005 per hour.
        assert!(close(f.rss_trend.unwrap(), 18000.0 / 1005.0));
        // Throughput slopes 10, 2.5, -5: median 2.5 -> 9000 / 100.
        assert!(close(f.throughput_trend.unwrap(), 90.0));
        assert_eq!(
            f.verdict,
            Verdict {
                cv: Some(false),
                rss_drift: Some(true),
                rss_trend: Some(false),
                throughput_trend: Some(true),
                syscalls_per_op: Some(false),
                all: Some(false)
            }
        );
        assert_eq!(f.verdict.failed(), ["cv", "rss_trend", "syscalls_per_op"]);
    }

    #[test]
    fn only_warmup_samples_judge_nothing_from_them() {
        let s = vec![sample(2.0, 10.0, 100, true)];
        let f = figures(&s, None, 20, &Thresholds::default());
        assert_eq!((f.cv, f.rss_drift, f.syscalls_per_op), (None, None, None));
        assert_eq!((f.rss_trend, f.throughput_trend), (None, None));
        assert_eq!(f.verdict, Verdict::default());
        assert_eq!(f.verdict.word(), "n/a");
        assert_eq!(f.throughput.unwrap().mean, 10.0);
        assert_eq!(
            figures(&[], Some(0), 0, &Thresholds::default()).throughput,
            None
        );
    }

    fn judged(cv: f64, drift: f64, rss_trend: f64, tput_trend: f64, sys: Option<f64>) -> Verdict {
        let f = Figures {
            throughput: None,
            cv: Some(cv),
            rss_drift: Some(drift),
            throughput_trend: Some(tput_trend),
            rss_trend: Some(rss_trend),
            syscalls_per_op: sys,
            verdict: Verdict::default(),
        };
        verdict(&Thresholds::default(), &f)
    }

    #[test]
    fn verdict_per_threshold_with_equality_passing() {
        let v = judged(0.05, 0.01, 0.01, -0.02, Some(1e-4));
        assert_eq!(v.all, Some(true));
        assert_eq!(v.word(), "PASS");
        let v = judged(0.01, 0.5, 0.0, 0.0, None);
        assert_eq!(
            (v.rss_drift, v.syscalls_per_op, v.all),
            (Some(false), None, Some(false))
        );
        // Shrinking RSS and rising throughput are fine; slowing down is not.
        assert_eq!(judged(0.0, -0.3, -0.5, 0.4, None).all, Some(true));
        let v = judged(0.0, 0.0, 0.0, -0.021, None);
        assert_eq!((v.throughput_trend, v.all), (Some(false), Some(false)));
        assert_eq!(v.checks()[5], ("all", Some(false)));
        assert_eq!(v.failed(), ["throughput_trend"]);
    }

    #[test]
    fn thresholds_by_check_follow_the_verdict_order() {
        let t = Thresholds::default();
        let names: Vec<_> = t.by_check().iter().map(|(c, _)| *c).collect();
        let checks: Vec<_> = Verdict::default().checks()[..5]
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(names, checks);
        assert_eq!(t.by_check()[3], ("throughput_trend", 0.02));
    }

    /// A record written before the trends existed: its missing figures and
    /// verdicts read back as not known, its thresholds as SPEC's.
    #[test]
    fn older_figures_read_back_as_missing() {
        let old = r#"{"throughput":null,"cv":0.1,"rss_drift":0.2,"syscalls_per_op":null,
            "verdict":{"cv":false,"rss_drift":false,"syscalls_per_op":null,"all":false}}"#;
        let f: Figures = serde_json::from_str(old).unwrap();
        assert_eq!((f.rss_trend, f.throughput_trend), (None, None));
        assert_eq!((f.verdict.rss_trend, f.verdict.cv), (None, Some(false)));
        let t: Thresholds =
            serde_json::from_str(r#"{"max_cv":0.1,"max_rss_drift":0.2,"max_syscalls_per_op":1}"#)
                .unwrap();
        assert_eq!(t.max_rss_growth_per_hour, 0.01);
        let s: Sample = serde_json::from_str(
            r#"{"t_secs":1,"ops":5,"ops_per_sec":5,"rss_bytes":4096,"warmup":false}"#,
        )
        .unwrap();
        assert_eq!((s.rss_anon_bytes, s.rss()), (None, 4096));
    }
}
