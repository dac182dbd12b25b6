//! SCP restore and backup histories: the seed, signature v2, paging, sorting, filters,
//! faults and the live histories.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::scenario;
use super::seed;
use crate::options::SimOptions;
use crate::testing::{enc, run, seed_sample, start, Reply, TestSim};

/// `(id, name)` of the live scenario's backups, the ones `--demo` monitors.
fn live_backups() -> Vec<(String, String)> {
    scenario::BACKUPS
        .iter()
        .map(|b| (b.id.to_string(), b.name.to_string()))
        .collect()
}

const SEED_ID: &str = "00cd2538fbf94d12b36aabbdd607e974";
const ACCESS: &str = "2sd2gg=2agbdSD26svcD";
const SECRET: &str = "s3cr3t-key/with+chars=";

fn histories(id: &str, query: &str) -> String {
    let path = format!("/v1/backups/{}/restore-histories", enc(id));
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// HMAC-SHA256 written out from RFC 2104, independent of the `hmac` crate the simulator uses.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn hand_written_hmac_matches_rfc_4231() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// How a test request is signed.
struct Signing<'a> {
    access: &'a str,
    secret: &'a str,
    timestamp: i64,
    account: Option<&'a str>,
    /// The path and query signed, if other than the one requested.
    signed_target: Option<&'a str>,
    /// `Scp-Api-Version`.
    version: &'a str,
}

impl Signing<'_> {
    fn good() -> Signing<'static> {
        Signing {
            access: ACCESS,
            secret: SECRET,
            timestamp: now_ms(),
            account: None,
            signed_target: None,
            version: "backup 1.2",
        }
    }
}

impl TestSim {
    async fn signed(&self, target: &str, signing: &Signing<'_>) -> Reply {
        let url = format!(
            "http://{}{}",
            self.addr,
            signing.signed_target.unwrap_or(target)
        );
        let timestamp = signing.timestamp.to_string();
        let message = format!(
            "GET{url}{timestamp}{}{}Openapi",
            signing.access,
            signing.account.unwrap_or("")
        );
        let signature = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(signing.secret.as_bytes(), message.as_bytes()));
        let mut headers = vec![
            ("Scp-Accesskey", signing.access),
            ("Scp-Signature", signature.as_str()),
            ("Scp-Timestamp", timestamp.as_str()),
            ("Scp-ClientType", "Openapi"),
            ("Scp-Api-Version", signing.version),
            ("Accept-Language", "ko-KR"),
        ];
        if let Some(account) = signing.account {
            headers.push(("Scp-AccountId", account));
        }
        self.send("GET", target, &headers, b"").await
    }
}

#[test]
fn seed_history_fixture_is_the_seed_text_and_is_served_verbatim() {
    let text = seed_sample("scp-restore-histories.json");
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    stream.next().expect("seed JSON").expect("seed JSON parses");
    let seed = &text[..stream.byte_offset()];
    assert_eq!(seed::RESTORE_HISTORIES, seed);
    run(async {
        let sim = start(SimOptions::default()).await;
        for query in [
            "",
            "page=0&size=20&sort=created_at:desc",
            "restore_state=COMPLETED",
        ] {
            let reply = sim.get(&histories(SEED_ID, query)).await;
            assert_eq!(reply.status, 200, "{query}");
            assert_eq!(reply.body, seed.as_bytes(), "{query}");
        }
        let none = sim.get(&histories(SEED_ID, "restore_state=FAILED")).await;
        assert_eq!(none.json(), json!({ "contents": [], "count": 0 }));
        let second_page = sim.get(&histories(SEED_ID, "page=1&size=1")).await.json();
        assert_eq!(second_page, json!({ "contents": [], "count": 1 }));
        let unknown = sim
            .get(&histories("ffffffffffffffffffffffffffffffff", ""))
            .await;
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.json()["code"], "NOT_FOUND");
        sim.stop().await;
    });
}

