//! The answers Azure itself published (`tests/data/vendor/azure/`, verbatim: REST
//! specification examples and REST articles) decoded and mapped the way a poll does it:
//! no parse error, and each field lands where the mapping says.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::config::AzureVault;
use super::labels::SYSTEM as AZURE;
use super::map::{self, facts_of, parse_again, record, status_of, Groups, Memory};
use super::wire::{Job, JobList};
use crate::model::{JobRecord, ParseField};
use crate::sources::source::FieldParser;
use crate::status::{Status, StatusMap};
use crate::telemetry::Telemetry;

/// The answer a vendor file holds: a specification example's `responses."200".body`, or
/// the first JSON value of an article's block (the `.txt` ones end with text that is not
/// JSON, as published).
pub(super) fn answer(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/azure")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let first: Value = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    if file.starts_with("spec-") {
        first["responses"]["200"]["body"].clone()
    } else {
        first
    }
}

/// Every job answer (details) the vendors published.
pub(super) const DETAILS: &[&str] = &[
    "spec-2025-08-01-GetJobDetails.json",
    "docs-managejobs-iaasvm-job-backup-completed.txt",
    "docs-manage-sql-vm-job-backup-full-failed.txt",
    "docs-restore-afs-job-restore-inprogress.json",
    "docs-restore-afs-job-restore-alr-inprogress.json",
];

/// Every job list answer the vendors published.
pub(super) const LISTS: &[&str] = &[
    "spec-2025-08-01-ListJobsWithStartTimeAndEndTimeFilters.json",
    "spec-2025-08-01-ListJobsWithAllSupportedFilters.json",
];

pub(super) struct Fixture {
    pub(super) fields: FieldParser,
    telemetry: Telemetry,
}

impl Fixture {
    pub(super) fn new() -> Fixture {
        let telemetry = Telemetry::new();
        let fields = FieldParser::new(
            AZURE,
            Arc::from("u"),
            chrono_tz::UTC,
            StatusMap::new(),
            telemetry.clone(),
        )
        .with_labels(map::label);
        Fixture { fields, telemetry }
    }

