//! SCP `discover: true` against the real binaries: a config with only the keys and
//! `discover: true` monitors every backup the simulator lists (restores and backup runs,
//! each with its name) and exports the coverage of the account's servers; a failed listing
//! keeps the targets; a configured backup wins; a list of several pages is read whole.

use std::time::Duration;

use crate::common::{value, wait_for, Exporter, Sim};

const SCP_ACCESS: &str = "scp-access-7c1d";
const SCP_SECRET: &str = "scp-secret-e5a90b";
const ENV: [(&str, &str); 2] = [
    ("SCP_ACCESS_KEY", SCP_ACCESS),
    ("SCP_SECRET_KEY", SCP_SECRET),
];

/// The backups the simulator lists (id, name, server): the seed's and the live ones.
const BACKUPS: [(&str, &str, &str); 4] = [
    (
        "00cd2538fbf94d12b36aabbdd607e974",
        "backup-001",
        "server-001",
    ),
    ("5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c", "erp-db", "erp-db-01"),
    (
        "a3c9e1f27b4d4c8e9f0a1b2c3d4e5f60",
        "파일서버-복구",
        "파일서버-01",
    ),
    ("0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b", "web-static", "web-01"),
];
/// The account's servers no backup covers (two virtual, one bare-metal).
const UNPROTECTED: [&str; 3] = ["app-02", "batch-03", "bm-db-01"];

fn sim(extra: &[&str]) -> Sim {
    let keys = format!("{SCP_ACCESS}:{SCP_SECRET}");
    let mut args = vec!["--scp-keys", keys.as_str()];
    args.extend_from_slice(extra);
    Sim::start_with(&args)
}

/// An SCP upstream with only its keys and `discover: true`, listed every `every`.
fn config(sim: &Sim, every: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: scp\n    type: scp\n    url: {}\n    interval: 1s\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n    discover: true\n    discover_interval: {every}\n{extra}",
        sim.url()
    )
}

fn up(kind: &str, id: &str) -> String {
    format!("backup_target_up{{system=\"scp\",upstream=\"scp\",kind=\"{kind}\",target=\"{id}\"}}")
}

fn protected(server: &str) -> String {
    format!("backup_server_protected{{system=\"scp\",upstream=\"scp\",server=\"{server}\"}}")
}

fn discovered(kind: &str) -> String {
    format!("backup_discovery_targets{{system=\"scp\",upstream=\"scp\",kind=\"{kind}\"}}")
}

/// Whether a job `name` has a `backup_job_status` series of `operation`.
fn has_job(m: &str, operation: &str, name: &str) -> bool {
    let prefix = format!(
        "backup_job_status{{system=\"scp\",upstream=\"scp\",operation=\"{operation}\",job_name=\"{name}\","
    );
    m.lines().any(|l| l.starts_with(&prefix))
}

fn all_up(m: &str) -> bool {
    BACKUPS.iter().all(|(id, _, _)| {
        value(m, &up("backup", id)) == Some(1.0)
            && value(m, &up("backup_histories", id)) == Some(1.0)
    })
}

#[tokio::test]
async fn scp_discover_alone_monitors_every_backup_with_its_coverage() {
    let sim = sim(&[]);
    let exp = Exporter::start_with(&config(&sim, "10m", ""), &[], &ENV);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("every listed backup up with its series", |m| {
            all_up(m)
                && BACKUPS
                    .iter()
                    .all(|(_, name, _)| has_job(m, "restore", name) && has_job(m, "backup", name))
        })
        .await;
    assert_eq!(value(&m, &discovered("backup")), Some(4.0), "{m}");
    assert_eq!(value(&m, &discovered("backup_histories")), Some(4.0));
    for (_, _, server) in BACKUPS {
        assert_eq!(value(&m, &protected(server)), Some(1.0), "{server}");
    }
    for server in UNPROTECTED {
        assert_eq!(value(&m, &protected(server)), Some(0.0), "{server}");
    }
    let coverage = m
        .lines()
        .filter(|l| l.starts_with("backup_server_protected{system=\"scp\""))
        .count();
    assert_eq!(coverage, 7, "every server of the three categories once");
    // One request per category for the servers.
    assert!(sim.requests("backup_targets", "default").await >= 3);
    assert!(!exp.proc.stderr_text().contains(SCP_SECRET));
}

