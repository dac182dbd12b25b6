//! Azure Backup: tokens (client credentials, IMDS), the bearer check, the job list with
//! `$filter` and `nextLink` paging, job details, faults and the live vaults.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};

use super::auth::AzureSim;
use super::routes::PAGE_SIZE;
use super::scenario;
use super::seed;
use crate::options::SimOptions;
use crate::systems::scp;
use crate::testing::{enc, run, seed_sample, start, Reply, TestSim};

const API: &str = "api-version=2017-07-01";
const SEED_SUB: &str = "00000000-0000-0000-0000-000000000000";
const SEED_RG: &str = "Default-RecoveryServices-ResourceGroup-centralindia";
const SEED_JOB: &str = "7ddead57-bcb9-4269-ac31-6a1b57588700";
const LIVE_SUB: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const SECRET: &str = "pa$$ word+/=&é";

fn jobs(sub: &str, rg: &str, vault: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{}/backupJobs",
        enc(vault)
    )
}

fn list(sub: &str, rg: &str, vault: &str, filter: Option<&str>) -> String {
    let mut path = format!("{}?{API}", jobs(sub, rg, vault));
    if let Some(filter) = filter {
        path.push_str(&format!("&$filter={}", enc(filter)));
    }
    path
}

fn details(sub: &str, rg: &str, vault: &str, job: &str) -> String {
    format!("{}/{}?{API}", jobs(sub, rg, vault), enc(job))
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn credentials(secret: &str) -> Vec<u8> {
    form(&[
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT),
        ("client_secret", secret),
        ("scope", "https://management.azure.com/.default"),
    ])
}

fn azure_options() -> SimOptions {
    let mut options = SimOptions {
        token_lifetime: Duration::from_secs(3599),
        ..SimOptions::default()
    };
    options.systems.azure.client = Some(AzureSim {
        tenant_id: TENANT.into(),
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
    });
    options
}

/// A job as a test pins it, with `extendedInfo`.
fn job(name: &str, start: &str, operation: &str, status: &str) -> Value {
    json!({
        "id": format!("{}/{name}", jobs(LIVE_SUB, "rg-backup", "vault-01")),
        "name": name,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": {
            "jobType": "AzureIaaSVMJob",
            "duration": "PT1M2.5S",
            "virtualMachineVersion": "Compute",
            "extendedInfo": {
                "tasksList": [{ "taskId": "Take Snapshot", "duration": "00:00:10", "status": "InProgress" }],
                "propertyBag": { "VM Name": name },
                "progressPercentage": 42.5,
            },
            "entityFriendlyName": format!("vm-{name}"),
            "backupManagementType": "AzureIaasVM",
            "operation": operation,
            "status": status,
            "startTime": start,
            "activityId": "a",
        },
    })
}

impl TestSim {
    async fn form_post(&self, path: &str, body: &[u8]) -> Reply {
        let headers = [("Content-Type", "application/x-www-form-urlencoded")];
        self.send("POST", path, &headers, body).await
    }

    async fn imds_token(&self) -> String {
        let reply = self
            .send(
                "GET",
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/",
                &[("Metadata", "true")],
                b"",
            )
            .await;
        assert_eq!(reply.status, 200);
        reply.json()["access_token"].as_str().unwrap().to_string()
    }

