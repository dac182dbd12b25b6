//! Arbitrary bytes and mutated seed-shaped pages through the page decoder and the
//! mapping (first poll and later polls): never a panic, and what is kept stays in range.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use proptest::prelude::*;

use super::auth::sign;
use super::config::{ScpBackup, ScpConfig};
use super::labels::SYSTEM as SCP;
use super::map::{self, Histories};
use super::source::Scp;
use super::version::ApiVersion;
use super::wire::{Page, Runs};
use crate::config::checks::Secret;
use crate::http::UpstreamHttp;
use crate::sources::fuzzing;
use crate::sources::source::FieldParser;
use crate::status::StatusMap;
use crate::telemetry::Telemetry;

const PAGE: &str = r#"{"contents":[{"backup_id":"00cd2538fbf94d12b36aabbdd607e974","backup_start_time":"2024-10-28T05:38:48","created_at":"2024-05-17T00:23:17Z","restore_end_time":"2024-10-28T05:52:47","restore_server_id":"26895cb7-2059-49e7-b6fe-9c9c4b0d3db0","restore_server_name":"restoretest1","restore_start_time":"2024-10-28T05:52:47","restore_state":"COMPLETED","schedule_name":"INCREMENTAL_DAILY_15:00:00-chg4By"},{"created_at":"2024-05-18T00:23:17.5+09:00","restore_server_id":7,"restore_server_name":"복구서버","restore_start_time":"2024-10-29 05:52:47","restore_end_time":"-","restore_state":"IN_PROGRESS","schedule_name":null}],"count":"2"}"#;

/// Object keys the mutations use: this system's field names.
const KEYS: &[&str] = &[
    "contents",
    "count",
    "created_at",
    "restore_server_id",
    "restore_server_name",
    "restore_start_time",
    "restore_end_time",
    "restore_state",
    "schedule_name",
    "backup_id",
    "backup_job_guid",
    "backup_job_state",
    "backup_start_time",
    "backup_end_time",
    "schedule_id",
];

/// `BackupHistoryListResponse` shaped: the SDK's example entry, and one with the other
/// states and nulls.
const BACKUP_PAGE: &str = r#"{"contents":[{"backup_job_state":"SUCCESS","backup_end_time":"2000-01-23T04:56:07.000+00:00","backup_start_time":"2000-01-23T04:56:07.000+00:00","schedule_id":"f5b8e22b-0d88-4698-9996-fb44217c8227","schedule_name":"INCREMENTAL_DAILY_15:00:00-chg4By","backup_job_guid":"backup_job_guid"},{"backup_job_state":"PARTIAL_SUCCESS","backup_end_time":null,"backup_start_time":"2000-01-24 04:56:07","schedule_id":7,"schedule_name":null,"backup_job_guid":null},{"backup_job_state":"INPROGRESS","backup_start_time":"2000-01-25T04:56:07Z"}],"count":3}"#;

fn fields(telemetry: &Telemetry) -> FieldParser {
    FieldParser::new(
        SCP,
        Arc::from("u"),
        chrono_tz::Asia::Seoul,
        StatusMap::new(),
        telemetry.clone(),
    )
    .with_labels(map::label)
}

fn scp() -> Scp {
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
    let http = UpstreamHttp::new(client, "scp", name, limits, telemetry.clone());
    let config = ScpConfig {
        url: "http://127.0.0.1:9".to_string(),
        api_version: ApiVersion::default(),
        access_key: Secret::new("access".to_string()),
        secret_key: Secret::new("secret".to_string()),
        account_id: None,
        backups: Vec::new(),
        backup_histories: Vec::new(),
        discovery: None,
    };
    Scp::new(config, http, fields(&telemetry))
}

