//! ZDM as the vendor ships it: the documented answers of every released API version
//! (`tests/data/vendor/zdm/<version>/`, verbatim), pinned in the simulator and polled by
//! the real binary.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::hostile::{answer, Hostile};
use crate::common::seeds::run_once;
use crate::common::*;

const VERSIONS: [&str; 8] = [
    "0.2.0", "1.0.3", "1.1.0", "1.2.0", "1.3.0", "1.3.1", "2.0.0", "2.0.1",
];

fn vendor(version: &str, file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/zdm")
        .join(version)
        .join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// The prefix a version serves (`/api/v1` only for 0.2.0).
fn prefix(version: &str) -> &'static str {
    if version == "0.2.0" {
        "/api/v1"
    } else {
        "/api"
    }
}

/// One upstream per version whose targets are pinned to that version's documented 200
/// answers of the endpoints it polls (server, backup job, recovery job): the target id is
/// the fixture's name without `.json`.
async fn pin_version(sim: &Sim, version: &str) -> String {
    let files: &[(&str, &str)] = if version == "0.2.0" {
        &[
            ("system", "backups-monitoring-system"),
            ("backup_job", "backups-monitoring-job"),
            ("recovery_job", "recoveries-monitoring-job"),
        ]
    } else {
        &[
            ("system", "backups-monitoring-system-linux"),
            ("system", "backups-monitoring-system-windows"),
            ("system", "backups-monitoring-system-paged"),
            ("backup_job", "backups-monitoring-job-linux"),
            ("backup_job", "backups-monitoring-job-windows"),
            ("recovery_job", "recoveries-monitoring-job-linux"),
            ("recovery_job", "recoveries-monitoring-job-windows"),
        ]
    };
    let mut lists = [Vec::new(), Vec::new(), Vec::new()];
    for (endpoint, stem) in files {
        let id = format!("{stem}-{version}");
        sim.fixture(endpoint, &id, &vendor(version, &format!("{stem}.json")))
            .await;
        let i = ["system", "backup_job", "recovery_job"]
            .iter()
            .position(|e| e == endpoint)
            .unwrap();
        lists[i].push(id);
    }
    format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_prefix: {}\n    token_env: SIM_TOKEN\n    servers: [{}]\n    backup_jobs: [{}]\n    recovery_jobs: [{}]\n",
        sim.url(),
        prefix(version),
        lists[0].join(", "),
        lists[1].join(", "),
        lists[2].join(", "),
    )
}

fn restore(metric: &str, job: &str, volume: &str) -> String {
    format!(
        "{metric}{{system=\"zdm\",upstream=\"zdm\",operation=\"restore\",job_name=\"{job}\",server=\"target-server\",volume=\"{volume}\"}}"
    )
}

fn restore_status(job: &str, volume: &str, status: &str) -> String {
    format!(
        "backup_job_status{{system=\"zdm\",upstream=\"zdm\",operation=\"restore\",job_name=\"{job}\",server=\"target-server\",volume=\"{volume}\",status=\"{status}\"}}"
    )
}

fn restore_status_on(job: &str, server: &str, volume: &str, status: &str) -> String {
    format!(
        "backup_job_status{{system=\"zdm\",upstream=\"zdm\",operation=\"restore\",job_name=\"{job}\",server=\"{server}\",volume=\"{volume}\",status=\"{status}\"}}"
    )
}

fn server_jobs(server: &str, status: &str) -> String {
    format!("backup_server_jobs{{system=\"zdm\",upstream=\"zdm\",server=\"{server}\",status=\"{status}\"}}")
}

