//! The page holds through a crash: simulator -> exporter with `--storage.path` ->
//! Prometheus with the shipped rule files -> Alertmanager with the shipped routing -> a
//! webhook in this test (resolved notifications on). A job fails and pages
//! (`BackupJobFailed`); the exporter is killed with SIGKILL and started again with the same
//! storage directory while its upstream answers 500. The alert must stay firing in
//! Prometheus (its `ALERTS_FOR_STATE`, the time it became active, never changes), no
//! resolved notification may reach the webhook, and the restarted exporter must export the
//! job's last success and failing-since from storage, with the values it had before.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::ops_kit::yaml;
use crate::common::{wait_for, Exporter, Proc, Sim};
use crate::prom::*;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// 2025-01-15T01:30:00Z: the end of the job's completed run.
const SUCCESS_END: f64 = 1_736_904_600.0;
/// 2025-01-16T01:20:00Z: the end of the failed run after it.
const FAILED_END: f64 = 1_736_990_400.0;
const JOB: &str = "e2e-restart";

/// Every notification the webhook received: (receiver path, body).
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Json)>>>);

impl Received {
    /// The statuses ("firing", "resolved") of every notified alert named `alertname` for
    /// the job.
    fn statuses(&self, alertname: &str) -> Vec<String> {
        let received = self.0.lock().unwrap();
        received
            .iter()
            .flat_map(|(_, body)| body["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["labels"]["alertname"] == alertname && a["labels"]["job_name"] == JOB)
            .map(|a| a["status"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// A webhook on loopback that records every POST (one request per connection, as
/// Alertmanager's webhook client sends them).
async fn webhook() -> (SocketAddr, Received, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let sink = received.clone();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), serve(sock, sink)).await;
            });
        }
    });
    (addr, received, task)
}

async fn serve(sock: tokio::net::TcpStream, sink: Received) -> std::io::Result<()> {
    let mut reader = BufReader::new(sock);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).await?;
    if let Ok(json) = serde_json::from_slice(&body) {
        sink.0.lock().unwrap().push((path, json));
    }
    reader
        .get_mut()
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await?;
    reader.get_mut().shutdown().await
}

/// Alertmanager with the shipped routing, 1s group timings, every receiver the webhook at
/// `/<receiver>` with resolved notifications on.
fn start_alertmanager(hook: SocketAddr) -> Server {
    let mut config = yaml("deploy/alertmanager/alertmanager.yml");
    config["route"]["group_wait"] = "1s".into();
    config["route"]["group_interval"] = "1s".into();
    for route in config["route"]["routes"].as_sequence_mut().unwrap() {
        for key in ["group_wait", "group_interval"] {
            if route.get(key).is_some() {
                route[key] = "1s".into();
            }
        }
    }
    for receiver in config["receivers"].as_sequence_mut().unwrap() {
        let name = receiver["name"].as_str().unwrap().to_string();
        *receiver = serde_yaml_ng::from_str(&format!(
            "name: {name}\nwebhook_configs: [{{url: \"http://{hook}/{name}\", send_resolved: true}}]"
        ))
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, to_yaml(&config)).unwrap();
    let port = free_port();
    let mut cmd = Command::new(tool("prometheus-alertmanager"));
    cmd.arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    Server::new(Proc::spawn(cmd), format!("http://127.0.0.1:{port}"), dir)
}

