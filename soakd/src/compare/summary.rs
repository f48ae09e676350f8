//! The side-by-side view of a comparison: one row per allocator, from its
//! epochs, as aligned text (stdout), markdown and an HTML page with one plot
//! per figure across the allocators.

use std::fmt::Write as _;

use crate::epoch::{self, median};
use crate::plot::escape;
use crate::report::{self, opt, pct, sci, si, signed_pct, Run, PALETTE};
use crate::results::EpochRecord;

/// One allocator's figures over a comparison: medians over its complete
/// epochs (a median, so one disturbed epoch cannot decide the row).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub allocator: String,
    pub complete: usize,
    pub epochs: usize,
    /// Mean ops/s: the median of the epochs' means.
    pub throughput: Option<f64>,
    pub cv: Option<f64>,
    /// Median anonymous RSS of the samples after warm-up, bytes.
    pub rss: Option<f64>,
    pub rss_drift: Option<f64>,
    pub rss_trend: Option<f64>,
    pub throughput_trend: Option<f64>,
    /// `None` where the allocator's syscalls are not observable.
    pub syscalls_per_op: Option<f64>,
    pub passed: usize,
}

/// The row of one allocator's records.
pub fn row(allocator: &str, records: &[EpochRecord]) -> Row {
    let complete: Vec<&EpochRecord> = records.iter().filter(|r| r.complete).collect();
    let med = |f: fn(&EpochRecord) -> Option<f64>| {
        let xs: Vec<f64> = complete.iter().filter_map(|r| f(r)).collect();
        median(&xs)
    };
    let rss: Vec<f64> = complete
        .iter()
        .flat_map(|r| r.samples.iter().filter(|s| !s.warmup).map(epoch::rss))
        .collect();
    Row {
        allocator: allocator.to_string(),
        complete: complete.len(),
        epochs: records.len(),
        throughput: med(|r| r.figures.throughput.map(|t| t.mean)),
        cv: med(|r| r.figures.cv),
        rss: median(&rss),
        rss_drift: med(|r| r.figures.rss_drift),
        rss_trend: med(|r| r.figures.rss_trend),
        throughput_trend: med(|r| r.figures.throughput_trend),
        syscalls_per_op: med(|r| r.figures.syscalls_per_op),
        passed: complete
            .iter()
            .filter(|r| r.figures.verdict.all == Some(true))
            .count(),
    }
}

const HEADERS: [&str; 11] = [
    "allocator",
    "epochs",
    "mean ops/s",
    "vs first",
    "CV",
    "RSS MiB",
    "RSS drift",
    "RSS trend/h",
    "ops/s trend/h",
    "syscalls/op",
    "passed",
];

/// The rows' cells, throughput also relative to the first row's (hakmem's).
fn cells(rows: &[Row]) -> Vec<Vec<String>> {
    let base = rows.first().and_then(|r| r.throughput);
    rows.iter()
        .map(|r| {
            vec![
                r.allocator.clone(),
                format!("{}/{}", r.complete, r.epochs),
                opt(r.throughput, si),
                opt(base.zip(r.throughput).map(|(b, t)| t / b - 1.0), signed_pct),
                opt(r.cv, pct),
                opt(r.rss, |b| format!("{:.1}", b / (1u64 << 20) as f64)),
                opt(r.rss_drift, pct),
                opt(r.rss_trend, signed_pct),
                opt(r.throughput_trend, signed_pct),
                opt(r.syscalls_per_op, sci),
                format!("{}/{}", r.passed, r.complete),
            ]
        })
        .collect()
}

/// The aligned text table.
pub fn table(rows: &[Row]) -> String {
    report::aligned(&HEADERS, &cells(rows))
}

/// The same table in markdown, with a line on what it shows.
pub fn markdown(profile: &str, rows: &[Row]) -> String {
    let mut s = format!(
        "# soakd compare: profile `{profile}`\n\nMedians over each allocator's complete epochs \
         (epochs alternated between allocators); `vs first`: mean throughput against the first \
         row's; `-`: not known (syscalls are observable for hakmem only).\n\n| {} |\n|{}\n",
        HEADERS.join(" | "),
        " --- |".repeat(HEADERS.len())
    );
    for c in cells(rows) {
        let _ = writeln!(s, "| {} |", c.join(" | "));
    }
    s
}

/// The HTML page: the table, then one plot per figure across allocators.
pub fn html(profile: &str, runs: &[(String, Vec<EpochRecord>)]) -> String {
    let rows: Vec<Row> = runs.iter().map(|(a, r)| row(a, r)).collect();
    let mut s = report::page_head(&format!("soakd compare: {profile}"));
    s.push_str("<p>Each allocator ran the same profile in alternating epochs; figures are medians over its complete epochs.</p><table><tr>");
    for h in HEADERS {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr>");
    for c in cells(&rows) {
        s.push_str("<tr>");
        for v in c {
            let _ = write!(s, "<td>{}</td>", escape(&v));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    let plotted: Vec<Run> = runs
        .iter()
        .zip(PALETTE.iter().cycle())
        .map(|((name, records), colour)| Run {
            name,
            colour,
            records,
        })
        .collect();
    s.push_str(&report::plots(&plotted));
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::record;

    #[test]
    fn rows_are_medians_of_complete_epochs() {
        let mut slow = record(2, true);
        slow.figures.cv = Some(0.5);
        slow.figures.throughput.as_mut().unwrap().mean = 1.0;
        let mut partial = record(3, false);
        partial.figures.cv = Some(9.0);
        let recs = [record(1, true), slow, record(4, true), partial];
        let r = row("x", &recs);
        assert_eq!((r.complete, r.epochs), (3, 4));
        let one = record(1, true).figures;
        assert_eq!(
            r.cv, one.cv,
            "the median ignores the one outlier and the partial epoch"
        );
        assert_eq!(r.throughput, one.throughput.map(|t| t.mean));
        assert_eq!(r.rss, Some(9_000_000.0), "anonymous RSS after warm-up");
        assert_eq!(r.passed, 3);
        let none = row("y", &[]);
        assert_eq!((none.throughput, none.syscalls_per_op), (None, None));
    }

    #[test]
    fn table_and_markdown_side_by_side() {
        let mut other = record(1, true);
        other.figures.throughput.as_mut().unwrap().mean *= 1.1;
        other.figures.syscalls_per_op = None;
        let rows = [row("hakmem", &[record(1, true)]), row("glibc", &[other])];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].contains("vs first") && lines[0].contains("RSS MiB"));
        assert!(
            lines[1].contains("hakmem") && lines[1].contains("+0.00%"),
            "{t}"
        );
        assert!(
            lines[2].contains("glibc") && lines[2].contains("+10.00%"),
            "{t}"
        );
        let md = markdown("p", &rows);
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            4,
            "{md}"
        );
        assert!(md.contains("| --- |"));
        let page = html(
            "p",
            &[
                ("hakmem".into(), vec![record(1, true)]),
                ("glibc".into(), vec![record(1, true)]),
            ],
        );
        // Throughput, the two load plots (the records carry load), RSS.
        assert_eq!(page.matches("<svg class=\"plot\"").count(), 4);
        // Both allocators on each plot, in their own colours; no thresholds.
        assert!(page.contains("hakmem samples") && page.contains("glibc samples"));
        assert!(!page.contains("class=\"threshold\""));
    }
}
