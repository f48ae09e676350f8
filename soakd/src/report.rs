//! `soakd report`: a table of epochs, and optionally one self-contained HTML
//! page with inline SVG plots (nothing fetched from the network, so it can be
//! attached to a ticket or opened offline).

use std::fmt::Write as _;
use std::path::Path;

use crate::epoch::Verdict;
use crate::error::Error;
use crate::results::{self, EpochRecord};

/// Prints the table of `file`'s epochs and writes the HTML page if asked.
pub fn run(file: &Path, html_out: Option<&Path>) -> Result<String, Error> {
    let existing = results::read(file)?;
    let mut out = table(&existing.records);
    for (line, err) in &existing.bad_lines {
        let _ = writeln!(out, "warning: line {line} skipped: {err}");
    }
    if let Some(path) = html_out {
        std::fs::write(path, html(&file.display().to_string(), &existing.records)).map_err(
            |source| Error::Write {
                path: path.to_path_buf(),
                source,
            },
        )?;
        let _ = writeln!(out, "wrote {}", path.display());
    }
    Ok(out)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// Throughput with an SI suffix: 12.35M.
fn si(v: f64) -> String {
    match v.abs() {
        x if x >= 1e9 => format!("{:.2}G", v / 1e9),
        x if x >= 1e6 => format!("{:.2}M", v / 1e6),
        x if x >= 1e3 => format!("{:.2}k", v / 1e3),
        _ => format!("{v:.1}"),
    }
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// The verdict with its failing checks: `FAIL (cv, rss_drift)`.
fn verdict_text(v: &Verdict) -> String {
    let failed = v.failed();
    if failed.is_empty() {
        v.word().to_string()
    } else {
        format!("{} ({})", v.word(), failed.join(", "))
    }
}

struct Row {
    cells: [String; 11],
}

const HEADERS: [&str; 11] = [
    "epoch",
    "complete",
    "samples",
    "mean ops/s",
    "median",
    "min",
    "p99",
    "CV",
    "RSS drift",
    "syscalls/op",
    "verdict",
];

fn rows(records: &[EpochRecord]) -> Vec<Row> {
    records
        .iter()
        .map(|r| {
            let f = &r.figures;
            let t = f.throughput;
            Row {
                cells: [
                    r.epoch.to_string(),
                    if r.complete { "yes" } else { "no" }.to_string(),
                    r.samples.len().to_string(),
                    opt(t.map(|t| t.mean), si),
                    opt(t.map(|t| t.median), si),
                    opt(t.map(|t| t.min), si),
                    opt(t.map(|t| t.p99), si),
                    opt(f.cv, pct),
                    opt(f.rss_drift, pct),
                    opt(f.syscalls_per_op, sci),
                    verdict_text(&f.verdict),
                ],
            }
        })
        .collect()
}

/// A plain-text table, columns aligned.
pub fn table(records: &[EpochRecord]) -> String {
    if records.is_empty() {
        return "no epochs recorded\n".to_string();
    }
    let rows = rows(records);
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.cells[i].len())
                .chain([HEADERS[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &HEADERS);
    for r in &rows {
        line(&mut out, &r.cells.each_ref().map(String::as_str));
    }
    let passed = records
        .iter()
        .filter(|r| r.figures.verdict.all == Some(true))
        .count();
    let _ = writeln!(
        out,
        "{passed} of {} epochs passed every check",
        records.len()
    );
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn verdict_colour(r: &EpochRecord) -> &'static str {
    match (r.complete, r.figures.verdict.all) {
        (_, Some(false)) => "#f4c7c3",
        (true, Some(true)) => "#c9ebd0",
        _ => "#e4e4e4",
    }
}

/// One line chart: a polyline per epoch over shaded epoch spans.
fn chart(
    title: &str,
    records: &[EpochRecord],
    t0: f64,
    value: impl Fn(&crate::epoch::Sample) -> f64,
    fmt: impl Fn(f64) -> String,
) -> String {
    const W: f64 = 900.0;
    const H: f64 = 260.0;
    const L: f64 = 70.0; // left margin, for the y labels
    const R: f64 = 10.0;
    const T: f64 = 25.0;
    const B: f64 = 30.0;
    let points: Vec<Vec<(f64, f64)>> = records
        .iter()
        .map(|r| {
            r.samples
                .iter()
                .map(|s| (r.started_unix_secs - t0 + s.t_secs, value(s)))
                .collect()
        })
        .collect();
    let all = || points.iter().flatten();
    let x_max = records
        .iter()
        .map(|r| r.started_unix_secs - t0 + r.duration_secs)
        .fold(1.0, f64::max);
    let (mut lo, mut hi) = all().fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.001).max(1e-9);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |t: f64| L + t / x_max * (W - L - R);
    let y = |v: f64| T + (hi - v) / (hi - lo) * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{L}\" y=\"16\" font-weight=\"bold\">{t}</text>",
        t = escape(title)
    );
    for r in records {
        let (a, b) = (
            r.started_unix_secs - t0,
            r.started_unix_secs - t0 + r.duration_secs,
        );
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{T}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\"><title>epoch {}: {}</title></rect>",
            x(a),
            (x(b) - x(a)).max(0.5),
            H - T - B,
            verdict_colour(r),
            r.epoch,
            escape(&verdict_text(&r.figures.verdict))
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{L}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#333\"/>\
         <line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{0}\" stroke=\"#333\"/>",
        H - B,
        W - R
    );
    for v in [lo + pad, (lo + hi) / 2.0, hi - pad] {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            L - 4.0,
            y(v) + 4.0,
            escape(&fmt(v))
        );
    }
    for t in [0.0, x_max / 2.0, x_max] {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{:.0} s</text>",
            x(t),
            H - B + 16.0,
            t
        );
    }
    for series in &points {
        let pts: Vec<String> = series
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole page.
pub fn html(source: &str, records: &[EpochRecord]) -> String {
    let t0 = records
        .iter()
        .map(|r| r.started_unix_secs)
        .fold(f64::MAX, f64::min);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>soakd report</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         .pass{{background:#c9ebd0}}.fail{{background:#f4c7c3}}.na{{background:#e4e4e4}}\
         </style></head><body><h1>soakd report</h1><p>{} epochs from <code>{}</code>",
        records.len(),
        escape(source)
    );
    if let Some(r) = records.first() {
        let _ = write!(
            s,
            "; profile <b>{}</b>, backend <b>{}</b> ({})",
            escape(&r.profile),
            escape(&r.backend),
            escape(&r.allocator_profile)
        );
    }
    s.push_str(".</p>");
    if records.is_empty() {
        s.push_str("<p>No epochs recorded.</p></body></html>\n");
        return s;
    }
    s.push_str(&chart(
        "Throughput (ops/s)",
        records,
        t0,
        |x| x.ops_per_sec,
        si,
    ));
    s.push_str(&chart(
        "RSS (bytes)",
        records,
        t0,
        |x| x.rss_bytes as f64,
        |v| format!("{:.1} MiB", v / (1 << 20) as f64),
    ));
    s.push_str("<p>Shading: green, the epoch passed every check; red, it failed one; grey, not judged or interrupted.</p><table><tr>");
    for h in HEADERS {
        let _ = write!(s, "<th>{h}</th>");
    }
    s.push_str("</tr>");
    for (r, row) in records.iter().zip(rows(records)) {
        let class = match r.figures.verdict.all {
            Some(true) => "pass",
            Some(false) => "fail",
            None => "na",
        };
        s.push_str("<tr>");
        for (i, c) in row.cells.iter().enumerate() {
            if i == HEADERS.len() - 1 {
                let _ = write!(s, "<td class=\"{class}\">{}</td>", escape(c));
            } else {
                let _ = write!(s, "<td>{}</td>", escape(c));
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::record;

    #[test]
    fn table_lists_every_epoch_with_its_verdict() {
        let mut failing = record(2, true);
        failing.figures.verdict.cv = Some(false);
        failing.figures.verdict.all = Some(false);
        let t = table(&[record(1, true), failing, record(3, false)]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].contains("epoch") && lines[0].contains("verdict"));
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[2].contains("FAIL (cv)"), "{t}");
        assert!(lines[3].trim_start().starts_with('3') && lines[3].contains(" no "));
        assert!(lines[4].contains("passed every check"));
        assert_eq!(table(&[]), "no epochs recorded\n");
    }

    #[test]
    fn formats_by_hand() {
        assert_eq!(si(12_345_678.0), "12.35M");
        assert_eq!(si(950.0), "950.0");
        assert_eq!(pct(0.0123), "1.23%");
        assert_eq!(sci(0.00012), "1.20e-4");
        assert_eq!(sci(0.0), "0");
        assert_eq!(escape("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }

    #[test]
    fn html_is_self_contained_with_both_plots() {
        let mut r2 = record(2, true);
        r2.profile = "<script>".into();
        let page = html("x/epochs.jsonl", &[record(1, true), r2, record(3, false)]);
        assert_eq!(page.matches("<svg").count(), 2);
        assert!(page.contains("Throughput") && page.contains("RSS"));
        assert_eq!(
            page.matches("<polyline").count(),
            6,
            "one line per epoch per plot"
        );
        assert!(page.contains("<td class=\"pass\">PASS</td>"));
        for banned in ["http://", "https://", "<script", "<link", "src=", "url("] {
            assert!(!page.contains(banned), "page contains {banned}");
        }
        assert!(html("e", &[]).contains("No epochs"));
    }

    #[test]
    fn run_writes_the_page_and_reads_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (mut res, _) = results::Results::open(dir.path()).unwrap();
        res.append(&record(1, true)).unwrap();
        let out = dir.path().join("r.html");
        let text = run(dir.path(), Some(&out)).unwrap();
        assert!(text.contains("1 of 1 epochs passed"), "{text}");
        assert!(std::fs::read_to_string(&out).unwrap().contains("<svg"));
        assert!(run(&dir.path().join("missing"), None).is_err());
    }
}