/// Every version's documented server, backup job and recovery job answers, served verbatim,
/// come out of `--once` as the series 6.1 implies (naive times read as UTC: no `timezone`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_versions_documented_answers_give_the_series() {
    let sim = Sim::start();
    for version in VERSIONS {
        let yaml = pin_version(&sim, version).await;
        let (code, m, stderr) = run_once(&yaml);
        assert_eq!(code, Some(0), "{version}: {stderr}");
        let expect = |series: String, want: f64| {
            assert_eq!(value(&m, &series), Some(want), "{version}: {series}\n{m}");
        };
        let legacy = version == "0.2.0";
        let server = if legacy {
            "server-01"
        } else {
            "linux-server-01"
        };
        for line in yaml.lines().filter(|l| l.contains(": [")) {
            let kind = match line.trim().split(':').next().unwrap() {
                "servers" => "server",
                "backup_jobs" => "backup_job",
                _ => "recovery_job",
            };
            let ids = line.split('[').nth(1).unwrap().trim_end_matches(']');
            for id in ids.split(", ") {
                expect(target_up("zdm", kind, id), 1.0);
            }
        }
        // The server answer: a finished root job and a running /home job, and the summary.
        // 1.x/2.x: `Scheduled` with an end time is its finished run.
        expect(
            job_status("zdm", "daily-backup-root", server, "/", "completed"),
            1.0,
        );
        expect(
            job_series(
                "backup_job_last_success_time_seconds",
                "zdm",
                "backup",
                "daily-backup-root",
                server,
                "/",
            ),
            1736908200.0,
        );
        expect(
            job_series(
                "backup_job_end_time_seconds",
                "zdm",
                "backup",
                "daily-backup-root",
                server,
                "/",
            ),
            1736908200.0,
        );
        expect(
            job_status("zdm", "daily-backup-home", server, "/home", "running"),
            1.0,
        );
        expect(
            job_series(
                "backup_job_progress_ratio",
                "zdm",
                "backup",
                "daily-backup-home",
                server,
                "/home",
            ),
            0.45,
        );
        for (status, n) in [
            ("completed", 1.0),
            ("running", 1.0),
            ("failed", 0.0),
            ("pending", 1.0),
            ("other", 0.0),
        ] {
            expect(server_jobs(server, status), n);
        }
        // Windows: drives as volumes.
        if !legacy {
            expect(
                job_status(
                    "zdm",
                    "daily-backup-c",
                    "windows-server-01",
                    "C:",
                    "completed",
                ),
                1.0,
            );
            expect(
                job_status(
                    "zdm",
                    "daily-backup-d",
                    "windows-server-01",
                    "D:",
                    "running",
                ),
                1.0,
            );
            expect(server_jobs("windows-server-01", "completed"), 1.0);
            expect(
                restore_status_on("daily-recovery-win", "target-win-server", "D:", "pending"),
                1.0,
            );
            expect(
                job_status("zdm", "daily-backup", "linux-server-01", "/", "completed"),
                1.0,
            );
        }
        if !legacy {
            // The documented paged answer says `hasNextPage: true`: page 2 is asked for.
            assert_eq!(
                sim.requests(
                    "system",
                    &format!("backups-monitoring-system-paged-{version}")
                )
                .await,
                2,
                "{version}"
            );
        }
        // The backup job answer.
        if legacy {
            expect(
                job_status("zdm", "daily-backup", "server-01", "/", "completed"),
                1.0,
            );
        } else {
            expect(
                job_status(
                    "zdm",
                    "daily-backup-win",
                    "windows-server-01",
                    "C:",
                    "running",
                ),
                1.0,
            );
            expect(
                job_series(
                    "backup_job_elapsed_seconds",
                    "zdm",
                    "backup",
                    "daily-backup-win",
                    "windows-server-01",
                    "C:",
                ),
                1200.0,
            );
        }
        // The recovery job answer: one series per volume, the one not started yet pending.
        expect(restore_status("daily-recovery", "/", "running"), 1.0);
        expect(
            restore("backup_job_start_time_seconds", "daily-recovery", "/"),
            1736935200.0,
        );
        expect(restore_status("daily-recovery", "/home", "pending"), 1.0);
        assert_eq!(
            value(
                &m,
                &restore("backup_job_start_time_seconds", "daily-recovery", "/home")
            ),
            None,
            "{version}: a run not started has no start time"
        );
    }
}

/// A 1.x job answer of `backup_jobs: [nightly]` in `status`, naive times as the vendor writes
/// them.
fn scheduled_job(status: &str, start: &str, end: &str) -> serde_json::Value {
    json!({
        "success": true,
        "requestID": "req-test",
        "data": {
            "system": { "name": "app-01" },
            "job": {
                "info": { "name": "nightly", "partition": "/" },
                "progressInfo": {
                    "status": status, "percent": "100%", "message": "m",
                    "start": start, "elapsed": "00:30:00", "end": end
                },
                "log": []
            }
        },
        "message": "Backup monitoring info",
        "timestamp": "2025-01-15 10:30:00"
    })
}

/// Waits until the simulator has answered `n` more polls of `nightly` than `before`.
async fn polls_after(sim: &Sim, before: u64, n: u64) {
    wait_for("more polls", Duration::from_secs(10), || async {
        (sim.requests("backup_job", "nightly").await >= before + n).then_some(())
    })
    .await;
}

/// A scheduled job across polls: each finished run (a new end time) is counted once as
/// completed, however many polls see it waiting for its next schedule, and its end time is
/// the last success; a run that began and ended between two polls counts too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_job_counts_each_finished_run_once() {
    let sim = Sim::start();
    let pin = |status: &'static str, start: &'static str, end: &'static str| {
        let sim = &sim;
        async move {
            sim.fixture("backup_job", "nightly", &scheduled_job(status, start, end))
                .await
        }
    };
    pin("Scheduled", "2025-01-15 02:00:00", "2025-01-15 02:30:00").await;
    let yaml = zdm_config(
        &sim,
        "    api_prefix: /api\n    interval: 300ms\n    timeout: 1s\n",
        "    backup_jobs: [nightly]\n",
    );
    let completed = runs("zdm", "nightly", "app-01", "/", "completed");
    let last_success = job_series(
        "backup_job_last_success_time_seconds",
        "zdm",
        "backup",
        "nightly",
        "app-01",
        "/",
    );
    let status = |s: &str| job_status("zdm", "nightly", "app-01", "/", s);
    let exp = Exporter::start(&yaml);
    let m = exp
        .wait_metrics("the scheduled job", |m| {
            value(m, &status("completed")) == Some(1.0)
        })
        .await;
    assert_eq!(
        value(&m, &completed),
        Some(0.0),
        "finished before first seen"
    );
    assert_eq!(value(&m, &last_success), Some(1736908200.0));

    // The next run: Processing, then Scheduled with its end time, seen over several polls.
    pin("Processing", "2025-01-16 02:00:00", "-").await;
    exp.wait_metrics("running", |m| value(m, &status("running")) == Some(1.0))
        .await;
    pin("Scheduled", "2025-01-16 02:00:00", "2025-01-16 02:30:00").await;
    exp.wait_metrics("the second run", |m| value(m, &completed) == Some(1.0))
        .await;
    let before = sim.requests("backup_job", "nightly").await;
    polls_after(&sim, before, 3).await;
    let m = exp.metrics().await;
    assert_eq!(
        value(&m, &completed),
        Some(1.0),
        "counted once per end time"
    );
    assert_eq!(value(&m, &last_success), Some(1736994600.0));

    // A run that began and ended between two polls: a new start and end, counted.
    pin("Scheduled", "2025-01-17 02:00:00", "2025-01-17 02:30:00").await;
    let m = exp
        .wait_metrics("the third run", |m| value(m, &completed) == Some(2.0))
        .await;
    assert_eq!(value(&m, &last_success), Some(1737081000.0));

    // Registered (never ran) and Scheduled without an end: pending, nothing counted.
    pin("Scheduled", "-", "-").await;
    exp.wait_metrics("pending", |m| value(m, &status("pending")) == Some(1.0))
        .await;
    let before = sim.requests("backup_job", "nightly").await;
    polls_after(&sim, before, 2).await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &completed), Some(2.0));
    for result in ["failed", "cancelled", "completed_with_warnings"] {
        assert_eq!(
            value(&m, &runs("zdm", "nightly", "app-01", "/", result)),
            Some(0.0)
        );
    }
}