#[test]
fn signature_v2_is_verified() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.scp.keys = Some((ACCESS.into(), SECRET.into()));
        let sim = start(options).await;
        let target = histories(SEED_ID, "page=0&size=20&sort=created_at:desc");
        let good = sim.signed(&target, &Signing::good()).await;
        assert_eq!(good.status, 200);
        assert_eq!(good.body, seed::RESTORE_HISTORIES.as_bytes());
        let account = Signing {
            account: Some("6b1c0a9e"),
            ..Signing::good()
        };
        assert_eq!(sim.signed(&target, &account).await.status, 200);
        // Percent-encoded paths and queries are signed exactly as sent.
        let encoded = histories(
            SEED_ID,
            "start_time=2024-09-30T15%3A00%3A00Z&sort=created_at%3Adesc",
        );
        assert_eq!(sim.signed(&encoded, &Signing::good()).await.status, 200);
        let live = &live_backups()[1].0;
        assert_eq!(
            sim.signed(&histories(live, ""), &Signing::good())
                .await
                .status,
            200
        );
        // Signed right, but for a backup that does not exist.
        let missing = histories("0123456789abcdef0123456789abcdef", "");
        assert_eq!(sim.signed(&missing, &Signing::good()).await.status, 404);

        let stale = now_ms() - 6 * 60 * 1000;
        let future = now_ms() + 6 * 60 * 1000;
        let wrong_target = histories(SEED_ID, "page=1&size=20&sort=created_at:desc");
        let bad = [
            (
                "wrong secret",
                Signing {
                    secret: "nope",
                    ..Signing::good()
                },
            ),
            (
                "wrong access key",
                Signing {
                    access: "other",
                    ..Signing::good()
                },
            ),
            (
                "stale",
                Signing {
                    timestamp: stale,
                    ..Signing::good()
                },
            ),
            (
                "future",
                Signing {
                    timestamp: future,
                    ..Signing::good()
                },
            ),
            (
                "other query signed",
                Signing {
                    signed_target: Some(&wrong_target),
                    ..Signing::good()
                },
            ),
        ];
        for (case, signing) in &bad {
            let reply = sim.signed(&target, signing).await;
            assert_eq!(reply.status, 401, "{case}");
            let body = reply.json();
            assert_eq!(body["code"], "UNAUTHORIZED", "{case}");
            assert!(body["message"].is_string(), "{case}");
        }
        // Signed with an account id that is then not sent.
        let timestamp = now_ms().to_string();
        let url = format!("http://{}{target}", sim.addr);
        let message = format!("GET{url}{timestamp}{ACCESS}acct-1Openapi");
        let signature = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha256(SECRET.as_bytes(), message.as_bytes()));
        let all = [
            ("Scp-Accesskey", ACCESS),
            ("Scp-Signature", signature.as_str()),
            ("Scp-Timestamp", timestamp.as_str()),
            ("Scp-ClientType", "Openapi"),
            ("Scp-Api-Version", "backup 1.1"),
        ];
        let reply = sim.send("GET", &target, &all, b"").await;
        assert_eq!(reply.status, 401, "account id missing from the headers");
        let with_account: Vec<_> = all
            .iter()
            .copied()
            .chain([("Scp-AccountId", "acct-1")])
            .collect();
        assert_eq!(
            sim.send("GET", &target, &with_account, b"").await.status,
            200
        );
        // Each required header missing in turn, and a wrong client type.
        for skip in 0..all.len() {
            let headers: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, h)| *h)
                .collect();
            let mut headers = headers;
            headers.push(("Scp-AccountId", "acct-1"));
            let reply = sim.send("GET", &target, &headers, b"").await;
            assert!(
                [400, 401].contains(&reply.status),
                "without {}",
                all[skip].0
            );
            // Never tell the client what the signature should have been.
            assert!(!String::from_utf8_lossy(&reply.body).contains(&signature));
        }
        let mut headers = with_account.clone();
        headers[3] = ("Scp-ClientType", "Console");
        assert_eq!(sim.send("GET", &target, &headers, b"").await.status, 401);
        let mut headers = with_account.clone();
        headers[1] = ("Scp-Signature", "not base64 at all!");
        assert_eq!(sim.send("GET", &target, &headers, b"").await.status, 401);
        // Without the option, nothing is checked.
        let open = start(SimOptions::default()).await;
        assert_eq!(open.get(&target).await.status, 200);
        open.stop().await;
        sim.stop().await;
    });
}

fn entry(i: usize) -> Value {
    // created_at ascends with i; restore_start_time descends; backup_start_time cycles.
    let state = ["COMPLETED", "FAILED", "INPROGRESS"][i % 3];
    json!({
        "backup_id": "test",
        "backup_start_time": format!("2024-10-{:02}T01:00:00", 1 + (i * 7) % 28),
        "created_at": format!("2024-11-01T{:02}:{:02}:00Z", i / 60, i % 60),
        "created_by": "u",
        "modified_at": format!("2024-11-01T{:02}:{:02}:00Z", i / 60, i % 60),
        "modified_by": "u",
        "restore_end_time": if state == "INPROGRESS" { Value::Null } else { json!("2024-12-01T00:00:00") },
        "restore_server_id": format!("server-{i}"),
        "restore_server_name": format!("복구서버-{i}"),
        "restore_start_time": format!("2024-10-31T{:02}:{:02}:00", 23 - i / 60, 59 - i % 60),
        "restore_state": state,
        "schedule_name": "s",
    })
}

fn server_ids(body: &Value) -> Vec<String> {
    body["contents"]
        .as_array()
        .expect("contents")
        .iter()
        .map(|e| e["restore_server_id"].as_str().unwrap().to_string())
        .collect()
}

fn ids(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|i| format!("server-{i}")).collect()
}

