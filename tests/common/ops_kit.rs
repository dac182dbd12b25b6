//! The operations kit as files: the shipped rule files, manifests and Grafana dashboards read
//! from the source tree, and every query of the dashboards with their variables set to match
//! everything. No tool runs here: the fast tier checks their structure (tests/ops_kit.rs),
//! the end-to-end tier feeds them to a real Prometheus (tests/e2e/).

use std::path::PathBuf;

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// The source tree (the exporter package's root).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the source tree, by its path from the root.
pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A YAML file of the source tree.
pub fn yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// The files of `rel` whose names end in `ext`, as paths from the root, sorted.
pub fn files_in(rel: &str, ext: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(rel))
        .unwrap_or_else(|e| panic!("listing {rel}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .map(|n| format!("{rel}/{n}"))
        .collect();
    files.sort();
    files
}

/// The shipped rule file and its overrides.
pub const RULES: &str = "deploy/prometheus/rules/backup-exporter.rules.yml";
pub const OVERRIDES: &str = "deploy/prometheus/rules/backup-exporter-overrides.rules.yml";

/// Every bundled dashboard, as (path, JSON).
pub fn dashboards() -> Vec<(String, Json)> {
    files_in("grafana/dashboards", ".json")
        .into_iter()
        .map(|f| {
            let d = serde_json::from_str(&read(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f, d)
        })
        .collect()
}

/// One query a dashboard would send, with Grafana's variables set to match everything.
pub struct PanelQuery {
    pub board: String,
    pub what: String,
    pub expr: String,
    pub instant: bool,
}

/// `expr` with Grafana's variables replaced (every selector variable matches everything).
pub fn substitute(expr: &str) -> String {
    let mut out = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", "1m"),
        ("$__interval_ms", "5000"),
        ("$__interval", "5s"),
        ("$__range_s", "3600"),
        ("$__range_ms", "3600000"),
        ("$__range", "1h"),
    ] {
        out = out.replace(var, value);
    }
    for name in [
        "job_name", "upstream", "instance", "system", "server", "job",
    ] {
        out = out
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    assert!(!out.contains('$'), "unknown variable in {expr}");
    out
}

/// Every query of every bundled dashboard: panels, annotations and query variables.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        let board = d["title"].as_str().unwrap().to_string();
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    board: board.clone(),
                    what: format!("{board} / {} / {}", p["title"], t["refId"]),
                    expr: substitute(t["expr"].as_str().unwrap()),
                    instant: t["instant"] == true,
                });
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(expr) = a["expr"].as_str() {
                out.push(PanelQuery {
                    board: board.clone(),
                    what: format!("{board} / annotation {}", a["name"]),
                    expr: substitute(expr),
                    instant: false,
                });
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] != "query" {
                continue;
            }
            // label_values(<selector>, <label>): the series behind the variable.
            let def = v["definition"].as_str().unwrap();
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{file}: variable {} is {def}", v["name"]));
            let (selector, label) = inner.rsplit_once(',').unwrap();
            out.push(PanelQuery {
                board: board.clone(),
                what: format!("{board} / variable {}", v["name"]),
                expr: format!("group by ({}) ({})", label.trim(), substitute(selector)),
                instant: true,
            });
        }
    }
    out
}
