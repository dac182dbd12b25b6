//! The store the pollers write: every target's records, run counting, last success, dedupe
//! across targets and staleness. It renders a target's series when its poll changes them
//! (`render.rs`) and writes them to the exposition's [`Packed`]; scrapes read them there and
//! see the store only through [`Views`].
//!
//! Every target keeps the records of its last successful poll. One job identity may be
//! reported by several targets (a server and a configured job): the target that observed it
//! most recently owns it, and only the owner renders it, so there is never a duplicate
//! series. Run counting and the last success are kept per identity, whoever reports it
//! (`history.rs`).
//!
//! Time is tokio's clock: staleness follows `tokio::time::Instant`, so tests with a paused
//! clock can advance it.

pub mod history;
pub mod render;

#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exposition::{JobView, Packed, TargetView, Update, Views, ALL_FAMILIES};
use crate::metrics::{Family, JobHistory, TargetHealth};
use crate::model::{JobKey, JobRecord, JobStatusSeries, PollOutput, ServerSummary, TargetId};
use crate::outcome::Outcome;
use history::RunHistory;
use render::{TargetSeries, HEALTH_FAMILIES};

/// How often [`expiry`] checks last-known series against `stale_after`.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

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

/// How the store keeps and renders a target's series (its upstream's `stale_after` and
/// `job_status`). Changing them needs no new poll: the store applies them at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesSettings {
    /// How long last-known series outlive the last successful poll.
    pub stale_after: Duration,
    /// Which `backup_job_status` series the target's jobs export.
    pub job_status: JobStatusSeries,
}

impl SeriesSettings {
    /// Series kept for `stale_after`, `backup_job_status` as a state set (the default).
    pub fn stale_after(stale_after: Duration) -> Self {
        SeriesSettings {
            stale_after,
            job_status: JobStatusSeries::StateSet,
        }
    }
}

/// What the store keeps per job identity, whoever reports it.
#[derive(Debug)]
struct KeyState {
    /// Every target that holds a record of the key; the one that saw it last owns it.
    holders: Vec<TargetId>,
    history: RunHistory,
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
    settings: SeriesSettings,
    /// The records of the last successful poll, sorted by key (a few per target: a sorted
    /// vector costs far less memory than a hash table per target).
    jobs: Vec<Held>,
    summaries: Vec<ServerSummary>,
}

