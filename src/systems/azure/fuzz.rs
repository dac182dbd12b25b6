//! Arbitrary bytes and mutated seed-shaped answers through the job list, job details
//! and token decoders and the mapping: never a panic, what is kept stays in range, a
//! `nextLink` is only ever followed on the management origin, token lifetimes are
//! clamped.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::auth::parse_token;
use super::config::{AzureAuth, AzureConfig, AzureVault};
use super::labels::SYSTEM as AZURE;
use super::map::{self, facts_of, parse_again, record, status_of, Group, Groups, Memory};
use super::source::Azure;
use super::wire::{Job, JobList};
use crate::http::UpstreamHttp;
use crate::model::{JobRecord, PollOutput};
use crate::sources::fuzzing;
use crate::sources::source::{FieldParser, MAX_TOKEN_LIFETIME};
use crate::status::StatusMap;
use crate::telemetry::Telemetry;

const LIST: &str = r#"{"value":[{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/microsoft.recoveryservices/vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700","name":"7ddead57-bcb9-4269-ac31-6a1b57588700","type":"Microsoft.RecoveryServices/vaults/backupJobs","properties":{"jobType":"AzureIaaSVMJob","duration":"00:20:23.0896697","actionsInfo":[1],"entityFriendlyName":"uttestvmub1","operation":"Backup","status":"Completed","startTime":"2018-05-21T08:35:40.9488967Z","endTime":"2018-05-21T08:56:04.0385664Z"}},{"name":"0b1c","properties":{"jobType":"AzureIaaSVMJob","duration":"PT1H2M","entityFriendlyName":"uttestvmub1","operation":"ConfigureBackup","status":"InProgress","startTime":"2018-05-22T08:35:40Z","extendedInfo":{"progressPercentage":45.5,"dynamicErrorMessage":"-"}}}],"nextLink":"http://127.0.0.1:9/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupJobs?$skiptoken=2"}"#;
const DETAILS: &str = r#"{"name":"0b1c","properties":{"jobType":"AzureIaaSVMJob","duration":"1.02:03:04","entityFriendlyName":"가상머신","operation":"Restore","status":"InProgress","startTime":"2018-05-22T08:35:40Z","endTime":null,"extendedInfo":{"progressPercentage":"45","dynamicErrorMessage":"slow disk"}}}"#;
const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":"3599","access_token":"abc"}"#;

/// Object keys the mutations use: this system's field names.
const KEYS: &[&str] = &[
    "value",
    "nextLink",
    "name",
    "properties",
    "jobType",
    "duration",
    "entityFriendlyName",
    "operation",
    "status",
    "startTime",
    "endTime",
    "extendedInfo",
    "progressPercentage",
    "dynamicErrorMessage",
    "access_token",
    "expires_in",
];

fn vault() -> AzureVault {
    AzureVault {
        resource_group: "rg".to_string(),
        name: "v".to_string(),
    }
}

/// What a poll uses: the source (for its URLs), the field parser and the memory.
struct Fixture {
    azure: Azure,
    fields: FieldParser,
    memory: Memory,
    telemetry: Telemetry,
}

