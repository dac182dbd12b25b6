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
        // Long enough that a loaded machine still lists a run twice while it progresses.
        let cycle = Duration::from_millis(1000);
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
        let deadline = tokio::time::Instant::now() + cycle * 40;
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

// --- The listings discovery reads: vaults, protected items, protectable items. ---

const VENDOR_VAULTS_SUB: &str =
    include_str!("../../../../../tests/data/vendor/azure/spec-2025-08-01-ListBySubscriptionIds.json");
const VENDOR_VAULTS_RG: &str =
    include_str!("../../../../../tests/data/vendor/azure/spec-2025-08-01-ListResources.json");
const VENDOR_PROTECTED: &str = include_str!(
    "../../../../../tests/data/vendor/azure/spec-2025-08-01-BackupProtectedItems_List.json"
);
const VENDOR_PROTECTABLE: &str = include_str!(
    "../../../../../tests/data/vendor/azure/spec-2025-08-01-BackupProtectableItems_List.json"
);
const API_2025: &str = "api-version=2025-08-01";

/// The first item of a vendor example's answer.
fn vendor_item(example: &str) -> Value {
    let example: Value = serde_json::from_str(example).expect("vendor example is JSON");
    example["responses"]["200"]["body"]["value"][0].clone()
}

/// The JSON type of a value, for comparing shapes.
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

/// Every field of `example` is in `served` with the same JSON type, in nested objects too
/// (`tags` is a map of the user's own keys: only its type is compared).
fn assert_shape(example: &Value, served: &Value, at: &str) {
    let (Some(want), Some(have)) = (example.as_object(), served.as_object()) else {
        panic!("{at}: not objects: {example} / {served}");
    };
    for (key, value) in want {
        let Some(got) = have.get(key) else {
            panic!("{at}: `{key}` missing from {served}");
        };
        assert_eq!(kind(got), kind(value), "{at}.{key}: {got} vs {value}");
        if value.is_object() && key != "tags" {
            assert_shape(value, got, &format!("{at}.{key}"));
        }
    }
}

fn vaults_path(sub: &str, rg: Option<&str>) -> String {
    match rg {
        Some(rg) => format!(
            "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.RecoveryServices/vaults?{API_2025}",
            enc(rg)
        ),
        None => format!("/subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults?{API_2025}"),
    }
}

fn items_path(rg: &str, vault: &str, list: &str, filter: Option<&str>) -> String {
    let mut path = format!(
        "/subscriptions/{LIVE_SUB}/resourceGroups/{}/providers/Microsoft.RecoveryServices/vaults/{}/{list}?{API_2025}",
        enc(rg),
        enc(vault)
    );
    if let Some(filter) = filter {
        path.push_str(&format!("&$filter={}", enc(filter)));
    }
    path
}

impl TestSim {
    /// Follows `nextLink` (absolute, `$skipToken`) to the end in pages of at most `size`:
    /// the items and the number of pages; fails on a loop.
    async fn pages(&self, first: &str, token: &str, size: usize) -> (Vec<Value>, usize) {
        let (mut items, mut pages) = (Vec::new(), 0);
        let mut next = Some(first.to_string());
        let origin = format!("http://{}", self.addr);
        while let Some(path) = next.take() {
            let reply = self.get_with_token(&path, token).await;
            assert_eq!(reply.status, 200, "{path}: {}", String::from_utf8_lossy(&reply.body));
            let body = reply.json();
            let value = body["value"].as_array().expect("value").clone();
            assert!(value.len() <= size, "{path}: {} > {size}", value.len());
            pages += 1;
            if let Some(link) = body.get("nextLink") {
                let link = link.as_str().expect("nextLink is a string");
                assert!(link.to_lowercase().contains("$skiptoken="), "{link}");
                assert_eq!(value.len(), size, "only the last page is short");
                let rest = link.strip_prefix(&origin).expect("absolute nextLink");
                next = Some(rest.to_string());
            }
            items.extend(value);
            assert!(pages < 100, "nextLink loops");
        }
        (items, pages)
    }
}

fn listing_options(page_size: u16) -> SimOptions {
    let mut options = SimOptions {
        // Long cycles: the jobs and items read a moment apart see the same runs.
        cycle: Duration::from_secs(3600),
        ..SimOptions::default()
    };
    options.systems.azure.page_size = Some(page_size);
    options
}

fn prop<'a>(item: &'a Value, key: &str) -> &'a str {
    item["properties"][key].as_str().unwrap_or_default()
}

