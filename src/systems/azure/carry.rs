//! What keeps an Azure job covered after its newest run leaves the job list (interface
//! 6.2): the last series of every backup (`operation` `backup` or `backup_*`, what the
//! no-success alert watches) of a vault is kept and exported again while no job of it is
//! listed, so `backup_job_last_success_time_seconds` stays and `BackupJobNoRecentSuccess`
//! fires once its age passes the threshold; restores and the other operations are kept
//! until their newest job's start leaves `lookback`, as when every list read the whole
//! window (a failed restore is not kept failing); and the window of
//! each list after a vault's first: from the previous list (an hour earlier, for jobs
//! Azure shows late) or the start of the oldest job seen still running, never further back
//! than `lookback`. The first list (after a start or a reload) reads the whole `lookback`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::model::{JobKey, JobRecord};
use crate::status::Status;

/// How far before the previous list a later list starts: jobs Azure lists with a start
/// before the moment they became visible are still seen.
pub(super) const MARGIN_SECONDS: f64 = 3600.0;

/// Series kept per vault for groups no longer listed; the oldest go first.
const MAX_CARRIED: usize = 10_000;

/// One vault's memory.
#[derive(Debug, Default)]
struct Vault {
    /// The last series of each group, its runs already counted.
    records: HashMap<JobKey, JobRecord>,
    /// When the last successful list was asked for (Unix seconds).
    listed_at: Option<f64>,
    /// Start of the oldest job the last list showed running or pending.
    oldest_open: Option<f64>,
}

/// Every vault's memory, by `resource_group/name`.
#[derive(Debug, Default)]
pub(super) struct Carry(Mutex<HashMap<String, Vault>>);

impl Carry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vault>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the list asked at `now` starts (Unix seconds), given `lookback` seconds.
    pub(super) fn window_from(&self, vault_key: &str, now: f64, lookback: f64) -> f64 {
        let earliest = now - lookback;
        let vaults = self.lock();
        let Some(listed_at) = vaults.get(vault_key).and_then(|v| v.listed_at) else {
            return earliest;
        };
        let oldest_open = vaults.get(vault_key).and_then(|v| v.oldest_open);
        let from = oldest_open.map_or(listed_at - MARGIN_SECONDS, |open| {
            open.min(listed_at - MARGIN_SECONDS)
        });
        from.max(earliest)
    }

    /// The series of a successful list asked at `listed_at`, which showed a job running
    /// or pending since `oldest_open` at the earliest: `records` (the groups it showed)
    /// and, after them, the last series of every group it no longer shows (its runs not
    /// counted again). A running job's size missing from the list is its group's last
    /// known one.
    pub(super) fn carry(
        &self,
        vault_key: &str,
        mut records: Vec<JobRecord>,
        listed_at: f64,
        oldest_open: Option<f64>,
        lookback: f64,
    ) -> Vec<JobRecord> {
        let mut vaults = self.lock();
        let vault = vaults.entry(vault_key.to_string()).or_default();
        let mut shown: HashSet<JobKey> = HashSet::with_capacity(records.len());
        for record in records.iter_mut() {
            let previous = vault.records.get(&*record.key);
            if record.size_bytes.is_none() && !record.status.is_terminal() {
                record.size_bytes = previous.and_then(|p| p.size_bytes);
            }
            let mut kept = record.clone();
            kept.ended_runs = Some(Vec::new());
            kept.newest_success_end = max(
                success_end(record),
                previous.and_then(|p| p.newest_success_end),
            );
            shown.insert((*record.key).clone());
            vault.records.insert((*record.key).clone(), kept);
        }
        vault.listed_at = Some(listed_at);
        vault.oldest_open = oldest_open;
        // Other operations leave with their window; backups stay.
        vault.records.retain(|key, r| {
            is_backup(&key.operation) || r.start_time.is_some_and(|s| s >= listed_at - lookback)
        });
        evict_oldest(&mut vault.records, MAX_CARRIED);
        let mut gone: Vec<&JobRecord> = vault
            .records
            .iter()
            .filter(|(key, _)| !shown.contains(key))
            .map(|(_, record)| record)
            .collect();
        gone.sort_by(|a, b| a.key.cmp(&b.key));
        records.extend(gone.into_iter().cloned());
        records
    }
}

