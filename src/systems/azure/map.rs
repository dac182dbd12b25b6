//! Azure Backup's job lists -> `JobRecord`s: the jobs of a vault folded into one series
//! per (entity, operation), the newest job of each with its details' size and failure;
//! runs counted by job id, remembered between polls; and the table from Azure's field
//! names to the shared `field` labels of `backup_parse_errors_total`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::config::AzureVault;
use super::labels::SYSTEM;
use super::wire::Job;
use crate::model::{Failure, JobKey, JobRecord, ParseField};
use crate::parse;
use crate::sources::source::FieldParser;
use crate::status::Status;

/// The size key of workload (SQL Server, SAP HANA) and Azure Files jobs: a number of MB
/// with no unit in the value (VM jobs say `"Backup Size": "2332 MB"`).
const DATA_TRANSFERRED: &str = "Data Transferred (in MB)";

/// The shared `field` label of each of Azure's field names (interface 5.1).
pub(super) fn label(field: &str) -> ParseField {
    match field {
        "extendedInfo.progressPercentage" => ParseField::Percent,
        "duration" => ParseField::Elapsed,
        "startTime" => ParseField::StartTime,
        "endTime" => ParseField::EndTime,
        "Backup Size" | DATA_TRANSFERRED => ParseField::Size,
        "entityFriendlyName" => ParseField::JobName,
        shared => ParseField::of(shared),
    }
}

/// The jobs of a vault's list folded page by page into one accumulator per
/// (entity, operation): only the newest job of each is kept whole.
#[derive(Default)]
pub(super) struct Groups {
    by_key: BTreeMap<(String, String), Accumulated>,
    /// Start of the oldest job listed running or pending, in any group (an older run may
    /// still go on while a newer one is its group's newest): the next list reaches back
    /// to it.
    pub(super) oldest_open: Option<f64>,
}

struct Accumulated {
    newest: Job,
    /// The newest job's fields, parsed once when it was folded in.
    newest_seen: Parsed,
    newest_start: Option<f64>,
    /// Id and status of every finished job of the group, to count runs by id.
    terminal: Vec<(String, Status)>,
    newest_success_end: Option<f64>,
    /// Id and start of the newest finished job: its size stays while a new run goes on.
    newest_finished: Option<(String, Option<f64>)>,
}

impl Groups {
    /// The number of groups (exporter jobs) folded so far.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    pub(super) fn add(
        &mut self,
        fields: &FieldParser,
        job: Job,
        status_of: impl Fn(&Job) -> (Status, String),
    ) {
        let props = job.properties.as_ref();
        let Some(entity) = fields
            .text(
                "entityFriendlyName",
                props.and_then(|p| p.entity_friendly_name.as_ref()),
            )
            .filter(|e| !e.is_empty())
        else {
            fields.missing("entityFriendlyName");
            return;
        };
        // Grouped by the label the series gets, so two spellings of one operation
        // (`Backup`, `backup`) are never two series with one identity.
        let operation = fields
            .text("operation", props.and_then(|p| p.operation.as_ref()))
            .map(|o| snake_case(&o))
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let start = fields.time("startTime", props.and_then(|p| p.start_time.as_ref()));
        let end = fields.time("endTime", props.and_then(|p| p.end_time.as_ref()));
        let (status, raw_status) = status_of(&job);
        if let (Status::Running | Status::Pending, Some(start)) = (status, start) {
            self.oldest_open = Some(self.oldest_open.map_or(start, |o: f64| o.min(start)));
        }
        let seen = Parsed {
            status,
            raw_status,
            start,
            end,
        };
        let success_end = if matches!(status, Status::Completed | Status::CompletedWithWarnings) {
            end
        } else {
            None
        };
        let terminal = status
            .is_terminal()
            .then(|| job_name(&job))
            .flatten()
            .map(|name| (name, status));
        match self.by_key.entry((entity, operation)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Accumulated {
                    newest: job,
                    newest_seen: seen,
                    newest_start: start,
                    newest_finished: terminal.as_ref().map(|(id, _)| (id.clone(), start)),
                    terminal: terminal.into_iter().collect(),
                    newest_success_end: success_end,
                });
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let acc = slot.get_mut();
                if let Some((id, _)) = &terminal {
                    let newer_finished = match (&acc.newest_finished, start) {
                        (None, _) => true,
                        (Some((_, Some(b))), Some(a)) => a > *b,
                        (Some((_, None)), Some(_)) => true,
                        _ => false,
                    };
                    if newer_finished {
                        acc.newest_finished = Some((id.clone(), start));
                    }
                }
                acc.terminal.extend(terminal);
                if let Some(end) = success_end {
                    acc.newest_success_end =
                        Some(acc.newest_success_end.map_or(end, |n| n.max(end)));
                }
                // Newest by start time; a job without a start never displaces one with.
                let newer = match (start, acc.newest_start) {
                    (Some(a), Some(b)) => a > b,
                    (Some(_), None) => true,
                    _ => false,
                };
                if newer {
                    acc.newest = job;
                    acc.newest_seen = seen;
                    acc.newest_start = start;
                }
            }
        }
    }
}

