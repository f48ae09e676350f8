//! The misuse suite (issue 11, SPEC section 3b): every kind of heap misuse
//! that tests/c/misuse.c knows, at 8 bytes, 4 KiB and 256 KiB, under the
//! default profile and under `hardened`, each in its own process under
//! `LD_PRELOAD`. Each run is classified:
//!
//! - `caught`: died of SIGABRT after a `hakmem:` line on stderr;
//! - `harmless`: the program established that the misuse had no effect
//!   (exit 3, `harmless: ...`);
//! - `missed`: the misuse went unnoticed (exit 0, `missed: ...`);
//! - `crashed`: any other death (SIGSEGV without a `hakmem:` line, glibc's
//!   abort, another exit status): stopped, but not by hakmem;
//! - `hung`: killed by the program's own 10 s alarm.
//!
//! The outcomes must equal the table in docs/design.md ("Misuse suite",
//! between the `misuse-table` markers), so that a change that loses (or
//! gains) a catch is seen; `HAKMEM_BLESS=1` rewrites the table instead. Under
//! `hardened` every case must be caught or harmless, and every caught case's
//! `hakmem:` line must be the one line hakmem writes before it aborts.

mod common;

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use common::{compile, hakmem_abort_line, label, no_core_dump, preloaded, run, run_ok, TempDir};
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The block sizes every kind runs at.
const SIZES: [usize; 3] = [8, 4096, 262144];
/// The profiles the suite compares: the default (no `HAKMEM_PROFILE`) and
/// `hardened`.
const SUITE_PROFILES: [Option<&str>; 2] = [None, Some("hardened")];
/// Backstop per run; the program kills itself with an alarm after 10 s, so
/// reaching this is a bug of the harness.
const LIMIT: Duration = Duration::from_secs(60);

const START: &str = "<!-- misuse-table:start -->";
const END: &str = "<!-- misuse-table:end -->";

/// How one run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Caught,
    Harmless,
    Missed,
    Crashed,
    Hung,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Caught,
        Outcome::Harmless,
        Outcome::Missed,
        Outcome::Crashed,
        Outcome::Hung,
    ];

    fn name(self) -> &'static str {
        match self {
            Outcome::Caught => "caught",
            Outcome::Harmless => "harmless",
            Outcome::Missed => "missed",
            Outcome::Crashed => "crashed",
            Outcome::Hung => "hung",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.name() == s)
    }

    /// Whether the allocator stopped the misuse or made it harmless (what
    /// the totals count as a catch).
    fn stopped(self) -> bool {
        matches!(self, Outcome::Caught | Outcome::Harmless)
    }
}

/// Classifies a run of `misuse KIND SIZE`; `Err` when the program itself
/// reports a bug of the test (usage, or a precondition before the misuse).
fn classify(out: &Output) -> Result<Outcome, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match (out.status.signal(), out.status.code()) {
        (Some(libc::SIGABRT), _) if stderr.contains("hakmem:") => Ok(Outcome::Caught),
        (Some(libc::SIGALRM), _) => Ok(Outcome::Hung),
        (Some(_), _) => Ok(Outcome::Crashed),
        (None, Some(0)) if stdout.contains("missed:") => Ok(Outcome::Missed),
        (None, Some(3)) if stdout.contains("harmless:") => Ok(Outcome::Harmless),
        (None, Some(0 | 2 | 3)) => Err(format!(
            "the program broke its protocol ({})\nstdout:\n{stdout}stderr:\n{stderr}",
            out.status
        )),
        _ => Ok(Outcome::Crashed),
    }
}

/// One column of the table: a profile at a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    /// Index into [`SUITE_PROFILES`].
    profile: usize,
    size: usize,
}

/// The table's columns, in order: each profile at each size.
fn columns() -> Vec<Column> {
    (0..SUITE_PROFILES.len())
        .flat_map(|profile| SIZES.map(|size| Column { profile, size }))
        .collect()
}

