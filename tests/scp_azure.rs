//! SCP restore histories and Azure Backup jobs against the simulator: seed samples,
//! signatures, tokens, paging, faults, run counting, secrets.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

const SCP_ACCESS: &str = "scp-access-7c1d";
const SCP_SECRET: &str = "scp-secret-e5a90b";
const TENANT: &str = "tenant-1234";
const CLIENT_ID: &str = "client-5678";
const CLIENT_SECRET: &str = "azure-secret-0f3c2d";
const SEED_BACKUP: &str = "00cd2538fbf94d12b36aabbdd607e974";
const SEED_SUB: &str = "00000000-0000-0000-0000-000000000000";
const SEED_RG: &str = "Default-RecoveryServices-ResourceGroup-centralindia";
const LIVE_SUB: &str = "11111111-2222-3333-4444-555555555555";

fn sim(extra: &[&str]) -> Sim {
    let scp = format!("{SCP_ACCESS}:{SCP_SECRET}");
    let azure = format!("{TENANT}:{CLIENT_ID}:{CLIENT_SECRET}");
    let mut args = vec![
        "--token",
        TOKEN,
        "--scp-keys",
        &scp,
        "--azure-client",
        &azure,
    ];
    args.extend_from_slice(extra);
    Sim::start_with(&args)
}

const ENV: [(&str, &str); 3] = [
    ("SCP_ACCESS_KEY", SCP_ACCESS),
    ("SCP_SECRET_KEY", SCP_SECRET),
    ("AZURE_CLIENT_SECRET", CLIENT_SECRET),
];

fn scp_upstream(sim: &Sim, extra: &str, backups: &str) -> String {
    format!(
        "  - name: scp\n    type: scp\n    url: {}\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n{extra}    backups: {backups}\n",
        sim.url()
    )
}

fn azure_upstream(sim: &Sim, extra: &str, sub: &str, vaults: &str) -> String {
    format!(
        "  - name: azure\n    type: azure\n    tenant_id: {TENANT}\n    client_id: {CLIENT_ID}\n    client_secret_env: AZURE_CLIENT_SECRET\n    subscription_id: {sub}\n    management_url: {url}\n    authority_url: {url}\n{extra}    vaults: {vaults}\n",
        url = sim.url()
    )
}

fn once(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--once").arg("--config").arg(&config);
    for (k, v) in ENV.iter().chain(env) {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn series(
    metric: &str,
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
) -> String {
    format!(
        "{metric}{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\"}}"
    )
}

fn status(
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
    status: &str,
) -> String {
    format!(
        "backup_job_status{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\",status=\"{status}\"}}"
    )
}

fn runs_of(
    system: &str,
    upstream: &str,
    operation: &str,
    job: &str,
    server: &str,
    result: &str,
) -> String {
    format!(
        "backup_job_runs_total{{system=\"{system}\",upstream=\"{upstream}\",operation=\"{operation}\",job_name=\"{job}\",server=\"{server}\",volume=\"\",result=\"{result}\"}}"
    )
}

fn up(system: &str, upstream: &str, kind: &str, target: &str) -> String {
    format!("backup_target_up{{system=\"{system}\",upstream=\"{upstream}\",kind=\"{kind}\",target=\"{target}\"}}")
}

fn outcome(system: &str, upstream: &str, outcome: &str) -> String {
    format!("backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"{system}\",upstream=\"{upstream}\"}}")
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-3)
}

#[test]
fn seed_samples_of_scp_and_azure_give_the_exact_series() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        scp_upstream(&sim, "", &format!("[{SEED_BACKUP}]")),
        azure_upstream(
            &sim,
            "    lookback: 100000h\n",
            SEED_SUB,
            &format!("[{{ resource_group: {SEED_RG}, name: abdemovault }}]")
        )
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

    // Seed 004: the completed backup of uttestvmub1.
    let a = |metric| {
        series(
            metric,
            "azure",
            "azure",
            "backup",
            "uttestvmub1",
            "uttestvmub1",
        )
    };
    assert_eq!(
        value(
            &m,
            &status(
                "azure",
                "azure",
                "backup",
                "uttestvmub1",
                "uttestvmub1",
                "completed"
            )
        ),
        Some(1.0)
    );
    assert!(
        close(value(&m, &a("backup_job_elapsed_seconds")), 1223.0896697),
        "{m}"
    );
    assert!(close(
        value(&m, &a("backup_job_start_time_seconds")),
        1526891740.9488967
    ));
    assert!(close(
        value(&m, &a("backup_job_end_time_seconds")),
        1526892964.0385664
    ));
    assert!(close(
        value(&m, &a("backup_job_last_success_time_seconds")),
        1526892964.0385664
    ));
    assert_eq!(
        value(&m, &a("backup_job_progress_ratio")),
        None,
        "a finished job's list entry has no progress"
    );
    // 0.2: no `job_id` (it changes every run, interface 5.1).
    assert!(m.contains(
        "backup_job_info{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"uttestvmub1\",server=\"uttestvmub1\",volume=\"\",vault=\"abdemovault\",job_type=\"AzureIaaSVMJob\"} 1"
    ), "{m}");
    // The size is in the finished job's details, read once: "2332 MB" = 2332 x 1024^2.
    assert_eq!(
        value(&m, &a("backup_job_size_bytes")),
        Some(2332.0 * 1024.0 * 1024.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &up("azure", "azure", "vault", &format!("{SEED_RG}/abdemovault"))
        ),
        Some(1.0)
    );
}

