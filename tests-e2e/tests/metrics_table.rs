//! soakd's metric table (`soakd::metrics::TABLE`) against what is written
//! about it elsewhere: docs/metrics.md documents exactly its rows (type and
//! labels included), and the dashboard, the rules and the rules' promtool
//! tests name only its metrics. No soakd runs here; `live_metrics.rs` holds
//! a live soakd's /metrics to the same table.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::collections::{BTreeMap, BTreeSet};

use hakmem_e2e::{
    dashboard, dashboard_metric_uses, promql_metric_names, read_repo_file, rules, workspace_root,
};
use soakd::metrics::{MetricDef, TABLE};

/// Series Prometheus makes itself.
const FROM_PROMETHEUS: &[&str] = &["up"];

/// A row of one of docs/metrics.md's metric tables (header `| metric | type |`).
#[derive(Debug)]
struct DocRow {
    name: String,
    kind: String,
    /// Backticked words followed by ` =` or ` (`: `op` in
    /// "`op` = `alloc` or `free`", `version` in "`version` (soakd's)".
    labels: BTreeSet<String>,
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn unquote(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`')
}

fn label_names(cell: &str) -> BTreeSet<String> {
    let parts: Vec<&str> = cell.split('`').collect();
    // Odd indices are inside backticks.
    (1..parts.len())
        .step_by(2)
        .filter(|&i| {
            let after = parts.get(i + 1).copied().unwrap_or("");
            after.starts_with(" =") || after.starts_with(" (")
        })
        .map(|i| parts[i].to_string())
        .collect()
}

/// docs/metrics.md's tables: metric rows, and the first column of every
/// other table (`| series | from |`: Prometheus's and the rules' series).
fn documented() -> (Vec<DocRow>, BTreeSet<String>) {
    let text = read_repo_file("docs/metrics.md");
    let (mut metrics, mut others) = (Vec::new(), BTreeSet::new());
    let mut header: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with('|') {
            header.clear();
            continue;
        }
        let c = cells(line);
        if header.is_empty() {
            header = c.iter().map(|s| s.to_string()).collect();
            continue;
        }
        if c[0].starts_with("---") {
            continue;
        }
        let name = unquote(c[0]).unwrap_or_else(|| panic!("not a `name`: {line}"));
        if header[..2] == ["metric", "type"] {
            let labels = header.iter().position(|h| h == "labels").expect("labels");
            metrics.push(DocRow {
                name: name.to_string(),
                kind: c[1].to_string(),
                labels: label_names(c[labels]),
            });
        } else {
            others.insert(name.to_string());
        }
    }
    (metrics, others)
}

fn recorded() -> BTreeSet<String> {
    rules()
        .into_iter()
        .filter(|r| r.recording)
        .map(|r| r.name)
        .collect()
}

fn table() -> BTreeMap<&'static str, &'static MetricDef> {
    TABLE.iter().map(|d| (d.name, d)).collect()
}

#[test]
fn docs_document_exactly_the_table() {
    let table = table();
    let (rows, others) = documented();
    let mut seen = BTreeSet::new();
    for row in &rows {
        let def = table
            .get(row.name.as_str())
            .unwrap_or_else(|| panic!("docs/metrics.md documents {}, not in TABLE", row.name));
        assert!(seen.insert(row.name.clone()), "{} twice", row.name);
        assert_eq!(row.kind, def.kind.as_str(), "type of {}", row.name);
        let want: BTreeSet<String> = def.labels.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            row.labels, want,
            "labels of {} in docs/metrics.md",
            row.name
        );
    }
    let missing: Vec<_> = table.keys().filter(|n| !seen.contains(**n)).collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");

    // The other table: what Prometheus and the recording rules add.
    let mut expected = recorded();
    expected.extend(FROM_PROMETHEUS.iter().map(|s| s.to_string()));
    assert_eq!(
        others, expected,
        "docs/metrics.md's series from Prometheus and the rules"
    );
}

#[test]
fn dashboards_and_rules_name_only_table_metrics() {
    let table = table();
    let recorded = recorded();
    let known =
        |m: &str| table.contains_key(m) || recorded.contains(m) || FROM_PROMETHEUS.contains(&m);
    let d = dashboard();
    let mut named = dashboard_metric_uses(&d);
    for r in rules() {
        named.extend(
            promql_metric_names(&r.expr)
                .into_iter()
                .map(|m| (format!("rule {}", r.name), m)),
        );
    }
    // The promtool tests' input series stand for what soakd exports.
    let tests_dir = workspace_root().join("dashboards/prometheus/tests");
    for f in std::fs::read_dir(&tests_dir).unwrap() {
        let path = f.unwrap().path();
        let y: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for t in y["tests"].as_sequence().into_iter().flatten() {
            for s in t["input_series"].as_sequence().into_iter().flatten() {
                let series = s["series"].as_str().expect("input series");
                let name = series.split('{').next().unwrap().trim();
                named.push((format!("{} input series", path.display()), name.into()));
            }
        }
    }
    assert!(named.len() > 20, "found too few metric names: {named:?}");
    let unknown: Vec<_> = named.iter().filter(|(_, m)| !known(m)).collect();
    assert!(unknown.is_empty(), "not in soakd's TABLE: {unknown:?}");
}