#[test]
fn histories_are_filtered_sorted_and_paged_by_the_simulator() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let id = "test-backup";
        let entries: Vec<Value> = (0..45).map(entry).collect();
        let admin = format!("/_sim/scp/{id}/entries");
        let put = sim.put(&admin, &Value::from(entries).to_string()).await;
        assert_eq!(put.status, 200);
        assert_eq!(put.json()["entries"], 45);

        // Defaults: page 0, size 20, created_at descending.
        let first = sim.get(&histories(id, "")).await.json();
        assert_eq!(first["count"], 45);
        assert_eq!(server_ids(&first), ids((25..45).rev()));
        let third = sim.get(&histories(id, "page=2")).await.json();
        assert_eq!(server_ids(&third), ids((0..5).rev()));
        assert_eq!(third["count"], 45);
        let beyond = sim.get(&histories(id, "page=3&size=20")).await.json();
        assert_eq!(beyond, json!({ "contents": [], "count": 45 }));

        let asc = sim
            .get(&histories(id, "sort=created_at:asc&size=10&page=1"))
            .await
            .json();
        assert_eq!(server_ids(&asc), ids(10..20));
        let by_restore = sim
            .get(&histories(id, "sort=restore_start_time%3Aasc&size=3"))
            .await
            .json();
        assert_eq!(server_ids(&by_restore), ids([44, 43, 42].into_iter()));
        let by_backup = sim
            .get(&histories(id, "sort=backup_start_time:desc&size=45"))
            .await
            .json();
        let times: Vec<&str> = by_backup["contents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["backup_start_time"].as_str().unwrap())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted);

        let failed = sim
            .get(&histories(id, "restore_state=FAILED&size=100"))
            .await
            .json();
        assert_eq!(failed["count"], 15);
        assert!(failed["contents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["restore_state"] == "FAILED"));
        // restore_start_time of entry i is 23:59 - i minutes.
        let window = sim
            .get(&histories(
                id,
                "start_time=2024-10-31T23:50:00Z&end_time=2024-10-31T23:55:00Z&sort=created_at:asc",
            ))
            .await
            .json();
        assert_eq!(server_ids(&window), ids(4..10));
        let kst = sim
            .get(&histories(
                id,
                "start_time=2024-11-01T08%3A58%3A00%2B09%3A00",
            ))
            .await
            .json();
        assert_eq!(kst["count"], 2);
        let empty_params = sim
            .get(&histories(
                id,
                "page=&size=&sort=&restore_state=&start_time=&end_time=",
            ))
            .await
            .json();
        assert_eq!(server_ids(&empty_params), ids((25..45).rev()));

        for bad in [
            "page=-1",
            "page=x",
            "size=0",
            "size=1.5",
            "sort=nope:asc",
            "sort=created_at:up",
            "restore_state=DONE",
            "start_time=yesterday",
            "end_time=2024-13-01T00:00:00Z",
            "page=%ZZ",
        ] {
            let reply = sim.get(&histories(id, bad)).await;
            assert_eq!(reply.status, 400, "{bad}");
            assert_eq!(reply.json()["code"], "BAD_REQUEST", "{bad}");
        }

        // Replacing the seed's backup, then restoring it.
        let seed_admin = format!("/_sim/scp/{SEED_ID}/entries");
        sim.put(&seed_admin, "[]").await;
        assert_eq!(
            sim.get(&histories(SEED_ID, "")).await.json(),
            json!({ "contents": [], "count": 0 })
        );
        let removed = sim.send("DELETE", &seed_admin, &[], b"").await.json();
        assert_eq!(removed["removed"], true);
        assert_eq!(
            sim.get(&histories(SEED_ID, "")).await.body,
            seed::RESTORE_HISTORIES.as_bytes()
        );
        sim.send("DELETE", &admin, &[], b"").await;
        assert_eq!(sim.get(&histories(id, "")).await.status, 404);

        for bad in ["{}", "[1]", "not json", "[{}, 2]"] {
            assert_eq!(sim.put(&admin, bad).await.status, 400, "{bad}");
        }
        assert_eq!(sim.get(&admin).await.status, 405);
        sim.stop().await;
    });
}

