//! The operations kit run for real: Prometheus and Alertmanager from Debian's `prometheus` and
//! `prometheus-alertmanager` packages (a missing tool fails the test with the install line),
//! with the shipped configuration and rule files ([`crate::common::ops_kit`]).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use serde_yaml_ng::Value as Yaml;

use crate::common::ops_kit::{root, yaml, OVERRIDES, RULES};
use crate::common::{client, encode, Proc};

pub const INSTALL: &str =
    "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager";

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
