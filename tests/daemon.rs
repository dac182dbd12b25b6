//! The running daemon against the simulator: faults, run counting, staleness, dedupe,
//! reload, login, secrets, the landing page, gzip and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::hostile::{answer, Hostile};
use crate::common::*;
use serde_json::json;

fn job_answer(status: &str, percent: &str, start: &str, end: &str) -> serde_json::Value {
    json!({
        "success": true,
        "requestID": "req-test",
        "data": {
            "system": { "name": "app-01" },
            "job": {
                "info": { "name": "nightly", "partition": "/data" },
                "progressInfo": {
                    "status": status,
                    "percent": percent,
                    "message": "m",
                    "start": start,
                    "elapsed": "00:10:00",
                    "end": end
                },
                "log": []
            }
        },
        "message": "Backup monitoring info",
        "timestamp": "2025-01-15T10:30:00Z"
    })
}

const FAST: &str = "    interval: 300ms\n    timeout: 1s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_counted_and_the_other_targets_keep_their_data() {
    let sim = Sim::start();
    let yaml = zdm_config(
        &sim,
        FAST,
        "    servers: [server-01]\n    backup_jobs: [daily-backup, daily-backup-win]\n",
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let healthy = job_status("zdm", "daily-backup-root", "server-01", "/", "completed");

    let faults = [
        ("not_found", "not_found"),
        ("bad_request", "incomplete"),
        ("error500", "http_5xx"),
        ("slow:3", "timeout"),
        ("truncated", "decode_error"),
        ("unauthorized", "auth_error"),
        ("oversized", "too_large"),
        ("connection_close", "upstream_error"),
    ];
    for (fault, outcome) in faults {
        let before = value(&exp.metrics().await, &outcome_series("zdm", outcome)).unwrap_or(0.0);
        sim.fault("backup_job", "daily-backup-win", fault).await;
        let m = exp
            .wait_metrics(&format!("{fault} counted as {outcome}"), |m| {
                value(m, &outcome_series("zdm", outcome)).unwrap_or(0.0) > before
                    && value(m, &target_up("zdm", "backup_job", "daily-backup-win")) == Some(0.0)
            })
            .await;
        assert_eq!(
            value(&m, &target_up("zdm", "server", "server-01")),
            Some(1.0),
            "{fault}"
        );
        assert_eq!(
            value(&m, &target_up("zdm", "backup_job", "daily-backup")),
            Some(1.0),
            "{fault}"
        );
        assert_eq!(
            value(&m, &healthy),
            Some(1.0),
            "{fault}: other targets keep their data"
        );
        let win_running = job_status(
            "zdm",
            "daily-backup-win",
            "windows-server-01",
            "C:",
            "running",
        );
        if fault == "not_found" {
            assert_eq!(
                value(&m, &win_running),
                None,
                "a 404 drops the job's series at once"
            );
        }
        sim.fault("backup_job", "daily-backup-win", "none").await;
        exp.wait_metrics(&format!("recovery after {fault}"), |m| {
            value(m, &target_up("zdm", "backup_job", "daily-backup-win")) == Some(1.0)
                && value(m, &win_running) == Some(1.0)
        })
        .await;
    }
    let logs = exp.proc.stderr_text();
    assert!(logs.contains("target poll failing"), "{logs}");
    assert!(logs.contains("target recovered"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
}

/// A poll tries three times (one try and two retries) on a 5xx, within its interval: 4 s
/// leave room for both backoffs however busy the machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_twice() {
    let sim = Sim::start();
    // One 500 then success: the retry inside the same poll keeps the target up.
    sim.fault("backup_job", "daily-backup", "error500_once")
        .await;
    let yaml = zdm_config(
        &sim,
        "    interval: 4s\n    timeout: 1s\n",
        "    backup_jobs: [daily-backup]\n",
    );
    let exp = Exporter::start(&yaml);
    let m = exp
        .wait_metrics("a retried 500", |m| {
            value(m, &outcome_series("zdm", "http_5xx")) == Some(1.0)
                && value(m, &target_up("zdm", "backup_job", "daily-backup")).is_some()
        })
        .await;
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup")),
        Some(1.0)
    );

    // Persistent 500: three attempts per poll (one try and two retries).
    sim.fault("backup_job", "daily-backup", "error500").await;
    exp.wait_metrics("three attempts", |m| {
        value(m, &outcome_series("zdm", "http_5xx")).unwrap_or(0.0) >= 4.0
            && value(m, &target_up("zdm", "backup_job", "daily-backup")) == Some(0.0)
    })
    .await;
    let polls = value(&exp.metrics().await, &outcome_series("zdm", "http_5xx")).unwrap() - 1.0;
    assert_eq!(
        polls % 3.0,
        0.0,
        "every failing poll makes exactly three attempts"
    );
}