#[test]
fn faults_and_stats_apply_per_backup() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let live = live_backups()[0].0.clone();
        for page in 0..3 {
            let reply = sim.get(&histories(&live, &format!("page={page}"))).await;
            assert_eq!(reply.status, 200);
        }
        sim.get(&histories(SEED_ID, "")).await;
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats[format!("backup/{live}")], 3);
        assert_eq!(stats[format!("backup/{SEED_ID}")], 1);

        sim.fault("backup", &live, "error500").await;
        let reply = sim.get(&histories(&live, "")).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.json()["code"], "INTERNAL_SERVER_ERROR");
        assert_eq!(sim.get(&histories(SEED_ID, "")).await.status, 200);

        sim.fault("backup", &live, "rate_limited:5").await;
        let reply = sim.get(&histories(&live, "")).await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("5"));
        reply.json();

        sim.fault("backup", &live, "not_found").await;
        assert_eq!(sim.get(&histories(&live, "")).await.status, 404);
        sim.fault("backup", &live, "unauthorized").await;
        assert_eq!(sim.get(&histories(&live, "")).await.status, 401);

        sim.fault("backup", SEED_ID, "truncated").await;
        let reply = sim.get(&histories(SEED_ID, "")).await;
        let seed = seed::RESTORE_HISTORIES.as_bytes();
        assert_eq!(reply.body, &seed[..seed.len() / 2]);

        sim.fault("backup", SEED_ID, "oversized").await;
        let reply = sim.get(&histories(SEED_ID, "")).await;
        assert!(reply.body.len() > 19 * 1024 * 1024);
        assert_eq!(reply.json()["count"], 0);

        sim.fault("backup", &live, "connection_close").await;
        assert!(sim
            .raw("GET", &histories(&live, ""), &[], b"")
            .await
            .is_empty());
        sim.fault("backup", &live, "none").await;
        assert_eq!(sim.get(&histories(&live, "")).await.status, 200);
        assert_eq!(
            sim.send("POST", &histories(&live, ""), &[], b"")
                .await
                .status,
            405
        );
        sim.stop().await;
    });
}

/// The fields of the seed's entry (serde_json keeps object keys sorted, as the seed does).
const SEED_KEYS: [&str; 12] = [
    "backup_id",
    "backup_start_time",
    "created_at",
    "created_by",
    "modified_at",
    "modified_by",
    "restore_end_time",
    "restore_server_id",
    "restore_server_name",
    "restore_start_time",
    "restore_state",
    "schedule_name",
];

#[test]
fn seed_entry_has_the_expected_fields() {
    let seed: Value = serde_json::from_str(seed::RESTORE_HISTORIES).unwrap();
    let keys: Vec<&str> = seed["contents"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, SEED_KEYS);
}

fn check_entry(entry: &Value, backup_id: &str) {
    let naive = |s: &Value| {
        chrono::NaiveDateTime::parse_from_str(s.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S").is_ok()
    };
    let zulu = |s: &Value| {
        let s = s.as_str().unwrap();
        s.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(s).is_ok()
    };
    let keys: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, SEED_KEYS);
    assert_eq!(entry["backup_id"], backup_id);
    assert!(
        naive(&entry["backup_start_time"]) && naive(&entry["restore_start_time"]),
        "{entry}"
    );
    assert!(
        zulu(&entry["created_at"]) && zulu(&entry["modified_at"]),
        "{entry}"
    );
    match entry["restore_state"].as_str().unwrap() {
        "INPROGRESS" => assert!(entry["restore_end_time"].is_null(), "{entry}"),
        "COMPLETED" | "FAILED" => {
            assert!(naive(&entry["restore_end_time"]), "{entry}");
            assert!(entry["restore_end_time"].as_str() >= entry["restore_start_time"].as_str());
        }
        other => panic!("unexpected restore_state {other}"),
    }
    assert!(entry["backup_start_time"].as_str() < entry["restore_start_time"].as_str());
    for key in [
        "restore_server_name",
        "restore_server_id",
        "schedule_name",
        "created_by",
    ] {
        assert!(!entry[key].as_str().unwrap().is_empty(), "{key}");
    }
}

#[test]
fn live_backups_have_long_histories_that_page() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let targets = live_backups();
        assert_eq!(targets.len(), 3);
        assert!(targets.iter().any(|(_, name)| name == "파일서버-복구"));
        let mut server_names = BTreeSet::new();
        for (id, _) in &targets {
            assert!(
                id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}"
            );
            let first = sim.get(&histories(id, "")).await.json();
            let count = first["count"].as_u64().unwrap();
            assert!(count >= 30, "{id}: {count} entries");
            let second = sim.get(&histories(id, "page=1")).await.json();
            assert_eq!(second["count"], count);
            let all: Vec<Value> = [&first, &second]
                .iter()
                .flat_map(|b| b["contents"].as_array().unwrap().clone())
                .collect();
            assert_eq!(all.len() as u64, count.min(40));
            let created: Vec<&str> = all
                .iter()
                .map(|e| e["created_at"].as_str().unwrap())
                .collect();
            let mut sorted = created.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(created, sorted, "{id}: newest first");
            for e in &all {
                check_entry(e, id);
                server_names.insert(e["restore_server_name"].as_str().unwrap().to_string());
            }
        }
        assert!(
            server_names.iter().any(|n| !n.is_ascii()),
            "{server_names:?}"
        );
        sim.stop().await;
    });
}

