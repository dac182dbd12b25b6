//! SCP restore histories against the simulator: the seed sample, signatures, paging, run
//! counting, faults, the newest entry, secrets.

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
    format!(
        "  - name: scp\n    type: scp\n    url: {}\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n{extra}    backups: {backups}\n",
        sim.url()
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