#[test]
fn vault_lists_have_the_vendor_shape_and_page_by_subscription_and_resource_group() {
    run(async {
        let sim = start(listing_options(2)).await;
        let token = sim.imds_token().await;
        let (vaults, pages) = sim.pages(&vaults_path(LIVE_SUB, None), &token, 2).await;
        assert_eq!(pages, 2);
        assert_eq!(names(&vaults), ["vault-01", "vault-workloads", "vault-dr"]);
        let example = vendor_item(VENDOR_VAULTS_SUB);
        for vault in &vaults {
            assert_shape(&example, vault, "vault");
            assert_eq!(vault["type"], "Microsoft.RecoveryServices/vaults");
            // The id names a vault whose jobs and items are served.
            let id = vault["id"].as_str().unwrap();
            let rg = id.split('/').nth(4).unwrap();
            let name = vault["name"].as_str().unwrap();
            assert_eq!(
                id,
                format!("/subscriptions/{LIVE_SUB}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{name}")
            );
            assert_eq!(sim.get_with_token(&list(LIVE_SUB, rg, name, None), &token).await.status, 200);
            let items = items_path(rg, name, "backupProtectedItems", None);
            assert_eq!(sim.get_with_token(&items, &token).await.status, 200);
        }
        let example = vendor_item(VENDOR_VAULTS_RG);
        let (in_rg, _) = sim.pages(&vaults_path(LIVE_SUB, Some("RG-DR")), &token, 2).await;
        assert_eq!(names(&in_rg), ["vault-dr"]);
        assert_shape(&example, &in_rg[0], "vault");
        let (seed, _) = sim.pages(&vaults_path(SEED_SUB, None), &token, 2).await;
        assert_eq!(names(&seed), ["abdemovault"]);

        let unknown = sim.get_with_token(&vaults_path("99999999-0000-0000-0000-000000000000", None), &token).await;
        assert_eq!((unknown.status, unknown.json()["error"]["code"].as_str()), (404, Some("SubscriptionNotFound")));
        let unknown = sim.get_with_token(&vaults_path(LIVE_SUB, Some("rg-none")), &token).await;
        assert_eq!((unknown.status, unknown.json()["error"]["code"].as_str()), (404, Some("ResourceGroupNotFound")));
        let bad_skip = format!("{}&$skipToken=x", vaults_path(LIVE_SUB, None));
        assert_eq!(sim.get_with_token(&bad_skip, &token).await.status, 400);
        assert_eq!(sim.get(&vaults_path(LIVE_SUB, None)).await.status, 401, "bearer checked");
        let no_version = format!("/subscriptions/{LIVE_SUB}/providers/Microsoft.RecoveryServices/vaults");
        assert_eq!(sim.get_with_token(&no_version, &token).await.status, 400);
        sim.stop().await;
    });
}

/// The newest finished backup job of each entity in a job list, as (status, start).
fn last_finished(jobs: &[Value]) -> BTreeMap<String, (String, chrono::DateTime<chrono::Utc>)> {
    let mut last = BTreeMap::new();
    for job in jobs {
        let p = &job["properties"];
        let status = p["status"].as_str().unwrap();
        if !p["operation"].as_str().unwrap().starts_with("Backup")
            || matches!(status, "InProgress" | "Cancelling")
        {
            continue;
        }
        let start = chrono::DateTime::parse_from_rfc3339(p["startTime"].as_str().unwrap())
            .unwrap()
            .to_utc();
        let entity = p["entityFriendlyName"].as_str().unwrap().to_string();
        let newer = last.get(&entity).is_none_or(|(_, t)| start > *t);
        if newer {
            last.insert(entity, (status.to_string(), start));
        }
    }
    last
}

