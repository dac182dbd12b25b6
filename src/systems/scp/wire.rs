//! SCP's history pages as serde structs, and the two kinds of history a backup has.
//! Leaves are raw JSON values so a wrong type in one field is a parse error of that field,
//! not a failed poll.

use serde::Deserialize;
use serde_json::Value;

use super::labels::{BACKUP, BACKUP_HISTORIES};
use crate::model::TargetKind;

/// A page of either history: `BackupRestoreHistoryListResponse` or
/// `BackupHistoryListResponse` (both `{"contents": [...], "count": n}`).
#[derive(Debug, Deserialize)]
pub(super) struct Page {
    pub(super) contents: Option<Vec<Entry>>,
    pub(super) count: Option<Value>,
}

/// One history entry: the fields of `BackupRestoreHistoryResponse` and of
/// `BackupHistoryResponse` the exporter reads (each kind fills its own).
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Entry {
    pub(super) created_at: Option<Value>,
    pub(super) restore_server_id: Option<Value>,
    pub(super) restore_server_name: Option<Value>,
    pub(super) restore_start_time: Option<Value>,
    pub(super) restore_end_time: Option<Value>,
    pub(super) restore_state: Option<Value>,
    pub(super) schedule_name: Option<Value>,
    pub(super) backup_job_guid: Option<Value>,
    pub(super) backup_job_state: Option<Value>,
    pub(super) backup_start_time: Option<Value>,
    pub(super) backup_end_time: Option<Value>,
    pub(super) schedule_id: Option<Value>,
}

/// Which history of a backup is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Runs {
    /// `GET /v1/backups/{id}/restore-histories`: its restores (`operation="restore"`).
    Restores,
    /// `GET /v1/backups/{id}/backup-histories`: its backup runs (`operation="backup"`).
    Backups,
}

impl Runs {
    /// The `kind` label of its targets.
    pub(super) fn kind(self) -> TargetKind {
        match self {
            Runs::Restores => BACKUP,
            Runs::Backups => BACKUP_HISTORIES,
        }
    }

    /// The last segment of the request path.
    pub(super) fn path(self) -> &'static str {
        match self {
            Runs::Restores => "restore-histories",
            Runs::Backups => "backup-histories",
        }
    }

    /// The `sort` parameter: newest first, by a value the documentation lists (restore
    /// histories: their default `created_at:desc`; backup histories, which have no
    /// `created_at`: their example `backup_start_time:desc`).
    pub(super) fn sort(self) -> &'static str {
        match self {
            Runs::Restores => "created_at:desc",
            Runs::Backups => "backup_start_time:desc",
        }
    }

    /// The `operation` label.
    pub(super) fn operation(self) -> &'static str {
        match self {
            Runs::Restores => "restore",
            Runs::Backups => "backup",
        }
    }

    /// The state of `entry`, with its field name.
    pub(super) fn state(self, entry: &Entry) -> (&'static str, Option<&Value>) {
        match self {
            Runs::Restores => ("restore_state", entry.restore_state.as_ref()),
            Runs::Backups => ("backup_job_state", entry.backup_job_state.as_ref()),
        }
    }

    /// When the run of `entry` started, with the field name.
    pub(super) fn start(self, entry: &Entry) -> (&'static str, Option<&Value>) {
        match self {
            Runs::Restores => ("restore_start_time", entry.restore_start_time.as_ref()),
            Runs::Backups => ("backup_start_time", entry.backup_start_time.as_ref()),
        }
    }

    /// When the run of `entry` ended, with the field name.
    pub(super) fn end(self, entry: &Entry) -> (&'static str, Option<&Value>) {
        match self {
            Runs::Restores => ("restore_end_time", entry.restore_end_time.as_ref()),
            Runs::Backups => ("backup_end_time", entry.backup_end_time.as_ref()),
        }
    }

    /// When the entry was created: restore histories only (`BackupHistoryResponse` has no
    /// such field).
    pub(super) fn created(self, entry: &Entry) -> Option<&Value> {
        match self {
            Runs::Restores => entry.created_at.as_ref(),
            Runs::Backups => None,
        }
    }

    /// What tells the entries of one history apart. Restore entries have no id of their
    /// own: their creation time, restore server and start. Backup entries carry
    /// `backup_job_guid`, kept with the start and the schedule since the SDK's example
    /// shows the field holding a placeholder.
    pub(super) fn identity(self, entry: &Entry) -> String {
        let text = |v: &Option<Value>| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match self {
            Runs::Restores => format!(
                "{}|{}|{}",
                text(&entry.created_at),
                text(&entry.restore_server_id),
                text(&entry.restore_start_time)
            ),
            Runs::Backups => format!(
                "{}|{}|{}",
                text(&entry.backup_job_guid),
                text(&entry.backup_start_time),
                text(&entry.schedule_id)
            ),
        }
    }
}
