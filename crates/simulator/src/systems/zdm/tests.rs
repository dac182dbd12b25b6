//! The ZDM endpoints over real sockets: the seed examples, auth and login, faults, the
//! live scenario and the generated fleet, and the admin API as seen through them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::demo::targets as demo_targets;
use super::scenario::{self, JobDef, Phase};
use super::seed;
use crate::http::percent_decode;
use crate::options::SimOptions;
use crate::testing::{enc, run, seed_sample_json, start};

const V1: &str = "/api/v1";
const LEGACY: &str = "/api";

fn system(prefix: &str, id: &str) -> String {
    format!("{prefix}/backups/monitoring/system/{}", enc(id))
}

fn backup_job(prefix: &str, id: &str) -> String {
    format!("{prefix}/backups/monitoring/job/{}", enc(id))
}

fn recovery_job(prefix: &str, id: &str) -> String {
    format!("{prefix}/recoveries/monitoring/job/{}", enc(id))
}

#[test]
fn seed_examples_are_served_verbatim_under_both_prefixes() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let server_01 = seed_sample_json("zdm-system-server-01.json");
        let daily_backup = seed_sample_json("zdm-backup-job-daily-backup.json");
        let daily_backup_win = seed_sample_json("zdm-backup-job-daily-backup-win.json");
        let incomplete = seed_sample_json("zdm-backup-job-incomplete.json");
        let daily_recovery = seed_sample_json("zdm-recovery-job-daily-recovery.json");
        for prefix in [V1, LEGACY] {
            let cases = [
                (
                    system(prefix, "server-01"),
                    200,
                    &server_01,
                    seed::SERVER_01,
                ),
                (
                    backup_job(prefix, "daily-backup"),
                    200,
                    &daily_backup,
                    seed::DAILY_BACKUP,
                ),
                (
                    backup_job(prefix, "daily-backup-win"),
                    200,
                    &daily_backup_win,
                    seed::DAILY_BACKUP_WIN,
                ),
                (
                    backup_job(prefix, "incomplete-job"),
                    400,
                    &incomplete,
                    seed::INCOMPLETE_JOB,
                ),
                (
                    recovery_job(prefix, "daily-recovery"),
                    200,
                    &daily_recovery,
                    seed::DAILY_RECOVERY,
                ),
            ];
            for (path, status, seed, text) in cases {
                let reply = sim.get(&path).await;
                assert_eq!(reply.status, status, "{path}");
                assert_eq!(&reply.json(), seed, "{path}");
                assert_eq!(
                    reply.body,
                    text.as_bytes(),
                    "{path} is the seed text byte for byte"
                );
                assert_eq!(
                    reply.header("content-type"),
                    Some("application/json; charset=utf-8")
                );
            }
        }
        sim.stop().await;
    });
}

#[test]
fn unknown_ids_answer_the_seeds_404_body() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let seed_404 = &seed_sample_json("zdm-backup-job-not-found.json");
        assert_eq!(
            seed_404,
            &serde_json::from_str::<Value>(seed::NOT_FOUND_DAILY_BACKUP).unwrap()
        );
        let cases = [
            (
                backup_job(V1, "no-such-job"),
                "Name이 'no-such-job'인 조건에 맞는 Backup 작업을 찾을 수 없습니다.",
            ),
            (
                system(V1, "no-such-server"),
                "Name이 'no-such-server'인 조건에 맞는 서버를 찾을 수 없습니다.",
            ),
            (
                recovery_job(V1, "없는-복구"),
                "Name이 '없는-복구'인 조건에 맞는 Recovery 작업을 찾을 수 없습니다.",
            ),
        ];
        for (path, message) in cases {
            let reply = sim.get(&path).await;
            assert_eq!(reply.status, 404, "{path}");
            let body = reply.json();
            let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
            let seed_keys: Vec<&String> = seed_404.as_object().unwrap().keys().collect();
            assert_eq!(keys, seed_keys);
            assert_eq!(body["success"], false);
            assert_eq!(body["error"], message);
        }
        // The seed's own example: a job named daily-backup that is not found.
        sim.fault("backup_job", "daily-backup", "not_found").await;
        let body = sim.get(&backup_job(LEGACY, "daily-backup")).await.json();
        assert_eq!(body["error"], seed_404["error"]);
        assert!(is_naive_time(body["timestamp"].as_str().unwrap()));
        sim.stop().await;
    });
}

#[test]
fn static_token_is_required_when_set() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.zdm.token = Some("s3cret".into());
        let sim = start(options).await;
        let path = system(V1, "server-01");
        let missing = sim.get(&path).await;
        assert_eq!(missing.status, 401);
        assert_eq!(missing.json()["success"], false);
        assert_eq!(missing.json()["error"], "Unauthorized");
        assert_eq!(sim.get_with_token(&path, "wrong").await.status, 401);
        let basic = sim
            .send("GET", &path, &[("Authorization", "Basic s3cret")], b"")
            .await;
        assert_eq!(basic.status, 401);
        assert_eq!(sim.get_with_token(&path, "s3cret").await.status, 200);
        let lower = sim
            .send("GET", &path, &[("authorization", "bearer s3cret")], b"")
            .await;
        assert_eq!(lower.status, 200);
        // Rejected requests are still counted.
        assert_eq!(
            sim.get("/_sim/stats").await.json()["system/server-01"],
            4 + 1
        );
        sim.stop().await;
    });
}

