//! `soakd report`: a table of epochs, and optionally one self-contained HTML
//! page with inline SVG plots (nothing fetched from the network, so it can be
//! attached to a ticket or opened offline). Both start with the machine
//! context and show the machine's load beside the throughput.

use std::fmt::Write as _;
use std::path::Path;

use crate::epoch::{self, Sample, Verdict};
use crate::error::Error;
use crate::host::Load;
use crate::plot::{self, escape, Line, Plot, Span, Style};
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

pub fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

/// Throughput with an SI suffix: 12.35M.
pub fn si(v: f64) -> String {
    match v.abs() {
        x if x >= 1e9 => format!("{:.2}G", v / 1e9),
        x if x >= 1e6 => format!("{:.2}M", v / 1e6),
        x if x >= 1e3 => format!("{:.2}k", v / 1e3),
        _ => format!("{v:.1}"),
    }
}

pub fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// A change with its sign: +1.20%, -0.50%.
pub fn signed_pct(v: f64) -> String {
    format!("{:+.2}%", v * 100.0)
}

pub fn sci(v: f64) -> String {
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
    cells: [String; 13],
}

const HEADERS: [&str; 13] = [
    "epoch",
    "complete",
    "samples",
    "mean ops/s",
    "median",
    "min",
    "p99",
    "CV",
    "RSS drift",
    "RSS trend/h",
    "ops/s trend/h",
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
                    opt(f.rss_trend, signed_pct),
                    opt(f.throughput_trend, signed_pct),
                    opt(f.syscalls_per_op, sci),
                    verdict_text(&f.verdict),
                ],
            }
        })
        .collect()
}

/// A plain-text table of the epochs, columns aligned, with a count of passes.
pub fn table(records: &[EpochRecord]) -> String {
    if records.is_empty() {
        return "no epochs recorded\n".to_string();
    }
    let cells: Vec<Vec<String>> = rows(records)
        .into_iter()
        .map(|r| r.cells.to_vec())
        .collect();
    let mut out = aligned(&HEADERS, &cells);
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

/// Headers and rows as text, each column right-aligned to its widest cell.
pub fn aligned(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// One series of epochs to plot: a single run, or one allocator of a comparison.
pub struct Run<'a> {
    pub name: &'a str,
    pub colour: &'static str,
    pub records: &'a [EpochRecord],
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
            opt(epoch::mean(&load1), |v| format!("{v:.2}")),
            max(&load1),
            opt(epoch::mean(&others), pct),
            pct(max(&others))
        );
    }
    out
}

/// Line colours, one per allocator (colour-blind safe, from ColorBrewer Dark2).
pub const PALETTE: [&str; 6] = [
    "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#a6761d",
];

/// A plotted figure: its samples' value in the plot's unit.
struct Figure {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    value: fn(&Sample) -> f64,
}

const MIB: f64 = (1u64 << 20) as f64;

const FIGURES: [Figure; 2] = [
    Figure {
        id: "throughput",
        title: "Throughput",
        unit: "Mops/s",
        value: |s| epoch::throughput(s) / 1e6,
    },
    Figure {
        id: "rss",
        title: "RSS (anonymous; total where a record predates it)",
        unit: "MiB",
        value: |s| epoch::rss(s) / MIB,
    },
];

/// A plotted reading of the machine's load.
struct LoadFigure {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    value: fn(&Load) -> f64,
}

const LOAD_FIGURES: [LoadFigure; 2] = [
    LoadFigure {
        id: "load1",
        title: "Load average (1 min)",
        unit: "load",
        value: |l| l.load1,
    },
    LoadFigure {
        id: "others_cpu",
        title: "Other processes' CPU (share of all CPUs)",
        unit: "%",
        value: |l| l.others_cpu_busy * 100.0,
    },
];

/// The load readings of every run's epochs: a noisy epoch shows here as the
/// host's doing, not the allocator's.
fn load_plot(fig: &LoadFigure, runs: &[Run], t0: f64) -> Plot {
    let mut p = Plot {
        title: fig.title.to_string(),
        unit: fig.unit,
        figure: fig.id,
        spans: Vec::new(),
        lines: Vec::new(),
    };
    for run in runs {
        for r in run.records {
            let start = r.started_unix_secs - t0;
            p.lines.push(Line {
                label: if runs.len() == 1 {
                    "per sample".to_string()
                } else {
                    run.name.to_string()
                },
                colour: run.colour,
                style: Style::Data,
                points: r
                    .load
                    .iter()
                    .map(|l| ((start + l.t_secs) / 60.0, (fig.value)(l)))
                    .collect(),
            });
        }
    }
    p
}