fn size_label(size: usize) -> String {
    match size {
        s if s >= 1024 && s % 1024 == 0 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

fn column_label(c: Column) -> String {
    format!(
        "{} {}",
        label(SUITE_PROFILES[c.profile]),
        size_label(c.size)
    )
}

/// The table: per kind (in the program's order), its description and one
/// outcome per [`columns`] entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    kind: String,
    what: String,
    cells: Vec<Outcome>,
}

impl Table {
    /// The markdown between the markers: header, rows, and the totals line.
    fn render(&self) -> String {
        let cols = columns();
        let mut s = String::from("| kind |");
        for c in &cols {
            let _ = write!(s, " {} |", column_label(*c));
        }
        s.push_str(" what it does |\n|---|");
        s.push_str(&"---|".repeat(cols.len() + 1));
        s.push('\n');
        for r in &self.rows {
            let _ = write!(s, "| {} |", r.kind);
            for o in &r.cells {
                let _ = write!(s, " {} |", o.name());
            }
            let _ = writeln!(s, " {} |", r.what);
        }
        let _ = writeln!(s, "\n{}", self.totals());
        s
    }

    /// "hardened catches N of M; default catches K of M".
    fn totals(&self) -> String {
        let cols = columns();
        let mut parts = Vec::new();
        for p in (0..SUITE_PROFILES.len()).rev() {
            let (mut n, mut m) = (0, 0);
            for r in &self.rows {
                for (c, o) in cols.iter().zip(&r.cells) {
                    if c.profile == p {
                        m += 1;
                        n += usize::from(o.stopped());
                    }
                }
            }
            parts.push(format!("{} catches {n} of {m}", label(SUITE_PROFILES[p])));
        }
        format!("Totals (caught or harmless): {}.", parts.join("; "))
    }

    /// Parses [`Table::render`]'s output (the totals line is not checked
    /// here: it is compared as text).
    fn parse(text: &str) -> Result<Table, String> {
        let cols = columns();
        let mut lines = text.lines().filter(|l| l.starts_with('|'));
        let header = lines.next().ok_or("no table")?;
        let want: Vec<String> = std::iter::once("kind".to_string())
            .chain(cols.iter().map(|c| column_label(*c)))
            .chain(std::iter::once("what it does".to_string()))
            .collect();
        if cells(header) != want {
            return Err(format!("header {header:?}, want the columns {want:?}"));
        }
        lines.next().ok_or("no separator line")?;
        let mut rows = Vec::new();
        for line in lines {
            let c = cells(line);
            if c.len() != cols.len() + 2 {
                return Err(format!(
                    "{} cells in {line:?}, want {}",
                    c.len(),
                    cols.len() + 2
                ));
            }
            let outcomes = c[1..=cols.len()]
                .iter()
                .map(|s| Outcome::parse(s).ok_or_else(|| format!("no outcome {s:?} in {line:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            rows.push(Row {
                kind: c[0].clone(),
                what: c[cols.len() + 1].clone(),
                cells: outcomes,
            });
        }
        Ok(Table { rows })
    }

    fn get(&self, kind: &str, col: usize) -> Option<Outcome> {
        self.rows
            .iter()
            .find(|r| r.kind == kind)
            .map(|r| r.cells[col])
    }
}

/// The trimmed cells of a markdown table line.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// What changed from `old` to `new`, one line per cell (and per kind that
/// only one of them has).
fn diff(old: &Table, new: &Table) -> Vec<String> {
    let cols = columns();
    let mut out = Vec::new();
    for r in &new.rows {
        for (i, c) in cols.iter().enumerate() {
            match old.get(&r.kind, i) {
                None if i == 0 => out.push(format!("{}: new kind, not in the table", r.kind)),
                Some(o) if o != r.cells[i] => out.push(format!(
                    "{} @ {}: table says {}, now {}",
                    r.kind,
                    column_label(*c),
                    o.name(),
                    r.cells[i].name()
                )),
                _ => {}
            }
        }
    }
    for r in &old.rows {
        if !new.rows.iter().any(|n| n.kind == r.kind) {
            out.push(format!(
                "{}: in the table, but the program has no such kind",
                r.kind
            ));
        }
    }
    out
}

/// The text between the markers in `doc`, and the byte range it spans.
fn between_markers(doc: &str) -> Result<(std::ops::Range<usize>, &str), String> {
    let s = doc.find(START).ok_or(format!("no {START} marker"))? + START.len();
    let e = doc[s..]
        .find(END)
        .ok_or(format!("no {END} after {START}"))?
        + s;
    Ok((s..e, &doc[s..e]))
}

fn design_md() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/design.md")
}

/// One run's result.
struct Case {
    kind: String,
    col: Column,
    outcome: Outcome,
    out: Output,
}

/// Every kind at every column, run once per test binary (both tests use it),
/// on parallel threads; plus the program's list of kinds.
struct Suite {
    kinds: Vec<(String, String)>,
    cases: Vec<Case>,
}

fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(run_suite)
}