impl TargetState {
    /// Holds series that are older than `stale_after` allows.
    fn is_stale(&self, now: Instant) -> bool {
        let expired = match self.last_success_at {
            Some(at) => now.saturating_duration_since(at) >= self.settings.stale_after,
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
    /// First listings of discovering upstreams not finished yet: not ready before they are.
    listings_pending: usize,
    /// Targets rendered since the last hand-over to [`Packed`].
    rendered: Vec<Update>,
}

/// The job and target state; writes its rendered series to a [`Packed`].
pub struct Store {
    inner: Mutex<Inner>,
    /// Where rendered series go; locked after `inner` when both are held.
    packed: Arc<Packed>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store that writes its series to `packed`.
    pub fn new(packed: Arc<Packed>) -> Self {
        Store {
            inner: Mutex::default(),
            packed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing all metrics, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands what `inner` rendered to the exposition, laying the targets out again first
    /// when the set of targets changed.
    fn publish(&self, inner: &mut Inner, relayout: bool) {
        if !relayout && inner.rendered.is_empty() {
            return;
        }
        let order = relayout.then(|| inner.targets.keys().collect());
        self.packed.write(order, inner.rendered.drain(..));
    }

    /// Makes the store track exactly these targets, each with its settings: new ones start
    /// unpolled, dropped ones lose their series, kept ones keep their series and take the
    /// new settings (a target whose `job_status` changed is rendered again at once).
    pub fn track(&self, targets: &[(TargetId, SeriesSettings)]) {
        let mut inner = self.lock();
        let wanted: HashSet<&TargetId> = targets.iter().map(|(t, _)| t).collect();
        let dropped: Vec<TargetId> = inner
            .targets
            .keys()
            .filter(|t| !wanted.contains(t))
            .cloned()
            .collect();
        for t in dropped {
            inner.replace_jobs(&t, Vec::new(), Vec::new());
            inner.targets.remove(&t);
        }
        for (t, settings) in targets {
            inner.keep(t, *settings);
        }
        self.publish(&mut inner, true);
    }

    /// Tracks these targets too (discovered ones), keeping every other: new ones start
    /// unpolled, known ones take the settings.
    pub fn add_targets(&self, targets: &[(TargetId, SeriesSettings)]) {
        let mut inner = self.lock();
        for (t, settings) in targets {
            inner.keep(t, *settings);
        }
        self.publish(&mut inner, true);
    }

    /// Stops tracking these targets: their series go at once, as a 404's do.
    pub fn remove_targets(&self, targets: &[TargetId]) {
        let mut inner = self.lock();
        for t in targets {
            if inner.targets.contains_key(t) {
                inner.replace_jobs(t, Vec::new(), Vec::new());
                inner.targets.remove(t);
            }
        }
        self.publish(&mut inner, true);
    }

    /// A discovering upstream starts its first listing: `/-/ready` waits for it.
    pub fn listing_started(&self) {
        self.lock().listings_pending += 1;
    }

    /// A first listing finished (found targets already added, or failed).
    pub fn listing_finished(&self) {
        let mut inner = self.lock();
        inner.listings_pending = inner.listings_pending.saturating_sub(1);
    }

    /// How long `target`'s last-known series outlive its last success; `None` for a target
    /// the store does not track (removed by a reload).
    pub fn stale_after(&self, target: &TargetId) -> Option<Duration> {
        self.lock()
            .targets
            .get(target)
            .map(|state| state.settings.stale_after)
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
}

/// The store's expiry loop: expires stale series by time ([`Store::expire_stale`] every
/// `EXPIRE_EVERY`, 1 s), independently of polls finishing. Returns when `cancel` fires.
pub async fn expiry(store: Arc<Store>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let expired = store.expire_stale();
        if expired > 0 {
            tracing::debug!(targets = expired, "last-known series expired");
        }
    }
}

impl Views for Store {
    fn ready(&self) -> bool {
        let mut inner = self.lock();
        if !inner.ready_latched
            && inner.listings_pending == 0
            && inner.targets.values().all(|t| t.polled)
        {
            inner.ready_latched = true;
        }
        inner.ready_latched
    }

    fn jobs(&self) -> Vec<JobView> {
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
                    last_success: ks.history.totals().last_success,
                })
            })
            .collect();
        views.sort_by(|a, b| a.record.key.cmp(&b.record.key));
        views
    }

    fn targets(&self) -> Vec<TargetView> {
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
    /// Tracks `t` with `settings`: a new target starts unpolled; a known one takes the
    /// settings (rendered again at once when its `job_status` changed).
    fn keep(&mut self, t: &TargetId, settings: SeriesSettings) {
        match self.targets.get_mut(t) {
            Some(state) => {
                let rerender = state.settings.job_status != settings.job_status;
                state.settings = settings;
                if rerender {
                    self.rerender(t);
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
                    settings,
                    jobs: Vec::new(),
                    summaries: Vec::new(),
                };
                self.targets.insert(t.clone(), state);
            }
        }
    }

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
                    same &= !ks.history.observe(&held.record);
                }
                None => {
                    let state = KeyState {
                        holders: vec![target.clone()],
                        history: RunHistory::first_sight(&held.record),
                    };
                    self.keys.insert(key.clone(), state);
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
        self.render_families(target, &owned, ALL_FAMILIES);
    }

    /// Renders only the `backup_target_*` series of `target`: its jobs did not change.
    fn rerender_health(&mut self, target: &TargetId) {
        self.render_families(target, &[], HEALTH_FAMILIES);
    }

