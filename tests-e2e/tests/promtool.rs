//! The Prometheus config and rules pass promtool's checks and their unit
//! tests (dashboards/prometheus/tests/), each firing and not-firing case.

#[global_allocator]
static A: hakmem::Hakmem = hakmem::Hakmem;

use std::process::Command;

use hakmem_e2e::{promtool, workspace_root};

/// Runs promtool in dashboards/prometheus/ and fails with its output unless
/// it exits 0.
fn promtool_ok(args: &[&str]) {
    let dir = workspace_root().join("dashboards/prometheus");
    let out = Command::new(promtool())
        .current_dir(&dir)
        .args(args)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `rules/*.yml` and `tests/*.yml`, expanded here since promtool takes files.
fn files(sub: &str) -> Vec<String> {
    let dir = workspace_root().join("dashboards/prometheus").join(sub);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| format!("{sub}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no .yml files in {}", dir.display());
    v
}

#[test]
fn promtool_check_config() {
    promtool_ok(&["check", "config", "prometheus.yml"]);
}

#[test]
fn promtool_check_rules() {
    let f = files("rules");
    let mut args = vec!["check", "rules"];
    args.extend(f.iter().map(String::as_str));
    promtool_ok(&args);
}

#[test]
fn promtool_test_rules() {
    let f = files("tests");
    let mut args = vec!["test", "rules"];
    args.extend(f.iter().map(String::as_str));
    promtool_ok(&args);
}

/// Every alert has unit tests that see it both firing and not firing: the
/// rule tests name each alert with non-empty and with empty exp_alerts.
#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let dir = workspace_root().join("dashboards/prometheus");
    let mut fired = std::collections::BTreeSet::new();
    let mut quiet = std::collections::BTreeSet::new();
    for f in files("tests") {
        let y: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join(&f)).unwrap()).unwrap();
        for t in y["tests"].as_sequence().into_iter().flatten() {
            for a in t["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().expect("alertname").to_string();
                let n = a["exp_alerts"].as_sequence().map_or(0, Vec::len);
                if n > 0 {
                    fired.insert(name)
                } else {
                    quiet.insert(name)
                };
            }
        }
    }
    for r in hakmem_e2e::rules().into_iter().filter(|r| !r.recording) {
        assert!(
            fired.contains(&r.name),
            "no promtool test sees alert {} firing",
            r.name
        );
        assert!(
            quiet.contains(&r.name),
            "no promtool test sees alert {} not firing",
            r.name
        );
    }
}