    /// Follows `nextLink` from `first` to the end: the items and the number of pages.
    async fn list_all(&self, first: &str, token: &str) -> (Vec<Value>, usize) {
        let (mut items, mut pages) = (Vec::new(), 0);
        let mut next = Some(first.to_string());
        let origin = format!("http://{}", self.addr);
        while let Some(path) = next.take() {
            let reply = self.get_with_token(&path, token).await;
            assert_eq!(
                reply.status,
                200,
                "{path}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            let body = reply.json();
            let value = body["value"].as_array().expect("value").clone();
            assert!(value.len() <= PAGE_SIZE);
            pages += 1;
            if let Some(link) = body.get("nextLink") {
                let link = link.as_str().expect("nextLink is a string");
                let rest = link
                    .strip_prefix(&origin)
                    .unwrap_or_else(|| panic!("absolute: {link}"));
                assert_eq!(value.len(), PAGE_SIZE, "only the last page is short");
                next = Some(rest.to_string());
            }
            items.extend(value);
            assert!(pages < 100, "nextLink loops");
        }
        (items, pages)
    }
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn seed_job_fixture_is_the_seed_text_and_served_verbatim() {
    let text = seed_sample("azure-backup-job-response.http");
    let marker = "X-Powered-By: ASP.NET\n\n";
    let at = text.find(marker).expect("seed response") + marker.len();
    let mut stream = serde_json::Deserializer::from_str(&text[at..]).into_iter::<Value>();
    let mut seed = stream.next().expect("seed JSON").expect("seed JSON parses");
    assert_eq!(seed::JOB_DETAILS, &text[at..at + stream.byte_offset()]);
    seed["properties"]
        .as_object_mut()
        .unwrap()
        .remove("extendedInfo");
    let list_item: Value = serde_json::from_str(seed::JOB_LIST_ITEM).unwrap();
    assert_eq!(list_item, seed);
    run(async {
        let sim = start(SimOptions::default()).await;
        let token = sim.imds_token().await;
        let reply = sim
            .get_with_token(&details(SEED_SUB, SEED_RG, "abdemovault", SEED_JOB), &token)
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, seed::JOB_DETAILS.as_bytes());
        let window =
            "startTime eq '2018-05-21 12:00:00 AM' and endTime eq '2018-05-22 12:00:00 AM'";
        let body = sim
            .get_with_token(
                &list(SEED_SUB, SEED_RG, "abdemovault", Some(window)),
                &token,
            )
            .await
            .json();
        assert_eq!(body, json!({ "value": [list_item] }));
        // The seed's own path spelling (lowercase provider) and case-insensitive names.
        let lower = format!(
            "/Subscriptions/{SEED_SUB}/resourcegroups/{}/providers/microsoft.recoveryservices/vaults/ABDEMOVAULT/backupjobs?{API}",
            SEED_RG.to_lowercase()
        );
        assert_eq!(sim.get_with_token(&lower, &token).await.json(), body);
        let later = "startTime eq '2018-05-21 09:00:00 AM' and endTime eq '2018-05-22 12:00:00 AM'";
        let body = sim
            .get_with_token(&list(SEED_SUB, SEED_RG, "abdemovault", Some(later)), &token)
            .await
            .json();
        assert_eq!(body, json!({ "value": [] }));
        sim.stop().await;
    });
}

#[test]
fn client_credentials_issue_tokens_for_the_configured_app_only() {
    run(async {
        let sim = start(azure_options()).await;
        let path = format!("/{TENANT}/oauth2/v2.0/token");
        let reply = sim.form_post(&path, &credentials(SECRET)).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        let token = body["access_token"].as_str().unwrap();
        let vault = list(LIVE_SUB, "rg-backup", "vault-01", None);
        assert_eq!(sim.get_with_token(&vault, token).await.status, 200);

        let wrong = sim.form_post(&path, &credentials("guess")).await;
        assert_eq!(wrong.status, 401);
        let body = wrong.json();
        assert_eq!(body["error"], "invalid_client");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("AADSTS7000215: Invalid client secret provided."));
        assert!(!String::from_utf8_lossy(&wrong.body).contains(SECRET));

        let other_client = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "someone-else"),
            ("client_secret", SECRET),
            ("scope", "https://management.azure.com/.default"),
        ]);
        let reply = sim.form_post(&path, &other_client).await;
        assert_eq!(
            (reply.status, reply.json()["error"].clone()),
            (401, json!("invalid_client"))
        );

        let bad_requests: [&[(&str, &str)]; 4] = [
            &[
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "x/.default"),
            ],
            &[
                ("grant_type", "password"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
                ("scope", "x/.default"),
            ],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", "x/.default"),
            ],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("client_secret", SECRET),
            ],
        ];
        for pairs in bad_requests {
            let reply = sim.form_post(&path, &form(pairs)).await;
            assert_eq!(reply.status, 400, "{pairs:?}");
            assert_eq!(reply.json()["error"], "invalid_request", "{pairs:?}");
        }
        let other_tenant = sim
            .form_post("/other-tenant/oauth2/v2.0/token", &credentials(SECRET))
            .await;
        assert_eq!(other_tenant.status, 400);
        assert_eq!(sim.get(&path).await.status, 405);
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats[format!("token/{TENANT}")], 8);
        assert_eq!(stats["token/other-tenant"], 1);
        sim.stop().await;

        // Without an app configured, client credentials never work.
        let sim = start(SimOptions::default()).await;
        let reply = sim.form_post(&path, &credentials(SECRET)).await;
        assert!((400..500).contains(&reply.status));
        assert!(reply.json()["error"].is_string());
        sim.stop().await;
    });
}

