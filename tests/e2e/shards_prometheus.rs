//! The shipped operations kit gives the same answers with 1 or N shards, and with
//! `job_status: stateset` or `active`: every alert and recording rule expression of
//! deploy/prometheus/rules/ and every query of every bundled Grafana dashboard (panels,
//! annotations, variables) is evaluated over
//!
//! - one unsharded exporter and two exporters with `--total-shards 2 --shard 0|1`, and
//! - that unsharded exporter (`job_status: stateset`) and one with `job_status: active`,
//!
//! all with the same configuration against one simulator whose answers are pinned (so every
//! exporter sees the same upstream state whenever it polls), and the answers are compared.
//!
//! Each deployment gets its own Prometheus (Debian's `prometheus`) with the shipped scrape job
//! and rule files. That makes the comparison exact where a shared Prometheus with a
//! `deployment` label could not: every expression runs verbatim (no selector rewriting, which
//! would miss selectors without braces such as `backup_job_status)` in the rules), the rules'
//! `by (job, instance)` joins and the series they record see only their own deployment, and
//! `up{job="backup-exporter"}` (BackupExporterDown) keeps its shipped meaning. The
//! Prometheus processes are queried at one evaluation time.
//!
//! Answers are compared as sets after dropping `job` and `instance` (series such as `up` or
//! `backup_job:present` come once per exporter process) and `backup_exporter_shard_info`:
//! the same label sets, and values exact except where [`Class`] says why not (counter
//! extrapolation, per-process clocks, per-process timings). The scenario makes most answers
//! non-empty (alerts firing or pending, failing targets, runs that end during the test, a
//! job that two shards both export), the test asserts a floor on them, and it checks that
//! the comparison does tell apart a count that takes a job twice or a 0-valued status series.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::ops_kit::*;
use crate::common::{client, encode, wait_for, Exporter, Sim, TOKEN};
use crate::prom::*;
use serde_json::{json, Value as Json};

const SCP_ACCESS: &str = "shards-access";
const SCP_SECRET: &str = "shards-scp-secret-0c1d";
const AZURE_TENANT: &str = "shards-tenant";
const AZURE_CLIENT: &str = "shards-client";
const AZURE_SECRET: &str = "shards-azure-secret-77e2";
const SUBSCRIPTION: &str = "11111111-2222-3333-4444-555555555555";
const SCP_BACKUP_1: &str = "5a1d000000000000000000000000e4b1";
const SCP_BACKUP_2: &str = "5a1d000000000000000000000000e4b2";

const ENV: [(&str, &str); 4] = [
    ("SCP_ACCESS_KEY", SCP_ACCESS),
    ("SCP_SECRET_KEY", SCP_SECRET),
    ("AZURE_CLIENT_SECRET", AZURE_SECRET),
    ("WRONG_TOKEN", "not-the-token"),
];

const END: &str = "2025-01-15T01:40:00Z";