fn vendor_text(version: &str, file: &str) -> String {
    vendor(version, file).to_string()
}

/// Every documented error answer of the login path (1.x 404/400/408, 2.0 404/422/500) is
/// `auth_error`: the request is counted so (the auth alert sees it), nothing is counted as
/// `not_found`, `http_4xx` or `http_5xx`, and the job keeps its series (stale, not gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_error_is_an_auth_error_and_series_stay() {
    // (HTTP status line, documented body); index 0 is "logins succeed".
    let errors: Vec<(&str, String)> = vec![
        ("201 Created", vendor_text("1.0.3", "auth-issue.json")),
        ("404 Not Found", vendor_text("1.0.3", "auth-issue-404.json")),
        (
            "400 Bad Request",
            vendor_text("1.0.3", "auth-issue-400.json"),
        ),
        (
            "408 Request Timeout",
            vendor_text("1.0.3", "auth-issue-408.json"),
        ),
        (
            "404 Not Found",
            vendor_text("2.0.0", "token-issue-404.json"),
        ),
        (
            "422 Unprocessable Entity",
            vendor_text("2.0.0", "token-issue-422.json"),
        ),
        (
            "500 Internal Server Error",
            vendor_text("2.0.0", "token-issue-500.json"),
        ),
    ];
    let job = vendor_text("1.0.3", "backups-monitoring-job-linux.json");
    let mode = Arc::new(AtomicUsize::new(0));
    let logins = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let (mode, logins, errors) = (mode.clone(), logins.clone(), errors.clone());
        Hostile::start(move |seen| {
            let m = mode.load(Ordering::SeqCst);
            if seen.path == "/api/auth/issue" {
                logins.fetch_add(1, Ordering::SeqCst);
                let (status, body) = &errors[m];
                return answer(status, &[], body);
            }
            if m > 0 {
                // The token is refused: the exporter logs in again.
                return answer(
                    "401 Unauthorized",
                    &[],
                    r#"{"success":false,"error":"Token has expired."}"#,
                );
            }
            answer("200 OK", &[], &job)
        })
    };
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_prefix: /api\n    interval: 300ms\n    timeout: 1s\n    stale_after: 1h\n    login: {{ email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}\n    backup_jobs: [daily-backup]\n",
        upstream.url()
    );
    let exp = Exporter::start(&yaml);
    let done = job_status("zdm", "daily-backup", "linux-server-01", "/", "completed");
    exp.wait_metrics("the job", |m| value(m, &done) == Some(1.0))
        .await;
    for (i, (status, _)) in errors.iter().enumerate().skip(1) {
        mode.store(i, Ordering::SeqCst);
        let before = logins.load(Ordering::SeqCst);
        wait_for("two more logins", Duration::from_secs(10), || async {
            (logins.load(Ordering::SeqCst) >= before + 2).then_some(())
        })
        .await;
        let m = exp.metrics().await;
        for outcome in ["not_found", "http_4xx", "http_5xx", "incomplete"] {
            assert_eq!(
                value(&m, &outcome_series("zdm", outcome)).unwrap_or(0.0),
                0.0,
                "login {status}: counted as {outcome}"
            );
        }
        assert!(
            value(&m, &outcome_series("zdm", "auth_error")).unwrap_or(0.0) >= 2.0,
            "login {status}"
        );
        assert_eq!(
            value(&m, &target_up("zdm", "backup_job", "daily-backup")),
            Some(0.0),
            "login {status}"
        );
        assert_eq!(
            value(&m, &done),
            Some(1.0),
            "login {status}: the series stay"
        );
    }
}

/// An answer without the object its endpoint documents (`data.job`, `data.system`) takes
/// the target down as `decode_error`; it never reads as "up with no jobs".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_its_documented_object_is_a_decode_error() {
    let sim = Sim::start();
    let no_job =
        json!({"success": true, "data": {"system": {"name": "s"}, "summary": {"total": 0}}});
    let no_system = json!({"success": true, "data": {"job": {"info": {"name": "a"}}}});
    sim.fixture("system", "no-job", &no_job).await;
    sim.fixture("backup_job", "no-system", &no_system).await;
    sim.fixture("recovery_job", "no-job", &no_job).await;
    let yaml = zdm_config(
        &sim,
        "",
        "    servers: [no-job]\n    backup_jobs: [no-system]\n    recovery_jobs: [no-job]\n",
    );
    let (_, m, stderr) = run_once(&yaml);
    for (kind, target) in [
        ("server", "no-job"),
        ("backup_job", "no-system"),
        ("recovery_job", "no-job"),
    ] {
        assert_eq!(
            value(&m, &target_up("zdm", kind, target)),
            Some(0.0),
            "{kind} {target}\n{m}\n{stderr}"
        );
    }
    assert_eq!(
        value(&m, &outcome_series("zdm", "decode_error")),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        value(&m, &outcome_series("zdm", "success")).unwrap_or(0.0),
        0.0
    );
    assert!(!m.contains("backup_job_status{"), "no job series: {m}");
}

