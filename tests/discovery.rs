//! `discover: true` against the real binaries: a config with only credentials and
//! `discover: true` monitors the simulator's ZDM fleet completely (every job, coverage,
//! agents, repositories, licences); a server that leaves the listing loses its series; a
//! failed listing keeps the targets; shards split the discovered targets and one exports the
//! inventory; a reload keeps the discovered set without logging in again.

use std::time::Duration;

use crate::common::{
    client, outcome_series, target_up, value, wait_for, Exporter, Sim, EMAIL, PASSWORD,
};

/// The servers the simulator's `/backups` lists (its scenario's and the standalone job's).
const SERVERS: [&str; 5] = ["web-01", "db-서버-02", "win-fs-01", "파일서버-03", "app-01"];
const LICENSE_KEYS: [&str; 2] = ["ZDMB-7Q4K-2N8F-XW3P", "ZDMR-4H6J-9T2L-QP5C"];

fn sim() -> Sim {
    Sim::start_with(&[
        "--login",
        &format!("{EMAIL}:{PASSWORD}"),
        "--zdm-version",
        "2.0.1",
    ])
}

/// A ZDM upstream with login and `discover: true`, listed every `every`.
fn config(sim: &Sim, every: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    timezone: Asia/Seoul\n    interval: 1s\n    login: {{ email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}\n    discover: true\n    discover_interval: {every}\n{extra}",
        sim.url()
    )
}

fn protected(server: &str) -> String {
    format!("backup_server_protected{{system=\"zdm\",upstream=\"zdm\",server=\"{server}\"}}")
}

fn discovered(kind: &str) -> String {
    format!("backup_discovery_targets{{system=\"zdm\",upstream=\"zdm\",kind=\"{kind}\"}}")
}