/// The ZDM backup jobs of upstream `zdm-a` (server `sh-web-01`) as (job, status, percent,
/// elapsed, end): failed, running (one for 7 hours: BackupJobTooLong), completed long ago
/// (BackupJobNoRecentSuccess, a weekly one under the shipped override), pending, completed
/// with warnings, cancelled, an unknown status, a percent that does not parse, and two
/// running jobs whose runs end during the test (`sh-flip-*`).
const ZDM_A_JOBS: [(&str, &str, &str, &str, &str); 16] = [
    ("sh-nightly", "fail", "40%", "00:40:00", END),
    ("sh-running", "run", "55%", "00:10:00", "-"),
    ("sh-long", "run", "20%", "07:00:00", "-"),
    ("sh-done", "complete", "100%", "00:40:00", END),
    ("sh-weekly", "complete", "100%", "00:40:00", END),
    ("sh-pending", "pending", "0%", "00:00:00", "-"),
    ("sh-warn", "warning", "100%", "00:40:00", END),
    ("sh-cancel", "cancel", "30%", "00:12:00", END),
    ("sh-odd", "exploded", "10%", "00:05:00", "-"),
    ("sh-parse", "run", "n/a", "00:10:00", "-"),
    ("sh-flip-fail", "run", "70%", "00:30:00", "-"),
    ("sh-flip-ok", "run", "90%", "00:35:00", "-"),
    ("sh-f1", "complete", "100%", "00:20:00", END),
    ("sh-f2", "run", "35%", "00:15:00", "-"),
    ("sh-f3", "fail", "80%", "00:50:00", END),
    ("sh-f4", "complete", "100%", "00:25:00", END),
];
/// The jobs of upstream `zdm-b` (server `sh-db-02`).
const ZDM_B_JOBS: [(&str, &str, &str, &str, &str); 4] = [
    ("sh-b-full", "complete", "100%", "01:10:00", END),
    ("sh-b-incr", "fail", "15%", "00:03:00", END),
    ("sh-b-logs", "run", "65%", "00:09:00", "-"),
    ("sh-b-weekly", "run", "5%", "13:00:00", "-"),
];
/// Jobs of `zdm-a` that its server target `sh-web-01` reports as well: the unsharded
/// exporter de-duplicates them, two shards may each export them.
const ON_SERVER: [&str; 4] = ["sh-nightly", "sh-running", "sh-done", "sh-f1"];

fn zdm_a_job(name: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    let (_, s, p, e, end) = ZDM_A_JOBS.iter().find(|j| j.0 == name).unwrap();
    (*s, *p, *e, *end)
}

/// The server answer of `sh-web-01`: the [`ON_SERVER`] jobs as their own answers give them,
/// and one job only the server reports.
fn server_answer() -> Json {
    let mut jobs: Vec<Json> = ON_SERVER
        .iter()
        .map(|name| {
            let (s, p, e, end) = zdm_a_job(name);
            zdm_job_answer("sh-web-01", name, s, p, e, end)["data"]["job"].clone()
        })
        .collect();
    jobs.push(
        zdm_job_answer("sh-web-01", "sh-home", "complete", "100%", "00:05:00", END)["data"]["job"]
            .clone(),
    );
    json!({
        "success": true,
        "requestID": "req-shards",
        "data": {
            "system": { "name": "sh-web-01" },
            "summary": { "total": jobs.len() },
            "job": jobs
        },
        "message": "Server backup monitoring info",
        "timestamp": "2025-01-15T11:15:00Z"
    })
}

/// A ZDM recovery answer with two volumes: one running, one pending.
fn recovery_answer() -> Json {
    let detail = |partition: &str, status: &str, percent: &str| {
        json!({
            "partition": partition,
            "progressInfo": {
                "status": status, "percent": percent, "message": "restoring",
                "start": "2025-01-15T10:00:00Z", "elapsed": "00:15:00", "end": "-"
            }
        })
    };
    json!({
        "success": true,
        "requestID": "req-shards",
        "data": {
            "system": { "source": { "name": "sh-web-01" }, "target": { "name": "sh-web-09" } },
            "job": {
                "info": { "name": "sh-restore" },
                "log": [],
                "details": [detail("/", "run", "45%"), detail("/home", "pending", "0%")]
            }
        },
        "message": "Recovery monitoring info",
        "timestamp": "2025-01-15T10:15:00Z"
    })
}

/// SCP restore history entries: `(minutes after 2025-03-01 00:00 UTC, state)`, finished
/// runs only (a running SCP restore's elapsed time is counted from the clock at each poll).
fn scp_entries(backup: &str, runs: &[(i64, &str)]) -> Json {
    let entries: Vec<Json> = runs
        .iter()
        .map(|(n, state)| {
            let created = chrono::DateTime::from_timestamp(1_740_787_200 + n * 60, 0).unwrap();
            let end = created + chrono::Duration::seconds(30);
            json!({
                "backup_id": backup,
                "backup_start_time": created.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "created_at": created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "created_by": "u",
                "modified_at": created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "modified_by": "u",
                "restore_end_time": end.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "restore_server_id": format!("srv-{n}"),
                "restore_server_name": "sh-restore-01",
                "restore_start_time": created.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "restore_state": state,
                "schedule_name": "DAILY"
            })
        })
        .collect();
    json!(entries)
}

