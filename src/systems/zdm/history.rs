//! ZDM's run histories (1.2.0 on): `GET {prefix}/backups/histories` and
//! `GET {prefix}/recoveries/histories`, read for the upstream (not per job) at most once per
//! interval in the steady state: only the histories its polled targets need, taking turns
//! when both are, each asked newest first (`sort=desc`, `limit`) and read past its first
//! page only while every entry of a page is new (bounded). Each job's last success, its run
//! counts and its latest result come from them, so an exporter restart loses no last
//! success and a run that began and ended between two polls is counted.
//!
//! Only the documented fields are read: `id`, `system.name`, `job.name`, `job.drive`
//! (backups), `job.recoverySystemName` and `job.recoverDrive` (recoveries), `result.status`,
//! `result.description`, `time.start`, `time.end`; `pagination.hasNextPage` sits beside
//! `data` in these answers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::model::{Failure, JobKey, JobRecord};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::FieldParser;
use crate::status::Status;

/// Entries asked per page (`limit`; ZDM's default is 20) by the first read and while few
/// runs end: one page holds the runs that ended in an interval of a large upstream (10,000
/// jobs running every two minutes end about 420 runs every 5 s).
pub(super) const PAGE_LIMIT: u32 = 500;
/// The most entries asked per page: after a read that found more new runs than half a page,
/// the next asks twice as many (a page of 5,000 entries is about 2 MB).
pub(super) const MAX_LIMIT: u32 = 5_000;
/// Pages read per fetch at most: the first read (the baseline) takes the newest 2,000 runs;
/// a later read goes past its first page only while every entry of a page is new.
pub(super) const MAX_PAGES: u32 = 4;

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

impl Book {
    const ALL: [Book; 2] = [Book::Backups, Book::Recoveries];

    fn index(self) -> usize {
        match self {
            Book::Backups => 0,
            Book::Recoveries => 1,
        }
    }
}

/// When to read which history: a history is read the first time a target needs it (its
/// baseline: the last successes after a restart), then the upstream reads at most one
/// history per interval, the one its targets need that was read the longest ago (so with
/// both needed they take turns). Intervals are counted from the first read, each centred
/// on a multiple of `interval`, so a target polled every interval with some jitter lands
/// in a new one each time.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    wanted: [bool; 2],
    read_at: [Option<Instant>; 2],
    epoch: Option<Instant>,
    last_slot: Option<u64>,
}

