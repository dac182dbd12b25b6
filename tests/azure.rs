//! Azure Backup jobs against the simulator: the seed sample, tokens (client secret, managed
//! identity, workload identity), paging, progress, run counting, job details, secrets.

use std::time::Duration;

use serde_json::json;

use crate::common::series::*;
use crate::common::*;

const TENANT: &str = "tenant-1234";
const CLIENT_ID: &str = "client-5678";
const CLIENT_SECRET: &str = "azure-secret-0f3c2d";
const SEED_SUB: &str = "00000000-0000-0000-0000-000000000000";
const SEED_RG: &str = "Default-RecoveryServices-ResourceGroup-centralindia";
const LIVE_SUB: &str = "11111111-2222-3333-4444-555555555555";

/// The simulator with this Azure AD client, and `extra` arguments.
fn sim(extra: &[&str]) -> Sim {
    let azure = format!("{TENANT}:{CLIENT_ID}:{CLIENT_SECRET}");
    let mut args = vec!["--azure-client", &azure];
    args.extend_from_slice(extra);
    Sim::start_with(&args)
}

const ENV: [(&str, &str); 1] = [("AZURE_CLIENT_SECRET", CLIENT_SECRET)];

fn azure_upstream(sim: &Sim, extra: &str, sub: &str, vaults: &str) -> String {
    format!(
        "  - name: azure\n    type: azure\n    tenant_id: {TENANT}\n    client_id: {CLIENT_ID}\n    client_secret_env: AZURE_CLIENT_SECRET\n    subscription_id: {sub}\n    management_url: {url}\n    authority_url: {url}\n{extra}    vaults: {vaults}\n",
        url = sim.url()
    )
}

/// `--once` with the secret of [`ENV`], then `env` (which may override it).
fn once(yaml: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let all: Vec<(&str, &str)> = ENV.iter().chain(env).copied().collect();
    once_with(yaml, &all)
}

