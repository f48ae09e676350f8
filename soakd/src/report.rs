//! `soakd report`: a table of epochs, and optionally one self-contained HTML
//! page with inline SVG plots (nothing fetched from the network, so it can be
//! attached to a ticket or opened offline). Both start with the machine
//! context and show the machine's load beside the throughput.

use std::fmt::Write as _;
use std::path::Path;

use crate::epoch::{mean, Sample, Verdict};
use crate::error::Error;
use crate::host::Load;
use crate::results::{self, EpochRecord};

/// Prints the table of `file`'s epochs and writes the HTML page if asked.
pub fn run(file: &Path, html_out: Option<&Path>) -> Result<String, Error> {
    let existing = results::read(file)?;
    let mut out = machines(&existing.records);
    out.push_str(&table(&existing.records));
    out.push_str(&load_lines(&existing.records));
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
    let failed: Vec<&str> = v.checks()[..3]
        .iter()
        .filter(|(_, p)| *p == Some(false))
        .map(|(name, _)| *name)
        .collect();
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

/// "epoch 3" or "epochs 3-7".
fn epoch_span(first: u64, last: u64) -> String {
    if first == last {
        format!("epoch {first}")
    } else {
        format!("epochs {first}-{last}")
    }
}

/// The machine context per run of consecutive epochs on one machine and
/// build; empty when no record carries one (files from older soakd).
pub fn machines(records: &[EpochRecord]) -> String {
    let mut out = String::new();
    if records.iter().all(|r| r.machine.is_none()) {
        return out;
    }
    let mut i = 0;
    while i < records.len() {
        let id = records[i].machine.as_ref().map(|m| m.identity());
        let run = records[i..]
            .iter()
            .take_while(|r| r.machine.as_ref().map(|m| m.identity()) == id)
            .count();
        let span = epoch_span(records[i].epoch, records[i + run - 1].epoch);
        match &records[i].machine {
            Some(m) => {
                let _ = writeln!(out, "machine, {span}:");
                for line in m.describe().lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
            None => {
                let _ = writeln!(out, "machine, {span}: not recorded");
            }
        }
        i += run;
    }
    out
}

/// Per epoch with load readings: the 1-minute load average and the other
/// processes' CPU share, mean and max.
pub fn load_lines(records: &[EpochRecord]) -> String {
    let mut out = String::new();
    for r in records.iter().filter(|r| !r.load.is_empty()) {
        let load1: Vec<f64> = r.load.iter().map(|l| l.load1).collect();
        let others: Vec<f64> = r.load.iter().map(|l| l.others_cpu_busy).collect();
        let max = |xs: &[f64]| xs.iter().copied().fold(f64::MIN, f64::max);
        let _ = writeln!(
            out,
            "load, epoch {}: load1 {} mean, {:.2} max; other processes' CPU {} mean, {} max",
            r.epoch,
            opt(mean(&load1), |v| format!("{v:.2}")),
            max(&load1),
            opt(mean(&others), pct),
            pct(max(&others))
        );
    }
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

/// A series of an epoch's samples, as (seconds into the epoch, value).
fn of_samples(value: impl Fn(&Sample) -> f64) -> impl Fn(&EpochRecord) -> Vec<(f64, f64)> {
    move |r| r.samples.iter().map(|s| (s.t_secs, value(s))).collect()
}

/// A series of an epoch's load readings.
fn of_load(value: impl Fn(&Load) -> f64) -> impl Fn(&EpochRecord) -> Vec<(f64, f64)> {
    move |r| r.load.iter().map(|l| (l.t_secs, value(l))).collect()
}

/// One line chart: a polyline per epoch over shaded epoch spans.
fn chart(
    title: &str,
    records: &[EpochRecord],
    t0: f64,
    series: impl Fn(&EpochRecord) -> Vec<(f64, f64)>,
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
            series(r)
                .into_iter()
                .map(|(t, v)| (r.started_unix_secs - t0 + t, v))
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
    let context = machines(records);
    if !context.is_empty() {
        let _ = write!(s, "<h2>Machine</h2><pre>{}</pre>", escape(&context));
    }
    if records.is_empty() {
        s.push_str("<p>No epochs recorded.</p></body></html>\n");
        return s;
    }
    s.push_str(&chart(
        "Throughput (ops/s)",
        records,
        t0,
        of_samples(|x| x.ops_per_sec),
        si,
    ));
    // The machine's load right under the throughput, on the same time axis.
    s.push_str(&chart(
        "Load average (1 min)",
        records,
        t0,
        of_load(|l| l.load1),
        |v| format!("{v:.2}"),
    ));
    s.push_str(&chart(
        "Other processes' CPU (share of all CPUs)",
        records,
        t0,
        of_load(|l| l.others_cpu_busy),
        pct,
    ));
    s.push_str(&chart(
        "RSS (bytes)",
        records,
        t0,
        of_samples(|x| x.rss_bytes as f64),
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
    fn machine_context_per_run_of_epochs_and_load_per_epoch() {
        let mut other = record(3, true);
        if let Some(m) = other.machine.as_mut() {
            m.kernel = "6.2".into();
        }
        let mut freer = record(2, true);
        if let Some(m) = freer.machine.as_mut() {
            m.memory_available_bytes = 1 << 30;
        }
        let mut older = record(4, true);
        (older.machine, older.load) = (None, Vec::new());
        let text = machines(&[record(1, true), freer, other, older.clone()]);
        let heads: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
        assert_eq!(
            heads,
            [
                "machine, epochs 1-2:",
                "machine, epoch 3:",
                "machine, epoch 4: not recorded"
            ],
            "{text}"
        );
        assert!(text.contains("  host:    test-host\n"), "{text}");
        assert!(text.contains("kernel 6.2"), "{text}");
        assert_eq!(
            machines(&[older.clone()]),
            "",
            "nothing recorded, nothing said"
        );

        let mut busy = record(5, true);
        busy.load[1].load1 = 4.0;
        busy.load[1].others_cpu_busy = 0.75;
        let lines = load_lines(&[older, busy]);
        // Five readings: load1 1.5 x4 and 4.0; others 0.25 x4 and 0.75.
        assert_eq!(
            lines,
            "load, epoch 5: load1 2.00 mean, 4.00 max; other processes' CPU 35.00% mean, 75.00% max\n"
        );
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
    fn html_is_self_contained_with_every_plot() {
        let mut r2 = record(2, true);
        r2.profile = "<script>".into();
        let page = html("x/epochs.jsonl", &[record(1, true), r2, record(3, false)]);
        assert_eq!(page.matches("<svg").count(), 4);
        for title in ["Throughput", "Load average", "Other processes", "RSS"] {
            assert!(page.contains(title), "no {title} plot");
        }
        assert_eq!(
            page.matches("<polyline").count(),
            12,
            "one line per epoch per plot"
        );
        assert!(page.contains("<h2>Machine</h2><pre>machine, epochs 1-3:"));
        assert!(page.contains("Test CPU (2 logical"));
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
        assert!(
            text.starts_with("machine, epoch 1:\n  host:    test-host"),
            "{text}"
        );
        assert!(text.contains("load, epoch 1: load1 1.50 mean"), "{text}");
        assert!(std::fs::read_to_string(&out).unwrap().contains("<svg"));
        assert!(run(&dir.path().join("missing"), None).is_err());
    }
}
