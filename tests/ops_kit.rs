//! The operations kit (deploy/, grafana/, docs/runbook.md) read as files and cross-checked:
//! every alert documented and unit tested, the operator's PrometheusRules equal to the rule
//! files, the example scrape config, manifests, systemd unit and Dockerfile in agreement, the
//! dashboards well-formed. No tool runs here; promtool, amtool and a real Prometheus and
//! Alertmanager check the same files in the end-to-end tier (tests/e2e/alerts_and_dashboards.rs).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;

use crate::common::ops_kit::*;

/// Every alerting rule of the shipped rule file, as (name, rule).
fn alert_rules() -> Vec<(String, Yaml)> {
    let rules = yaml(RULES);
    let mut out = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let Some(name) = rule["alert"].as_str() {
                out.push((name.to_string(), rule.clone()));
            }
        }
    }
    out
}

/// Every alert is unit tested (deploy/prometheus/tests/, run by promtool in the end-to-end
/// tier), with a case where it fires and one where it does not.
#[test]
fn every_alert_has_a_firing_and_a_non_firing_unit_test() {
    let tests = files_in("deploy/prometheus/tests", ".yml");
    assert!(!tests.is_empty(), "no rule unit tests");
    let mut cases: BTreeSet<(String, bool)> = BTreeSet::new();
    for file in &tests {
        for test in yaml(file)["tests"].as_sequence().unwrap() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let fires = case["exp_alerts"]
                    .as_sequence()
                    .is_some_and(|a| !a.is_empty());
                cases.insert((case["alertname"].as_str().unwrap().to_string(), fires));
            }
        }
    }
    for (name, _) in alert_rules() {
        for fires in [true, false] {
            assert!(
                cases.contains(&(name.clone(), fires)),
                "{name} needs a {} case in deploy/prometheus/tests/",
                if fires { "firing" } else { "non-firing" }
            );
        }
    }
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_section() {
    let runbook = read("docs/runbook.md");
    let headings: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_string())
        .collect();
    let alerts = alert_rules();
    let names: BTreeSet<&str> = alerts.iter().map(|(n, _)| n.as_str()).collect();
    for required in [
        "BackupJobFailed",
        "BackupJobNoRecentSuccess",
        "BackupJobStuck",
        "BackupJobTooLong",
        "BackupTargetDown",
        "BackupUpstreamAuthFailing",
        "BackupExporterDown",
    ] {
        assert!(names.contains(required), "alert {required} is missing");
    }
    for (name, rule) in &alerts {
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                !rule["annotations"][key].as_str().unwrap_or("").is_empty(),
                "{name}: no {key}"
            );
        }
        // The base is set once, as the external label `runbook_base_url` (docs/deploy.md).
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(
                format!(
                    "{{{{ or $externalLabels.runbook_base_url \"docs\" }}}}/runbook.md#{}",
                    name.to_lowercase()
                )
                .as_str()
            ),
            "{name}: runbook_url"
        );
        assert!(
            headings.contains(name),
            "docs/runbook.md has no `## {name}` section"
        );
        // Since when (issue 21): every alert says it, as a time.
        let since = rule["annotations"]["since"].as_str().unwrap_or("");
        assert!(
            since.contains("humanizeTimestamp"),
            "{name}: no `since` annotation giving a time"
        );
        // Where to look: its dashboard.
        let dashboard = rule["annotations"]["dashboard_url"].as_str().unwrap_or("");
        assert!(
            dashboard
                .starts_with("{{ or $externalLabels.grafana_base_url \"\" }}/d/backup-exporter-"),
            "{name}: dashboard_url {dashboard:?}"
        );
        assert_eq!(
            rule["labels"]["service"].as_str(),
            Some("backup"),
            "{name}: service label"
        );
    }
}

#[test]
fn prometheus_rules_for_the_operator_match_the_rule_files() {
    for (manifest, rules) in [
        ("deploy/kubernetes/prometheusrule.yaml", RULES),
        ("deploy/kubernetes/prometheusrule-overrides.yaml", OVERRIDES),
    ] {
        let m = yaml(manifest);
        assert_eq!(m["kind"].as_str(), Some("PrometheusRule"), "{manifest}");
        assert_eq!(
            m["apiVersion"].as_str(),
            Some("monitoring.coreos.com/v1"),
            "{manifest}"
        );
        assert!(
            m["spec"] == yaml(rules),
            "{manifest} differs from {rules}: run deploy/kubernetes/sync-prometheusrule.sh"
        );
    }
}

