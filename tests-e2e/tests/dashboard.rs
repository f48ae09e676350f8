//! Static checks of the Grafana dashboard and its provisioning files: what a
//! reviewer would otherwise check by eye on every change.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::collections::BTreeSet;

use hakmem_e2e::{
    annotation_queries, dashboard, label_values_vars, panel_queries, panels, promql_metric_names,
    ranges, read_repo_file,
};
use serde_json::{json, Value};
use soakd::epoch::Thresholds;
use soakd::metrics::metric;

fn ds_var() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

#[test]
fn datasource_is_a_variable_everywhere() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    let ds = vars
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a `datasource` variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");

    for p in panels(&d) {
        assert_eq!(p["datasource"], ds_var(), "panel {} datasource", p["title"]);
        let targets = p["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            assert_eq!(
                t["datasource"],
                ds_var(),
                "panel {} target {}",
                p["title"],
                t["refId"]
            );
        }
    }
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], ds_var(), "variable {}", v["name"]);
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        assert_eq!(a["datasource"], ds_var(), "annotation {}", a["name"]);
    }
    // Nothing anywhere names a concrete datasource: the only uids are the
    // dashboard's own and the variable.
    let mut uids = BTreeSet::new();
    collect_uids(&d, &mut uids);
    uids.remove("${datasource}");
    assert_eq!(
        uids,
        BTreeSet::from([d["uid"].as_str().unwrap().to_string()])
    );
}

fn collect_uids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "uid" {
                    out.insert(x.as_str().expect("uid is a string").to_string());
                }
                collect_uids(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_uids(x, out)),
        _ => {}
    }
}

#[test]
fn every_panel_has_a_unit_and_a_description() {
    let d = dashboard();
    for p in panels(&d) {
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
        assert!(!unit.is_empty(), "panel {} has no unit", p["title"]);
        let desc = p["description"].as_str().unwrap_or("");
        assert!(
            desc.len() >= 20,
            "panel {} has no real description",
            p["title"]
        );
    }
}

#[test]
fn range_selectors_use_rate_interval() {
    let d = dashboard();
    for q in panel_queries(&d).into_iter().chain(annotation_queries(&d)) {
        for r in ranges(&q.expr) {
            assert_eq!(
                r, "$__rate_interval",
                "{}: range [{r}] in {}",
                q.place, q.expr
            );
        }
        for f in ["rate(", "irate(", "increase(", "changes("] {
            if q.expr.contains(f) {
                assert!(
                    q.expr.contains("[$__rate_interval]"),
                    "{}: {f} without a range",
                    q.place
                );
            }
        }
    }
}

/// With many soakd instances on one Prometheus, a selector that ignores the
/// variables mixes them up: every selector filters on both.
#[test]
fn every_selector_filters_on_instance_and_profile() {
    let d = dashboard();
    for q in panel_queries(&d).into_iter().chain(annotation_queries(&d)) {
        let selectors = q.expr.matches('{').count();
        assert!(
            selectors > 0,
            "{}: no label matchers in {}",
            q.place,
            q.expr
        );
        assert_eq!(
            q.expr.matches(r#"instance=~"$instance""#).count(),
            selectors,
            "{}",
            q.place
        );
        assert_eq!(
            q.expr.matches(r#"profile=~"$profile""#).count(),
            selectors,
            "{}",
            q.place
        );
    }
    let vars = label_values_vars(&d);
    let names: Vec<_> = vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["instance", "profile"]);
    for v in &vars {
        assert_eq!(
            v.label, v.name,
            "variable {} reads label {}",
            v.name, v.label
        );
    }
}

/// The panels the issue asks for, by the metrics they show.
#[test]
fn panels_cover_what_operators_need() {
    let d = dashboard();
    let shown: BTreeSet<String> = panel_queries(&d)
        .iter()
        .flat_map(|q| promql_metric_names(&q.expr))
        .collect();
    for m in [
        metric::ops,
        metric::throughput,
        metric::epoch_cv,
        metric::current_cv,
        metric::rss,
        metric::epoch_drift,
        metric::current_drift,
        metric::syscalls,
        metric::epoch_syscalls_per_op,
        metric::epoch_pass,
        metric::epoch_rss_trend,
        metric::epoch_throughput_trend,
        metric::threshold,
        metric::mapped,
        metric::superslabs,
        metric::process_cpu_seconds,
        metric::process_open_fds,
        metric::host_load1,
        metric::host_others_cpu,
    ] {
        assert!(shown.contains(m.name), "no panel shows {}", m.name);
    }
    let qs = panel_queries(&d);
    let ops_rate = format!("rate({}{{", metric::ops.name);
    assert!(
        qs.iter().any(|q| q.expr.contains(&ops_rate)),
        "throughput as a rate"
    );
    let table = panels(&d)
        .into_iter()
        .find(|p| p["type"] == "table")
        .expect("an epoch verdict table");
    assert!(table["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{}{{", metric::epoch_pass.name)));
}