/// A 429's Retry-After (8 s, with a 2 s interval) holds the target's polls until it passes.
/// That none is sent meanwhile is counted against the other target, never faulted, whose
/// polls come a second after daily-backup's in every interval: two more of them take the
/// schedule past daily-backup's next slot (2 s after the 429), and not past the Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_the_polls_until_its_retry_after() {
    let sim = Sim::start();
    sim.fault("backup_job", "daily-backup", "rate_limited:8")
        .await;
    let yaml = zdm_config(
        &sim,
        // Retry-After is clamped to the stale window: a longer one lets it count in full.
        "    interval: 2s\n    timeout: 1s\n    stale_after: 30s\n",
        "    backup_jobs: [daily-backup, daily-backup-win]\n",
    );
    let exp = Exporter::start(&yaml);
    exp.wait_metrics("a 429", |m| {
        value(m, &outcome_series("zdm", "rate_limited")) == Some(1.0)
    })
    .await;
    let after_429 = sim.requests("backup_job", "daily-backup").await;
    let other = sim.requests("backup_job", "daily-backup-win").await;
    wait_for(
        "two more polls of the other target",
        Duration::from_secs(10),
        || async {
            (sim.requests("backup_job", "daily-backup-win").await >= other + 2).then_some(())
        },
    )
    .await;
    assert_eq!(
        sim.requests("backup_job", "daily-backup").await,
        after_429,
        "no request inside Retry-After"
    );
    sim.fault("backup_job", "daily-backup", "none").await;
    exp.wait_metrics("recovery after Retry-After", |m| {
        value(m, &target_up("zdm", "backup_job", "daily-backup")) == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_counted_once_and_a_restart_adds_nothing() {
    let sim = Sim::start();
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer("run", "50%", "2025-01-15T01:00:00Z", "-"),
    )
    .await;
    let yaml = zdm_config(&sim, FAST, "    backup_jobs: [nightly]\n");
    let failed = runs("zdm", "nightly", "app-01", "/data", "failed");
    let completed = runs("zdm", "nightly", "app-01", "/data", "completed");
    let running = job_status("zdm", "nightly", "app-01", "/data", "running");

    let exp = Exporter::start(&yaml);
    exp.wait_metrics("running job", |m| value(m, &running) == Some(1.0))
        .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &failed), Some(0.0));
    assert_eq!(value(&m, &completed), Some(0.0));

    // The run fails: counted once, however many polls see it failed.
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer(
            "fail",
            "50%",
            "2025-01-15T01:00:00Z",
            "2025-01-15T01:20:00Z",
        ),
    )
    .await;
    exp.wait_metrics("failure counted", |m| value(m, &failed) == Some(1.0))
        .await;
    let before = sim.requests("backup_job", "nightly").await;
    wait_for("more polls", Duration::from_secs(10), || async {
        (sim.requests("backup_job", "nightly").await >= before + 3).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &failed), Some(1.0));
    assert_eq!(
        value(
            &m,
            &job_series(
                "backup_job_last_success_time_seconds",
                "zdm",
                "backup",
                "nightly",
                "app-01",
                "/data"
            )
        ),
        None,
        "a failed run is no success"
    );

    // A new run that starts and completes between two polls still counts (new start time).
    sim.fixture(
        "backup_job",
        "nightly",
        &job_answer(
            "complete",
            "100%",
            "2025-01-16T01:00:00Z",
            "2025-01-16T01:30:00Z",
        ),
    )
    .await;
    let m = exp
        .wait_metrics("completion counted", |m| value(m, &completed) == Some(1.0))
        .await;
    assert_eq!(value(&m, &failed), Some(1.0));
    assert_eq!(
        value(
            &m,
            &job_series(
                "backup_job_last_success_time_seconds",
                "zdm",
                "backup",
                "nightly",
                "app-01",
                "/data"
            )
        ),
        Some(1736991000.0)
    );

    // Restart: the finished run is seen for the first time again and not counted.
    drop(exp);
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("job after restart", |m| value(m, &completed).is_some())
        .await;
    for result in [
        "completed",
        "completed_with_warnings",
        "failed",
        "cancelled",
    ] {
        assert_eq!(
            value(&m, &runs("zdm", "nightly", "app-01", "/data", result)),
            Some(0.0),
            "{result}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_targets_go_stale_and_vanished_jobs_go_at_once() {
    let sim = Sim::start();
    let yaml = zdm_config(
        &sim,
        "    interval: 300ms\n    timeout: 1s\n    stale_after: 2s\n",
        "    servers: [server-01]\n    backup_jobs: [daily-backup]\n",
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let linux = job_status("zdm", "daily-backup", "linux-server-01", "/", "completed");
    let root = job_status("zdm", "daily-backup-root", "server-01", "/", "completed");
    let home = job_status("zdm", "daily-backup-home", "server-01", "/home", "running");
    exp.wait_metrics("all jobs", |m| {
        value(m, &linux) == Some(1.0) && value(m, &home) == Some(1.0)
    })
    .await;

    // Failing polls: the series stay (target down) until stale_after, then go.
    sim.fault("backup_job", "daily-backup", "error500").await;
    let m = exp
        .wait_metrics("target down", |m| {
            value(m, &target_up("zdm", "backup_job", "daily-backup")) == Some(0.0)
        })
        .await;
    assert_eq!(
        value(&m, &linux),
        Some(1.0),
        "last-known series stay before stale_after"
    );
    exp.wait_metrics("stale series dropped", |m| value(m, &linux).is_none())
        .await;
    let m = exp.metrics().await;
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup")),
        Some(0.0)
    );
    assert_eq!(value(&m, &root), Some(1.0));

    // A job missing from a successful answer loses its series at once.
    let mut answer = seed_000();
    if let Some(jobs) = answer["data"]["job"].as_array_mut() {
        jobs.retain(|j| j["info"]["name"] != "daily-backup-home");
    }
    sim.fixture("system", "server-01", &answer).await;
    let m = exp
        .wait_metrics("vanished job dropped", |m| value(m, &home).is_none())
        .await;
    assert_eq!(value(&m, &root), Some(1.0));
}

fn seed_000() -> serde_json::Value {
    json!({
        "success": true,
        "requestID": "req-abc123",
        "data": {
            "system": { "name": "server-01" },
            "summary": { "total": 3, "completed": 1, "inProgress": 1, "failed": 0, "pending": 1, "overallProgress": "45%" },
            "job": [
                { "info": { "name": "daily-backup-root", "partition": "/" },
                  "progressInfo": { "status": "complete", "percent": "100%", "message": "Backup completed",
                                    "start": "2025-01-15T02:00:00Z", "elapsed": "00:30:00", "end": "2025-01-15T02:30:00Z" },
                  "log": [] },
                { "info": { "name": "daily-backup-home", "partition": "/home" },
                  "progressInfo": { "status": "run", "percent": "45%", "message": "Processing files...",
                                    "start": "2025-01-15T03:00:00Z", "elapsed": "00:15:00", "end": "-" },
                  "log": ["Starting backup...", "Processing files..."] }
            ]
        },
        "message": "Server backup monitoring info",
        "timestamp": "2025-01-15T11:15:00Z"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_reported_by_two_targets_is_one_series() {
    let sim = Sim::start();
    // A configured backup job that is also a job of server-01.
    let mut dup = job_answer(
        "complete",
        "100%",
        "2025-01-15T02:00:00Z",
        "2025-01-15T02:30:00Z",
    );
    dup["data"]["system"]["name"] = json!("server-01");
    dup["data"]["job"]["info"] = json!({ "name": "daily-backup-root", "partition": "/" });
    sim.fixture("backup_job", "root-job", &dup).await;
    let yaml = zdm_config(
        &sim,
        FAST,
        "    servers: [server-01]\n    backup_jobs: [root-job]\n",
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("both targets polled twice", |m| {
            value(m, &outcome_series("zdm", "success")).unwrap_or(0.0) >= 4.0
        })
        .await;
    let series = job_status("zdm", "daily-backup-root", "server-01", "/", "completed");
    assert_eq!(
        m.lines().filter(|l| l.starts_with(&series)).count(),
        1,
        "{m}"
    );
    let mut lines: Vec<&str> = m
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    let total = lines.len();
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), total, "no duplicate series anywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_good_config_and_refuses_a_bad_one() {
    let sim = Sim::start();
    let first = zdm_config(&sim, FAST, "    backup_jobs: [daily-backup]\n");
    let exp = Exporter::start_with(&first, &["--web.enable-lifecycle"], &[]);
    exp.wait_ready().await;
    let reload_ok = "backup_exporter_config_last_reload_successful";

    // SIGHUP with an added target.
    let second = zdm_config(
        &sim,
        FAST,
        "    backup_jobs: [daily-backup, daily-backup-win]\n",
    );
    write_config(exp.dir.path(), &second);
    exp.proc.signal("HUP");
    exp.wait_metrics("new target after SIGHUP", |m| {
        value(m, &target_up("zdm", "backup_job", "daily-backup-win")) == Some(1.0)
    })
    .await;

    // A bad config by POST /-/reload: refused, the running one keeps serving.
    write_config(
        exp.dir.path(),
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: not a url\n",
    );
    let resp = client().post(exp.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().await.unwrap();
    assert!(body.contains("upstreams[0]"), "{body}");
    let m = exp.metrics().await;
    assert_eq!(value(&m, &format!("{reload_ok} ")), None);
    assert_eq!(value(&m, reload_ok), Some(0.0));
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup-win")),
        Some(1.0)
    );

    // Removing a target by POST /-/reload drops its series.
    write_config(exp.dir.path(), &first);
    let resp = client().post(exp.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let m = exp.metrics().await;
    assert_eq!(value(&m, reload_ok), Some(1.0));
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup-win")),
        None
    );
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup")),
        Some(1.0)
    );
    assert_eq!(
        client()
            .get(exp.url("/-/reload"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_flow_and_no_secret_in_any_output_at_trace() {
    let sim = Sim::start();
    let yaml = format!(
        "upstreams:
  - name: zdm
    type: zdm
    url: {}
    api_prefix: /api
    interval: 300ms
    timeout: 1s
    login: {{ path: /api/auth/issue, email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}
    backup_jobs: [daily-backup]
  - name: zdm-token
    type: zdm
    url: {}
    interval: 300ms
    token_env: SIM_TOKEN
    backup_jobs: [daily-backup-win]
",
        sim.url(),
        sim.url()
    );
    let exp = Exporter::start_with(&yaml, &["--log.level", "trace"], &[]);
    exp.wait_ready().await;
    exp.wait_metrics("login worked", |m| {
        value(m, &target_up("zdm", "backup_job", "daily-backup")) == Some(1.0)
    })
    .await;
    // A 401 makes the exporter log in again and retry.
    sim.fault("backup_job", "daily-backup", "unauthorized")
        .await;
    exp.wait_metrics("auth error", |m| {
        value(m, &outcome_series("zdm", "auth_error")).unwrap_or(0.0) >= 2.0
    })
    .await;
    sim.fault("backup_job", "daily-backup", "none").await;
    exp.wait_metrics("recovered", |m| {
        value(m, &target_up("zdm", "backup_job", "daily-backup")) == Some(1.0)
    })
    .await;
    let logins = sim.stats().await["login"].as_u64().unwrap_or(0);
    assert!(logins >= 2, "a 401 re-issues the token (logins: {logins})");

    let (_, landing) = exp.get("/").await;
    let metrics = exp.metrics().await;
    let logs = exp.proc.stderr_text();
    for secret in [TOKEN, PASSWORD] {
        assert!(!logs.contains(secret), "secret in logs");
        assert!(!metrics.contains(secret), "secret in /metrics");
        assert!(!landing.contains(secret), "secret on the landing page");
    }
    assert!(
        logs.contains("\"level\":\"trace\"") || logs.contains("\"level\":\"debug\""),
        "trace logging is on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error() {
    let sim = Sim::start();
    let yaml = format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    interval: 300ms\n    login: {{ email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}\n    backup_jobs: [daily-backup]\n",
        sim.url()
    );
    let exp = Exporter::start_with(&yaml, &[], &[("SIM_PASSWORD", "wrong-password")]);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("auth error", |m| {
            value(m, &outcome_series("zdm", "auth_error")).unwrap_or(0.0) >= 1.0
        })
        .await;
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup")),
        Some(0.0)
    );
    assert!(!exp.proc.stderr_text().contains("wrong-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_landing_page_gzip_and_graceful_shutdown() {
    let sim = Sim::start();
    let yaml = zdm_config(
        &sim,
        FAST,
        "    servers: [server-01]\n    recovery_jobs: [daily-recovery]\n",
    );
    let mut exp = Exporter::start(&yaml);
    assert_eq!(exp.get("/-/healthy").await.0, 200);
    exp.wait_ready().await;

    let resp = client().get(exp.url("/metrics")).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let plain = resp.text().await.unwrap();
    let gz = client()
        .get(exp.url("/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let compressed = gz.bytes().await.unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut text,
    )
    .unwrap();
    assert!(compressed.len() < plain.len());
    assert!(text.contains("backup_job_status{"));

    let (status, page) = exp.get("/").await;
    assert_eq!(status, 200);
    for needle in [
        "daily-backup-root",
        "daily-recovery",
        "<tr data-s=running",
        "Processing files...",
        "width:45.0%",
        "/metrics",
        // No upstream discovers: the boxes say so rather than showing an empty green.
        "<section class=\"box none\" id=unprotected><h2>Unprotected: 0</h2><p class=muted>no upstream lists its servers: set discover: true</p></section>",
        "<section class=\"box none\" id=capacity><h2>Capacity</h2><p class=muted>no upstream lists its servers: set discover: true</p></section>",
    ] {
        assert!(page.contains(needle), "landing page lacks {needle}");
    }
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );
    assert_eq!(exp.get("/nope").await.0, 404);

    exp.proc.signal("TERM");
    assert_eq!(exp.proc.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_error_retried_and_logged_once() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let yaml = "upstreams:\n  - name: zdm\n    type: zdm\n    url: http://127.0.0.1:1\n    token_env: SIM_TOKEN\n    interval: 1s\n    backup_jobs: [daily-backup]\n";
    let exp = Exporter::start(yaml);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("three polls of three attempts", |m| {
            value(m, &outcome_series("zdm", "connect_error")).unwrap_or(0.0) >= 9.0
        })
        .await;
    assert_eq!(
        value(&m, &target_up("zdm", "backup_job", "daily-backup")),
        Some(0.0)
    );
    let logs = exp.proc.stderr_text();
    assert_eq!(
        logs.matches("target poll failing").count(),
        1,
        "logged when the fault starts, not every poll:\n{logs}"
    );
    assert!(logs.contains("\"outcome\":\"connect_error\""), "{logs}");
}

/// An upstream that holds every request until three are in flight at once, or for a second,
/// and counts the most it had in flight.
struct Holding {
    upstream: Hostile,
    most: Arc<AtomicUsize>,
}

impl Holding {
    fn start() -> Holding {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let seen_most = most.clone();
        let body = job_answer(
            "complete",
            "100%",
            "2025-01-15T01:00:00Z",
            "2025-01-15T01:20:00Z",
        )
        .to_string();
        let upstream = Hostile::start(move |_| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen_most.fetch_max(now, Ordering::SeqCst);
            let held = std::time::Instant::now();
            while seen_most.load(Ordering::SeqCst) < 3 && held.elapsed() < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_millis(10));
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            answer("200 OK", &[], &body)
        });
        Holding { upstream, most }
    }
}

/// The first polls of all targets start together; `concurrency` lets that many requests of an
/// upstream be in flight, the others wait their turn. Counted by the upstream: with 3, all
/// three are in flight at once (so it would see a limit that let them through); with 1, never
/// more than one, though each is held for a second. (That a poll's duration is its own work,
/// not its time in the queue, is a test of the poller on tokio's paused clock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_wait_their_turn() {
    for (concurrency, most) in [(3, 3), (1, 1)] {
        let upstream = Holding::start();
        let yaml = format!(
            "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    token_env: SIM_TOKEN\n    interval: 30s\n    timeout: 5s\n    concurrency: {concurrency}\n    backup_jobs: [daily-backup, daily-backup-win, incomplete-job]\n",
            upstream.upstream.url()
        );
        let exp = Exporter::start(&yaml);
        wait_for(
            "three answered requests",
            Duration::from_secs(20),
            || async { (upstream.upstream.seen().len() >= 3).then_some(()) },
        )
        .await;
        assert_eq!(
            upstream.most.load(Ordering::SeqCst),
            most,
            "concurrency {concurrency}"
        );
        exp.wait_ready().await;
        let m = exp.metrics().await;
        let durations = m
            .lines()
            .filter(|l| l.starts_with("backup_target_poll_duration_seconds{"))
            .count();
        assert_eq!(
            durations, 3,
            "concurrency {concurrency}: every target polled"
        );
    }
}

/// Regression: 20 reloads in 0.3 s caused thousands of upstream requests and a ZDM login
/// each. A reload that changes nothing for an upstream keeps its schedule, token and state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_nothing_sends_no_request_and_no_login() {
    let sim = Sim::start();
    let yaml = format!(
        "upstreams:
  - name: zdm
    type: zdm
    url: {url}
    interval: 30s
    login: {{ path: /api/auth/issue, email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}
    backup_jobs: [daily-backup]
  - name: zdm-token
    type: zdm
    url: {url}
    interval: 30s
    api_version: '1.3'
    token_env: SIM_TOKEN
    backup_jobs: [daily-backup-win]
",
        url = sim.url()
    );
    let exp = Exporter::start_with(&yaml, &["--web.enable-lifecycle"], &[]);
    exp.wait_ready().await;
    let logins = sim.stats().await["login"].as_u64().unwrap_or(0);
    let login_polls = sim.requests("backup_job", "daily-backup").await;
    let polls = login_polls + sim.requests("backup_job", "daily-backup-win").await;
    assert_eq!(logins, 1);
    // Twenty POSTs at once are coalesced (reloads run at most once a second, each answering
    // every request queued by then), so they take about a second, not twenty.
    let posts = (0..20).map(|_| client().post(exp.url("/-/reload")).send());
    for resp in futures_util::future::join_all(posts).await {
        assert_eq!(resp.unwrap().status(), 200);
    }
    let after_posts = reloads_logged(&exp);
    assert!(
        (1..20).contains(&after_posts),
        "{after_posts} reloads for 20 POSTs"
    );
    exp.proc.signal("HUP");
    // A SIGHUP is applied when its reload is logged, after those above.
    wait_for("the SIGHUP reload", Duration::from_secs(10), || async {
        (reloads_logged(&exp) > after_posts).then_some(())
    })
    .await;

    // Changing one upstream restarts that one only. What the simulator counted once its
    // restarted targets answered includes whatever the reloads before sent (their
    // requests would have gone out first): no new login, no poll of the login upstream, and
    // one poll of the changed upstream's target, from its restart.
    let win_polls = sim.requests("backup_job", "daily-backup-win").await;
    assert_eq!(
        win_polls + login_polls,
        polls,
        "no request: both upstreams keep their schedule"
    );
    let changed = yaml.replacen(
        "backup_jobs: [daily-backup-win]",
        "backup_jobs: [daily-backup-win, daily-recovery]",
        1,
    );
    write_config(exp.dir.path(), &changed);
    exp.proc.signal("HUP");
    exp.wait_metrics("the added target", |m| {
        value(m, &target_up("zdm-token", "backup_job", "daily-backup-win")).is_some()
            && m.contains("target=\"daily-recovery\"")
    })
    .await;
    wait_for(
        "the restarted upstream's first poll",
        Duration::from_secs(10),
        || async {
            (sim.requests("backup_job", "daily-backup-win").await > win_polls).then_some(())
        },
    )
    .await;
    assert_eq!(
        sim.stats().await["login"].as_u64().unwrap_or(0),
        logins,
        "no new login"
    );
    assert_eq!(
        sim.requests("backup_job", "daily-backup").await,
        login_polls,
        "nor a poll of the upstream that did not change"
    );
    assert_eq!(
        sim.requests("backup_job", "daily-backup-win").await,
        win_polls + 1,
        "one poll of the changed upstream's target: the no-op reloads restarted nothing"
    );
}

/// How many reloads the exporter has logged as applied.
fn reloads_logged(exp: &Exporter) -> usize {
    exp.proc
        .stderr_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "configuration reloaded")
        .count()
}

/// A reload that changes only `job_status` and `stale_after` is the store's business: the
/// upstream keeps its pollers, token and schedule (no login, no poll), and its series are
/// rendered in the new form at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_only_job_status_renders_again_without_a_login_or_a_poll() {
    let sim = Sim::start();
    let yaml = format!(
        "upstreams:
  - name: zdm
    type: zdm
    url: {url}
    interval: 30s
    login: {{ path: /api/auth/issue, email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}
    backup_jobs: [daily-backup]
  - name: zdm-token
    type: zdm
    url: {url}
    interval: 30s
    api_version: '1.3'
    token_env: SIM_TOKEN
    backup_jobs: [daily-backup-win]
",
        url = sim.url()
    );
    let exp = Exporter::start_with(&yaml, &["--web.enable-lifecycle"], &[]);
    exp.wait_ready().await;
    let statuses = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with("backup_job_status{system=\"zdm\",upstream=\"zdm\","))
            .map(str::to_string)
            .collect()
    };
    let before = statuses(&exp.metrics().await);
    let logins = sim.stats().await["login"].as_u64().unwrap_or(0);
    let polls = sim.requests("backup_job", "daily-backup").await;
    assert_eq!(logins, 1);
    assert!(!before.is_empty() && before.len() % 7 == 0, "{before:?}");

    let changed = yaml.replacen(
        "    interval: 30s\n",
        "    interval: 30s\n    job_status: active\n    stale_after: 5m\n",
        1,
    );
    write_config(exp.dir.path(), &changed);
    let resp = client().post(exp.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // At once, without waiting for a poll: one series per job, the active status.
    let after = statuses(&exp.metrics().await);
    assert_eq!(after.len() * 7, before.len(), "{after:?}");
    assert!(after.iter().all(|l| l.ends_with("} 1")), "{after:?}");
    assert!(after.iter().all(|l| before.contains(l)), "{after:?}");

    // Then a reload that restarts the other upstream only: once its restarted target has
    // answered, whatever the first reload sent (it went out first) has been counted.
    let win_polls = sim.requests("backup_job", "daily-backup-win").await;
    let restarted = changed.replacen(
        "backup_jobs: [daily-backup-win]",
        "backup_jobs: [daily-backup-win, daily-recovery]",
        1,
    );
    write_config(exp.dir.path(), &restarted);
    let resp = client().post(exp.url("/-/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_for(
        "the restarted upstream's first poll",
        Duration::from_secs(10),
        || async {
            (sim.requests("backup_job", "daily-backup-win").await > win_polls).then_some(())
        },
    )
    .await;
    assert_eq!(
        sim.stats().await["login"].as_u64().unwrap_or(0),
        logins,
        "no new login"
    );
    assert_eq!(
        sim.requests("backup_job", "daily-backup").await,
        polls,
        "no poll: the schedule is kept"
    );
}
