//! SCP's histories -> one `JobRecord` per backup and kind of history (restores, backup
//! runs): the newest entry is the job series, entries seen newly finished are counted as
//! ended runs (what each history looked like is remembered between polls); and the table
//! from SCP's field names to the shared `field` labels of `backup_parse_errors_total`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::config::ScpBackup;
use super::labels::SYSTEM;
use super::wire::{Entry, Runs};
use crate::model::{Failure, JobKey, JobRecord, ParseField, PollOutput};
use crate::sources::source::FieldParser;
use crate::status::Status;

/// Finished entries remembered per backup so none is counted twice.
const REMEMBERED_ENTRIES: usize = 2000;

/// The shared `field` label of each of SCP's field names (interface 5.1).
pub(super) fn label(field: &str) -> ParseField {
    match field {
        "restore_state" | "backup_job_state" => ParseField::Status,
        "restore_start_time" | "backup_start_time" | "created_at" => ParseField::StartTime,
        "restore_end_time" | "backup_end_time" => ParseField::EndTime,
        "restore_server_name" => ParseField::Server,
        shared => ParseField::of(shared),
    }
}

/// What the source knows of one history of a backup between polls.
#[derive(Debug, Default)]
struct History {
    /// False until a poll succeeded: the first poll only sets the baseline.
    baseline: bool,
    /// Creation time of the newest entry seen.
    newest_created: Option<f64>,
    /// Entries seen in a terminal state, with their creation time (for eviction).
    finished: HashMap<String, f64>,
    /// Entries seen still running, which a later poll must find again.
    open: HashMap<String, f64>,
}

/// What a poll needs to know of a backup's history before it pages.
pub(super) struct Before {
    /// A poll succeeded before: runs ending now are counted.
    pub(super) baseline: bool,
    /// Order of the newest entry seen.
    pub(super) newest: Option<f64>,
    /// The entries seen running, which this poll must find again.
    pub(super) open: Vec<String>,
}

/// Every backup's histories, by kind and backup id (one id may be polled for both).
#[derive(Debug, Default)]
pub(super) struct Histories(Mutex<HashMap<(Runs, String), History>>);