#[test]
fn protected_items_have_the_spec_fields_and_agree_with_the_jobs() {
    run(async {
        let sim = start(listing_options(3)).await;
        let token = sim.imds_token().await;
        let example = vendor_item(VENDOR_PROTECTED);
        let now = chrono::Utc::now();
        let mut seen = BTreeMap::new();
        for vault in scenario::VAULTS {
            let path = items_path(vault.resource_group, vault.name, "backupProtectedItems", None);
            let (items, pages) = sim.pages(&path, &token, 3).await;
            let expected = vault.vms.len() + vault.stopped.len();
            assert_eq!(items.len(), expected, "{}", vault.name);
            assert_eq!(pages, expected.div_ceil(3));
            let (jobs, _) = sim.pages(&list(LIVE_SUB, vault.resource_group, vault.name, None), &token, 3).await;
            let last = last_finished(&jobs);
            for item in &items {
                assert_eq!(item["type"], example["type"]);
                let id = item["id"].as_str().unwrap();
                assert!(id.starts_with(&format!("/subscriptions/{LIVE_SUB}/resourceGroups/{}/providers/Microsoft.RecoveryServices/vaults/{}/protectionContainers/", vault.resource_group, vault.name)), "{id}");
                assert!(id.ends_with(&format!("/protectedItems/{}", item["name"].as_str().unwrap())), "{id}");
                let workload = prop(item, "workloadType");
                match workload {
                    // The example is an IaaS VM: every field of it, with its types.
                    "VM" => assert_shape(&example, item, "vm item"),
                    // Databases and shares: the fields their models have, no VM fields.
                    "SQLDataBase" | "AzureFileShare" => {
                        for key in ["backupManagementType", "containerName", "friendlyName", "lastBackupStatus", "lastBackupTime", "lastRecoveryPoint", "policyId", "protectedItemType", "protectionState", "protectionStatus", "sourceResourceId", "workloadType"] {
                            assert!(item["properties"][key].is_string(), "{key} in {item}");
                        }
                        for absent in ["healthStatus", "virtualMachineId", "policyType"] {
                            assert!(item["properties"].get(absent).is_none(), "{absent} in {item}");
                        }
                    }
                    other => panic!("unexpected workloadType {other}"),
                }
                let name = prop(item, "friendlyName");
                // A database's jobs name it `instance/db [server]`.
                let entity = if workload == "SQLDataBase" {
                    format!("{}/{name} [{}]", prop(item, "parentName"), prop(item, "serverName"))
                } else {
                    name.to_string()
                };
                let time = chrono::DateTime::parse_from_rfc3339(prop(item, "lastBackupTime")).unwrap().to_utc();
                let status = prop(item, "lastBackupStatus");
                match last.get(&entity) {
                    Some((job_status, start)) => {
                        assert!((time - *start).num_microseconds().unwrap().abs() < 1, "{entity}: {time} vs {start}");
                        let want = match (workload, job_status.as_str()) {
                            ("SQLDataBase", "Failed") => "Unhealthy",
                            ("SQLDataBase", _) => "Healthy",
                            (_, s) => s,
                        };
                        assert_eq!(status, want, "{entity}");
                        assert_eq!(prop(item, "protectionState"), "Protected");
                    }
                    None => {
                        // No job: protection stopped long ago, the item the only record.
                        assert!(vault.stopped.contains(&name), "{entity} has no finished backup job");
                        assert_eq!(prop(item, "protectionState"), "ProtectionStopped");
                        assert_eq!(status, "Completed");
                        assert!(now - time > chrono::Duration::days(9), "{time} within the default lookback");
                        assert!(!jobs.iter().any(|j| j["properties"]["entityFriendlyName"] == name));
                    }
                }
                if workload == "VM" {
                    let health = prop(item, "healthStatus");
                    assert!(["Passed", "ActionRequired", "ActionSuggested"].contains(&health));
                    if status == "Failed" {
                        assert_eq!(health, "ActionRequired");
                    }
                    assert_eq!(prop(item, "protectionStatus") == "Healthy", health == "Passed");
                }
                seen.insert(name.to_string(), item.clone());
            }
        }
        // The cases discovery and coverage must handle.
        assert_eq!(prop(&seen["vm-batch-03"], "lastBackupStatus"), "Failed");
        let recovery = chrono::DateTime::parse_from_rfc3339(prop(&seen["vm-batch-03"], "lastRecoveryPoint")).unwrap().to_utc();
        assert!(now - recovery > chrono::Duration::days(9), "its last success is past the lookback");
        assert_eq!(prop(&seen["vm-app-02"], "healthStatus"), "ActionRequired");
        assert_ne!(prop(&seen["vm-app-02"], "lastBackupStatus"), "Failed", "unhealthy, yet backed up");
        assert_eq!(prop(&seen["vm-legacy-01"], "protectionState"), "ProtectionStopped");
        assert_eq!(prop(&seen["vm-dr-01"], "protectedItemType"), "Microsoft.ClassicCompute/virtualMachines");
        assert_eq!(prop(&seen["salesdb"], "protectedItemType"), "AzureVmWorkloadSQLDatabase");
        assert_eq!(prop(&seen["finance-share"], "protectedItemType"), "AzureFileShareProtectedItem");

        // The seed vault: one item for its one job.
        let seed_items = format!(
            "/subscriptions/{SEED_SUB}/resourceGroups/{SEED_RG}/providers/Microsoft.RecoveryServices/vaults/abdemovault/backupProtectedItems?{API_2025}"
        );
        let (items, _) = sim.pages(&seed_items, &token, 3).await;
        assert_eq!(items.len(), 1);
        assert_eq!(prop(&items[0], "friendlyName"), "uttestvmub1");
        assert_eq!(prop(&items[0], "lastBackupTime"), "2018-05-21T08:35:40.948896Z");
        assert_eq!(prop(&items[0], "lastBackupStatus"), "Completed");
        sim.stop().await;
    });
}