/// Each judged figure is drawn beside its profile's own threshold, read
/// from `soakd_threshold` (a fixed line would be right for one profile
/// only), and the threshold series is drawn as a dashed red line.
#[test]
fn figures_are_drawn_against_their_profiles_thresholds() {
    let d = dashboard();
    let figure = |check: &str| match check {
        "cv" => metric::epoch_cv,
        "rss_drift" => metric::epoch_drift,
        "rss_trend" => metric::epoch_rss_trend,
        "throughput_trend" => metric::epoch_throughput_trend,
        "syscalls_per_op" => metric::epoch_syscalls_per_op,
        other => panic!("no figure for check {other}"),
    };
    for (check, _) in Thresholds::default().by_check() {
        let want = format!("{}{{check=\"{check}\"", metric::threshold.name);
        let panel = panels(&d)
            .into_iter()
            .find(|p| {
                p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t["expr"].as_str().unwrap_or("").contains(&want))
            })
            .unwrap_or_else(|| panic!("no panel draws {want}"));
        let targets = panel["targets"].as_array().unwrap();
        let shows_figure = targets
            .iter()
            .any(|t| promql_metric_names(t["expr"].as_str().unwrap()).contains(figure(check).name));
        assert!(
            shows_figure,
            "panel {} draws {want} without its figure",
            panel["title"]
        );
        let ref_id = targets
            .iter()
            .find(|t| t["expr"].as_str().unwrap().contains(&want))
            .unwrap()["refId"]
            .clone();
        let styled = panel["fieldConfig"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|o| o["matcher"]["id"] == "byFrameRefID" && o["matcher"]["options"] == ref_id);
        assert!(
            styled,
            "panel {}: {want} is not styled as a threshold",
            panel["title"]
        );
    }
    for p in panels(&d) {
        let style = &p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"];
        assert!(
            style.is_null() || style == "off",
            "panel {} draws a fixed threshold line ({style})",
            p["title"]
        );
    }
}

#[test]
fn panels_have_unique_ids_and_do_not_overlap() {
    let d = dashboard();
    let ps = panels(&d);
    let ids: BTreeSet<_> = ps
        .iter()
        .map(|p| p["id"].as_u64().expect("panel id"))
        .collect();
    assert_eq!(ids.len(), ps.len(), "panel ids are unique");
    let rect = |p: &Value| {
        let g = &p["gridPos"];
        let n = |k: &str| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("panel {} gridPos.{k}", p["title"]))
        };
        (n("x"), n("y"), n("w"), n("h"))
    };
    for (i, a) in ps.iter().enumerate() {
        let (ax, ay, aw, ah) = rect(a);
        assert!(ax + aw <= 24, "panel {} is wider than the grid", a["title"]);
        for b in &ps[i + 1..] {
            let (bx, by, bw, bh) = rect(b);
            let apart = ax + aw <= bx || bx + bw <= ax || ay + ah <= by || by + bh <= ay;
            assert!(apart, "panels {} and {} overlap", a["title"], b["title"]);
        }
    }
}

#[test]
fn provisioning_matches_the_prometheus_config() {
    let ds: serde_yaml::Value = serde_yaml::from_str(&read_repo_file(
        "dashboards/grafana/provisioning/datasources/prometheus.yml",
    ))
    .expect("datasource provisioning is YAML");
    let source = &ds["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    let prom: serde_yaml::Value =
        serde_yaml::from_str(&read_repo_file("dashboards/prometheus/prometheus.yml")).unwrap();
    // $__rate_interval is derived from the datasource's scrape interval.
    assert_eq!(
        source["jsonData"]["timeInterval"], prom["global"]["scrape_interval"],
        "Grafana's timeInterval must equal Prometheus's scrape_interval"
    );

    let dp: serde_yaml::Value = serde_yaml::from_str(&read_repo_file(
        "dashboards/grafana/provisioning/dashboards/soakd.yml",
    ))
    .expect("dashboard provisioning is YAML");
    let provider = &dp["providers"][0];
    assert_eq!(provider["type"], "file");
    assert!(provider["options"]["path"]
        .as_str()
        .is_some_and(|p| !p.is_empty()));
}