/// An Azure backup job of vault `sh-vault`; its duration is given, so it does not tick.
fn azure_job(name: &str, vm: &str, status: &str, start_min: i64) -> Json {
    let start = chrono::Utc::now() - chrono::Duration::minutes(start_min);
    let mut props = json!({
        "jobType": "AzureIaaSVMJob",
        "duration": "PT12M4S",
        "virtualMachineVersion": "Compute",
        "entityFriendlyName": vm,
        "backupManagementType": "AzureIaasVM",
        "operation": "Backup",
        "status": status,
        "startTime": start.to_rfc3339(),
        "activityId": "00000000-0000-0000-0000-000000000000"
    });
    if status != "InProgress" {
        props["endTime"] = json!((start + chrono::Duration::seconds(724)).to_rfc3339());
        props["extendedInfo"] =
            json!({ "tasksList": [], "propertyBag": { "Backup Size": "10 GB" } });
    } else {
        props["extendedInfo"] =
            json!({ "tasksList": [], "propertyBag": {}, "progressPercentage": 40 });
    }
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/sh-vault/backupJobs/{name}"),
        "name": name,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props
    })
}

async fn put_json(sim: &Sim, path: &str, body: &Json) {
    let resp = client()
        .put(format!("{}{path}", sim.url()))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
}

/// Pins every answer the exporters will get.
async fn pin_scenario(sim: &Sim) {
    for (name, status, percent, elapsed, end) in ZDM_A_JOBS {
        let answer = zdm_job_answer("sh-web-01", name, status, percent, elapsed, end);
        sim.fixture("backup_job", name, &answer).await;
    }
    for (name, status, percent, elapsed, end) in ZDM_B_JOBS {
        let answer = zdm_job_answer("sh-db-02", name, status, percent, elapsed, end);
        sim.fixture("backup_job", name, &answer).await;
    }
    sim.fixture("system", "sh-web-01", &server_answer()).await;
    sim.fixture("recovery_job", "sh-restore", &recovery_answer())
        .await;
    let flaky = zdm_job_answer("sh-web-01", "sh-flaky", "complete", "100%", "00:01:00", END);
    sim.fixture("backup_job", "sh-flaky", &flaky).await;
    let scp = [
        (
            SCP_BACKUP_1,
            vec![(1, "COMPLETED"), (2, "FAILED"), (3, "COMPLETED")],
        ),
        (SCP_BACKUP_2, vec![(1, "COMPLETED"), (5, "FAILED")]),
    ];
    for (backup, runs) in scp {
        put_json(
            sim,
            &format!("/_sim/scp/{backup}/entries"),
            &scp_entries(backup, &runs),
        )
        .await;
    }
    let jobs = json!([
        azure_job("az-1", "sh-vm-a", "Completed", 300),
        azure_job("az-2", "sh-vm-b", "Failed", 200),
        azure_job("az-3", "sh-vm-c", "InProgress", 10),
        azure_job("az-4", "sh-vm-d", "CompletedWithWarnings", 100),
    ]);
    put_json(sim, "/_sim/azure/sh-vault/jobs", &jobs).await;
}