#[test]
fn live_histories_follow_the_cycle() {
    let cycle = 1000;
    let started = 1_750_000_000_000;
    for def in scenario::BACKUPS {
        let mut states = BTreeSet::new();
        let mut last_count = 0;
        for t in (0..20 * cycle).step_by(29) {
            let entries = scenario::entries(def, started + t, started, cycle);
            assert!(entries.len() >= last_count, "{}: history shrank", def.id);
            last_count = entries.len();
            // Only the newest entry can still be running.
            for e in &entries[..entries.len() - 1] {
                assert_ne!(e["restore_state"], "INPROGRESS", "{}", def.id);
            }
            for e in &entries {
                check_entry(e, def.id);
                states.insert(e["restore_state"].as_str().unwrap().to_string());
            }
        }
        assert!(last_count >= 32 + 19, "{}: {last_count}", def.id);
        assert!(
            states.contains("INPROGRESS") && states.contains("COMPLETED"),
            "{states:?}"
        );
        assert_eq!(
            states.contains("FAILED"),
            def.id != "0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b"
        );
        // Long after the start the history stays bounded.
        let later = scenario::entries(def, started + 10_000 * cycle, started, cycle);
        assert_eq!(later.len(), 200);
    }
}

#[test]
fn live_histories_change_over_time() {
    run(async {
        let cycle = Duration::from_millis(400);
        let sim = start(SimOptions {
            cycle,
            ..SimOptions::default()
        })
        .await;
        let id = live_backups()[0].0.clone();
        let newest = |body: &Value| body["contents"][0].clone();
        let first = sim.get(&histories(&id, "size=1")).await.json();
        let count = first["count"].as_u64().unwrap();
        // Poll until a new entry has appeared and a running one has ended.
        let mut saw_running_end = false;
        let mut running: Option<String> = None;
        let deadline = tokio::time::Instant::now() + cycle * 20;
        loop {
            let body = sim.get(&histories(&id, "size=1")).await.json();
            let e = newest(&body);
            let server = format!("{}{}", e["backup_start_time"], e["created_at"]);
            if e["restore_state"] == "INPROGRESS" {
                running = Some(server);
            } else if running.as_ref() == Some(&server) {
                saw_running_end = true;
            }
            if saw_running_end && body["count"].as_u64().unwrap() > count {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "history did not move"
            );
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        sim.stop().await;
    });
}

fn backup_histories(id: &str, query: &str) -> String {
    let path = format!("/v1/backups/{}/backup-histories", enc(id));
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// `BackupHistoryResponse`'s fields (every one is required in the SDK's model).
const RUN_KEYS: [&str; 6] = [
    "backup_job_state",
    "backup_end_time",
    "backup_start_time",
    "schedule_id",
    "schedule_name",
    "backup_job_guid",
];

fn check_run(run: &Value) {
    let keys: BTreeSet<&str> = run.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, RUN_KEYS.into_iter().collect());
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    match run["backup_job_state"].as_str().unwrap() {
        "INPROGRESS" => assert!(run["backup_end_time"].is_null(), "{run}"),
        "SUCCESS" | "PARTIAL_SUCCESS" | "FAILED" => {
            assert!(time(&run["backup_end_time"]) >= time(&run["backup_start_time"]), "{run}");
        }
        other => panic!("unexpected backup_job_state {other}"),
    }
}

#[test]
fn backup_histories_of_the_seed_backup_and_the_live_ones() {
    let example: Value = serde_json::from_str(seed::BACKUP_HISTORIES).unwrap();
    for run in example["contents"].as_array().unwrap() {
        check_run(run);
    }
    run(async {
        let sim = start(SimOptions::default()).await;
        for query in ["", "page=0&size=20&sort=backup_start_time:desc", "backup_job_state=ALL"] {
            let reply = sim.get(&backup_histories(SEED_ID, query)).await;
            assert_eq!(reply.status, 200, "{query}");
            assert_eq!(reply.body, seed::BACKUP_HISTORIES.as_bytes(), "{query}");
        }
        let failed = sim.get(&backup_histories(SEED_ID, "backup_job_state=FAILED")).await;
        assert_eq!(failed.json(), json!({ "contents": [], "count": 0 }));
        for bad in ["backup_job_state=COMPLETED", "sort=created_at:desc", "backup_start_time=yesterday"] {
            assert_eq!(sim.get(&backup_histories(SEED_ID, bad)).await.status, 400, "{bad}");
        }
        for (id, _) in live_backups() {
            let first = sim.get(&backup_histories(&id, "sort=backup_start_time:desc")).await.json();
            assert!(first["count"].as_u64().unwrap() >= 30, "{first}");
            let runs = first["contents"].as_array().unwrap();
            assert_eq!(runs.len(), 20);
            let starts: Vec<&str> = runs.iter().map(|r| r["backup_start_time"].as_str().unwrap()).collect();
            let mut sorted = starts.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(starts, sorted, "{id}: newest first");
            runs.iter().for_each(check_run);
            let from = runs[5]["backup_start_time"].as_str().unwrap();
            let since = sim
                .get(&backup_histories(&id, &format!("backup_start_time={}", enc(from))))
                .await
                .json();
            assert_eq!(since["count"], 6, "{id}");
        }
        // Replaced entries go to the history their state field names.
        let restore = entry(1);
        let backup_run = example["contents"][0].clone();
        let put = sim
            .put(&format!("/_sim/scp/{SEED_ID}/entries"), &json!([restore, backup_run]).to_string())
            .await;
        assert_eq!(put.status, 200);
        let restores = sim.get(&histories(SEED_ID, "")).await.json();
        assert_eq!(restores["contents"], json!([restore]));
        let runs = sim.get(&backup_histories(SEED_ID, "")).await.json();
        assert_eq!(runs["contents"], json!([backup_run]));
        // Counted and faulted apart from the restores.
        sim.fault("backup_histories", SEED_ID, "error500").await;
        assert_eq!(sim.get(&backup_histories(SEED_ID, "")).await.status, 500);
        assert_eq!(sim.get(&histories(SEED_ID, "")).await.status, 200);
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats[format!("backup/{SEED_ID}")], 2);
        assert_eq!(stats[format!("backup_histories/{SEED_ID}")], 9);
        sim.stop().await;
    });
}

