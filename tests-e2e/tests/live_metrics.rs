//! A live soakd's /metrics against soakd's metric table and the dashboard:
//! it exports exactly the table's metrics, each with samples once an epoch
//! completed, so every metric the dashboard and the rules name (checked
//! against the table in `metrics_table.rs`) selects data.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::collections::BTreeSet;
use std::time::Duration;

use hakmem_e2e::{
    dashboard, dashboard_metric_uses, exposition_metric_names, promql_metric_names, rules,
    wait_for, workspace_root, Soakd,
};
use soakd::metrics::{metric, TABLE};

/// The value of the first sample line of `series` (a name, or a name and
/// the start of its labels), if any.
fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(['{', ' ']))
        .and_then(|l| l.rsplit(' ').next())
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
    let completed = metric::epochs_completed.name;
    assert_eq!(
        sample(&early, completed),
        Some("0"),
        "the first scrape came after the first 6 s epoch: is the machine overloaded?"
    );
    // The last completed epoch's figures (soakd_epoch_*, docs/metrics.md).
    for d in TABLE
        .iter()
        .filter(|d| d.starts_nan && d.name.starts_with("soakd_epoch_"))
    {
        assert_eq!(
            sample(&early, d.name),
            Some("NaN"),
            "{} before the first epoch",
            d.name
        );
    }
    assert_eq!(
        sample(&early, metric::epoch_pass.name),
        None,
        "no verdict before the first epoch"
    );

    let text = wait_for("soakd's first epoch", Duration::from_secs(60), || {
        let t = soakd.metrics();
        match sample(&t, completed) {
            Some(n) if n != "0" => Ok(t),
            other => Err(format!("{completed} = {other:?}")),
        }
    });
    let exported = exposition_metric_names(&text);

    let d = dashboard();
    let mut named = dashboard_metric_uses(&d);
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

    let table: BTreeSet<String> = TABLE.iter().map(|d| d.name.to_string()).collect();
    assert_eq!(
        exported, table,
        "metrics with samples on a live /metrics (left) against soakd's TABLE (right)"
    );
    soakd.assert_running();
}
