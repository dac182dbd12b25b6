//! Azure `discover: true` against the real binaries: a config with only credentials, the
//! subscription and `discover: true` monitors every vault the simulator lists, with the
//! coverage and the protected items; the resource-group filter; a configured vault wins
//! (in any case); failed listings keep the targets and the items; a `nextLink` to another
//! origin is refused and counted; endless or repeating lists end as `too_large`; shards split the vaults.

use std::time::Duration;

use crate::common::hostile::{answer, Hostile};
use crate::common::{value, wait_for, Exporter, Sim};

const TENANT: &str = "tenant-1234";
const CLIENT_ID: &str = "client-5678";
const CLIENT_SECRET: &str = "azure-secret-0f3c2d";
const LIVE_SUB: &str = "11111111-2222-3333-4444-555555555555";
const ENV: [(&str, &str); 1] = [("AZURE_CLIENT_SECRET", CLIENT_SECRET)];

/// The vaults of the live subscription, as `target` labels.
const VAULTS: [&str; 3] = [
    "rg-backup/vault-01",
    "rg-dr/vault-dr",
    "rg-backup/vault-workloads",
];

fn sim(extra: &[&str]) -> Sim {
    let azure = format!("{TENANT}:{CLIENT_ID}:{CLIENT_SECRET}");
    let mut args = vec!["--azure-client", &azure, "--azure-page-size", "2"];
    args.extend_from_slice(extra);
    Sim::start_with(&args)
}

/// An Azure upstream with a client secret, the live subscription and `discover: true`,
/// listed every `every`.
fn config(url: &str, every: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: azure\n    type: azure\n    tenant_id: {TENANT}\n    client_id: {CLIENT_ID}\n    client_secret_env: AZURE_CLIENT_SECRET\n    subscription_id: {LIVE_SUB}\n    management_url: {url}\n    authority_url: {url}\n    interval: 2s\n    discover: true\n    discover_interval: {every}\n{extra}"
    )
}

fn outcome_series(outcome: &str) -> String {
    format!("backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"azure\",upstream=\"azure\"}}")
}

fn target_up(vault: &str) -> String {
    format!(
        "backup_target_up{{system=\"azure\",upstream=\"azure\",kind=\"vault\",target=\"{vault}\"}}"
    )
}

fn protected(server: &str) -> String {
    format!("backup_server_protected{{system=\"azure\",upstream=\"azure\",server=\"{server}\"}}")
}

fn discovered() -> String {
    "backup_discovery_targets{system=\"azure\",upstream=\"azure\",kind=\"vault\"}".to_owned()
}

/// A series of a protected item's family, with `more` labels after its own.
fn item(family: &str, vault: &str, job_name: &str, workload: &str, more: &str) -> String {
    format!("{family}{{system=\"azure\",upstream=\"azure\",vault=\"{vault}\",job_name=\"{job_name}\",workload=\"{workload}\"{more}}}")
}

fn vault_targets(m: &str) -> Vec<String> {
    let prefix = "backup_target_up{system=\"azure\",upstream=\"azure\",kind=\"vault\",target=\"";
    let mut all: Vec<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect();
    all.sort();
    all
}

fn up(m: &str, vault: &str) -> bool {
    value(m, &target_up(vault)) == Some(1.0)
}

/// Whether a job of `operation` named `name` has a status series.
fn has_job(m: &str, operation: &str, name: &str) -> bool {
    let prefix = format!(
        "backup_job_status{{system=\"azure\",upstream=\"azure\",operation=\"{operation}\",job_name=\"{name}\","
    );
    m.lines().any(|l| l.starts_with(&prefix))
}