fn verdict_colour(r: &EpochRecord) -> &'static str {
    match (r.complete, r.figures.verdict.all) {
        (_, Some(false)) => "#fbe3e1",
        (true, Some(true)) => "#e3f4e7",
        _ => "#f0f0f0",
    }
}

/// The epoch's steady samples as (minutes, value), and the thresholds drawn
/// over them in a single run: throughput mean +/- max_cv, and RSS's drift
/// limit above the median of the first window.
fn limits(fig: &Figure, r: &EpochRecord, steady: &[(f64, f64)]) -> Vec<(String, f64)> {
    let ys: Vec<f64> = steady.iter().map(|p| p.1).collect();
    let t = &r.thresholds;
    match fig.id {
        "throughput" => epoch::mean(&ys).map_or_else(Vec::new, |m| {
            vec![
                ("mean ± max_cv".to_string(), m * (1.0 + t.max_cv)),
                ("mean ± max_cv".to_string(), m * (1.0 - t.max_cv)),
            ]
        }),
        _ => epoch::median(&ys[..epoch::window(ys.len())]).map_or_else(Vec::new, |first| {
            vec![("max_rss_drift".to_string(), first * (1.0 + t.max_rss_drift))]
        }),
    }
}

/// The figure's plot over every run; thresholds and verdict shading only
/// for a single run (in a comparison they would repeat per allocator).
fn plot(fig: &Figure, runs: &[Run], t0: f64) -> Plot {
    let single = runs.len() == 1;
    let mut p = Plot {
        title: fig.title.to_string(),
        unit: fig.unit,
        figure: fig.id,
        spans: Vec::new(),
        lines: Vec::new(),
    };
    let named = |run: &Run, what: &str| {
        if single {
            what.to_string()
        } else {
            format!("{} {what}", run.name)
        }
    };
    for run in runs {
        for r in run.records {
            let start = r.started_unix_secs - t0;
            let minutes = |t: f64| (start + t) / 60.0;
            if single {
                p.spans.push(Span {
                    from: minutes(0.0),
                    to: minutes(r.duration_secs),
                    fill: verdict_colour(r),
                    class: "epoch",
                    title: format!("epoch {}: {}", r.epoch, verdict_text(&r.figures.verdict)),
                });
            }
            p.spans.push(Span {
                from: minutes(0.0),
                to: minutes((r.warmup_secs as f64).min(r.duration_secs)),
                fill: "#d0d0d0",
                class: "warmup",
                title: format!(
                    "{} epoch {} warm-up: left out of every figure",
                    run.name, r.epoch
                ),
            });
            p.lines.push(Line {
                label: named(run, "samples"),
                colour: run.colour,
                style: Style::Data,
                points: r
                    .samples
                    .iter()
                    .map(|s| (minutes(s.t_secs), (fig.value)(s)))
                    .collect(),
            });
            let steady = epoch::steady_points(&r.samples, fig.value);
            let (Some(&(a, _)), Some(&(b, _))) = (steady.first(), steady.last()) else {
                continue;
            };
            if let Some((slope, intercept)) = epoch::theil_sen_line(&steady) {
                p.lines.push(Line {
                    label: named(run, "trend (Theil-Sen)"),
                    colour: run.colour,
                    style: Style::Trend,
                    points: [a, b].map(|t| (minutes(t), intercept + slope * t)).to_vec(),
                });
            }
            if single {
                for (label, v) in limits(fig, r, &steady) {
                    p.lines.push(Line {
                        label,
                        colour: "#c00000",
                        style: Style::Threshold,
                        points: vec![(minutes(a), v), (minutes(b), v)],
                    });
                }
            }
        }
    }
    p
}

