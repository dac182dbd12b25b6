//! The store the pollers write and `/metrics` reads.
//!
//! Every target keeps the records of its last successful poll and its pre-rendered series.
//! One job identity may be reported by several targets (a server and a configured job):
//! the target that observed it most recently owns it, and only the owner renders it, so
//! there is never a duplicate series. Run counting and the last success are kept per
//! identity, whoever reports it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::{self, Family, FamilyBuffers, JobHistory, TargetHealth, FAMILY_COUNT};
use crate::model::{JobKey, JobRecord, PollOutput, ServerSummary, TargetId};
use crate::parse::Status;

/// What a finished poll reports to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum PollResult {
    /// The target answered; its jobs are exactly these.
    Success(PollOutput),
    /// The target answered that it does not exist (404): its series go at once.
    Gone,
    /// The poll failed; last-known series stay until `stale_after`.
    Failed,
}

/// The run a record belongs to, to tell a new run from the same one seen again.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RunMark {
    status: Status,
    start: Option<f64>,
    end: Option<f64>,
}

impl RunMark {
    fn of(job: &JobRecord) -> Self {
        RunMark {
            status: job.status,
            start: job.start_time,
            end: job.end_time,
        }
    }

    /// True when `self` is a run that ended and that `prev` had not already shown ending.
    fn ends_new_run(&self, prev: &RunMark) -> bool {
        if !self.status.is_terminal() {
            return false;
        }
        if !prev.status.is_terminal() {
            return true;
        }
        // Both ended: a different start (or, without starts, a different end) is another run
        // that began and finished between two polls.
        match (self.start, prev.start) {
            (Some(a), Some(b)) => a != b,
            _ => matches!((self.end, prev.end), (Some(a), Some(b)) if a != b),
        }
    }
}

#[derive(Debug)]
struct Memory {
    history: JobHistory,
    last: RunMark,
}

#[derive(Debug)]
struct Held {
    record: JobRecord,
    /// Store-wide sequence number of the observation; the highest holder owns the key.
    seen: u64,
}

#[derive(Debug)]
struct TargetState {
    polled: bool,
    up: bool,
    last_success_unix: Option<f64>,
    last_success_at: Option<Instant>,
    poll_duration: Option<f64>,
    stale_after: Duration,
    jobs: HashMap<JobKey, Held>,
    summaries: Vec<ServerSummary>,
    rendered: [Bytes; FAMILY_COUNT],
}

#[derive(Debug, Default)]
struct Inner {
    targets: BTreeMap<TargetId, TargetState>,
    /// Every target that holds a record of the key.
    holders: HashMap<JobKey, Vec<TargetId>>,
    memory: HashMap<JobKey, Memory>,
    seq: u64,
    ready_latched: bool,
}

/// A job as the landing page shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub record: JobRecord,
    pub target: TargetId,
    pub target_up: bool,
    pub last_success: Option<f64>,
}