fn login_body(email: &str, password: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "email": email, "password": password })).unwrap()
}

#[test]
fn login_issues_a_token_that_works_on_every_login_path() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.zdm.login = Some(("ops@example.com".into(), "pw".into()));
        let sim = start(options).await;
        let json = [("Content-Type", "application/json")];
        let path = backup_job(LEGACY, "daily-backup");
        assert_eq!(sim.get(&path).await.status, 401, "login enables auth");

        let wrong = sim
            .send(
                "POST",
                "/api/auth/issue",
                &json,
                &login_body("ops@example.com", "nope"),
            )
            .await;
        assert_eq!(wrong.status, 404, "as ZDM answers a wrong password");
        assert_eq!(wrong.json()["success"], false);
        let garbage = sim
            .send("POST", "/api/auth/issue", &json, b"{not json")
            .await;
        assert_eq!(garbage.status, 400);
        let missing = sim
            .send("POST", "/api/auth/issue", &json, b"{\"email\":1}")
            .await;
        assert_eq!(missing.status, 400);
        assert_eq!(sim.get("/api/auth/issue").await.status, 405);

        for login_path in [
            "/api/auth/issue",
            "/api/token/issue",
            "/api/v1/auth/issue",
            "/api/v1/token/issue",
        ] {
            let issued = sim
                .send(
                    "POST",
                    login_path,
                    &json,
                    &login_body("ops@example.com", "pw"),
                )
                .await;
            assert_eq!(issued.status, 200, "{login_path}");
            let body = issued.json();
            assert_eq!(body["success"], true);
            let token = body["data"]["token"].as_str().expect("data.token");
            let expires = body["data"]["expiresAt"].as_str().expect("data.expiresAt");
            let expires = chrono::DateTime::parse_from_rfc3339(expires).expect("RFC 3339");
            let left = expires.timestamp() - chrono::Utc::now().timestamp();
            assert!((3590..=3601).contains(&left), "expires in {left}s");
            assert_eq!(sim.get_with_token(&path, token).await.status, 200);
        }
        assert_eq!(sim.get("/_sim/stats").await.json()["login"], 8);
        sim.stop().await;
    });
}

#[test]
fn issued_tokens_expire_after_their_lifetime() {
    run(async {
        let mut options = SimOptions {
            token_lifetime: Duration::from_secs(1),
            ..SimOptions::default()
        };
        options.systems.zdm.token = Some("static".into());
        options.systems.zdm.login = Some(("a@b.c".into(), "pw".into()));
        let sim = start(options).await;
        let issued = sim
            .send(
                "POST",
                "/api/v1/token/issue",
                &[],
                &login_body("a@b.c", "pw"),
            )
            .await
            .json();
        let token = issued["data"]["token"].as_str().unwrap().to_string();
        let path = recovery_job(V1, "daily-recovery");
        assert_eq!(sim.get_with_token(&path, &token).await.status, 200);
        // Refused once its second has passed (polled for, within the test's bound).
        while sim.get_with_token(&path, &token).await.status == 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(sim.get_with_token(&path, &token).await.status, 401);
        assert_eq!(sim.get_with_token(&path, "static").await.status, 200);
        sim.stop().await;
    });
}

#[test]
fn without_login_configured_every_login_is_refused() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let reply = sim
            .send("POST", "/api/auth/issue", &[], &login_body("a@b.c", "pw"))
            .await;
        assert_eq!(reply.status, 404);
        sim.stop().await;
    });
}

#[test]
fn error_faults_answer_their_status_and_only_for_their_target() {
    run(async {
        let sim = start(SimOptions::default()).await;
        sim.fault("system", "web-01", "not_found").await;
        let reply = sim.get(&system(V1, "web-01")).await;
        assert_eq!(reply.status, 404);
        assert_eq!(
            reply.json()["error"],
            "Name이 'web-01'인 조건에 맞는 서버를 찾을 수 없습니다."
        );
        assert_eq!(sim.get(&system(V1, "db-서버-02")).await.status, 200);
        assert_eq!(
            sim.get(&backup_job(V1, "web-01")).await.status,
            404,
            "other endpoint untouched"
        );

        sim.fault("backup_job", "daily-backup", "bad_request").await;
        let reply = sim.get(&backup_job(V1, "daily-backup")).await;
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json()["error"],
            seed_sample_json("zdm-backup-job-incomplete.json")["error"]
        );

        sim.fault("recovery_job", "daily-recovery", "error500")
            .await;
        for _ in 0..2 {
            let reply = sim.get(&recovery_job(V1, "daily-recovery")).await;
            assert_eq!(reply.status, 500);
            assert_eq!(reply.json()["success"], false);
        }

        sim.fault("system", "server-01", "unauthorized").await;
        assert_eq!(sim.get(&system(V1, "server-01")).await.status, 401);

        sim.fault("system", "server-01", "rate_limited:7").await;
        let reply = sim.get(&system(V1, "server-01")).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("7"));

        sim.fault("system", "server-01", "none").await;
        assert_eq!(sim.get(&system(V1, "server-01")).await.status, 200);
        sim.fault("recovery_job", "daily-recovery", "none").await;
        assert_eq!(
            sim.get(&recovery_job(V1, "daily-recovery")).await.status,
            200
        );
        sim.stop().await;
    });
}