/// A job's fields that are parsed (and whose parse errors are counted) once per poll.
#[derive(Debug, Clone)]
pub(super) struct Parsed {
    pub(super) status: Status,
    pub(super) raw_status: String,
    pub(super) start: Option<f64>,
    pub(super) end: Option<f64>,
}

/// What a finished job's details say; read once per finished job id.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    pub(super) size_bytes: Option<f64>,
    pub(super) failure: Option<Failure>,
}

/// One job series: the newest job of an (entity, operation) and what ended in the group.
pub(super) struct Group {
    pub(super) newest: Job,
    pub(super) newest_seen: Parsed,
    /// The id of the newest finished job, whose size is exported while a new run goes on.
    pub(super) newest_finished: Option<String>,
    pub(super) ended: Vec<Status>,
    pub(super) newest_success_end: Option<f64>,
}

pub(super) fn job_name(job: &Job) -> Option<String> {
    match &job.name {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The `operation` label of Azure's operation text: `ConfigureBackup` ->
/// `configure_backup`, and an operation with a backup type (workload jobs:
/// `"Backup (Full)"`, `"Backup (Copy Only Full)"`, ...) -> `backup_full`,
/// `backup_copy_only_full`: every character that is neither a letter nor a digit (spaces,
/// brackets, dashes) separates words, so each backup type is its own series and a failed
/// full backup is never hidden by the next successful log backup (interface 6.2).
pub(super) fn snake_case(operation: &str) -> String {
    let mut out = String::with_capacity(operation.len() + 4);
    let mut prev_lower = false;
    for c in operation.chars() {
        if c.is_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else if c.is_alphanumeric() {
            out.push(c);
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// What the source remembers of each vault between polls (by `resource_group/name`).
#[derive(Default)]
pub(super) struct Memory {
    /// Job ids seen finished; no entry until the vault's first successful poll.
    finished: Mutex<BTreeMap<String, HashSet<String>>>,
    /// What the details of the finished jobs the vault shows said, by job id.
    details: Mutex<HashMap<String, HashMap<String, Facts>>>,
}

impl Memory {
    /// Turns the folded groups into job series. Jobs seen finished for the first time count
    /// as ended runs, except on the vault's first poll.
    pub(super) fn finish_groups(&self, vault_key: &str, groups: Groups) -> Vec<Group> {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        // No entry for the vault yet: this is its first poll; remember, count nothing.
        let baseline = finished.contains_key(vault_key);
        let known = finished.entry(vault_key.to_string()).or_default();
        let mut out = Vec::with_capacity(groups.by_key.len());
        let mut seen_now: HashSet<String> = HashSet::new();
        for (_, acc) in groups.by_key {
            let mut ended = Vec::new();
            for (name, status) in acc.terminal {
                if !known.contains(&name) && baseline {
                    ended.push(status);
                }
                seen_now.insert(name);
            }
            out.push(Group {
                newest: acc.newest,
                newest_seen: acc.newest_seen,
                newest_finished: acc.newest_finished.map(|(id, _)| id),
                ended,
                newest_success_end: acc.newest_success_end,
            });
        }
        // Jobs leave the list when they fall out of the lookback window; so may their ids.
        *known = seen_now;
        out
    }

    fn lock_details(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Facts>>> {
        self.details.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The facts already read for a finished job id of this vault.
    pub(super) fn known_facts(&self, vault_key: &str, id: &str) -> Option<Facts> {
        self.lock_details().get(vault_key)?.get(id).cloned()
    }

    /// Remembers the facts of the finished jobs `vault_key` shows now (only those: bounded
    /// by the number of series).
    pub(super) fn keep_facts(&self, vault_key: &str, facts: HashMap<String, Facts>) {
        self.lock_details().insert(vault_key.to_string(), facts);
    }
}

pub(super) fn status_of(fields: &FieldParser, job: &Job) -> (Status, String) {
    let props = job.properties.as_ref();
    fields.status("status", props.and_then(|p| p.status.as_ref()))
}

/// The series of `job`, a job of the list: the list decides its identity, status and
/// times; `details` (its details answer, when read) only add progress and message, as
/// `facts` add size and failure (interface 6.2).
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    fields: &FieldParser,
    vault: &AzureVault,
    job: &Job,
    details: Option<&Job>,
    seen: Parsed,
    facts: Facts,
    ended: Vec<Status>,
    newest_success_end: Option<f64>,
) -> JobRecord {
    let props = job.properties.clone().unwrap_or_default();
    let entity = fields
        .text("entityFriendlyName", props.entity_friendly_name.as_ref())
        .unwrap_or_default();
    let operation = fields
        .text("operation", props.operation.as_ref())
        .map(|o| snake_case(&o))
        .filter(|o| !o.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let Parsed {
        status,
        raw_status,
        start,
        end,
    } = seen;
    let extended = details
        .and_then(|d| d.properties.as_ref())
        .and_then(|p| p.extended_info.clone())
        .or_else(|| props.extended_info.clone())
        .unwrap_or_default();
    let mut info = vec![("vault", vault.name.clone())];
    if let Some(job_type) = fields
        .text("jobType", props.job_type.as_ref())
        .filter(|t| !t.is_empty())
    {
        info.push(("job_type", job_type));
    }
    // Which workload a job backs up (SQL Server, SAP HANA, ...): only workload, MAB and
    // DPM jobs say; the others have their job type only (interface 6.2).
    if let Some(workload_type) = fields
        .text("workloadType", props.workload_type.as_ref())
        .filter(|t| !t.is_empty())
    {
        info.push(("workload_type", workload_type));
    }
    // No `job_id`: it changes with every run, and an info series per run is churn
    // (interface 5.1).
    JobRecord {
        key: Arc::new(JobKey {
            system: SYSTEM,
            upstream: fields.upstream().clone(),
            operation,
            job_name: entity.clone(),
            server: entity,
            volume: String::new(),
        }),
        status,
        raw_status,
        progress: fields.percent(
            "extendedInfo.progressPercentage",
            extended.progress_percentage.as_ref(),
        ),
        elapsed_seconds: fields.duration("duration", props.duration.as_ref()),
        start_time: start,
        end_time: end,
        message: fields
            .text(
                "extendedInfo.dynamicErrorMessage",
                extended.dynamic_error_message.as_ref(),
            )
            .filter(|m| !m.is_empty()),
        info,
        ended_runs: Some(ended),
        newest_success_end,
        failure: facts.failure,
        size_bytes: facts.size_bytes,
    }
}

/// A job's status and times parsed from one answer alone (the tests map a details answer
/// as if it were the list's job).
#[cfg(test)]
pub(super) fn parse_again(fields: &FieldParser, job: &Job) -> Parsed {
    let props = job.properties.as_ref();
    let (status, raw_status) = status_of(fields, job);
    Parsed {
        status,
        raw_status,
        start: fields.time("startTime", props.and_then(|p| p.start_time.as_ref())),
        end: fields.time("endTime", props.and_then(|p| p.end_time.as_ref())),
    }
}

/// Size and failure details of a job (from its details answer when read).
pub(super) fn facts_of(fields: &FieldParser, job: &Job, status: Status) -> Facts {
    let props = job.properties.as_ref();
    let extended = props.and_then(|p| p.extended_info.as_ref());
    let bag = extended.and_then(|e| e.property_bag.as_ref());
    let size = |key: &str, unit: &str| {
        bag.and_then(|bag| bag.get(key))
            .and_then(|size| fields.text(key, Some(size)))
            .and_then(|size| match parse::parse_size(&format!("{size}{unit}")) {
                Ok(bytes) => bytes,
                Err(e) => {
                    fields.invalid(key, &e);
                    None
                }
            })
    };
    // VM jobs carry the unit in the value, workload and Azure Files jobs in the key.
    let size_bytes = size("Backup Size", "").or_else(|| size(DATA_TRANSFERRED, " MB"));
    let failure = (status == Status::Failed).then(|| failure_of(job));
    Facts {
        size_bytes,
        failure,
    }
}

/// Why a job failed: `errorDetails[0].errorString`, `errorCode` (a number in every Azure
/// model: its decimal text) and `errorTitle`, else the `taskId` of the first failed task
/// (interfaces 5.1, 6.2).
fn failure_of(job: &Job) -> Failure {
    let props = job.properties.as_ref();
    let first_error = props
        .and_then(|p| p.error_details.as_ref())
        .and_then(|d| d.as_array())
        .and_then(|d| d.first());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let code = match first_error.and_then(|e| e.get("errorCode")) {
        Some(Value::Number(n)) => n.to_string(),
        other => text(other),
    };
    let title = text(first_error.and_then(|e| e.get("errorTitle")));
    let mut reason = text(first_error.and_then(|e| e.get("errorString")));
    if reason.trim().is_empty() {
        reason = props
            .and_then(|p| p.extended_info.as_ref())
            .and_then(|e| e.tasks_list.as_ref())
            .and_then(|t| t.as_array())
            .and_then(|tasks| {
                tasks.iter().find(|t| {
                    t.get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("failed"))
                })
            })
            .map(|t| text(t.get("taskId")))
            .unwrap_or_default();
    }
    Failure::new(&reason, &code).with_title(&title)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each field name Azure's mapping uses is counted under the shared label it names.
    #[test]
    fn field_names_count_under_the_shared_labels() {
        for (field, shared) in [
            ("status", "status"),
            ("extendedInfo.progressPercentage", "percent"),
            ("duration", "elapsed"),
            ("startTime", "start_time"),
            ("endTime", "end_time"),
            ("Backup Size", "size"),
            ("Data Transferred (in MB)", "size"),
            ("entityFriendlyName", "job_name"),
            ("operation", "other"),
            ("jobType", "other"),
            ("workloadType", "other"),
            ("extendedInfo.dynamicErrorMessage", "other"),
        ] {
            assert_eq!(label(field).as_str(), shared, "{field}");
        }
    }

    #[test]
    fn operations_become_snake_case() {
        for (raw, want) in [
            ("Backup", "backup"),
            ("Restore", "restore"),
            ("ConfigureBackup", "configure_backup"),
            ("DeleteBackupData", "delete_backup_data"),
            ("CrossRegionRestore", "cross_region_restore"),
            ("Disable backup", "disable_backup"),
            ("already_snake", "already_snake"),
            ("Backup (Full)", "backup_full"),
            ("Backup (Differential)", "backup_differential"),
            ("Backup (Log)", "backup_log"),
            ("Backup (Copy Only Full)", "backup_copy_only_full"),
            ("Backup (Incremental)", "backup_incremental"),
            ("Backup ( Log )", "backup_log"),
            ("(Full)", "full"),
            ("Backup-Log", "backup_log"),
        ] {
            assert_eq!(snake_case(raw), want, "{raw}");
        }
    }
}