#[test]
fn protected_item_filters_select_and_survive_paging() {
    run(async {
        let sim = start(listing_options(3)).await;
        let token = sim.imds_token().await;
        let count = |rg: &'static str, vault: &'static str, filter: &'static str| {
            let sim = &sim;
            let token = &token;
            async move {
                let path = items_path(rg, vault, "backupProtectedItems", Some(filter));
                sim.pages(&path, token, 3).await.0
            }
        };
        // The specification example's filter.
        let vms = count("rg-backup", "vault-01", "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'").await;
        assert_eq!(vms.len(), 5, "two pages, the filter kept in nextLink");
        assert!(count("rg-backup", "vault-workloads", "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'").await.is_empty());
        let dbs = count("rg-backup", "vault-workloads", "itemType eq 'SQLDataBase'").await;
        assert_eq!(dbs.len(), 2);
        assert!(dbs.iter().all(|i| prop(i, "workloadType") == "SQLDataBase"));
        let one = count("rg-dr", "vault-dr", "friendlyName eq 'VM-BATCH-03'").await;
        assert_eq!(names(&one), ["VM;iaasvmcontainerv2;rg-dr;vm-batch-03"]);
        let unhealthy = count("rg-backup", "vault-01", "healthState eq 'ActionRequired'").await;
        assert!(unhealthy.iter().any(|i| prop(i, "friendlyName") == "vm-app-02"));
        assert!(unhealthy.iter().all(|i| prop(i, "healthStatus") == "ActionRequired"));
        assert_eq!(count("rg-backup", "vault-01", "policyName eq 'DefaultPolicy'").await.len(), 5);
        assert!(count("rg-backup", "vault-01", "policyName eq 'Other'").await.is_empty());
        let container = count("rg-backup", "vault-01", "containerName eq 'iaasvmcontainerv2;rg-backup;vm-web-01'").await;
        assert_eq!(container.len(), 1);
        for bad in ["status eq 'Failed'", "itemType eq VM", "itemType eq 'VM' or friendlyName eq 'x'"] {
            let path = items_path("rg-backup", "vault-01", "backupProtectedItems", Some(bad));
            let reply = sim.get_with_token(&path, &token).await;
            assert_eq!(reply.status, 400, "{bad}");
            assert_eq!(reply.json()["error"]["code"], "BadRequest");
        }
        let unknown = items_path("rg-backup", "vault-none", "backupProtectedItems", None);
        assert_eq!(sim.get_with_token(&unknown, &token).await.status, 404);
        sim.stop().await;
    });
}

#[test]
fn protectable_items_are_the_vms_nothing_protects() {
    run(async {
        let sim = start(listing_options(3)).await;
        let token = sim.imds_token().await;
        let example = vendor_item(VENDOR_PROTECTABLE);
        let filter = "backupManagementType eq 'AzureIaasVM'";
        let mut protected_names = BTreeSet::new();
        let mut job_entities = BTreeSet::new();
        for vault in scenario::VAULTS {
            let path = items_path(vault.resource_group, vault.name, "backupProtectedItems", None);
            for item in sim.pages(&path, &token, 3).await.0 {
                protected_names.insert(prop(&item, "friendlyName").to_string());
            }
            let (jobs, _) = sim.pages(&list(LIVE_SUB, vault.resource_group, vault.name, None), &token, 3).await;
            for job in jobs {
                job_entities.insert(job["properties"]["entityFriendlyName"].as_str().unwrap().to_string());
            }
        }
        let mut unprotected = Vec::new();
        for vault in scenario::VAULTS {
            let path = items_path(vault.resource_group, vault.name, "backupProtectableItems", Some(filter));
            let (items, _) = sim.pages(&path, &token, 3).await;
            assert_eq!(items.len(), vault.unprotected.len(), "{}", vault.name);
            for item in &items {
                assert_shape(&example, item, "protectable item");
                assert_eq!(item["type"], example["type"]);
                assert_eq!(prop(item, "protectionState"), "NotProtected");
                let name = prop(item, "friendlyName").to_string();
                assert!(!protected_names.contains(&name) && !job_entities.contains(&name), "{name}");
                unprotected.push(name);
            }
        }
        assert_eq!(unprotected, ["vm-test-07", "vm-sandbox-01"]);
        let none = items_path("rg-backup", "vault-01", "backupProtectableItems", Some("backupManagementType eq 'AzureWorkload'"));
        assert!(sim.pages(&none, &token, 3).await.0.is_empty());
        let bad = items_path("rg-backup", "vault-01", "backupProtectableItems", Some("itemType eq 'VM'"));
        assert_eq!(sim.get_with_token(&bad, &token).await.status, 400);
        sim.stop().await;
    });
}