/// A server answer of `n` Scheduled jobs (one partition each), as the vendor writes them.
fn big_server(n: usize) -> serde_json::Value {
    let jobs: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            json!({
                "info": { "name": format!("job-{i}"), "partition": format!("/p{i}") },
                "progressInfo": {
                    "status": "Processing", "percent": "50%", "message": "m",
                    "start": "2025-01-15 02:00:00", "elapsed": "00:30:00", "end": "-"
                },
                "log": []
            })
        })
        .collect();
    json!({
        "success": true,
        "requestID": "req-test",
        "data": {
            "system": { "name": "big-01" },
            "summary": { "total": n, "completed": 0, "inProgress": n, "failed": 0, "pending": 0, "overallProgress": "50%" },
            "job": jobs
        },
        "message": "Server backup monitoring info",
        "timestamp": "2025-01-15 10:30:00"
    })
}

/// A paged server answer is followed page by page (`hasNextPage`) with the configured
/// `limit`, every page's jobs exported; past `max_jobs_per_target` the poll stops early
/// and is `too_large`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_server_answers_are_followed_and_bounded() {
    let sim = Sim::start();
    sim.fixture("system", "big", &big_server(5)).await;
    let yaml = zdm_config(
        &sim,
        "    api_prefix: /api\n",
        "    servers: [{ id: big, limit: 2, mode: full }]\n",
    );
    let (code, m, stderr) = run_once(&yaml);
    assert_eq!(code, Some(0), "{stderr}");
    for i in 0..5 {
        assert_eq!(
            value(
                &m,
                &job_status(
                    "zdm",
                    &format!("job-{i}"),
                    "big-01",
                    &format!("/p{i}"),
                    "running"
                )
            ),
            Some(1.0),
            "job-{i}\n{m}"
        );
    }
    assert_eq!(sim.requests("system", "big").await, 3, "three pages of two");
    assert_eq!(value(&m, &server_jobs("big-01", "running")), Some(5.0));

    // Three jobs at most: the second page already crosses it, the third is never asked.
    sim.fixture("system", "bounded", &big_server(5)).await;
    let yaml = zdm_config(
        &sim,
        "    api_prefix: /api\n    max_jobs_per_target: 3\n",
        "    servers: [{ id: bounded, limit: 2 }]\n",
    );
    let (_, m, stderr) = run_once(&yaml);
    assert_eq!(
        value(&m, &target_up("zdm", "server", "bounded")),
        Some(0.0),
        "{m}\n{stderr}"
    );
    assert!(stderr.contains("max_jobs_per_target"), "{stderr}");
    assert_eq!(sim.requests("system", "bounded").await, 2);
}

/// A recovery server's answer is paged by its partitions (`job.details`), as its documented
/// paged answer shows: the simulator pages the documented Linux answer (2.0.1) at `limit: 1`
/// and the exporter follows both pages to both volumes, with the summary of the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_servers_partitions_are_followed_page_by_page() {
    let sim = Sim::start();
    let linux = vendor("2.0.1", "recoveries-monitoring-system-linux.json");
    sim.fixture("recovery_system", "target-server", &linux)
        .await;
    let yaml = zdm_config(
        &sim,
        "    api_version: '2.0'\n",
        "    recovery_servers: [{ id: target-server, limit: 1 }]\n",
    );
    let (code, m, stderr) = run_once(&yaml);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        value(&m, &restore_status("daily-recovery", "/", "completed")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, &restore_status("daily-recovery", "/home", "running")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sim.requests("recovery_system", "target-server").await,
        2,
        "two pages of one"
    );
}