#[tokio::test]
async fn a_failed_scp_listing_keeps_the_targets_and_a_configured_backup_wins() {
    let sim = sim(&[]);
    // The erp backup is configured with a name of its own: it keeps it.
    let extra = "    backups: [{ id: 5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c, name: erp-configured }]\n";
    let exp = Exporter::start_with(&config(&sim, "1s", extra), &[], &ENV);
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("every backup up", |m| {
            all_up(m) && has_job(m, "restore", "erp-configured") && has_job(m, "backup", "erp-db")
        })
        .await;
    assert_eq!(
        value(&m, &discovered("backup")),
        Some(3.0),
        "the configured one is not discovered again: {m}"
    );
    assert_eq!(value(&m, &discovered("backup_histories")), Some(4.0));
    assert!(
        !has_job(&m, "restore", "erp-db"),
        "the configured name wins"
    );

    // The list fails: counted, and every target stays.
    sim.fault("backup_list", "default", "error500").await;
    let failing =
        "backup_upstream_requests_total{outcome=\"http_5xx\",system=\"scp\",upstream=\"scp\"}";
    let listed = sim.requests("backup_list", "default").await;
    wait_for("two failed listings", Duration::from_secs(20), || async {
        (sim.requests("backup_list", "default").await >= listed + 2).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert!(
        value(&m, failing).unwrap_or(0.0) >= 1.0,
        "failed listings counted: {m}"
    );
    assert!(all_up(&m), "targets kept: {m}");
    assert_eq!(value(&m, &discovered("backup")), Some(3.0));
    assert_eq!(value(&m, &protected("app-02")), Some(0.0), "coverage kept");
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
}

#[tokio::test]
async fn an_scp_list_of_several_pages_is_read_whole() {
    // 150 fleet backups beside the 4: two pages of the backup list.
    let sim = sim(&["--scp-fleet", "150"]);
    let exp = Exporter::start_with(
        &config(&sim, "10m", "").replace("interval: 1s", "interval: 60s"),
        &[],
        &ENV,
    );
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("154 backups discovered", |m| {
            value(m, &discovered("backup")) == Some(154.0)
        })
        .await;
    assert_eq!(value(&m, &discovered("backup_histories")), Some(154.0));
    assert_eq!(value(&m, &protected("fleet-00150")), Some(1.0), "{m}");
    assert_eq!(value(&m, &protected("fleet-idle-00002")), Some(0.0));
    assert!(sim.requests("backup_list_next", "default").await >= 1);
}

/// One full page (100 backups) of `GET /v1/backups` named `{prefix}-{i}`, a count that
/// says many more follow.
fn full_page(prefix: &str) -> String {
    let contents: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!({ "id": format!("{prefix}-{i}"), "name": "b", "server_name": "s" }))
        .collect();
    serde_json::json!({ "contents": contents, "count": 1_000_000 }).to_string()
}

/// A backup list that never ends or repeats its page is cut off as `too_large` (counted,
/// logged once) after a bounded number of pages, and nothing is discovered.
#[tokio::test]
async fn scp_lists_that_page_forever_or_repeat_end_as_too_large() {
    use crate::common::hostile::{answer, Hostile};
    for case in ["forever", "repeats"] {
        let upstream = Hostile::start(move |seen| {
            if !seen.path.starts_with("/v1/backups?") {
                return answer("404 Not Found", &[], r#"{"code":"404"}"#);
            }
            let page = seen
                .path
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("page="))
                .unwrap_or("0")
                .to_owned();
            let body = match case {
                "forever" => full_page(&format!("p{page}")),
                _ => full_page("same"),
            };
            answer("200 OK", &[], &body)
        });
        let yaml = format!(
            "upstreams:\n  - name: scp\n    type: scp\n    url: {}\n    interval: 1s\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n    max_jobs_per_target: 250\n    discover: true\n    discover_interval: 1s\n",
            upstream.url()
        );
        let exp = Exporter::start_with(&yaml, &[], &ENV);
        let too_large =
            "backup_upstream_requests_total{outcome=\"too_large\",system=\"scp\",upstream=\"scp\"}";
        let m = exp
            .wait_metrics(&format!("{case}: too_large counted twice"), |m| {
                value(m, too_large).unwrap_or(0.0) >= 2.0
            })
            .await;
        assert!(
            !m.lines().any(|l| l.starts_with("backup_target_up{")),
            "{case}: nothing discovered\n{m}"
        );
        let pages = upstream
            .seen()
            .iter()
            .filter(|s| s.path.starts_with("/v1/backups?"))
            .count();
        // forever: the third page passes the cap of 250; repeats: the second brings nothing
        // new. A few listings ran.
        let per_listing = if case == "forever" { 3 } else { 2 };
        assert!(pages <= per_listing * 5, "{case}: {pages} pages");
        let logs = exp.proc.stderr_text();
        let warnings = logs
            .lines()
            .filter(|l| l.contains("discovery listing failing"))
            .count();
        assert_eq!(warnings, 1, "{case}: logged once\n{logs}");
        assert!(!logs.contains(SCP_SECRET));
    }
}

/// A failing backup-target list keeps the coverage it gave last and the discovered targets;
/// it is logged as an inventory fault.
#[tokio::test]
async fn a_failed_scp_server_list_keeps_the_coverage() {
    let sim = sim(&[]);
    let exp = Exporter::start_with(&config(&sim, "1s", ""), &[], &ENV);
    exp.wait_ready().await;
    exp.wait_metrics("the coverage", |m| {
        value(m, &protected("bm-db-01")) == Some(0.0) && all_up(m)
    })
    .await;
    sim.fault("backup_targets", "default", "error500").await;
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
    assert_eq!(value(&m, &protected("bm-db-01")), Some(0.0), "kept: {m}");
    assert_eq!(value(&m, &protected("web-01")), Some(1.0));
    assert_eq!(value(&m, &discovered("backup")), Some(4.0));
    assert!(all_up(&m));
}

/// The SCP targets (`kind/id`) whose `backup_target_up` this replica exports.
fn scp_targets(m: &str) -> Vec<String> {
    let prefix = "backup_target_up{system=\"scp\",upstream=\"scp\",kind=\"";
    let mut ids: Vec<String> = m
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (kind, rest) = rest.split_once("\",target=\"")?;
            let (id, value) = rest.split_once("\"} ")?;
            (value == "1").then(|| format!("{kind}/{id}"))
        })
        .collect();
    ids.sort();
    ids
}