#[test]
fn listing_faults_and_request_counts_apply_per_listing() {
    run(async {
        let sim = start(listing_options(1)).await;
        let token = sim.imds_token().await;
        let vaults = vaults_path(LIVE_SUB, None);
        let protected = items_path("rg-backup", "vault-01", "backupProtectedItems", None);
        let protectable = items_path("rg-backup", "vault-01", "backupProtectableItems", None);
        let origin = format!("http://{}", sim.addr);
        let next_of = |reply: &Reply| {
            reply.json()["nextLink"].as_str().unwrap().strip_prefix(&origin).unwrap().to_string()
        };

        sim.fault("vault_list", LIVE_SUB, "error500_once").await;
        assert_eq!(sim.get_with_token(&vaults, &token).await.status, 500);
        let first = sim.get_with_token(&vaults, &token).await;
        assert_eq!(first.status, 200);
        let next = next_of(&first);
        sim.fault("vault_list_next", LIVE_SUB, "rate_limited:7").await;
        let limited = sim.get_with_token(&next, &token).await;
        assert_eq!((limited.status, limited.header("retry-after")), (429, Some("7")));
        assert_eq!(sim.get_with_token(&vaults, &token).await.status, 200, "first page untouched");
        sim.fault("vault_list_next", LIVE_SUB, "none").await;
        assert_eq!(sim.get_with_token(&next, &token).await.status, 200);
        sim.fault("vault_list", LIVE_SUB, "not_found").await;
        let missing = sim.get_with_token(&vaults, &token).await;
        assert_eq!((missing.status, missing.json()["error"]["code"].as_str()), (404, Some("SubscriptionNotFound")));
        sim.fault("vault_list", LIVE_SUB, "none").await;

        sim.fault("protected_items", "vault-01", "truncated").await;
        let cut = sim.get_with_token(&protected, &token).await;
        assert_eq!(cut.status, 200);
        assert!(serde_json::from_slice::<Value>(&cut.body).is_err());
        sim.fault("protected_items", "vault-01", "none").await;
        let first = sim.get_with_token(&protected, &token).await;
        let next = next_of(&first);
        sim.fault("protected_items_next", "vault-01", "unauthorized").await;
        assert_eq!(sim.get_with_token(&next, &token).await.status, 401);
        sim.fault("protected_items_next", "vault-01", "connection_close").await;
        assert!(sim.raw("GET", &next, &[("Authorization", &format!("Bearer {token}"))], b"").await.is_empty());
        sim.fault("protected_items_next", "vault-01", "none").await;
        // Another vault's items are untouched by vault-01's faults.
        sim.fault("protected_items", "vault-01", "error500").await;
        assert_eq!(sim.get_with_token(&protected, &token).await.status, 500);
        let dr = items_path("rg-dr", "vault-dr", "backupProtectedItems", None);
        assert_eq!(sim.get_with_token(&dr, &token).await.status, 200);
        sim.fault("protected_items", "vault-01", "none").await;

        sim.fault("protectable_items", "vault-01", "bad_request").await;
        let bad = sim.get_with_token(&protectable, &token).await;
        assert_eq!((bad.status, bad.json()["error"]["code"].as_str()), (400, Some("BadRequest")));
        sim.fault("protectable_items", "vault-01", "none").await;
        assert_eq!(sim.get_with_token(&protectable, &token).await.status, 200);

        let stats = sim.get("/_sim/stats").await.json();
        assert_eq!(stats[format!("vault_list/{LIVE_SUB}")], 4);
        assert_eq!(stats[format!("vault_list_next/{LIVE_SUB}")], 2);
        assert_eq!(stats["protected_items/vault-01"], 3);
        assert_eq!(stats["protected_items_next/vault-01"], 2);
        assert_eq!(stats["protected_items/vault-dr"], 1);
        assert_eq!(stats["protectable_items/vault-01"], 2);
        assert!(stats.get("vault/vault-01").is_none(), "listings are not job requests");
        let targets = sim.send("PUT", "/_sim/fault/no-such-target/x", &[], b"none").await;
        assert_eq!(targets.status, 404);
        for target in ["vault_list", "vault_list_next", "protected_items", "protected_items_next", "protectable_items", "protectable_items_next"] {
            assert!(String::from_utf8_lossy(&targets.body).contains(target), "{target} listed by the admin API");
        }
        sim.stop().await;
    });
}