#[tokio::test]
async fn azure_discover_alone_monitors_every_vault_with_its_items_and_coverage() {
    let sim = sim(&[]);
    let exp = Exporter::start_with(&config(&sim.url(), "10m", ""), &[], &ENV);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("every vault up with its jobs and items", |m| {
            VAULTS.iter().all(|v| up(m, v))
                && has_job(m, "backup", "vm-web-01")
                && has_job(m, "backup", "vm-dr-01")
                && has_job(m, "backup", "finance-share")
                && m.contains("backup_protected_item_last_backup_time_seconds{")
        })
        .await;
    let mut want: Vec<String> = VAULTS.iter().map(|v| v.to_string()).collect();
    want.sort();
    assert_eq!(vault_targets(&m), want);
    assert_eq!(value(&m, &discovered()), Some(3.0), "{m}");
    // Coverage: protected VMs and SQL servers, and the VMs nothing protects.
    for server in [
        "vm-web-01",
        "vm-batch-03",
        "vm-legacy-01",
        "sql-01.contoso.com",
    ] {
        assert_eq!(value(&m, &protected(server)), Some(1.0), "{server}\n{m}");
    }
    for server in ["vm-test-07", "vm-sandbox-01"] {
        assert_eq!(value(&m, &protected(server)), Some(0.0), "{server}");
    }
    // The items: protection stopped long ago, with its last success; always failing, with
    // its last recovery point; asked for action.
    let legacy = |family, more| item(family, "rg-backup/vault-01", "vm-legacy-01", "VM", more);
    assert_eq!(
        value(
            &m,
            &legacy(
                "backup_protected_item_protection_state",
                ",state=\"ProtectionStopped\""
            )
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            &legacy(
                "backup_protected_item_protection_state",
                ",state=\"Protected\""
            )
        ),
        Some(0.0)
    );
    let success = value(
        &m,
        &legacy("backup_protected_item_last_success_time_seconds", ""),
    )
    .expect("a last success");
    let backup = value(
        &m,
        &legacy("backup_protected_item_last_backup_time_seconds", ""),
    );
    assert_eq!(Some(success), backup, "its last backup was a success");
    let batch = |family, more| item(family, "rg-dr/vault-dr", "vm-batch-03", "VM", more);
    assert_eq!(
        value(
            &m,
            &batch(
                "backup_protected_item_last_backup_status",
                ",status=\"Failed\""
            )
        ),
        Some(1.0)
    );
    let recovery = value(
        &m,
        &batch("backup_protected_item_last_success_time_seconds", ""),
    )
    .expect("the last recovery point");
    let failed = value(
        &m,
        &batch("backup_protected_item_last_backup_time_seconds", ""),
    )
    .unwrap();
    assert!(recovery < failed, "{recovery} {failed}");
    assert_eq!(
        value(
            &m,
            &item(
                "backup_protected_item_health_status",
                "rg-backup/vault-01",
                "vm-app-02",
                "VM",
                ",state=\"ActionRequired\""
            )
        ),
        Some(1.0)
    );
    // A database is named as its jobs are.
    let sales = item(
        "backup_protected_item_last_backup_time_seconds",
        "rg-backup/vault-workloads",
        "MSSQLSERVER/salesdb [sql-01.contoso.com]",
        "SQLDataBase",
        "",
    );
    assert!(value(&m, &sales).is_some(), "{m}");
    assert!(
        sim.requests("vault_list_next", LIVE_SUB).await >= 1,
        "paged"
    );
    assert!(sim.requests("protectable_items", "vault-dr").await >= 1);
    assert!(!exp.proc.stderr_text().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn a_resource_group_filter_lists_its_vaults_and_a_configured_vault_wins_in_any_case() {
    let sim = sim(&[]);
    let extra = "    discover_filters: { resource_group: rg-backup }\n    vaults: [{ resource_group: RG-Backup, name: Vault-01 }]\n";
    let exp = Exporter::start_with(&config(&sim.url(), "10m", extra), &[], &ENV);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("both vaults up", |m| {
            up(m, "RG-Backup/Vault-01")
                && up(m, "rg-backup/vault-workloads")
                && has_job(m, "backup", "vm-web-01")
                && m.contains("backup_server_protected{")
        })
        .await;
    assert_eq!(
        vault_targets(&m),
        ["RG-Backup/Vault-01", "rg-backup/vault-workloads"],
        "the configured spelling wins, the other resource group is not listed"
    );
    assert_eq!(value(&m, &discovered()), Some(1.0), "{m}");
    assert_eq!(value(&m, &protected("vm-test-07")), Some(0.0));
    assert_eq!(value(&m, &protected("vm-web-01")), Some(1.0));
    assert_eq!(
        value(&m, &protected("vm-sandbox-01")),
        None,
        "rg-dr is not listed"
    );
}

#[tokio::test]
async fn a_failed_azure_vault_listing_keeps_the_targets() {
    let sim = sim(&[]);
    let exp = Exporter::start_with(&config(&sim.url(), "1s", ""), &[], &ENV);
    exp.wait_ready().await;
    exp.wait_metrics("every vault up", |m| VAULTS.iter().all(|v| up(m, v)))
        .await;
    sim.fault("vault_list", LIVE_SUB, "error500").await;
    let listed = sim.requests("vault_list", LIVE_SUB).await;
    wait_for("two failed listings", Duration::from_secs(20), || async {
        (sim.requests("vault_list", LIVE_SUB).await >= listed + 2).then_some(())
    })
    .await;
    wait_for(
        "the failing listing logged",
        Duration::from_secs(20),
        || async {
            exp.proc
                .stderr_text()
                .contains("discovery listing failing")
                .then_some(())
        },
    )
    .await;
    let m = exp.metrics().await;
    assert!(
        value(&m, &outcome_series("http_5xx")).unwrap_or(0.0) >= 1.0,
        "counted: {m}"
    );
    assert!(VAULTS.iter().all(|v| up(&m, v)), "kept: {m}");
    assert_eq!(value(&m, &discovered()), Some(3.0));
    assert_eq!(
        value(&m, &protected("vm-test-07")),
        Some(0.0),
        "coverage kept"
    );
}

#[tokio::test]
async fn a_failed_protected_item_list_keeps_the_items_and_is_a_partial_listing() {
    let sim = sim(&[]);
    let exp = Exporter::start_with(&config(&sim.url(), "1s", ""), &[], &ENV);
    exp.wait_ready().await;
    let web = item(
        "backup_protected_item_last_backup_time_seconds",
        "rg-backup/vault-01",
        "vm-web-01",
        "VM",
        "",
    );
    exp.wait_metrics("the items", |m| {
        value(m, &web).is_some() && VAULTS.iter().all(|v| up(m, v))
    })
    .await;
    sim.fault("protected_items", "vault-01", "error500").await;
    wait_for(
        "the inventory fault logged",
        Duration::from_secs(20),
        || async {
            exp.proc
                .stderr_text()
                .contains("inventory listing failing")
                .then_some(())
        },
    )
    .await;
    let m = exp.metrics().await;
    assert!(value(&m, &web).is_some(), "kept: {m}");
    assert_eq!(value(&m, &protected("vm-web-01")), Some(1.0));
    assert_eq!(value(&m, &protected("vm-dr-01")), Some(1.0));
    assert_eq!(value(&m, &discovered()), Some(3.0));
    assert!(VAULTS.iter().all(|v| up(&m, v)));
    assert!(value(&m, &outcome_series("http_5xx")).unwrap_or(0.0) >= 1.0);
}

/// The simulator's fleet: 30 more vaults in `rg-fleet`, over many pages of the vault list,
/// each polled, each with its VM that nothing protects.
#[tokio::test]
async fn an_azure_fleet_of_vaults_is_discovered_whole() {
    let sim = sim(&["--azure-fleet", "30"]);
    let exp = Exporter::start_with(
        &config(&sim.url(), "10m", "").replace("interval: 2s", "interval: 60s"),
        &[],
        &ENV,
    );
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("33 vaults discovered and up", |m| {
            value(m, &discovered()) == Some(33.0) && vault_targets(m).iter().all(|v| up(m, v))
        })
        .await;
    assert_eq!(vault_targets(&m).len(), 33);
    assert!(up(&m, "rg-fleet/fleet-vault-00030"));
    assert_eq!(
        value(&m, &protected("fleet-00030-idle-vm")),
        Some(0.0),
        "{m}"
    );
    assert_eq!(value(&m, &protected("fleet-00001-idle-vm")), Some(0.0));
    assert!(
        sim.requests("vault_list_next", LIVE_SUB).await >= 16,
        "pages of 2"
    );
}

/// An upstream answering tokens (IMDS) and the vault list with `list`.
fn hostile(list: impl Fn(&str) -> String + Send + Sync + 'static) -> Hostile {
    Hostile::start(move |seen| {
        if seen.path.starts_with("/metadata/identity/oauth2/token") {
            return answer(
                "200 OK",
                &[],
                r#"{"access_token":"hostile-token","expires_in":"3600"}"#,
            );
        }
        if seen
            .path
            .contains("/providers/Microsoft.RecoveryServices/vaults?")
        {
            return answer("200 OK", &[], &list(&seen.path));
        }
        answer(
            "404 Not Found",
            &[],
            r#"{"error":{"code":"NotFound","message":"no"}}"#,
        )
    })
}

fn vaults_page(names: &[String], next: Option<&str>) -> String {
    let value: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({ "name": n, "id": format!("/subscriptions/{LIVE_SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/{n}") }))
        .collect();
    let mut page = serde_json::json!({ "value": value });
    if let Some(next) = next {
        page["nextLink"] = serde_json::Value::String(next.to_owned());
    }
    page.to_string()
}

/// A managed-identity upstream on `url` discovering every `every` (its vaults polled
/// hourly).
fn hostile_config(url: &str, every: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: azure\n    type: azure\n    managed_identity: true\n    subscription_id: {LIVE_SUB}\n    management_url: {url}\n    authority_url: {url}\n    interval: 1h\n    discover: true\n    discover_interval: {every}\n{extra}"
    )
}

