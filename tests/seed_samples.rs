//! The sample answers of the seed documents, served by the simulator, come out of the real
//! binary (`--once`) as exactly the series the contract implies.

use crate::common::seeds::*;
use crate::common::*;

#[test]
fn seed_samples_give_the_exact_series() {
    let sim = seed_sim();
    let (code, m, stderr) = run_once(&seed_config(&sim));
    assert_eq!(code, Some(0), "{stderr}");

    let expect = |series: String, want: f64| {
        assert_eq!(value(&m, &series), Some(want), "{series}\n{m}");
    };
    let absent = |series: String| {
        assert_eq!(value(&m, &series), None, "{series} should be absent");
    };

    // Seed 000: server-01, a completed root job and a running /home job, and its summary.
    let root = |metric| {
        job_series(
            metric,
            "zdm-v1",
            "backup",
            "daily-backup-root",
            "server-01",
            "/",
        )
    };
    let home = |metric| {
        job_series(
            metric,
            "zdm-v1",
            "backup",
            "daily-backup-home",
            "server-01",
            "/home",
        )
    };
    expect(
        job_status("zdm-v1", "daily-backup-root", "server-01", "/", "completed"),
        1.0,
    );
    expect(
        job_status("zdm-v1", "daily-backup-root", "server-01", "/", "running"),
        0.0,
    );
    expect(root("backup_job_progress_ratio"), 1.0);
    expect(root("backup_job_elapsed_seconds"), 1800.0);
    expect(root("backup_job_start_time_seconds"), 1736906400.0);
    expect(root("backup_job_end_time_seconds"), 1736908200.0);
    expect(root("backup_job_last_success_time_seconds"), 1736908200.0);
    expect(
        job_status(
            "zdm-v1",
            "daily-backup-home",
            "server-01",
            "/home",
            "running",
        ),
        1.0,
    );
    expect(home("backup_job_progress_ratio"), 0.45);
    expect(home("backup_job_elapsed_seconds"), 900.0);
    expect(home("backup_job_start_time_seconds"), 1736910000.0);
    absent(home("backup_job_end_time_seconds"));
    absent(home("backup_job_last_success_time_seconds"));
    for result in [
        "completed",
        "completed_with_warnings",
        "failed",
        "cancelled",
    ] {
        // Runs already finished when first seen are not counted.
        expect(
            runs("zdm-v1", "daily-backup-root", "server-01", "/", result),
            0.0,
        );
    }
    let server_jobs = |status: &str| {
        format!("backup_server_jobs{{system=\"zdm\",upstream=\"zdm-v1\",server=\"server-01\",status=\"{status}\"}}")
    };
    expect(server_jobs("completed"), 1.0);
    expect(server_jobs("running"), 1.0);
    expect(server_jobs("failed"), 0.0);
    expect(server_jobs("pending"), 1.0);
    expect(server_jobs("other"), 0.0);
    expect(
        "backup_server_progress_ratio{system=\"zdm\",upstream=\"zdm-v1\",server=\"server-01\"}"
            .into(),
        0.45,
    );

    // Seed 001 (API 1.0.x): naive times in Asia/Seoul, a Linux partition and a Windows drive.
    let linux = |metric| {
        job_series(
            metric,
            "zdm-legacy",
            "backup",
            "daily-backup",
            "linux-server-01",
            "/",
        )
    };
    expect(
        job_status(
            "zdm-legacy",
            "daily-backup",
            "linux-server-01",
            "/",
            "completed",
        ),
        1.0,
    );
    expect(linux("backup_job_progress_ratio"), 1.0);
    expect(linux("backup_job_elapsed_seconds"), 1800.0);
    expect(linux("backup_job_start_time_seconds"), 1736874000.0);
    expect(linux("backup_job_end_time_seconds"), 1736875800.0);
    let win = |metric| {
        job_series(
            metric,
            "zdm-legacy",
            "backup",
            "daily-backup-win",
            "windows-server-01",
            "C:",
        )
    };
    expect(
        job_status(
            "zdm-legacy",
            "daily-backup-win",
            "windows-server-01",
            "C:",
            "running",
        ),
        1.0,
    );
    expect(win("backup_job_progress_ratio"), 0.6);
    expect(win("backup_job_elapsed_seconds"), 1200.0);
    expect(win("backup_job_start_time_seconds"), 1736874000.0);
    absent(win("backup_job_end_time_seconds"));

    // Seed 002: a recovery with one series per volume; the pending volume has no times.
    let rec = |metric, volume| {
        job_series(
            metric,
            "zdm-v1",
            "restore",
            "daily-recovery",
            "target-server",
            volume,
        )
    };
    expect(
        "backup_job_status{system=\"zdm\",upstream=\"zdm-v1\",operation=\"restore\",job_name=\"daily-recovery\",server=\"target-server\",volume=\"/\",status=\"running\"}".into(),
        1.0,
    );
    expect(
        "backup_job_status{system=\"zdm\",upstream=\"zdm-v1\",operation=\"restore\",job_name=\"daily-recovery\",server=\"target-server\",volume=\"/home\",status=\"pending\"}".into(),
        1.0,
    );
    expect(rec("backup_job_progress_ratio", "/"), 0.45);
    expect(rec("backup_job_elapsed_seconds", "/"), 900.0);
    expect(rec("backup_job_start_time_seconds", "/"), 1736935200.0);
    expect(rec("backup_job_progress_ratio", "/home"), 0.0);
    absent(rec("backup_job_elapsed_seconds", "/home"));
    absent(rec("backup_job_start_time_seconds", "/home"));
    expect(
        "backup_job_info{system=\"zdm\",upstream=\"zdm-v1\",operation=\"restore\",job_name=\"daily-recovery\",server=\"target-server\",volume=\"/\",source_server=\"source-server\",target_server=\"target-server\"}".into(),
        1.0,
    );

    for (upstream, kind, target) in [
        ("zdm-v1", "server", "server-01"),
        ("zdm-v1", "recovery_job", "daily-recovery"),
        ("zdm-legacy", "backup_job", "daily-backup"),
        ("zdm-legacy", "backup_job", "daily-backup-win"),
    ] {
        expect(target_up(upstream, kind, target), 1.0);
    }
    expect(outcome_series("zdm-v1", "success"), 2.0);
    expect(outcome_series("zdm-legacy", "success"), 2.0);
    expect(outcome_series("zdm-v1", "http_5xx"), 0.0);
    assert!(
        !m.contains("status=\"unknown\"} 1"),
        "no unknown status in the seeds"
    );
}