#[test]
fn live_backup_runs_follow_the_cycle() {
    let cycle = 1000;
    let started = 1_750_000_000_000;
    for def in scenario::BACKUPS {
        let mut states = BTreeSet::new();
        for t in (0..20 * cycle).step_by(31) {
            let runs = scenario::runs(def, started + t, started, cycle);
            for r in &runs[..runs.len() - 1] {
                assert_ne!(r["backup_job_state"], "INPROGRESS", "{}", def.id);
            }
            for r in &runs {
                check_run(r);
                states.insert(r["backup_job_state"].as_str().unwrap().to_string());
            }
        }
        for state in ["INPROGRESS", "SUCCESS", "PARTIAL_SUCCESS"] {
            assert!(states.contains(state), "{state}: {states:?}");
        }
        assert_eq!(states.contains("FAILED"), def.id != "0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b");
        assert_eq!(scenario::runs(def, started + 10_000 * cycle, started, cycle).len(), 200);
    }
}

#[test]
fn only_the_supported_api_versions_are_answered() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.scp.keys = Some((ACCESS.into(), SECRET.into()));
        let sim = start(options).await;
        let target = backup_histories(SEED_ID, "");
        for (version, status) in [("backup 1.2", 200), ("backup 1.1", 200), ("backup 1.0", 400)] {
            let signing = Signing {
                version,
                ..Signing::good()
            };
            assert_eq!(sim.signed(&target, &signing).await.status, status, "{version}");
        }
        sim.stop().await;
    });
}

// --- The listings: the backup list and the backup targets (servers). ---

const VENDOR_BACKUP_LIST: &str =
    include_str!("../../../../../tests/data/vendor/scp/sdk-1.0-backup-list-example.yaml");
const VENDOR_TARGET_LIST: &str =
    include_str!("../../../../../tests/data/vendor/scp/sdk-1.0-backup-target-list-example.yaml");