/// Two shards split the listed backups' targets (each kind and id polled on exactly one
/// shard, up there) and one of them exports the coverage.
#[tokio::test]
async fn scp_shards_split_the_backups_and_one_exports_the_coverage() {
    let sim = sim(&[]);
    let yaml = config(&sim, "10m", "");
    let shards = Exporter::start_shards(&yaml, 2, &ENV);
    let mut all = Vec::new();
    let mut coverage = 0;
    for exp in &shards {
        exp.wait_ready().await;
        let m = exp
            .wait_metrics("its targets up", |m| {
                let counted = value(m, &discovered("backup")).unwrap_or(0.0)
                    + value(m, &discovered("backup_histories")).unwrap_or(0.0);
                counted == scp_targets(m).len() as f64
            })
            .await;
        all.extend(scp_targets(&m));
        if m.contains("backup_server_protected{system=\"scp\"") {
            coverage += 1;
        }
    }
    all.sort();
    let mut want: Vec<String> = BACKUPS
        .iter()
        .flat_map(|(id, _, _)| [format!("backup/{id}"), format!("backup_histories/{id}")])
        .collect();
    want.sort();
    assert_eq!(all, want, "every target on exactly one shard, up");
    assert_eq!(coverage, 1, "the coverage is exported by one shard");
}