impl Schedule {
    /// A target of `book` is polled at `now`: the history to read now, if any.
    pub(super) fn due(&mut self, book: Book, now: Instant, interval: Duration) -> Option<Book> {
        let i = book.index();
        if let Some(wanted) = self.wanted.get_mut(i) {
            *wanted = true;
        }
        let epoch = *self.epoch.get_or_insert(now);
        let elapsed = now.saturating_duration_since(epoch).as_secs_f64();
        let slot = (elapsed / interval.as_secs_f64().max(0.001) + 0.5).floor() as u64;
        let never_read = self.read_at.get(i).is_some_and(Option::is_none);
        let pick = if never_read {
            Some(book)
        } else if self.last_slot != Some(slot) {
            Book::ALL
                .into_iter()
                .filter(|b| self.wanted.get(b.index()) == Some(&true))
                .min_by_key(|b| self.read_at.get(b.index()).copied().flatten())
        } else {
            None
        };
        if let Some(read) = pick {
            self.last_slot = Some(slot);
            if let Some(at) = self.read_at.get_mut(read.index()) {
                *at = Some(now);
            }
        }
        pick
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
    // A page longer than any asked is cut (the body is capped already).
    for entry in entries.into_iter().take(MAX_LIMIT as usize) {
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

/// Runs held per history: those of its last `KEEP_READS` reads (a target polled every
/// interval has seen them by then).
const KEEP_READS: u64 = 4;
/// Entry ids remembered per history to tell a new entry from one read before: two of the
/// longest reads, so an id on a first page is always still known.
const MAX_IDS: usize = 2 * (MAX_LIMIT * MAX_PAGES) as usize;
/// Job identities whose reported runs are remembered per history; past it they start over
/// (their runs listed at that time become a baseline again).
const MAX_RECORDS: usize = 100_000;
/// A failed run's description is kept to this many characters.
const MAX_DESCRIPTION: usize = 512;

/// One run held, with the order it was read in.
#[derive(Debug)]
struct Held {
    run: Run,
    /// Increases with every new entry read: a job identity has reported every run up to
    /// a sequence number.
    seq: u64,
    /// The read that brought it.
    read: u64,
}

/// What one history has said: the runs of its last few reads by job name, the ids read
/// (to read only what is new), and per job identity the newest run reported to it.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    runs: HashMap<String, Vec<Held>>,
    ids: HashSet<String>,
    order: VecDeque<String>,
    seq: u64,
    /// Reads finished.
    reads: u64,
    /// New runs taken by the read under way.
    fresh: usize,
    /// The `limit` of the next read (0: [`PAGE_LIMIT`]).
    limit: u32,
    /// The newest run (sequence number) reported to each job identity the history has
    /// named. An identity it never named is counted from the monitoring answers.
    reported: HashMap<Arc<JobKey>, u64>,
}

impl Ledger {
    /// Whether a read has finished: the runs ended before it are the baseline.
    pub(super) fn primed(&self) -> bool {
        self.reads > 0
    }

    /// The `limit` the next read asks: [`PAGE_LIMIT`], or twice the new runs of the last
    /// read (rounded up to a hundred), at most [`MAX_LIMIT`], so that one page holds what
    /// is new in the steady state.
    pub(super) fn limit(&self) -> u32 {
        if self.limit == 0 {
            PAGE_LIMIT
        } else {
            self.limit
        }
    }

    /// Takes one page of a read, newest first; returns how many of its runs it had not
    /// read before.
    pub(super) fn ingest(&mut self, runs: Vec<Run>) -> usize {
        let mut new = 0;
        for mut run in runs {
            if self.ids.contains(&run.id) {
                continue;
            }
            new += 1;
            self.ids.insert(run.id.clone());
            self.order.push_back(run.id.clone());
            if self.order.len() > MAX_IDS {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
            if run.description.len() > MAX_DESCRIPTION {
                run.description = crate::text::truncate(&run.description, MAX_DESCRIPTION);
            }
            self.seq += 1;
            let held = Held {
                run,
                seq: self.seq,
                read: self.reads,
            };
            self.runs.entry(held.run.job.clone()).or_default().push(held);
        }
        self.fresh = self.fresh.saturating_add(new);
        new
    }

    /// Ends a read: runs older than the last [`KEEP_READS`] reads are let go, and the next
    /// read's `limit` fits what this one found new (the first read, the baseline, says
    /// nothing of what ends in an interval).
    pub(super) fn finish_read(&mut self) {
        if self.reads > 0 {
            let wanted = u32::try_from(self.fresh.saturating_mul(2)).unwrap_or(MAX_LIMIT);
            self.limit = wanted.div_ceil(100).saturating_mul(100).clamp(PAGE_LIMIT, MAX_LIMIT);
        }
        self.fresh = 0;
        self.reads += 1;
        let oldest = self.reads.saturating_sub(KEEP_READS);
        self.runs.retain(|_, held| {
            held.retain(|h| h.read >= oldest);
            !held.is_empty()
        });
        if self.reported.len() > MAX_RECORDS {
            self.reported.clear();
        }
    }

    /// Applies the history to one job record of this book: the newest success end, the
    /// runs not reported before, and the latest result when the history's newest run of
    /// the job ended no earlier than what the monitoring answer shows and the job is not
    /// running now. A job the history does not name keeps the monitoring answer's
    /// counting; the first time it names one, the runs it holds are that job's baseline
    /// (the monitoring answers counted them), later ones are counted from the history.
    pub(super) fn apply(&mut self, job: &mut JobRecord) {
        let key = &job.key;
        let Some(held) = self.runs.get(&key.job_name) else {
            return;
        };
        let matching: Vec<&Held> = held
            .iter()
            .filter(|h| {
                h.run.server == key.server
                    && (key.volume.is_empty()
                        || h.run.volumes.is_empty()
                        || h.run.volumes.iter().any(|v| *v == key.volume))
            })
            .collect();
        let Some(newest_seq) = matching.iter().map(|h| h.seq).max() else {
            return;
        };
        let reported = match self.reported.get(key) {
            Some(&seq) => seq,
            None => newest_seq,
        };
        let success = matching
            .iter()
            .filter(|h| matches!(h.run.status, Status::Completed | Status::CompletedWithWarnings))
            .filter_map(|h| h.run.end)
            .fold(None, |acc: Option<f64>, end| Some(acc.map_or(end, |a| a.max(end))));
        if let Some(end) = success {
            job.newest_success_end = Some(job.newest_success_end.map_or(end, |e| e.max(end)));
        }
        let mut ended = Vec::new();
        let mut newest: Option<&Run> = None;
        for h in &matching {
            if h.seq > reported && h.run.status.is_terminal() {
                ended.push((h.run.end, h.run.status));
            }
            if h.run.end.is_some() && newest.is_none_or(|n| h.run.end > n.end) {
                newest = Some(&h.run);
            }
        }
        ended.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        job.ended_runs = Some(ended.into_iter().map(|(_, s)| s).collect());
        let newest = newest.cloned();
        self.reported
            .insert(key.clone(), reported.max(newest_seq));
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

    fn read(ledger: &mut Ledger, runs: Vec<Run>) {
        ledger.ingest(runs);
        ledger.finish_read();
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
        read(&mut ledger, vec![run("1", Status::Completed, 100.0)]);
        // Restarted while the job runs: no end in the monitoring answer.
        let mut job = record("backup", "nightly", "app-01", "/", Status::Running, None);
        ledger.apply(&mut job);
        assert_eq!(job.newest_success_end, Some(100.0));
        assert_eq!(job.ended_runs, Some(vec![]));
        assert_eq!(job.status, Status::Running, "a running job stays running");

        // Between two polls a run began and ended, failed; the monitoring answer still
        // shows the older run as Scheduled (completed).
        // Newest first: the first page ends at the run read before.
        assert_eq!(ledger.ingest(vec![run("2", Status::Failed, 200.0), run("1", Status::Completed, 100.0)]), 1);
        ledger.finish_read();
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

    /// Reads taken over 20 intervals: the first of each history at once, then at most one
    /// a interval whatever the phase of the polls (three targets polled each interval, with
    /// jitter), the two histories taking turns; a history no target needs is never read.
    #[test]
    fn the_schedule_reads_one_history_per_interval_taking_turns() {
        let interval = Duration::from_secs(10);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut schedule = Schedule::default();
        let mut reads = Vec::new();
        for k in 0..20u64 {
            // Phases 0 s, 3.3 s and 6.6 s, each up to 0.4 s late or early.
            let jitter = |n: u64| (k * 7 + n * 3) % 9 * 100;
            for (phase, book) in [(0, Book::Backups), (3_300, Book::Backups), (6_600, Book::Recoveries)] {
                let now = at(k * 10_000 + phase + 400 + jitter(phase) - 400);
                if let Some(read) = schedule.due(book, now, interval) {
                    reads.push((k, read));
                }
            }
        }
        // Interval 0: each history's first read; then one per interval, in turns.
        assert_eq!(reads[..2], [(0, Book::Backups), (0, Book::Recoveries)]);
        assert!(reads.len() <= 2 + 20, "{reads:?}");
        assert!(reads.len() >= 19, "{reads:?}");
        for pair in reads[2..].windows(2) {
            assert_ne!(pair[0].1, pair[1].1, "turns: {reads:?}");
        }

        // Only backup targets: only the backup history, once per interval.
        let mut schedule = Schedule::default();
        let mut n = 0;
        for k in 0..20u64 {
            for phase in [0, 5_000] {
                if let Some(read) = schedule.due(Book::Backups, at(k * 10_000 + phase), interval) {
                    assert_eq!(read, Book::Backups);
                    n += 1;
                }
            }
        }
        // Intervals are centred on the first read: the polls half an interval later start
        // the second one, so 20 intervals hold 21 reads at most.
        assert!((20..=21).contains(&n), "{n}");
    }

    /// A page tells how many of its runs are new; runs stay for a few reads, then go.
    #[test]
    fn the_ledger_tells_new_entries_and_lets_old_reads_go() {
        let run = |id: u32| Run {
            id: id.to_string(),
            job: "nightly".to_string(),
            server: "app-01".to_string(),
            volumes: Vec::new(),
            status: Status::Completed,
            description: String::new(),
            start: None,
            end: Some(f64::from(id)),
        };
        let mut ledger = Ledger::default();
        assert!(!ledger.primed());
        assert_eq!(ledger.ingest(vec![run(2), run(1)]), 2);
        ledger.finish_read();
        assert!(ledger.primed());
        assert_eq!(ledger.ingest(vec![run(3), run(2), run(1)]), 1);
        ledger.finish_read();
        let held = |ledger: &Ledger| ledger.runs.get("nightly").map_or(0, Vec::len);
        assert_eq!(held(&ledger), 3);
        for _ in 0..KEEP_READS {
            ledger.finish_read();
        }
        assert_eq!(held(&ledger), 0, "gone after {KEEP_READS} reads");
        assert_eq!(ledger.ingest(vec![run(3)]), 0, "its id is still known");
        ledger.finish_read();

        // The page size follows what a read found new: twice that, 500 to 5,000.
        let many = |from: u32, n: u32| (from..from + n).rev().map(run).collect::<Vec<_>>();
        assert_eq!(ledger.limit(), PAGE_LIMIT);
        ledger.ingest(many(100, 1_201));
        ledger.finish_read();
        assert_eq!(ledger.limit(), 2_500);
        ledger.ingest(many(10_000, 9_000));
        ledger.finish_read();
        assert_eq!(ledger.limit(), MAX_LIMIT);
        ledger.ingest(many(30_000, 10));
        ledger.finish_read();
        assert_eq!(ledger.limit(), PAGE_LIMIT);
        let mut first = Ledger::default();
        first.ingest(many(1, 2_000));
        first.finish_read();
        assert_eq!(first.limit(), PAGE_LIMIT, "not from the baseline");
    }

    /// A recovery run over two drives is counted once for each drive's series.
    #[test]
    fn a_run_over_two_volumes_counts_for_each() {
        let run = |id: &str, status| Run {
            id: id.to_string(),
            job: "db-restore".to_string(),
            server: "dr-01".to_string(),
            volumes: vec!["C:".to_string(), "D:".to_string()],
            status,
            description: String::new(),
            start: Some(10.0),
            end: Some(20.0),
        };
        let mut ledger = Ledger::default();
        read(&mut ledger, vec![run("1", Status::Completed)]);
        for volume in ["C:", "D:"] {
            let mut job = record("recovery", "db-restore", "dr-01", volume, Status::Completed, Some(20.0));
            ledger.apply(&mut job);
            assert_eq!(job.ended_runs, Some(vec![]), "baseline: {volume}");
        }
        read(&mut ledger, vec![run("2", Status::Failed), run("1", Status::Completed)]);
        for volume in ["C:", "D:"] {
            let mut job = record("recovery", "db-restore", "dr-01", volume, Status::Completed, Some(20.0));
            ledger.apply(&mut job);
            assert_eq!(job.ended_runs, Some(vec![Status::Failed]), "{volume}");
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
            read(&mut ledger, Vec::new());
            read(&mut ledger, runs(&fields, Book::Backups, entries));
            let mut job = record("backup", &name, "s", "/", Status::Pending, None);
            ledger.apply(&mut job);
            let counted = job.ended_runs.as_ref().map_or(0, Vec::len);
            prop_assert!(counted <= 1);
        }
    }
}