fn server_targets(m: &str) -> Vec<String> {
    let prefix = "backup_target_up{system=\"zdm\",upstream=\"zdm\",kind=\"server\",target=\"";
    m.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn discover_alone_monitors_the_whole_fleet_with_its_coverage_and_capacity() {
    let sim = sim();
    let exp = Exporter::start(&config(&sim, "10m", ""));
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("every discovered target up", |m| {
            SERVERS
                .iter()
                .all(|s| value(m, &target_up("zdm", "server", s)) == Some(1.0))
                && value(m, &target_up("zdm", "recovery_job", "db-복구")) == Some(1.0)
                && value(m, &target_up("zdm", "replication_job", "db-복제")) == Some(1.0)
        })
        .await;
    assert_eq!(value(&m, &discovered("server")), Some(5.0), "{m}");
    assert_eq!(value(&m, &discovered("recovery_job")), Some(1.0));
    assert_eq!(value(&m, &discovered("replication_job")), Some(1.0));
    // Every job has its series: the standalone job through its server, the pgsql job (a
    // server's and standalone) once.
    for job in [
        "web-root-daily",
        "app-config-백업",
        "공유폴더-백업",
        "archive-weekly",
    ] {
        assert!(
            m.lines().any(|l| l.starts_with("backup_job_status{")
                && l.contains(&format!("job_name=\"{job}\""))),
            "{job} has no series"
        );
    }
    let pgsql_running = m
        .lines()
        .filter(|l| {
            l.starts_with("backup_job_status{")
                && l.contains("pgsql-백업")
                && l.contains("status=\"running\"")
        })
        .count();
    assert_eq!(pgsql_running, 1, "one series per job");
    // Coverage: the two servers without a backup job are 0, the recovery target is left out.
    for s in SERVERS {
        assert_eq!(value(&m, &protected(s)), Some(1.0), "{s}");
    }
    assert_eq!(value(&m, &protected("legacy-erp-01")), Some(0.0));
    assert_eq!(value(&m, &protected("test-vm-07")), Some(0.0));
    assert_eq!(value(&m, &protected("db-dr-02")), None);
    // Agents: win-fs-01's is disconnected; versions come with detail=true.
    let agent = |s: &str| {
        format!("backup_server_agent_connected{{system=\"zdm\",upstream=\"zdm\",server=\"{s}\"}}")
    };
    assert_eq!(value(&m, &agent("win-fs-01")), Some(0.0));
    assert_eq!(value(&m, &agent("web-01")), Some(1.0));
    assert!(m.contains(
        "backup_server_agent_info{system=\"zdm\",upstream=\"zdm\",server=\"web-01\",version=\"3.2.1\"} 1"
    ));
    // Repositories and licences.
    let repo = |family: &str| {
        format!("{family}{{system=\"zdm\",upstream=\"zdm\",center=\"Main-Center\",repository=\"1\",type=\"NFS\"}}")
    };
    assert_eq!(
        value(&m, &repo("backup_repository_size_bytes")),
        Some(1_099_511_627_776.0)
    );
    assert_eq!(
        value(&m, &repo("backup_repository_used_bytes")),
        Some(549_755_813_888.0)
    );
    assert_eq!(
        value(&m, &repo("backup_repository_free_bytes")),
        Some(549_755_813_888.0)
    );
    let copies = |state: &str| {
        format!("backup_license_copies{{system=\"zdm\",upstream=\"zdm\",license=\"ZDM Recovery Standard\",state=\"{state}\"}}")
    };
    assert_eq!(value(&m, &copies("total")), Some(10.0));
    assert_eq!(value(&m, &copies("used")), Some(10.0));
    let expiry = value(
        &m,
        "backup_license_expiry_time_seconds{system=\"zdm\",upstream=\"zdm\",license=\"ZDM Recovery Standard\"}",
    )
    .expect("expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let days = (expiry - now) / 86_400.0;
    assert!((18.0..=21.0).contains(&days), "expires in {days} days");
    // Never a licence key, in the exposition or the logs.
    for key in LICENSE_KEYS {
        assert!(!m.contains(key), "{key} exported");
        assert!(!exp.proc.stderr_text().contains(key), "{key} logged");
    }
    // Each family once.
    assert_eq!(m.matches("# TYPE backup_server_protected gauge").count(), 1);
}

#[tokio::test]
async fn a_failed_listing_keeps_the_targets_and_one_that_leaves_loses_its_series() {
    let sim = sim();
    let exp = Exporter::start(&config(&sim, "1s", ""));
    exp.wait_ready().await;
    exp.wait_metrics("every server up", |m| {
        SERVERS
            .iter()
            .all(|s| value(m, &target_up("zdm", "server", s)) == Some(1.0))
    })
    .await;

    // The listing fails: counted, and the targets stay.
    sim.fault("listing", "backups", "error500").await;
    let failing = outcome_series("zdm", "http_5xx");
    let before = value(&exp.metrics().await, &failing).unwrap_or(0.0);
    let listed = sim.requests("listing", "backups").await;
    wait_for("two failed listings", Duration::from_secs(20), || async {
        (sim.requests("listing", "backups").await >= listed + 6).then_some(())
    })
    .await;
    let m = exp.metrics().await;
    assert!(
        value(&m, &failing).unwrap_or(0.0) > before,
        "failed listings counted"
    );
    for s in SERVERS {
        assert_eq!(
            value(&m, &target_up("zdm", "server", s)),
            Some(1.0),
            "{s} kept"
        );
    }
    assert_eq!(value(&m, &discovered("server")), Some(5.0));

    // The listing names web-01 only: the other servers and their jobs go at once.
    sim.fault("listing", "backups", "none").await;
    let only_web = serde_json::json!({
        "success": true,
        "requestID": "req-abc123",
        "data": [{
            "system": { "id": "1", "name": "web-01", "os": "Linux" },
            "job": { "info": { "id": "1", "name": "web-root-daily", "mode": "full", "partition": "/" } },
            "repository": { "id": "1", "type": "nfs", "path": "/backup/web-01" }
        }],
        "message": "Backup job list",
        "timestamp": "2025-01-15 10:30:00"
    });
    sim.fixture("listing", "backups", &only_web).await;
    let m = exp
        .wait_metrics("the other servers gone", |m| {
            // The targets go first, then the counts and the inventory of that listing.
            server_targets(m) == ["web-01"]
                && value(m, &discovered("server")) == Some(1.0)
                && value(m, &protected("파일서버-03")) == Some(0.0)
        })
        .await;
    assert!(
        !m.lines()
            .any(|l| l.starts_with("backup_job_") && l.contains("server=\"파일서버-03\"")),
        "its job series went too"
    );
    assert!(m
        .lines()
        .any(|l| l.starts_with("backup_job_status{") && l.contains("server=\"web-01\"")));
    assert_eq!(value(&m, &discovered("server")), Some(1.0));
    assert_eq!(
        value(&m, &protected("파일서버-03")),
        Some(0.0),
        "now unprotected"
    );
    assert_eq!(
        value(&m, &target_up("zdm", "recovery_job", "db-복구")),
        Some(1.0)
    );
}

/// The simulator with 100 generated servers beside its own five: enough for the listing
/// to hand its servers over before it ends (they start in batches of 64 or more).
fn fleet_sim() -> Sim {
    Sim::start_with(&[
        "--login",
        &format!("{EMAIL}:{PASSWORD}"),
        "--zdm-version",
        "2.0.1",
        "--fleet",
        "100x1",
    ])
}

/// The servers `/backups` names are polled while the rest is listed: with `/recoveries`
/// answering slowly, the fleet's servers are up before the listing ends (no counts yet,
/// not ready), and the listing then completes with every target.
#[tokio::test]
async fn servers_are_polled_while_the_rest_is_listed() {
    let sim = fleet_sim();
    sim.fault("listing", "recoveries", "slow:8").await;
    let exp = Exporter::start(&config(&sim, "10m", ""));
    let m = exp
        .wait_metrics("fleet servers up before the listing ends", |m| {
            server_targets(m).len() >= 64
                && value(m, &target_up("zdm", "server", "fleet-00001")) == Some(1.0)
        })
        .await;
    assert_eq!(
        value(&m, &discovered("server")),
        None,
        "the listing has not ended: no counts yet"
    );
    assert_eq!(sim.requests("listing", "recoveries").await, 1);
    assert_eq!(
        exp.get("/-/ready").await.0,
        503,
        "not ready before the listing ends"
    );
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("the listing's counts", |m| {
            value(m, &discovered("server")) == Some(105.0)
        })
        .await;
    assert_eq!(server_targets(&m).len(), 105);
    assert_eq!(
        value(&m, &target_up("zdm", "recovery_job", "db-복구")),
        Some(1.0)
    );
}

/// A listing that fails after it named servers keeps them polled (they exist), listing
/// after listing; the failures are counted.
#[tokio::test]
async fn a_listing_that_fails_midway_keeps_the_servers_it_named() {
    let sim = fleet_sim();
    sim.fault("listing", "recoveries", "error500").await;
    let exp = Exporter::start(&config(&sim, "1s", ""));
    exp.wait_ready().await;
    exp.wait_metrics("fleet servers up", |m| server_targets(m).len() >= 64)
        .await;
    let listed = sim.requests("listing", "recoveries").await;
    wait_for(
        "two more failed listings",
        Duration::from_secs(20),
        || async { (sim.requests("listing", "recoveries").await >= listed + 2).then_some(()) },
    )
    .await;
    let m = exp.metrics().await;
    assert!(
        server_targets(&m).len() >= 64,
        "kept: {}",
        server_targets(&m).len()
    );
    assert_eq!(
        value(&m, &target_up("zdm", "server", "fleet-00001")),
        Some(1.0)
    );
    assert!(value(&m, &outcome_series("zdm", "http_5xx")).unwrap_or(0.0) >= 2.0);
    assert_eq!(
        value(&m, &discovered("server")),
        None,
        "no listing completed"
    );
}

#[tokio::test]
async fn configured_targets_win_over_discovered_duplicates() {
    let sim = sim();
    let exp = Exporter::start(&config(
        &sim,
        "10m",
        "    servers:\n      - { id: web-01, limit: 2 }\n",
    ));
    exp.wait_ready().await;
    let m = exp
        .wait_metrics("every server up", |m| {
            SERVERS
                .iter()
                .all(|s| value(m, &target_up("zdm", "server", s)) == Some(1.0))
        })
        .await;
    assert_eq!(server_targets(&m).len(), 5, "web-01 once");
    assert_eq!(
        value(&m, &discovered("server")),
        Some(4.0),
        "web-01 is configured"
    );
    // The configured one polls with its own query (pages of 2).
    assert!(sim.requests("system", "web-01").await >= 2);
}

#[tokio::test]
async fn shards_split_the_discovered_targets_and_one_exports_the_inventory() {
    let sim = sim();
    let yaml = config(&sim, "10m", "");
    let shards = Exporter::start_shards(&yaml, 2, &[]);
    let mut all = Vec::new();
    let mut inventories = 0;
    let mut counted = 0.0;
    for exp in &shards {
        exp.wait_ready().await;
        let m = exp
            .wait_metrics("its servers up", |m| {
                let mine = server_targets(m);
                value(m, &discovered("server")) == Some(mine.len() as f64)
                    && mine
                        .iter()
                        .all(|s| value(m, &target_up("zdm", "server", s)) == Some(1.0))
            })
            .await;
        counted += value(&m, &discovered("server")).unwrap_or(0.0);
        all.extend(server_targets(&m));
        // The landing page's boxes: the owner lists the inventory, the other says who does.
        let (_, page) = exp.get("/").await;
        let elsewhere = "its inventory is exported by the replica of the shard that owns";
        if m.contains("backup_server_protected{") {
            inventories += 1;
            assert!(m.contains("backup_license_copies{"));
            assert!(
                page.contains("<li>legacy-erp-01</li><li>test-vm-07</li>"),
                "{page}"
            );
            assert!(page.contains("<td>zdm</td><td>ZDM Recovery Standard</td>"));
            assert!(!page.contains(elsewhere));
        } else {
            assert!(
                !m.contains("backup_repository_size_bytes{"),
                "no inventory here"
            );
            assert!(page.contains(elsewhere), "{page}");
            assert!(!page.contains("legacy-erp-01"));
            assert!(!page.contains("no upstream lists its servers"));
        }
    }
    all.sort();
    let mut want: Vec<String> = SERVERS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(all, want, "every server on exactly one shard");
    assert_eq!(counted, 5.0);
    assert_eq!(inventories, 1, "the inventory is exported by one shard");
}

#[tokio::test]
async fn a_reload_keeps_the_discovered_targets_without_logging_in_again() {
    let sim = sim();
    let exp = Exporter::start_with(&config(&sim, "10m", ""), &["--web.enable-lifecycle"], &[]);
    exp.wait_ready().await;
    exp.wait_metrics("every server up", |m| {
        SERVERS
            .iter()
            .all(|s| value(m, &target_up("zdm", "server", s)) == Some(1.0))
    })
    .await;
    let logins = sim.stats().await["login"].as_u64().unwrap_or(0);
    assert!(logins >= 1);
    let listed = sim.requests("listing", "backups").await;
    let resp = client().post(exp.url("/-/reload")).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    // Polls go on for a few intervals after the reload.
    let polls = sim.requests("system", "web-01").await;
    wait_for(
        "polls after the reload",
        Duration::from_secs(20),
        || async { (sim.requests("system", "web-01").await >= polls + 3).then_some(()) },
    )
    .await;
    let m = exp.metrics().await;
    assert_eq!(
        sim.stats().await["login"].as_u64().unwrap_or(0),
        logins,
        "no second login"
    );
    assert_eq!(
        sim.requests("listing", "backups").await,
        listed,
        "not listed again"
    );
    assert_eq!(server_targets(&m).len(), 5, "no duplicate series");
    assert_eq!(value(&m, &discovered("server")), Some(5.0));
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("backup_server_protected{"))
            .count(),
        7
    );
}

