//! examples/monitoring/: the Prometheus rules pass `promtool check rules` and every alert has
//! a `promtool test rules` case that passes; the Grafana dashboard is a valid dashboard
//! (tests/data/grafana-dashboard.schema.json) whose panels fit the grid; and every metric
//! either names is one a running daemon really exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command as StdCommand;

use super::daemon::eventually;
use super::{STARTUP, git_watch, two_agent_repo};
use crate::support::*;

fn monitoring(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/monitoring")
        .join(file)
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn promtool(args: &[&str]) {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out = StdCommand::new(promtool)
        .args(args)
        .current_dir(monitoring(""))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rules() -> serde_yaml::Value {
    let text = std::fs::read_to_string(monitoring("castsync.rules.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn alert_names() -> BTreeSet<String> {
    rules()["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_check_and_each_alert_has_a_passing_unit_test() {
    promtool(&["check", "rules", "castsync.rules.yaml"]);
    promtool(&["test", "rules", "castsync.rules.test.yaml"]);
    let text = std::fs::read_to_string(monitoring("castsync.rules.test.yaml")).unwrap();
    let tests: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let tested: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap().iter())
        .filter(|case| {
            case["exp_alerts"]
                .as_sequence()
                .is_some_and(|a| !a.is_empty())
        })
        .filter_map(|case| case["alertname"].as_str().map(str::to_owned))
        .collect();
    let alerts = alert_names();
    for wanted in [
        "CastsyncDown",
        "CastsyncApplyFailing",
        "CastsyncDriftRepeated",
        "CastsyncRateBudgetExhausted",
        "CastsyncWebhookRefused",
    ] {
        assert!(alerts.contains(wanted), "{wanted} missing from the rules");
    }
    assert_eq!(
        tested, alerts,
        "every alert needs a test case in which it fires"
    );
}

#[test]
fn the_dashboard_is_a_valid_grafana_dashboard_whose_panels_fit_the_grid() {
    let dashboard = read_json(&monitoring("grafana-dashboard.json"));
    let schema = read_json(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/grafana-dashboard.schema.json"),
    );
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&dashboard)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "{} is wider than the grid", p["title"]);
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
    }
}

/// The metric names a PromQL text uses (`castsync_…`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("castsync_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_rules_use_only_metrics_castsync_exports() {
    let dashboard = read_json(&monitoring("grafana-dashboard.json"));
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            used.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        used.extend(metric_names(&variable["definition"].to_string()));
    }
    for group in rules()["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            used.extend(metric_names(rule["expr"].as_str().unwrap()));
        }
    }
    assert!(used.len() >= 10, "{used:?}");

    // A daemon that has done a bit of everything: applied, failed an agent, notified, and
    // refused a webhook delivery (a metric family shows once it has a series).
    let receiver =
        crate::support::forge::FakeForge::start(crate::support::forge::Kind::Receiver, "");
    let emu = Emulator::start(&["--agents", "alpha,beta,gamma"]);
    let repo = two_agent_repo();
    repo.config(&format!(
        "notify:\n  - webhook: {{ url: '{}/hook' }}",
        receiver.url
    ));
    repo.raw_manifest("gamma", "agent: somebody-else\nsecrets:\n  G1: x\n");
    repo.commit_all("notify, and a broken agent");
    let d = git_watch(&repo, &emu, &[]);
    eventually(STARTUP, "the first reconcile", || {
        d.readyz().1["agents"].get("gamma").is_some()
    });
    assert_eq!(d.webhook("{}", None), 401);
    eventually(STARTUP, "a notification", || {
        d.get("/metrics")
            .1
            .contains("castsync_notifications_total{")
    });
    let (_, metrics) = d.get("/metrics");
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        exported.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                exported.insert(format!("{name}{suffix}"));
            }
        }
    }
    let missing: Vec<&String> = used.difference(&exported).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{metrics}");
}
