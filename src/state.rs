//! The store the pollers write and `/metrics` reads.
//!
//! Every target keeps the records of its last successful poll and its pre-rendered series.
//! One job identity may be reported by several targets (a server and a configured job):
//! the target that observed it most recently owns it, and only the owner renders it, so
//! there is never a duplicate series. Run counting and the last success are kept per
//! identity, whoever reports it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::{self, Family, FamilyBuffers, Format, JobHistory, Rendered, TargetHealth};
use crate::model::{JobKey, JobRecord, JobStatusSeries, PollOutput, ServerSummary, TargetId};
use crate::outcome::Outcome;
use crate::packed::{self, Answer, Chunks, Gzip, Packed};
use crate::status::Status;

/// Plain bytes [`Store::pack`] compresses between two looks at what polls changed (a few
/// milliseconds of compression): what polls hand over meanwhile is held twice only briefly.
const PACK_BATCH: usize = 1 << 20;

/// What a finished poll reports to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum PollResult {
    /// The target answered; its jobs are exactly these.
    Success(PollOutput),
    /// The target answered that it does not exist (404): its series go at once.
    Gone,
    /// The poll failed with this outcome; last-known series stay until `stale_after`.
    Failed(Outcome),
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

/// What the store keeps per job identity, whoever reports it.
#[derive(Debug)]
struct KeyState {
    /// Every target that holds a record of the key; the one that saw it last owns it.
    holders: Vec<TargetId>,
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
    /// The outcome that failed the last poll, and since when (Unix seconds) the target
    /// has been failing with it.
    failure: Option<(Outcome, f64)>,
    last_success_unix: Option<f64>,
    last_success_at: Option<Instant>,
    poll_duration: Option<f64>,
    stale_after: Duration,
    /// Which `backup_job_status` series the target's jobs export.
    job_status: JobStatusSeries,
    /// The records of the last successful poll, sorted by key (a few per target: a sorted
    /// vector costs far less memory than a hash table per target).
    jobs: Vec<Held>,
    summaries: Vec<ServerSummary>,
}

impl TargetState {
    /// Holds series that are older than `stale_after` allows.
    fn is_stale(&self, now: Instant) -> bool {
        let expired = match self.last_success_at {
            Some(at) => now.saturating_duration_since(at) >= self.stale_after,
            None => true,
        };
        expired && (!self.jobs.is_empty() || !self.summaries.is_empty())
    }
}

#[derive(Debug, Default)]
struct Inner {
    targets: BTreeMap<TargetId, TargetState>,
    /// One entry per job identity; records share its `Arc<JobKey>`.
    keys: HashMap<Arc<JobKey>, KeyState>,
    seq: u64,
    ready_latched: bool,
    /// Targets rendered since the last hand-over to [`Packed`], with the families rendered.
    rendered: Vec<(TargetId, Chunks, u32)>,
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
    /// The outcome failing the target and since when (Unix seconds).
    pub failure: Option<(Outcome, f64)>,
    pub last_success: Option<f64>,
}

/// The segments and a compressor for what a scrape finds still uncompressed.
struct Packing {
    packed: Packed,
    compressor: Option<flate2::Compress>,
}