#[test]
fn error500_once_fails_exactly_one_request() {
    run(async {
        let sim = start(SimOptions::default()).await;
        sim.fault("backup_job", "pgsql-백업", "error500_once").await;
        let path = backup_job(LEGACY, "pgsql-백업");
        assert_eq!(sim.get(&path).await.status, 500);
        assert_eq!(sim.get(&path).await.status, 200);
        assert_eq!(sim.get(&path).await.status, 200);
        sim.stop().await;
    });
}

/// How long the delay is is a test of `faults::action` on tokio's paused clock; here, that
/// the delayed answer is the normal one, and that only the faulted target waits: another is
/// answered while an hour-long delay is set (a wait would outlast the test's bound).
#[test]
fn slow_fault_delays_then_answers_normally() {
    run(async {
        let sim = start(SimOptions::default()).await;
        sim.fault("backup_job", "daily-backup", "slow:0.2").await;
        let reply = sim.get(&backup_job(LEGACY, "daily-backup")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, seed::DAILY_BACKUP.as_bytes());
        // Other targets are not slowed down.
        sim.fault("backup_job", "daily-backup", "slow:3600").await;
        let other = sim.get(&backup_job(LEGACY, "daily-backup-win")).await;
        assert_eq!(other.status, 200);
        sim.stop().await;
    });
}

#[test]
fn truncated_fault_sends_half_the_json_with_a_matching_content_length() {
    run(async {
        let sim = start(SimOptions::default()).await;
        sim.fault("recovery_job", "daily-recovery", "truncated")
            .await;
        // parse_reply asserts Content-Length equals the bytes received.
        let reply = sim.get(&recovery_job(V1, "daily-recovery")).await;
        assert_eq!(reply.status, 200);
        let full = seed::DAILY_RECOVERY.as_bytes();
        assert_eq!(reply.body, &full[..full.len() / 2]);
        assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
        sim.stop().await;
    });
}

#[test]
fn oversized_fault_streams_about_20_mib_of_valid_json() {
    run(async {
        let sim = start(SimOptions::default()).await;
        for (endpoint, path) in [
            ("system", system(V1, "web-01")),
            ("backup_job", backup_job(LEGACY, "daily-backup")),
            ("recovery_job", recovery_job(V1, "db-복구")),
        ] {
            let id = percent_decode_last(&path);
            sim.fault(endpoint, &id, "oversized").await;
            let reply = sim.get(&path).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
            let mib = reply.body.len() as f64 / (1024.0 * 1024.0);
            assert!((19.5..21.0).contains(&mib), "{mib} MiB");
            let body = reply.json();
            assert_eq!(body["success"], true);
            let log = match endpoint {
                "system" => &body["data"]["job"][0]["log"],
                _ => &body["data"]["job"]["log"],
            };
            assert!(log.as_array().unwrap().len() > 100_000);
        }
        sim.stop().await;
    });
}

fn percent_decode_last(path: &str) -> String {
    percent_decode(path.rsplit('/').next().unwrap()).unwrap()
}

#[test]
fn connection_close_fault_drops_the_connection_without_an_answer() {
    run(async {
        let sim = start(SimOptions::default()).await;
        sim.fault("system", "server-01", "connection_close").await;
        let raw = sim.raw("GET", &system(V1, "server-01"), &[], b"").await;
        assert!(raw.is_empty(), "got {}", String::from_utf8_lossy(&raw));
        // The listener keeps serving.
        assert_eq!(sim.get(&system(V1, "web-01")).await.status, 200);
        sim.stop().await;
    });
}

#[test]
fn fault_admin_rejects_bad_input() {
    run(async {
        let sim = start(SimOptions::default()).await;
        for bad in [
            "",
            "explode",
            "slow:",
            "slow:abc",
            "slow:-1",
            "slow:1e300",
            "rate_limited:-2",
        ] {
            let reply = sim.put("/_sim/fault/system/web-01", bad).await;
            assert_eq!(reply.status, 400, "{bad:?}");
        }
        assert_eq!(sim.put("/_sim/fault/nope/web-01", "none").await.status, 404);
        assert_eq!(sim.put("/_sim/fault/system/%FF", "none").await.status, 400);
        assert_eq!(sim.get("/_sim/fault/system/web-01").await.status, 405);
        let reply = sim.put("/_sim/fault/system/web-01", " slow:3600s\n").await;
        assert_eq!(reply.json()["fault"], "slow:3600");
        let reply = sim
            .send("DELETE", "/_sim/fault/system/web-01", &[], b"")
            .await;
        assert_eq!(reply.status, 200);
        // Deleted: answered, where the hour-long delay would outlast the test's bound.
        assert_eq!(sim.get(&system(V1, "web-01")).await.status, 200);
        sim.stop().await;
    });
}