/// A target as the landing page shows it.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub target: TargetId,
    pub polled: bool,
    pub up: bool,
    pub last_success: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing all metrics, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the store track exactly these targets: new ones start unpolled, dropped ones
    /// lose their series.
    pub fn set_targets(&self, targets: &[(TargetId, Duration)]) {
        let mut inner = self.lock();
        let wanted: HashMap<&TargetId, Duration> = targets.iter().map(|(t, d)| (t, *d)).collect();
        let dropped: Vec<TargetId> = inner
            .targets
            .keys()
            .filter(|t| !wanted.contains_key(t))
            .cloned()
            .collect();
        for t in dropped {
            inner.replace_jobs(&t, Vec::new(), Vec::new());
            inner.targets.remove(&t);
        }
        for (t, stale_after) in targets {
            match inner.targets.get_mut(t) {
                Some(state) => state.stale_after = *stale_after,
                None => {
                    let state = TargetState {
                        polled: false,
                        up: false,
                        last_success_unix: None,
                        last_success_at: None,
                        poll_duration: None,
                        stale_after: *stale_after,
                        jobs: HashMap::new(),
                        summaries: Vec::new(),
                        rendered: Default::default(),
                    };
                    inner.targets.insert(t.clone(), state);
                }
            }
        }
    }

    /// Records the end of one poll of `target`.
    pub fn record_poll(
        &self,
        target: &TargetId,
        result: PollResult,
        duration: Duration,
        now_unix: f64,
    ) {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(state) = inner.targets.get_mut(target) else {
            // The target was removed by a reload while its poll ran.
            return;
        };
        state.polled = true;
        state.poll_duration = Some(duration.as_secs_f64());
        match result {
            PollResult::Success(output) => {
                state.up = true;
                state.last_success_unix = Some(now_unix);
                state.last_success_at = Some(now);
                inner.replace_jobs(target, output.jobs, output.summaries);
            }
            PollResult::Gone => {
                state.up = false;
                inner.replace_jobs(target, Vec::new(), Vec::new());
            }
            PollResult::Failed => {
                state.up = false;
                let stale = match state.last_success_at {
                    Some(at) => now.duration_since(at) >= state.stale_after,
                    None => true,
                };
                if stale && (!state.jobs.is_empty() || !state.summaries.is_empty()) {
                    inner.replace_jobs(target, Vec::new(), Vec::new());
                } else {
                    inner.rerender(target);
                }
            }
        }
    }

    /// True once every target has finished its first poll. Stays true afterwards, so a
    /// reload that adds targets does not flap readiness.
    pub fn ready(&self) -> bool {
        let mut inner = self.lock();
        if !inner.ready_latched && inner.targets.values().all(|t| t.polled) {
            inner.ready_latched = true;
        }
        inner.ready_latched
    }

    /// The exposition of all job and target families: ready bytes, no formatting.
    pub fn exposition(&self) -> Vec<Bytes> {
        let inner = self.lock();
        let mut out = Vec::new();
        for family in Family::ALL {
            let i = family as usize;
            let mut chunks = inner
                .targets
                .values()
                .map(|t| &t.rendered[i])
                .filter(|b| !b.is_empty())
                .peekable();
            if chunks.peek().is_none() {
                continue;
            }
            out.push(Bytes::from(family.header()));
            out.extend(chunks.cloned());
        }
        out
    }

    /// Every job that has series, sorted by identity, for the landing page.
    pub fn jobs(&self) -> Vec<JobView> {
        let inner = self.lock();
        let mut views: Vec<JobView> = inner
            .holders
            .iter()
            .filter_map(|(key, holders)| {
                let owner = inner.owner(key, holders)?;
                let state = inner.targets.get(owner)?;
                let held = state.jobs.get(key)?;
                Some(JobView {
                    record: held.record.clone(),
                    target: owner.clone(),
                    target_up: state.up,
                    last_success: inner.memory.get(key).and_then(|m| m.history.last_success),
                })
            })
            .collect();
        views.sort_by(|a, b| a.record.key.cmp(&b.record.key));
        views
    }

    pub fn targets(&self) -> Vec<TargetView> {
        let inner = self.lock();
        inner
            .targets
            .iter()
            .map(|(t, s)| TargetView {
                target: t.clone(),
                polled: s.polled,
                up: s.up,
                last_success: s.last_success_unix,
            })
            .collect()
    }
}

impl Inner {
    fn owner<'a>(&'a self, key: &JobKey, holders: &'a [TargetId]) -> Option<&'a TargetId> {
        holders.iter().max_by_key(|t| {
            self.targets
                .get(*t)
                .and_then(|s| s.jobs.get(key))
                .map_or(0, |h| h.seen)
        })
    }

    /// The keys `target` holds that it owns.
    fn holders_owner_view(&self, target: &TargetId) -> HashSet<JobKey> {
        let Some(state) = self.targets.get(target) else {
            return HashSet::new();
        };
        state
            .jobs
            .keys()
            .filter(|k| {
                self.holders
                    .get(*k)
                    .and_then(|h| self.owner(k, h))
                    .is_some_and(|o| o == target)
            })
            .cloned()
            .collect()
    }

    /// Replaces the records `target` holds and re-renders every target whose output changed.
    fn replace_jobs(
        &mut self,
        target: &TargetId,
        jobs: Vec<JobRecord>,
        summaries: Vec<ServerSummary>,
    ) {
        let mut affected: HashSet<TargetId> = HashSet::new();
        affected.insert(target.clone());

        let mut new_jobs: HashMap<JobKey, Held> = HashMap::with_capacity(jobs.len());
        for record in jobs {
            self.seq += 1;
            // Within one response a later duplicate replaces an earlier one.
            new_jobs.insert(
                record.key.clone(),
                Held {
                    record,
                    seen: self.seq,
                },
            );
        }
        let old_keys: Vec<JobKey> = self
            .targets
            .get(target)
            .map(|s| s.jobs.keys().cloned().collect())
            .unwrap_or_default();

        // Keys the target no longer reports: drop its claim; another holder may take over.
        for key in old_keys.iter().filter(|k| !new_jobs.contains_key(*k)) {
            if let Some(holders) = self.holders.get_mut(key) {
                holders.retain(|t| t != target);
                if holders.is_empty() {
                    self.holders.remove(key);
                    self.memory.remove(key);
                } else {
                    affected.extend(holders.iter().cloned());
                }
            }
        }
        // Keys it reports now: it becomes the owner; previous owners must drop the series.
        for (key, held) in &new_jobs {
            let holders = self.holders.entry(key.clone()).or_default();
            affected.extend(holders.iter().cloned());
            if !holders.contains(target) {
                holders.push(target.clone());
            }
            observe(&mut self.memory, &held.record);
        }
        if let Some(state) = self.targets.get_mut(target) {
            state.jobs = new_jobs;
            state.summaries = summaries;
        }
        for t in affected {
            self.rerender(&t);
        }
    }