#[tokio::test]
async fn discover_with_once_prints_every_job() {
    let sim = sim();
    let yaml = config(&sim, "10m", "");
    let (code, out, err) =
        crate::common::once_with(&yaml, &[("SIM_EMAIL", EMAIL), ("SIM_PASSWORD", PASSWORD)]);
    assert_eq!(code, Some(0), "{err}");
    for s in SERVERS {
        assert_eq!(
            value(&out, &target_up("zdm", "server", s)),
            Some(1.0),
            "{s}\n{out}"
        );
    }
    assert_eq!(value(&out, &protected("test-vm-07")), Some(0.0));
}

/// A ZDM 2.0 upstream at `url` with a token and `discover: true` only.
fn hostile_config(url: &str, extra: &str) -> String {
    format!(
        "upstreams:\n  - name: zdm\n    type: zdm\n    url: {url}\n    api_version: \"2.0\"\n    token_env: SIM_TOKEN\n    interval: 1s\n    discover: true\n    discover_interval: 1s\n{extra}"
    )
}

/// The page number a listing request asks for.
fn page_of(path: &str) -> u64 {
    path.split(['?', '&'])
        .find_map(|p| p.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
}

/// A `/backups` page naming `names`; with `total`, its `totalPages` (the listing then asks
/// for the pages up to it a few at a time).
fn backups_page(names: &[String], more: bool, total: Option<u64>) -> String {
    let data: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({ "system": { "id": n, "name": n }, "job": { "info": { "id": n, "name": n } } }))
        .collect();
    let mut pagination = serde_json::json!({ "hasNextPage": more });
    if let Some(total) = total {
        pagination["totalPages"] = total.into();
    }
    serde_json::json!({ "success": true, "data": data, "pagination": pagination }).to_string()
}

