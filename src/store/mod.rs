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
//! A job's history outlives its series: when its target's polls fail past `stale_after`
//! (or its target leaves the configuration) the job is *remembered* by the target that last
//! reported it, which keeps rendering its last success and failing-since until
//! `forget_after` after it was last seen. A successful poll of that target that does not
//! list the job, or a 404, forgets it at once. With `--storage.path` the histories are
//! written by [`persist`] and read back at start-up ([`Store::restore`]): they come back as
//! remembered jobs of their targets.
//!
//! Time is tokio's clock: staleness follows `tokio::time::Instant`, so tests with a paused
//! clock can advance it. Forgetting follows the wall clock (Unix seconds), as stored.

pub mod history;
pub mod render;

#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::config::settings::DEFAULT_FORGET_AFTER;
use crate::exposition::{JobView, Packed, TargetView, Update, Views, ALL_FAMILIES};
use crate::metrics::{Family, JobHistory, TargetHealth};
use crate::model::{JobKey, JobRecord, JobStatusSeries, PollOutput, ServerSummary, TargetId};
use crate::outcome::Outcome;
use crate::status::Status;
use crate::storage::{Entry, StateFile};
use history::{Kept, RunHistory, RunMark};
use render::{TargetSeries, HEALTH_FAMILIES};

/// How often [`expiry`] checks last-known series against `stale_after` and remembered jobs
/// against `forget_after`.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// `last_seen` alone marks the state changed once it moved this far since it was last
/// written: it only decides when a job is forgotten (days), so it need not be written
/// every poll.
const LAST_SEEN_SLACK: f64 = 3600.0;

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
    /// How long a job's last success and failing-since outlive the last time a target
    /// reported it.
    pub forget_after: Duration,
}

impl SeriesSettings {
    /// Series kept for `stale_after`, `backup_job_status` as a state set and histories kept
    /// for 30 days (the defaults).
    pub fn stale_after(stale_after: Duration) -> Self {
        SeriesSettings {
            stale_after,
            job_status: JobStatusSeries::StateSet,
            forget_after: DEFAULT_FORGET_AFTER,
        }
    }
}

/// What the store keeps per job identity, whoever reports it.
#[derive(Debug)]
struct KeyState {
    /// Every target that holds a record of the key; the one that saw it last owns it. None:
    /// the key is remembered by `home`.
    holders: Vec<TargetId>,
    history: RunHistory,
    /// The target that reported it last (set when its last holder lets it go).
    home: TargetId,
    /// When a target last reported it (Unix seconds).
    last_seen: f64,
    /// `last_seen` as last written to storage.
    last_seen_saved: f64,
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
    /// The tracked targets in the order [`Packed`] lays them out: as they came, each new
    /// batch sorted, so a batch added at the end (discovery) leaves the runs before it as
    /// they are.
    layout: Vec<TargetId>,
    /// One entry per job identity; records share its `Arc<JobKey>`.
    keys: HashMap<Arc<JobKey>, KeyState>,
    seq: u64,
    ready_latched: bool,
    /// First listings of discovering upstreams not finished yet: not ready before they are.
    listings_pending: usize,
    /// Targets rendered since the last hand-over to [`Packed`].
    rendered: Vec<Update>,
    /// Keys no target holds, by the target that reported them last (tracked or not).
    remembered: BTreeMap<TargetId, BTreeSet<Arc<JobKey>>>,
    /// Entries read from storage whose target is not tracked (yet): resolved when a
    /// configuration tracks it, written back until then, forgotten after `forget_after`.
    pending: Vec<Entry>,
    /// Bumped by every change storage should see.
    generation: u64,
    /// The `forget_after` of remembered keys whose target is not tracked: the longest of
    /// the tracked targets' (the default when none).
    untracked_forget_after: Duration,
}