/// The example scrape config scrapes the exporter's port under the job BackupExporterDown
/// watches, and loads only rule files that are shipped (promtool checks its syntax in the
/// end-to-end tier).
#[test]
fn example_scrape_config_scrapes_the_exporter_and_loads_the_shipped_rules() {
    let prom = yaml("deploy/prometheus/prometheus.yml");
    let job = prom["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j["job_name"].as_str() == Some("backup-exporter"))
        .expect("a scrape job named backup-exporter (BackupExporterDown watches it)");
    let target = job["static_configs"][0]["targets"][0].as_str().unwrap();
    assert!(target.ends_with(":10095"), "{target}");
    for file in prom["rule_files"].as_sequence().unwrap() {
        let name = Path::new(file.as_str().unwrap()).file_name().unwrap();
        assert!(
            root().join("deploy/prometheus/rules").join(name).is_file(),
            "rule_files names {name:?}, which deploy/prometheus/rules does not have"
        );
    }
}

/// Runs `backup-exporter --check-config` on `yaml` with `token_path` pointing at a token file.
fn check_config(what: &str, yaml: &str, token_path: &str) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "example-token\n").unwrap();
    assert!(yaml.contains(token_path), "{what}: no {token_path}");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml.replace(token_path, token.to_str().unwrap())).unwrap();
    let out = Command::new(crate::common::exporter_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what} is not a valid configuration:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_systemd_unit_and_dockerfile_agree() {
    for file in files_in("deploy/kubernetes", ".yaml") {
        let doc = yaml(&file);
        if file.ends_with("kustomization.yaml") {
            for res in doc["resources"].as_sequence().unwrap() {
                let res = res.as_str().unwrap();
                assert!(
                    root().join("deploy/kubernetes").join(res).is_file(),
                    "kustomization lists {res}"
                );
            }
            continue;
        }
        for key in ["apiVersion", "kind"] {
            assert!(doc[key].is_string(), "{file}: no {key}");
        }
        assert!(doc["metadata"]["name"].is_string(), "{file}: no name");
    }

    let deploy = yaml("deploy/kubernetes/deployment.yaml");
    let pod = &deploy["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/healthy")
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/-/ready")
    );
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(10095));
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(true)
    );
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let config_arg = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--config="))
        .expect("--config= argument");
    let config_dir = Path::new(config_arg).parent().unwrap();
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == config_dir.to_str())
        .expect("the config file's directory is a volume mount");
    let volume = pod["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .unwrap();
    let configmap = yaml("deploy/kubernetes/configmap.yaml");
    assert_eq!(volume["configMap"]["name"], configmap["metadata"]["name"]);
    let file_name = Path::new(config_arg).file_name().unwrap().to_str().unwrap();
    let config = configmap["data"][file_name]
        .as_str()
        .expect("the ConfigMap holds the config file");
    let secret_mount = mounts
        .iter()
        .find(|m| m["name"].as_str() == Some("secrets"))
        .unwrap();
    let token_path = format!("{}/zdm-token", secret_mount["mountPath"].as_str().unwrap());
    check_config("the ConfigMap's configuration", config, &token_path);

    storage_is_a_volume_of_its_own(&deploy, |claim| {
        let pvc = yaml("deploy/kubernetes/pvc.yaml");
        assert_eq!(pvc["kind"].as_str(), Some("PersistentVolumeClaim"));
        assert_eq!(
            Some(claim),
            pvc["metadata"]["name"].as_str(),
            "the Deployment mounts pvc.yaml"
        );
    });
    let sharded = yaml("deploy/kubernetes/sharded/statefulset.yaml");
    let templates = sharded["spec"]["volumeClaimTemplates"].clone();
    storage_is_a_volume_of_its_own(&sharded, |claim| {
        panic!("the StatefulSet's state is a volumeClaimTemplate, not the claim {claim}")
    });
    assert_eq!(
        sharded["spec"]["replicas"]
            .as_u64()
            .map(|_| templates.as_sequence().map(Vec::len)),
        Some(Some(1)),
        "one volumeClaimTemplate: each shard its own state"
    );

    let service = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(
        service["metadata"]["name"].as_str(),
        Some("backup-exporter")
    );
    assert_eq!(service["spec"]["selector"], pod["metadata"]["labels"]);
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"].as_u64(), Some(10095));
    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], port["name"]);
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            &service["metadata"]["labels"][k], v,
            "ServiceMonitor selector"
        );
    }

    let unit = read("deploy/systemd/backup-exporter.service");
    for line in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=zdm-token:",
        "--config /etc/backup-exporter/backup-exporter.yaml",
        "--storage.path /var/lib/backup-exporter",
        "StateDirectory=backup-exporter\n",
    ] {
        assert!(unit.contains(line), "the systemd unit lacks {line}");
        assert!(
            read("deploy/debian/backup-exporter.service").contains(line),
            "the packaged unit lacks {line}"
        );
    }
    check_config(
        "deploy/systemd/backup-exporter.yaml",
        &read("deploy/systemd/backup-exporter.yaml"),
        "/run/credentials/backup-exporter.service/zdm-token",
    );

    let dockerfile = read("deploy/docker/Dockerfile");
    for line in [
        "FROM rust:1-bookworm AS build",
        "cargo build --release --locked",
        "USER 65532:65532",
        "EXPOSE 10095",
        "--bin backup-exporter",
        "ENTRYPOINT [\"/usr/local/bin/backup-exporter\"]",
        "ENV BACKUP_EXPORTER_CONFIG=/etc/backup-exporter/backup-exporter.yaml",
        "COPY --from=build --chown=65532:65532 /out/state /var/lib/backup-exporter",
        "ENV BACKUP_EXPORTER_STORAGE_PATH=/var/lib/backup-exporter",
        "VOLUME [\"/var/lib/backup-exporter\"]",
    ] {
        assert!(dockerfile.contains(line), "the Dockerfile lacks {line}");
    }
}