/// `backup`, `backup_full`, `backup_log`, ...: what the shipped rules treat as a backup.
fn is_backup(operation: &str) -> bool {
    operation == "backup" || operation.starts_with("backup_")
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The newest success a record tells of: its own run's end when it completed, else the
/// one it carries.
fn success_end(record: &JobRecord) -> Option<f64> {
    let own = match record.status {
        Status::Completed | Status::CompletedWithWarnings => record.end_time,
        _ => None,
    };
    max(own, record.newest_success_end)
}

/// Keeps the `keep` series whose run started last.
fn evict_oldest(records: &mut HashMap<JobKey, JobRecord>, keep: usize) {
    if records.len() <= keep {
        return;
    }
    let mut starts: Vec<f64> = records
        .values()
        .map(|r| r.start_time.unwrap_or(f64::MIN))
        .collect();
    starts.sort_by(|a, b| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
    let cutoff = starts.get(keep - 1).copied().unwrap_or(f64::MIN);
    records.retain(|_, r| r.start_time.unwrap_or(f64::MIN) >= cutoff);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::systems::azure::SYSTEM;

    fn record(entity: &str, status: Status, start: f64, ended: Vec<Status>) -> JobRecord {
        record_of("backup", entity, status, start, ended)
    }

    fn record_of(
        operation: &str,
        entity: &str,
        status: Status,
        start: f64,
        ended: Vec<Status>,
    ) -> JobRecord {
        JobRecord {
            key: Arc::new(JobKey {
                system: SYSTEM,
                upstream: Arc::from("u"),
                operation: operation.to_string(),
                job_name: entity.to_string(),
                server: entity.to_string(),
                volume: String::new(),
            }),
            status,
            raw_status: String::new(),
            progress: None,
            elapsed_seconds: None,
            start_time: Some(start),
            end_time: status.is_terminal().then_some(start + 10.0),
            message: None,
            info: Vec::new(),
            ended_runs: Some(ended),
            newest_success_end: None,
            failure: None,
            size_bytes: status.is_terminal().then_some(1024.0),
        }
    }

    #[test]
    fn a_group_no_longer_listed_keeps_its_series_without_counting_again() {
        let carry = Carry::default();
        let first = vec![
            record("vm-a", Status::Completed, 100.0, vec![Status::Completed]),
            record("vm-b", Status::Failed, 200.0, vec![]),
            record_of("restore", "vm-c", Status::Failed, 300.0, vec![]),
            record_of("backup_log", "db", Status::Completed, 400.0, vec![]),
        ];
        assert_eq!(carry.carry("v", first, 1000.0, None, 1e9).len(), 4);
        // vm-a left the list; vm-b ran again and is running.
        let out = carry.carry(
            "v",
            vec![record("vm-b", Status::Running, 90_000.0, vec![])],
            100_000.0,
            Some(90_000.0),
            99_500.0,
        );
        // vm-b's new run, then the kept backups in identity order: vm-a's backup, db's log
        // backup; the failed restore (started at 300, before the window of the last 99,500 s)
        // left with its window.
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].key.operation, "backup_log");
        let b = &out[0];
        assert_eq!(b.key.job_name, "vm-b");
        assert_eq!(b.size_bytes, Some(1024.0), "the last run's size while running");
        let a = &out[1];
        assert_eq!(a.key.job_name, "vm-a");
        assert_eq!(a.status, Status::Completed);
        assert_eq!(a.ended_runs, Some(Vec::new()), "counted once, when listed");
        assert_eq!(a.newest_success_end, Some(110.0));
        // The next list reaches back to the running job's start (more than the margin
        // before the last list), not further; never beyond lookback.
        assert_eq!(carry.window_from("v", 100_030.0, 1e9), 90_000.0);
        assert_eq!(carry.window_from("v", 100_030.0, 5000.0), 95_030.0);
    }

    #[test]
    fn the_first_list_reads_the_whole_lookback_and_later_ones_from_the_last() {
        let carry = Carry::default();
        assert_eq!(carry.window_from("v", 10_000.0, 5000.0), 5000.0);
        carry.carry(
            "v",
            vec![record("vm-a", Status::Completed, 100.0, vec![])],
            9000.0,
            None,
            9000.0,
        );
        assert_eq!(carry.window_from("v", 10_000.0, 9000.0), 9000.0 - MARGIN_SECONDS);
        assert_eq!(carry.window_from("other", 10_000.0, 5000.0), 5000.0);
    }

    #[test]
    fn carried_series_are_bounded_keeping_the_newest() {
        let mut records: HashMap<JobKey, JobRecord> = (0..20)
            .map(|i| {
                let r = record(&format!("vm-{i}"), Status::Completed, f64::from(i), vec![]);
                ((*r.key).clone(), r)
            })
            .collect();
        evict_oldest(&mut records, 5);
        let mut kept: Vec<f64> = records.values().filter_map(|r| r.start_time).collect();
        kept.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(kept, vec![15.0, 16.0, 17.0, 18.0, 19.0]);
    }
}