fn run_suite() -> Suite {
    let dir = TempDir::new("misuse");
    let exe = compile("misuse.c", dir.path());
    let mut list = Command::new(&exe);
    list.arg("list");
    let kinds: Vec<(String, String)> = run_ok(list, LIMIT)
        .lines()
        .map(|l| {
            let (k, w) = l.split_once('\t').expect("misuse list: KIND<TAB>what");
            assert!(
                !w.contains('|'),
                "a description with | breaks the table: {l}"
            );
            (k.to_string(), w.to_string())
        })
        .collect();
    let jobs: Vec<(usize, Column)> = (0..kinds.len())
        .flat_map(|k| columns().into_iter().map(move |c| (k, c)))
        .collect();
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
    std::thread::scope(|s| {
        for _ in 0..threads.min(16) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(k, col)) = jobs.get(i) else { break };
                let mut cmd = preloaded(Command::new(&exe), SUITE_PROFILES[col.profile]);
                cmd.arg(&kinds[k].0).arg(col.size.to_string());
                no_core_dump(&mut cmd);
                let out = run(cmd, LIMIT);
                let outcome = classify(&out).unwrap_or_else(|e| {
                    panic!(
                        "misuse {} {} ({}): {e}",
                        kinds[k].0,
                        col.size,
                        column_label(col)
                    )
                });
                done.lock().expect("results").push(Case {
                    kind: kinds[k].0.clone(),
                    col,
                    outcome,
                    out,
                });
            });
        }
    });
    let mut cases = done.into_inner().expect("results");
    let order = |c: &Case| (kinds.iter().position(|k| k.0 == c.kind), c.col);
    cases.sort_by_key(order);
    Suite { kinds, cases }
}

/// The table of this run's outcomes.
fn measured(suite: &Suite) -> Table {
    let cols = columns();
    let rows = suite
        .kinds
        .iter()
        .map(|(kind, what)| Row {
            kind: kind.clone(),
            what: what.clone(),
            cells: cols
                .iter()
                .map(|c| {
                    suite
                        .cases
                        .iter()
                        .find(|x| &x.kind == kind && x.col == *c)
                        .expect("every case ran")
                        .outcome
                })
                .collect(),
        })
        .collect();
    Table { rows }
}

/// The outcomes equal docs/design.md's table (`HAKMEM_BLESS=1`: rewrites it).
#[test]
fn outcomes_match_the_design_table() {
    let suite = suite();
    let now = measured(suite);
    let rendered = format!("\n{}", now.render());
    let path = design_md();
    let doc = std::fs::read_to_string(&path).expect("reading docs/design.md");
    let (range, old_text) = between_markers(&doc).unwrap_or_else(|e| panic!("docs/design.md: {e}"));
    if std::env::var_os("HAKMEM_BLESS").is_some_and(|v| v == "1") {
        let mut new_doc = doc.clone();
        new_doc.replace_range(range, &rendered);
        std::fs::write(&path, new_doc).expect("writing docs/design.md");
        println!("blessed docs/design.md's misuse table:{rendered}");
        return;
    }
    let old =
        Table::parse(old_text).unwrap_or_else(|e| panic!("docs/design.md's misuse table: {e}"));
    let changes = diff(&old, &now);
    assert!(
        changes.is_empty(),
        "the misuse outcomes differ from docs/design.md's table ({} cells):\n{}\n\
         If the change is intended, rerun with HAKMEM_BLESS=1 to rewrite the table.",
        changes.len(),
        changes.join("\n")
    );
    assert!(
        old_text == rendered,
        "docs/design.md's misuse table is out of date (descriptions or totals); rerun \
         with HAKMEM_BLESS=1. Now:{rendered}"
    );
}