impl Fixture {
    /// `backup_upstream_requests_total{outcome}` of the upstream so far.
    fn requests(&self, outcome: &str) -> f64 {
        let text = String::from_utf8_lossy(&self.telemetry.encode(crate::metrics::Format::Text))
            .into_owned();
        let series = format!(
            "backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"azure\",upstream=\"u\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

fn fixture() -> Fixture {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    let client = CLIENT
        .get_or_init(|| crate::http::build_client().unwrap())
        .clone();
    let telemetry = Telemetry::new();
    let name: Arc<str> = Arc::from("u");
    let limits = crate::http::Limits {
        timeout: Duration::from_secs(1),
        max_body_bytes: 1 << 20,
    };
    let http = UpstreamHttp::new(client, "azure", name.clone(), limits, telemetry.clone());
    let fields = || {
        FieldParser::new(
            AZURE,
            name.clone(),
            chrono_tz::UTC,
            StatusMap::new(),
            telemetry.clone(),
        )
        .with_labels(map::label)
    };
    let config = AzureConfig {
        auth: AzureAuth::ManagedIdentity { client_id: None },
        subscription_id: "s".to_string(),
        vaults: vec![vault()],
        lookback: Duration::from_secs(24 * 3600),
        api_version: "2017-07-01".to_string(),
        management_url: "http://127.0.0.1:9".to_string(),
        authority_url: "http://127.0.0.1:9".to_string(),
        discovery: None,
    };
    Fixture {
        azure: Azure::new(config, http, fields()),
        fields: fields(),
        memory: Memory::default(),
        telemetry,
    }
}

/// A job list folded and grouped the way a poll does it.
fn groups_of(f: &Fixture, jobs: Vec<Job>) -> Vec<Group> {
    let mut groups = Groups::default();
    for job in jobs {
        groups.add(&f.fields, job, |j| status_of(&f.fields, j));
    }
    f.memory.finish_groups("rg/v", groups)
}

fn record_of_group(f: &Fixture, g: Group) -> JobRecord {
    let facts = facts_of(&f.fields, &g.newest, g.newest_seen.status);
    record(
        &f.fields,
        &vault(),
        &g.newest,
        None,
        g.newest_seen,
        facts,
        g.ended,
        g.newest_success_end,
    )
}

/// One job's details mapped the way a poll maps them.
fn record_of_job(f: &Fixture, job: &Job) -> JobRecord {
    let seen = parse_again(&f.fields, job);
    let facts = facts_of(&f.fields, job, seen.status);
    record(&f.fields, &vault(), job, None, seen, facts, Vec::new(), None)
}

fn answers(body: &[u8]) -> Result<(), TestCaseError> {
    let f = fixture();
    if let Ok(list) = serde_json::from_slice::<JobList>(body) {
        let jobs = list.value.unwrap_or_default();
        for _first_then_later_poll in 0..2 {
            let records = groups_of(&f, jobs.clone())
                .into_iter()
                .map(|g| record_of_group(&f, g))
                .collect();
            fuzzing::check(PollOutput {
                jobs: records,
                summaries: Vec::new(),
            })?;
        }
        if let Some(link) = list.next_link {
            if let Ok(url) = f.azure.next_url(&link) {
                prop_assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:9");
            }
        }
    }
    if let Ok(job) = serde_json::from_slice::<Job>(body) {
        let record = record_of_job(&f, &job);
        fuzzing::check(PollOutput {
            jobs: vec![record],
            summaries: Vec::new(),
        })?;
    }
    if let Ok(issued) = parse_token(body) {
        prop_assert!(issued.renew_at <= Instant::now() + MAX_TOKEN_LIFETIME);
    }
    Ok(())
}

#[test]
fn the_seeds_decode_and_map() {
    let f = fixture();
    let list: JobList = serde_json::from_str(LIST).unwrap();
    let groups = groups_of(&f, list.value.unwrap());
    assert_eq!(groups.len(), 2);
    assert!(f.azure.next_url(&list.next_link.unwrap()).is_ok());
    let job: Job = serde_json::from_str(DETAILS).unwrap();
    let record = record_of_job(&f, &job);
    assert_eq!(record.progress, Some(0.45));
    assert!(parse_token(TOKEN.as_bytes()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        answers(&body)?;
    }

    #[test]
    fn mutated_answers_never_panic(
        body in prop_oneof![fuzzing::mutated(LIST, KEYS), fuzzing::mutated(DETAILS, KEYS), fuzzing::mutated(TOKEN, KEYS)]
    ) {
        answers(&body)?;
    }

    /// A link to another origin is refused as an `upstream_error`, counted once (the page
    /// it names is a request that failed), and its reason names the origin only: the path
    /// and query, which may carry a token, never reach a log.
    #[test]
    fn a_refused_next_link_is_counted_once_and_named_by_its_origin(
        scheme in "https?",
        host in "(evil\\.example|127\\.0\\.0\\.2|localhost|\\[::1\\])",
        port in proptest::option::of(1u16..),
        path in "/p-[a-z]{1,8}",
        secret in "[a-z0-9]{12}",
    ) {
        let f = fixture();
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        let link = format!("{origin}{path}?api-version=1&sig=s3cr3t-{secret}");
        let Err(fault) = f.azure.next_url(&link) else {
            return Err(TestCaseError::fail(format!("followed {link}")));
        };
        prop_assert_eq!(fault.outcome, crate::outcome::Outcome::UpstreamError);
        prop_assert!(!fault.reason.contains(&secret), "{}", fault.reason);
        prop_assert!(!fault.reason.contains(&path), "{}", fault.reason);
        prop_assert_eq!(f.requests("upstream_error"), 1.0);
        prop_assert!(f.azure.next_url("http://127.0.0.1:9/next?x=1").is_ok());
        prop_assert_eq!(f.requests("upstream_error"), 1.0, "a link home is no refusal");
        prop_assert!(f.azure.next_url("/relative").is_err());
        prop_assert_eq!(f.requests("decode_error"), 1.0, "no URL: a decode error");
    }

    #[test]
    fn next_links_never_leave_the_management_origin(link in prop_oneof![
        any::<String>(),
        "(https?|ftp)://(127\\.0\\.0\\.1|evil\\.example|127\\.0\\.0\\.1\\.evil|\\[::1\\])(:[0-9]{1,5})?/[a-z?=&$]{0,12}",
        "//[a-z.]{1,12}/x",
        "http://127.0.0.1:9@evil.example/x",
    ]) {
        if let Ok(url) = fixture().azure.next_url(&link) {
            prop_assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:9");
        }
    }
}