/// Listings that never end, repeat a page, or name 100,000 servers are cut off as
/// `too_large` (counted, logged once), and the exporter polls nothing it did not bound.
#[tokio::test]
async fn listings_that_page_forever_repeat_or_are_huge_end_as_too_large() {
    use crate::common::hostile::{answer, Hostile};
    for (case, extra) in [
        ("forever", "    max_jobs_per_target: 50\n"),
        ("repeats", ""),
        ("huge", ""),
        // The same, with a `totalPages` of a million (pages asked four at a time).
        ("forever-total", "    max_jobs_per_target: 50\n"),
        ("repeats-total", ""),
    ] {
        // Built once: one page naming 100,000 servers.
        let huge = std::sync::Arc::new(if case == "huge" {
            let items: Vec<String> = (0..100_000)
                .map(|i| format!(r#"{{"system":{{"id":"{i}","name":"s{i}"}},"job":{{"info":{{"id":"{i}","name":"j{i}"}}}}}}"#))
                .collect();
            format!(
                r#"{{"success":true,"data":[{}],"pagination":{{"hasNextPage":false}}}}"#,
                items.join(",")
            )
        } else {
            String::new()
        });
        let upstream = Hostile::start(move |seen| {
            if !seen.path.starts_with("/api/backups?") {
                return answer(
                    "404 Not Found",
                    &[],
                    r#"{"success":false,"error":"Not Found"}"#,
                );
            }
            let page = page_of(&seen.path);
            let body = match case {
                // A new server on every page, and always another page.
                "forever" => backups_page(&[format!("s{page}")], true, None),
                "forever-total" => backups_page(&[format!("s{page}")], true, Some(1_000_000)),
                // The same page again and again.
                "repeats" => backups_page(&["same".to_owned()], true, None),
                "repeats-total" => backups_page(&["same".to_owned()], true, Some(1_000_000)),
                _ => huge.to_string(),
            };
            answer("200 OK", &[], &body)
        });
        let exp = Exporter::start(&hostile_config(&upstream.url(), extra));
        // Twice for the small pages (the second listing is not logged again); once for the
        // huge page, slow to build and read in a debug build.
        let listings = if case == "huge" { 1.0 } else { 2.0 };
        let m = exp
            .wait_metrics(&format!("{case}: too_large counted"), |m| {
                value(m, &outcome_series("zdm", "too_large")).unwrap_or(0.0) >= listings
            })
            .await;
        assert!(server_targets(&m).is_empty(), "{case}: nothing discovered");
        let pages = upstream
            .seen()
            .iter()
            .filter(|s| s.path.starts_with("/api/backups?"))
            .count();
        match case {
            // At most 51 pages per listing (the 51st item is past the cap), a few listings.
            "forever" => assert!(pages <= 51 * 4, "{case}: {pages} pages"),
            // The same, and at most the three pages asked ahead of the 51st.
            "forever-total" => assert!(pages <= 54 * 4, "{case}: {pages} pages"),
            // The second page brings nothing new: two pages per listing.
            "repeats" => assert!(pages <= 2 * 4, "{case}: {pages} pages"),
            "repeats-total" => assert!(pages <= 5 * 4, "{case}: {pages} pages"),
            _ => {}
        }
        let logs = exp.proc.stderr_text();
        let warnings = logs
            .lines()
            .filter(|l| l.contains("discovery listing failing"))
            .count();
        assert_eq!(warnings, 1, "{case}: logged once\n{logs}");
    }
}