#[test]
fn pinned_fixtures_override_and_can_be_removed() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let pinned = r#"{"success":true,"data":{"system":{"name":"x"},"job":[]},"note":"exact"}"#;
        let admin = format!("/_sim/fixture/system/{}", enc("web-01"));
        assert_eq!(sim.put(&admin, pinned).await.status, 200);
        for prefix in [V1, LEGACY] {
            let reply = sim.get(&system(prefix, "web-01")).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, pinned.as_bytes());
        }
        let removed = sim.send("DELETE", &admin, &[], b"").await.json();
        assert_eq!(removed["removed"], true);
        assert_eq!(
            sim.get(&system(V1, "web-01")).await.json()["data"]["system"]["name"],
            "web-01"
        );

        // Unknown ids can be pinned too, and go back to 404.
        let admin = format!("/_sim/fixture/backup_job/{}", enc("새-작업"));
        assert_eq!(sim.put(&admin, "{\"a\":1}").await.status, 200);
        assert_eq!(
            sim.get(&backup_job(LEGACY, "새-작업")).await.json(),
            serde_json::json!({"a": 1})
        );
        sim.send("DELETE", &admin, &[], b"").await;
        assert_eq!(sim.get(&backup_job(LEGACY, "새-작업")).await.status, 404);

        // Bad JSON is refused unless asked for explicitly.
        assert_eq!(sim.put(&admin, "{broken").await.status, 400);
        assert_eq!(
            sim.put(&format!("{admin}?raw=1"), "{broken").await.status,
            200
        );
        assert_eq!(
            sim.get(&backup_job(LEGACY, "새-작업")).await.body,
            b"{broken"
        );
        sim.stop().await;
    });
}

#[test]
fn stats_count_requests_and_reset_clears_everything() {
    run(async {
        let sim = start(SimOptions::default()).await;
        for _ in 0..3 {
            sim.get(&system(V1, "db-서버-02")).await;
        }
        sim.get(&recovery_job(LEGACY, "daily-recovery")).await;
        sim.get(&backup_job(V1, "unknown")).await;
        sim.send("POST", "/api/auth/issue", &[], b"{}").await;
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(
            stats,
            serde_json::json!({
                "system/db-서버-02": 3,
                "recovery_job/daily-recovery": 1,
                "backup_job/unknown": 1,
                "login": 1,
            })
        );
        sim.fault("system", "web-01", "error500").await;
        sim.put("/_sim/fixture/system/zzz", "{}").await;
        assert_eq!(sim.send("POST", "/_sim/reset", &[], b"").await.status, 200);
        assert_eq!(
            sim.get("/_sim/stats").await.json(),
            serde_json::json!({ "login": 0 })
        );
        assert_eq!(sim.get(&system(V1, "web-01")).await.status, 200);
        assert_eq!(sim.get(&system(V1, "zzz")).await.status, 404);
        assert_eq!(sim.get("/_sim/reset").await.status, 405);
        sim.stop().await;
    });
}

