//! SCP restore and backup histories against the simulator: the seed sample, the SDK's
//! example, signatures, API versions, paging, run counting, faults, the newest entry,
//! secrets.

use std::time::Duration;

use serde_json::json;

use crate::common::series::*;
use crate::common::*;

const SCP_ACCESS: &str = "scp-access-7c1d";
const SCP_SECRET: &str = "scp-secret-e5a90b";
const SEED_BACKUP: &str = "00cd2538fbf94d12b36aabbdd607e974";

/// The simulator with these SCP keys.
fn sim() -> Sim {
    Sim::start_with(&["--scp-keys", &format!("{SCP_ACCESS}:{SCP_SECRET}")])
}

const ENV: [(&str, &str); 2] = [
    ("SCP_ACCESS_KEY", SCP_ACCESS),
    ("SCP_SECRET_KEY", SCP_SECRET),
];

fn scp_upstream(sim: &Sim, extra: &str, backups: &str) -> String {
    scp_upstream_url(&sim.url(), extra, backups)
}

fn scp_upstream_url(url: &str, extra: &str, backups: &str) -> String {
    format!(
        "  - name: scp\n    type: scp\n    url: {url}\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n{extra}    backups: {backups}\n"
    )
}

/// `--once` with the keys of [`ENV`], then `env` (which may override them).
fn once(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let all: Vec<(&str, &str)> = ENV.iter().chain(env).copied().collect();
    once_with(yaml, &all)
}

#[test]
fn seed_sample_of_scp_gives_the_exact_series() {
    let sim = sim();
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(&sim, "", &format!("[{SEED_BACKUP}]"))
    );
    let (code, m, stderr) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{stderr}\n{m}");

    // Seed 003: one COMPLETED restore to restoretest1; naive times read in UTC.
    let s = |metric| series(metric, "scp", "scp", "restore", SEED_BACKUP, "restoretest1");
    assert_eq!(
        value(
            &m,
            &status(
                "scp",
                "scp",
                "restore",
                SEED_BACKUP,
                "restoretest1",
                "completed"
            )
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(value(&m, &s("backup_job_progress_ratio")), Some(1.0));
    assert_eq!(value(&m, &s("backup_job_elapsed_seconds")), Some(0.0));
    assert_eq!(
        value(&m, &s("backup_job_start_time_seconds")),
        Some(1730094767.0)
    );
    assert_eq!(
        value(&m, &s("backup_job_end_time_seconds")),
        Some(1730094767.0)
    );
    assert_eq!(
        value(&m, &s("backup_job_last_success_time_seconds")),
        Some(1730094767.0)
    );
    assert_eq!(
        value(
            &m,
            &runs_of(
                "scp",
                "scp",
                "restore",
                SEED_BACKUP,
                "restoretest1",
                "completed"
            )
        ),
        Some(0.0)
    );
    assert!(m.contains(&format!(
        "backup_job_info{{system=\"scp\",upstream=\"scp\",operation=\"restore\",job_name=\"{SEED_BACKUP}\",server=\"restoretest1\",volume=\"\",backup_id=\"{SEED_BACKUP}\",schedule_name=\"INCREMENTAL_DAILY_15:00:00-chg4By\"}} 1"
    )), "{m}");
    assert_eq!(
        value(&m, &up("scp", "scp", "backup", SEED_BACKUP)),
        Some(1.0)
    );
}

#[test]
fn a_wrong_scp_secret_is_an_auth_error_and_never_shown() {
    let sim = sim();
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(&sim, "", &format!("[{SEED_BACKUP}]"))
    );
    let (code, m, stderr) = once(&yaml, &[("SCP_SECRET_KEY", "not-the-secret-1")]);
    assert_eq!(code, Some(1));
    assert_eq!(
        value(&m, &outcome("scp", "scp", "auth_error")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, &up("scp", "scp", "backup", SEED_BACKUP)),
        Some(0.0)
    );
    for secret in ["not-the-secret-1", SCP_SECRET] {
        assert!(!stderr.contains(secret) && !m.contains(secret));
    }
}