#[test]
fn a_wrong_scp_secret_or_azure_secret_is_an_auth_error_and_never_shown() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n{}{}",
        scp_upstream(&sim, "", &format!("[{SEED_BACKUP}]")),
        azure_upstream(
            &sim,
            "",
            LIVE_SUB,
            "[{ resource_group: rg-backup, name: vault-01 }]"
        )
    );
    let wrong = [
        ("SCP_SECRET_KEY", "not-the-secret-1"),
        ("AZURE_CLIENT_SECRET", "not-the-secret-2"),
    ];
    let (code, m, stderr) = once(&yaml, &wrong);
    assert_eq!(code, Some(1));
    assert_eq!(
        value(&m, &outcome("scp", "scp", "auth_error")),
        Some(1.0),
        "{m}"
    );
    assert!(
        value(&m, &outcome("azure", "azure", "auth_error")).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert_eq!(
        value(&m, &up("scp", "scp", "backup", SEED_BACKUP)),
        Some(0.0)
    );
    for secret in [
        "not-the-secret-1",
        "not-the-secret-2",
        SCP_SECRET,
        CLIENT_SECRET,
    ] {
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

async fn put_json(sim: &Sim, path: &str, body: &serde_json::Value) {
    let resp = client()
        .put(format!("{}{path}", sim.url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_runs_are_counted_once_across_pages_and_a_restart_adds_nothing() {
    let sim = sim(&[]);
    let bid = "0123456789abcdef0123456789abcdef";
    // 45 finished entries and a running newest one: three pages of 20.
    let mut entries: Vec<serde_json::Value> = (1..=45)
        .map(|n| scp_entry(n, if n % 5 == 0 { "FAILED" } else { "COMPLETED" }))
        .collect();
    entries.push(scp_entry(46, "INPROGRESS"));
    put_json(&sim, &format!("/_sim/scp/{bid}/entries"), &json!(entries)).await;
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
    put_json(&sim, &format!("/_sim/scp/{bid}/entries"), &json!(entries)).await;
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

fn azure_job(
    name: &str,
    entity: &str,
    operation: &str,
    status: &str,
    start_min: i64,
    progress: Option<u32>,
) -> serde_json::Value {
    let start = chrono::Utc::now() - chrono::Duration::minutes(start_min);
    let mut props = json!({
        "jobType": "AzureIaaSVMJob",
        "duration": "PT12.4272909S",
        "virtualMachineVersion": "Compute",
        "entityFriendlyName": entity,
        "backupManagementType": "AzureIaasVM",
        "operation": operation,
        "status": status,
        "startTime": start.to_rfc3339(),
        "activityId": "00000000-0000-0000-0000-000000000000"
    });
    if status != "InProgress" {
        props["endTime"] = json!((start + chrono::Duration::seconds(12)).to_rfc3339());
    }
    if let Some(p) = progress {
        props["extendedInfo"] =
            json!({ "tasksList": [], "propertyBag": {}, "progressPercentage": p });
    }
    json!({
        "id": format!("/subscriptions/{LIVE_SUB}/resourceGroups/rg-test/providers/Microsoft.RecoveryServices/vaults/vault-t/backupJobs/{name}"),
        "name": name,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_pages_progress_and_runs_counted_once() {
    let sim = sim(&[]);
    // Seven jobs: three pages of three. vm-a's newest backup is running.
    let mut jobs = vec![
        azure_job("j1", "vm-a", "Backup", "Completed", 300, None),
        azure_job("j2", "vm-a", "Backup", "InProgress", 10, Some(40)),
        azure_job("j3", "vm-b", "Backup", "Completed", 200, None),
        azure_job("j4", "vm-b", "ConfigureBackup", "Completed", 250, None),
        azure_job("j5", "가상머신-c", "Backup", "Failed", 100, None),
        azure_job("j6", "vm-d", "Restore", "CompletedWithWarnings", 90, None),
        azure_job("j7", "vm-d", "Backup", "Cancelled", 80, None),
    ];
    put_json(&sim, "/_sim/azure/vault-t/jobs", &json!(jobs)).await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            // Retry-After is clamped to the stale window (interface 5.4): a window longer
            // than the test's 4 s Retry-After lets it be honoured in full.
            "    interval: 500ms\n    stale_after: 10s\n",
            LIVE_SUB,
            "[{ resource_group: rg-test, name: vault-t }]"
        )
    );
    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let a_running = status("azure", "azure", "backup", "vm-a", "vm-a", "running");
    let m = exp
        .wait_metrics("vm-a running", |m| value(m, &a_running) == Some(1.0))
        .await;
    assert_eq!(
        value(
            &m,
            &series(
                "backup_job_progress_ratio",
                "azure",
                "azure",
                "backup",
                "vm-a",
                "vm-a"
            )
        ),
        Some(0.4),
        "progress from the job details"
    );
    assert_eq!(
        value(
            &m,
            &status(
                "azure",
                "azure",
                "configure_backup",
                "vm-b",
                "vm-b",
                "completed"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &status(
                "azure",
                "azure",
                "backup",
                "가상머신-c",
                "가상머신-c",
                "failed"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &status(
                "azure",
                "azure",
                "restore",
                "vm-d",
                "vm-d",
                "completed_with_warnings"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &status("azure", "azure", "backup", "vm-d", "vm-d", "cancelled")
        ),
        Some(1.0)
    );
    assert!(close(
        value(
            &m,
            &series(
                "backup_job_elapsed_seconds",
                "azure",
                "azure",
                "backup",
                "vm-b",
                "vm-b"
            )
        ),
        12.4272909
    ));
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("backup_job_info{") && l.contains("system=\"azure\""))
            .count(),
        6,
        "one series per (entity, operation)"
    );
    assert!(
        sim.requests("vault_next", "vault-t").await >= 2,
        "followed nextLink"
    );
    for result in ["completed", "failed", "cancelled"] {
        assert_eq!(
            value(
                &m,
                &runs_of("azure", "azure", "backup", "vm-a", "vm-a", result)
            ),
            Some(0.0)
        );
    }

    // vm-a's job completes and a new vm-c backup fails: each counted once.
    jobs[1] = azure_job("j2", "vm-a", "Backup", "Completed", 10, None);
    jobs.push(azure_job("j8", "가상머신-c", "Backup", "Failed", 5, None));
    put_json(&sim, "/_sim/azure/vault-t/jobs", &json!(jobs)).await;
    let done = runs_of("azure", "azure", "backup", "vm-a", "vm-a", "completed");
    let c_failed = runs_of(
        "azure",
        "azure",
        "backup",
        "가상머신-c",
        "가상머신-c",
        "failed",
    );
    exp.wait_metrics("runs counted", |m| {
        value(m, &done) == Some(1.0) && value(m, &c_failed) == Some(1.0)
    })
    .await;
    let polls = sim.requests("vault", "vault-t").await;
    wait_for("two more polls", Duration::from_secs(10), || async {
        (sim.requests("vault", "vault-t").await >= polls + 2).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &done), Some(1.0));
    assert_eq!(value(&m, &c_failed), Some(1.0));

    // A failing later page fails the whole poll: nothing vanishes, the target is down.
    sim.fault("vault_next", "vault-t", "error500").await;
    let m = exp
        .wait_metrics("page failure", |m| {
            value(m, &up("azure", "azure", "vault", "rg-test/vault-t")) == Some(0.0)
        })
        .await;
    assert_eq!(
        value(
            &m,
            &status("azure", "azure", "backup", "vm-a", "vm-a", "completed")
        ),
        Some(1.0),
        "no half list"
    );
    assert!(value(&m, &outcome("azure", "azure", "http_5xx")).unwrap_or(0.0) >= 1.0);
    sim.fault("vault_next", "vault-t", "none").await;

    // 429 with Retry-After: no request to the vault before it passes.
    sim.fault("vault", "vault-t", "rate_limited:4").await;
    exp.wait_metrics("rate limited", |m| {
        value(m, &outcome("azure", "azure", "rate_limited")) == Some(1.0)
    })
    .await;
    let after = sim.requests("vault", "vault-t").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.requests("vault", "vault-t").await, after);
    sim.fault("vault", "vault-t", "none").await;
    exp.wait_metrics("recovered", |m| {
        value(m, &up("azure", "azure", "vault", "rg-test/vault-t")) == Some(1.0)
    })
    .await;
    let logs = exp.proc.stderr_text();
    assert!(!logs.contains(CLIENT_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_tokens_are_cached_refreshed_and_a_401_refreshes_once() {
    // Four-second tokens: renewed at half their life.
    let sim = sim(&["--token-lifetime", "4s"]);
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "    interval: 500ms\n",
            LIVE_SUB,
            "[{ resource_group: rg-backup, name: vault-01 }]"
        )
    );
    let exp = Exporter::start_with(&yaml, &["--log.level", "trace"], &ENV);
    exp.wait_ready().await;
    let token_requests = || async {
        sim.stats().await[format!("token/{TENANT}")]
            .as_u64()
            .unwrap_or(0)
    };
    let first = token_requests().await;
    let vault_polls = sim.requests("vault", "vault-01").await;
    assert!(
        vault_polls >= 1 && first == 1,
        "one token for the first polls (token {first}, polls {vault_polls})"
    );
    wait_for("token renewed", Duration::from_secs(10), || async {
        (token_requests().await >= 2).then_some(())
    })
    .await;
    assert!(
        sim.requests("vault", "vault-01").await > vault_polls + 2,
        "polls kept going"
    );

    // The management API answers 401: refresh once, then it is an auth error.
    let before = token_requests().await;
    sim.fault("vault", "vault-01", "unauthorized").await;
    exp.wait_metrics("auth error", |m| {
        value(m, &outcome("azure", "azure", "auth_error")).unwrap_or(0.0) >= 2.0
    })
    .await;
    assert!(token_requests().await > before, "a 401 fetched a new token");
    sim.fault("vault", "vault-01", "none").await;
    exp.wait_metrics("recovered", |m| {
        value(m, &up("azure", "azure", "vault", "rg-backup/vault-01")) == Some(1.0)
    })
    .await;
    let m = exp.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("backup_job_status{system=\"azure\"")),
        "the live vault has jobs"
    );
    let logs = exp.proc.stderr_text();
    assert!(!logs.contains(CLIENT_SECRET), "client secret logged");
    assert!(!logs.contains("Bearer "), "a bearer token logged");
}

#[test]
fn managed_identity_reads_imds_with_the_metadata_header() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n  - name: azure-mi\n    type: azure\n    managed_identity: true\n    subscription_id: {LIVE_SUB}\n    management_url: {url}\n    authority_url: {url}\n    vaults: [{{ resource_group: rg-backup, name: vault-01 }}]\n",
        url = sim.url()
    );
    let (code, m, stderr) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        value(&m, &up("azure", "azure-mi", "vault", "rg-backup/vault-01")),
        Some(1.0)
    );
    assert!(m
        .lines()
        .any(|l| l.starts_with("backup_job_status{system=\"azure\",upstream=\"azure-mi\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_faults_are_counted_and_secrets_stay_out_of_trace_logs() {
    let sim = sim(&[]);
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
    let sim = sim(&[]);
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
    put_json(&sim, &format!("/_sim/scp/{bid}/entries"), &entries).await;
    let yaml = format!(
        "upstreams:\n{}",
        scp_upstream(&sim, "", &format!("[{{ id: {bid}, name: erp-db }}]"))
    );
    let (code, out, err) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{err}");
    let failed = status("scp", "scp", "restore", "erp-db", "new", "failed");
    assert_eq!(value(&out, &failed), Some(1.0), "{out}");
    assert!(
        out.contains("backup_job_failure_reason{system=\"scp\",upstream=\"scp\",operation=\"restore\",job_name=\"erp-db\",server=\"new\",volume=\"\",code=\"\",reason=\"\"} 1"),
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

/// Regression: details were read only while a job ran, so a finished job's size and its
/// failure details never reached Prometheus. Now: once per finished job id, never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_finished_jobs_details_are_read_once_for_size_and_failure_reason() {
    let sim = sim(&[]);
    let mut ok = azure_job("ok-1", "vm-ok", "Backup", "Completed", 30, None);
    ok["properties"]["extendedInfo"] = json!({
        "tasksList": [{ "taskId": "Take Snapshot", "status": "Completed" }],
        "propertyBag": { "Backup Size": "2332 MB" }
    });
    let mut bad = azure_job("bad-1", "vm-bad", "Backup", "Failed", 20, None);
    bad["properties"]["errorDetails"] = json!([{
        "errorCode": "UserErrorVmNotFound",
        "errorString": "The VM\n  was not found.",
        "recommendations": ["Check the VM"]
    }]);
    let mut task = azure_job("task-1", "vm-task", "Backup", "Failed", 10, None);
    task["properties"]["extendedInfo"] = json!({
        "tasksList": [
            { "taskId": "Take Snapshot", "status": "Completed" },
            { "taskId": "Transfer data to vault", "status": "Failed" }
        ],
        "propertyBag": {}
    });
    put_json(&sim, "/_sim/azure/vault-t/jobs", &json!([ok, bad, task])).await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "    interval: 300ms\n",
            LIVE_SUB,
            "[{ resource_group: rg-test, name: vault-t }]"
        )
    );
    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let size = series(
        "backup_job_size_bytes",
        "azure",
        "azure",
        "backup",
        "vm-ok",
        "vm-ok",
    );
    let m = exp
        .wait_metrics("the size", |m| value(m, &size).is_some())
        .await;
    assert_eq!(value(&m, &size), Some(2332.0 * 1024.0 * 1024.0));
    assert!(m.contains("backup_job_failure_reason{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"vm-bad\",server=\"vm-bad\",volume=\"\",code=\"UserErrorVmNotFound\",reason=\"The VM was not found.\"} 1"), "{m}");
    assert!(m.contains("backup_job_failure_reason{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"vm-task\",server=\"vm-task\",volume=\"\",code=\"\",reason=\"Transfer data to vault\"} 1"), "{m}");
    assert!(
        !m.contains("job_name=\"vm-ok\",server=\"vm-ok\",volume=\"\",code="),
        "no reason series for a success"
    );
    // More polls: no more detail requests for the three finished ids.
    let details = sim.requests("job", "ok-1").await
        + sim.requests("job", "bad-1").await
        + sim.requests("job", "task-1").await;
    assert_eq!(details, 3, "one detail request per finished job id");
    let polls = sim.requests("vault", "vault-t").await;
    wait_for("three more polls", Duration::from_secs(10), || async {
        (sim.requests("vault", "vault-t").await >= polls + 3).then_some(())
    })
    .await;
    let again = sim.requests("job", "ok-1").await
        + sim.requests("job", "bad-1").await
        + sim.requests("job", "task-1").await;
    assert_eq!(again, 3, "never again for the same finished id");
    assert_eq!(
        value(&exp.metrics().await, &size),
        Some(2332.0 * 1024.0 * 1024.0)
    );
}

/// Regression: one Azure `Invalid` status counted 3 parse errors per poll (list, grouping and
/// details). Now one per observation, and a status nobody recognized fetches no details.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_azure_status_counts_one_parse_error_per_poll() {
    let sim = sim(&[]);
    let job = azure_job("odd-1", "vm-odd", "Backup", "Invalid", 5, None);
    put_json(&sim, "/_sim/azure/vault-t/jobs", &json!([job])).await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "",
            LIVE_SUB,
            "[{ resource_group: rg-test, name: vault-t }]"
        )
    );
    let (code, out, err) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        value(
            &out,
            "backup_parse_errors_total{field=\"status\",system=\"azure\",upstream=\"azure\"}"
        ),
        Some(1.0),
        "{out}"
    );
    assert_eq!(
        sim.requests("job", "odd-1").await,
        0,
        "no details for an unknown status"
    );
}

/// The size is that of the newest finished run: it stays while a new run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_size_stays_while_a_new_run_goes_on() {
    let sim = sim(&[]);
    let mut done = azure_job("done-1", "vm-s", "Backup", "Completed", 90, None);
    done["properties"]["extendedInfo"] =
        json!({ "tasksList": [], "propertyBag": { "Backup Size": "10 GB" } });
    let running = azure_job("run-2", "vm-s", "Backup", "InProgress", 5, Some(40));
    put_json(&sim, "/_sim/azure/vault-t/jobs", &json!([done, running])).await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "",
            LIVE_SUB,
            "[{ resource_group: rg-test, name: vault-t }]"
        )
    );
    let (code, out, err) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{err}");
    let a = |metric| series(metric, "azure", "azure", "backup", "vm-s", "vm-s");
    assert_eq!(
        value(
            &out,
            &status("azure", "azure", "backup", "vm-s", "vm-s", "running")
        ),
        Some(1.0)
    );
    assert_eq!(value(&out, &a("backup_job_progress_ratio")), Some(0.4));
    assert_eq!(
        value(&out, &a("backup_job_size_bytes")),
        Some(10.0 * 1024.0 * 1024.0 * 1024.0),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_rereads_the_federated_token_on_every_renewal() {
    // Two-second tokens: renewed after one second, each time from the file as it is then.
    let sim = sim(&["--token-lifetime", "2s"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-assertion-A\n").unwrap();
    let yaml = format!(
        "upstreams:\n  - name: azure\n    type: azure\n    workload_identity: true\n    subscription_id: {LIVE_SUB}\n    management_url: {url}\n    authority_url: {url}\n    interval: 300ms\n    vaults: [{{ resource_group: rg-backup, name: vault-01 }}]\n",
        url = sim.url()
    );
    let file = token_file.display().to_string();
    let exp = Exporter::start_in(
        dir,
        &yaml,
        &[],
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_TENANT_ID", TENANT),
        ],
    );
    exp.wait_metrics("a poll with the federated token", |m| {
        value(m, &up("azure", "azure", "vault", "rg-backup/vault-01")) == Some(1.0)
    })
    .await;
    let assertions = || async { sim.stats().await["azure_assertions"].clone() };
    assert_eq!(assertions().await, json!(["federated-assertion-A"]));

    // The kubelet rotates the file: the next renewal sends the new content.
    std::fs::write(&token_file, "federated-assertion-B\n").unwrap();
    wait_for(
        "the rotated token exchanged",
        Duration::from_secs(10),
        || async {
            (assertions().await == json!(["federated-assertion-A", "federated-assertion-B"]))
                .then_some(())
        },
    )
    .await;
    let m = exp
        .wait_metrics("polls go on with the new token", |m| {
            value(m, &up("azure", "azure", "vault", "rg-backup/vault-01")) == Some(1.0)
        })
        .await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("backup_job_status{system=\"azure\"")),
        "no Azure jobs"
    );
    let logs = exp.proc.stderr_text();
    assert!(
        !logs.contains("federated-assertion"),
        "assertion leaked:\n{logs}"
    );
}