/// One configuration for every exporter, `job_status` aside.
fn config(sim: &Sim, job_status: &str) -> String {
    let names = |jobs: &[(&str, &str, &str, &str, &str)]| {
        jobs.iter().map(|j| j.0).collect::<Vec<_>>().join(", ")
    };
    format!(
        "defaults:\n  interval: 1s\n  timeout: 2s\n  job_status: {job_status}\nupstreams:\n\
         \x20 - name: zdm-a\n    type: zdm\n    url: {url}\n    token_env: SIM_TOKEN\n\
         \x20   servers: [sh-web-01]\n\
         \x20   backup_jobs: [{a}, sh-flaky]\n\
         \x20   recovery_jobs: [sh-restore]\n\
         \x20 - name: zdm-b\n    type: zdm\n    url: {url}\n    token_env: SIM_TOKEN\n\
         \x20   backup_jobs: [{b}]\n\
         \x20 - name: zdm-denied\n    type: zdm\n    url: {url}\n    token_env: WRONG_TOKEN\n\
         \x20   servers: [server-01]\n\
         \x20 - name: scp-kr\n    type: scp\n    url: {url}\n\
         \x20   access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n\
         \x20   backups: [{{ id: {SCP_BACKUP_1}, name: sh-erp-db }}, {{ id: {SCP_BACKUP_2}, name: sh-files }}]\n\
         \x20 - name: azure-a\n    type: azure\n    tenant_id: {AZURE_TENANT}\n    client_id: {AZURE_CLIENT}\n\
         \x20   client_secret_env: AZURE_CLIENT_SECRET\n    subscription_id: {SUBSCRIPTION}\n\
         \x20   management_url: {url}\n    authority_url: {url}\n\
         \x20   vaults: [{{ resource_group: rg-backup, name: sh-vault }}]\n",
        url = sim.url(),
        a = names(&ZDM_A_JOBS),
        b = names(&ZDM_B_JOBS),
    )
}

/// The `backup_target_up` series of a scrape, without their values.
fn targets_up(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with("backup_target_up{"))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_string()
        })
        .collect()
}

// ------------------------------------------------------------------------------ comparing

/// How closely two deployments must agree on a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// The same series with the same values.
    Exact,
    /// `increase`/`rate`: the same series; values within 15%, as each Prometheus scrapes at
    /// its own moments and extrapolates a counter's steps to the window's edges differently
    /// (a count taken twice is 100% off).
    Counter,
    /// Wall-clock moments of each exporter process (when it loaded its configuration, when it
    /// last polled a target fine, and the job ages that fall back to the former): the same
    /// series; values within 5 s (5000 where the query gives milliseconds) or 25%, as each
    /// process starts and polls at its own moments.
    Clock,
    /// What a process measures of its own work (request latency, poll and scrape durations,
    /// memory, CPU, open files): the same series; values not compared.
    Timing,
}

/// The class of `expr` by the series it reads; the first that applies wins.
fn class_of(expr: &str) -> Class {
    let reads = |names: &[&str]| names.iter().any(|n| expr.contains(n));
    // Request counts per upstream depend on the deployment, not only on the jobs: every
    // shard settles the ZDM version and reads the run histories of its upstreams itself.
    if reads(&[
        "process_",
        "scrape_duration_seconds",
        "backup_upstream_requests_total",
        "backup_upstream_request_duration_seconds",
        "backup_target_poll_duration_seconds",
    ]) {
        Class::Timing
    } else if reads(&[
        "backup_exporter_config_last_reload_success_time_seconds",
        "backup_target_last_success_time_seconds",
        "backup_job:last_success_age_seconds",
        // when each job was last seen: each Prometheus's own evaluation times
        "backup_job:last_seen_time_seconds",
    ]) {
        Class::Clock
    } else if reads(&["increase(", "rate("]) {
        Class::Counter
    } else {
        Class::Exact
    }
}

struct Check {
    what: String,
    expr: String,
    class: Class,
}

/// Every dashboard query and every rule: its expression, and for a recording rule also the
/// series Prometheus recorded; plus `ALERTS` (the state of every alert).
fn checks() -> Vec<Check> {
    let mut out: Vec<Check> = panel_queries()
        .into_iter()
        .map(|q| Check {
            class: class_of(&q.expr),
            what: q.what,
            expr: q.expr,
        })
        .collect();
    for file in [RULES, OVERRIDES] {
        for group in yaml(file)["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let expr = rule["expr"].as_str().unwrap().to_string();
                let class = class_of(&expr);
                if let Some(name) = rule["record"].as_str() {
                    out.push(Check {
                        what: format!("recorded {name}"),
                        expr: name.to_string(),
                        class,
                    });
                    out.push(Check {
                        what: format!("record {name}"),
                        expr,
                        class,
                    });
                } else {
                    let name = rule["alert"].as_str().unwrap();
                    out.push(Check {
                        what: format!("alert {name}"),
                        expr,
                        class,
                    });
                }
            }
        }
    }
    out.push(Check {
        what: "ALERTS".into(),
        expr: "ALERTS".into(),
        class: Class::Exact,
    });
    out
}