    fn render_families(&mut self, target: &TargetId, owned: &[bool], families: u32) {
        let Some(state) = self.targets.get(target) else {
            return;
        };
        let with_jobs = families != HEALTH_FAMILIES;
        let empty = JobHistory::default();
        let keys = &self.keys;
        // `jobs` is sorted by key, so the series come out in a stable order.
        let jobs = state
            .jobs
            .iter()
            .zip(owned)
            .filter(|(_, owned)| **owned)
            .map(|(held, _)| {
                let history = keys
                    .get(held.record.key.as_ref())
                    .map_or(&empty, |ks| ks.history.totals());
                (&held.record, history)
            });
        let health = state.polled.then(|| TargetHealth {
            up: state.up,
            failure: state.failure.map(|(outcome, _)| outcome.as_str()),
            last_success: state.last_success_unix,
            poll_duration: state.poll_duration,
        });
        let rendered = render::render(TargetSeries {
            target,
            jobs,
            summaries: if with_jobs { &state.summaries } else { &[] },
            job_status: state.settings.job_status,
            health,
        });
        self.rendered.push(Update {
            target: target.clone(),
            chunks: Family::ALL.map(|f| rendered.family(f)),
            families,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::systems::zdm;
    use std::sync::Arc;

    use super::test_support::{job, poll, runs, store, target, text, track};
    use super::*;
    use crate::status::Status;

    #[test]
    fn a_poll_with_the_same_records_updates_the_target_series_and_keeps_the_jobs() {
        let store = store();
        let t = target(zdm::SERVER, "s");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
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
    fn one_identity_from_two_targets_renders_once_and_survives_either_leaving() {
        let store = store();
        let server = target(zdm::SERVER, "s");
        let single = target(zdm::BACKUP_JOB, "j");
        track(
            &store,
            &[
                (server.clone(), Duration::from_secs(90)),
                (single.clone(), Duration::from_secs(90)),
            ],
        );
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

    #[tokio::test(start_paused = true)]
    async fn failures_keep_series_until_stale_and_gone_drops_them_at_once() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_millis(50))]);
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
        tokio::time::advance(Duration::from_millis(60)).await;
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

    /// Regression: a target waiting out a long Retry-After records no poll, and its series
    /// outlived `stale_after`.
    #[tokio::test(start_paused = true)]
    async fn series_expire_by_time_without_a_recorded_failure() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_millis(50))]);
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        assert_eq!(store.expire_stale(), 0);
        assert!(text(&store).contains("backup_job_status{"));
        tokio::time::advance(Duration::from_millis(60)).await;
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
        let store = store();
        let a = target(zdm::BACKUP_JOB, "a");
        let b = target(zdm::BACKUP_JOB, "b");
        track(
            &store,
            &[
                (a.clone(), Duration::from_secs(9)),
                (b.clone(), Duration::from_secs(9)),
            ],
        );
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

    #[tokio::test(start_paused = true)]
    async fn series_expire_exactly_after_stale_after_not_before() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        let stale_after = Duration::from_secs(90);
        track(&store, &[(t.clone(), stale_after)]);
        assert_eq!(store.stale_after(&t), Some(stale_after));
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        tokio::time::advance(stale_after - Duration::from_millis(1)).await;
        assert_eq!(store.expire_stale(), 0, "not before stale_after");
        store.record_poll(
            &t,
            PollResult::Failed(Outcome::Timeout),
            Duration::ZERO,
            2.0,
        );
        assert!(
            text(&store).contains("backup_job_status{"),
            "a failed poll keeps them until then"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(store.expire_stale(), 1, "at stale_after exactly");
        assert!(!text(&store).contains("backup_job_status{"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_expiry_loop_drops_stale_series_on_tokio_time() {
        let store = Arc::new(store());
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_secs(30))]);
        poll(&store, &t, vec![job(Status::Running, None, None)]);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(expiry(store.clone(), cancel.clone()));
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(text(&store).contains("backup_job_status{"));
        // The loop looks every second: the series are gone within one look of the limit.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!text(&store).contains("backup_job_status{"));
        cancel.cancel();
        task.await.unwrap();
    }

    #[test]
    fn new_settings_apply_to_kept_targets_and_a_job_status_change_renders_at_once() {
        let store = store();
        let t = target(zdm::SERVER, "s");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
        poll(&store, &t, vec![job(Status::Running, Some(1.0), None)]);
        let statuses = |store: &Store| {
            text(store)
                .lines()
                .filter(|l| l.starts_with("backup_job_status{"))
                .count()
        };
        assert_eq!(statuses(&store), Status::ALL.len(), "a state set");
        let active = SeriesSettings {
            stale_after: Duration::from_secs(300),
            job_status: JobStatusSeries::Active,
        };
        store.track(&[(t.clone(), active)]);
        assert_eq!(
            statuses(&store),
            1,
            "only the active status, without a poll"
        );
        assert!(text(&store).contains("status=\"running\"} 1\n"));
        assert_eq!(store.stale_after(&t), Some(Duration::from_secs(300)));
        assert!(store.ready(), "the target keeps its state");
        store.track(&[(
            t.clone(),
            SeriesSettings::stale_after(Duration::from_secs(90)),
        )]);
        assert_eq!(statuses(&store), Status::ALL.len(), "and back");
        store.track(&[]);
        assert_eq!(store.stale_after(&t), None);
        assert_eq!(statuses(&store), 0);
    }
}