fn scp_entry(n: u32, state: &str) -> serde_json::Value {
    // Entry n was created n minutes after 2025-03-01 00:00 UTC.
    let created = chrono::DateTime::from_timestamp(1740787200 + i64::from(n) * 60, 0).unwrap();
    let start = created.format("%Y-%m-%dT%H:%M:%S").to_string();
    let end = (created + chrono::Duration::seconds(30))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    json!({
        "backup_id": "b1",
        "backup_start_time": start,
        "created_at": created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "created_by": "u",
        "modified_at": created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "modified_by": "u",
        "restore_end_time": if state == "INPROGRESS" { serde_json::Value::Null } else { json!(end) },
        "restore_server_id": format!("srv-{n}"),
        "restore_server_name": "복구서버",
        "restore_start_time": start,
        "restore_state": state,
        "schedule_name": "DAILY"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_runs_are_counted_once_across_pages_and_a_restart_adds_nothing() {
    let sim = sim();
    let bid = "0123456789abcdef0123456789abcdef";
    // 45 finished entries and a running newest one: three pages of 20.
    let mut entries: Vec<serde_json::Value> = (1..=45)
        .map(|n| scp_entry(n, if n % 5 == 0 { "FAILED" } else { "COMPLETED" }))
        .collect();
    entries.push(scp_entry(46, "INPROGRESS"));
    sim.put_json(&format!("/_sim/scp/{bid}/entries"), &json!(entries))
        .await;
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(
            &sim,
            "    interval: 500ms\n",
            &format!("[{{ id: {bid}, name: erp-db }}]")
        )
    );
    let running = status("scp", "scp", "restore", "erp-db", "복구서버", "running");
    let completed = runs_of("scp", "scp", "restore", "erp-db", "복구서버", "completed");
    let failed = runs_of("scp", "scp", "restore", "erp-db", "복구서버", "failed");

    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let m = exp
        .wait_metrics("running restore", |m| value(m, &running) == Some(1.0))
        .await;
    assert_eq!(
        value(&m, &completed),
        Some(0.0),
        "history before the first poll is not counted"
    );
    assert!(value(
        &m,
        &series(
            "backup_job_elapsed_seconds",
            "scp",
            "scp",
            "restore",
            "erp-db",
            "복구서버"
        )
    )
    .is_some());
    let first_pages = sim.requests("backup", bid).await;

    // Between two polls: the running one completes and three more run, one failing,
    // 25 entries in all push the older ones onto later pages.
    entries[45] = scp_entry(46, "COMPLETED");
    for n in 47..=70 {
        entries.push(scp_entry(n, if n == 60 { "FAILED" } else { "COMPLETED" }));
    }
    sim.put_json(&format!("/_sim/scp/{bid}/entries"), &json!(entries))
        .await;
    let m = exp
        .wait_metrics("new runs counted", |m| value(m, &completed) == Some(24.0))
        .await;
    assert_eq!(value(&m, &failed), Some(1.0), "{m}");
    // Counted once: later polls add nothing and read one page each.
    let before = sim.requests("backup", bid).await;
    wait_for("two more polls", Duration::from_secs(10), || async {
        (sim.requests("backup", bid).await >= before + 2).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &completed), Some(24.0));
    assert_eq!(value(&m, &failed), Some(1.0));
    assert!(first_pages >= 1);
    assert!(
        value(
            &m,
            &series(
                "backup_job_progress_ratio",
                "scp",
                "scp",
                "restore",
                "erp-db",
                "복구서버"
            )
        ) == Some(1.0)
    );

    drop(exp);
    let exp = Exporter::start_with(&yaml, &[], &ENV);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("after restart", |m| value(m, &completed).is_some())
        .await;
    assert_eq!(value(&m, &completed), Some(0.0));
    assert_eq!(value(&m, &failed), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_faults_are_counted_and_secrets_stay_out_of_trace_logs() {
    let sim = sim();
    let live = "5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c";
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(
            &sim,
            "    interval: 300ms\n    timeout: 1s\n",
            &format!("[{SEED_BACKUP}, {{ id: {live}, name: erp-db }}]")
        )
    );
    let exp = Exporter::start_with(&yaml, &["--log.level", "trace"], &ENV);
    exp.wait_ready().await;
    let seed_up = up("scp", "scp", "backup", SEED_BACKUP);
    let seed_status = status(
        "scp",
        "scp",
        "restore",
        SEED_BACKUP,
        "restoretest1",
        "completed",
    );
    for (fault, result) in [
        ("error500", "http_5xx"),
        ("slow:3", "timeout"),
        ("truncated", "decode_error"),
        ("oversized", "too_large"),
        ("unauthorized", "auth_error"),
        ("rate_limited:1", "rate_limited"),
        ("not_found", "not_found"),
    ] {
        let before = value(&exp.metrics().await, &outcome("scp", "scp", result)).unwrap_or(0.0);
        sim.fault("backup", SEED_BACKUP, fault).await;
        let m = exp
            .wait_metrics(&format!("{fault} counted as {result}"), |m| {
                value(m, &outcome("scp", "scp", result)).unwrap_or(0.0) > before
                    && value(m, &seed_up) == Some(0.0)
            })
            .await;
        assert_eq!(
            value(&m, &up("scp", "scp", "backup", live)),
            Some(1.0),
            "{fault}: the other backup is unaffected"
        );
        if fault == "not_found" {
            assert_eq!(
                value(&m, &seed_status),
                None,
                "a 404 drops the series at once"
            );
        }
        sim.fault("backup", SEED_BACKUP, "none").await;
        exp.wait_metrics(&format!("recovery after {fault}"), |m| {
            value(m, &seed_status) == Some(1.0)
        })
        .await;
    }
    let logs = exp.proc.stderr_text();
    assert!(logs.contains("\"level\":\"trace\""), "trace logging is on");
    for secret in [SCP_SECRET, SCP_ACCESS] {
        assert!(!logs.contains(secret), "an SCP key reached the logs");
    }
    assert!(!logs.contains("Scp-Signature") && !logs.contains("scp-signature"));
}

/// Regression: the newest SCP entry was chosen by `created_at`; with two entries of equal
/// `created_at`, a FAILED restore of 2024-11-05 listed after a COMPLETED one of 2024-10-28
/// exported `status="completed"`. Ordered by `restore_start_time` now (interface 5.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_scp_entry_is_the_latest_restore_start_and_a_failure_has_a_reason_series() {
    let sim = sim();
    let bid = "feedfacefeedfacefeedfacefeedface";
    let entry = |start: &str, end: &str, state: &str, server: &str| {
        json!({
            "backup_id": bid,
            "created_at": "2024-06-01T00:00:00Z",
            "modified_at": "2024-06-01T00:00:00Z",
            "restore_start_time": start,
            "restore_end_time": end,
            "restore_server_name": server,
            "restore_state": state,
            "schedule_name": "DAILY"
        })
    };
    let entries = json!([
        entry(
            "2024-10-28T01:00:00",
            "2024-10-28T02:00:00",
            "COMPLETED",
            "old"
        ),
        entry(
            "2024-11-05T01:00:00",
            "2024-11-05T01:30:00",
            "FAILED",
            "new"
        ),
        entry(
            "2024-11-01T01:00:00",
            "2024-11-01T01:10:00",
            "EXPLODED",
            "mid"
        ),
    ]);
    sim.put_json(&format!("/_sim/scp/{bid}/entries"), &entries)
        .await;
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(&sim, "", &format!("[{{ id: {bid}, name: erp-db }}]"))
    );
    let (code, out, err) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{err}");
    let failed = status("scp", "scp", "restore", "erp-db", "new", "failed");
    assert_eq!(value(&out, &failed), Some(1.0), "{out}");
    assert!(
        out.contains("backup_job_failure_reason{system=\"scp\",upstream=\"scp\",operation=\"restore\",job_name=\"erp-db\",server=\"new\",volume=\"\",code=\"\",reason=\"\",title=\"\"} 1"),
        "{out}"
    );
    // One unknown state in one observation: one parse error.
    assert_eq!(
        value(
            &out,
            "backup_parse_errors_total{field=\"status\",system=\"scp\",upstream=\"scp\"}"
        ),
        Some(1.0),
        "{out}"
    );
}

/// The `BackupHistoryListResponse` example block of Samsung's SDK, verbatim in
/// `tests/data/vendor/scp/`, as JSON.
fn sdk_backup_history_example() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/scp/sdk-1.0-backup-history-list-example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_backup_history_example_gives_a_backup_series_beside_the_restores() {
    // The simulator serves the SDK's example for the seed backup, value for value.
    let open = Sim::start();
    let body: serde_json::Value = client()
        .get(format!(
            "{}/v1/backups/{SEED_BACKUP}/backup-histories",
            open.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, sdk_backup_history_example());
    drop(open);

    // One backup id listed under both kinds, signed requests to both paths.
    let sim = sim();
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(
            &sim,
            &format!("    backup_histories: [{{ id: {SEED_BACKUP}, name: seed }}]\n"),
            &format!("[{{ id: {SEED_BACKUP}, name: seed }}]")
        )
    );
    let (code, m, stderr) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{stderr}\n{m}");
    let b = |metric| series(metric, "scp", "scp", "backup", "seed", "");
    assert_eq!(
        value(&m, &status("scp", "scp", "backup", "seed", "", "completed")),
        Some(1.0),
        "{m}"
    );
    // 2000-01-23T04:56:07.000+00:00
    for metric in [
        "backup_job_start_time_seconds",
        "backup_job_end_time_seconds",
        "backup_job_last_success_time_seconds",
    ] {
        assert_eq!(value(&m, &b(metric)), Some(948603367.0), "{metric}");
    }
    assert_eq!(value(&m, &b("backup_job_progress_ratio")), Some(1.0));
    assert_eq!(value(&m, &b("backup_job_elapsed_seconds")), Some(0.0));
    assert!(m.contains("backup_job_info{system=\"scp\",upstream=\"scp\",operation=\"backup\",job_name=\"seed\",server=\"\",volume=\"\",backup_id=\"00cd2538fbf94d12b36aabbdd607e974\",schedule_name=\"INCREMENTAL_DAILY_15:00:00-chg4By\"} 1"), "{m}");
    assert_eq!(
        value(
            &m,
            &status("scp", "scp", "restore", "seed", "restoretest1", "completed")
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, &up("scp", "scp", "backup_histories", SEED_BACKUP)),
        Some(1.0)
    );
    assert_eq!(
        value(&m, &up("scp", "scp", "backup", SEED_BACKUP)),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "backup_parse_errors_total{field=\"start_time\",system=\"scp\",upstream=\"scp\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "{m}"
    );
}

/// A backup run as `BackupHistoryResponse`: run n started n minutes after
/// 2025-03-01 00:00 UTC and took 30 seconds.
fn backup_run(n: u32, state: &str) -> serde_json::Value {
    let start = chrono::DateTime::from_timestamp(1740787200 + i64::from(n) * 60, 0).unwrap();
    let end = start + chrono::Duration::seconds(30);
    json!({
        "backup_job_state": state,
        "backup_end_time": if state == "INPROGRESS" { serde_json::Value::Null } else { json!(end.to_rfc3339()) },
        "backup_start_time": start.to_rfc3339(),
        "schedule_id": "f5b8e22b-0d88-4698-9996-fb44217c8227",
        "schedule_name": "INCREMENTAL_DAILY_15:00:00-chg4By",
        "backup_job_guid": format!("guid-{n}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_backup_runs_are_counted_once_across_pages_apart_from_restores() {
    let sim = sim();
    let bid = "0123456789abcdef0123456789abcd01";
    // 25 finished runs and a running newest one (two pages of 20); one restore.
    let mut runs: Vec<serde_json::Value> = (1..=25)
        .map(|n| backup_run(n, if n % 5 == 0 { "FAILED" } else { "SUCCESS" }))
        .collect();
    runs.push(backup_run(26, "INPROGRESS"));
    let entries = |runs: &[serde_json::Value]| {
        let mut all = runs.to_vec();
        all.push(scp_entry(1, "COMPLETED"));
        json!(all)
    };
    sim.put_json(&format!("/_sim/scp/{bid}/entries"), &entries(&runs))
        .await;
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(
            &sim,
            &format!("    interval: 500ms\n    api_version: \"1.1\"\n    backup_histories: [{{ id: {bid}, name: erp-db }}]\n"),
            &format!("[{{ id: {bid}, name: erp-db }}]")
        )
    );
    let running = status("scp", "scp", "backup", "erp-db", "", "running");
    let completed = runs_of("scp", "scp", "backup", "erp-db", "", "completed");
    let warned = runs_of(
        "scp",
        "scp",
        "backup",
        "erp-db",
        "",
        "completed_with_warnings",
    );
    let failed = runs_of("scp", "scp", "backup", "erp-db", "", "failed");
    let restored = runs_of("scp", "scp", "restore", "erp-db", "복구서버", "completed");

    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let m = exp
        .wait_metrics("running backup", |m| value(m, &running) == Some(1.0))
        .await;
    assert_eq!(
        value(&m, &completed),
        Some(0.0),
        "history before the first poll"
    );
    assert_eq!(value(&m, &restored), Some(0.0));
    // Samsung guarantees 1.1 until 2026-05-31: the start-up log says it is past.
    assert!(exp
        .proc
        .stderr_text()
        .contains("api_version 1.1 is past the date Samsung guaranteed it until (2026-05-31)"));

    // Between two polls: the running one succeeds, 22 more run (one partly, one failing),
    // pushing the older ones to a later page.
    runs[25] = backup_run(26, "SUCCESS");
    for n in 27..=48 {
        let state = match n {
            30 => "PARTIAL_SUCCESS",
            40 => "FAILED",
            _ => "SUCCESS",
        };
        runs.push(backup_run(n, state));
    }
    sim.put_json(&format!("/_sim/scp/{bid}/entries"), &entries(&runs))
        .await;
    let m = exp
        .wait_metrics("new runs counted", |m| value(m, &completed) == Some(21.0))
        .await;
    assert_eq!(value(&m, &warned), Some(1.0), "{m}");
    assert_eq!(value(&m, &failed), Some(1.0), "{m}");
    let before = sim.requests("backup_histories", bid).await;
    wait_for("two more polls", Duration::from_secs(10), || async {
        (sim.requests("backup_histories", bid).await >= before + 2).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &completed), Some(21.0));
    assert_eq!(value(&m, &failed), Some(1.0));
    assert_eq!(value(&m, &restored), Some(0.0), "restores counted apart");
    assert_eq!(
        value(
            &m,
            &status("scp", "scp", "backup", "erp-db", "", "completed")
        ),
        Some(1.0)
    );
}

/// `--check-config` names the version and warns about 1.1, which Samsung guaranteed only
/// until 2026-05-31; the default (1.2, CURRENT) and offset-less times give no warning.
#[test]
fn check_config_warns_about_an_scp_api_version_past_its_date() {
    let check = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "upstreams:\n{}",
            scp_upstream_url(
                "https://backup.kr-west1.s.samsungsdscloud.com",
                extra,
                &format!("[{SEED_BACKUP}]")
            )
        );
        let config = write_config(dir.path(), &yaml);
        let out = std::process::Command::new(exporter_bin())
            .arg("--check-config")
            .arg("--config")
            .arg(&config)
            .envs(ENV)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check("");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("backup 1.2, 1 backup for restores, 0 backups for backup runs"),
        "{out}"
    );
    assert!(!out.contains("warning: "), "{out}");
    let (code, out) = check("    api_version: \"1.1\"\n");
    assert_eq!(code, Some(0), "{out}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0]
            .contains("api_version 1.1 is past the date Samsung guaranteed it until (2026-05-31)"),
        "{out}"
    );
}
