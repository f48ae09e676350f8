//! Inline SVG line plots for the HTML reports: minutes on x, a figure in
//! its unit on y, shaded spans (warm-up, epoch verdicts), data lines, trend
//! lines and threshold lines, with a legend. Plain SVG, no script, so a
//! report opens offline and in any viewer.

use std::fmt::Write as _;

/// A shaded stretch of the x axis.
pub struct Span {
    /// Minutes.
    pub from: f64,
    pub to: f64,
    pub fill: &'static str,
    /// `class` attribute (`warmup`, `epoch`), for styling and tests.
    pub class: &'static str,
    /// Hover text.
    pub title: String,
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Measured samples: solid.
    Data,
    /// A fitted trend: thick, short dashes.
    Trend,
    /// A limit: thin, long dashes.
    Threshold,
}

impl Style {
    fn class(self) -> &'static str {
        match self {
            Style::Data => "data",
            Style::Trend => "trend",
            Style::Threshold => "threshold",
        }
    }

    fn stroke(self) -> &'static str {
        match self {
            Style::Data => "stroke-width=\"1.5\"",
            Style::Trend => "stroke-width=\"2.5\" stroke-dasharray=\"6 3\"",
            Style::Threshold => "stroke-width=\"1.2\" stroke-dasharray=\"10 5\"",
        }
    }
}

/// One polyline; lines with the same label share one legend entry.
pub struct Line {
    pub label: String,
    pub colour: &'static str,
    pub style: Style,
    /// (minutes, value in the plot's unit).
    pub points: Vec<(f64, f64)>,
}

pub struct Plot {
    pub title: String,
    /// The y axis unit, e.g. `Mops/s` or `MiB`.
    pub unit: &'static str,
    /// `data-figure` attribute, naming the figure for tests.
    pub figure: &'static str,
    pub spans: Vec<Span>,
    pub lines: Vec<Line>,
}

/// The y range never spans less than this share of the values' median, so
/// a 1% wiggle fills at most a twentieth of the plot's height.
const MIN_RELATIVE_SPAN: f64 = 0.2;

/// The y range for these values: their extent, widened about its centre to
/// at least `MIN_RELATIVE_SPAN` of the median magnitude, padded by 5%. Values
/// that are all zero (no syscalls in a whole run) get a span of 1, not one
/// so small that the axis labels read 1e-308.
pub fn y_range(values: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let Some(median) = crate::epoch::median(&finite) else {
        return (0.0, 1.0);
    };
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(MIN_RELATIVE_SPAN * median.abs());
    let span = if span > 0.0 { span } else { 1.0 };
    let (mid, half) = ((lo + hi) / 2.0, span * 0.55);
    // Non-negative quantities get no invented negative axis.
    let lo = if lo >= 0.0 {
        (mid - half).max(0.0)
    } else {
        mid - half
    };
    (lo, mid + half)
}

/// About `n` round tick values (1, 2 or 5 times a power of ten) in [lo, hi].
pub fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick label with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Text for HTML and SVG: the five characters markup gives meaning to.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 900.0;
const H: f64 = 300.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 15.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 75.0;
const LEGEND_ROW: f64 = 18.0;