#[test]
fn federated_client_assertions_issue_tokens_and_are_remembered() {
    run(async {
        let sim = start(azure_options()).await;
        let path = format!("/{TENANT}/oauth2/v2.0/token");
        let federated = |assertion_type: &str, assertion: &str| {
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT),
                ("scope", "https://management.azure.com/.default"),
                ("client_assertion_type", assertion_type),
                ("client_assertion", assertion),
            ])
        };
        let jwt = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
        for assertion in ["assertion-A", "assertion-A", "assertion-B"] {
            let reply = sim.form_post(&path, &federated(jwt, assertion)).await;
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            let token = reply.json()["access_token"].as_str().unwrap().to_string();
            let vault = list(LIVE_SUB, "rg-backup", "vault-01", None);
            assert_eq!(sim.get_with_token(&vault, &token).await.status, 200);
        }
        let empty = sim.form_post(&path, &federated(jwt, "")).await;
        assert_eq!(empty.status, 400);
        assert!(empty.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("'client_assertion'"));
        let wrong_type = sim.form_post(&path, &federated("saml", "x")).await;
        assert_eq!(wrong_type.status, 400);
        let stats = sim.send("GET", "/_sim/stats", &[], b"").await.json();
        assert_eq!(
            stats["azure_assertions"],
            json!(["assertion-A", "assertion-B"])
        );
    });
}

#[test]
fn imds_needs_the_metadata_header_and_sends_expires_in_as_a_string() {
    run(async {
        let sim = start(SimOptions {
            token_lifetime: Duration::from_secs(3599),
            ..SimOptions::default()
        })
        .await;
        let path = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
        let without = sim.get(path).await;
        assert_eq!(without.status, 400);
        assert_eq!(
            without.json(),
            json!({ "error": "invalid_request", "error_description": "Required metadata header not specified" })
        );
        let reply = sim.send("GET", path, &[("Metadata", "true")], b"").await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(body["expires_in"], "3599");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["resource"], "https://management.azure.com/");
        let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
        let left = expires_on - chrono::Utc::now().timestamp();
        assert!((3590..=3600).contains(&left), "{left}");
        let token = body["access_token"].as_str().unwrap();
        let vault = list(LIVE_SUB, "rg-backup", "vault-01", None);
        assert_eq!(sim.get_with_token(&vault, token).await.status, 200);
        let no_resource = sim
            .send(
                "GET",
                "/metadata/identity/oauth2/token?api-version=2018-02-01",
                &[("Metadata", "true")],
                b"",
            )
            .await;
        assert_eq!(no_resource.status, 400);
        assert_eq!(sim.get("/_sim/stats").await.json()["imds/default"], 3);
        sim.stop().await;
    });
}

