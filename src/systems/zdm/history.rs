//! ZDM's run histories (1.2.0 on): `GET {prefix}/backups/histories` and
//! `GET {prefix}/recoveries/histories`, read once per interval per upstream (not per job), a
//! few bounded pages, newest first. Each job's last success, its run counts and its latest
//! result come from them, so an exporter restart loses no last success and a run that began
//! and ended between two polls is counted.
//!
//! Only the documented fields are read: `id`, `system.name`, `job.name`, `job.drive`
//! (backups), `job.recoverySystemName` and `job.recoverDrive` (recoveries), `result.status`,
//! `result.description`, `time.start`, `time.end`; `pagination.hasNextPage` sits beside
//! `data` in these answers.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Failure, JobRecord};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::FieldParser;
use crate::status::Status;

/// Entries asked per page.
pub(super) const PAGE_LIMIT: u32 = 100;
/// Pages read per fetch at most: the newest 300 runs of the upstream.
pub(super) const MAX_PAGES: u32 = 3;
/// Entry ids remembered per history to tell new runs from seen ones.
const MAX_SEEN: usize = 100_000;

/// The two histories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Book {
    /// `/backups/histories`: entries name `system.name` and `job.drive`.
    Backups,
    /// `/recoveries/histories`: entries name `job.recoverySystemName` and `job.recoverDrive`.
    Recoveries,
}

impl Book {
    pub(super) fn path(self) -> &'static str {
        match self {
            Book::Backups => "backups/histories",
            Book::Recoveries => "recoveries/histories",
        }
    }
}