/// Under `hardened` every case is caught or harmless; every caught case (any
/// profile) wrote exactly one `hakmem:` line before it aborted.
#[test]
fn hardened_catches_every_misuse() {
    let suite = suite();
    let mut failures = Vec::new();
    for c in &suite.cases {
        let name = format!("{} @ {}", c.kind, column_label(c.col));
        if c.outcome == Outcome::Caught {
            if let Err(e) = hakmem_abort_line(&c.out) {
                failures.push(format!("{name}: {e}"));
            }
        }
        if SUITE_PROFILES[c.col.profile] == Some("hardened") && !c.outcome.stopped() {
            failures.push(format!(
                "{name}: {} (want caught or harmless)\nstdout: {}stderr: {}",
                c.outcome.name(),
                String::from_utf8_lossy(&c.out.stdout),
                String::from_utf8_lossy(&c.out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} misuse cases not stopped as they must be:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// usable-size-overflow writes what malloc_usable_size allows: it must be
/// harmless in every profile (an abort would be hakmem contradicting itself).
#[test]
fn writing_the_usable_size_is_allowed() {
    for c in suite()
        .cases
        .iter()
        .filter(|c| c.kind == "usable-size-overflow")
    {
        assert_eq!(
            c.outcome,
            Outcome::Harmless,
            "usable-size-overflow @ {}: stdout {} stderr {}",
            column_label(c.col),
            String::from_utf8_lossy(&c.out.stdout),
            String::from_utf8_lossy(&c.out.stderr)
        );
    }
}

// ---- the harness itself --------------------------------------------------------

fn sample() -> Table {
    let n = columns().len();
    Table {
        rows: vec![
            Row {
                kind: "double-free".into(),
                what: "free(p); free(p)".into(),
                cells: vec![Outcome::Caught; n],
            },
            Row {
                kind: "overflow-1".into(),
                what: "writes 1 byte past the end".into(),
                cells: (0..n)
                    .map(|i| Outcome::ALL[i % Outcome::ALL.len()])
                    .collect(),
            },
        ],
    }
}

#[test]
fn table_round_trips_through_markdown() {
    let t = sample();
    let text = t.render();
    assert_eq!(Table::parse(&text), Ok(t.clone()), "{text}");
    // default: 3 caught + caught, harmless, missed; hardened: 3 caught +
    // crashed, hung, caught.
    assert!(
        text.contains(
            "Totals (caught or harmless): hardened catches 4 of 6; default catches 5 of 6."
        ),
        "{text}"
    );
    let doc = format!("intro\n{START}\n{text}{END}\nrest\n");
    let (range, inner) = between_markers(&doc).expect("markers");
    assert_eq!(&doc[range], inner);
    assert_eq!(Table::parse(inner), Ok(t));
}

#[test]
fn table_parse_rejects_malformed_tables() {
    let text = sample().render();
    assert!(Table::parse(&text.replace("caught", "cought")).is_err());
    assert!(Table::parse(&text.replace("hardened 4 KiB", "hardened 4096")).is_err());
    assert!(Table::parse(&text.replace(" free(p); free(p) |", "")).is_err());
    assert!(Table::parse("no table here").is_err());
    assert!(between_markers("no markers").is_err());
    assert!(between_markers(&format!("{END} {START}")).is_err());
}

#[test]
fn diff_names_every_changed_cell() {
    let old = sample();
    let mut new = sample();
    assert!(diff(&old, &new).is_empty());
    new.rows[0].cells[4] = Outcome::Missed;
    new.rows.remove(1);
    new.rows.push(Row {
        kind: "free-stack".into(),
        what: "x".into(),
        cells: vec![Outcome::Crashed; columns().len()],
    });
    assert_eq!(
        diff(&old, &new),
        vec![
            "double-free @ hardened 4 KiB: table says caught, now missed".to_string(),
            "free-stack: new kind, not in the table".to_string(),
            "overflow-1: in the table, but the program has no such kind".to_string(),
        ]
    );
}

#[test]
fn classify_follows_the_programs_protocol() {
    use std::process::ExitStatus;
    let out = |raw: i32, stdout: &str, stderr: &str| Output {
        status: ExitStatus::from_raw(raw),
        stdout: stdout.into(),
        stderr: stderr.into(),
    };
    let exit = |code: i32| code << 8;
    assert_eq!(
        classify(&out(libc::SIGABRT, "", "hakmem: free(): double free\n")),
        Ok(Outcome::Caught)
    );
    assert_eq!(
        classify(&out(libc::SIGABRT, "", "free(): invalid pointer\n")),
        Ok(Outcome::Crashed)
    );
    assert_eq!(classify(&out(libc::SIGSEGV, "", "")), Ok(Outcome::Crashed));
    assert_eq!(classify(&out(libc::SIGALRM, "", "")), Ok(Outcome::Hung));
    assert_eq!(
        classify(&out(exit(0), "missed: x\n", "")),
        Ok(Outcome::Missed)
    );
    assert_eq!(
        classify(&out(exit(3), "harmless: x\n", "")),
        Ok(Outcome::Harmless)
    );
    assert_eq!(
        classify(&out(exit(4), "malloc failed\n", "")),
        Ok(Outcome::Crashed)
    );
    assert!(classify(&out(exit(2), "precondition failed: x\n", "")).is_err());
    assert!(classify(&out(exit(3), "", "")).is_err());
}