fn is_rfc3339_z(s: &str) -> bool {
    s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

fn is_naive_time(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
}

fn is_hms(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks one `progressInfo` for internal consistency.
fn check_progress(p: &Value, time_ok: fn(&str) -> bool) {
    let field = |k: &str| p[k].as_str().unwrap_or_else(|| panic!("{k} in {p}"));
    let status = field("status");
    let (start, end, elapsed, percent) = (
        field("start"),
        field("end"),
        field("elapsed"),
        field("percent"),
    );
    match status {
        "pending" => {
            assert!(percent == "0%" || percent == "-", "{p}");
            assert_eq!((start, end, elapsed), ("-", "-", "-"), "{p}");
        }
        "run" => {
            assert!(time_ok(start) && end == "-" && is_hms(elapsed), "{p}");
        }
        "complete" | "fail" | "cancel" => {
            assert!(time_ok(start) && time_ok(end) && is_hms(elapsed), "{p}");
            if status == "complete" {
                assert_eq!(percent, "100%");
            }
        }
        other => panic!("unexpected status {other}"),
    }
    if percent != "-" {
        let n: u32 = percent.trim_end_matches('%').parse().expect("percent");
        assert!(n <= 100);
    }
    assert!(!field("message").is_empty());
}

#[test]
fn every_demo_target_answers_percent_encoded_with_consistent_data() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let targets = demo_targets();
        assert_eq!(
            targets.servers,
            ["web-01", "db-서버-02", "win-fs-01", "파일서버-03"]
        );
        for (prefix, time_ok) in [
            (V1, is_rfc3339_z as fn(&str) -> bool),
            (LEGACY, is_naive_time),
        ] {
            for server in &targets.servers {
                let reply = sim.get(&system(prefix, server)).await;
                assert_eq!(reply.status, 200, "{server}");
                let body = reply.json();
                assert!(time_ok(body["timestamp"].as_str().unwrap()));
                let data = &body["data"];
                assert_eq!(data["system"]["name"], server.as_str());
                let jobs = data["job"].as_array().unwrap();
                assert!((2..=4).contains(&jobs.len()));
                let s = &data["summary"];
                assert_eq!(s["total"], jobs.len());
                let counted: u64 = ["completed", "inProgress", "failed", "pending"]
                    .iter()
                    .map(|k| s[k].as_u64().unwrap())
                    .sum();
                assert!(counted <= jobs.len() as u64);
                assert!(s["overallProgress"].as_str().unwrap().ends_with('%'));
                for job in jobs {
                    assert!(
                        job["info"]["partition"].is_string() ^ job["info"]["drive"].is_string()
                    );
                    check_progress(&job["progressInfo"], time_ok);
                }
            }
            for id in &targets.backup_jobs {
                let body = sim.get(&backup_job(prefix, id)).await.json();
                assert_eq!(body["data"]["job"]["info"]["name"], id.as_str());
                check_progress(&body["data"]["job"]["progressInfo"], time_ok);
            }
            for id in &targets.recovery_jobs {
                let body = sim.get(&recovery_job(prefix, id)).await.json();
                let job = &body["data"]["job"];
                assert_eq!(job["info"]["name"], id.as_str());
                let details = job["details"].as_array().unwrap();
                let volumes: Vec<&str> = details
                    .iter()
                    .map(|d| d["partition"].as_str().unwrap())
                    .collect();
                assert_eq!(volumes, ["/", "/home"]);
                for d in details {
                    check_progress(&d["progressInfo"], time_ok);
                }
                assert!(body["data"]["system"]["source"]["name"].is_string());
                assert!(body["data"]["system"]["target"]["name"].is_string());
            }
        }
        // Windows drives and the job shared between a server and the standalone endpoint.
        let win = sim.get(&system(V1, "win-fs-01")).await.json();
        let drives: Vec<&str> = win["data"]["job"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["info"]["drive"].as_str().unwrap())
            .collect();
        assert_eq!(drives, ["C:", "D:"]);
        let shared = sim.get(&backup_job(V1, "pgsql-백업")).await.json();
        assert_eq!(shared["data"]["system"]["name"], "db-서버-02");
        let db = sim.get(&system(V1, "db-서버-02")).await.json();
        let in_server = db["data"]["job"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["info"]["name"] == "pgsql-백업")
            .unwrap()
            .clone();
        assert_eq!(in_server["info"], shared["data"]["job"]["info"]);
        sim.stop().await;
    });
}

#[test]
fn live_scenario_changes_over_time() {
    run(async {
        let cycle = Duration::from_millis(1500);
        let sim = start(SimOptions {
            cycle,
            ..SimOptions::default()
        })
        .await;
        type Seen = BTreeMap<String, BTreeSet<String>>;
        let (mut statuses, mut percents, mut elapsed) = (Seen::new(), Seen::new(), Seen::new());
        // Every job passes through pending, run and an outcome with moving numbers. Poll
        // until it has been seen, so a loaded machine only makes the test slower.
        let done = |statuses: &Seen, percents: &Seen, elapsed: &Seen| {
            statuses.len() == 11
                && statuses.values().all(|s| {
                    s.contains("pending")
                        && s.contains("run")
                        && s.iter()
                            .any(|x| ["complete", "fail", "cancel"].contains(&x.as_str()))
                })
                && percents.values().all(|p| p.len() >= 4)
                && elapsed.values().all(|e| e.len() >= 2)
        };
        let deadline = tokio::time::Instant::now() + cycle * 12;
        while !done(&statuses, &percents, &elapsed) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "live scenario did not move: {statuses:?} {percents:?}"
            );
            for server in demo_targets().servers {
                let body = sim.get(&system(V1, &server)).await.json();
                for job in body["data"]["job"].as_array().unwrap() {
                    let name = job["info"]["name"].as_str().unwrap().to_string();
                    let p = &job["progressInfo"];
                    let text = |k: &str| p[k].as_str().unwrap().to_string();
                    statuses
                        .entry(name.clone())
                        .or_default()
                        .insert(text("status"));
                    percents
                        .entry(name.clone())
                        .or_default()
                        .insert(text("percent"));
                    elapsed.entry(name).or_default().insert(text("elapsed"));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim.stop().await;
    });
}

/// Samples `def` over `cycles` cycles in 1 ms steps of a 1 s cycle.
fn timeline(def: &JobDef<'_>, cycles: i64) -> Vec<scenario::JobState> {
    let base = 1_750_000_000_000;
    (0..cycles * 1000)
        .map(|t| scenario::job_state(def, base + t, 1000))
        .collect()
}

#[test]
fn jobs_cycle_pending_running_outcome_with_rising_percent() {
    for server in scenario::SERVERS {
        for def in server.jobs {
            let states = timeline(def, 12);
            let mut runs_ended = 0;
            for pair in states.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                match (a.phase, b.phase) {
                    (x, y) if x == y => {
                        if x == Phase::Running {
                            assert!(b.percent >= a.percent, "{}: percent falls", def.name);
                            assert_eq!(a.start, b.start);
                        }
                    }
                    (Phase::Pending, Phase::Running) => {}
                    (Phase::Running, Phase::Complete | Phase::Failed | Phase::Cancelled) => {
                        runs_ended += 1
                    }
                    (Phase::Complete | Phase::Failed | Phase::Cancelled, Phase::Pending) => {}
                    (x, y) => panic!("{}: unexpected transition {x:?} -> {y:?}", def.name),
                }
            }
            assert!(runs_ended >= 11, "{}: {runs_ended} runs ended", def.name);
            let failed = states.iter().any(|s| s.phase == Phase::Failed);
            assert_eq!(
                failed,
                def.fail_every > 0,
                "{} fails iff configured",
                def.name
            );
            let cancelled = states.iter().any(|s| s.phase == Phase::Cancelled);
            assert_eq!(cancelled, def.cancel_every > 0, "{}", def.name);
        }
    }
}