/// `workload` (a Deployment or StatefulSet) passes `--storage.path` to a writable volume
/// mount of its own: a claim template, or a claim (handed to `claim`), never the config or
/// an emptyDir that a new pod would not see.
fn storage_is_a_volume_of_its_own(workload: &Yaml, claim: impl FnOnce(&str)) {
    let pod = &workload["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let dir = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str()?.strip_prefix("--storage.path="))
        .expect("--storage.path= argument");
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(dir))
        .unwrap_or_else(|| panic!("no volume mounted at --storage.path {dir}"));
    assert_ne!(mount["readOnly"].as_bool(), Some(true), "{dir} is writable");
    let name = mount["name"].as_str().unwrap();
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(name));
    match volume {
        Some(v) => claim(
            v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap_or_else(|| panic!("volume {name} is not a PersistentVolumeClaim")),
        ),
        None => {
            let templates = workload["spec"]["volumeClaimTemplates"]
                .as_sequence()
                .unwrap_or_else(|| panic!("volume {name}: neither a volume nor a claim template"));
            assert!(
                templates
                    .iter()
                    .any(|t| t["metadata"]["name"].as_str() == Some(name)),
                "no volumeClaimTemplate {name}"
            );
        }
    }
}

/// Every `datasource` value anywhere in a dashboard.
fn datasources<'a>(v: &'a Json, out: &mut Vec<&'a Json>) {
    match v {
        Json::Object(map) => {
            for (k, v) in map {
                if k == "datasource" {
                    out.push(v);
                }
                datasources(v, out);
            }
        }
        Json::Array(items) => items.iter().for_each(|v| datasources(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_and_provisioning_are_well_formed() {
    let boards = dashboards();
    let titles: BTreeSet<&str> = boards
        .iter()
        .map(|(_, d)| d["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        BTreeSet::from(["Backup overview", "Backup job", "Backup exporter health"])
    );
    let mut uids = BTreeSet::new();
    for (file, d) in &boards {
        assert!(d["schemaVersion"].as_u64().unwrap() >= 39, "{file}: schema");
        assert!(uids.insert(d["uid"].as_str().unwrap()), "{file}: uid");
        assert!(
            d["id"].is_null(),
            "{file}: id must be null for provisioning"
        );
        let vars = d["templating"]["list"].as_array().unwrap();
        let var = |name: &str| vars.iter().find(|v| v["name"] == name);
        let ds = var("datasource").unwrap_or_else(|| panic!("{file}: no datasource variable"));
        assert_eq!(ds["type"], "datasource");
        assert_eq!(ds["query"], "prometheus");
        let wanted: &[&str] = if d["uid"] == "backup-exporter-health" {
            &["system", "upstream"]
        } else {
            &["system", "upstream", "server", "job_name"]
        };
        for name in wanted {
            let v = var(name).unwrap_or_else(|| panic!("{file}: no ${name} variable"));
            assert_eq!(v["includeAll"], true, "{file}: ${name} has All");
            assert_eq!(
                v["allValue"], ".*",
                "{file}: ${name} All matches empty values"
            );
        }
        let mut found = Vec::new();
        datasources(d, &mut found);
        assert!(!found.is_empty());
        for ds in found {
            assert_eq!(
                ds,
                &json!({"type": "prometheus", "uid": "${datasource}"}),
                "{file}: every panel, target and variable uses the datasource variable"
            );
        }
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            let title = p["title"].as_str().unwrap();
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{file}: id of {title}"
            );
            let g = &p["gridPos"];
            assert!(
                g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
                "{file}: {title} is wider than the grid"
            );
            if p["type"] == "row" {
                continue;
            }
            assert!(
                p["fieldConfig"]["defaults"]["noValue"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty()),
                "{file}: {title} does not say what no data means (fieldConfig.defaults.noValue)"
            );
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            let refs: BTreeSet<&str> = targets
                .iter()
                .map(|t| t["refId"].as_str().unwrap())
                .collect();
            assert_eq!(refs.len(), targets.len(), "{file}: {title} refIds");
        }
    }

    let provider = yaml("grafana/dashboards/backup-exporter.yaml");
    let p = &provider["providers"][0];
    assert_eq!(p["type"].as_str(), Some("file"));
    assert_eq!(
        p["options"]["path"].as_str(),
        Some("/etc/grafana/provisioning/dashboards"),
        "the provider reads the folder it is mounted in"
    );
    let sources = yaml("grafana/datasources/backup-exporter.yaml");
    assert_eq!(
        sources["datasources"][0]["type"].as_str(),
        Some("prometheus")
    );
}

/// Every query the dashboards send parses into one the end-to-end tier can run: only known
/// Grafana variables, and query variables written as `label_values(<selector>, <label>)`.
#[test]
fn every_dashboard_query_uses_known_variables() {
    let queries = panel_queries();
    for board in ["Backup overview", "Backup job", "Backup exporter health"] {
        assert!(
            queries
                .iter()
                .any(|q| q.board == board && !q.expr.is_empty()),
            "no query on {board}"
        );
    }
}

/// Issue 21: the overview opens with the exporter's state (up, freshness) in its top row, and
/// counts of runs are whole numbers (round(), no decimals).
#[test]
fn overview_starts_with_the_exporter_and_run_counts_are_integers() {
    let boards = dashboards();
    let overview = &boards
        .iter()
        .find(|(_, d)| d["uid"] == "backup-exporter-overview")
        .expect("the overview")
        .1;
    let mut top: Vec<&Json> = overview["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["gridPos"]["y"] == 0)
        .collect();
    top.sort_by_key(|p| p["gridPos"]["x"].as_u64());
    let first: Vec<&str> = top
        .iter()
        .take(2)
        .map(|p| p["targets"][0]["expr"].as_str().unwrap())
        .collect();
    assert!(
        first[0].contains("backup_exporter:up"),
        "top left is the exporter's up: {first:?}"
    );
    assert!(
        first[1].contains("backup_target_last_success_time_seconds"),
        "then the data's freshness: {first:?}"
    );
    for (file, d) in &boards {
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap();
                if expr.contains("increase(backup_job_runs_total") && !expr.contains("/") {
                    assert!(
                        expr.contains("round("),
                        "{file}: {} counts runs without round(): {expr}",
                        p["title"]
                    );
                    let decimals =
                        p["fieldConfig"]["defaults"]["decimals"]
                            .as_u64()
                            .or_else(|| {
                                p["fieldConfig"]["overrides"]
                                    .as_array()?
                                    .iter()
                                    .flat_map(|o| o["properties"].as_array().into_iter().flatten())
                                    .find(|p| p["id"] == "decimals")?["value"]
                                    .as_u64()
                            });
                    assert_eq!(decimals, Some(0), "{file}: {} shows decimals", p["title"]);
                }
            }
        }
    }
}
