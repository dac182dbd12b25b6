//! `--storage.path` and `forget_after` with the real binaries: the exporter killed with
//! SIGKILL comes back with each job's last success and failing-since while its upstream is
//! down, without phantom or lost runs; an unusable path stops the start naming it; a job's
//! last success outlives `stale_after` and goes at `forget_after`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use serde_json::json;

/// A ZDM backup job's answer (`/backups/monitoring/job/nightly`) in `status`.
fn job_answer(status: &str, start: &str, end: &str) -> serde_json::Value {
    json!({
        "success": true,
        "requestID": "req-storage",
        "data": {
            "system": { "name": "app-01" },
            "job": {
                "info": { "name": "nightly", "partition": "/data" },
                "progressInfo": {
                    "status": status,
                    "percent": "50%",
                    "message": "m",
                    "start": start,
                    "elapsed": "00:20:00",
                    "end": end
                },
                "log": []
            }
        },
        "message": "Backup monitoring info",
        "timestamp": "2025-01-16T10:30:00Z"
    })
}

const FAST: &str = "    interval: 300ms\n    timeout: 1s\n";
/// 2025-01-15T01:30:00Z: the end of the completed run.
const SUCCESS_END: f64 = 1_736_904_600.0;
/// 2025-01-16T01:20:00Z: the end of the failed run after it.
const FAILED_END: f64 = 1_736_990_400.0;

fn series(metric: &str) -> String {
    job_series(metric, "zdm", "backup", "nightly", "app-01", "/data")
}

/// The exporter over `yaml` with `--storage.path storage`, writing every second.
fn start(yaml: &str, storage: &Path) -> Exporter {
    Exporter::start_with(
        yaml,
        &[
            "--storage.path",
            storage.to_str().unwrap(),
            "--storage.write-interval",
            "1s",
        ],
        &[],
    )
}