#[test]
fn summary_counts_match_the_jobs() {
    let server = &scenario::SERVERS[3];
    for t in (0..3000).step_by(37) {
        let states: Vec<_> = server
            .jobs
            .iter()
            .map(|d| scenario::job_state(d, 1_750_000_000_000 + t, 1000))
            .collect();
        let s = scenario::summary(&states);
        assert_eq!(s.total, 4);
        let other = states
            .iter()
            .filter(|s| s.phase == Phase::Cancelled)
            .count() as u32;
        assert_eq!(
            s.completed + s.in_progress + s.failed + s.pending + other,
            4
        );
    }
}

#[test]
fn fleet_servers_and_jobs_are_generated_on_request() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.zdm.fleet = Some((3, 2));
        let sim = start(options).await;
        let body = sim.get(&system(V1, "fleet-00003")).await.json();
        let names: Vec<&str> = body["data"]["job"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["info"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fleet-00003-job-01", "fleet-00003-job-02"]);
        let job = sim
            .get(&backup_job(LEGACY, "fleet-00001-job-02"))
            .await
            .json();
        assert_eq!(job["data"]["system"]["name"], "fleet-00001");
        for missing in [
            "fleet-00004",
            "fleet-00000",
            "fleet-3",
            "fleet-000003",
            "fleet-x",
        ] {
            assert_eq!(sim.get(&system(V1, missing)).await.status, 404, "{missing}");
        }
        assert_eq!(
            sim.get(&backup_job(V1, "fleet-00001-job-03")).await.status,
            404
        );
        sim.stop().await;
        // Without the option there is no fleet.
        let sim = start(SimOptions::default()).await;
        assert_eq!(sim.get(&system(V1, "fleet-00001")).await.status, 404);
        sim.stop().await;
    });
}

#[test]
fn malformed_requests_get_4xx_and_never_break_the_server() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let cases = [
            ("GET", "/"),
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/api/v1/backups/monitoring/system/"),
            ("GET", "/api/v1/backups/monitoring/system/%"),
            ("GET", "/api/v1/backups/monitoring/system/%ZZ"),
            ("GET", "/api/v1/backups/monitoring/system/%FF%FE"),
            ("GET", "/api/v1/backups/monitoring/system/a/b"),
            ("GET", "/api/v2/backups/monitoring/system/web-01"),
            ("POST", "/api/v1/backups/monitoring/system/web-01"),
            ("DELETE", "/api/backups/monitoring/job/daily-backup"),
            ("GET", "/_sim"),
            ("GET", "/_sim/fault"),
            ("PUT", "/_sim/fixture/system"),
            ("GET", "//api//v1"),
        ];
        for (method, path) in cases {
            let reply = sim.send(method, path, &[], b"").await;
            assert!(
                (400..500).contains(&reply.status),
                "{method} {path}: {}",
                reply.status
            );
            reply.json();
        }
        // Garbage that is not HTTP at all.
        let mut stream = TcpStream::connect(sim.addr).await.unwrap();
        stream.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
        assert_eq!(sim.get(&system(V1, "web-01")).await.status, 200);
        // The query string is ignored, not part of the id.
        assert_eq!(
            sim.get(&format!("{}?mode=full&detail=true", system(V1, "web-01")))
                .await
                .status,
            200
        );
        sim.stop().await;
    });
}