/// `--once` over `yaml` with the simulator's token and login in the environment.
fn once_with_login(yaml: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let out = std::process::Command::new(exporter_bin())
        .args(["--once", "--config"])
        .arg(&config)
        .env("SIM_TOKEN", TOKEN)
        .env("SIM_EMAIL", EMAIL)
        .env("SIM_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `api_version: auto` (the default, no `api_prefix`, no `login.path`) against each
/// release the simulator speaks: the version is settled from the documented paths, the
/// target is polled under that version's prefix (and logged in at its login path), and
/// `backup_upstream_info` says which version it was; a fixed version and a 0.2 config
/// with explicit keys work the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_settles_each_releases_version_and_exports_it() {
    let info = |v: &str| {
        format!("backup_upstream_info{{api_version=\"{v}\",system=\"zdm\",upstream=\"zdm\"}}")
    };
    let up = "backup_target_up{system=\"zdm\",upstream=\"zdm\",kind=\"server\",target=\"web-01\"}";
    let token = "    token_env: SIM_TOKEN\n";
    let login = "    login: { email_env: SIM_EMAIL, password_env: SIM_PASSWORD }\n";
    for (release, want) in [
        ("0.2.0", "0.2"),
        ("1.0.3", "1.0"),
        ("1.1.0", "1.1"),
        ("1.2.0", "1.2"),
        ("1.3.1", "1.3"),
        ("2.0.0", "2.0"),
        ("2.0.1", "2.0"),
    ] {
        let sim = Sim::start_with(&[
            "--token",
            TOKEN,
            "--login",
            &format!("{EMAIL}:{PASSWORD}"),
            "--zdm-version",
            release,
        ]);
        // The live recovery server every release has; the replication job from 1.1.0.
        let replication = !matches!(release, "0.2.0" | "1.0.3");
        let kinds = if replication {
            "    recovery_servers: [db-dr-02]\n    replication_jobs: [db-복제]\n"
        } else {
            "    recovery_servers: [db-dr-02]\n"
        };
        for (auth, extra) in [
            (token, ""),
            (login, ""),
            (token, format!("    api_version: \"{release}\"\n").as_str()),
        ] {
            let yaml = format!(
                "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n{auth}{extra}    servers: [web-01]\n{kinds}",
                sim.url()
            );
            let (code, m, stderr) = once_with_login(&yaml);
            assert_eq!(code, Some(0), "{release}: {stderr}\n{m}");
            let kind_up = |kind: &str, target: &str| {
                value(&m, &format!("backup_target_up{{system=\"zdm\",upstream=\"zdm\",kind=\"{kind}\",target=\"{target}\"}}"))
            };
            assert_eq!(
                kind_up("recovery_server", "db-dr-02"),
                Some(1.0),
                "{release}\n{m}"
            );
            if replication {
                assert_eq!(
                    kind_up("replication_job", "db-복제"),
                    Some(1.0),
                    "{release}\n{m}"
                );
            }
            assert_eq!(
                value(&m, up),
                Some(1.0),
                "{release} {auth}{extra}: {stderr}\n{m}"
            );
            assert_eq!(
                value(&m, &info(want)),
                Some(1.0),
                "{release} {auth}{extra}\n{m}"
            );
            assert_eq!(m.matches("backup_upstream_info{").count(), 1, "{m}");
        }
        if release == "0.2.0" {
            // Written before versions existed: the explicit keys win, auto still settles.
            let yaml = format!(
                "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_prefix: /api/v1\n    login: {{ path: /api/v1/auth/issue, email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}\n    servers: [web-01]\n",
                sim.url()
            );
            let (code, m, stderr) = once_with_login(&yaml);
            assert_eq!(code, Some(0), "{stderr}");
            assert_eq!(value(&m, &info("0.2")), Some(1.0), "{m}");
        }
        if release == "2.0.1" {
            // The wrong fixed version: its prefix is right but its login path is gone.
            let yaml = format!(
                "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_version: \"1.3\"\n{login}    servers: [web-01]\n",
                sim.url()
            );
            let (_, m, _) = once_with_login(&yaml);
            assert_eq!(value(&m, up), Some(0.0), "{m}");
            assert_eq!(
                value(&m, &info("1.3")),
                Some(1.0),
                "a fixed version is exported as set"
            );
            assert_eq!(
                value(&m, "backup_target_failure_reason{system=\"zdm\",upstream=\"zdm\",kind=\"server\",target=\"web-01\",reason=\"auth_error\"}"),
                Some(1.0),
                "{m}"
            );
        }
    }
}

/// `auto` settles again once every target answers 404: a server upgraded from 1.3 to 2.0
/// (its job gone at first) is asked again, `backup_upstream_info` follows, and the target
/// comes back up. Before that, a 1.3 server is asked once, not at every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_settles_again_after_every_target_answered_404() {
    let job = vendor_text("1.3.1", "backups-monitoring-job-linux.json");
    let gone = vendor_text("1.3.1", "backups-monitoring-job-404.json");
    let refused = vendor_text("2.0.0", "token-issue-422.json");
    let list = r#"{"success":true,"data":[],"message":"OK"}"#.to_string();
    // 0: a 1.3 server; 1: upgraded to 2.0, the job not found until the exporter asks
    // 2.0's login path; 2: 2.0 and asked.
    let phase = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let (phase, probes) = (phase.clone(), probes.clone());
        Hostile::start(move |seen| {
            let p = phase.load(Ordering::SeqCst);
            let path = seen.path.split('?').next().unwrap_or("");
            match path {
                "/api/token/issue" if p >= 1 => {
                    phase.store(2, Ordering::SeqCst);
                    answer("422 Unprocessable Entity", &[], &refused)
                }
                "/api/os-replications" => {
                    probes.fetch_add(1, Ordering::SeqCst);
                    answer("200 OK", &[], &list)
                }
                "/api/backups/monitoring/job/nightly" if p == 1 => {
                    answer("404 Not Found", &[], &gone)
                }
                "/api/backups/monitoring/job/nightly" => answer("200 OK", &[], &job),
                _ => answer(
                    "404 Not Found",
                    &[],
                    r#"{"success":false,"error":"Not Found"}"#,
                ),
            }
        })
    };
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    interval: 300ms\n    timeout: 1s\n    token_env: SIM_TOKEN\n    backup_jobs: [nightly]\n",
        upstream.url()
    );
    let info = |v: &str| {
        format!("backup_upstream_info{{api_version=\"{v}\",system=\"zdm\",upstream=\"zdm\"}}")
    };
    let up =
        "backup_target_up{system=\"zdm\",upstream=\"zdm\",kind=\"backup_job\",target=\"nightly\"}";
    let exp = Exporter::start(&yaml);
    exp.wait_metrics("settled 1.3", |m| {
        value(m, &info("1.3")) == Some(1.0) && value(m, up) == Some(1.0)
    })
    .await;
    let seen = upstream.seen().len();
    wait_for("three more polls", Duration::from_secs(10), || async {
        (upstream.seen().len() >= seen + 3).then_some(())
    })
    .await;
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "asked once, not at every poll"
    );

    phase.store(1, Ordering::SeqCst);
    let m = exp
        .wait_metrics("settled 2.0", |m| {
            value(m, &info("2.0")) == Some(1.0) && value(m, up) == Some(1.0)
        })
        .await;
    assert_eq!(m.matches("backup_upstream_info{").count(), 1, "{m}");
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "2.0 settled by its login path first"
    );
}