#[test]
fn management_requests_need_a_live_bearer_token() {
    run(async {
        let sim = start(SimOptions {
            token_lifetime: Duration::from_secs(1),
            ..SimOptions::default()
        })
        .await;
        let vault = list(LIVE_SUB, "rg-backup", "vault-01", None);
        let missing = sim.get(&vault).await;
        assert_eq!(missing.status, 401);
        assert_eq!(
            missing.json()["error"]["code"],
            "InvalidAuthenticationToken"
        );
        assert!(missing
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")));
        let bogus = sim.get_with_token(&vault, "bogus").await;
        assert_eq!(bogus.json()["error"]["code"], "InvalidAuthenticationToken");
        let token = sim.imds_token().await;
        assert_eq!(sim.get_with_token(&vault, &token).await.status, 200);
        let basic = sim
            .send(
                "GET",
                &vault,
                &[("Authorization", &format!("Basic {token}"))],
                b"",
            )
            .await;
        assert_eq!(basic.status, 401);
        // Refused once its second has passed (polled for, within the test's bound).
        let mut accepted = 1;
        let expired = loop {
            let reply = sim.get_with_token(&vault, &token).await;
            if reply.status != 200 {
                break reply;
            }
            accepted += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(expired.status, 401);
        assert_eq!(
            expired.json()["error"]["code"],
            "ExpiredAuthenticationToken"
        );
        // Rejected requests are counted too: missing, bogus, basic and expired.
        assert_eq!(
            sim.get("/_sim/stats").await.json()["vault/vault-01"],
            4 + accepted
        );
        sim.stop().await;
    });
}

#[test]
fn job_list_pages_through_next_link_and_details_carry_extended_info() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let token = sim.imds_token().await;
        let pinned: Vec<Value> = (0..8)
            .map(|i| {
                job(
                    &format!("job-{i}"),
                    &format!("2024-03-0{}T10:00:00.1234567Z", i + 1),
                    "Backup",
                    "Completed",
                )
            })
            .collect();
        let put = sim
            .put(
                "/_sim/azure/vault-01/jobs",
                &Value::from(pinned).to_string(),
            )
            .await;
        assert_eq!(put.status, 200);
        assert_eq!(put.json()["jobs"], 8);

        let (items, pages) = sim
            .list_all(&list(LIVE_SUB, "rg-backup", "vault-01", None), &token)
            .await;
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..8).rev().map(|i| format!("job-{i}")).collect();
        assert_eq!(names(&items), expected, "newest first");
        assert!(items
            .iter()
            .all(|j| j["properties"].get("extendedInfo").is_none()));
        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats["vault/vault-01"], 1);
        assert_eq!(stats["vault_next/vault-01"], 2);

        // The filter survives into nextLink.
        let window =
            "startTime eq '2024-03-02 12:00:00 AM' and endTime eq '2024-03-07 11:59:59 PM'";
        let first = sim
            .get_with_token(
                &list(LIVE_SUB, "rg-backup", "vault-01", Some(window)),
                &token,
            )
            .await
            .json();
        let link = first["nextLink"].as_str().unwrap();
        assert!(link.contains("api-version=2017-07-01"), "{link}");
        assert!(
            link.contains("$filter=startTime%20eq%20%272024-03-02"),
            "{link}"
        );
        assert!(link.contains("$skiptoken=3"), "{link}");
        let (items, pages) = sim
            .list_all(
                &list(LIVE_SUB, "rg-backup", "vault-01", Some(window)),
                &token,
            )
            .await;
        assert_eq!(
            (names(&items), pages),
            ((1..7).rev().map(|i| format!("job-{i}")).collect(), 2)
        );

        let reply = sim
            .get_with_token(&details(LIVE_SUB, "rg-backup", "vault-01", "job-3"), &token)
            .await;
        assert_eq!(reply.status, 200);
        let body = reply.json();
        assert_eq!(
            body["properties"]["extendedInfo"]["progressPercentage"],
            42.5
        );
        assert_eq!(
            body,
            job(
                "job-3",
                "2024-03-04T10:00:00.1234567Z",
                "Backup",
                "Completed"
            )
        );
        assert_eq!(sim.get("/_sim/stats").await.json()["job/job-3"], 1);

        let unknown = sim
            .get_with_token(
                &details(LIVE_SUB, "rg-backup", "vault-01", "no-such-job"),
                &token,
            )
            .await;
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.json()["error"]["code"], "ResourceNotFound");
        for (path, code) in [
            (
                list(LIVE_SUB, "rg-backup", "no-vault", None),
                "ResourceNotFound",
            ),
            (
                list(LIVE_SUB, "rg-nope", "vault-01", None),
                "ResourceGroupNotFound",
            ),
            (
                list(
                    "99999999-0000-0000-0000-000000000000",
                    "rg-backup",
                    "vault-01",
                    None,
                ),
                "SubscriptionNotFound",
            ),
            (
                details(LIVE_SUB, "rg-backup", "no-vault", "job-3"),
                "ResourceNotFound",
            ),
        ] {
            let reply = sim.get_with_token(&path, &token).await;
            assert_eq!(reply.status, 404, "{path}");
            assert_eq!(reply.json()["error"]["code"], code, "{path}");
        }

        // A pinned vault that does not exist elsewhere answers under any resource group.
        sim.put(
            "/_sim/azure/pinned-vault/jobs",
            &Value::from(vec![job(
                "x",
                "2024-01-01T00:00:00Z",
                "Restore",
                "InProgress",
            )])
            .to_string(),
        )
        .await;
        let body = sim
            .get_with_token(&list(LIVE_SUB, "any-rg", "pinned-vault", None), &token)
            .await
            .json();
        assert_eq!(names(body["value"].as_array().unwrap()), ["x"]);
        let removed = sim
            .send("DELETE", "/_sim/azure/vault-01/jobs", &[], b"")
            .await
            .json();
        assert_eq!(removed["removed"], true);
        let (items, _) = sim
            .list_all(&list(LIVE_SUB, "rg-backup", "vault-01", None), &token)
            .await;
        assert!(!names(&items).contains(&"job-3".to_string()));
        for bad in ["{}", "[{\"properties\":{}}]", "[1]"] {
            assert_eq!(
                sim.put("/_sim/azure/vault-01/jobs", bad).await.status,
                400,
                "{bad}"
            );
        }
        sim.stop().await;
    });
}