/// Labels that name the scraped process, not what it reports. (No `deployment` label is
/// needed: each deployment has its own Prometheus.)
const PROCESS_LABELS: [&str; 2] = ["job", "instance"];
/// Series only a sharded deployment has different (the shard and the number of shards).
const SHARD_ONLY: [&str; 1] = ["backup_exporter_shard_info"];

/// An instant result with the process labels dropped: labels -> the distinct values of the
/// series that carry them (per-process series such as `up` give one value per exporter).
type Answer = BTreeMap<String, Vec<f64>>;

async fn answer_at(prom: &Server, expr: &str, time: f64) -> Answer {
    let data = api(
        prom,
        &format!("query?query={}&time={time:.3}", encode(expr)),
    )
    .await;
    let mut out = Answer::new();
    let result = match data["resultType"].as_str() {
        Some("vector") => data["result"].as_array().cloned().unwrap_or_default(),
        // A scalar expression (no shipped one is): one unlabelled value.
        Some("scalar") => vec![json!({"metric": {}, "value": data["result"]})],
        other => panic!("{expr}: result type {other:?}"),
    };
    for s in result {
        let mut metric = s["metric"].as_object().cloned().unwrap_or_default();
        if metric
            .get("__name__")
            .and_then(Json::as_str)
            .is_some_and(|n| SHARD_ONLY.contains(&n))
        {
            continue;
        }
        for label in PROCESS_LABELS {
            metric.remove(label);
        }
        let value: f64 = s["value"][1]
            .as_str()
            .unwrap_or("")
            .parse()
            .unwrap_or(f64::NAN);
        let values = out.entry(Json::Object(metric).to_string()).or_default();
        values.push(value);
    }
    for values in out.values_mut() {
        values.sort_by(f64::total_cmp);
        values.dedup_by(|a, b| a.total_cmp(b).is_eq());
    }
    out
}

fn close(class: Class, expr: &str, a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    let diff = (a - b).abs();
    let rel = diff / a.abs().max(b.abs()).max(f64::MIN_POSITIVE);
    match class {
        Class::Exact => a == b || diff <= 1e-9 * a.abs().max(1.0),
        Class::Counter => diff <= 1e-9 || rel <= 0.15,
        Class::Clock => {
            let unit = if expr.contains("* 1000") { 1000.0 } else { 1.0 };
            diff <= 5.0 * unit || rel <= 0.25
        }
        Class::Timing => true,
    }
}