/// One page of a history answer.
#[derive(Debug, Deserialize)]
pub(super) struct HistoryPage {
    success: Option<bool>,
    data: Option<Vec<Entry>>,
    pagination: Option<super::wire::Pagination>,
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Entry {
    id: Option<Value>,
    system: Option<super::wire::Named>,
    job: Option<EntryJob>,
    result: Option<EntryResult>,
    time: Option<EntryTime>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJob {
    name: Option<Value>,
    drive: Option<Value>,
    recovery_system_name: Option<Value>,
    recover_drive: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct EntryResult {
    status: Option<Value>,
    description: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct EntryTime {
    start: Option<Value>,
    end: Option<Value>,
}

/// Decodes one page: its entries and whether another follows. `success: false` is an
/// upstream error, an answer without `data` a decode error.
pub(super) fn decode_page(body: &[u8]) -> Result<(Vec<Entry>, bool), Fault> {
    let page: HistoryPage = serde_json::from_slice(body).map_err(Fault::decode)?;
    if page.success == Some(false) {
        let message = page
            .error
            .as_ref()
            .and_then(Value::as_str)
            .map(|m| crate::text::truncate(m, 200))
            .unwrap_or_else(|| "no error message".to_string());
        return Err(Fault::new(
            Outcome::UpstreamError,
            format!("success=false: {message}"),
        ));
    }
    let more = page.pagination.as_ref().is_some_and(|p| p.has_next());
    let entries = page
        .data
        .ok_or_else(|| Fault::decode("history answer has no data"))?;
    Ok((entries, more))
}

/// One run as the history tells it, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Run {
    pub id: String,
    pub job: String,
    pub server: String,
    /// The drives or partitions it covered (empty: not said).
    pub volumes: Vec<String>,
    pub status: Status,
    pub description: String,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// The runs of one history fetch, parsed; entries without an id or a job name are skipped
/// (counted as missing fields).
pub(super) fn runs(fields: &FieldParser, book: Book, entries: Vec<Entry>) -> Vec<Run> {
    let mut out = Vec::new();
    // A page longer than asked is cut to what was asked (the body is capped already).
    for entry in entries.into_iter().take(PAGE_LIMIT as usize) {
        let job = entry.job.unwrap_or_default();
        let Some(id) = fields.text("other", entry.id.as_ref()) else {
            fields.missing("other");
            continue;
        };
        let Some(name) = fields
            .text("info.name", job.name.as_ref())
            .filter(|n| !n.is_empty())
        else {
            fields.missing("info.name");
            continue;
        };
        let (server, volumes) = match book {
            Book::Backups => (
                fields.text("system.name", entry.system.as_ref().and_then(|s| s.name.as_ref())),
                fields.text("drive", job.drive.as_ref()).into_iter().collect(),
            ),
            Book::Recoveries => (
                fields.text("system.target.name", job.recovery_system_name.as_ref()),
                match job.recover_drive {
                    Some(Value::Array(drives)) => drives
                        .iter()
                        .filter_map(|d| fields.text("drive", Some(d)))
                        .collect(),
                    other => fields.text("drive", other.as_ref()).into_iter().collect(),
                },
            ),
        };
        let result = entry.result.unwrap_or_default();
        let time = entry.time.unwrap_or_default();
        let (status, _) = fields.status("status", result.status.as_ref());
        out.push(Run {
            id,
            job: name,
            server: server.unwrap_or_default(),
            volumes,
            status,
            description: fields
                .text("message", result.description.as_ref())
                .unwrap_or_default(),
            start: fields.time("start", time.start.as_ref()),
            end: fields.time("end", time.end.as_ref()),
        });
    }
    out
}

/// What one history says, and the runs already reported, per history.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// The runs of the newest fetch.
    runs: Vec<Run>,
    /// Ids of the runs seen in an earlier fetch, or reported already.
    seen: HashSet<String>,
    /// Whether the first fetch happened (its runs are the baseline: not counted).
    primed: bool,
    /// The jobs (name, server, volume) the history has named: their runs are counted from
    /// it alone. A job it never named is counted from the monitoring answers' transitions.
    known: HashSet<(String, String, String)>,
}

impl Ledger {
    /// Takes a fresh fetch: the first one is the baseline (already-ended runs are not
    /// counted again after a restart; their last success still is).
    pub(super) fn update(&mut self, runs: Vec<Run>) {
        if !self.primed {
            self.seen.extend(runs.iter().map(|r| r.id.clone()));
            self.primed = true;
        }
        if self.seen.len() > MAX_SEEN {
            // Keep only what the newest fetch holds: older ids never come back in it.
            let current: HashSet<String> = runs.iter().map(|r| r.id.clone()).collect();
            self.seen.retain(|id| current.contains(id));
        }
        if self.known.len() > MAX_SEEN {
            self.known.clear();
        }
        self.runs = runs;
    }

    /// Applies the history to one job record of this book: the newest success end, the
    /// runs not reported before, and the latest result when the history's newest run of
    /// the job ended no earlier than what the monitoring answer shows and the job is not
    /// running now. A job the history does not name keeps the monitoring answer's
    /// counting; the first time it names one, the runs it lists are that job's baseline
    /// (the monitoring answers counted them), later ones are counted from the history.
    pub(super) fn apply(&mut self, job: &mut JobRecord) {
        let key = &job.key;
        let matching: Vec<&Run> = self
            .runs
            .iter()
            .filter(|r| {
                r.job == key.job_name
                    && r.server == key.server
                    && (key.volume.is_empty()
                        || r.volumes.is_empty()
                        || r.volumes.iter().any(|v| *v == key.volume))
            })
            .collect();
        if matching.is_empty() {
            return;
        }
        let name = (key.job_name.clone(), key.server.clone(), key.volume.clone());
        if self.known.insert(name) {
            self.seen.extend(matching.iter().map(|r| r.id.clone()));
        }
        let success = matching
            .iter()
            .filter(|r| matches!(r.status, Status::Completed | Status::CompletedWithWarnings))
            .filter_map(|r| r.end)
            .fold(None, |acc: Option<f64>, end| Some(acc.map_or(end, |a| a.max(end))));
        if let Some(end) = success {
            job.newest_success_end = Some(job.newest_success_end.map_or(end, |e| e.max(end)));
        }
        let mut ended = Vec::new();
        let mut newest: Option<&Run> = None;
        for run in &matching {
            if !self.seen.contains(&run.id) && run.status.is_terminal() {
                ended.push((run.end, run.status));
            }
            if run.end.is_some() && newest.is_none_or(|n| run.end > n.end) {
                newest = Some(run);
            }
        }
        ended.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        job.ended_runs = Some(ended.into_iter().map(|(_, s)| s).collect());
        let newest = newest.cloned();
        for run in matching {
            self.seen.insert(run.id.clone());
        }
        let Some(newest) = newest else {
            return;
        };
        let running = matches!(job.status, Status::Running);
        let later = match (newest.end, job.end_time) {
            (Some(h), Some(m)) => h >= m,
            (Some(_), None) => true,
            _ => false,
        };
        if running || !later || !newest.status.is_terminal() {
            return;
        }
        job.status = newest.status;
        job.start_time = newest.start.or(job.start_time);
        job.end_time = newest.end;
        job.failure = (newest.status == Status::Failed)
            .then(|| Failure::new(&newest.description, ""));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::model::JobKey;
    use crate::status::StatusMap;
    use crate::systems::zdm::labels::SYSTEM;
    use crate::systems::zdm::vendor;
    use crate::telemetry::Telemetry;

    fn fields(telemetry: &Telemetry) -> FieldParser {
        FieldParser::new(
            SYSTEM,
            Arc::from("u"),
            chrono_tz::UTC,
            StatusMap::new(),
            telemetry.clone(),
        )
        .with_labels(super::super::map::label)
    }

    fn record(operation: &str, job: &str, server: &str, volume: &str, status: Status, end: Option<f64>) -> JobRecord {
        JobRecord {
            key: Arc::new(JobKey {
                system: SYSTEM,
                upstream: Arc::from("u"),
                operation: operation.to_string(),
                job_name: job.to_string(),
                server: server.to_string(),
                volume: volume.to_string(),
            }),
            status,
            raw_status: String::new(),
            progress: None,
            elapsed_seconds: None,
            start_time: None,
            end_time: end,
            message: None,
            info: Vec::new(),
            ended_runs: None,
            newest_success_end: None,
            failure: None,
            size_bytes: None,
        }
    }

    /// 2026-03-03 in UTC, the histories' examples.
    const H0230: f64 = 1_772_505_000.0;
    const H0305: f64 = 1_772_507_100.0;

    /// Every version with histories: the documented answers decode, each entry's result
    /// maps (`COMPLETE` completed, `FAIL` failed), and the paged answer says more follow.
    #[test]
    fn every_versions_documented_histories_decode() {
        for version in ["1.1.0", "1.2.0", "1.3.0", "1.3.1", "2.0.0", "2.0.1"] {
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            let (entries, more) = decode_page(&vendor::read(version, "backups-histories.json")).unwrap();
            assert!(!more, "{version}");
            let backups = runs(&fields, Book::Backups, entries);
            let got: Vec<_> = backups.iter().map(|r| (r.job.as_str(), r.server.as_str(), r.status, r.end)).collect();
            assert_eq!(
                got,
                [
                    ("daily-backup", "server-01", Status::Completed, Some(H0230)),
                    ("weekly-backup", "server-02", Status::Failed, Some(H0305)),
                ],
                "{version}"
            );
            let (_, more) = decode_page(&vendor::read(version, "backups-histories-paged.json")).unwrap();
            assert!(more, "{version}");
            let (entries, _) = decode_page(&vendor::read(version, "recoveries-histories.json")).unwrap();
            let recoveries = runs(&fields, Book::Recoveries, entries);
            assert_eq!(recoveries[0].server, "target-server", "{version}");
            assert_eq!(recoveries[0].volumes, ["C:", "D:"], "{version}");
            assert_eq!(recoveries[1].status, Status::Failed, "{version}");
            let fault = decode_page(&vendor::read(version, "backups-histories-401.json")).unwrap_err();
            assert_eq!(fault.outcome, Outcome::UpstreamError, "{version}");
            assert_eq!(telemetry.parse_error_count("zdm", "u", "status"), 0, "{version}");
        }
    }

    /// The first fetch is the baseline: its last success is used, its runs are not counted;
    /// a later run (new id) is counted once, and its failure becomes the latest result.
    #[test]
    fn the_ledger_counts_new_runs_once_and_keeps_the_last_success() {
        let run = |id: &str, status, end: f64| Run {
            id: id.to_string(),
            job: "nightly".to_string(),
            server: "app-01".to_string(),
            volumes: vec!["/".to_string()],
            status,
            description: if status == Status::Failed { "disk full".into() } else { String::new() },
            start: Some(end - 60.0),
            end: Some(end),
        };
        let mut ledger = Ledger::default();
        ledger.update(vec![run("1", Status::Completed, 100.0)]);
        // Restarted while the job runs: no end in the monitoring answer.
        let mut job = record("backup", "nightly", "app-01", "/", Status::Running, None);
        ledger.apply(&mut job);
        assert_eq!(job.newest_success_end, Some(100.0));
        assert_eq!(job.ended_runs, Some(vec![]));
        assert_eq!(job.status, Status::Running, "a running job stays running");

        // Between two polls a run began and ended, failed; the monitoring answer still
        // shows the older run as Scheduled (completed).
        ledger.update(vec![run("2", Status::Failed, 200.0), run("1", Status::Completed, 100.0)]);
        let mut job = record("backup", "nightly", "app-01", "/", Status::Completed, Some(100.0));
        ledger.apply(&mut job);
        assert_eq!(job.ended_runs, Some(vec![Status::Failed]));
        assert_eq!((job.status, job.end_time), (Status::Failed, Some(200.0)));
        assert_eq!(job.failure.as_ref().map(|f| f.reason.as_str()), Some("disk full"));
        assert_eq!(job.newest_success_end, Some(100.0));
        // Seen once, counted once.
        let mut again = record("backup", "nightly", "app-01", "/", Status::Completed, Some(100.0));
        ledger.apply(&mut again);
        assert_eq!(again.ended_runs, Some(vec![]));
        // Another job, server or volume is not matched.
        for (job, server, volume) in [("other", "app-01", "/"), ("nightly", "app-02", "/"), ("nightly", "app-01", "/home")] {
            let mut other = record("backup", job, server, volume, Status::Pending, None);
            ledger.apply(&mut other);
            assert_eq!((other.ended_runs, other.newest_success_end), (None, None), "counted from the monitoring answers");
        }
    }

    proptest! {
        /// Any bytes: a page or an error, never a panic; the runs parsed from any page are
        /// at most its entries.
        #[test]
        fn any_body_decodes_or_fails(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            if let Ok((entries, _)) = decode_page(&body) {
                let n = entries.len();
                prop_assert!(runs(&fields, Book::Recoveries, entries).len() <= n);
            }
        }

        /// Arbitrary entries (any JSON scalars in the documented places) parse without a
        /// panic, and applying them to a record leaves it consistent.
        #[test]
        fn arbitrary_entries_apply(id in any::<u32>(), name in "[a-z]{0,3}", status in "\\PC{0,8}", end in proptest::option::of(0u32..4_000_000_000)) {
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            let body = serde_json::json!({"success": true, "data": [{
                "id": id, "system": {"name": "s"}, "job": {"name": name, "drive": "/"},
                "result": {"status": status}, "time": {"end": end.map(|e| e.to_string())}
            }]});
            let (entries, _) = decode_page(body.to_string().as_bytes()).unwrap();
            let mut ledger = Ledger::default();
            ledger.update(Vec::new());
            ledger.update(runs(&fields, Book::Backups, entries));
            let mut job = record("backup", &name, "s", "/", Status::Pending, None);
            ledger.apply(&mut job);
            let counted = job.ended_runs.as_ref().map_or(0, Vec::len);
            prop_assert!(counted <= 1);
        }
    }
}