#[test]
fn filters_select_by_window_operation_and_status() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let token = sim.imds_token().await;
        let pinned = vec![
            job("a", "2024-01-01T00:30:00Z", "Backup", "Completed"),
            job("b", "2024-01-01T01:02:03Z", "Backup", "Failed"),
            job("c", "2024-01-01T13:00:00Z", "Restore", "Completed"),
            job("d", "2024-01-02T01:02:03Z", "ConfigureBackup", "Completed"),
            job("e", "2024-01-02T01:02:04Z", "Backup", "InProgress"),
        ];
        sim.put(
            "/_sim/azure/vault-01/jobs",
            &Value::from(pinned).to_string(),
        )
        .await;
        let page = |filter: &'static str| {
            let path = list(LIVE_SUB, "rg-backup", "vault-01", Some(filter));
            let sim = &sim;
            let token = &token;
            async move {
                let reply = sim.get_with_token(&path, token).await;
                (reply.status, reply.json())
            }
        };
        let window =
            "startTime eq '2024-01-01 01:02:03 AM' and endTime eq '2024-01-02 01:02:03 AM'";
        let (status, body) = page(window).await;
        assert_eq!(status, 200);
        assert_eq!(names(body["value"].as_array().unwrap()), ["d", "c", "b"]);
        let (_, body) =
            page("startTime eq '2024-01-01 12:00:00 PM' and operation eq 'Restore'").await;
        assert_eq!(names(body["value"].as_array().unwrap()), ["c"]);
        let (_, body) = page("status eq 'inprogress'").await;
        assert_eq!(names(body["value"].as_array().unwrap()), ["e"]);
        let (_, body) =
            page("STARTTIME EQ '2024-01-01T00:00:00Z' AND endTime eq '2024-01-01 00:59:59'").await;
        assert_eq!(names(body["value"].as_array().unwrap()), ["a"]);
        for bad in [
            "startTime eq 'yesterday'",
            "startTime gt '2024-01-01 01:02:03 AM'",
            "startTime eq '2024-01-01 01:02:03 AM' or status eq 'Failed'",
            "color eq 'blue'",
            "status eq 'Failed",
            "status eq 'Failed' and",
        ] {
            let (status, body) = page(bad).await;
            assert_eq!(status, 400, "{bad}");
            assert!(body["error"]["code"].is_string(), "{bad}");
        }
        let base = jobs(LIVE_SUB, "rg-backup", "vault-01");
        let no_version = sim.get_with_token(&base, &token).await;
        assert_eq!(no_version.status, 400);
        assert_eq!(
            no_version.json()["error"]["code"],
            "MissingApiVersionParameter"
        );
        let bad_version = sim
            .get_with_token(&format!("{base}?api-version=latest"), &token)
            .await;
        assert_eq!(
            bad_version.json()["error"]["code"],
            "InvalidApiVersionParameter"
        );
        let bad_skip = sim
            .get_with_token(&format!("{base}?{API}&$skiptoken=abc"), &token)
            .await;
        assert_eq!(bad_skip.status, 400);
        let beyond = sim
            .get_with_token(&format!("{base}?{API}&%24skiptoken=99"), &token)
            .await;
        assert_eq!(beyond.json(), json!({ "value": [] }));
        sim.stop().await;
    });
}