/// The new kinds as each version documents them, served verbatim: a recovery server's
/// recoveries with its summary (every version), a replication job as
/// `operation="replication"` on its center (1.2.0 .. 2.0.1 pages), through `--once`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_servers_and_replication_jobs_give_the_series() {
    let sim = Sim::start();
    for version in VERSIONS {
        let legacy = version == "0.2.0";
        let recovery = if legacy {
            "recoveries-monitoring-system"
        } else {
            "recoveries-monitoring-system-windows"
        };
        let server_id = format!("{recovery}-{version}");
        sim.fixture(
            "recovery_system",
            &server_id,
            &vendor(version, &format!("{recovery}.json")),
        )
        .await;
        let replication = !matches!(version, "0.2.0" | "1.0.3" | "1.1.0");
        let mut replication_ids = Vec::new();
        if replication {
            for stem in [
                "replications-monitoring-job-complete",
                "replications-monitoring-job-running",
            ] {
                let id = format!("{stem}-{version}");
                sim.fixture(
                    "replication_job",
                    &id,
                    &vendor(version, &format!("{stem}.json")),
                )
                .await;
                replication_ids.push(id);
            }
        }
        let mut yaml = format!(
            "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_prefix: {}\n    token_env: SIM_TOKEN\n    recovery_servers: [{server_id}]\n",
            sim.url(),
            prefix(version),
        );
        if let [complete, running] = &replication_ids[..] {
            yaml.push_str(&format!("    replication_jobs: [{complete}]\n"));
            // The other example names the same job: another upstream keeps it apart.
            yaml.push_str(&format!(
                "  - name: zdm-running\n    type: zdm\n    url: {}\n    api_version: '{}'\n    token_env: SIM_TOKEN\n    replication_jobs: [{running}]\n",
                sim.url(),
                &version[..3],
            ));
        }
        let (code, m, stderr) = run_once(&yaml);
        assert_eq!(code, Some(0), "{version}: {stderr}");
        let (target, volume, summary) = if legacy {
            (
                "target-server",
                "/",
                [
                    ("completed", 1.0),
                    ("running", 1.0),
                    ("pending", 1.0),
                    ("failed", 0.0),
                    ("other", 0.0),
                ],
            )
        } else {
            (
                "target-win-server",
                "C:",
                [
                    ("completed", 1.0),
                    ("running", 1.0),
                    ("pending", 0.0),
                    ("failed", 0.0),
                    ("other", 0.0),
                ],
            )
        };
        for (status, want) in summary {
            assert_eq!(
                value(&m, &server_jobs(target, status)),
                Some(want),
                "{version}: {status}\n{m}"
            );
        }
        let job = if legacy {
            "daily-recovery"
        } else {
            "daily-recovery-win"
        };
        assert_eq!(
            value(&m, &restore_status_on(job, target, volume, "completed")),
            Some(1.0),
            "{version}\n{m}"
        );
        let up = format!("backup_target_up{{system=\"zdm\",upstream=\"zdm\",kind=\"recovery_server\",target=\"{server_id}\"}}");
        assert_eq!(value(&m, &up), Some(1.0), "{version}\n{m}");
        if replication {
            let status = |upstream: &str, s: &str| {
                format!("backup_job_status{{system=\"zdm\",upstream=\"{upstream}\",operation=\"replication\",job_name=\"backup-replication-01\",server=\"center-01\",volume=\"\",status=\"{s}\"}}")
            };
            assert_eq!(
                value(&m, &status("zdm", "completed")),
                Some(1.0),
                "{version}\n{m}"
            );
            assert_eq!(
                value(&m, &status("zdm-running", "running")),
                Some(1.0),
                "{version}\n{m}"
            );
            let last = job_series(
                "backup_job_last_success_time_seconds",
                "zdm",
                "replication",
                "backup-replication-01",
                "center-01",
                "",
            );
            assert_eq!(
                value(&m, &last),
                Some(1_773_973_800.0),
                "{version}: 2026-03-20 02:30 UTC\n{m}"
            );
            let progress = job_series(
                "backup_job_progress_ratio",
                "zdm-running",
                "replication",
                "backup-replication-01",
                "center-01",
                "",
            );
            assert_eq!(value(&m, &progress), Some(0.65), "{version}\n{m}");
            for (upstream, id) in ["zdm", "zdm-running"].iter().zip(&replication_ids) {
                let up = format!("backup_target_up{{system=\"zdm\",upstream=\"{upstream}\",kind=\"replication_job\",target=\"{id}\"}}");
                assert_eq!(value(&m, &up), Some(1.0), "{version}\n{m}");
            }
        }
    }
}

/// One history entry of `nightly` on `app-01` (`/`), as the histories document them.
fn history_entry(id: u32, status: &str, start: &str, end: &str) -> serde_json::Value {
    json!({
        "id": id,
        "system": { "name": "app-01" },
        "job": { "name": "nightly", "id": 10, "backupType": "Full Backup", "drive": "/", "repositoryPath": "/backup" },
        "result": { "status": status, "description": format!("run {id}: {status}") },
        "time": { "start": start, "end": end, "elapsed": "00:30:00" }
    })
}

fn history(entries: &[serde_json::Value]) -> String {
    json!({
        "success": true, "requestID": "req-test", "data": entries,
        "message": "Backup history list", "timestamp": "2025-01-16 10:30:00"
    })
    .to_string()
}