/// An `example:` block of the SDK's OpenAPI document as JSON.
fn vendor_example(yaml: &str) -> Value {
    serde_yaml_ng::from_str(yaml).expect("the SDK's example block is YAML")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `served` has exactly the fields of `example`, each of the same JSON type.
fn assert_same_fields(example: &Value, served: &Value) {
    let (Some(want), Some(have)) = (example.as_object(), served.as_object()) else {
        panic!("not objects: {example} / {served}");
    };
    let want_keys: BTreeSet<&String> = want.keys().collect();
    let have_keys: BTreeSet<&String> = have.keys().collect();
    assert_eq!(have_keys, want_keys, "{served}");
    for (key, value) in want {
        assert_eq!(kind(&have[key]), kind(value), "{key}: {served}");
    }
}

/// Every page of a listing from `page=0` with `size`: the items, the pages read and the
/// `count` each page gave.
async fn all_pages(sim: &TestSim, path: &str, size: usize) -> (Vec<Value>, usize, BTreeSet<u64>) {
    let (mut items, mut pages, mut counts) = (Vec::new(), 0, BTreeSet::new());
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let reply = sim.get(&format!("{path}{sep}page={pages}&size={size}")).await;
        assert_eq!(reply.status, 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        counts.insert(body["count"].as_u64().expect("count"));
        let contents = body["contents"].as_array().expect("contents").clone();
        assert!(contents.len() <= size);
        pages += 1;
        let done = contents.len() < size;
        items.extend(contents);
        if done || items.len() as u64 >= body["count"].as_u64().unwrap_or(0) {
            break;
        }
        assert!(pages < 100, "paging does not end");
    }
    (items, pages, counts)
}

#[test]
fn backup_list_has_the_sdk_fields_pages_sorts_and_filters() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let example = vendor_example(VENDOR_BACKUP_LIST);
        assert!(example["count"].is_number());
        let item = &example["contents"][0];
        let (backups, pages, counts) = all_pages(&sim, "/v1/backups", 3).await;
        assert_eq!(pages, 2);
        assert_eq!(counts, BTreeSet::from([4]));
        let ids: BTreeSet<&str> = backups.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 4, "no backup twice across pages");
        let mut want: BTreeSet<String> = live_backups().into_iter().map(|(id, _)| id).collect();
        want.insert(SEED_ID.to_string());
        assert_eq!(ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(), want);
        for backup in &backups {
            assert_same_fields(item, backup);
            let id = backup["id"].as_str().unwrap();
            // Every backup listed has both histories.
            assert_eq!(sim.get(&histories(id, "")).await.status, 200);
            assert_eq!(sim.get(&format!("/v1/backups/{id}/backup-histories")).await.status, 200);
        }
        // Default: newest created first.
        let created: Vec<&str> = backups.iter().map(|b| b["created_at"].as_str().unwrap()).collect();
        let mut sorted = created.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(created, sorted);
        let seed = backups.iter().find(|b| b["id"] == SEED_ID).unwrap();
        assert_eq!((seed["name"].as_str(), seed["server_name"].as_str()), (Some("backup-001"), Some("server-001")));

        let by_name = sim.get("/v1/backups?sort=name:asc").await.json();
        let names: Vec<&str> = by_name["contents"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        let erp = sim.get(&format!("/v1/backups?name={}", enc("erp"))).await.json();
        assert_eq!(erp["count"], 1);
        assert_eq!(erp["contents"][0]["server_name"], "erp-db-01");
        let korean = sim.get(&format!("/v1/backups?server_name={}", enc("파일서버"))).await.json();
        assert_eq!(korean["contents"][0]["name"], "파일서버-복구");
        assert_eq!(sim.get("/v1/backups?server_name=nothing").await.json(), json!({ "contents": [], "count": 0 }));
        assert_eq!(sim.get("/v1/backups?size=0").await.json(), json!({ "contents": [], "count": 4 }));
        assert_eq!(sim.get("/v1/backups?page=9").await.json(), json!({ "contents": [], "count": 4 }));
        assert_eq!(sim.get("/v1/backups?size=null&page=").await.json()["contents"].as_array().unwrap().len(), 4);
        for bad in ["sort=password", "sort=name:up", "page=-1", "size=x", "size=10001"] {
            let reply = sim.get(&format!("/v1/backups?{bad}")).await;
            assert_eq!(reply.status, 400, "{bad}");
            assert_eq!(reply.json()["code"], "BAD_REQUEST");
        }
        sim.stop().await;
    });
}

#[test]
fn backup_targets_list_the_servers_including_those_without_a_backup() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let example = vendor_example(VENDOR_TARGET_LIST);
        assert!(example["count"].is_number());
        let path = "/v1/backups/backup-targets?server_category=VIRTUAL_SERVER";
        let (servers, pages, counts) = all_pages(&sim, path, 4).await;
        assert_eq!((servers.len(), pages), (6, 2));
        assert_eq!(counts, BTreeSet::from([6]));
        for server in &servers {
            assert_same_fields(&example["contents"][0], server);
        }
        let names: Vec<&str> = servers.iter().map(|s| s["server_name"].as_str().unwrap()).collect();
        let backups = sim.get("/v1/backups?size=100").await.json();
        let backed_up: BTreeSet<&str> = backups["contents"].as_array().unwrap().iter().map(|b| b["server_name"].as_str().unwrap()).collect();
        // Every backup's server is a target; some targets have no backup.
        assert!(backed_up.iter().all(|s| names.contains(s)), "{backed_up:?} / {names:?}");
        let without: Vec<&str> = names.iter().copied().filter(|n| !backed_up.contains(n)).collect();
        assert_eq!(without, ["app-02", "batch-03"]);
        assert_eq!(super::listing::unprotected_servers(), ["app-02", "batch-03", "bm-db-01"]);

        let metal = sim.get("/v1/backups/backup-targets?server_category=BAREMETAL_SERVER").await.json();
        assert_eq!(metal["count"], 1);
        assert_eq!(metal["contents"][0]["server_name"], "bm-db-01");
        let gpu = sim.get("/v1/backups/backup-targets?server_category=GPU_SERVER").await.json();
        assert_eq!(gpu, json!({ "contents": [], "count": 0 }));
        let elsewhere = sim.get(&format!("{path}&region=kr-east1")).await.json();
        assert_eq!(elsewhere["count"], 0);
        assert_eq!(sim.get(&format!("{path}&region=kr-west1")).await.json()["count"], 6);
        let web = sim.get(&format!("{path}&server_name=web")).await.json();
        assert_eq!(web["contents"][0]["server_name"], "web-01");
        for bad in ["", "?server_category=CLOUD", "?page=x&server_category=GPU_SERVER"] {
            let reply = sim.get(&format!("/v1/backups/backup-targets{bad}")).await;
            assert_eq!(reply.status, 400, "{bad}");
        }
        sim.stop().await;
    });
}