/// The value of the one series `expr` selects, if there is one.
async fn one(prom: &Server, expr: &str) -> Option<f64> {
    let result = instant(prom, expr).await;
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// The exporter over `config`, listening on `port` as well (Prometheus scrapes it there),
/// keeping its state in `storage`.
fn exporter(config: &str, port: u16, storage: &std::path::Path) -> Exporter {
    Exporter::start_with(
        config,
        &[
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
            "--storage.path",
            storage.to_str().unwrap(),
            "--storage.write-interval",
            "1s",
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_stays_paged_through_a_sigkill_restart_with_its_upstream_down() {
    for name in ["prometheus", "prometheus-alertmanager"] {
        tool(name);
    }
    let sim = Sim::start();
    sim.fixture(
        "backup_job",
        JOB,
        &job_answer(JOB, "complete", "100%", "2025-01-15T01:30:00Z"),
    )
    .await;
    let config = format!(
        "defaults:\n  interval: 500ms\n  timeout: 1s\nupstreams:\n\
         \x20 - name: zdm-e2e\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n\
         \x20   backup_jobs: [{JOB}]\n",
        sim.url()
    );
    let storage = tempfile::tempdir().unwrap();
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let first = exporter(&config, port, storage.path());
    let (hook, received, hook_task) = webhook().await;
    let am = start_alertmanager(hook);
    let mut prom_config = shipped_prometheus_config(&[&target]);
    prom_config["alerting"] = serde_yaml_ng::from_str(&format!(
        "alertmanagers: [{{static_configs: [{{targets: [\"{}\"]}}]}}]",
        am.url.trim_start_matches("http://")
    ))
    .unwrap();
    let prom = start_prometheus_with(&prom_config);
    am.wait_ready("alertmanager").await;
    prom.wait_ready("prometheus").await;

    let selector = format!("{{job_name=\"{JOB}\"}}");
    let last_success = format!("backup_job_last_success_time_seconds{selector}");
    let failing_since = format!("backup_job_failing_since_seconds{selector}");
    wait_for(
        "Prometheus to see the success",
        Duration::from_secs(30),
        || async { (one(&prom, &last_success).await == Some(SUCCESS_END)).then_some(()) },
    )
    .await;

    // The next run fails: paged.
    let mut failed = job_answer(JOB, "fail", "40%", "2025-01-16T01:20:00Z");
    failed["data"]["job"]["progressInfo"]["start"] = json!("2025-01-16T01:00:00Z");
    sim.fixture("backup_job", JOB, &failed).await;
    wait_for(
        "BackupJobFailed at the webhook",
        Duration::from_secs(30),
        || async {
            received
                .statuses("BackupJobFailed")
                .contains(&"firing".to_string())
                .then_some(())
        },
    )
    .await;
    assert_eq!(one(&prom, &failing_since).await, Some(FAILED_END));
    let active_since =
        format!("ALERTS_FOR_STATE{{alertname=\"BackupJobFailed\",job_name=\"{JOB}\"}}");
    let became_active = one(&prom, &active_since).await.expect("ALERTS_FOR_STATE");
    let state = storage.path().join("state.json");
    wait_for("the failure written", Duration::from_secs(10), || async {
        let text = std::fs::read_to_string(&state).ok()?;
        let state: Json = serde_json::from_str(&text).ok()?;
        state["jobs"]
            .as_array()?
            .iter()
            .any(|j| j["job_name"] == JOB && j["failing_since"] == json!(FAILED_END))
            .then_some(())
    })
    .await;

    // kill -9; the upstream goes down; the exporter comes back on the same address.
    first.proc.signal("KILL");
    let mut first = first;
    first.proc.wait_exit(Duration::from_secs(10));
    sim.fault("backup_job", JOB, "error500").await;
    let killed = Instant::now();
    let second = exporter(&config, port, storage.path());
    let up =
        format!("backup_target_up{{upstream=\"zdm-e2e\",kind=\"backup_job\",target=\"{JOB}\"}}");
    wait_for(
        "Prometheus to scrape the restarted exporter with its target down",
        Duration::from_secs(30),
        || async { (one(&prom, &up).await == Some(0.0)).then_some(()) },
    )
    .await;
    // What the restarted exporter says comes from storage: the status series are gone
    // (nothing polled), the last success and failing-since are the ones from before.
    let m = second.metrics().await;
    assert!(!m.contains("backup_job_status{"), "{m}");
    assert_eq!(one(&prom, &last_success).await, Some(SUCCESS_END));
    assert_eq!(one(&prom, &failing_since).await, Some(FAILED_END));

    // The page holds: evaluated for a while after the restart, the alert never went
    // inactive (its active-since time is the same) and no resolved notification came.
    while killed.elapsed() < Duration::from_secs(15) {
        assert_eq!(
            one(&prom, &active_since).await,
            Some(became_active),
            "BackupJobFailed went inactive and fired again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let changes = format!("changes({active_since}[1m])");
    assert_eq!(one(&prom, &changes).await, Some(0.0));
    let alerts: Json = crate::common::client()
        .get(format!("{}/api/v2/alerts", am.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let still =
        alerts.as_array().unwrap().iter().any(|a| {
            a["labels"]["alertname"] == "BackupJobFailed" && a["labels"]["job_name"] == JOB
        });
    assert!(still, "Alertmanager still holds the alert: {alerts}");
    let statuses = received.statuses("BackupJobFailed");
    assert!(
        !statuses.contains(&"resolved".to_string()),
        "a resolved notification reached the team: {statuses:?}"
    );
    hook_task.abort();
    drop(second);
}