/// The stored entry of `nightly` once `check` holds for it.
async fn stored(storage: &Path, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let file = storage.join("state.json");
    wait_for(what, Duration::from_secs(15), || async {
        let text = std::fs::read_to_string(&file).ok()?;
        let state: serde_json::Value = serde_json::from_str(&text).ok()?;
        let job = state["jobs"]
            .as_array()?
            .iter()
            .find(|j| j["job_name"] == "nightly")?
            .clone();
        check(&job).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_a_down_upstream_keeps_last_success_and_failing_since() {
    let sim = Sim::start();
    let storage = tempfile::tempdir().unwrap();
    let state = storage.path().join("state");
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("run", "2025-01-15T01:00:00Z", "-"),
    )
    .await;
    let yaml = zdm_config(&sim, FAST, "    backup_jobs: [nightly]\n");
    let failed = runs("zdm", "nightly", "app-01", "/data", "failed");
    let completed = runs("zdm", "nightly", "app-01", "/data", "completed");
    let last_success = series("backup_job_last_success_time_seconds");
    let failing_since = series("backup_job_failing_since_seconds");
    let duration = series("backup_job_last_run_duration_seconds");

    let exp = start(&yaml, &state);
    exp.wait_metrics("the running job", |m| value(m, &completed) == Some(0.0))
        .await;
    assert_eq!(
        value(&exp.metrics().await, &duration),
        None,
        "no run finished"
    );
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("complete", "2025-01-15T01:00:00Z", "2025-01-15T01:30:00Z"),
    )
    .await;
    exp.wait_metrics("the success", |m| {
        value(m, &last_success) == Some(SUCCESS_END)
    })
    .await;
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("fail", "2025-01-16T01:00:00Z", "2025-01-16T01:20:00Z"),
    )
    .await;
    let m = exp
        .wait_metrics("the failure", |m| value(m, &failed) == Some(1.0))
        .await;
    assert_eq!(
        value(&m, &failing_since),
        Some(FAILED_END),
        "the failed run's end"
    );
    assert_eq!(value(&m, &duration), Some(1200.0));
    assert_eq!(value(&m, &completed), Some(1.0));
    stored(&state, "the failure written", |j| {
        j["failing_since"] == json!(FAILED_END) && j["runs"] == json!([1, 0, 1, 0])
    })
    .await;

    // kill -9, the upstream goes down, the exporter comes back with the same directory.
    exp.proc.signal("KILL");
    let mut exp = exp;
    assert_eq!(
        exp.proc.wait_exit(Duration::from_secs(10)),
        None,
        "killed by a signal"
    );
    sim.fault("backup_job", "nightly", "error500").await;
    let exp = start(&yaml, &state);
    let m = exp
        .wait_metrics("the target down", |m| {
            value(m, &target_up("zdm", "backup_job", "nightly")) == Some(0.0)
        })
        .await;
    assert_eq!(value(&m, &last_success), Some(SUCCESS_END), "{m}");
    assert_eq!(value(&m, &failing_since), Some(FAILED_END), "{m}");
    assert!(
        !m.contains("backup_job_status{"),
        "no status from storage: {m}"
    );
    assert!(
        std::fs::read_dir(&state)
            .unwrap()
            .all(|e| e.unwrap().file_name() == "state.json"),
        "nothing set aside, no temporary file left"
    );

    // The upstream answers again with the failed run already counted: no phantom run, and
    // the counts go on from the stored ones.
    sim.fault("backup_job", "nightly", "none").await;
    let m = exp
        .wait_metrics("the job back", |m| value(m, &failed).is_some())
        .await;
    assert_eq!(value(&m, &failed), Some(1.0), "{m}");
    assert_eq!(value(&m, &completed), Some(1.0), "{m}");
    assert_eq!(value(&m, &failing_since), Some(FAILED_END));
    assert_eq!(value(&m, &last_success), Some(SUCCESS_END));

    // SIGTERM writes once more; a run that ended while the exporter was stopped is counted
    // once it is back.
    let mut exp = exp;
    exp.proc.signal("TERM");
    assert_eq!(exp.proc.wait_exit(Duration::from_secs(10)), Some(0));
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("complete", "2025-01-17T01:00:00Z", "2025-01-17T01:40:00Z"),
    )
    .await;
    let exp = start(&yaml, &state);
    let m = exp
        .wait_metrics("the next run", |m| value(m, &completed) == Some(2.0))
        .await;
    assert_eq!(value(&m, &failed), Some(1.0));
    assert_eq!(
        value(&m, &failing_since),
        None,
        "a success ends the failures"
    );
    assert_eq!(value(&m, &duration), Some(2400.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_set_aside_and_the_exporter_starts() {
    let sim = Sim::start();
    let storage = tempfile::tempdir().unwrap();
    std::fs::write(
        storage.path().join("state.json"),
        b"{\"version\":1,\"jobs\":[{",
    )
    .unwrap();
    let yaml = zdm_config(&sim, FAST, "    backup_jobs: [daily-backup]\n");
    let exp = start(&yaml, storage.path());
    exp.wait_ready().await;
    let names: Vec<String> = std::fs::read_dir(storage.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("state.json.corrupt-")),
        "{names:?}"
    );
    let logs = exp.proc.stderr_text();
    assert!(
        logs.lines().any(|l| l.contains("\"level\":\"warn\"")
            && l.contains("set aside")
            && l.contains(&storage.path().display().to_string())),
        "{logs}"
    );
}

#[test]
fn a_storage_path_that_cannot_be_written_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: T\n    servers: [s]\n",
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    for path in [file.clone(), file.join("below")] {
        let out = Command::new(exporter_bin())
            .arg("--config")
            .arg(&config)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .arg("--storage.path")
            .arg(&path)
            .env("T", "t")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains("--storage.path"),
            "{stderr}"
        );
    }
    let out = Command::new(exporter_bin())
        .args(["--storage.write-interval", "31s", "--version"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bound crossed is a usage error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_success_outlives_stale_after_and_goes_at_forget_after() {
    let sim = Sim::start();
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("complete", "2025-01-15T01:00:00Z", "2025-01-15T01:30:00Z"),
    )
    .await;
    let yaml = zdm_config(
        &sim,
        "    interval: 300ms\n    timeout: 1s\n    stale_after: 900ms\n    forget_after: 4s\n",
        "    backup_jobs: [nightly]\n",
    );
    let last_success = series("backup_job_last_success_time_seconds");
    let status = job_status("zdm", "nightly", "app-01", "/data", "completed");
    let exp = Exporter::start(&yaml);
    exp.wait_metrics("the success", |m| {
        value(m, &last_success) == Some(SUCCESS_END)
    })
    .await;
    sim.fault("backup_job", "nightly", "error500").await;
    let failing = std::time::Instant::now();
    let m = exp
        .wait_metrics("the status series gone", |m| value(m, &status).is_none())
        .await;
    assert_eq!(
        value(&m, &last_success),
        Some(SUCCESS_END),
        "kept past stale_after: {m}"
    );
    exp.wait_metrics("the last success forgotten", |m| {
        value(m, &last_success).is_none()
    })
    .await;
    assert!(
        failing.elapsed() >= Duration::from_secs(3),
        "not before forget_after"
    );
    let m = exp.metrics().await;
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "nightly")),
        Some(0.0)
    );
}