/// The plot as an `<svg class="plot">` element.
pub fn svg(p: &Plot) -> String {
    let xs = p.lines.iter().flat_map(|l| l.points.iter().map(|pt| pt.0));
    let x_max = xs
        .chain(p.spans.iter().map(|s| s.to))
        .fold(0.0, f64::max)
        .max(1e-9);
    let values: Vec<f64> = p
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|pt| pt.1))
        .collect();
    let (lo, hi) = y_range(&values);
    let x = |m: f64| LEFT + m / x_max * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let bottom = H - BOTTOM;
    let (legend, rows) = legend(p, bottom + 52.0);
    let height = H + LEGEND_ROW * (rows - 1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"plot\" data-figure=\"{fig}\" viewBox=\"0 0 {W} {height}\" width=\"{W}\" \
         height=\"{height}\" role=\"img\" aria-label=\"{t}\">\
         <text x=\"{LEFT}\" y=\"18\" font-weight=\"bold\">{t}</text>",
        fig = p.figure,
        t = escape(&p.title)
    );
    for sp in &p.spans {
        let _ = write!(
            s,
            "<rect class=\"{}\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{}\" fill=\"{}\">\
             <title>{}</title></rect>",
            sp.class,
            x(sp.from),
            (x(sp.to) - x(sp.from)).max(0.5),
            bottom - TOP,
            sp.fill,
            escape(&sp.title)
        );
    }
    // Axes, grid and tick labels.
    let yt = ticks(lo, hi, 5);
    let y_step = if yt.len() > 1 { yt[1] - yt[0] } else { hi - lo };
    for &v in &yt {
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\" font-size=\"11\">{4}</text>",
            y(v),
            W - RIGHT,
            LEFT - 4.0,
            y(v) + 4.0,
            tick_label(v, y_step)
        );
    }
    let xt = ticks(0.0, x_max, 8);
    let x_step = if xt.len() > 1 { xt[1] - xt[0] } else { x_max };
    for &m in &xt {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
            x(m),
            bottom + 15.0,
            tick_label(m, x_step)
        );
    }
    let _ = write!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{0}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\" stroke=\"#333\"/>\
         <text class=\"x-label\" x=\"{1}\" y=\"{2}\" text-anchor=\"middle\" font-size=\"12\">minutes</text>\
         <text class=\"y-label\" x=\"14\" y=\"{3}\" text-anchor=\"middle\" font-size=\"12\" \
         transform=\"rotate(-90 14 {3})\">{4}</text>",
        W - RIGHT,
        (LEFT + W - RIGHT) / 2.0,
        bottom + 32.0,
        (TOP + bottom) / 2.0,
        escape(p.unit)
    );
    for l in p.lines.iter().filter(|l| !l.points.is_empty()) {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(m, v)| format!("{:.1},{:.1}", x(m), y(v)))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"{}\" fill=\"none\" stroke=\"{}\" {} points=\"{}\"><title>{}</title></polyline>",
            l.style.class(),
            l.colour,
            l.style.stroke(),
            pts.join(" "),
            escape(&l.label)
        );
    }
    s.push_str(&legend);
    s.push_str("</svg>");
    s
}