/// Why a target lets go of keys it held.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Release {
    /// Its poll answered without them (or 404): they go.
    Forget,
    /// Its series went stale, or it left the configuration: they are remembered.
    Remember,
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
        let order = relayout.then(|| inner.layout.iter().collect());
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
        let now_unix = unix_now();
        for t in dropped {
            inner.replace_jobs(&t, Vec::new(), Vec::new(), now_unix, Release::Remember);
            inner.targets.remove(&t);
        }
        for (t, settings) in targets {
            inner.keep(t, *settings);
        }
        inner.untracked_forget_after = targets
            .iter()
            .map(|(_, s)| s.forget_after)
            .max()
            .unwrap_or(DEFAULT_FORGET_AFTER);
        for home in inner.resolve_pending() {
            inner.rerender(&home);
        }
        inner.sync_layout();
        self.publish(&mut inner, true);
    }

    /// Tracks these targets too (discovered ones), keeping every other: new ones start
    /// unpolled (with what storage kept of their jobs), known ones take the settings.
    /// Returns where each target of `targets` that was new is laid out (its position in
    /// the exposition: new ones go at the end, sorted), `None` for the others.
    pub fn add_targets(&self, targets: &[(TargetId, SeriesSettings)]) -> Vec<Option<usize>> {
        let mut inner = self.lock();
        let mut new: Vec<TargetId> = Vec::new();
        for (t, settings) in targets {
            if !inner.targets.contains_key(t) {
                new.push(t.clone());
            }
            inner.keep(t, *settings);
        }
        new.sort();
        new.dedup();
        let base = inner.layout.len();
        let places: Vec<Option<usize>> = targets
            .iter()
            .map(|(t, _)| new.binary_search(t).ok().map(|i| base + i))
            .collect();
        inner.layout.extend(new);
        for home in inner.resolve_pending() {
            inner.rerender(&home);
        }
        self.publish(&mut inner, true);
        places
    }

    /// Stops tracking these targets: their series go at once, as a 404's do.
    pub fn remove_targets(&self, targets: &[TargetId]) {
        let mut inner = self.lock();
        let now_unix = unix_now();
        for t in targets {
            if inner.targets.contains_key(t) {
                inner.replace_jobs(t, Vec::new(), Vec::new(), now_unix, Release::Forget);
                inner.targets.remove(t);
            }
        }
        inner.sync_layout();
        self.publish(&mut inner, true);
    }

    /// Takes the histories storage kept (before the first [`Store::track`]): each job is
    /// remembered by its target, which renders its last success and failing-since once it
    /// is tracked, until it answers or `forget_after` passes.
    pub fn restore(&self, entries: Vec<Entry>) {
        let mut inner = self.lock();
        inner.pending.extend(entries);
        for home in inner.resolve_pending() {
            inner.rerender(&home);
        }
        self.publish(&mut inner, false);
    }

    /// What storage should write, most recently seen first, if anything changed since the
    /// last call (`None` otherwise).
    pub fn changes(&self) -> Option<Vec<Entry>> {
        let mut inner = self.lock();
        if inner.generation == 0 {
            return None;
        }
        inner.generation = 0;
        let mut entries: Vec<Entry> = Vec::with_capacity(inner.keys.len() + inner.pending.len());
        for (key, ks) in &inner.keys {
            let home = inner.owner(key, &ks.holders).unwrap_or(&ks.home);
            entries.push(entry(key, ks, home));
        }
        for ks in inner.keys.values_mut() {
            ks.last_seen_saved = ks.last_seen;
        }
        entries.extend(inner.pending.iter().cloned());
        drop(inner);
        entries.sort_by(|a, b| b.last_seen.total_cmp(&a.last_seen));
        Some(entries)
    }

    /// Marks the state changed, so the next [`Store::changes`] returns it.
    fn touch(inner: &mut Inner) {
        inner.generation += 1;
    }

    /// Forgets remembered keys (and unresolved stored entries) last seen `forget_after` or
    /// longer before `now_unix`. Returns how many were forgotten.
    pub fn forget_old(&self, now_unix: f64) -> usize {
        let mut inner = self.lock();
        let untracked = inner.untracked_forget_after.as_secs_f64();
        let mut gone: Vec<(TargetId, Arc<JobKey>)> = Vec::new();
        for (home, keys) in &inner.remembered {
            let limit = inner
                .targets
                .get(home)
                .map_or(untracked, |t| t.settings.forget_after.as_secs_f64());
            for key in keys {
                let seen = inner
                    .keys
                    .get(key)
                    .map_or(f64::NEG_INFINITY, |k| k.last_seen);
                if now_unix - seen >= limit {
                    gone.push((home.clone(), key.clone()));
                }
            }
        }
        let before = inner.pending.len();
        inner.pending.retain(|e| now_unix - e.last_seen < untracked);
        let mut forgotten = before - inner.pending.len();
        let mut homes: BTreeSet<TargetId> = BTreeSet::new();
        for (home, key) in gone {
            inner.keys.remove(&key);
            if let Some(keys) = inner.remembered.get_mut(&home) {
                keys.remove(&key);
                if keys.is_empty() {
                    inner.remembered.remove(&home);
                }
            }
            homes.insert(home);
            forgotten += 1;
        }
        for home in &homes {
            if inner.targets.contains_key(home) {
                inner.rerender(home);
            }
        }
        if forgotten > 0 {
            Store::touch(&mut inner);
        }
        self.publish(&mut inner, false);
        forgotten
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
                inner.replace_jobs(
                    target,
                    output.jobs,
                    output.summaries,
                    now_unix,
                    Release::Forget,
                );
            }
            PollResult::Gone => {
                state.up = false;
                inner.replace_jobs(target, Vec::new(), Vec::new(), now_unix, Release::Forget);
            }
            PollResult::Failed(_) => {
                state.up = false;
                if state.is_stale(now) {
                    inner.replace_jobs(target, Vec::new(), Vec::new(), now_unix, Release::Remember);
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
        let now_unix = unix_now();
        for target in &expired {
            inner.replace_jobs(target, Vec::new(), Vec::new(), now_unix, Release::Remember);
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
        // Only remembered jobs are looked at: few, unless targets are down.
        let forgotten = store.forget_old(unix_now());
        if forgotten > 0 {
            tracing::debug!(jobs = forgotten, "jobs past forget_after forgotten");
        }
    }
}

/// `--storage.path`: writes the store's histories to `file` every `file.interval()` (30 s
/// unless set shorter) when they changed, and once more when `cancel` fires (shutdown). The
/// file is written on the blocking pool, never on the runtime's workers nor under the
/// store's lock.
pub async fn persist(store: Arc<Store>, file: StateFile, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(file.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: nothing has changed yet.
    tick.tick().await;
    let mut failing = false;
    loop {
        let last = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tick.tick() => false,
        };
        if let Some(entries) = store.changes() {
            let writer = file.clone();
            let saved =
                tokio::task::spawn_blocking(move || writer.save(&entries, unix_now())).await;
            let path = file.path();
            match saved {
                Ok(Ok(jobs)) => {
                    if failing {
                        tracing::info!(path = %path.display(), jobs, "state written again");
                    }
                    failing = false;
                    tracing::debug!(path = %path.display(), jobs, "state written");
                }
                Ok(Err(e)) => {
                    // Written again with the next change; logged when the fault starts.
                    if !failing {
                        tracing::warn!(path = %path.display(), error = %e, "cannot write the state file");
                    }
                    failing = true;
                    store.lock().generation += 1;
                }
                Err(e) => tracing::warn!(error = %e, "state writer stopped"),
            }
        }
        if last {
            return;
        }
    }
}

/// What storage keeps of `key`, remembered by (or last reported by) `home`.
fn entry(key: &JobKey, ks: &KeyState, home: &TargetId) -> Entry {
    let kept = ks.history.kept();
    let finite = |t: Option<f64>| t.filter(|t| t.is_finite());
    Entry {
        system: key.system.as_str().to_string(),
        upstream: key.upstream.to_string(),
        kind: home.kind.as_str().to_string(),
        target: home.target.to_string(),
        operation: key.operation.clone(),
        job_name: key.job_name.clone(),
        server: key.server.clone(),
        volume: key.volume.clone(),
        runs: kept.runs,
        last_success: finite(kept.last_success),
        failing_since: finite(kept.failing_since),
        last_duration: finite(kept.last_duration),
        status: kept.last.status.as_str().to_string(),
        start: finite(kept.last.start),
        end: finite(kept.last.end),
        last_seen: ks.last_seen,
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
    /// Turns stored entries whose target is now tracked into remembered keys of it.
    /// Returns the targets that took some.
    fn resolve_pending(&mut self) -> BTreeSet<TargetId> {
        let mut homes = BTreeSet::new();
        if self.pending.is_empty() {
            return homes;
        }
        let tracked: HashMap<(&str, &str, &str, &str), &TargetId> = self
            .targets
            .keys()
            .map(|t| {
                (
                    (t.system.as_str(), &*t.upstream, t.kind.as_str(), &*t.target),
                    t,
                )
            })
            .collect();
        let mut unresolved = Vec::new();
        let mut resolved = Vec::new();
        for e in mem::take(&mut self.pending) {
            let home = tracked
                .get(&(
                    e.system.as_str(),
                    e.upstream.as_str(),
                    e.kind.as_str(),
                    e.target.as_str(),
                ))
                .map(|t| (*t).clone());
            match (home, Status::from_label(&e.status)) {
                (Some(home), Some(status)) => resolved.push((home, status, e)),
                (None, Some(_)) => unresolved.push(e),
                // A status this version does not know: nothing to count against.
                (_, None) => {}
            }
        }
        drop(tracked);
        self.pending = unresolved;
        for (home, status, e) in resolved {
            let key = Arc::new(JobKey {
                system: home.system,
                upstream: home.upstream.clone(),
                operation: e.operation,
                job_name: e.job_name,
                server: e.server,
                volume: e.volume,
            });
            if self.keys.contains_key(&key) {
                continue;
            }
            let history = RunHistory::restore(Kept {
                runs: e.runs,
                last_success: e.last_success,
                failing_since: e.failing_since,
                last_duration: e.last_duration,
                last: RunMark {
                    status,
                    start: e.start,
                    end: e.end,
                },
            });
            self.remembered
                .entry(home.clone())
                .or_default()
                .insert(key.clone());
            homes.insert(home.clone());
            self.keys.insert(
                key,
                KeyState {
                    holders: Vec::new(),
                    history,
                    home,
                    last_seen: e.last_seen,
                    last_seen_saved: e.last_seen,
                },
            );
        }
        homes
    }

    /// Tracks `t` with `settings`: a new target starts unpolled; a known one takes the
    /// settings (rendered again at once when its `job_status` changed).
    /// The layout after targets came and went: those still tracked keep their order, the
    /// new ones follow, sorted.
    fn sync_layout(&mut self) {
        let targets = &self.targets;
        self.layout.retain(|t| targets.contains_key(t));
        let placed: HashSet<&TargetId> = self.layout.iter().collect();
        let new: Vec<TargetId> = targets
            .keys()
            .filter(|t| !placed.contains(t))
            .cloned()
            .collect();
        self.layout.extend(new);
    }

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
                let remembers = self.remembered.contains_key(t);
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
                // Jobs it remembers (from storage, or from before a reload) render at once.
                if remembers {
                    self.rerender(t);
                }
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
        now_unix: f64,
        release: Release,
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
                if !ks.holders.is_empty() {
                    affected.extend(ks.holders.iter().cloned());
                } else if release == Release::Remember {
                    ks.home = target.clone();
                    self.remembered
                        .entry(target.clone())
                        .or_default()
                        .insert(held.record.key.clone());
                    same = false;
                } else {
                    self.keys.remove(key);
                    self.generation += 1;
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
                    if ks.holders.is_empty() {
                        // Remembered until now: its home renders it no more.
                        if let Some(keys) = self.remembered.get_mut(&ks.home) {
                            keys.remove(key.as_ref());
                            if keys.is_empty() {
                                self.remembered.remove(&ks.home);
                            }
                        }
                        affected.insert(ks.home.clone());
                        same = false;
                    }
                    if !ks.holders.contains(target) {
                        ks.holders.push(target.clone());
                    }
                    let changed = ks.history.observe(&held.record, now_unix);
                    same &= !changed;
                    ks.last_seen = now_unix;
                    if changed || now_unix - ks.last_seen_saved >= LAST_SEEN_SLACK {
                        self.generation += 1;
                    }
                }
                None => {
                    let state = KeyState {
                        holders: vec![target.clone()],
                        history: RunHistory::first_sight(&held.record, now_unix),
                        home: target.clone(),
                        last_seen: now_unix,
                        last_seen_saved: f64::NEG_INFINITY,
                    };
                    self.keys.insert(key.clone(), state);
                    self.generation += 1;
                }
            }
        }
        // A target that answered lets go of what it remembered and did not list again.
        if release == Release::Forget {
            if let Some(keys) = self.remembered.remove(target) {
                for key in keys {
                    self.keys.remove(&key);
                }
                self.generation += 1;
                same = false;
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
        let remembered = self
            .remembered
            .get(target)
            .filter(|_| with_jobs)
            .into_iter()
            .flatten()
            .filter_map(|key| Some((key.as_ref(), keys.get(key.as_ref())?.history.totals())));
        let health = state.polled.then(|| TargetHealth {
            up: state.up,
            failure: state.failure.map(|(outcome, _)| outcome.as_str()),
            last_success: state.last_success_unix,
            poll_duration: state.poll_duration,
        });
        let rendered = render::render(TargetSeries {
            target,
            jobs,
            remembered,
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
            job_status: JobStatusSeries::Active,
            ..SeriesSettings::stale_after(Duration::from_secs(300))
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

    fn with_forget(stale: Duration, forget: Duration) -> SeriesSettings {
        SeriesSettings {
            forget_after: forget,
            ..SeriesSettings::stale_after(stale)
        }
    }

    fn sample(store: &Store, family: &str) -> Option<f64> {
        text(store)
            .lines()
            .find(|l| l.starts_with(&format!("{family}{{")))
            .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
    }

    fn at(store: &Store, t: &TargetId, now: f64, jobs: Vec<JobRecord>) {
        let output = PollOutput {
            jobs,
            summaries: Vec::new(),
        };
        store.record_poll(t, PollResult::Success(output), Duration::ZERO, now);
    }

    #[tokio::test(start_paused = true)]
    async fn last_success_and_failing_since_outlive_stale_after_until_forget_after() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        let now = unix_now();
        store.track(&[(
            t.clone(),
            with_forget(Duration::from_millis(50), Duration::from_secs(600)),
        )]);
        at(
            &store,
            &t,
            now - 100.0,
            vec![job(Status::Completed, Some(now - 200.0), Some(now - 150.0))],
        );
        at(
            &store,
            &t,
            now - 50.0,
            vec![job(Status::Failed, Some(now - 90.0), Some(now - 60.0))],
        );
        assert_eq!(
            sample(&store, "backup_job_failing_since_seconds"),
            Some(now - 60.0)
        );
        assert_eq!(
            sample(&store, "backup_job_last_run_duration_seconds"),
            Some(30.0)
        );
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(store.expire_stale(), 1);
        let m = text(&store);
        assert!(!m.contains("backup_job_status{"), "{m}");
        assert!(!m.contains("backup_job_runs_total{"), "{m}");
        assert_eq!(
            sample(&store, "backup_job_last_success_time_seconds"),
            Some(now - 150.0),
            "{m}"
        );
        assert_eq!(
            sample(&store, "backup_job_failing_since_seconds"),
            Some(now - 60.0),
            "{m}"
        );
        assert!(
            store.jobs().is_empty(),
            "the landing page lists only reported jobs"
        );
        // Not yet forgotten; then forgotten 600 s after it was last seen.
        assert_eq!(store.forget_old(now + 500.0), 0);
        assert!(sample(&store, "backup_job_last_success_time_seconds").is_some());
        assert_eq!(store.forget_old(now + 551.0), 1);
        assert_eq!(sample(&store, "backup_job_last_success_time_seconds"), None);
        assert_eq!(sample(&store, "backup_job_failing_since_seconds"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_remembered_job_keeps_its_run_counts_when_its_target_answers_again() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        store.track(&[(
            t.clone(),
            with_forget(Duration::from_millis(50), Duration::from_secs(600)),
        )]);
        at(
            &store,
            &t,
            15.0,
            vec![job(Status::Running, Some(10.0), None)],
        );
        at(
            &store,
            &t,
            25.0,
            vec![job(Status::Failed, Some(10.0), Some(20.0))],
        );
        tokio::time::advance(Duration::from_millis(60)).await;
        store.expire_stale();
        // Back: the same failed run is not counted again; the next one is.
        at(
            &store,
            &t,
            30.0,
            vec![job(Status::Failed, Some(10.0), Some(20.0))],
        );
        assert_eq!(runs(&store, "failed"), Some(1.0));
        assert_eq!(
            sample(&store, "backup_job_failing_since_seconds"),
            Some(20.0)
        );
        at(
            &store,
            &t,
            45.0,
            vec![job(Status::Completed, Some(30.0), Some(40.0))],
        );
        assert_eq!(runs(&store, "completed"), Some(1.0));
        assert_eq!(sample(&store, "backup_job_failing_since_seconds"), None);
        // A successful answer without the job forgets it, remembered or not.
        tokio::time::advance(Duration::from_millis(60)).await;
        store.expire_stale();
        assert!(sample(&store, "backup_job_last_success_time_seconds").is_some());
        at(&store, &t, 50.0, vec![]);
        assert_eq!(sample(&store, "backup_job_last_success_time_seconds"), None);
        assert_eq!(store.forget_old(1e12), 0, "nothing left to forget");
    }

    #[test]
    fn stored_histories_come_back_with_their_target_and_a_restart_adds_no_runs() {
        let first = store();
        let t = target(zdm::BACKUP_JOB, "j");
        let settings = with_forget(Duration::from_secs(90), Duration::from_secs(600));
        first.track(&[(t.clone(), settings)]);
        let now = unix_now();
        at(
            &first,
            &t,
            now - 30.0,
            vec![job(Status::Running, Some(now - 100.0), None)],
        );
        at(
            &first,
            &t,
            now - 20.0,
            vec![job(Status::Completed, Some(now - 100.0), Some(now - 40.0))],
        );
        at(
            &first,
            &t,
            now - 10.0,
            vec![job(Status::Failed, Some(now - 35.0), Some(now - 25.0))],
        );
        let kept = first.changes().expect("changed");
        assert_eq!(kept.len(), 1);
        assert_eq!(first.changes(), None, "nothing changed since");

        let second = store();
        second.restore(kept.clone());
        assert_eq!(
            text(&second),
            "",
            "nothing rendered before its target is tracked"
        );
        second.track(&[(t.clone(), settings)]);
        assert_eq!(
            sample(&second, "backup_job_last_success_time_seconds"),
            Some(now - 40.0)
        );
        assert_eq!(
            sample(&second, "backup_job_failing_since_seconds"),
            Some(now - 25.0)
        );
        assert!(
            !second.ready(),
            "restored state does not make the target polled"
        );
        // The target is down: still there.
        second.record_poll(
            &t,
            PollResult::Failed(Outcome::ConnectError),
            Duration::ZERO,
            now,
        );
        assert_eq!(
            sample(&second, "backup_job_failing_since_seconds"),
            Some(now - 25.0)
        );
        // It answers with the run already counted: no phantom; the counts go on.
        at(
            &second,
            &t,
            now,
            vec![job(Status::Failed, Some(now - 35.0), Some(now - 25.0))],
        );
        assert_eq!(runs(&second, "failed"), Some(1.0));
        assert_eq!(runs(&second, "completed"), Some(1.0));
        assert_eq!(
            sample(&second, "backup_job_failing_since_seconds"),
            Some(now - 25.0)
        );
        // A run that ended while the exporter was down is not lost.
        let third = store();
        third.restore(kept.clone());
        third.track(&[(t.clone(), settings)]);
        at(
            &third,
            &t,
            now,
            vec![job(Status::Failed, Some(now - 5.0), Some(now - 1.0))],
        );
        assert_eq!(runs(&third, "failed"), Some(2.0));
        assert_eq!(
            sample(&third, "backup_job_failing_since_seconds"),
            Some(now - 25.0),
            "the same streak"
        );
        // Entries of a target no longer configured are kept (written back) until forget_after.
        let fourth = store();
        fourth.restore(kept.clone());
        fourth.track(&[]);
        assert_eq!(fourth.changes(), None);
        fourth.forget_old(now);
        assert_eq!(fourth.lock().pending.len(), 1);
        fourth.track(&[(target(zdm::BACKUP_JOB, "other"), settings)]);
        assert_eq!(fourth.forget_old(now + 600.0), 1);
        assert!(fourth.lock().pending.is_empty());
    }

    #[test]
    fn a_target_left_out_of_the_configuration_remembers_its_jobs_for_when_it_returns() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
        poll(
            &store,
            &t,
            vec![job(Status::Completed, Some(1.0), Some(2.0))],
        );
        track(&store, &[]);
        assert_eq!(text(&store), "");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
        assert!(text(&store).contains("backup_job_last_success_time_seconds{"));
        store.record_poll(&t, PollResult::Gone, Duration::ZERO, 3.0);
        assert!(
            !text(&store).contains("backup_job_last_success_time_seconds{"),
            "404: gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_is_written_every_interval_when_changed_and_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::open(dir.path()).unwrap();
        let store = Arc::new(store());
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(persist(store.clone(), file.clone(), cancel.clone()));
        tokio::task::yield_now().await;
        poll(&store, &t, vec![job(Status::Running, Some(1.0), None)]);
        // The blocking pool runs on real threads: give a write time to land.
        let written = || async {
            for _ in 0..200 {
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(5));
                if file.path().exists() {
                    return true;
                }
            }
            false
        };
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!written().await, "not before the interval");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(written().await, "within the interval");
        assert_eq!(file.load().len(), 1);
        // A change then shutdown: written once more without waiting for the interval.
        poll(&store, &t, vec![job(Status::Failed, Some(1.0), Some(2.0))]);
        cancel.cancel();
        task.await.unwrap();
        assert_eq!(file.load()[0].status, "failed");
    }
}