#[test]
fn faults_target_the_first_page_next_pages_tokens_and_imds() {
    run(async {
        let sim = start(azure_options()).await;
        let token = sim.imds_token().await;
        let pinned: Vec<Value> = (0..7)
            .map(|i| {
                job(
                    &format!("j{i}"),
                    &format!("2024-05-0{}T00:00:00Z", i + 1),
                    "Backup",
                    "Completed",
                )
            })
            .collect();
        sim.put(
            "/_sim/azure/vault-01/jobs",
            &Value::from(pinned).to_string(),
        )
        .await;
        let first = list(LIVE_SUB, "rg-backup", "vault-01", None);

        sim.fault("vault_next", "vault-01", "error500").await;
        let page1 = sim.get_with_token(&first, &token).await;
        assert_eq!(page1.status, 200);
        let link = page1.json()["nextLink"].as_str().unwrap().to_string();
        let next = link
            .strip_prefix(&format!("http://{}", sim.addr))
            .unwrap()
            .to_string();
        let page2 = sim.get_with_token(&next, &token).await;
        assert_eq!(page2.status, 500);
        assert!(page2.json()["error"]["code"].is_string());
        sim.fault("vault_next", "vault-01", "rate_limited:3").await;
        let page2 = sim.get_with_token(&next, &token).await;
        assert_eq!(page2.status, 429);
        assert_eq!(page2.header("retry-after"), Some("3"));
        assert_eq!(page2.json()["error"]["code"], "TooManyRequests");
        sim.fault("vault_next", "vault-01", "none").await;
        assert_eq!(sim.get_with_token(&next, &token).await.status, 200);

        sim.fault("vault", "vault-01", "error500_once").await;
        assert_eq!(sim.get_with_token(&first, &token).await.status, 500);
        assert_eq!(sim.get_with_token(&first, &token).await.status, 200);
        sim.fault("vault", "vault-01", "not_found").await;
        let detail = details(LIVE_SUB, "rg-backup", "vault-01", "j1");
        assert_eq!(sim.get_with_token(&detail, &token).await.status, 404);
        assert_eq!(
            sim.get_with_token(&next, &token).await.status,
            200,
            "next pages untouched"
        );
        sim.fault("vault", "vault-01", "truncated").await;
        let cut = sim.get_with_token(&first, &token).await;
        assert_eq!(cut.status, 200);
        assert!(serde_json::from_slice::<Value>(&cut.body).is_err());
        sim.fault("vault", "vault-01", "none").await;
        sim.fault("job", "j1", "unauthorized").await;
        assert_eq!(sim.get_with_token(&detail, &token).await.status, 401);
        assert_eq!(
            sim.get_with_token(&details(LIVE_SUB, "rg-backup", "vault-01", "j2"), &token)
                .await
                .status,
            200
        );

        let token_path = format!("/{TENANT}/oauth2/v2.0/token");
        sim.fault("token", TENANT, "error500_once").await;
        assert_eq!(
            sim.form_post(&token_path, &credentials(SECRET))
                .await
                .status,
            500
        );
        assert_eq!(
            sim.form_post(&token_path, &credentials(SECRET))
                .await
                .status,
            200
        );
        sim.fault("token", TENANT, "rate_limited:9").await;
        let limited = sim.form_post(&token_path, &credentials(SECRET)).await;
        assert_eq!(
            (limited.status, limited.header("retry-after")),
            (429, Some("9"))
        );
        sim.fault("imds", "default", "error500").await;
        let reply = sim
            .send(
                "GET",
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x",
                &[("Metadata", "true")],
                b"",
            )
            .await;
        assert_eq!(reply.status, 500);
        sim.fault("imds", "default", "connection_close").await;
        assert!(sim
            .raw(
                "GET",
                "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x",
                &[("Metadata", "true")],
                b""
            )
            .await
            .is_empty());

        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats["vault_next/vault-01"], 4);
        assert_eq!(stats["job/j1"], 2);
        assert_eq!(stats["job/j2"], 1);
        assert_eq!(sim.send("POST", "/_sim/reset", &[], b"").await.status, 200);
        assert_eq!(sim.get("/_sim/stats").await.json(), json!({ "login": 0 }));
        // Reset also drops the pinned jobs.
        let (items, _) = sim.list_all(&first, &token).await;
        assert!(!names(&items).contains(&"j1".to_string()));
        sim.stop().await;
    });
}

const STATUSES: [&str; 6] = [
    "InProgress",
    "Completed",
    "CompletedWithWarnings",
    "Failed",
    "Cancelled",
    "Cancelling",
];

fn is_duration(s: &str) -> bool {
    let timespan = s
        .split_once('.')
        .is_some_and(|(hms, frac)| hms.split(':').count() == 3 && frac.len() == 7);
    let iso = s.starts_with("PT") && s.ends_with('S');
    timespan || iso
}

fn check_job(job: &Value, vault: &str, with_extended: bool) {
    let p = &job["properties"];
    let name = job["name"].as_str().unwrap();
    assert!(job["id"]
        .as_str()
        .unwrap()
        .ends_with(&format!("vaults/{vault}/backupJobs/{name}")));
    assert_eq!(job["type"], "Microsoft.RecoveryServices/vaults/backupJobs");
    let management = match p["jobType"].as_str().unwrap() {
        "AzureIaaSVMJob" => "AzureIaasVM",
        "AzureWorkloadJob" => {
            assert_eq!(p["workloadType"], "SQLDataBase");
            "AzureWorkload"
        }
        "AzureStorageJob" => "AzureStorage",
        other => panic!("job type {other}"),
    };
    assert_eq!(p["backupManagementType"], management);
    assert!(
        is_duration(p["duration"].as_str().unwrap()),
        "{}",
        p["duration"]
    );
    let status = p["status"].as_str().unwrap();
    assert!(STATUSES.contains(&status), "{status}");
    assert!(chrono::DateTime::parse_from_rfc3339(p["startTime"].as_str().unwrap()).is_ok());
    let running = status == "InProgress" || status == "Cancelling";
    assert_eq!(p.get("endTime").is_none(), running, "{job}");
    assert_eq!(p.get("extendedInfo").is_some(), with_extended, "{job}");
    if with_extended {
        let info = &p["extendedInfo"];
        assert!(info["tasksList"].is_array() && info["propertyBag"].is_object());
        if status == "InProgress" {
            let percent = info["progressPercentage"]
                .as_f64()
                .expect("progressPercentage");
            assert!((0.0..100.0).contains(&percent));
        }
    }
}