/// What a legend entry shows: a line's stroke or a span's fill.
enum Key<'a> {
    Stroke(&'a str, Style),
    Fill(&'a str),
}

/// The legend: one entry per distinct line label, in order of first
/// appearance, then the warm-up shading; entries wrap onto further rows.
/// Returns the markup and the number of rows.
fn legend(p: &Plot, top: f64) -> (String, usize) {
    let mut entries: Vec<(&str, Key)> = Vec::new();
    for l in &p.lines {
        if !entries.iter().any(|e| e.0 == l.label) {
            entries.push((&l.label, Key::Stroke(l.colour, l.style)));
        }
    }
    if let Some(sp) = p.spans.iter().find(|sp| sp.class == "warmup") {
        entries.push(("warm-up", Key::Fill(sp.fill)));
    }
    let (mut s, mut x, mut row) = (String::new(), LEFT, 0);
    for (label, key) in entries {
        let width = 40.0 + 7.0 * label.len() as f64;
        if x > LEFT && x + width > W - RIGHT {
            (x, row) = (LEFT, row + 1);
        }
        let y = top + LEGEND_ROW * row as f64;
        let _ = match key {
            Key::Stroke(colour, style) => write!(
                s,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" {}/>",
                x + 24.0,
                style.stroke()
            ),
            Key::Fill(fill) => write!(
                s,
                "<rect x=\"{x}\" y=\"{}\" width=\"20\" height=\"10\" fill=\"{fill}\"/>",
                y - 5.0
            ),
        };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            x + 28.0,
            y + 4.0,
            escape(label)
        );
        x += width;
    }
    (s, row + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_percent_wiggle_stays_small() {
        let (lo, hi) = y_range(&[100.0, 101.0, 100.5, 99.8]);
        assert!(hi - lo >= 20.0, "{lo}..{hi}");
        assert!(lo < 99.8 && hi > 101.0);
        // A real swing keeps its own extent (plus padding).
        let (lo, hi) = y_range(&[10.0, 100.0]);
        assert!(
            (lo - 5.5).abs() < 1e-9 && (hi - 104.5).abs() < 1e-9,
            "{lo}..{hi}"
        );
        // Non-negative quantities get no negative axis.
        assert_eq!(y_range(&[0.0, 0.1]).0, 0.0);
        assert_eq!(y_range(&[-1.0, 1.0]), (-1.1, 1.1));
        assert_eq!(y_range(&[]), (0.0, 1.0));
        assert_eq!(y_range(&[0.0, 0.0, 0.0]), (0.0, 0.55));
        let zero = ticks(0.0, 0.55, 4);
        assert!(
            zero.len() >= 2 && zero.iter().all(|t| *t == 0.0 || *t >= 0.1),
            "{zero:?}"
        );
        let (lo, hi) = y_range(&[5.0, 5.0]);
        assert!(lo < 5.0 && hi > 5.0);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 10.0, 5), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(3.0, 61.0, 5), [20.0, 40.0, 60.0]);
        let t = ticks(9.5, 10.5, 5);
        assert_eq!(t.len(), 5, "9.6 to 10.4: {t:?}");
        assert!((t[1] - t[0] - 0.2).abs() < 1e-12 && (t[0] - 9.6).abs() < 1e-12);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(40.0, 20.0), "40");
        assert_eq!(ticks(1.0, 1.0, 5), [1.0]);
    }

    #[test]
    fn svg_has_axes_units_lines_and_spans() {
        let p = Plot {
            title: "T <x>".into(),
            unit: "MiB",
            figure: "rss",
            spans: vec![Span {
                from: 0.0,
                to: 1.0,
                fill: "#eee",
                class: "warmup",
                title: "warm-up".into(),
            }],
            lines: vec![
                Line {
                    label: "a".into(),
                    colour: "#00f",
                    style: Style::Data,
                    points: vec![(0.5, 10.0), (2.0, 10.1)],
                },
                Line {
                    label: "a trend".into(),
                    colour: "#00f",
                    style: Style::Trend,
                    points: vec![(1.0, 10.0), (2.0, 10.05)],
                },
                Line {
                    label: "limit".into(),
                    colour: "#c00",
                    style: Style::Threshold,
                    points: vec![(1.0, 10.5), (2.0, 10.5)],
                },
            ],
        };
        let s = svg(&p);
        assert!(s.starts_with("<svg class=\"plot\" data-figure=\"rss\""));
        assert!(
            s.contains("T &lt;x&gt;") && s.contains(">MiB</text>") && s.contains(">minutes</text>")
        );
        for class in ["data", "trend", "threshold"] {
            assert_eq!(
                s.matches(&format!("<polyline class=\"{class}\"")).count(),
                1
            );
        }
        assert_eq!(s.matches("<rect class=\"warmup\"").count(), 1);
        assert!(s.contains(">warm-up</text>"), "legend names the shading");
        assert!(s.contains(&format!("height=\"{H}\"")), "one legend row");
    }

    #[test]
    fn a_long_legend_wraps_and_the_plot_grows() {
        let lines = (0..12)
            .map(|i| Line {
                label: format!("allocator number {i} samples"),
                colour: "#000",
                style: Style::Data,
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            })
            .collect();
        let p = Plot {
            title: "t".into(),
            unit: "u",
            figure: "f",
            spans: Vec::new(),
            lines,
        };
        let (markup, rows) = legend(&p, 0.0);
        assert!(rows > 1, "{rows}");
        let xs: Vec<f64> = markup
            .split("<text x=\"")
            .skip(1)
            .map(|t| t.split('"').next().unwrap().parse().unwrap())
            .collect();
        assert!(xs.iter().all(|&x| x < W - RIGHT), "{xs:?}");
        let s = svg(&p);
        assert!(s.contains(&format!(
            "height=\"{}\"",
            H + LEGEND_ROW * (rows - 1) as f64
        )));
    }
}
