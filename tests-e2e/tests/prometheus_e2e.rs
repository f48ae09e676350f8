//! End to end: a real Prometheus, loaded with the repository's config and
//! rules (target rewritten to a live soakd, 1 s scrapes and rule
//! evaluations), scrapes a short soakd run of the ci profile. Every
//! dashboard query, with its variables substituted, and every recording rule
//! must return data through Prometheus's HTTP API.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::time::{Duration, Instant};

use hakmem_e2e::{
    annotation_queries, dashboard, label_values_vars, panel_queries, rules, substitute, url_encode,
    wait_for, workspace_root, Prometheus, Soakd,
};
use soakd::metrics::metric;

/// Grafana's $__rate_interval is max(4 x scrape interval, step + scrape
/// interval); with 1 s scrapes and a dashboard-sized step this is the order
/// of 10 s. soakd samples every 2 s (ci profile), counters move every scrape.
const RATE_INTERVAL: &str = "10s";

#[test]
fn prometheus_answers_every_dashboard_query_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config = workspace_root().join("config/ci.toml");
    assert!(
        config.is_file(),
        "config/ci.toml (the ci profile) is missing"
    );
    // 8 s epochs of 2 s samples after the ci profile's 4 s warm-up: the
    // first epoch completes with CV and drift defined.
    let mut soakd = Soakd::start(dir.path(), &config, &["--epoch-secs", "8"]);
    let metrics = soakd.metrics();
    let build_info = metric::build_info.name;
    let profile = metrics
        .lines()
        .find(|l| l.starts_with(&format!("{build_info}{{")))
        .and_then(|l| l.split("profile=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{build_info} carries profile"))
        .to_string();
    let mut prom = Prometheus::start(dir.path(), &soakd.addr);

    // Everything below shares one deadline: data appear within seconds of
    // soakd's first epoch; a query still empty after that is a real failure.
    let deadline = Instant::now() + Duration::from_secs(90);
    let left = || deadline.saturating_duration_since(Instant::now());
    let instance_sel = format!(r#"{{job="soakd", instance="{}"}}"#, soakd.addr);

    wait_for("Prometheus to scrape soakd (up == 1)", left(), || {
        soakd.assert_running();
        match prom.query(&format!("up{instance_sel} == 1"))?.len() {
            1 => Ok(()),
            n => Err(format!("{n} series")),
        }
    });
    wait_for("soakd's first epoch, through Prometheus", left(), || {
        soakd.assert_running();
        match prom
            .query(&format!(
                "{}{instance_sel} >= 1",
                metric::epochs_completed.name
            ))?
            .len()
        {
            0 => Err("no epoch completed yet".into()),
            _ => Ok(()),
        }
    });

    let d = dashboard();
    let addr = soakd.addr.clone();
    let vars = [
        ("instance", addr.as_str()),
        ("profile", profile.as_str()),
        ("__rate_interval", RATE_INTERVAL),
    ];
    for q in panel_queries(&d) {
        let expr = substitute(&q.expr, &vars);
        let result = wait_for(
            &format!("{} to return data: {expr}", q.place),
            left(),
            || {
                soakd.assert_running();
                let r = prom.query(&expr)?;
                if r.is_empty() {
                    return Err("empty result".into());
                }
                Ok(r)
            },
        );
        // Each series is this soakd's (the variables really filter).
        for s in &result {
            let labels = &s["metric"];
            if let Some(i) = labels["instance"].as_str() {
                assert_eq!(i, addr, "{}: {s}", q.place);
            }
        }
    }

    // Annotations are range queries over the dashboard's time range: the
    // epoch boundary must show up in it.
    for q in annotation_queries(&d) {
        let expr = substitute(&q.expr, &vars);
        wait_for(
            &format!("{} to mark an epoch: {expr}", q.place),
            left(),
            || match prom.query_range(&expr, 120)?.len() {
                0 => Err("empty result".into()),
                _ => Ok(()),
            },
        );
    }

    for v in label_values_vars(&d) {
        let selector = substitute(&v.selector, &vars);
        let expected = if v.label == "instance" {
            addr.as_str()
        } else {
            profile.as_str()
        };
        let path = format!(
            "/api/v1/label/{}/values?match[]={}",
            v.label,
            url_encode(&selector)
        );
        wait_for(
            &format!("variable {} to list {expected}", v.name),
            left(),
            || {
                let values = prom.api(&path)?;
                if values
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == expected))
                {
                    Ok(())
                } else {
                    Err(format!("values: {values}"))
                }
            },
        );
    }

    let all_rules = rules();
    for r in all_rules.iter().filter(|r| r.recording) {
        let expr = format!("{}{instance_sel}", r.name);
        wait_for(
            &format!("recording rule {} to have data", r.name),
            left(),
            || match prom.query(&expr)?.len() {
                0 => Err("empty result".into()),
                _ => Ok(()),
            },
        );
    }

    // Every rule, alerts included, is loaded and evaluates without error.
    let groups = prom.api("/api/v1/rules").expect("GET /api/v1/rules");
    let loaded: Vec<_> = groups["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        loaded.len(),
        all_rules.len(),
        "rules loaded by Prometheus: {loaded:?}"
    );
    for r in &loaded {
        assert_eq!(
            r["health"], "ok",
            "rule {} evaluates with an error: {r}",
            r["name"]
        );
    }
    soakd.assert_running();
}