/// `--zdm-version`: each release answers only on its prefix and login path, has the lists
/// its changelog introduced, and writes the vendor's status words from 1.0.3 on.
#[test]
fn each_release_speaks_its_profile() {
    run(async {
        for (release, prefix, login, lists) in [
            ("0.2.0", V1, "auth/issue", &["backups"][..]),
            ("1.0.3", LEGACY, "auth/issue", &["backups"][..]),
            ("1.1.0", LEGACY, "auth/issue", &["backups", "replications"][..]),
            ("1.2.0", LEGACY, "auth/issue", &["backups", "replications", "backups/histories", "recoveries/histories"][..]),
            ("1.3.1", LEGACY, "auth/issue", &["backups", "replications", "backups/histories", "os-replications"][..]),
            ("2.0.1", LEGACY, "token/issue", &["backups", "replications", "backups/histories", "os-replications"][..]),
        ] {
            let mut options = SimOptions::default();
            options.systems.zdm.zdm_version = Some(release.to_string());
            let sim = start(options).await;
            let other = if prefix == V1 { LEGACY } else { V1 };
            let server = scenario::SERVERS[0].name;
            assert_eq!(sim.get(&system(prefix, server)).await.status, 200, "{release}");
            let elsewhere = sim.get(&system(other, server)).await.status;
            assert_eq!(elsewhere, 404, "{release} on {other}");
            let other_login = if login == "auth/issue" { "token/issue" } else { "auth/issue" };
            let own = sim.send("POST", &format!("{prefix}/{login}"), &[], b"{}").await.status;
            assert_eq!(own, 400, "{release}: its login path refuses an empty body");
            let gone = sim.send("POST", &format!("{prefix}/{other_login}"), &[], b"{}").await.status;
            assert_eq!(gone, 404, "{release}: {other_login}");
            for list in ["backups", "replications", "backups/histories", "recoveries/histories", "os-replications"] {
                let want = if lists.contains(&list) || (list == "recoveries/histories" && lists.contains(&"backups/histories")) { 200 } else { 404 };
                let got = sim.get(&format!("{prefix}/{list}?page=1&limit=1")).await;
                assert_eq!(got.status, want, "{release}: {list}");
                if want == 200 {
                    let body: Value = serde_json::from_slice(&got.body).unwrap();
                    assert!(body["data"].is_array(), "{release}: {list}");
                    // The listings of 1.0.3 on name the fleet (`listing.rs`); 0.2.0's probe
                    // answer and the other lists are empty.
                    let listing = matches!(list, "backups" | "replications") && release != "0.2.0";
                    if listing {
                        assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{release}: {list} paged by 1");
                        assert_eq!(body["pagination"]["hasNextPage"], list == "backups", "{release}: {list}");
                    } else if !list.contains("histories") {
                        assert_eq!(body["data"], Value::Array(Vec::new()));
                    }
                }
            }
            let body: Value = serde_json::from_slice(&sim.get(&system(prefix, server)).await.body).unwrap();
            let words: BTreeSet<String> = body["data"]["job"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|j| j["progressInfo"]["status"].as_str().map(str::to_owned))
                .collect();
            let vendor = ["Scheduled", "Processing", "Complete", "Error", "Canceled"];
            let seed = ["pending", "run", "complete", "fail", "cancel"];
            let allowed: &[&str] = if release == "0.2.0" { &seed } else { &vendor };
            assert!(!words.is_empty() && words.iter().all(|w| allowed.contains(&w.as_str())), "{release}: {words:?}");
            sim.stop().await;
        }
    });
}

/// The recovery server endpoint answers a recovery's target server with its recoveries and
/// their summary; the replication endpoint a replication job with `progress` and `time`
/// (only from 1.1.0 with `--zdm-version`).
#[test]
fn recovery_servers_and_replication_jobs_are_served() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let target = scenario::RECOVERIES[0].target;
        let reply = sim
            .get(&format!("{LEGACY}/recoveries/monitoring/system/{}", enc(target)))
            .await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["data"]["system"]["target"]["name"], target);
        assert_eq!(body["data"]["summary"]["total"], 2);
        assert_eq!(body["data"]["job"]["details"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["message"], "Server recovery monitoring info");
        let job = recovery_job(LEGACY, scenario::RECOVERIES[0].name);
        assert!(sim.get(&job).await.json()["data"].get("summary").is_none());

        let name = scenario::REPLICATIONS[0].job.name;
        let path = format!("{LEGACY}/replications/monitoring/job/{}", enc(name));
        let body = sim.get(&path).await.json();
        assert_eq!(body["data"]["system"]["name"], "center-01");
        assert_eq!(body["data"]["job"]["info"]["name"], name);
        let status = body["data"]["job"]["progress"]["status"].as_str().unwrap_or("").to_owned();
        assert!(["scheduled", "running", "success", "error", "canceled"].contains(&status.as_str()), "{status}");
        assert!(body["data"]["job"]["time"]["elapsed"].is_string());
        let missing = format!("{LEGACY}/replications/monitoring/job/nope");
        assert_eq!(sim.get(&missing).await.status, 404);
        sim.stop().await;

        let mut options = SimOptions::default();
        options.systems.zdm.zdm_version = Some("1.0.3".to_string());
        let sim = start(options).await;
        assert_eq!(sim.get(&path).await.status, 404, "no replication before 1.1.0");
        sim.stop().await;
    });
}