/// The start of a report page, up to and including `<body>` and its title.
pub fn page_head(title: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         .pass{{background:#c9ebd0}}.fail{{background:#f4c7c3}}.na{{background:#e4e4e4}}\
         svg.plot{{display:block;margin:1em 0}}\
         </style></head><body><h1>{t}</h1>",
        t = escape(title)
    )
}

/// Every figure's plot over `runs`, with a key to the drawing.
pub fn plots(runs: &[Run]) -> String {
    let t0 = runs
        .iter()
        .flat_map(|r| r.records.iter().map(|e| e.started_unix_secs))
        .fold(f64::MAX, f64::min);
    let [throughput, rss] = &FIGURES;
    let mut s = plot::svg(&plot(throughput, runs, t0));
    // The machine's load right under the throughput, on the same time axis.
    for l in &LOAD_FIGURES {
        if runs
            .iter()
            .any(|r| r.records.iter().any(|e| !e.load.is_empty()))
        {
            s.push_str(&plot::svg(&load_plot(l, runs, t0)));
        }
    }
    s.push_str(&plot::svg(&plot(rss, runs, t0)));
    s.push_str(
        "<p>Grey: warm-up, left out of every figure. Thick dashes: the Theil-Sen trend \
         over the samples after warm-up. ",
    );
    if runs.len() == 1 {
        s.push_str(
            "Thin red dashes: thresholds (throughput mean ± max_cv; RSS drift limit above the \
             first window's median). Epoch shading: green passed every check, red failed one, \
             grey not judged or interrupted.",
        );
    }
    s.push_str("</p>");
    s
}

/// The whole page of one run.
pub fn html(source: &str, records: &[EpochRecord]) -> String {
    let mut s = page_head("soakd report");
    let _ = write!(
        s,
        "<p>{} epochs from <code>{}</code>",
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
    s.push_str(&plots(&[Run {
        name: "",
        colour: PALETTE[0],
        records,
    }]));
    s.push_str("<p>A dash in the table: a figure the record does not have (written before it existed, or not computable).</p><table><tr>");
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
    fn html_is_self_contained_with_every_plot() {
        let mut r2 = record(2, true);
        r2.profile = "<script>".into();
        let page = html("x/epochs.jsonl", &[record(1, true), r2, record(3, false)]);
        assert_eq!(page.matches("<svg class=\"plot\"").count(), 4);
        for want in ["throughput", "load1", "others_cpu", "rss"] {
            let want = format!("data-figure=\"{want}\"");
            assert!(page.contains(&want), "{want}");
        }
        for (label, n) in [
            (">Mops/s</text>", 1),
            (">MiB</text>", 1),
            (">load</text>", 1),
            (">%</text>", 1),
            (">minutes</text>", 4),
        ] {
            assert_eq!(page.matches(label).count(), n, "{label}");
        }
        // Per plot and epoch its samples (the load plots too); per figure
        // plot and epoch its trend and a warm-up span.
        assert_eq!(page.matches("<polyline class=\"data\"").count(), 12);
        for class in ["<polyline class=\"trend\"", "<rect class=\"warmup\""] {
            assert_eq!(page.matches(class).count(), 6, "{class}");
        }
        assert!(page.contains("<h2>Machine</h2><pre>machine, epochs 1-3:"));
        assert!(page.contains("Test CPU (2 logical"));
        // Thresholds: mean +/- max_cv (2) and the drift limit (1) per epoch.
        assert_eq!(page.matches("<polyline class=\"threshold\"").count(), 9);
        assert!(page.contains("<td class=\"pass\">PASS</td>"));
        for banned in ["http://", "https://", "<script", "<link", "src=", "url("] {
            assert!(!page.contains(banned), "page contains {banned}");
        }
        assert!(html("e", &[]).contains("No epochs"));
    }

    /// The first 60-minute soak's file, written before RssAnon and the
    /// trends existed, still loads; what it lacks shows as a dash.
    #[test]
    fn an_old_results_file_loads_with_missing_figures_shown() {
        let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/perf/SOAK_2026-11-26_balanced.epochs.jsonl");
        let existing = results::read(&old).unwrap();
        assert!(existing.bad_lines.is_empty(), "{:?}", existing.bad_lines);
        let r = &existing.records[0];
        assert_eq!(
            (r.figures.rss_trend, r.samples[0].rss_anon_bytes),
            (None, None)
        );
        let t = table(&existing.records);
        let row: Vec<&str> = t.lines().nth(1).unwrap().split_whitespace().collect();
        // RSS trend and throughput trend: the 10th and 11th columns.
        assert_eq!(&row[9..11], ["-", "-"], "{t}");
        assert!(
            row[7].ends_with('%') && row[8].ends_with('%'),
            "old CV and drift kept: {t}"
        );
        let page = html("old", &existing.records);
        assert_eq!(page.matches("<polyline class=\"trend\"").count(), 2);
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