impl Histories {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Runs, String), History>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What is known of `backup_id`'s history of `runs`.
    pub(super) fn before(&self, runs: Runs, backup_id: &str) -> Before {
        let histories = self.lock();
        let h = histories.get(&(runs, backup_id.to_owned()));
        Before {
            baseline: h.is_some_and(|h| h.baseline),
            newest: h.and_then(|h| h.newest_created),
            open: h
                .map(|h| h.open.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        }
    }

    /// The newest entry becomes the job series; entries seen newly finished are counted.
    /// Each entry's fields are parsed once, so a bad value counts one parse error.
    pub(super) fn map(
        &self,
        fields: &FieldParser,
        runs: Runs,
        backup: &ScpBackup,
        entries: Vec<Entry>,
        baseline: bool,
    ) -> PollOutput {
        let mut seen: Vec<Seen> = entries
            .into_iter()
            .map(|entry| {
                let (name, state) = runs.state(&entry);
                let (status, raw_status) = fields.status(name, state);
                let created = fields.time("created_at", runs.created(&entry));
                let (name, start) = runs.start(&entry);
                let start = fields.time(name, start);
                let (name, end) = runs.end(&entry);
                let end = fields.time(name, end);
                Seen {
                    order: order_key(start, created),
                    status,
                    raw_status,
                    start,
                    end,
                    entry,
                }
            })
            .collect();
        // Newest first, whatever order the upstream used; a stable sort keeps the
        // upstream's order among equal keys.
        seen.sort_by(|a, b| {
            b.order
                .partial_cmp(&a.order)
                .unwrap_or(std::cmp::Ordering::Equal)
        });

        let mut ended = Vec::new();
        let mut newest_success_end: Option<f64> = None;
        let mut histories = self.lock();
        let history = histories.entry((runs, backup.id.clone())).or_default();
        for e in &seen {
            let identity = runs.identity(&e.entry);
            let at = e.order.0.unwrap_or(0.0);
            if e.status.is_terminal() {
                if history.finished.insert(identity.clone(), at).is_none() && baseline {
                    ended.push(e.status);
                }
                history.open.remove(&identity);
                if matches!(e.status, Status::Completed | Status::CompletedWithWarnings) {
                    if let Some(end) = e.end {
                        newest_success_end =
                            Some(newest_success_end.map_or(end, |n: f64| n.max(end)));
                    }
                }
            } else {
                history.open.insert(identity, at);
            }
        }
        if let Some(newest) = seen.first().and_then(|e| e.order.0) {
            history.newest_created = Some(history.newest_created.map_or(newest, |n| n.max(newest)));
        }
        history.baseline = true;
        evict_oldest(&mut history.finished, REMEMBERED_ENTRIES);
        evict_oldest(&mut history.open, REMEMBERED_ENTRIES);
        drop(histories);

        let Some(newest) = seen.into_iter().next() else {
            return PollOutput::default();
        };
        let Seen {
            status,
            raw_status,
            start,
            end,
            entry: newest,
            ..
        } = newest;
        let elapsed = match (start, end) {
            (Some(s), Some(e)) => Some((e - s).max(0.0)),
            (Some(s), None) if !status.is_terminal() => {
                Some((crate::clock::unix_now() - s).max(0.0))
            }
            _ => None,
        };
        let mut info = Vec::new();
        info.push(("backup_id", backup.id.clone()));
        if let Some(schedule) = fields
            .text("schedule_name", newest.schedule_name.as_ref())
            .filter(|s| !s.is_empty())
        {
            info.push(("schedule_name", schedule));
        }
        // Backup runs name no server (`BackupHistoryResponse` has none).
        let server = match runs {
            Runs::Restores => fields
                .text("restore_server_name", newest.restore_server_name.as_ref())
                .unwrap_or_default(),
            Runs::Backups => String::new(),
        };
        let record = JobRecord {
            key: Arc::new(JobKey {
                system: SYSTEM,
                upstream: fields.upstream().clone(),
                operation: runs.operation().to_string(),
                job_name: backup.name.clone().unwrap_or_else(|| backup.id.clone()),
                server,
                volume: String::new(),
            }),
            status,
            raw_status,
            progress: matches!(status, Status::Completed | Status::CompletedWithWarnings)
                .then_some(1.0),
            elapsed_seconds: elapsed,
            start_time: start,
            end_time: end,
            message: None,
            info,
            ended_runs: Some(ended),
            newest_success_end,
            // SCP gives no failure text (interface 5.1: reason "").
            failure: (status == Status::Failed).then(Failure::default),
            size_bytes: None,
        };
        PollOutput {
            jobs: vec![record],
            summaries: Vec::new(),
        }
    }
}

/// One history entry with its fields parsed once.
struct Seen {
    /// Newest first by this: the run's start, `created_at` (restores) standing in for a
    /// missing start and breaking ties.
    order: (Option<f64>, Option<f64>),
    status: Status,
    raw_status: String,
    start: Option<f64>,
    end: Option<f64>,
    entry: Entry,
}

/// The order of history entries (interface 5.1): by the run's start
/// (`restore_start_time`, `backup_start_time`), `created_at` (restores only) standing in
/// when the start is missing and breaking ties.
pub(super) fn order_key(start: Option<f64>, created: Option<f64>) -> (Option<f64>, Option<f64>) {
    (start.or(created), created)
}

/// Keeps the `keep` most recently created entries.
fn evict_oldest(map: &mut HashMap<String, f64>, keep: usize) {
    if map.len() <= keep {
        return;
    }
    let mut times: Vec<f64> = map.values().copied().collect();
    times.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let cutoff = times.get(keep - 1).copied().unwrap_or(f64::MIN);
    map.retain(|_, t| *t >= cutoff);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each field name SCP's mapping uses is counted under the shared label it names.
    #[test]
    fn field_names_count_under_the_shared_labels() {
        for (field, shared) in [
            ("restore_state", "status"),
            ("backup_job_state", "status"),
            ("restore_start_time", "start_time"),
            ("backup_start_time", "start_time"),
            ("created_at", "start_time"),
            ("restore_end_time", "end_time"),
            ("backup_end_time", "end_time"),
            ("restore_server_name", "server"),
            ("count", "other"),
            ("schedule_name", "other"),
        ] {
            assert_eq!(label(field).as_str(), shared, "{field}");
        }
    }

    #[test]
    fn eviction_keeps_the_newest_entries() {
        let mut map: HashMap<String, f64> = (0..10).map(|i| (i.to_string(), i as f64)).collect();
        evict_oldest(&mut map, 3);
        let mut kept: Vec<f64> = map.values().copied().collect();
        kept.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(kept, vec![7.0, 8.0, 9.0]);
    }
}