    fn rerender(&mut self, target: &TargetId) {
        let owned = self.holders_owner_view(target);
        if let Some(state) = self.targets.get(target) {
            let rendered = render(target, state, &owned, &self.memory);
            if let Some(state) = self.targets.get_mut(target) {
                state.rendered = rendered;
            }
        }
    }
}

/// Updates run counting and the last success with one observation of a job.
fn observe(memory: &mut HashMap<JobKey, Memory>, job: &JobRecord) {
    let mark = RunMark::of(job);
    let own_success = match job.status {
        Status::Completed | Status::CompletedWithWarnings => job.end_time,
        _ => None,
    };
    let success_end = match (own_success, job.newest_success_end) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let first_sight = !memory.contains_key(&job.key);
    let m = memory.entry(job.key.clone()).or_insert_with(|| Memory {
        history: JobHistory::default(),
        last: mark,
    });
    let ended: Vec<Status> = match &job.ended_runs {
        Some(reported) => reported.clone(),
        // First sight: a run that already ended is not counted, so a restart adds nothing.
        None if first_sight => Vec::new(),
        None if mark.ends_new_run(&m.last) => vec![job.status],
        None => Vec::new(),
    };
    for status in ended {
        if let Some(i) = metrics::RUN_RESULTS.iter().position(|r| *r == status) {
            m.history.runs[i] += 1;
        }
    }
    if let Some(end) = success_end {
        if m.history.last_success.is_none_or(|prev| end > prev) {
            m.history.last_success = Some(end);
        }
    }
    m.last = mark;
}