/// The histories (1.2.0 on) list the scenario's finished runs newest first, each once with
/// its own id, paged like ZDM's (`pagination` beside `data` when `page`/`limit` are sent).
#[test]
fn histories_list_the_finished_runs_newest_first() {
    run(async {
        let mut options = SimOptions {
            cycle: Duration::from_secs(4),
            ..SimOptions::default()
        };
        options.systems.zdm.zdm_version = Some("1.2.0".to_string());
        let sim = start(options).await;
        let all = sim.get(&format!("{LEGACY}/backups/histories?page=1&limit=1000")).await.json();
        let entries = all["data"].as_array().cloned().unwrap_or_default();
        assert!(!entries.is_empty(), "{all}");
        let ends: Vec<String> = entries.iter().map(|e| e["time"]["end"].as_str().unwrap_or("").to_owned()).collect();
        let mut sorted = ends.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(ends, sorted, "newest first");
        let ids: BTreeSet<String> = entries.iter().map(|e| e["id"].to_string()).collect();
        assert_eq!(ids.len(), entries.len(), "one id per run");
        for e in &entries {
            assert!(["COMPLETE", "FAIL"].contains(&e["result"]["status"].as_str().unwrap_or("")), "{e}");
            assert!(e["job"]["drive"].is_string() && e["system"]["name"].is_string(), "{e}");
        }
        assert_eq!(all["pagination"]["totalItems"], entries.len());
        let page = sim.get(&format!("{LEGACY}/backups/histories?page=1&limit=1")).await.json();
        assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(page["pagination"]["hasNextPage"], entries.len() > 1);
        let plain = sim.get(&format!("{LEGACY}/recoveries/histories")).await.json();
        assert!(plain.get("pagination").is_none());
        for e in plain["data"].as_array().into_iter().flatten() {
            assert_eq!(e["job"]["recoverySystemName"], "db-dr-02");
        }
        sim.stop().await;
    });
}

/// Over sockets, the histories filter as asked (every entry listed for a filter matches
/// it; the pure filtering is tested in `history.rs`), list the generated fleet's runs,
/// answer an unknown `result` or `sort` with the documented 400, and count their requests in
/// the stats.
#[test]
fn histories_filter_over_sockets_and_are_counted() {
    run(async {
        let mut options = SimOptions {
            cycle: Duration::from_secs(2),
            ..SimOptions::default()
        };
        options.systems.zdm.zdm_version = Some("2.0.1".to_string());
        options.systems.zdm.fleet = Some((3, 2));
        let sim = start(options).await;
        let list = |query: &str| {
            let path = format!("{LEGACY}/backups/histories?page=1&limit=1000&{query}");
            let sim = &sim;
            async move {
                let reply = sim.get(&path).await;
                assert_eq!(reply.status, 200, "{path}");
                reply.json()["data"].as_array().cloned().unwrap_or_default()
            }
        };
        let field = |e: &Value, a: &str, b: &str| e[a][b].as_str().unwrap_or("").to_owned();
        let all = list("").await;
        assert!(all.iter().any(|e| field(e, "job", "name") == "fleet-00002-job-01"), "the fleet's runs too");
        for e in &list(&format!("server={}&result=failed", enc("fleet-00001"))).await {
            assert_eq!((field(e, "system", "name").as_str(), field(e, "result", "status").as_str()), ("fleet-00001", "FAIL"));
        }
        for e in list(&format!("jobName={}&partition=/home", enc("fleet-00003-job-02"))).await {
            assert_eq!((field(&e, "job", "name").as_str(), field(&e, "job", "drive").as_str()), ("fleet-00003-job-02", "/home"));
        }
        let p1 = sim.get(&format!("{LEGACY}/backups/histories?page=1&limit=2")).await.json();
        assert_eq!(p1["data"].as_array().map(Vec::len), Some(2));
        assert_eq!(p1["pagination"]["hasNextPage"], true);
        let recoveries = |query: String| {
            let path = format!("{LEGACY}/recoveries/histories?{query}");
            let sim = &sim;
            async move { sim.get(&path).await.json()["data"].as_array().cloned().unwrap_or_default() }
        };
        for e in recoveries(format!("server={}&serverType=source", enc("db-서버-02"))).await {
            assert_eq!(field(&e, "system", "name"), "db-서버-02");
        }
        assert!(recoveries(format!("server={}&serverType=source", enc("db-dr-02"))).await.is_empty());
        let bad = sim.get(&format!("{LEGACY}/backups/histories?result=unknown")).await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.json()["error"], "Invalid enum value. Expected 'success' | 'failed', received 'unknown'");
        assert_eq!(sim.get(&format!("{LEGACY}/backups/histories?sort=up")).await.status, 400);
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats["backups/histories"], 6, "{stats}");
        assert_eq!(stats["recoveries/histories"], 2, "{stats}");
        sim.stop().await;
    });
}