/// What a `nextLink` may carry in its query (a SAS-like signature): never logged.
const LINK_SECRET: &str = "sig=nextlink-secret-4b9e";

/// A `nextLink` to another origin is never followed: the token stays home, the listing
/// fails (nothing discovered), and the refused page is counted once as an `upstream_error`
/// (one listing, an hour apart). Only the link's origin is logged, never its query.
#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_counted() {
    let elsewhere = Hostile::start(|_| answer("200 OK", &[], r#"{"value":[]}"#));
    let link = format!(
        "{}/subscriptions/{LIVE_SUB}/providers/Microsoft.RecoveryServices/vaults?api-version=2025-08-01&$skipToken=2&{LINK_SECRET}",
        elsewhere.url()
    );
    let upstream = hostile(move |_| vaults_page(&["v1".to_owned()], Some(&link)));
    let exp = Exporter::start(&hostile_config(&upstream.url(), "1h", ""));
    let refused = format!(
        "nextLink leaves the management endpoint ({})",
        elsewhere.url()
    );
    wait_for(
        "the refused listing logged",
        Duration::from_secs(20),
        || async {
            let logs = exp.proc.stderr_text();
            (logs.contains("discovery listing failing") && logs.contains(&refused)).then_some(())
        },
    )
    .await;
    let lists = upstream
        .seen()
        .iter()
        .filter(|s| s.path.contains("/vaults?"))
        .count();
    assert_eq!(lists, 1, "one listing");
    assert!(
        elsewhere.seen().is_empty(),
        "nothing sent to the other origin"
    );
    let m = exp.metrics().await;
    assert!(vault_targets(&m).is_empty(), "nothing discovered: {m}");
    assert_eq!(
        value(&m, &outcome_series("upstream_error")),
        Some(1.0),
        "the refused page counted once\n{m}"
    );
    let logs = exp.proc.stderr_text();
    assert!(!logs.contains("hostile-token"));
    assert!(!logs.contains(LINK_SECRET), "{logs}");
    assert!(!logs.contains("skipToken"), "{logs}");
}

/// Every list that pages refuses a `nextLink` to another origin and counts it once: a
/// vault's protected and protectable items (the inventory of the listing, a partial
/// listing) and its job list (the poll of the discovered vault, down as `upstream_error`).
/// Three refusals, three `upstream_error`s; nothing reaches the other origin, and no link's
/// query is logged.
#[tokio::test]
async fn next_links_of_item_and_job_lists_to_another_origin_are_refused_and_counted() {
    let elsewhere = Hostile::start(|_| answer("200 OK", &[], r#"{"value":[]}"#));
    let away = elsewhere.url();
    let upstream = Hostile::start(move |seen| {
        let path = seen.path.as_str();
        let next = |list: &str| {
            format!(
                r#"{{"value":[],"nextLink":"{away}/subscriptions/{LIVE_SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1/{list}?api-version=2025-08-01&$skipToken=2&{LINK_SECRET}"}}"#
            )
        };
        if path.starts_with("/metadata/identity/oauth2/token") {
            answer(
                "200 OK",
                &[],
                r#"{"access_token":"hostile-token","expires_in":"3600"}"#,
            )
        } else if path.contains("/providers/Microsoft.RecoveryServices/vaults?") {
            answer("200 OK", &[], &vaults_page(&["v1".to_owned()], None))
        } else if let Some(list) = [
            "backupProtectedItems",
            "backupProtectableItems",
            "backupJobs",
        ]
        .into_iter()
        .find(|l| path.contains(&format!("/vaults/v1/{l}?")))
        {
            answer("200 OK", &[], &next(list))
        } else {
            answer(
                "404 Not Found",
                &[],
                r#"{"error":{"code":"NotFound","message":"no"}}"#,
            )
        }
    });
    let exp = Exporter::start(&hostile_config(&upstream.url(), "1h", ""));
    let failing = "backup_target_failure_reason{system=\"azure\",upstream=\"azure\",kind=\"vault\",target=\"rg/v1\",reason=\"upstream_error\"}";
    exp.wait_metrics("the vault's poll failed", |m| {
        value(m, failing) == Some(1.0)
    })
    .await;
    wait_for(
        "the partial listing logged",
        Duration::from_secs(20),
        || async {
            let logs = exp.proc.stderr_text();
            logs.contains("inventory listing failing").then_some(())
        },
    )
    .await;
    // The poll and the inventory both ended before what they say was seen: every refusal
    // is counted by now.
    let m = exp.metrics().await;
    assert_eq!(
        value(&m, &outcome_series("upstream_error")),
        Some(3.0),
        "protected items, protectable items, jobs: each refusal once\n{m}"
    );
    let followed = |list: &str| {
        upstream
            .seen()
            .iter()
            .filter(|s| s.path.contains(&format!("/vaults/v1/{list}?")))
            .count()
    };
    for list in [
        "backupProtectedItems",
        "backupProtectableItems",
        "backupJobs",
    ] {
        assert_eq!(followed(list), 1, "{list}: the first page only");
    }
    assert!(
        elsewhere.seen().is_empty(),
        "nothing sent to the other origin"
    );
    let logs = exp.proc.stderr_text();
    assert!(
        logs.contains(&format!(
            "nextLink leaves the management endpoint ({})",
            elsewhere.url()
        )),
        "{logs}"
    );
    assert!(!logs.contains(LINK_SECRET), "{logs}");
    assert!(!logs.contains("skipToken"), "{logs}");
    assert!(!logs.contains("hostile-token"));
}

/// A vault list that never ends or repeats its `nextLink` is cut off as `too_large`
/// (counted, logged once) after a bounded number of pages, and nothing is discovered.
#[tokio::test]
async fn azure_vault_lists_that_page_forever_or_repeat_end_as_too_large() {
    for case in ["forever", "repeats"] {
        let base = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let origin = base.clone();
        let upstream = hostile(move |path| {
            let page: u64 = path
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("$skipToken="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let origin = origin.lock().unwrap().clone();
            let next = |n: u64| {
                format!("{origin}/subscriptions/{LIVE_SUB}/providers/Microsoft.RecoveryServices/vaults?api-version=2025-08-01&$skipToken={n}")
            };
            match case {
                // 100 new vaults on every page, and always another page.
                "forever" => {
                    let names: Vec<String> = (0..100).map(|i| format!("p{page}-{i}")).collect();
                    vaults_page(&names, Some(&next(page + 1)))
                }
                // The same page, pointing to itself.
                _ => vaults_page(&["same".to_owned()], Some(&next(7))),
            }
        });
        *base.lock().unwrap() = upstream.url();
        let exp = Exporter::start(&hostile_config(
            &upstream.url(),
            "1s",
            "    max_jobs_per_target: 250\n",
        ));
        let m = exp
            .wait_metrics(&format!("{case}: too_large counted twice"), |m| {
                value(m, &outcome_series("too_large")).unwrap_or(0.0) >= 2.0
            })
            .await;
        assert!(
            vault_targets(&m).is_empty(),
            "{case}: nothing discovered\n{m}"
        );
        let pages = upstream
            .seen()
            .iter()
            .filter(|s| s.path.contains("/vaults?"))
            .count();
        // forever: the third page passes the cap of 250; repeats: the second page repeats
        // its link. A few listings ran.
        let per_listing = if case == "forever" { 3 } else { 2 };
        assert!(pages <= per_listing * 5, "{case}: {pages} pages");
        let logs = exp.proc.stderr_text();
        let warnings = logs
            .lines()
            .filter(|l| l.contains("discovery listing failing"))
            .count();
        assert_eq!(warnings, 1, "{case}: logged once\n{logs}");
    }
}

#[tokio::test]
async fn azure_shards_split_the_vaults_and_one_exports_the_items() {
    let sim = sim(&[]);
    let yaml = config(&sim.url(), "10m", "");
    let shards = Exporter::start_shards(&yaml, 2, &ENV);
    let mut all = Vec::new();
    let mut inventories = 0;
    for exp in &shards {
        exp.wait_ready().await;
        let m = exp
            .wait_metrics("its vaults up", |m| {
                let mine = vault_targets(m);
                value(m, &discovered()) == Some(mine.len() as f64) && mine.iter().all(|v| up(m, v))
            })
            .await;
        all.extend(vault_targets(&m));
        if m.contains("backup_server_protected{") {
            inventories += 1;
            assert!(m.contains("backup_protected_item_protection_state{"));
        } else {
            assert!(!m.contains("backup_protected_item_"), "no items here");
        }
    }
    all.sort();
    let mut want: Vec<String> = VAULTS.iter().map(|v| v.to_string()).collect();
    want.sort();
    assert_eq!(all, want, "every vault on exactly one shard");
    assert_eq!(inventories, 1, "the items are exported by one shard");
}