#[test]
fn listing_faults_stats_and_signatures() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.scp.keys = Some((ACCESS.to_string(), SECRET.to_string()));
        let sim = start(options).await;
        let first = "/v1/backups?size=2";
        let second = "/v1/backups?page=1&size=2";
        let targets = "/v1/backups/backup-targets?server_category=VIRTUAL_SERVER";
        assert_eq!(sim.get(first).await.status, 401, "unsigned");
        assert_eq!(sim.signed(first, &Signing::good()).await.status, 200);

        sim.fault("backup_list_next", "default", "error500").await;
        assert_eq!(sim.signed(second, &Signing::good()).await.status, 500);
        assert_eq!(sim.signed(first, &Signing::good()).await.status, 200, "first page untouched");
        sim.fault("backup_list_next", "default", "none").await;
        assert_eq!(sim.signed(second, &Signing::good()).await.status, 200);
        sim.fault("backup_list", "default", "rate_limited:4").await;
        let limited = sim.signed(first, &Signing::good()).await;
        assert_eq!((limited.status, limited.header("retry-after")), (429, Some("4")));
        sim.fault("backup_list", "default", "truncated").await;
        let cut = sim.signed(first, &Signing::good()).await;
        assert_eq!(cut.status, 200);
        assert!(serde_json::from_slice::<Value>(&cut.body).is_err());
        sim.fault("backup_list", "default", "none").await;

        sim.fault("backup_targets", "default", "not_found").await;
        assert_eq!(sim.signed(targets, &Signing::good()).await.status, 404);
        sim.fault("backup_targets", "default", "unauthorized").await;
        assert_eq!(sim.signed(targets, &Signing::good()).await.status, 401);
        sim.fault("backup_targets", "default", "none").await;
        assert_eq!(sim.signed(targets, &Signing::good()).await.status, 200);
        assert_eq!(sim.send("POST", "/v1/backups", &[], b"").await.status, 405);

        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats["backup_list/default"], 5);
        assert_eq!(stats["backup_list_next/default"], 2);
        assert_eq!(stats["backup_targets/default"], 3);
        sim.stop().await;
    });
}

#[test]
fn the_fleet_scales_the_listings_and_each_fleet_backup_has_histories() {
    run(async {
        let mut options = SimOptions::default();
        options.systems.scp.fleet = Some(250);
        let sim = start(options).await;
        let (backups, pages, counts) = all_pages(&sim, "/v1/backups", 100).await;
        assert_eq!((backups.len(), pages), (254, 3));
        assert_eq!(counts, BTreeSet::from([254]));
        let ids: BTreeSet<&str> = backups.iter().map(|b| b["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 254);
        let example = vendor_example(VENDOR_BACKUP_LIST);
        let fleet: Vec<&Value> = backups.iter().filter(|b| b["id"].as_str().unwrap().starts_with("f1ee7")).collect();
        assert_eq!(fleet.len(), 250);
        for backup in &fleet {
            assert_same_fields(&example["contents"][0], backup);
            assert_eq!(backup["id"].as_str().unwrap().len(), 32);
        }
        let first = super::listing::fleet_id(1);
        let entry = sim.get(&histories(&first, "size=1")).await.json();
        assert_eq!(entry["contents"][0]["backup_id"], first.as_str());
        let runs = sim.get(&format!("/v1/backups/{first}/backup-histories?size=1")).await;
        assert_eq!(runs.status, 200);
        for missing in [super::listing::fleet_id(251), super::listing::fleet_id(0), format!("{first}0"), "f1ee7zz".to_string()] {
            assert_eq!(sim.get(&histories(&missing, "")).await.status, 404, "{missing}");
        }
        let targets = "/v1/backups/backup-targets?server_category=VIRTUAL_SERVER";
        let (servers, _, _) = all_pages(&sim, targets, 100).await;
        assert_eq!(servers.len(), 6 + 250 + 3);
        let idle = servers.iter().filter(|s| s["server_name"].as_str().unwrap().starts_with("fleet-idle-")).count();
        assert_eq!(idle, 3);
        let named = sim.get(&format!("{targets}&server_name=fleet-00250")).await.json();
        assert_eq!(named["count"], 1);
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats["backup_list/default"], 1);
        assert_eq!(stats["backup_list_next/default"], 2);
        sim.stop().await;

        // Without the option there is no fleet.
        let sim = start(SimOptions::default()).await;
        assert_eq!(sim.get(&histories(&first, "")).await.status, 404);
        assert_eq!(sim.get("/v1/backups").await.json()["count"], 4);
        sim.stop().await;
    });
}