    /// Parse errors counted so far, per shared field label, only those above 0.
    pub(super) fn parse_errors(&self) -> Vec<(&'static str, u64)> {
        ParseField::ALL
            .into_iter()
            .map(|f| {
                (
                    f.as_str(),
                    self.telemetry.parse_error_count("azure", "u", f.as_str()),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// One job's details mapped the way a poll maps a running job's details.
    pub(super) fn details(&self, job: &Job) -> JobRecord {
        let seen = parse_again(&self.fields, job);
        let facts = facts_of(&self.fields, job, seen.status);
        record(&self.fields, &vault(), job, None, seen, facts, Vec::new(), None)
    }

    /// A list folded into series the way a poll does (no details read).
    pub(super) fn list(&self, jobs: Vec<Job>) -> Vec<JobRecord> {
        let memory = Memory::default();
        let mut groups = Groups::default();
        for job in jobs {
            groups.add(&self.fields, job, |j| status_of(&self.fields, j));
        }
        memory
            .finish_groups("rg/v", groups)
            .into_iter()
            .map(|g| {
                let facts = facts_of(&self.fields, &g.newest, g.newest_seen.status);
                record(
                    &self.fields,
                    &vault(),
                    &g.newest,
                    None,
                    g.newest_seen,
                    facts,
                    g.ended,
                    g.newest_success_end,
                )
            })
            .collect()
    }
}

fn vault() -> AzureVault {
    AzureVault {
        resource_group: "rg".to_string(),
        name: "v".to_string(),
    }
}

pub(super) fn job(file: &str) -> Job {
    serde_json::from_value(answer(file)).unwrap()
}

fn info<'a>(record: &'a JobRecord, name: &str) -> Option<&'a str> {
    record
        .info
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn unix(rfc3339: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

#[test]
fn every_vendor_answer_decodes_and_maps_without_a_parse_error() {
    for file in DETAILS {
        let f = Fixture::new();
        let record = f.details(&job(file));
        assert_eq!(f.parse_errors(), vec![], "{file}");
        assert!(!record.key.job_name.is_empty(), "{file}");
        assert_ne!(record.status, Status::Unknown, "{file}");
        assert!(record.start_time.is_some(), "{file}");
        assert!(record.elapsed_seconds.is_some(), "{file}");
    }
    for file in LISTS {
        let f = Fixture::new();
        let list: JobList = serde_json::from_value(answer(file)).unwrap();
        let records = f.list(list.value.unwrap());
        assert_eq!(f.parse_errors(), vec![], "{file}");
        assert!(!records.is_empty(), "{file}");
    }
}

#[test]
fn spec_job_details_iaas_vm_backup_in_progress() {
    let f = Fixture::new();
    let r = f.details(&job("spec-2025-08-01-GetJobDetails.json"));
    assert_eq!(r.key.operation, "backup");
    assert_eq!(r.key.job_name, "testvm");
    assert_eq!(r.key.server, "testvm");
    assert_eq!(r.status, Status::Running);
    assert_eq!(r.start_time, Some(unix("2017-08-03T05:31:07.014604Z")));
    assert_eq!(r.end_time, None);
    let elapsed = r.elapsed_seconds.unwrap();
    assert!((elapsed - 9.878_279_1).abs() < 1e-6, "{elapsed}");
    assert_eq!(r.size_bytes, None, "no size while it runs");
    assert!(r.failure.is_none());
    assert_eq!(info(&r, "job_type"), Some("AzureIaaSVMJob"));
}

#[test]
fn spec_job_lists_fold_into_one_series_per_entity_and_operation() {
    let f = Fixture::new();
    let list: JobList = serde_json::from_value(answer(
        "spec-2025-08-01-ListJobsWithStartTimeAndEndTimeFilters.json",
    ))
    .unwrap();
    assert!(list
        .next_link
        .as_deref()
        .unwrap()
        .contains("%24skiptoken="));
    let records = f.list(list.value.unwrap());
    let keys: Vec<(&str, &str, Status)> = records
        .iter()
        .map(|r| (r.key.job_name.as_str(), r.key.operation.as_str(), r.status))
        .collect();
    assert!(keys.contains(&("testvm", "backup", Status::Running)), "{keys:?}");
    assert!(keys.iter().any(|k| k.1 == "configure_backup"), "{keys:?}");

    let last: JobList = serde_json::from_value(answer(
        "spec-2025-08-01-ListJobsWithAllSupportedFilters.json",
    ))
    .unwrap();
    assert_eq!(last.next_link, None, "the last page has no nextLink");
    let records = f.list(last.value.unwrap());
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Status::Running);
}

#[test]
fn docs_iaas_vm_backup_completed_with_its_size() {
    let f = Fixture::new();
    let r = f.details(&job("docs-managejobs-iaasvm-job-backup-completed.txt"));
    assert_eq!(r.key.operation, "backup");
    assert_eq!(r.key.job_name, "uttestvmub1");
    assert_eq!(r.status, Status::Completed);
    assert_eq!(r.end_time, Some(unix("2018-05-21T08:56:04.0385664Z")));
    assert_eq!(r.elapsed_seconds, Some(20.0 * 60.0 + 23.089_669_7));
    assert_eq!(r.size_bytes, Some(2332.0 * 1024.0 * 1024.0));
}

#[test]
fn docs_sql_full_backup_failed() {
    let f = Fixture::new();
    let r = f.details(&job("docs-manage-sql-vm-job-backup-full-failed.txt"));
    assert_eq!(r.key.job_name, "MSSQLSERVER/msDB [sqlserver-0.contoso.com]");
    assert_eq!(r.key.operation, "backup_full");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(info(&r, "job_type"), Some("AzureWorkloadJob"));
    assert_eq!(info(&r, "workload_type"), Some("SQLDataBase"));
    assert_eq!(r.start_time, Some(unix("2018-05-28T11:43:21.6516182Z")));
    assert_eq!(r.end_time, Some(unix("2018-05-28T11:46:35.2955649Z")));
    let failure = r.failure.unwrap();
    assert_eq!(
        failure.reason,
        "Operation cancelled as a conflicting operation was already running on the same database."
    );
    // `errorCode` is a number: its decimal text; `errorTitle` is the title.
    assert_eq!(failure.code, "510008");
    assert_eq!(
        failure.title,
        "OperationCancelledBecauseConflictingOperationRunningUserError"
    );
    // `"Data Transferred (in MB)": "0"`: the size of a workload job.
    assert_eq!(r.size_bytes, Some(0.0));
}

#[test]
fn docs_azure_files_restores_in_progress() {
    for (file, elapsed) in [
        ("docs-restore-afs-job-restore-inprogress.json", 1.863_098),
        ("docs-restore-afs-job-restore-alr-inprogress.json", 2.171_965),
    ] {
        let f = Fixture::new();
        let r = f.details(&job(file));
        assert_eq!(r.key.operation, "restore", "{file}");
        assert_eq!(r.key.job_name, "azurefiles", "{file}");
        assert_eq!(r.status, Status::Running, "{file}");
        assert_eq!(r.end_time, None, "endTime null: {file}");
        let got = r.elapsed_seconds.unwrap();
        assert!((got - elapsed).abs() < 1e-6, "{file}: {got}");
        assert_eq!(info(&r, "job_type"), Some("AzureStorageJob"), "{file}");
    }
    // Both restores of the same share going on, folded as a list: the older one's start
    // is where the next list must reach back to, though the newer is the group's newest.
    let f = Fixture::new();
    let mut groups = Groups::default();
    let mut starts = Vec::new();
    for file in [
        "docs-restore-afs-job-restore-inprogress.json",
        "docs-restore-afs-job-restore-alr-inprogress.json",
    ] {
        let j = job(file);
        starts.push(f.details(&j).start_time.unwrap());
        groups.add(&f.fields, j, |j| status_of(&f.fields, j));
    }
    assert_eq!(groups.oldest_open, starts.into_iter().reduce(f64::min));
    // The alternate-location restore reports `"Data Transferred (in MB)": "0"`.
    let f = Fixture::new();
    let r = f.details(&job("docs-restore-afs-job-restore-alr-inprogress.json"));
    assert_eq!(r.size_bytes, Some(0.0));
}

/// The SQL article's failed `"Backup (Full)"` and, derived from it by hand (no vendor
/// publishes a `"Backup (Log)"` answer), a later successful `"Backup (Log)"` of the same
/// database: two series, the full backup still failed.
#[test]
fn a_failed_full_backup_is_not_hidden_by_a_later_successful_log_backup() {
    let f = Fixture::new();
    let full = answer("docs-manage-sql-vm-job-backup-full-failed.txt");
    let mut log = full.clone();
    log["name"] = "log-1".into();
    log["properties"]["operation"] = "Backup (Log)".into();
    log["properties"]["status"] = "Completed".into();
    log["properties"]["errorDetails"] = Value::Null;
    log["properties"]["startTime"] = "2018-05-28T12:00:00Z".into();
    log["properties"]["endTime"] = "2018-05-28T12:00:10Z".into();
    let jobs = vec![
        serde_json::from_value(full).unwrap(),
        serde_json::from_value(log).unwrap(),
    ];
    let records = f.list(jobs);
    let mut keys: Vec<(&str, Status)> = records
        .iter()
        .map(|r| (r.key.operation.as_str(), r.status))
        .collect();
    keys.sort_by_key(|k| k.0);
    assert_eq!(
        keys,
        vec![
            ("backup_full", Status::Failed),
            ("backup_log", Status::Completed)
        ]
    );
}

/// Every job type of the specification decodes and maps. Only `AzureIaaSVMJob`,
/// `AzureStorageJob` and `AzureWorkloadJob` have a published answer; the others are
/// written by hand from the models generated from the specification (their own fields:
/// `containerName`, `dpmServerName`, `mabServerName`, `mabServerType`, `workloadType`;
/// DPM errors carry no code), so what is asserted is only what those models define.
#[test]
fn every_job_type_of_the_specification_decodes_and_maps() {
    let base = |job_type: &str, extra: Value| {
        let mut job = serde_json::json!({
            "name": format!("{job_type}-1"),
            "type": "Microsoft.RecoveryServices/vaults/backupJobs",
            "properties": {
                "jobType": job_type,
                "entityFriendlyName": "entity",
                "backupManagementType": "x",
                "operation": "Backup",
                "status": "Failed",
                "startTime": "2025-01-01T00:00:00Z",
                "endTime": "2025-01-01T00:10:00Z",
                "duration": "PT10M",
                "activityId": "a",
                "errorDetails": [{ "errorString": "it failed", "recommendations": [] }],
                "extendedInfo": { "tasksList": [], "propertyBag": {} }
            }
        });
        if let (Some(props), Value::Object(extra)) = (job["properties"].as_object_mut(), extra) {
            props.extend(extra);
        }
        job
    };
    let cases = [
        ("AzureIaaSVMJob", serde_json::json!({ "virtualMachineVersion": "Compute" }), None),
        (
            "AzureIaaSVMJobV2",
            serde_json::json!({ "containerName": "iaasvmcontainerv2;rg;vm", "virtualMachineVersion": "Compute" }),
            None,
        ),
        (
            "AzureStorageJob",
            serde_json::json!({ "storageAccountName": "sa", "storageAccountVersion": "Storage" }),
            None,
        ),
        (
            "AzureWorkloadJob",
            serde_json::json!({ "workloadType": "SAPHanaDatabase" }),
            Some("SAPHanaDatabase"),
        ),
        (
            "MabJob",
            serde_json::json!({ "mabServerName": "mab-01", "mabServerType": "Windows", "workloadType": "FileFolder" }),
            Some("FileFolder"),
        ),
        (
            "DpmJob",
            serde_json::json!({ "dpmServerName": "dpm-01", "containerName": "c", "containerType": "t", "workloadType": "SQLDB" }),
            Some("SQLDB"),
        ),
        ("VaultJob", serde_json::json!({}), None),
    ];
    for (job_type, extra, workload) in cases {
        let f = Fixture::new();
        let job: Job = serde_json::from_value(base(job_type, extra)).unwrap();
        let r = f.details(&job);
        assert_eq!(f.parse_errors(), vec![], "{job_type}");
        assert_eq!(r.key.job_name, "entity", "{job_type}");
        assert_eq!(r.key.operation, "backup", "{job_type}");
        assert_eq!(r.status, Status::Failed, "{job_type}");
        assert_eq!(r.elapsed_seconds, Some(600.0), "{job_type}");
        assert_eq!(
            r.failure.as_ref().map(|f| f.reason.as_str()),
            Some("it failed"),
            "{job_type}"
        );
        assert_eq!(info(&r, "job_type"), Some(job_type));
        assert_eq!(info(&r, "workload_type"), workload, "{job_type}");
    }
}

/// `"Data Transferred (in MB)"` is a number of MB (2^20 bytes, as `"Backup Size"`'s MB);
/// `"Backup Size"` wins when both are there; a value that is not a number is a size parse
/// error, the rest of the job still exported.
#[test]
fn size_from_backup_size_or_data_transferred() {
    let mut sql = answer("docs-manage-sql-vm-job-backup-full-failed.txt");
    let bag = |v: &mut Value, b: Value| v["properties"]["extendedInfo"]["propertyBag"] = b;
    for (given, want, errors) in [
        (serde_json::json!({ "Data Transferred (in MB)": "12.5" }), Some(12.5 * 1048576.0), 0),
        (
            serde_json::json!({ "Data Transferred (in MB)": "12", "Backup Size": "1 GB" }),
            Some(1073741824.0),
            0,
        ),
        (serde_json::json!({ "Data Transferred (in MB)": "many" }), None, 1),
        (serde_json::json!({}), None, 0),
    ] {
        bag(&mut sql, given.clone());
        let f = Fixture::new();
        let r = f.details(&serde_json::from_value(sql.clone()).unwrap());
        assert_eq!(r.size_bytes, want, "{given}");
        let size_errors = f
            .parse_errors()
            .iter()
            .find(|(field, _)| *field == "size")
            .map_or(0, |(_, n)| *n);
        assert_eq!(size_errors, errors, "{given}");
        assert_eq!(r.status, Status::Failed, "{given}");
    }
}

/// The list decides a job's identity, status and times; its details answer only adds
/// progress, message, size and failure, even when it disagrees (a job that moved on
/// between the two requests, or an answer from elsewhere).
#[test]
fn details_never_move_a_job_to_another_identity() {
    let f = Fixture::new();
    let list = answer("spec-2025-08-01-ListJobsWithAllSupportedFilters.json")["value"][0].clone();
    let mut details = answer("spec-2025-08-01-GetJobDetails.json");
    details["properties"]["entityFriendlyName"] = "othervm".into();
    details["properties"]["operation"] = "Restore".into();
    details["properties"]["status"] = "Completed".into();
    details["properties"]["startTime"] = "2020-01-01T00:00:00Z".into();
    details["properties"]["extendedInfo"]["progressPercentage"] = 40.into();
    let list: Job = serde_json::from_value(list).unwrap();
    let details: Job = serde_json::from_value(details).unwrap();
    let seen = parse_again(&f.fields, &list);
    let facts = facts_of(&f.fields, &details, seen.status);
    let r = record(&f.fields, &vault(), &list, Some(&details), seen, facts, Vec::new(), None);
    assert_eq!(r.key.job_name, "testvm");
    assert_eq!(r.key.server, "testvm");
    assert_eq!(r.key.operation, "backup");
    assert_eq!(r.status, Status::Running);
    assert_eq!(r.start_time, Some(unix("2017-08-03T05:31:07.014604Z")));
    assert_eq!(r.progress, Some(0.4), "progress comes from the details");
}