/// Histories (1.2 on): the last success comes from the history, so an exporter killed
/// (SIGKILL) and started again has it at once while the job runs; a run that began and
/// ended between two polls is counted once, and a failed one becomes the latest result
/// when the monitoring answer still shows the older run. One history request per interval
/// for the upstream, not one per target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_gives_the_last_success_across_a_restart_and_counts_every_run() {
    let running = scheduled_job("Processing", "2025-01-16 02:00:00", "-").to_string();
    let job = Arc::new(std::sync::Mutex::new(running));
    let book = Arc::new(std::sync::Mutex::new(history(&[history_entry(
        7,
        "COMPLETE",
        "2025-01-15 02:00:00",
        "2025-01-15 02:30:00",
    )])));
    let histories = Arc::new(AtomicUsize::new(0));
    let polls = Arc::new(AtomicUsize::new(0));
    let upstream = {
        let (job, book, histories, polls) =
            (job.clone(), book.clone(), histories.clone(), polls.clone());
        Hostile::start(move |seen| {
            let path = seen.path.split('?').next().unwrap_or("");
            match path {
                "/api/backups/histories" => {
                    histories.fetch_add(1, Ordering::SeqCst);
                    answer("200 OK", &[], &book.lock().unwrap())
                }
                "/api/backups/monitoring/job/nightly" => {
                    polls.fetch_add(1, Ordering::SeqCst);
                    answer("200 OK", &[], &job.lock().unwrap())
                }
                // A second target (gone upstream): polled too, the history still read once.
                "/api/backups/monitoring/job/nightly-2" => {
                    polls.fetch_add(1, Ordering::SeqCst);
                    answer(
                        "404 Not Found",
                        &[],
                        r#"{"success":false,"error":"Not Found"}"#,
                    )
                }
                _ => answer(
                    "404 Not Found",
                    &[],
                    r#"{"success":false,"error":"Not Found"}"#,
                ),
            }
        })
    };
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_version: '1.3'\n    interval: 1s\n    timeout: 1s\n    token_env: SIM_TOKEN\n    backup_jobs: [nightly, nightly-2]\n",
        upstream.url()
    );
    let last_success = job_series(
        "backup_job_last_success_time_seconds",
        "zdm",
        "backup",
        "nightly",
        "app-01",
        "/",
    );
    let status = |s: &str| job_status("zdm", "nightly", "app-01", "/", s);
    let failed = runs("zdm", "nightly", "app-01", "/", "failed");
    let completed = runs("zdm", "nightly", "app-01", "/", "completed");
    const T0115: f64 = 1_736_908_200.0;

    let exp = Exporter::start(&yaml);
    exp.wait_metrics("the last success from the history", |m| {
        value(m, &last_success) == Some(T0115) && value(m, &status("running")) == Some(1.0)
    })
    .await;
    // Two targets, several polls: the history was read about once per interval.
    let before = polls.load(Ordering::SeqCst);
    wait_for("four more polls", Duration::from_secs(10), || async {
        (polls.load(Ordering::SeqCst) >= before + 4).then_some(())
    })
    .await;
    let reads = histories.load(Ordering::SeqCst);
    let polled = polls.load(Ordering::SeqCst);
    assert!(
        reads * 2 <= polled + 2,
        "{reads} history reads for {polled} polls of two targets"
    );

    exp.proc.signal("KILL");
    drop(exp);
    let exp = Exporter::start(&yaml);
    let m = exp
        .wait_metrics("the last success again", |m| {
            value(m, &last_success) == Some(T0115)
        })
        .await;
    assert_eq!(value(&m, &status("running")), Some(1.0), "{m}");
    assert_eq!(
        value(&m, &completed),
        Some(0.0),
        "the baseline is not counted again: {m}"
    );

    // A run began and failed between two polls; the monitoring answer shows the older run
    // waiting for its schedule.
    *book.lock().unwrap() = history(&[
        history_entry(8, "FAIL", "2025-01-16 02:00:00", "2025-01-16 02:10:00"),
        history_entry(7, "COMPLETE", "2025-01-15 02:00:00", "2025-01-15 02:30:00"),
    ]);
    *job.lock().unwrap() =
        scheduled_job("Scheduled", "2025-01-15 02:00:00", "2025-01-15 02:30:00").to_string();
    let m = exp
        .wait_metrics("the failed run", |m| {
            value(m, &status("failed")) == Some(1.0)
        })
        .await;
    assert_eq!(value(&m, &failed), Some(1.0), "{m}");
    assert_eq!(value(&m, &last_success), Some(T0115), "{m}");
    let before = polls.load(Ordering::SeqCst);
    wait_for("three more polls", Duration::from_secs(10), || async {
        (polls.load(Ordering::SeqCst) >= before + 3).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &failed), Some(1.0), "counted once: {m}");
    assert_eq!(value(&m, &completed), Some(0.0), "{m}");
}