#[test]
fn seed_sample_of_azure_gives_the_exact_series() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "    lookback: 100000h\n",
            SEED_SUB,
            &format!("[{{ resource_group: {SEED_RG}, name: abdemovault }}]")
        )
    );
    let (code, m, stderr) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{stderr}\n{m}");

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
fn a_wrong_azure_secret_is_an_auth_error_and_never_shown() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "",
            LIVE_SUB,
            "[{ resource_group: rg-backup, name: vault-01 }]"
        )
    );
    let (code, m, stderr) = once(&yaml, &[("AZURE_CLIENT_SECRET", "not-the-secret-2")]);
    assert_eq!(code, Some(1));
    assert!(
        value(&m, &outcome("azure", "azure", "auth_error")).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    for secret in ["not-the-secret-2", CLIENT_SECRET] {
        assert!(!stderr.contains(secret) && !m.contains(secret));
    }
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
    sim.put_json("/_sim/azure/vault-t/jobs", &json!(jobs)).await;
    // A second upstream on the same schedule, never faulted: its polls count the time in
    // polls where the test must see that none were sent (Retry-After, below).
    let control = format!(
        "  - name: azure-control\n    type: azure\n    tenant_id: {TENANT}\n    client_id: {CLIENT_ID}\n    client_secret_env: AZURE_CLIENT_SECRET\n    subscription_id: {LIVE_SUB}\n    management_url: {url}\n    authority_url: {url}\n    interval: 500ms\n    vaults: [{{ resource_group: rg-backup, name: vault-01 }}]\n",
        url = sim.url()
    );
    let yaml = format!(
        "upstreams:\n{}{control}",
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
            .filter(|l| l.starts_with("backup_job_info{") && l.contains("upstream=\"azure\""))
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
    sim.put_json("/_sim/azure/vault-t/jobs", &json!(jobs)).await;
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
    // (Lists after the first read the last hour: three more jobs of the hour make it two
    // pages again.)
    for (i, minutes) in [3, 2, 1].into_iter().enumerate() {
        jobs.push(azure_job(
            &format!("j{}", 9 + i),
            "vm-e",
            "Backup",
            "Completed",
            minutes,
            None,
        ));
    }
    sim.put_json("/_sim/azure/vault-t/jobs", &json!(jobs)).await;
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

    // 429 with Retry-After: no request to the vault before it passes. Three more polls of
    // the control upstream take the schedule past vault-t's next slot (0.5 s after the 429)
    // and not past the 4 s.
    sim.fault("vault", "vault-t", "rate_limited:4").await;
    exp.wait_metrics("rate limited", |m| {
        value(m, &outcome("azure", "azure", "rate_limited")) == Some(1.0)
    })
    .await;
    let after = sim.requests("vault", "vault-t").await;
    let control = sim.requests("vault", "vault-01").await;
    wait_for(
        "three more polls of the control upstream",
        Duration::from_secs(10),
        || async { (sim.requests("vault", "vault-01").await >= control + 3).then_some(()) },
    )
    .await;
    assert_eq!(
        sim.requests("vault", "vault-t").await,
        after,
        "no request inside Retry-After"
    );
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
    // The first token serves the polls until it is renewed at half its life: while the
    // simulator has issued one token, it has served vault requests (both counts from one
    // stats answer, so they agree), and once it issues a second, polls go on.
    let token_key = format!("token/{TENANT}");
    let mut on_first_token = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let vault_polls = loop {
        let stats = sim.stats().await;
        let tokens = stats[&token_key].as_u64().unwrap_or(0);
        let polls = stats["vault/vault-01"].as_u64().unwrap_or(0);
        assert!(tokens >= 1, "the first polls fetched a token: {stats}");
        if tokens >= 2 {
            break polls;
        }
        on_first_token = polls;
        assert!(
            std::time::Instant::now() < deadline,
            "token not renewed: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(on_first_token >= 1, "one token for the first polls");
    wait_for(
        "polls going on with the renewed token",
        Duration::from_secs(10),
        || async { (sim.requests("vault", "vault-01").await > vault_polls + 2).then_some(()) },
    )
    .await;

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
    sim.put_json("/_sim/azure/vault-t/jobs", &json!([ok, bad, task]))
        .await;
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
    assert!(m.contains("backup_job_failure_reason{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"vm-bad\",server=\"vm-bad\",volume=\"\",code=\"UserErrorVmNotFound\",reason=\"The VM was not found.\",title=\"\"} 1"), "{m}");
    assert!(m.contains("backup_job_failure_reason{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"vm-task\",server=\"vm-task\",volume=\"\",code=\"\",reason=\"Transfer data to vault\",title=\"\"} 1"), "{m}");
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
    sim.put_json("/_sim/azure/vault-t/jobs", &json!([job]))
        .await;
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
    sim.put_json("/_sim/azure/vault-t/jobs", &json!([done, running]))
        .await;
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

/// A file of `tests/data/vendor/azure/`: the first JSON value (the articles' `.txt`
/// blocks end with text that is not JSON, as published).
fn vendor_answer(file: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/azure")
        .join(file);
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<serde_json::Value>()
        .next()
        .unwrap()
        .unwrap()
}

/// The job answers Azure published (REST specification example, REST articles), served
/// verbatim by the simulator as one vault's jobs and read by the real binary (`--once`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_answers_through_the_simulator_give_their_series() {
    let sim = sim(&[]);
    let jobs: Vec<serde_json::Value> = [
        "docs-managejobs-iaasvm-job-backup-completed.txt",
        "docs-manage-sql-vm-job-backup-full-failed.txt",
        "docs-restore-afs-job-restore-inprogress.json",
        "docs-restore-afs-job-restore-alr-inprogress.json",
    ]
    .into_iter()
    .map(vendor_answer)
    .chain(std::iter::once(
        vendor_answer("spec-2025-08-01-GetJobDetails.json")["responses"]["200"]["body"].clone(),
    ))
    .collect();
    sim.put_json("/_sim/azure/vendorvault/jobs", &json!(jobs))
        .await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "    lookback: 100000h\n",
            LIVE_SUB,
            "[{ resource_group: rg-vendor, name: vendorvault }]"
        )
    );
    let (code, m, stderr) = tokio::task::spawn_blocking(move || once(&yaml, &[]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}\n{m}");
    let s = |metric, operation, job: &str| series(metric, "azure", "azure", operation, job, job);
    assert_eq!(
        value(&m, &up("azure", "azure", "vault", "rg-vendor/vendorvault")),
        Some(1.0)
    );
    assert!(
        !m.lines()
            .any(|l| l.starts_with("backup_parse_errors_total{") && !l.ends_with(" 0")),
        "no parse error:\n{m}"
    );
    // IaaS VM backup completed, with its size.
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
    assert_eq!(
        value(&m, &s("backup_job_size_bytes", "backup", "uttestvmub1")),
        Some(2332.0 * 1024.0 * 1024.0)
    );
    // The specification's running VM backup.
    assert_eq!(
        value(
            &m,
            &status("azure", "azure", "backup", "testvm", "testvm", "running")
        ),
        Some(1.0)
    );
    // Azure Files restores: one series, the newest (alternate location) one, running.
    assert_eq!(
        value(
            &m,
            &status(
                "azure",
                "azure",
                "restore",
                "azurefiles",
                "azurefiles",
                "running"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            &s("backup_job_start_time_seconds", "restore", "azurefiles")
        ),
        Some(1_580_922_618.106_532)
    );
    // The SQL database's failed full backup is there, failed, as `backup_full`.
    assert!(
        m.lines().any(|l| l.starts_with("backup_job_status{")
            && l.contains("operation=\"backup_full\"")
            && l.contains("job_name=\"MSSQLSERVER/msDB [sqlserver-0.contoso.com]\"")
            && l.contains("status=\"failed\"")
            && l.ends_with(" 1")),
        "{m}"
    );
    // Why: Azure's numeric errorCode as decimal text, its errorTitle as the title.
    assert!(
        m.contains("backup_job_failure_reason{system=\"azure\",upstream=\"azure\",operation=\"backup_full\",job_name=\"MSSQLSERVER/msDB [sqlserver-0.contoso.com]\",server=\"MSSQLSERVER/msDB [sqlserver-0.contoso.com]\",volume=\"\",code=\"510008\",reason=\"Operation cancelled as a conflicting operation was already running on the same database.\",title=\"OperationCancelledBecauseConflictingOperationRunningUserError\"} 1"),
        "{m}"
    );
    // Its size from "Data Transferred (in MB)".
    assert_eq!(
        value(
            &m,
            &s(
                "backup_job_size_bytes",
                "backup_full",
                "MSSQLSERVER/msDB [sqlserver-0.contoso.com]"
            )
        ),
        Some(0.0)
    );
    // Its info says what it backs up.
    assert!(
        m.contains("backup_job_info{system=\"azure\",upstream=\"azure\",operation=\"backup_full\",job_name=\"MSSQLSERVER/msDB [sqlserver-0.contoso.com]\",server=\"MSSQLSERVER/msDB [sqlserver-0.contoso.com]\",volume=\"\",vault=\"vendorvault\",job_type=\"AzureWorkloadJob\",workload_type=\"SQLDataBase\"} 1"),
        "{m}"
    );
}

/// The simulator's live workload vault, read by the real binary: a SQL Server database's
/// full and log backups as their own series (with `workload_type` and the size each
/// transferred) and an Azure Files share's backups.
#[test]
fn live_sql_and_azure_files_jobs_give_their_series() {
    let sim = sim(&[]);
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "",
            LIVE_SUB,
            "[{ resource_group: rg-backup, name: vault-workloads }]"
        )
    );
    let (code, m, stderr) = once(&yaml, &[]);
    assert_eq!(code, Some(0), "{stderr}\n{m}");
    let db = "MSSQLSERVER/salesdb [sql-01.contoso.com]";
    for operation in ["backup_full", "backup_log"] {
        let info = format!(
            "backup_job_info{{system=\"azure\",upstream=\"azure\",operation=\"{operation}\",job_name=\"{db}\",server=\"{db}\",volume=\"\",vault=\"vault-workloads\",job_type=\"AzureWorkloadJob\",workload_type=\"SQLDataBase\"}} 1"
        );
        assert!(m.contains(&info), "{info}\n{m}");
    }
    assert!(
        m.contains("backup_job_info{system=\"azure\",upstream=\"azure\",operation=\"backup\",job_name=\"finance-share\",server=\"finance-share\",volume=\"\",vault=\"vault-workloads\",job_type=\"AzureStorageJob\"} 1"),
        "{m}"
    );
    // Sizes from "Data Transferred (in MB)" (the newest finished run's).
    assert!(
        m.lines().any(|l| l.starts_with(
            "backup_job_size_bytes{system=\"azure\",upstream=\"azure\",operation=\"backup_log\""
        )),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("backup_parse_errors_total{") && l.ends_with(" 0"))
            && !m
                .lines()
                .any(|l| l.starts_with("backup_parse_errors_total{") && !l.ends_with(" 0")),
        "no parse error:\n{m}"
    );
}