#[test]
fn the_fleet_scales_the_vault_list_and_each_fleet_vault_serves_jobs_and_items() {
    run(async {
        let mut options = listing_options(10);
        options.systems.azure.fleet = Some(30);
        let sim = start(options).await;
        let token = sim.imds_token().await;
        let (vaults, pages) = sim.pages(&vaults_path(LIVE_SUB, None), &token, 10).await;
        assert_eq!((vaults.len(), pages), (33, 4));
        let (fleet, _) = sim.pages(&vaults_path(LIVE_SUB, Some("rg-fleet")), &token, 10).await;
        assert_eq!(fleet.len(), 30);
        assert_eq!(fleet[6]["name"], "fleet-vault-00007");
        assert_shape(&vendor_item(VENDOR_VAULTS_RG), &fleet[6], "fleet vault");

        let (template, _) = sim.pages(&list(LIVE_SUB, "rg-backup", "vault-01", None), &token, 10).await;
        let (jobs7, _) = sim.pages(&list(LIVE_SUB, "rg-fleet", "fleet-vault-00007", None), &token, 10).await;
        let (jobs8, _) = sim.pages(&list(LIVE_SUB, "rg-fleet", "fleet-vault-00008", None), &token, 10).await;
        assert_eq!(jobs7.len(), template.len());
        let names7: BTreeSet<String> = names(&jobs7).into_iter().collect();
        assert!(names(&template).iter().all(|n| !names7.contains(n)), "job names are the vault's own");
        assert!(names(&jobs8).iter().all(|n| !names7.contains(n)));
        for job in &jobs7 {
            check_job(job, "fleet-vault-00007", false);
            // Its own VMs: a job identity of one fleet vault is no other's.
            assert!(prop(job, "entityFriendlyName").ends_with("-f00007"), "{job}");
        }
        let one = jobs7[0]["name"].as_str().unwrap();
        let detail = sim.get_with_token(&details(LIVE_SUB, "rg-fleet", "fleet-vault-00007", one), &token).await;
        assert_eq!(detail.status, 200);
        check_job(&detail.json(), "fleet-vault-00007", true);

        let items = items_path("rg-fleet", "fleet-vault-00007", "backupProtectedItems", None);
        let (items, _) = sim.pages(&items, &token, 10).await;
        assert_eq!(items.len(), 5);
        let last = last_finished(&jobs7);
        for item in &items {
            assert_shape(&vendor_item(VENDOR_PROTECTED), item, "fleet item");
            if let Some((status, start)) = last.get(prop(item, "friendlyName")) {
                assert_eq!(prop(item, "lastBackupStatus"), status);
                let time = chrono::DateTime::parse_from_rfc3339(prop(item, "lastBackupTime")).unwrap().to_utc();
                assert!((time - *start).num_microseconds().unwrap().abs() < 1);
            }
        }
        let idle = items_path("rg-fleet", "fleet-vault-00007", "backupProtectableItems", None);
        let (idle, _) = sim.pages(&idle, &token, 10).await;
        assert_eq!(prop(&idle[0], "friendlyName"), "fleet-00007-idle-vm");
        for missing in ["fleet-vault-00031", "fleet-vault-00000", "fleet-vault-7", "fleet-vault-x"] {
            let reply = sim.get_with_token(&list(LIVE_SUB, "rg-fleet", missing, None), &token).await;
            assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (404, Some("ResourceNotFound")), "{missing}");
        }
        sim.stop().await;

        // Without the option there is no fleet.
        let sim = start(listing_options(10)).await;
        let token = sim.imds_token().await;
        let reply = sim.get_with_token(&vaults_path(LIVE_SUB, Some("rg-fleet")), &token).await;
        assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (404, Some("ResourceGroupNotFound")));
        sim.stop().await;
    });
}