/// Lines whose values change from run to run (times, durations, process figures).
fn stable(exposition: &str) -> String {
    let volatile = [
        "backup_target_last_success_time_seconds{",
        "backup_target_poll_duration_seconds{",
        "backup_upstream_request_duration_seconds",
        "backup_exporter_config_last_reload_success_time_seconds ",
        "backup_exporter_build_info{",
        "process_",
    ];
    exposition
        .lines()
        .filter(|l| l.starts_with('#') || !volatile.iter().any(|v| l.starts_with(v)))
        .filter(|l| !(l.starts_with("# ") && l.contains(" process_")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn full_exposition_snapshot() {
    let sim = seed_sim();
    let (code, m, stderr) = run_once(&seed_config(&sim));
    assert_eq!(code, Some(0), "{stderr}");
    insta::assert_snapshot!("seed_exposition", stable(&m));
}

#[test]
fn once_exits_1_when_a_target_fails_and_still_prints_the_rest() {
    let sim = Sim::start();
    let yaml = zdm_config(&sim, "", "    servers: [server-01, no-such-server]\n");
    let (code, m, _) = run_once(&yaml);
    assert_eq!(code, Some(1));
    assert_eq!(
        value(&m, &target_up("zdm", "server", "server-01")),
        Some(1.0)
    );
    assert_eq!(
        value(&m, &target_up("zdm", "server", "no-such-server")),
        Some(0.0)
    );
    assert_eq!(value(&m, &outcome_series("zdm", "not_found")), Some(1.0));
}

/// `job_status: active` (interface 5.3): only the status series whose value is 1, the rest
/// of the exposition unchanged; per upstream over `defaults`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_status_active_exports_only_the_series_that_is_1() {
    let sim = Sim::start();
    let targets = "    servers: [server-01]\n    backup_jobs: [daily-backup]\n";
    let stateset = Exporter::start(&zdm_config(&sim, "", targets));
    let active = Exporter::start(&format!(
        "defaults:\n  job_status: active\n{}",
        zdm_config(&sim, "", targets)
    ));
    stateset.wait_ready().await;
    active.wait_ready().await;
    let (full, lean) = (stateset.metrics().await, active.metrics().await);
    let status_lines = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with("backup_job_status{"))
            .map(str::to_string)
            .collect()
    };
    let ones: Vec<String> = status_lines(&full)
        .into_iter()
        .filter(|l| l.ends_with(" 1"))
        .collect();
    assert!(!ones.is_empty());
    assert_eq!(status_lines(&lean), ones, "exactly the series that are 1");
    assert_eq!(status_lines(&full).len(), ones.len() * 7);
    // Everything else is the same series.
    let others = |m: &str| -> Vec<String> {
        m.lines()
            .filter(|l| l.starts_with("backup_job_") && !l.starts_with("backup_job_status"))
            .filter(|l| !l.starts_with("backup_job_elapsed"))
            .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
            .collect()
    };
    assert_eq!(others(&full), others(&lean));
}
