//! Job status words normalized to the state set exported as `backup_job_status{status}`.
//!
//! A leaf: it imports nothing of the crate, so config, sources, model, store and the
//! landing page can all share [`Status`] without depending on each other.

use std::collections::BTreeMap;

/// A job status normalized to the state set exported as `backup_job_status{status}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    Running,
    Completed,
    CompletedWithWarnings,
    Failed,
    Cancelled,
    Unknown,
}

impl Status {
    /// Every status, in the order the state set is exported.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::CompletedWithWarnings,
        Status::Failed,
        Status::Cancelled,
        Status::Unknown,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::CompletedWithWarnings => "completed_with_warnings",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Unknown => "unknown",
        }
    }

    /// Whether a run in this status has ended (and counts in `backup_job_runs_total`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::CompletedWithWarnings | Status::Failed | Status::Cancelled
        )
    }

    /// The status whose label is exactly `s` (as written in a config `status_map`).
    pub fn from_label(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extra raw-status -> [`Status`] entries from config `status_map`; keys stored normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusMap {
    entries: BTreeMap<String, Status>,
}

impl StatusMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the mapping for `raw`, normalized like [`parse_status`] input.
    pub fn insert(&mut self, raw: &str, status: Status) {
        self.entries.insert(normalize_status(raw), status);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for `raw` (normalized like [`parse_status`] input), if the config has one.
    pub fn lookup(&self, raw: &str) -> Option<Status> {
        self.get(&normalize_status(raw))
    }

    fn get(&self, normalized: &str) -> Option<Status> {
        self.entries.get(normalized).copied()
    }
}

/// Lowercases and drops whitespace, `_` and `-`, so "In Progress", "in_progress" and
/// "IN-PROGRESS" compare equal.
pub fn normalize_status(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Normalizes an upstream status word; `map` entries win over the built-in table,
/// anything unrecognized is [`Status::Unknown`].
pub fn parse_status(raw: &str, map: &StatusMap) -> Status {
    let key = normalize_status(raw);
    if let Some(status) = map.get(&key) {
        return status;
    }
    match key.as_str() {
        // `scheduled` is not here: ZDM, whose word it is, reads it by the job's end time.
        "pending" | "wait" | "waiting" | "queued" | "schedule" | "registered" | "ready"
        | "notstarted" => Status::Pending,
        "run" | "running" | "start" | "started" | "preparing" | "inprogress" | "progress"
        | "processing" | "canceling" | "cancelling" => Status::Running,
        "complete" | "completed" | "success" | "succeeded" | "done" | "finished" => {
            Status::Completed
        }
        "completedwithwarnings" | "warning" | "partial" | "partialsuccess" => {
            Status::CompletedWithWarnings
        }
        "fail" | "failed" | "failure" | "error" => Status::Failed,
        "cancel" | "canceled" | "cancelled" | "abort" | "aborted" | "stopped" => Status::Cancelled,
        _ => Status::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_table() {
        let table: &[(Status, &[&str])] = &[
            (
                Status::Pending,
                &[
                    "pending",
                    "wait",
                    "waiting",
                    "queued",
                    "schedule",
                    "registered",
                    "ready",
                    "notstarted",
                    "Not Started",
                    "not_started",
                    "NOT-STARTED",
                ],
            ),
            (
                Status::Running,
                &[
                    "run",
                    "running",
                    "start",
                    "started",
                    "preparing",
                    "inprogress",
                    "In Progress",
                    "in_progress",
                    "progress",
                    "processing",
                    "canceling",
                    "cancelling",
                ],
            ),
            (
                Status::Completed,
                &[
                    "complete",
                    "completed",
                    "success",
                    "succeeded",
                    "done",
                    "finished",
                    "Completed",
                    " COMPLETE ",
                ],
            ),
            (
                Status::CompletedWithWarnings,
                &[
                    "completedwithwarnings",
                    "CompletedWithWarnings",
                    "completed_with_warnings",
                    "warning",
                    "partial",
                    "partialsuccess",
                    "Partial Success",
                ],
            ),
            (
                Status::Failed,
                &["fail", "failed", "failure", "error", "Failed", "ERROR"],
            ),
            (
                Status::Cancelled,
                &[
                    "cancel",
                    "canceled",
                    "cancelled",
                    "abort",
                    "aborted",
                    "stopped",
                    "Cancelled",
                ],
            ),
            (
                Status::Unknown,
                &[
                    "",
                    "-",
                    "verifying",
                    "완료",
                    "completed!",
                    "warnings",
                    "\u{0}",
                ],
            ),
        ];
        let map = StatusMap::new();
        for (want, words) in table {
            for word in *words {
                assert_eq!(parse_status(word, &map), *want, "{word:?}");
            }
        }
    }

    #[test]
    fn status_map_wins_and_is_normalized() {
        let mut map = StatusMap::new();
        assert!(map.is_empty());
        map.insert("Verifying", Status::Running);
        map.insert("error", Status::CompletedWithWarnings);
        assert!(!map.is_empty());
        assert_eq!(parse_status("verifying", &map), Status::Running);
        assert_eq!(parse_status("VERI-FYING", &map), Status::Running);
        assert_eq!(parse_status("Error", &map), Status::CompletedWithWarnings);
        assert_eq!(parse_status("failed", &map), Status::Failed);
    }

    #[test]
    fn status_labels() {
        let labels: Vec<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            labels,
            [
                "pending",
                "running",
                "completed",
                "completed_with_warnings",
                "failed",
                "cancelled",
                "unknown"
            ]
        );
        for s in Status::ALL {
            assert_eq!(Status::from_label(s.as_str()), Some(s));
        }
        assert_eq!(Status::from_label("Running"), None);
        assert_eq!(Status::from_label("run"), None);
        let terminal: Vec<_> = Status::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                Status::Completed,
                Status::CompletedWithWarnings,
                Status::Failed,
                Status::Cancelled
            ]
        );
    }

    proptest! {
        #[test]
        fn parse_status_never_panics(s in any::<String>()) {
            let _ = parse_status(&s, &StatusMap::new());
        }
    }
}