fn page(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(Page { contents, count }) = serde_json::from_slice::<Page>(body) else {
        return Ok(());
    };
    let telemetry = Telemetry::new();
    let fields = fields(&telemetry);
    let histories = Histories::default();
    let _ = fields.count("count", count.as_ref());
    let entries = contents.unwrap_or_default();
    // Restores of one backup, backup runs of another (named): first poll, then later polls.
    for (runs, backup) in [
        (
            Runs::Restores,
            ScpBackup {
                id: "b".to_string(),
                name: None,
            },
        ),
        (
            Runs::Backups,
            ScpBackup {
                id: "c".to_string(),
                name: Some("n".to_string()),
            },
        ),
    ] {
        for baseline in [false, true] {
            let out = histories.map(&fields, runs, &backup, entries.clone(), baseline);
            prop_assert!(out.jobs.len() <= 1);
            fuzzing::check(out)?;
        }
    }
    Ok(())
}

/// `body` (a page of histories) decoded and mapped as `runs` of backup "b".
fn mapped(body: &str, runs: Runs) -> Vec<crate::model::JobRecord> {
    let page: Page = serde_json::from_str(body).unwrap();
    let telemetry = Telemetry::new();
    let backup = ScpBackup {
        id: "b".to_string(),
        name: None,
    };
    Histories::default()
        .map(&fields(&telemetry), runs, &backup, page.contents.unwrap(), false)
        .jobs
}

#[test]
fn the_seed_page_decodes_and_maps() {
    let jobs = mapped(PAGE, Runs::Restores);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].key.server, "복구서버");
}

#[test]
fn the_backup_history_page_decodes_and_maps() {
    let jobs = mapped(BACKUP_PAGE, Runs::Backups);
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].key.operation, "backup");
    assert_eq!(jobs[0].key.server, "");
}

/// The SDK's `BackupHistoryListResponse` example, verbatim in `tests/data/vendor/scp/`:
/// both (identical) entries decode, the newest is a completed backup run, and after a
/// baseline the two count as one run.
#[test]
fn the_sdk_backup_history_example_maps() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/scp/sdk-1.0-backup-history-list-example.yaml");
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let page: Page = serde_json::from_value(yaml).unwrap();
    let entries = page.contents.unwrap();
    assert_eq!(entries.len(), 2);
    let telemetry = Telemetry::new();
    let fields = fields(&telemetry);
    let backup = ScpBackup {
        id: "00cd2538fbf94d12b36aabbdd607e974".to_string(),
        name: None,
    };
    let histories = Histories::default();
    let out = histories.map(&fields, Runs::Backups, &backup, Vec::new(), false);
    assert!(out.jobs.is_empty());
    let out = histories.map(&fields, Runs::Backups, &backup, entries, true);
    let [job] = out.jobs.as_slice() else {
        panic!("one job");
    };
    assert_eq!(job.key.operation, "backup");
    assert_eq!(job.status, crate::status::Status::Completed);
    assert_eq!(job.start_time, Some(948603367.0));
    assert_eq!(job.end_time, Some(948603367.0));
    assert_eq!(job.newest_success_end, Some(948603367.0));
    assert_eq!(
        job.ended_runs.as_deref(),
        Some(&[crate::status::Status::Completed][..])
    );
    assert!(job
        .info
        .contains(&("schedule_name", "INCREMENTAL_DAILY_15:00:00-chg4By".to_string())));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        page(&body)?;
    }

    #[test]
    fn mutated_pages_never_panic(body in fuzzing::mutated(PAGE, KEYS)) {
        page(&body)?;
    }


    #[test]
    fn urls_and_signatures_of_any_backup_id_never_panic(
        id in any::<String>(),
        page_no in any::<usize>(),
        secret in any::<String>(),
    ) {
        let scp = scp();
        for runs in [Runs::Restores, Runs::Backups] {
            if let Ok(url) = scp.url(runs, &id, page_no) {
                let sig = sign(&secret, "GET", url.as_str(), "1", "k", "");
                prop_assert_eq!(sig.len(), 44);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_backup_history_pages_never_panic(body in fuzzing::mutated(BACKUP_PAGE, KEYS)) {
        page(&body)?;
    }
}
