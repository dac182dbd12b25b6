//! The operations kit run for real: Prometheus from Debian's `prometheus` package (a missing
//! tool fails the test with the install line), the shipped rule files, and every query of the
//! bundled Grafana dashboards with their variables set to match everything. Used by
//! tests/e2e_prometheus.rs and tests/shards_prometheus.rs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;

use super::{client, encode, Proc};

pub const INSTALL: &str =
    "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn yaml(rel: &str) -> Yaml {
    serde_yaml_ng::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// A Debian-packaged tool on PATH, or a failure that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{name}` is not installed; install it with: {INSTALL}"))
}

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

pub const RULES: &str = "deploy/prometheus/rules/backup-exporter.rules.yml";
pub const OVERRIDES: &str = "deploy/prometheus/rules/backup-exporter-overrides.rules.yml";

pub fn dashboards() -> Vec<(String, Json)> {
    files_in("grafana/dashboards", ".json")
        .into_iter()
        .map(|f| {
            let d = serde_json::from_str(&read(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (f, d)
        })
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus or Alertmanager process with its data directory.
pub struct Server {
    pub proc: Proc,
    pub url: String,
    pub _dir: tempfile::TempDir,
    /// One client for every API call (building one per call costs tens of milliseconds).
    http: reqwest::Client,
}

impl Server {
    /// `proc` serving on `url`, with its data in `dir`.
    pub fn new(proc: Proc, url: String, dir: tempfile::TempDir) -> Server {
        Server {
            proc,
            url,
            _dir: dir,
            http: client(),
        }
    }

    pub async fn wait_ready(&self, what: &str) {
        let url = format!("{}/-/ready", self.url);
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{what} did not become ready:\n{}",
                self.proc.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn to_yaml(v: &Yaml) -> String {
    serde_yaml_ng::to_string(v).unwrap()
}

pub async fn api(prom: &Server, path_and_query: &str) -> Json {
    let url = format!("{}/api/v1/{path_and_query}", prom.url);
    let resp = prom.http.get(&url).send().await.unwrap();
    let status = resp.status();
    let body: Json = resp.json().await.unwrap();
    assert!(
        status.is_success() && body["status"] == "success",
        "{url}: {status} {body}"
    );
    body["data"].clone()
}

pub async fn instant(prom: &Server, expr: &str) -> Vec<Json> {
    api(prom, &format!("query?query={}", encode(expr))).await["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A ZDM backup job answer for a pinned fixture, on server `e2e-server`.
pub fn job_answer(name: &str, status: &str, percent: &str, end: &str) -> Json {
    zdm_job_answer("e2e-server", name, status, percent, "00:10:00", end)
}

/// A ZDM backup job answer for a pinned fixture: job `name` on `server`, volume `/data`,
/// started 2025-01-15T01:00:00Z, with the progress, elapsed ("HH:MM:SS") and end given.
pub fn zdm_job_answer(
    server: &str,
    name: &str,
    status: &str,
    percent: &str,
    elapsed: &str,
    end: &str,
) -> Json {
    json!({
        "success": true,
        "requestID": "req-e2e",
        "data": {
            "system": { "name": server },
            "job": {
                "info": { "name": name, "partition": "/data" },
                "progressInfo": {
                    "status": status,
                    "percent": percent,
                    "message": "e2e",
                    "start": "2025-01-15T01:00:00Z",
                    "elapsed": elapsed,
                    "end": end
                },
                "log": []
            }
        },
        "message": "Backup monitoring info",
        "timestamp": "2025-01-15T10:30:00Z"
    })
}

/// One query a dashboard would send, with Grafana's variables set to match everything.
pub struct PanelQuery {
    pub board: String,
    pub what: String,
    pub expr: String,
    pub instant: bool,
}

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

/// The shipped Prometheus configuration (deploy/prometheus/prometheus.yml) with every interval
/// 1s, the shipped rule files loaded from the source tree, no Alertmanager, and its scrape job
/// [`SCRAPE_JOB`] scraping `targets` (host:port).
pub fn shipped_prometheus_config(targets: &[&str]) -> Yaml {
    let mut config = yaml("deploy/prometheus/prometheus.yml");
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    config["rule_files"] = Yaml::Sequence(
        [RULES, OVERRIDES]
            .iter()
            .map(|r| root().join(r).display().to_string().into())
            .collect(),
    );
    if let Some(alerting) = config.as_mapping_mut() {
        alerting.remove("alerting");
    }
    let mut found = false;
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        if job["job_name"].as_str() == Some(SCRAPE_JOB) {
            job["scrape_interval"] = "1s".into();
            job["scrape_timeout"] = "1s".into();
            job["static_configs"][0]["targets"] =
                Yaml::Sequence(targets.iter().map(|t| (*t).into()).collect());
            found = true;
        }
    }
    assert!(found, "prometheus.yml has no scrape job {SCRAPE_JOB}");
    config
}

/// The scrape job of the shipped Prometheus configuration (BackupExporterDown watches it).
pub const SCRAPE_JOB: &str = "backup-exporter";

/// Prometheus on a free loopback port with `config`, its TSDB in a temp dir.
pub fn start_prometheus_with(config: &Yaml) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, to_yaml(config)).unwrap();
    let port = free_port();
    let mut cmd = Command::new(tool("prometheus"));
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    Server::new(Proc::spawn(cmd), format!("http://127.0.0.1:{port}"), dir)
}