fn render(
    target: &TargetId,
    state: &TargetState,
    owned: &HashSet<JobKey>,
    memory: &HashMap<JobKey, Memory>,
) -> [Bytes; FAMILY_COUNT] {
    let mut out = FamilyBuffers::new();
    let mut jobs: Vec<&Held> = state
        .jobs
        .values()
        .filter(|h| owned.contains(&h.record.key))
        .collect();
    jobs.sort_by(|a, b| a.record.key.cmp(&b.record.key));
    let empty = JobHistory::default();
    for held in jobs {
        let history = memory.get(&held.record.key).map_or(&empty, |m| &m.history);
        metrics::render_job(&mut out, &held.record, history);
    }
    for summary in &state.summaries {
        metrics::render_summary(&mut out, target, summary);
    }
    if state.polled {
        let health = TargetHealth {
            up: state.up,
            last_success: state.last_success_unix,
            poll_duration: state.poll_duration,
        };
        metrics::render_target(&mut out, target, &health);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{System, TargetKind};

    fn target(kind: TargetKind, name: &str) -> TargetId {
        TargetId {
            system: System::Zdm,
            upstream: Arc::from("u"),
            kind,
            target: Arc::from(name),
        }
    }

    fn job(status: Status, start: Option<f64>, end: Option<f64>) -> JobRecord {
        JobRecord {
            key: JobKey {
                system: System::Zdm,
                upstream: Arc::from("u"),
                operation: "backup".into(),
                job_name: "j".into(),
                server: "s".into(),
                volume: "/".into(),
            },
            status,
            raw_status: String::new(),
            progress: None,
            elapsed_seconds: None,
            start_time: start,
            end_time: end,
            info: Vec::new(),
            message: None,
            ended_runs: None,
            newest_success_end: None,
        }
    }

    fn text(store: &Store) -> String {
        store
            .exposition()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn runs(store: &Store, result: &str) -> Option<f64> {
        let needle = format!("result=\"{result}\"}} ");
        text(store)
            .lines()
            .find(|l| l.starts_with("backup_job_runs_total{") && l.contains(&needle))
            .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
    }

    fn poll(store: &Store, t: &TargetId, jobs: Vec<JobRecord>) {
        let output = PollOutput {
            jobs,
            summaries: Vec::new(),
        };
        store.record_poll(
            t,
            PollResult::Success(output),
            Duration::from_millis(5),
            1.0,
        );
    }

    #[test]
    fn runs_count_transitions_once_and_back_to_back_runs_by_start_time() {
        let store = Store::new();
        let t = target(TargetKind::BackupJob, "j");
        store.set_targets(&[(t.clone(), Duration::from_secs(90))]);
        poll(
            &store,
            &t,
            vec![job(Status::Completed, Some(1.0), Some(2.0))],
        );
        assert_eq!(
            runs(&store, "completed"),
            Some(0.0),
            "already finished when first seen"
        );
        poll(&store, &t, vec![job(Status::Running, Some(10.0), None)]);
        poll(
            &store,
            &t,
            vec![job(Status::Failed, Some(10.0), Some(20.0))],
        );
        poll(
            &store,
            &t,
            vec![job(Status::Failed, Some(10.0), Some(20.0))],
        );
        assert_eq!(runs(&store, "failed"), Some(1.0));
        // A whole run between two polls: a new start time.
        poll(
            &store,
            &t,
            vec![job(Status::Completed, Some(30.0), Some(40.0))],
        );
        assert_eq!(runs(&store, "completed"), Some(1.0));
        // Without start times, a different end time tells the runs apart.
        poll(&store, &t, vec![job(Status::Cancelled, None, Some(50.0))]);
        poll(&store, &t, vec![job(Status::Cancelled, None, Some(50.0))]);
        assert_eq!(runs(&store, "cancelled"), Some(1.0));
        assert!(text(&store).contains("backup_job_last_success_time_seconds{system=\"zdm\",upstream=\"u\",operation=\"backup\",job_name=\"j\",server=\"s\",volume=\"/\"} 40\n"));
    }

    #[test]
    fn one_identity_from_two_targets_renders_once_and_survives_either_leaving() {
        let store = Store::new();
        let server = target(TargetKind::Server, "s");
        let single = target(TargetKind::BackupJob, "j");
        store.set_targets(&[
            (server.clone(), Duration::from_secs(90)),
            (single.clone(), Duration::from_secs(90)),
        ]);
        poll(&store, &server, vec![job(Status::Running, Some(1.0), None)]);
        poll(
            &store,
            &single,
            vec![job(Status::Completed, Some(1.0), Some(2.0))],
        );
        let count = |store: &Store| {
            text(store)
                .lines()
                .filter(|l| l.starts_with("backup_job_info{"))
                .count()
        };
        assert_eq!(count(&store), 1);
        assert!(
            text(&store).contains("status=\"completed\"} 1"),
            "newest observation wins"
        );
        assert_eq!(
            runs(&store, "completed"),
            Some(1.0),
            "counted once across both targets"
        );
        poll(&store, &single, vec![]);
        assert_eq!(count(&store), 1, "the server still reports it");
        poll(&store, &server, vec![]);
        assert_eq!(count(&store), 0);
    }

    #[test]
    fn failures_keep_series_until_stale_and_gone_drops_them_at_once() {
        let store = Store::new();
        let t = target(TargetKind::BackupJob, "j");
        store.set_targets(&[(t.clone(), Duration::from_millis(50))]);
        assert!(!store.ready());
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        assert!(store.ready());
        store.record_poll(&t, PollResult::Failed, Duration::ZERO, 2.0);
        let m = text(&store);
        assert!(m.contains(
            "backup_target_up{system=\"zdm\",upstream=\"u\",kind=\"backup_job\",target=\"j\"} 0"
        ));
        assert!(m.contains("backup_job_status{"));
        std::thread::sleep(Duration::from_millis(60));
        store.record_poll(&t, PollResult::Failed, Duration::ZERO, 3.0);
        assert!(!text(&store).contains("backup_job_status{"));
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        store.record_poll(&t, PollResult::Gone, Duration::ZERO, 4.0);
        assert!(!text(&store).contains("backup_job_status{"));
        assert!(text(&store).contains("backup_target_last_success_time_seconds{system=\"zdm\",upstream=\"u\",kind=\"backup_job\",target=\"j\"} 1\n"));
    }

    #[test]
    fn families_are_never_split_across_targets() {
        let store = Store::new();
        let a = target(TargetKind::BackupJob, "a");
        let b = target(TargetKind::BackupJob, "b");
        store.set_targets(&[
            (a.clone(), Duration::from_secs(9)),
            (b.clone(), Duration::from_secs(9)),
        ]);
        let mut other = job(Status::Running, None, None);
        other.key.job_name = "k".into();
        poll(&store, &a, vec![job(Status::Running, None, None)]);
        poll(&store, &b, vec![other]);
        let m = text(&store);
        let mut seen: Vec<&str> = Vec::new();
        for line in m.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            if seen.last() != Some(&name) {
                assert!(!seen.contains(&name), "{name} split:\n{m}");
                seen.push(name);
            }
        }
        assert_eq!(m.matches("# TYPE backup_job_status gauge").count(), 1);
    }
}