/// GET `path` of the simulator with its token, as JSON.
async fn sim_json(sim: &Sim, path: &str) -> serde_json::Value {
    let resp = client()
        .get(format!("{}{path}", sim.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

/// Against the simulator speaking 2.0.1 (live histories): an exporter killed with SIGKILL
/// and started again while the job runs (its monitoring answer has no end time) has the
/// job's last success at its first poll: the newest `COMPLETE` run of the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_the_last_success_comes_back_from_the_simulators_history() {
    let sim = Sim::start_with(&["--token", TOKEN, "--zdm-version", "2.0.1", "--cycle", "6s"]);
    let job = "app-config-백업";
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    timezone: Asia/Seoul\n    interval: 300ms\n    timeout: 1s\n    token_env: SIM_TOKEN\n    backup_jobs: [{job}]\n",
        sim.url()
    );
    let last = job_series(
        "backup_job_last_success_time_seconds",
        "zdm",
        "backup",
        job,
        "app-01",
        "/etc",
    );
    let running = job_status("zdm", job, "app-01", "/etc", "running");
    let up = format!(
        "backup_target_up{{system=\"zdm\",upstream=\"zdm\",kind=\"backup_job\",target=\"{job}\"}}"
    );
    let exp = Exporter::start(&yaml);
    exp.wait_metrics("a last success", |m| value(m, &last).is_some())
        .await;
    let mut exp = exp;
    // Early in a run, the restarted exporter's first poll sees it running (no end time
    // in the monitoring answer). On a loaded machine the run may end before that poll:
    // then the restart is tried again, at most three times.
    let monitoring = format!("/api/backups/monitoring/job/{}", encode(job));
    for attempt in 1..=3 {
        exp.proc.signal("KILL");
        drop(exp);
        wait_for(
            "the job early in a run",
            Duration::from_secs(30),
            || async {
                let body = sim_json(&sim, &monitoring).await;
                let progress = &body["data"]["job"]["progressInfo"];
                let percent = progress["percent"]
                    .as_str()
                    .unwrap_or("")
                    .trim_end_matches('%')
                    .parse::<u32>()
                    .ok();
                (progress["status"] == "Processing" && percent.is_some_and(|p| p < 30))
                    .then_some(())
            },
        )
        .await;
        let history = sim_json(&sim, "/api/backups/histories?page=1&limit=100").await;
        let newest = history["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["job"]["name"] == job && e["result"]["status"] == "COMPLETE")
            .and_then(|e| e["time"]["end"].as_str().map(str::to_owned))
            .expect("a completed run in the history");
        let want = chrono::NaiveDateTime::parse_from_str(&newest, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_local_timezone(chrono_tz::Asia::Seoul)
            .unwrap()
            .timestamp() as f64;
        exp = Exporter::start(&yaml);
        let m = exp
            .wait_metrics("the first poll", |m| value(m, &up) == Some(1.0))
            .await;
        if value(&m, &running) != Some(1.0) && attempt < 3 {
            continue;
        }
        assert_eq!(value(&m, &running), Some(1.0), "{m}");
        assert_eq!(value(&m, &last), Some(want), "{newest}\n{m}");
        return;
    }
}

/// The exporter's retried requests (5xx, connection errors), for a failure message.
fn retries(exp: &Exporter) -> String {
    let log = exp.proc.stderr_text();
    let retried: Vec<&str> = log.lines().filter(|l| l.contains("retrying")).collect();
    format!("{} retried requests: {retried:?}", retried.len())
}

/// The exporter's history requests, counted by the simulator (2.0.1): with backup and
/// recovery targets both histories are read, in turns, at most one request per interval
/// after each history's first read; with backup targets only, the recovery history is never
/// asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_cost_at_most_one_request_per_upstream_per_interval() {
    let sim = Sim::start_with(&["--token", TOKEN, "--zdm-version", "2.0.1", "--cycle", "4s"]);
    let both = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    interval: 500ms\n    timeout: 2s\n    token_env: SIM_TOKEN\n    servers: [web-01, win-fs-01]\n    backup_jobs: [app-config-백업]\n    recovery_jobs: [db-복구]\n    recovery_servers: [db-dr-02]\n",
        sim.url()
    );
    let polls = || async { sim.requests("system", "web-01").await };
    let histories = |stats: &serde_json::Value| {
        let n = |k: &str| stats[k].as_u64().unwrap_or(0);
        (n("backups/histories"), n("recoveries/histories"))
    };
    let debug = ["--log.level", "debug"];
    let exp = Exporter::start_with(&both, &debug, &[]);
    exp.wait_metrics("both kinds up", |m| {
        value(m, &target_up("zdm", "recovery_server", "db-dr-02")) == Some(1.0)
            && value(m, &target_up("zdm", "server", "web-01")) == Some(1.0)
    })
    .await;
    let first = histories(&sim.stats().await);
    assert!(
        first.0 >= 1 && first.1 >= 1,
        "each history's first read: {first:?}"
    );
    // From here on: the history requests of a window, against the intervals it spans. The
    // intervals are counted from the window's length, not from the polls of a target: on a
    // loaded machine a poll that overruns its interval skips a tick, while the histories
    // (read at most once in each interval of the upstream's clock) do not wait for it.
    let client = client();
    let started = std::time::Instant::now();
    let reset = client
        .post(format!("{}/_sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success());
    wait_for(
        "twelve polls of web-01",
        Duration::from_secs(30),
        || async { (polls().await >= 12).then_some(()) },
    )
    .await;
    let stats = sim.stats().await;
    let intervals = (started.elapsed().as_secs_f64() / 0.5).ceil() as u64;
    let (backups, recoveries) = histories(&stats);
    assert!(
        backups + recoveries <= intervals + 1,
        "{backups} + {recoveries} history requests in {intervals} intervals: {stats}\n{}",
        retries(&exp)
    );
    assert!(
        backups >= 3 && recoveries >= 3 && backups.abs_diff(recoveries) <= 1,
        "both histories still read, in turns: {backups} + {recoveries} in {intervals}"
    );
    drop(exp);

    // Backup targets only: the recovery history is never asked.
    let backups_only = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    interval: 500ms\n    timeout: 2s\n    token_env: SIM_TOKEN\n    servers: [web-01]\n    backup_jobs: [app-config-백업]\n",
        sim.url()
    );
    client
        .post(format!("{}/_sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let exp = Exporter::start_with(&backups_only, &debug, &[]);
    wait_for(
        "twelve polls of web-01",
        Duration::from_secs(30),
        || async { (polls().await >= 12).then_some(()) },
    )
    .await;
    let stats = sim.stats().await;
    let intervals = (started.elapsed().as_secs_f64() / 0.5).ceil() as u64;
    let (backups, recoveries) = histories(&stats);
    assert_eq!(recoveries, 0, "{stats}");
    assert!(
        (1..=intervals + 1).contains(&backups),
        "{backups} backup history requests in {intervals} intervals (first read included)\n{}",
        retries(&exp)
    );
    drop(exp);
}