/// Same series; every value of one side has a close value on the other.
fn same(check: &Check, a: &Answer, b: &Answer) -> bool {
    let covers = |x: &[f64], y: &[f64]| {
        x.iter()
            .all(|v| y.iter().any(|w| close(check.class, &check.expr, *v, *w)))
    };
    a.len() == b.len()
        && a.iter().all(|(labels, x)| {
            b.get(labels)
                .is_some_and(|y| check.class == Class::Timing || (covers(x, y) && covers(y, x)))
        })
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Evaluates every check on both Prometheus processes at one time (a moment ago, so that no
/// scrape lands in between) until all agree, for at most 20 s; returns how many answers were
/// non-empty, per class.
async fn assert_same_answers(
    title: &str,
    (name_a, a): (&str, &Server),
    (name_b, b): (&str, &Server),
    checks: &[Check],
) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut rounds = 0;
    loop {
        rounds += 1;
        let time = now() - QUERY_LAG;
        let mut differ = Vec::new();
        let mut non_empty: BTreeMap<String, usize> = BTreeMap::new();
        let mut empty = Vec::new();
        for check in checks {
            let x = answer_at(a, &check.expr, time).await;
            let y = answer_at(b, &check.expr, time).await;
            if !same(check, &x, &y) {
                differ.push(format!(
                    "  {} [{:?}]: {}\n    {name_a}: {x:?}\n    {name_b}: {y:?}",
                    check.what,
                    check.class,
                    check.expr.trim()
                ));
            } else if x.is_empty() {
                empty.push(check.what.as_str());
            } else {
                *non_empty.entry(format!("{:?}", check.class)).or_default() += 1;
            }
        }
        if differ.is_empty() {
            let total: usize = non_empty.values().sum();
            println!(
                "{title}: all {} queries agree (round {rounds}); {total} non-empty ({non_empty:?}), empty on both \
                 sides: {empty:?}",
                checks.len()
            );
            return non_empty;
        }
        assert!(
            Instant::now() < deadline,
            "{title}: {} of {} queries answer differently:\n{}",
            differ.len(),
            checks.len(),
            differ.join("\n")
        );
        // Settling (a rule group or a scrape a moment behind the others): say what, and retry.
        println!(
            "{title}: round {rounds}: {} differ, retrying:\n{}",
            differ.len(),
            differ.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How far back the answers are compared: a moment ago, so that no scrape or rule
/// evaluation lands between the queries to two Prometheus.
const QUERY_LAG: f64 = 2.0;

/// Waits until `expr` has a result on every one of `proms`, evaluated `lag` seconds ago.
async fn wait_all(what: &str, proms: &[&Server], expr: &str, lag: f64) {
    wait_for(what, Duration::from_secs(20), || async {
        let time = now() - lag;
        for prom in proms {
            let data = api(
                prom,
                &format!("query?query={}&time={time:.3}", encode(expr)),
            )
            .await;
            if data["result"].as_array().is_none_or(Vec::is_empty) {
                return None;
            }
        }
        Some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_and_dashboard_query_answers_the_same_with_one_or_two_shards_and_in_active_mode()
{
    let test_started = Instant::now();
    tool("prometheus");
    let scp_keys = format!("{SCP_ACCESS}:{SCP_SECRET}");
    let azure_client = format!("{AZURE_TENANT}:{AZURE_CLIENT}:{AZURE_SECRET}");
    let sim = Sim::start_with(&[
        "--token",
        TOKEN,
        "--scp-keys",
        &scp_keys,
        "--azure-client",
        &azure_client,
    ]);
    pin_scenario(&sim).await;

    let stateset = config(&sim, "stateset");
    let single = Exporter::start_with(&stateset, &[], &ENV);
    let shard0 = Exporter::start_with(&stateset, &["--total-shards", "2", "--shard", "0"], &ENV);
    let shard1 = Exporter::start_with(&stateset, &["--total-shards", "2", "--shard", "1"], &ENV);
    let active = Exporter::start_with(&config(&sim, "active"), &[], &ENV);
    for exporter in [&single, &shard0, &shard1, &active] {
        exporter.wait_ready().await;
    }

    // The shards split the single exporter's targets: both get some, none twice, none lost.
    let t_single = targets_up(&single.metrics().await);
    let (t0, t1) = (
        targets_up(&shard0.metrics().await),
        targets_up(&shard1.metrics().await),
    );
    let expected_targets = ZDM_A_JOBS.len() + ZDM_B_JOBS.len() + 1 + 1 + 1 + 1 + 2 + 1;
    assert_eq!(t_single.len(), expected_targets, "{t_single:#?}");
    assert!(
        !t0.is_empty() && !t1.is_empty(),
        "both shards have targets: {} and {}",
        t0.len(),
        t1.len()
    );
    assert!(t0.is_disjoint(&t1), "no target on two shards");
    assert_eq!(
        &t0 | &t1,
        t_single,
        "the shards cover the single exporter's targets"
    );
    assert_eq!(targets_up(&active.metrics().await), t_single);
    let status_zero = |m: &str| {
        m.lines()
            .any(|l| l.starts_with("backup_job_status{") && l.ends_with(" 0"))
    };
    assert!(status_zero(&single.metrics().await), "stateset: 0 series");
    assert!(
        !status_zero(&active.metrics().await),
        "active: only the status series that are 1"
    );
    // A job reported by a server target and by its own job target on different shards is
    // exported by both shards (the single exporter de-duplicates it): the queries must take it
    // once.
    let server_target = t_single
        .iter()
        .find(|t| t.contains("target=\"sh-web-01\""))
        .unwrap();
    let server_shard = if t0.contains(server_target) { &t0 } else { &t1 };
    let split: Vec<&str> = ON_SERVER
        .iter()
        .copied()
        .filter(|job| {
            !server_shard
                .iter()
                .any(|t| t.contains(&format!("target=\"{job}\"")))
        })
        .collect();
    assert!(
        !split.is_empty(),
        "some job reported by both sh-web-01 and its own target should be on two shards"
    );
    println!(
        "targets: {} (shard 0: {}, shard 1: {}); jobs exported by both shards: {split:?}",
        t_single.len(),
        t0.len(),
        t1.len()
    );

    let p_single = start_prometheus_with(&shipped_prometheus_config(&[&single.addr]));
    let p_sharded =
        start_prometheus_with(&shipped_prometheus_config(&[&shard0.addr, &shard1.addr]));
    let p_active = start_prometheus_with(&shipped_prometheus_config(&[&active.addr]));
    let proms = [&p_single, &p_sharded, &p_active];
    for prom in proms {
        prom.wait_ready("prometheus").await;
    }
    // Every exporter scraped with every target, and sh-flaky's job recorded as present.
    let n = expected_targets;
    wait_all(
        "every target in every Prometheus",
        &proms,
        &format!(
            "count(backup_target_up) == {n} and on () count(up == 1) == count(up) \
             and on () backup_job:present{{job_name=\"sh-flaky\"}}"
        ),
        0.0,
    )
    .await;
    // sh-flaky's target starts failing after a good poll (so it has a last success); its job
    // goes after stale_after, which BackupJobMissing sees.
    sim.fault("backup_job", "sh-flaky", "error500").await;
    // Prometheus extrapolates `increase` and `rate` from a window's first and last samples
    // to its edges; over series younger than the window, as everything here is, two
    // Prometheus that scrape at different moments differ by about a second's worth over the
    // series' age. 15 s of history (and of sh-flaky's 500s) before the run counters step
    // (from 0, so that Prometheus sees the step) keeps that under 10%.
    wait_all(
        "15 s of history in every Prometheus, the run counters of sh-flip-* at 0",
        &proms,
        r#"count_over_time(backup_job_runs_total{job_name="sh-flip-fail", result="failed"}[1m]) >= 15
           and on () count(backup_job_runs_total{job_name=~"sh-flip-.*", result="failed"} == 0) == 2"#,
        0.0,
    )
    .await;
    let sharded_instances =
        instant(&p_sharded, "count(count by (instance) (backup_target_up))").await;
    assert_eq!(
        sharded_instances[0]["value"][1], "2",
        "both shards report targets"
    );

    // Two runs end, one failed, one completed.
    let (s, p, e, _) = zdm_a_job("sh-flip-fail");
    assert_eq!((s, p, e), ("run", "70%", "00:30:00"));
    sim.fixture(
        "backup_job",
        "sh-flip-fail",
        &zdm_job_answer("sh-web-01", "sh-flip-fail", "fail", "70%", "00:30:00", END),
    )
    .await;
    sim.fixture(
        "backup_job",
        "sh-flip-ok",
        &zdm_job_answer(
            "sh-web-01",
            "sh-flip-ok",
            "complete",
            "100%",
            "00:35:00",
            END,
        ),
    )
    .await;
    // Waited for at the time the answers are compared at: from then on, every comparison
    // below evaluates the scenario complete.
    wait_all(
        "the ended runs counted, recorded and alerted on everywhere, as of the query lag",
        &proms,
        r#"backup_job_runs_total{job_name="sh-flip-fail", result="failed"} == 1
           and on () backup_job_runs_total{job_name="sh-flip-ok", result="completed"} == 1
           and on () ALERTS{alertname="BackupJobFailed", job_name="sh-flip-fail", alertstate="firing"}
           and on () (backup_job:last_seen_time_seconds{job_name="sh-flaky"} unless on (job_name) backup_job_status)
           and on () backup_job:last_success_age_seconds{job_name="sh-flip-ok"} > 86400
           and on () ALERTS{alertname="BackupJobNoRecentSuccess", job_name="sh-flip-ok"}
           and on () backup_target_up{target="sh-flaky"} == 0"#,
        QUERY_LAG,
    )
    .await;

    // The comparison tells apart what it must: a count that takes twice the job both shards
    // export, and counts of status series that are 0 (only stateset mode has them).
    let naive = |expr: &str| Check {
        what: format!("naive {expr}"),
        expr: expr.to_string(),
        class: Class::Exact,
    };
    let time = now() - QUERY_LAG;
    for (expr, (a, b)) in [
        (
            r#"count(backup_job_status{job_name="sh-done", status="completed"} == 1)"#,
            (&p_single, &p_sharded),
        ),
        (r#"count(backup_job_status)"#, (&p_single, &p_active)),
        (
            r#"backup_job_status{status="failed"} == 0"#,
            (&p_single, &p_active),
        ),
    ] {
        let (x, y) = (
            answer_at(a, expr, time).await,
            answer_at(b, expr, time).await,
        );
        assert!(
            !same(&naive(expr), &x, &y),
            "{expr} should differ: {x:?} and {y:?}"
        );
    }

    println!(
        "scenario ready at {:.1}s",
        test_started.elapsed().as_secs_f64()
    );
    let checks = checks();
    let compare_started = Instant::now();
    let shards = assert_same_answers(
        "1 vs 2 shards",
        ("single", &p_single),
        ("sharded", &p_sharded),
        &checks,
    )
    .await;
    let modes = assert_same_answers(
        "stateset vs active",
        ("stateset", &p_single),
        ("active", &p_active),
        &checks,
    )
    .await;
    println!(
        "compared in {:.1}s (test at {:.1}s)",
        compare_started.elapsed().as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );
    for (title, non_empty) in [("shards", &shards), ("modes", &modes)] {
        let total: usize = non_empty.values().sum();
        assert!(
            total >= 75 && non_empty.get("Exact").copied().unwrap_or(0) >= 50,
            "{title}: too few non-empty answers to compare: {non_empty:?}"
        );
    }

    // The comparison covers alerts that fire (or are pending) in this scenario.
    // BackupJobMissing (an hour gone) and BackupParseErrors (errors in each of two hours)
    // cannot go pending within this test: what they read, the job's remembered last-seen
    // time and the parse error counters, is compared above.
    for (alert, label) in [
        ("BackupJobFailed", r#"job_name="sh-flip-fail""#),
        ("BackupJobFailed", r#"job_name="sh-nightly""#),
        ("BackupJobTooLong", r#"job_name="sh-long""#),
        ("BackupJobNoRecentSuccess", r#"job_name="sh-done""#),
        ("BackupTargetDown", r#"target="sh-flaky""#),
        ("BackupTargetDown", r#"upstream="zdm-denied""#),
        ("BackupUpstreamAuthFailing", r#"upstream="zdm-denied""#),
    ] {
        for prom in proms {
            let found = instant(prom, &format!("ALERTS{{alertname=\"{alert}\", {label}}}")).await;
            assert!(!found.is_empty(), "{alert} for {label} in {}", prom.url);
        }
    }

    drop((p_single, p_sharded, p_active));
    drop((single, shard0, shard1, active));
    drop(sim);
}