/// `--demo` shows the SQL Server and Azure Files jobs of the bundled simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_sql_and_azure_files_jobs_and_scp_backup_runs() {
    let mut cmd = std::process::Command::new(exporter_bin());
    cmd.args([
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]);
    let exp = Exporter::launch(cmd, tempfile::tempdir().unwrap());
    exp.wait_ready().await;
    exp.wait_metrics("SQL and Azure Files jobs", |m| {
        m.contains("operation=\"backup_full\"")
            && m.contains("operation=\"backup_log\"")
            && m.contains("workload_type=\"SQLDataBase\"")
            && m.contains("job_type=\"AzureStorageJob\"")
    })
    .await;
    // One demo for both (a demo costs seconds): SCP's backup runs beside its restores,
    // for the same live backup.
    let m = exp.metrics().await;
    assert!(
        m.contains("backup_target_up{system=\"scp\",upstream=\"demo-scp\",kind=\"backup_histories\",target=\"5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("backup_job_info{system=\"scp\",upstream=\"demo-scp\",operation=\"backup\",job_name=\"erp-db\",server=\"\",volume=\"\",backup_id=\"5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c\",schedule_name=\"FULL_DAILY_02:00:00-erp7Qz\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("backup_job_info{system=\"scp\",upstream=\"demo-scp\",operation=\"restore\",job_name=\"erp-db\""),
        "{m}"
    );
}

/// A backup whose newest job leaves the job list (older than `lookback`) keeps its last
/// series, last success included, so `BackupJobNoRecentSuccess` still fires for it; a
/// restore leaves with its window; lists after the first read the last hour only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_left_the_job_list_stays_covered() {
    let sim = sim(&[]);
    let old = azure_job("old-1", "vm-old", "Backup", "Completed", 100, None);
    let restore = azure_job("rst-1", "vm-old", "Restore", "Failed", 95, None);
    let new = azure_job("new-1", "vm-new", "Backup", "Completed", 5, None);
    sim.put_json(
        "/_sim/azure/vault-t/jobs",
        &json!([old.clone(), restore.clone(), new.clone()]),
    )
    .await;
    let yaml = format!(
        "upstreams:\n{}",
        azure_upstream(
            &sim,
            "    interval: 500ms\n    lookback: 90m\n",
            LIVE_SUB,
            "[{ resource_group: rg-test, name: vault-t }]"
        )
    );
    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let old_done = status("azure", "azure", "backup", "vm-old", "vm-old", "completed");
    let restore_failed = status("azure", "azure", "restore", "vm-old", "vm-old", "failed");
    let last_success = series(
        "backup_job_last_success_time_seconds",
        "azure",
        "azure",
        "backup",
        "vm-old",
        "vm-old",
    );
    // The first list reads the whole 90 minutes: the 100-minute-old backup is not in it,
    // the restore (95 minutes) is not either; the backup of 5 minutes ago is.
    let m = exp
        .wait_metrics("first list", |m| {
            value(
                m,
                &status("azure", "azure", "backup", "vm-new", "vm-new", "completed"),
            ) == Some(1.0)
        })
        .await;
    assert_eq!(value(&m, &old_done), None, "{m}");
    drop(exp);

    // With a window that holds them, then a list without them (they left Azure's window).
    let yaml = yaml.replace("lookback: 90m", "lookback: 3h");
    let exp = Exporter::start_with(&yaml, &[], &ENV);
    let m = exp
        .wait_metrics("both listed", |m| {
            value(m, &old_done) == Some(1.0) && value(m, &restore_failed) == Some(1.0)
        })
        .await;
    let success = value(&m, &last_success);
    assert!(success.is_some(), "{m}");
    sim.put_json("/_sim/azure/vault-t/jobs", &json!([new]))
        .await;
    let polls = sim.requests("vault", "vault-t").await;
    wait_for("two more polls", Duration::from_secs(10), || async {
        (sim.requests("vault", "vault-t").await >= polls + 2).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert_eq!(value(&m, &old_done), Some(1.0), "the backup stays: {m}");
    assert_eq!(value(&m, &last_success), success);
    assert_eq!(
        value(&m, &restore_failed),
        Some(1.0),
        "a restore stays until its start leaves lookback (3h)"
    );
    assert_eq!(
        value(&m, &up("azure", "azure", "vault", "rg-test/vault-t")),
        Some(1.0)
    );
}