#[test]
fn live_vaults_serve_several_pages_of_varied_jobs() {
    run(async {
        let sim = start(SimOptions::default()).await;
        let token = sim.imds_token().await;
        let vaults: Vec<(String, String, String)> = scenario::VAULTS
            .iter()
            .map(|v| {
                (
                    v.subscription.to_string(),
                    v.resource_group.to_string(),
                    v.name.to_string(),
                )
            })
            .collect();
        assert_eq!(
            vaults[0],
            (
                LIVE_SUB.to_string(),
                "rg-backup".to_string(),
                "vault-01".to_string()
            )
        );
        let lookback = chrono::Utc::now() - chrono::Duration::hours(24);
        let window = format!(
            "startTime eq '{}' and endTime eq '{}'",
            lookback.format("%Y-%m-%d %I:%M:%S %p"),
            (chrono::Utc::now() + chrono::Duration::minutes(1)).format("%Y-%m-%d %I:%M:%S %p")
        );
        let mut entities = BTreeSet::new();
        let mut durations = (false, false);
        for (sub, rg, vault) in &vaults {
            let path = format!("{}?{API}&$filter={}", jobs(sub, rg, vault), enc(&window));
            let (items, pages) = sim.list_all(&path, &token).await;
            if vault == "vault-01" {
                assert!(pages >= 3, "{vault}: {pages} pages");
            }
            let unique: BTreeSet<String> = names(&items).into_iter().collect();
            assert_eq!(
                unique.len(),
                items.len(),
                "{vault}: duplicates across pages"
            );
            for job in &items {
                check_job(job, vault, false);
                entities.insert(
                    job["properties"]["entityFriendlyName"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
                let d = job["properties"]["duration"].as_str().unwrap();
                durations.0 |= d.starts_with("PT");
                durations.1 |= !d.starts_with("PT");
                let name = job["name"].as_str().unwrap();
                let reply = sim
                    .get_with_token(&details(sub, rg, vault, name), &token)
                    .await;
                if reply.status == 404 {
                    // The live vaults keep a sliding window of runs (a SQL database's log
                    // backups turn over every quarter cycle): a job listed a moment ago may
                    // have aged out since. Then it must be gone from the list too.
                    let (now, _) = sim.list_all(&path, &token).await;
                    assert!(!names(&now).iter().any(|n| n == name), "{vault}: {name} listed but 404");
                    continue;
                }
                assert_eq!(reply.status, 200);
                check_job(&reply.json(), vault, true);
            }
        }
        assert!(entities.iter().any(|e| !e.is_ascii()), "{entities:?}");
        assert_eq!(durations, (true, true), "both duration forms");
        sim.stop().await;
    });
}

#[test]
fn live_jobs_cover_every_status_and_operation() {
    let cycle = 1000;
    let base = 1_750_000_000_000;
    let mut statuses = BTreeSet::new();
    let mut operations = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    for vault in scenario::VAULTS {
        for t in (0..30 * cycle).step_by(97) {
            let records = scenario::live_jobs(vault, base + t, cycle);
            if vault.name == "vault-01" {
                assert!(records.len() >= 7, "{} jobs at {t}", records.len());
            }
            for record in records {
                let value = record.details_json();
                check_job(&value, vault.name, true);
                statuses.insert(value["properties"]["status"].as_str().unwrap().to_string());
                let bag = &value["properties"]["extendedInfo"]["propertyBag"];
                kinds.insert((
                    value["properties"]["jobType"].as_str().unwrap().to_string(),
                    value["properties"]["operation"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    value["properties"]["status"].as_str().unwrap().to_string(),
                    bag.get("Data Transferred (in MB)").is_some(),
                ));
                operations.insert(
                    value["properties"]["operation"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    assert_eq!(statuses, STATUSES.iter().map(|s| s.to_string()).collect());
    // SQL databases: full backups that fail and log backups that complete, each with the
    // size they transferred; Azure Files backups with theirs.
    for (job_type, operation, status) in [
        ("AzureWorkloadJob", "Backup (Full)", "Failed"),
        ("AzureWorkloadJob", "Backup (Full)", "Completed"),
        ("AzureWorkloadJob", "Backup (Log)", "Completed"),
        ("AzureStorageJob", "Backup", "Completed"),
    ] {
        let kind = (
            job_type.to_string(),
            operation.to_string(),
            status.to_string(),
            true,
        );
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }
    assert_eq!(
        operations,
        [
            "Backup",
            "Backup (Full)",
            "Backup (Log)",
            "ConfigureBackup",
            "Restore"
        ]
        .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn live_jobs_change_over_time() {
    run(async {
        let cycle = Duration::from_millis(600);
        let sim = start(SimOptions {
            cycle,
            ..SimOptions::default()
        })
        .await;
        let token = sim.imds_token().await;
        let path = list(LIVE_SUB, "rg-backup", "vault-01", None);
        let initial: BTreeSet<String> = names(&sim.list_all(&path, &token).await.0)
            .into_iter()
            .collect();
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut progress: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        // A job that ran and ended, progress that rose, and jobs that were not there at first.
        let done = |seen: &BTreeMap<String, BTreeSet<String>>,
                    progress: &BTreeMap<String, Vec<f64>>| {
            let ended = seen
                .values()
                .any(|s| s.contains("InProgress") && s.len() > 1);
            let rising = progress
                .values()
                .any(|p| p.len() >= 2 && p.last() > p.first());
            let new = seen.keys().filter(|n| !initial.contains(*n)).count();
            ended && rising && new >= 3
        };
        let deadline = tokio::time::Instant::now() + cycle * 20;
        while !done(&seen, &progress) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "vault did not move: {seen:?}"
            );
            let (items, _) = sim.list_all(&path, &token).await;
            for job in items {
                let name = job["name"].as_str().unwrap().to_string();
                let status = job["properties"]["status"].as_str().unwrap().to_string();
                if status == "InProgress" {
                    let reply = sim
                        .get_with_token(&details(LIVE_SUB, "rg-backup", "vault-01", &name), &token)
                        .await;
                    if let Some(p) =
                        reply.json()["properties"]["extendedInfo"]["progressPercentage"].as_f64()
                    {
                        progress.entry(name.clone()).or_default().push(p);
                    }
                }
                seen.entry(name).or_default().insert(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sim.stop().await;
    });
}

#[test]
fn percent_encoded_and_malformed_requests_never_break_the_server() {
    run(async {
        let sim = start(azure_options()).await;
        let token = sim.imds_token().await;
        let encoded = format!(
            "/subscriptions/{}/resourceGroups/rg%2Dbackup/providers/Microsoft.RecoveryServices/vaults/%76ault-01/backupJobs?api%2Dversion=2017-07-01",
            enc(LIVE_SUB)
        );
        assert_eq!(sim.get_with_token(&encoded, &token).await.status, 200);
        assert_eq!(
            sim.get("/v1/backups/%30%30cd2538fbf94d12b36aabbdd607e974/restore-histories")
                .await
                .body,
            scp::RESTORE_HISTORIES.as_bytes()
        );
        let tenant = format!("/{}/oauth2/v2.0/token", enc(TENANT).replace('7', "%37"));
        assert_eq!(
            sim.form_post(&tenant, &credentials(SECRET)).await.status,
            200
        );
        let cases = [
            ("GET", "/v1/backups/%ZZ/restore-histories".to_string()),
            ("GET", "/v1/backups//restore-histories".to_string()),
            (
                "GET",
                "/v1/backups/x/restore-histories?page=%FF".to_string(),
            ),
            ("GET", "/subscriptions".to_string()),
            ("GET", "/subscriptions/%FF/resourceGroups".to_string()),
            (
                "GET",
                format!("{}/a/b", jobs(LIVE_SUB, "rg-backup", "vault-01")),
            ),
            (
                "GET",
                format!(
                    "{}?{API}&$filter=%ZZ",
                    jobs(LIVE_SUB, "rg-backup", "vault-01")
                ),
            ),
            ("PUT", list(LIVE_SUB, "rg-backup", "vault-01", None)),
            ("GET", "/%ZZ/oauth2/v2.0/token".to_string()),
            ("POST", "/metadata/identity/oauth2/token".to_string()),
            ("GET", "/metadata/identity/oauth2/token?%ZZ".to_string()),
            ("DELETE", "/_sim/scp/x/entries/more".to_string()),
            ("GET", "/_sim/azure/%FF/jobs".to_string()),
            ("PUT", "/_sim/fault/vault_nxt/vault-01".to_string()),
        ];
        for (method, path) in &cases {
            let headers = [
                ("Authorization", format!("Bearer {token}")),
                ("Metadata", "true".into()),
            ];
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = sim.send(method, path, &headers, b"x=%ZZ").await;
            assert!(
                (400..500).contains(&reply.status),
                "{method} {path}: {}",
                reply.status
            );
            reply.json();
        }
        let garbage = sim
            .form_post(&format!("/{TENANT}/oauth2/v2.0/token"), b"\xff\xfe=%ZZ&&==")
            .await;
        assert_eq!(garbage.status, 400);
        assert_eq!(
            sim.get_with_token(&list(LIVE_SUB, "rg-backup", "vault-01", None), &token)
                .await
                .status,
            200
        );
        sim.stop().await;
    });
}