pub struct Store {
    inner: Mutex<Inner>,
    /// Locked after `inner` when both are held.
    packing: Mutex<Packing>,
    /// Woken when a poll changed series that are not compressed yet.
    changed: tokio::sync::Notify,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            inner: Mutex::default(),
            packing: Mutex::new(Packing {
                packed: Packed::new(),
                compressor: None,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
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

    fn packing(&self) -> std::sync::MutexGuard<'_, Packing> {
        self.packing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands what `inner` rendered to the segments, laying the targets out again first when
    /// the set of targets changed.
    fn publish(&self, inner: &mut Inner, relayout: bool) {
        if !relayout && inner.rendered.is_empty() {
            return;
        }
        let mut packing = self.packing();
        if relayout {
            packing.packed.set_targets(inner.targets.keys());
        }
        let mut changed = relayout;
        for (target, chunks, families) in inner.rendered.drain(..) {
            changed |= packing.packed.update(&target, chunks, families);
        }
        drop(packing);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Makes the store track exactly these targets: new ones start unpolled, dropped ones
    /// lose their series.
    pub fn set_targets(&self, targets: &[(TargetId, Duration)]) {
        let with: Vec<_> = targets
            .iter()
            .map(|(t, d)| (t.clone(), *d, JobStatusSeries::StateSet))
            .collect();
        self.set_targets_with(&with);
    }

    /// [`Store::set_targets`] with each target's `job_status` mode; a target whose mode
    /// changed is rendered again at once.
    pub fn set_targets_with(&self, targets: &[(TargetId, Duration, JobStatusSeries)]) {
        let mut inner = self.lock();
        let wanted: HashMap<&TargetId, Duration> =
            targets.iter().map(|(t, d, _)| (t, *d)).collect();
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
        for (t, stale_after, job_status) in targets {
            match inner.targets.get_mut(t) {
                Some(state) => {
                    state.stale_after = *stale_after;
                    if state.job_status != *job_status {
                        state.job_status = *job_status;
                        inner.rerender(t);
                    }
                }
                None => {
                    let state = TargetState {
                        polled: false,
                        up: false,
                        failure: None,
                        last_success_unix: None,
                        last_success_at: None,
                        poll_duration: None,
                        stale_after: *stale_after,
                        job_status: *job_status,
                        jobs: Vec::new(),
                        summaries: Vec::new(),
                    };
                    inner.targets.insert(t.clone(), state);
                }
            }
        }
        self.publish(&mut inner, true);
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
        let failure = match &result {
            PollResult::Success(_) => None,
            PollResult::Gone => Some(Outcome::NotFound),
            PollResult::Failed(outcome) => Some(*outcome),
        };
        state.failure = match (failure, state.failure) {
            (None, _) => None,
            // The same fault goes on: it keeps its start.
            (Some(now), Some((before, since))) if now == before => Some((now, since)),
            (Some(now), _) => Some((now, now_unix)),
        };
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
            PollResult::Failed(_) => {
                state.up = false;
                if state.is_stale(now) {
                    inner.replace_jobs(target, Vec::new(), Vec::new());
                } else {
                    inner.rerender_health(target);
                }
            }
        }
        self.publish(&mut inner, false);
    }

    /// Drops the last-known series of every target whose last success is older than its
    /// `stale_after`, whether or not a poll has failed since: a target waiting out a long
    /// `Retry-After`, or whose poll hangs, records nothing, and its series must go all the
    /// same. Returns how many targets lost their series.
    pub fn expire_stale(&self) -> usize {
        let now = Instant::now();
        let mut inner = self.lock();
        let expired: Vec<TargetId> = inner
            .targets
            .iter()
            .filter(|(_, state)| state.is_stale(now))
            .map(|(id, _)| id.clone())
            .collect();
        for target in &expired {
            inner.replace_jobs(target, Vec::new(), Vec::new());
        }
        self.publish(&mut inner, false);
        expired.len()
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

    /// The job and target families in `format`, plain: the ready segments, inflated as
    /// the answer is written.
    pub fn plain(&self, format: Format, out: &mut Answer) {
        self.packing().packed.plain(format, out);
    }

    /// The job and target families in `format` as deflate segments, then `tail` (the
    /// exporter's own metrics) compressed now. What the background packer has not yet
    /// compressed is compressed here.
    pub fn deflated(&self, format: Format, out: &mut Gzip, tail: &[&[u8]]) {
        let mut packing = self.packing();
        let packing = &mut *packing;
        let compressor = packing.compressor.get_or_insert_with(packed::compressor);
        packing.packed.deflated(format, compressor, out);
        for plain in tail {
            out.push_plain(compressor, plain);
        }
    }

    /// The background packer's step: packs the runs that are due (every target of the run
    /// has reported since its last pack, or its changes waited [`packed::MAX_WAIT`]),
    /// compressing without holding the store, in batches of about [`PACK_BATCH`] bytes.
    /// Returns how many segments it compressed and whether runs still have work.
    pub fn pack(&self, compressor: &mut flate2::Compress) -> (usize, bool) {
        let mut total = 0;
        loop {
            let stale = self.packing().packed.due(Instant::now(), PACK_BATCH);
            if stale.is_empty() {
                return (total, self.packing().packed.behind());
            }
            let done: Vec<_> = stale.iter().map(|s| s.compress(compressor)).collect();
            let mut packing = self.packing();
            for (s, deflated) in stale.iter().zip(done) {
                packing.packed.install(s, deflated);
            }
            total += stale.len();
        }
    }

    /// Woken when polls changed series that [`Store::pack`] has not compressed yet.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The exposition of all job and target families (text format) as one list of chunks.
    pub fn exposition(&self) -> Vec<Bytes> {
        let mut answer = Answer::default();
        self.plain(Format::Text, &mut answer);
        answer.pieces().collect()
    }

    /// Every job that has series, sorted by identity, for the landing page.
    pub fn jobs(&self) -> Vec<JobView> {
        let inner = self.lock();
        let mut views: Vec<JobView> = inner
            .keys
            .iter()
            .filter_map(|(key, ks)| {
                let owner = inner.owner(key, &ks.holders)?;
                let state = inner.targets.get(owner)?;
                let held = find(&state.jobs, key)?;
                Some(JobView {
                    record: held.record.clone(),
                    target: owner.clone(),
                    target_up: state.up,
                    last_success: ks.history.last_success,
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
                failure: s.failure,
                last_success: s.last_success_unix,
            })
            .collect()
    }
}

fn find<'a>(jobs: &'a [Held], key: &JobKey) -> Option<&'a Held> {
    jobs.binary_search_by(|h| h.record.key.as_ref().cmp(key))
        .ok()
        .and_then(|i| jobs.get(i))
}

impl Inner {
    fn owner<'a>(&'a self, key: &JobKey, holders: &'a [TargetId]) -> Option<&'a TargetId> {
        holders.iter().max_by_key(|t| {
            self.targets
                .get(*t)
                .and_then(|s| find(&s.jobs, key))
                .map_or(0, |h| h.seen)
        })
    }

    /// For each record `target` holds, whether it owns the key.
    fn owned_mask(&self, target: &TargetId) -> Vec<bool> {
        let Some(state) = self.targets.get(target) else {
            return Vec::new();
        };
        state
            .jobs
            .iter()
            .map(|h| {
                self.keys
                    .get(h.record.key.as_ref())
                    .and_then(|ks| self.owner(&h.record.key, &ks.holders))
                    .is_some_and(|o| o == target)
            })
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
        let owned_before = self.owned_mask(target);

        let mut new_jobs: Vec<Held> = Vec::with_capacity(jobs.len());
        for record in jobs {
            self.seq += 1;
            new_jobs.push(Held {
                record,
                seen: self.seq,
            });
        }
        // Stable sort, then keep the last of equal keys: within one response a later
        // duplicate replaces an earlier one.
        new_jobs.sort_by(|a, b| a.record.key.cmp(&b.record.key));
        new_jobs.reverse();
        new_jobs.dedup_by(|later, earlier| later.record.key == earlier.record.key);
        new_jobs.reverse();
        new_jobs.shrink_to_fit();

        let (old_jobs, same_summaries) = match self.targets.get_mut(target) {
            Some(state) => (mem::take(&mut state.jobs), state.summaries == summaries),
            None => (Vec::new(), summaries.is_empty()),
        };
        // The same records as last time: unless a run count or ownership moves below, the
        // target's job series come out the same and are not rendered again.
        let mut same = same_summaries
            && old_jobs.len() == new_jobs.len()
            && old_jobs
                .iter()
                .zip(&new_jobs)
                .all(|(a, b)| a.record == b.record);
        // Keys the target no longer reports: drop its claim; another holder may take over.
        for held in old_jobs
            .iter()
            .filter(|h| find(&new_jobs, &h.record.key).is_none())
        {
            let key = held.record.key.as_ref();
            if let Some(ks) = self.keys.get_mut(key) {
                ks.holders.retain(|t| t != target);
                if ks.holders.is_empty() {
                    self.keys.remove(key);
                } else {
                    affected.extend(ks.holders.iter().cloned());
                }
            }
        }
        drop(old_jobs);
        // Keys it reports now: it becomes the owner; previous owners must drop the series.
        for held in &mut new_jobs {
            // Share the identity the store already holds instead of keeping a second copy.
            if let Some((existing, _)) = self.keys.get_key_value(held.record.key.as_ref()) {
                held.record.key = existing.clone();
            }
            let key = &held.record.key;
            match self.keys.get_mut(key.as_ref()) {
                Some(ks) => {
                    affected.extend(ks.holders.iter().cloned());
                    if !ks.holders.contains(target) {
                        ks.holders.push(target.clone());
                    }
                    let before = ks.history.clone();
                    observe(ks, &held.record);
                    same &= ks.history == before;
                }
                None => {
                    self.keys
                        .insert(key.clone(), first_sight(target, &held.record));
                }
            }
        }
        if let Some(state) = self.targets.get_mut(target) {
            state.jobs = new_jobs;
            state.summaries = summaries;
        }
        same &= self.owned_mask(target) == owned_before;
        for t in affected {
            if same && t == *target {
                self.rerender_health(&t);
            } else {
                self.rerender(&t);
            }
        }
    }

    /// Renders every series of `target` again.
    fn rerender(&mut self, target: &TargetId) {
        let owned = self.owned_mask(target);
        self.render_families(target, &owned, packed::ALL_FAMILIES);
    }

    /// Renders only the `backup_target_*` series of `target`: its jobs did not change.
    fn rerender_health(&mut self, target: &TargetId) {
        self.render_families(target, &[], HEALTH_FAMILIES);
    }

    fn render_families(&mut self, target: &TargetId, owned: &[bool], families: u32) {
        if let Some(state) = self.targets.get(target) {
            let jobs = families != HEALTH_FAMILIES;
            let rendered = render(target, state, owned, &self.keys, jobs);
            self.rendered.push((
                target.clone(),
                Family::ALL.map(|f| rendered.family(f)),
                families,
            ));
        }
    }
}

fn success_end(job: &JobRecord) -> Option<f64> {
    let own = match job.status {
        Status::Completed | Status::CompletedWithWarnings => job.end_time,
        _ => None,
    };
    match (own, job.newest_success_end) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// A job seen for the first time: a run that already ended is not counted, so a restart
/// adds nothing (sources that tell runs apart report what ended since their own baseline).
fn first_sight(target: &TargetId, job: &JobRecord) -> KeyState {
    let mut ks = KeyState {
        holders: vec![target.clone()],
        history: JobHistory {
            runs: [0; 4],
            last_success: success_end(job),
        },
        last: RunMark::of(job),
    };
    if let Some(reported) = &job.ended_runs {
        count(&mut ks.history, reported);
    }
    ks
}

fn count(history: &mut JobHistory, ended: &[Status]) {
    for status in ended {
        if let Some(i) = metrics::RUN_RESULTS.iter().position(|r| r == status) {
            history.runs[i] += 1;
        }
    }
}

/// Updates run counting and the last success with one more observation of a known job.
fn observe(ks: &mut KeyState, job: &JobRecord) {
    let mark = RunMark::of(job);
    match &job.ended_runs {
        Some(reported) => count(&mut ks.history, reported),
        None if mark.ends_new_run(&ks.last) => count(&mut ks.history, &[job.status]),
        None => {}
    }
    if let Some(end) = success_end(job) {
        if ks.history.last_success.is_none_or(|prev| end > prev) {
            ks.history.last_success = Some(end);
        }
    }
    ks.last = mark;
}

/// The families [`metrics::render_target`] writes.
const HEALTH_FAMILIES: u32 = 1 << Family::TargetUp as u32
    | 1 << Family::TargetLastSuccess as u32
    | 1 << Family::TargetPollDuration as u32
    | 1 << Family::TargetFailureReason as u32;

fn render(
    target: &TargetId,
    state: &TargetState,
    owned: &[bool],
    keys: &HashMap<Arc<JobKey>, KeyState>,
    jobs: bool,
) -> Rendered {
    thread_local! {
        // Reused across renders on this thread: no growth-doubling on every poll.
        static SCRATCH: std::cell::RefCell<FamilyBuffers> = std::cell::RefCell::new(FamilyBuffers::new());
    }
    SCRATCH.with(|scratch| {
        let mut out = scratch.borrow_mut();
        out.clear();
        render_into(&mut out, target, state, owned, keys, jobs);
        let rendered = out.finish();
        // Given back now, not at this thread's next render: an idle thread holds no more
        // than the bound.
        out.clear();
        rendered
    })
}

fn render_into(
    out: &mut FamilyBuffers,
    target: &TargetId,
    state: &TargetState,
    owned: &[bool],
    keys: &HashMap<Arc<JobKey>, KeyState>,
    jobs: bool,
) {
    if jobs {
        let empty = JobHistory::default();
        // `jobs` is sorted by key, so the series come out in a stable order.
        for (held, _) in state.jobs.iter().zip(owned).filter(|(_, owned)| **owned) {
            let history = keys
                .get(held.record.key.as_ref())
                .map_or(&empty, |ks| &ks.history);
            metrics::render_job(out, &held.record, history, state.job_status);
        }
        for summary in &state.summaries {
            metrics::render_summary(out, target, summary);
        }
    }
    if state.polled {
        let health = TargetHealth {
            up: state.up,
            failure: state.failure.map(|(outcome, _)| outcome.as_str()),
            last_success: state.last_success_unix,
            poll_duration: state.poll_duration,
        };
        metrics::render_target(out, target, &health);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::TargetKind;
    use crate::systems::zdm;

    fn target(kind: TargetKind, name: &str) -> TargetId {
        TargetId {
            system: zdm::SYSTEM,
            upstream: Arc::from("u"),
            kind,
            target: Arc::from(name),
        }
    }

    fn job(status: Status, start: Option<f64>, end: Option<f64>) -> JobRecord {
        JobRecord {
            key: Arc::new(JobKey {
                system: zdm::SYSTEM,
                upstream: Arc::from("u"),
                operation: "backup".into(),
                job_name: "j".into(),
                server: "s".into(),
                volume: "/".into(),
            }),
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
            failure: None,
            size_bytes: None,
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
    fn a_poll_with_the_same_records_updates_the_target_series_and_keeps_the_jobs() {
        let store = Store::new();
        let t = target(zdm::SERVER, "s");
        store.set_targets(&[(t.clone(), Duration::from_secs(90))]);
        let running = job(Status::Running, Some(1.0), None);
        let at = |d: u64, now: f64, jobs: Vec<JobRecord>| {
            let output = PollOutput {
                jobs,
                summaries: Vec::new(),
            };
            store.record_poll(
                &t,
                PollResult::Success(output),
                Duration::from_millis(d),
                now,
            );
        };
        at(5, 10.0, vec![running.clone()]);
        let first = text(&store);
        at(7, 20.0, vec![running.clone()]);
        let second = text(&store);
        assert!(second.contains("backup_target_poll_duration_seconds{system=\"zdm\",upstream=\"u\",kind=\"server\",target=\"s\"} 0.007\n"), "{second}");
        assert!(second.contains("backup_target_last_success_time_seconds{system=\"zdm\",upstream=\"u\",kind=\"server\",target=\"s\"} 20\n"), "{second}");
        let jobs = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with("backup_job_"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(jobs(&first), jobs(&second));
        assert!(!jobs(&first).is_empty());
        // The same job ending: its series change although the target's did not fail.
        let done = job(Status::Completed, Some(1.0), Some(15.0));
        at(7, 30.0, vec![done]);
        let third = text(&store);
        assert_eq!(runs(&store, "completed"), Some(1.0), "{third}");
        assert!(third.contains("status=\"completed\"} 1\n"), "{third}");
        // A failed poll re-renders only the health: the job keeps its last-known series.
        store.record_poll(
            &t,
            PollResult::Failed(Outcome::Timeout),
            Duration::from_millis(9),
            40.0,
        );
        let fourth = text(&store);
        assert_eq!(jobs(&third), jobs(&fourth));
        assert!(
            fourth.contains("target=\"s\"} 0\n"),
            "backup_target_up 0: {fourth}"
        );
    }

    #[test]
    fn runs_count_transitions_once_and_back_to_back_runs_by_start_time() {
        let store = Store::new();
        let t = target(zdm::BACKUP_JOB, "j");
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
        let server = target(zdm::SERVER, "s");
        let single = target(zdm::BACKUP_JOB, "j");
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
        let t = target(zdm::BACKUP_JOB, "j");
        store.set_targets(&[(t.clone(), Duration::from_millis(50))]);
        assert!(!store.ready());
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        assert!(store.ready());
        store.record_poll(
            &t,
            PollResult::Failed(Outcome::Http5xx),
            Duration::ZERO,
            2.0,
        );
        let m = text(&store);
        assert!(m.contains(
            "backup_target_up{system=\"zdm\",upstream=\"u\",kind=\"backup_job\",target=\"j\"} 0"
        ));
        assert!(m.contains("backup_job_status{"));
        std::thread::sleep(Duration::from_millis(60));
        store.record_poll(
            &t,
            PollResult::Failed(Outcome::Http5xx),
            Duration::ZERO,
            3.0,
        );
        assert!(!text(&store).contains("backup_job_status{"));
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        store.record_poll(&t, PollResult::Gone, Duration::ZERO, 4.0);
        assert!(!text(&store).contains("backup_job_status{"));
        assert!(text(&store).contains("backup_target_last_success_time_seconds{system=\"zdm\",upstream=\"u\",kind=\"backup_job\",target=\"j\"} 1\n"));
    }

    /// Regression: the thread-local render scratch buffers never shrank after one huge
    /// target.
    #[test]
    fn render_scratch_gives_back_what_a_huge_target_grew() {
        let mut bufs = FamilyBuffers::new();
        let store = Store::new();
        let t = target(zdm::SERVER, "huge");
        store.set_targets(&[(t.clone(), Duration::from_secs(90))]);
        let jobs: Vec<JobRecord> = (0..3000)
            .map(|i| {
                let mut j = job(Status::Running, Some(f64::from(i)), None);
                j.key = Arc::new(JobKey {
                    job_name: format!("job-{i}"),
                    ..(*j.key).clone()
                });
                j
            })
            .collect();
        poll(&store, &t, jobs);
        let big = text(&store);
        assert!(big.len() > 8 * metrics::SCRATCH_KEEP);
        // The scratch that rendered it is on this thread: the same path a poll takes.
        bufs.clear();
        let inner = store.lock();
        let state = &inner.targets[&t];
        let owned = inner.owned_mask(&t);
        render_into(&mut bufs, &t, state, &owned, &inner.keys, true);
        assert!(bufs.capacity() > 8 * metrics::SCRATCH_KEEP);
        bufs.clear();
        assert!(bufs.capacity() <= metrics::FAMILY_COUNT * metrics::SCRATCH_KEEP);
    }

    /// Regression: a target waiting out a long Retry-After records no poll, and its series
    /// outlived `stale_after`.
    #[test]
    fn series_expire_by_time_without_a_recorded_failure() {
        let store = Store::new();
        let t = target(zdm::BACKUP_JOB, "j");
        store.set_targets(&[(t.clone(), Duration::from_millis(50))]);
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        assert_eq!(store.expire_stale(), 0);
        assert!(text(&store).contains("backup_job_status{"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(store.expire_stale(), 1);
        let m = text(&store);
        assert!(!m.contains("backup_job_status{"));
        assert!(
            m.contains("backup_target_up{"),
            "the target's own series stay"
        );
        assert_eq!(store.expire_stale(), 0, "nothing left to expire");
    }

    #[test]
    fn families_are_never_split_across_targets() {
        let store = Store::new();
        let a = target(zdm::BACKUP_JOB, "a");
        let b = target(zdm::BACKUP_JOB, "b");
        store.set_targets(&[
            (a.clone(), Duration::from_secs(9)),
            (b.clone(), Duration::from_secs(9)),
        ]);
        let mut other = job(Status::Running, None, None);
        Arc::make_mut(&mut other.key).job_name = "k".into();
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
