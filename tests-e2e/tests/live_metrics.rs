//! The dashboard, the rules and docs/metrics.md against what a live soakd
//! really exports on /metrics: every metric they name exists, and the
//! reference documents every metric there is.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::collections::BTreeSet;
use std::time::Duration;

use hakmem_e2e::{
    annotation_queries, dashboard, exposition_metric_names, label_values_vars, panel_queries,
    promql_metric_names, read_repo_file, rules, wait_for, workspace_root, Soakd,
};

/// The value of the first sample line of `series` (a name, or a name and
/// the start of its labels), if any.
fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
}

/// Metric names in docs/metrics.md's tables: a row's first cell, in backticks.
fn documented_metrics() -> BTreeSet<String> {
    read_repo_file("docs/metrics.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn everything_named_is_exported_by_a_live_soakd() {
    let dir = tempfile::tempdir().unwrap();
    let config = workspace_root().join("config/ci.toml");
    assert!(
        config.is_file(),
        "config/ci.toml (the ci profile) is missing"
    );
    // Short epochs, so the first one completes within seconds.
    let mut soakd = Soakd::start(dir.path(), &config, &["--epoch-secs", "6"]);

    // Before the first epoch ends, epoch figures are NaN and there are no
    // verdicts: the alert rules rely on that to stay quiet (see
    // dashboards/prometheus/rules/soakd.alerts.yml).
    let early = soakd.metrics();
    assert_eq!(
        sample(&early, "soakd_epochs_completed_total"),
        Some("0"),
        "the first scrape came after the first 6 s epoch: is the machine overloaded?"
    );
    for g in [
        "soakd_epoch_throughput_mean_ops_per_second",
        "soakd_epoch_throughput_cv_ratio",
        "soakd_epoch_rss_drift_ratio",
        "soakd_epoch_syscalls_per_op",
    ] {
        assert_eq!(sample(&early, g), Some("NaN"), "{g} before the first epoch");
    }
    assert_eq!(
        sample(&early, "soakd_epoch_pass"),
        None,
        "no verdict before the first epoch"
    );

    let text = wait_for("soakd's first epoch", Duration::from_secs(60), || {
        let t = soakd.metrics();
        match sample(&t, "soakd_epochs_completed_total") {
            Some(n) if n != "0" => Ok(t),
            other => Err(format!("soakd_epochs_completed_total = {other:?}")),
        }
    });
    let exported = exposition_metric_names(&text);

    let d = dashboard();
    let mut named: Vec<(String, String)> = Vec::new();
    for q in panel_queries(&d).into_iter().chain(annotation_queries(&d)) {
        named.extend(
            promql_metric_names(&q.expr)
                .into_iter()
                .map(|m| (q.place.clone(), m)),
        );
    }
    for v in label_values_vars(&d) {
        named.extend(
            promql_metric_names(&v.selector)
                .into_iter()
                .map(|m| (format!("variable {}", v.name), m)),
        );
    }
    let all_rules = rules();
    let recorded: BTreeSet<_> = all_rules
        .iter()
        .filter(|r| r.recording)
        .map(|r| r.name.clone())
        .collect();
    for r in &all_rules {
        named.extend(
            promql_metric_names(&r.expr)
                .into_iter()
                // `up` comes from Prometheus; recorded series from the rules.
                .filter(|m| m != "up" && !recorded.contains(m))
                .map(|m| (format!("rule {}", r.name), m)),
        );
    }
    assert!(named.len() > 20, "found too few metric names: {named:?}");
    let missing: Vec<_> = named
        .iter()
        .filter(|(_, m)| !exported.contains(m))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported by soakd: {missing:?}\nexported: {exported:?}"
    );

    let documented = documented_metrics();
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in docs/metrics.md: {undocumented:?}"
    );
    let extra: Vec<_> = documented
        .iter()
        .filter(|m| !exported.contains(*m) && *m != "up" && !recorded.contains(*m))
        .collect();
    assert!(
        extra.is_empty(),
        "in docs/metrics.md but not exported: {extra:?}"
    );
    soakd.assert_running();
}
