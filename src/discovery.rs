//! `discover: true`: one loop per upstream lists its targets (the source's
//! [`Source::discover`]) at start and then every `discover_interval`, and reconciles the
//! upstream's discovered poll loops with what it found:
//! - a new target of this shard starts polling (first poll at once, then at a phase within
//!   the poll interval, as configured targets do); during the first listing as soon as it
//!   names it: a source hands its targets over page by page ([`Listing`]), so the first
//!   polls run while the rest is listed;
//! - a target that left the listing stops, and its series go at once, as a 404's do;
//! - a configured target is never discovered again: it wins over a duplicate (same kind and
//!   identifier) and keeps its query filters;
//! - a failed listing keeps the last known set (a failed first listing: the targets it
//!   started before it failed, at most `max_jobs_per_target`, as it stops there). Its
//!   requests are counted under their outcomes, a listing past its bounds as `too_large`,
//!   and the fault is logged when it starts, changes or clears.
//!
//! The inventory series of the listing (coverage, agents, repositories, licences) are asked
//! for and exported only by the shard that owns the upstream ([`Shard::owns_upstream`]);
//! every shard lists to find its own targets. `backup_discovery_targets{kind}` counts the
//! discovered targets this shard polls.
//!
//! Names no system: it sees a system only as its `system` and `kind` labels.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::model::{System, TargetId, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::poller::{phase, Planned, Pollers};
use crate::shard::Shard;
use crate::sources::{Discovery, Listing, Source, SourceTarget};
use crate::store::{SeriesSettings, Store};
use crate::telemetry::Telemetry;

/// What one upstream's discovery loop needs.
#[derive(Clone)]
pub struct Lister {
    pub system: System,
    pub upstream: Arc<str>,
    /// `discover_interval`.
    pub every: Duration,
    /// The poll interval and request timeout of its targets.
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// The upstream's source (shared with its configured targets: one token, one login).
    pub source: Arc<dyn Source>,
    /// The upstream's one concurrency limit: a listing holds some of its slots (half, at
    /// most four) while it runs.
    pub admission: Arc<Semaphore>,
    /// The upstream's `concurrency` (the slots of `admission`).
    pub concurrency: usize,
    pub telemetry: Telemetry,
    /// Every configured target of the upstream (of any shard): these are never discovered.
    pub explicit: HashSet<(TargetKind, String)>,
    pub shard: Shard,
}

/// The discovered targets of one upstream and their poll loops. Shared with the app, which
/// tracks them on a reload (with the settings it holds here).
pub struct Found {
    running: BTreeMap<TargetId, Pollers>,
    /// Targets the listing under way handed over, waiting to start with the next batch.
    waiting: Vec<(TargetKind, String)>,
    /// The store settings of the upstream's series (a reload may change them).
    pub settings: SeriesSettings,
    /// The kinds counted in `backup_discovery_targets` (a kind once seen stays, at 0).
    kinds: BTreeSet<TargetKind>,
}

impl Found {
    /// The discovered targets being polled.
    pub fn ids(&self) -> impl Iterator<Item = &TargetId> {
        self.running.keys()
    }
}

/// A discovery loop's shared state.
pub type Shared = Arc<Mutex<Found>>;

/// A new shared state with `settings`.
pub fn shared(settings: SeriesSettings) -> Shared {
    Arc::new(Mutex::new(Found {
        running: BTreeMap::new(),
        waiting: Vec::new(),
        settings,
        kinds: BTreeSet::new(),
    }))
}

/// Locks `shared`; a panic while it was held leaves at worst a stale set.
pub fn lock(shared: &Shared) -> MutexGuard<'_, Found> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The discovered targets this shard polls: each `(kind, identifier)` once, none that is
/// configured, only those whose hash falls in `shard`.
pub fn reconcile(
    upstream: &str,
    found: &[(TargetKind, String)],
    explicit: &HashSet<(TargetKind, String)>,
    shard: Shard,
) -> BTreeSet<(TargetKind, String)> {
    found
        .iter()
        .filter(|(kind, name)| !name.is_empty() && shard.owns(upstream, kind.as_str(), name))
        .filter(|t| !explicit.contains(*t))
        .cloned()
        .collect()
}

/// The running loop of one upstream.
pub struct Task {
    pub shared: Shared,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Task {
    /// Starts listing at once; `/-/ready` waits for the first listing.
    pub fn start(lister: Lister, shared: Shared, store: Arc<Store>) -> Self {
        let cancel = CancellationToken::new();
        store.listing_started();
        let handle = tokio::spawn(run(lister, shared.clone(), store, cancel.clone()));
        Task {
            shared,
            cancel,
            handle,
        }
    }

    /// Stops the loop and every discovered target's poll loop (their series are the
    /// caller's to drop: the next `Store::track` leaves them out).
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
        let running = std::mem::take(&mut lock(&self.shared).running);
        for pollers in running.into_values() {
            pollers.stop().await;
        }
    }
}

/// `--once`: one listing, and the discovered targets of this shard planned for one poll
/// each (none when the listing fails: that is logged). Exports the inventory like the loop.
pub async fn list_once(lister: &Lister) -> Vec<Planned> {
    let inventory = lister.shard.owns_upstream(&lister.upstream);
    let how = Listing::unhurried(requests(lister.concurrency));
    let discovery = match listing(lister, inventory, &how).await {
        Ok(discovery) => {
            note_partial(lister, &mut None, &discovery.partial);
            discovery
        }
        Err(fault) => {
            count_too_large(lister, &fault);
            tracing::warn!(
                upstream = %lister.upstream,
                outcome = fault.outcome.as_str(),
                reason = %fault.reason,
                "discovery listing failed"
            );
            return Vec::new();
        }
    };
    let wanted = reconcile(
        &lister.upstream,
        &discovery.targets,
        &lister.explicit,
        lister.shard,
    );
    if inventory {
        lister.telemetry.inventory().set_inventory(
            lister.system.as_str(),
            &lister.upstream,
            &discovery.inventory,
        );
    }
    wanted
        .into_iter()
        .map(|(kind, name)| Planned {
            id: TargetId {
                system: lister.system,
                upstream: lister.upstream.clone(),
                kind,
                target: Arc::from(name.as_str()),
            },
            source: lister.source.clone(),
            target: SourceTarget::discovered(kind, name),
            interval: lister.poll_interval,
            timeout: lister.timeout,
            phase: Duration::ZERO,
            admission: lister.admission.clone(),
            telemetry: lister.telemetry.clone(),
        })
        .collect()
}

/// The requests a listing sends at once: half the upstream's `concurrency`, at most
/// [`LISTING_REQUESTS`], at least one. The listing holds that many of its slots.
fn requests(concurrency: usize) -> usize {
    (concurrency / 2).clamp(1, LISTING_REQUESTS)
}

/// The most requests one listing sends at once (pages of one list, or vaults).
const LISTING_REQUESTS: usize = 4;

/// One listing of `lister`'s upstream (its inventory too with `inventory`), given its
/// interval plus the timeout to finish.
async fn listing(lister: &Lister, inventory: bool, how: &Listing<'_>) -> Result<Discovery, Fault> {
    let deadline = (Instant::now() + lister.every).into_std();
    let bound = lister.every + lister.timeout;
    match tokio::time::timeout(bound, lister.source.discover(deadline, inventory, how)).await {
        Ok(result) => result,
        Err(_) => Err(Fault::new(
            Outcome::Timeout,
            format!("listing did not finish within {bound:?}"),
        )),
    }
}

async fn run(lister: Lister, shared: Shared, store: Arc<Store>, cancel: CancellationToken) {
    let inventory = lister.shard.owns_upstream(&lister.upstream);
    let mut failing: Option<Outcome> = None;
    let mut partial: Option<Outcome> = None;
    let mut first = true;
    loop {
        let started = Instant::now();
        let slots = requests(lister.concurrency);
        // Only the first listing starts targets before it ends: it is what `/-/ready` waits
        // for, and one failed listing adds at most what it named (later ones add nothing
        // until they complete).
        let early = |targets: Vec<(TargetKind, String)>| {
            if first {
                start_early(&lister, &shared, &store, started, &targets);
            }
        };
        let listed = async {
            let _permits = lister.admission.acquire_many(slots as u32).await.ok();
            listing(&lister, inventory, &Listing::new(slots, &early)).await
        };
        let result = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listed => r,
        };
        let listed = result.as_ref().map_or(0, |d| d.targets.len());
        let seconds = started.elapsed().as_secs_f64();
        if first {
            tracing::info!(upstream = %lister.upstream, seconds, listed, "first discovery listing done");
        } else {
            tracing::debug!(upstream = %lister.upstream, seconds, listed, "discovery listing done");
        }
        match result {
            Ok(discovery) => {
                note_partial(&lister, &mut partial, &discovery.partial);
                apply(&lister, &shared, &store, discovery, inventory);
                if let Some(previous) = failing.take() {
                    tracing::info!(
                        upstream = %lister.upstream,
                        previous_outcome = previous.as_str(),
                        "discovery listing recovered"
                    );
                }
            }
            Err(fault) => {
                count_too_large(&lister, &fault);
                // The targets it started before it failed stay (they are listed); those
                // still waiting start with the next complete listing.
                lock(&shared).waiting.clear();
                if failing != Some(fault.outcome) {
                    tracing::warn!(
                        upstream = %lister.upstream,
                        outcome = fault.outcome.as_str(),
                        reason = %fault.reason,
                        "discovery listing failing; keeping the last known targets"
                    );
                    failing = Some(fault.outcome);
                }
            }
        }
        if first {
            store.listing_finished();
            first = false;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(started + lister.every) => {}
        }
    }
    if first {
        store.listing_finished();
    }
}

/// A listing past its bounds is counted as `too_large` (its requests themselves succeeded).
fn count_too_large(lister: &Lister, fault: &Fault) {
    if fault.outcome == Outcome::TooLarge {
        lister
            .telemetry
            .outcome(lister.system.as_str(), &lister.upstream, Outcome::TooLarge);
    }
}

/// Counts and logs (when the fault starts, changes or clears) the inventory listings that
/// failed while the targets were listed.
fn note_partial(lister: &Lister, state: &mut Option<Outcome>, faults: &[Fault]) {
    for fault in faults {
        count_too_large(lister, fault);
    }
    let now = faults.first().map(|f| f.outcome);
    if now == *state {
        return;
    }
    match faults.first() {
        Some(fault) => tracing::warn!(
            upstream = %lister.upstream,
            outcome = fault.outcome.as_str(),
            reason = %fault.reason,
            "inventory listing failing; keeping what it said last"
        ),
        None => tracing::info!(upstream = %lister.upstream, "inventory listings recovered"),
    }
    *state = now;
}

/// Reconciles the running discovered targets with `discovery`, and exports its inventory
/// when this shard owns it.
fn apply(
    lister: &Lister,
    shared: &Shared,
    store: &Arc<Store>,
    discovery: Discovery,
    inventory: bool,
) {
    let wanted = reconcile(
        &lister.upstream,
        &discovery.targets,
        &lister.explicit,
        lister.shard,
    );
    let mut found = lock(shared);
    // Those still waiting start with the rest.
    found.waiting.clear();
    // The counts and the inventory first: whoever sees a discovered target polled sees the
    // listing that found it.
    for (kind, _) in &discovery.targets {
        found.kinds.insert(*kind);
    }
    let counts: Vec<(&str, usize)> = found
        .kinds
        .iter()
        .map(|kind| {
            (
                kind.as_str(),
                wanted.iter().filter(|(k, _)| k == kind).count(),
            )
        })
        .collect();
    lister
        .telemetry
        .inventory()
        .set_targets(lister.system.as_str(), &lister.upstream, &counts);
    if inventory {
        lister.telemetry.inventory().set_inventory(
            lister.system.as_str(),
            &lister.upstream,
            &discovery.inventory,
        );
    }
    let gone: Vec<TargetId> = found
        .running
        .keys()
        .filter(|id| !wanted.contains(&(id.kind, id.target.to_string())))
        .cloned()
        .collect();
    for id in &gone {
        if let Some(pollers) = found.running.remove(id) {
            pollers.cancel();
        }
    }
    if !gone.is_empty() {
        store.remove_targets(&gone);
        tracing::info!(upstream = %lister.upstream, targets = gone.len(), "discovered targets left the listing");
    }
    let new: Vec<(TargetKind, String)> = wanted
        .into_iter()
        .filter(|t| !found.running.contains_key(&id_of(lister, t)))
        .collect();
    if !new.is_empty() {
        let count = new.len();
        start_targets(lister, &mut found, store, new, Phases::Even, Instant::now());
        tracing::info!(upstream = %lister.upstream, targets = count, "discovered new targets");
    }
}

/// The id of a discovered target of `lister`'s upstream.
fn id_of(lister: &Lister, (kind, name): &(TargetKind, String)) -> TargetId {
    TargetId {
        system: lister.system,
        upstream: lister.upstream.clone(),
        kind: *kind,
        target: Arc::from(name.as_str()),
    }
}

/// How a batch of new targets is phased within the poll interval.
enum Phases {
    /// Spread evenly in the batch's order (a complete listing's new targets).
    Even,
    /// By where the exposition lays each out (targets handed over during a listing, whose
    /// number is not known yet): the targets of one run of the pre-compressed series poll
    /// within [`RUN_WINDOW`] of each other, so the run is compressed once per interval
    /// (the packer waits up to a second for a run), and the runs are spread over the
    /// interval in bit-reversed order of their place, evenly for any number of them.
    ByRun,
}

/// Slots of the interval the runs of [`Phases::ByRun`] are spread over.
const RUN_SLOTS: u32 = 1024;
/// The most a run's targets of [`Phases::ByRun`] are spread over (under the packer's
/// one-second wait): its 64 targets do not all poll in the same step.
const RUN_WINDOW: Duration = Duration::from_millis(800);

/// The phase of the target laid out at `place` (the first run when unknown).
fn run_phase(interval: Duration, place: Option<usize>) -> Duration {
    let per_run = crate::exposition::runs::TARGETS_PER_RUN;
    let place = place.unwrap_or(0);
    let (run, slot_in_run) = (place / per_run, place % per_run);
    // The low bits of the run number, reversed: 0, 512, 256, 768, 128, ... of 1024.
    let slot = (run as u32 % RUN_SLOTS).reverse_bits() >> (32 - RUN_SLOTS.trailing_zeros());
    let window = RUN_WINDOW.min(interval / 8);
    let offset = interval * slot / RUN_SLOTS + window * slot_in_run as u32 / per_run as u32;
    // Past the end of the interval: from its start again.
    let offset = if offset >= interval {
        offset - interval
    } else {
        offset
    };
    crate::poller::in_steps(offset)
}

/// Tracks `new` targets in the store and starts their poll loops from `start`, phased as
/// `phases` says.
fn start_targets(
    lister: &Lister,
    found: &mut Found,
    store: &Arc<Store>,
    new: Vec<(TargetKind, String)>,
    phases: Phases,
    start: Instant,
) {
    let settings = found.settings;
    let tracked: Vec<(TargetId, SeriesSettings)> =
        new.iter().map(|t| (id_of(lister, t), settings)).collect();
    let places = store.add_targets(&tracked);
    let count = new.len() as u32;
    let phases: Vec<Duration> = places
        .iter()
        .enumerate()
        .map(|(i, place)| match phases {
            Phases::Even => phase(lister.poll_interval, i as u32, count),
            Phases::ByRun => run_phase(lister.poll_interval, *place),
        })
        .collect();
    for ((kind, name), phase) in new.into_iter().zip(phases) {
        let planned = Planned {
            id: id_of(lister, &(kind, name.clone())),
            source: lister.source.clone(),
            target: SourceTarget::discovered(kind, name),
            interval: lister.poll_interval,
            timeout: lister.timeout,
            phase,
            admission: lister.admission.clone(),
            telemetry: lister.telemetry.clone(),
        };
        let id = planned.id.clone();
        found
            .running
            .insert(id, Pollers::spawn_from(vec![planned], store.clone(), start));
    }
}

/// The fewest targets handed over during a listing that start together.
const EARLY_BATCH: usize = 64;

/// Starts the targets of `batch` that a listing begun at `start` names before it ends and
/// that are not polled yet: their polls run while the rest is listed. They start in
/// batches of at least [`EARLY_BATCH`] and a quarter of those already running (every
/// batch lays the exposition out again; the batches grow, so a listing of `n` targets
/// makes a few dozen of them, not one per page). Their phases ([`Phases::ByRun`]) are
/// taken from `start`, so the targets of one listing wake in the same steps.
fn start_early(
    lister: &Lister,
    shared: &Shared,
    store: &Arc<Store>,
    start: Instant,
    batch: &[(TargetKind, String)],
) {
    let wanted = reconcile(&lister.upstream, batch, &lister.explicit, lister.shard);
    let mut found = lock(shared);
    found.waiting.extend(wanted);
    if found.waiting.len() < (found.running.len() / 4).max(EARLY_BATCH) {
        return;
    }
    let mut new = std::mem::take(&mut found.waiting);
    new.sort();
    new.dedup();
    new.retain(|t| !found.running.contains_key(&id_of(lister, t)));
    if new.is_empty() {
        return;
    }
    start_targets(lister, &mut found, store, new, Phases::ByRun, start);
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::exposition::Packed;
    use crate::model::PollOutput;
    use crate::systems::zdm;

    fn t(kind: TargetKind, name: &str) -> (TargetKind, String) {
        (kind, name.to_owned())
    }

    #[test]
    fn reconcile_dedupes_keeps_configured_out_and_splits_by_shard() {
        let found = vec![
            t(zdm::SERVER, "a"),
            t(zdm::SERVER, "a"),
            t(zdm::SERVER, "b"),
            t(zdm::BACKUP_JOB, "b"),
            t(zdm::SERVER, ""),
        ];
        let explicit: HashSet<_> = [t(zdm::SERVER, "b")].into_iter().collect();
        let all = reconcile("u", &found, &explicit, Shard::default());
        assert_eq!(
            all.into_iter().collect::<Vec<_>>(),
            [t(zdm::SERVER, "a"), t(zdm::BACKUP_JOB, "b")]
        );
        // Three shards split a hundred targets with no overlap and none lost.
        let many: Vec<_> = (0..100).map(|i| t(zdm::SERVER, &format!("s{i}"))).collect();
        let mut seen = BTreeSet::new();
        for index in 0..3 {
            let shard = Shard::new(index, 3).unwrap();
            for target in reconcile("u", &many, &HashSet::new(), shard) {
                assert!(seen.insert(target), "a target on two shards");
            }
        }
        assert_eq!(seen.len(), 100);
    }

    /// Targets laid out in one run poll within 800 ms of each other, in whole steps; the
    /// runs spread over the interval, halves first, then quarters (whatever their number).
    #[test]
    fn targets_handed_over_early_are_phased_by_their_run() {
        let interval = Duration::from_secs(30);
        let at = |place: usize| run_phase(interval, Some(place));
        let within = |run: usize, start: Duration| {
            (run * 64..run * 64 + 64).all(|p| at(p) >= start && at(p) < start + RUN_WINDOW)
        };
        assert!(within(0, Duration::ZERO));
        assert!(within(1, Duration::from_secs(15)));
        assert!(within(2, Duration::from_millis(7500)));
        assert!(within(3, Duration::from_millis(22_500)));
        assert_eq!(at(0), Duration::ZERO);
        assert_eq!(at(63), Duration::from_millis(700), "spread over the window");
        assert!(
            (0..5000).all(|p| at(p).as_millis() % 100 == 0),
            "whole steps"
        );
        let mut phases: Vec<Duration> = (0..16).map(|r| at(r * 64)).collect();
        phases.sort();
        phases.dedup();
        assert_eq!(phases.len(), 16, "sixteen runs, sixteen phases");
        assert!((0..100_000).step_by(7).all(|p| at(p) < interval));
        assert_eq!(run_phase(interval, None), Duration::ZERO);
        assert!(run_phase(interval, Some(usize::MAX)) < interval);
        // A short interval: the window shrinks with it.
        let short = Duration::from_secs(1);
        assert!((0..64).all(|p| run_phase(short, Some(p)) < Duration::from_millis(200)));
    }

    /// A source whose listings come from a script (then fail), and whose polls succeed
    /// with no jobs.
    struct Listed {
        listings: Mutex<VecDeque<Result<Discovery, Fault>>>,
        asked_inventory: Mutex<Vec<bool>>,
    }

    #[async_trait::async_trait]
    impl Source for Listed {
        fn targets(&self) -> Vec<SourceTarget> {
            Vec::new()
        }

        async fn poll(
            &self,
            _target: &SourceTarget,
            _deadline: std::time::Instant,
        ) -> Result<PollOutput, Fault> {
            Ok(PollOutput::default())
        }

        async fn discover(
            &self,
            _deadline: std::time::Instant,
            inventory: bool,
            _listing: &Listing<'_>,
        ) -> Result<Discovery, Fault> {
            self.asked_inventory.lock().unwrap().push(inventory);
            self.listings
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(Fault::new(Outcome::Http5xx, "503")))
        }
    }

    fn listing(names: &[&str]) -> Result<Discovery, Fault> {
        Ok(Discovery {
            targets: names.iter().map(|n| t(zdm::SERVER, n)).collect(),
            ..Discovery::default()
        })
    }

    fn names(shared: &Shared) -> Vec<String> {
        lock(shared).ids().map(|id| id.target.to_string()).collect()
    }

    fn lister(source: Arc<Listed>, explicit: &[&str], telemetry: &Telemetry) -> Lister {
        Lister {
            system: zdm::SYSTEM,
            upstream: Arc::from("u"),
            every: Duration::from_secs(60),
            poll_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            source,
            admission: Arc::new(Semaphore::new(4)),
            concurrency: 4,
            telemetry: telemetry.clone(),
            explicit: explicit.iter().map(|n| t(zdm::SERVER, n)).collect(),
            shard: Shard::default(),
        }
    }

    /// Added, removed, kept when configured, kept when the listing fails, and a too_large
    /// listing counted; ready only once the first listing is in.
    #[tokio::test(start_paused = true)]
    async fn the_loop_adds_removes_and_keeps_the_last_set_when_a_listing_fails() {
        let too_large = Err(Fault::new(Outcome::TooLarge, "pages forever"));
        let source = Arc::new(Listed {
            listings: Mutex::new(VecDeque::from([
                listing(&["a", "b", "configured"]),
                listing(&["a", "c"]),
                Err(Fault::new(Outcome::Http5xx, "503")),
                too_large,
                listing(&[]),
            ])),
            asked_inventory: Mutex::default(),
        });
        let telemetry = Telemetry::new();
        let packed = Arc::new(Packed::new());
        let store = Arc::new(Store::new(packed.clone()));
        let shared = shared(SeriesSettings::stale_after(Duration::from_secs(90)));
        use crate::exposition::Views;
        assert!(store.ready(), "nothing to wait for yet");
        let task = Task::start(
            lister(source.clone(), &["configured"], &telemetry),
            shared.clone(),
            store.clone(),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(names(&shared), ["a", "b"], "the configured target wins");
        let exposition = String::from_utf8(telemetry.encode(crate::metrics::Format::Text)).unwrap();
        assert!(
            exposition.contains(
                "backup_discovery_targets{system=\"zdm\",upstream=\"u\",kind=\"server\"} 2"
            ),
            "{exposition}"
        );
        assert!(
            store.ready(),
            "the first listing and the first polls are in"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(names(&shared), ["a", "c"], "b left, c came");
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            names(&shared),
            ["a", "c"],
            "failed listings keep the last set"
        );
        let exposition = String::from_utf8(telemetry.encode(crate::metrics::Format::Text)).unwrap();
        assert!(exposition.contains(
            "backup_upstream_requests_total{outcome=\"too_large\",system=\"zdm\",upstream=\"u\"} 1"
        ), "{exposition}");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            names(&shared).is_empty(),
            "an empty listing removes them all"
        );
        task.stop().await;
        assert_eq!(
            source.asked_inventory.lock().unwrap().first(),
            Some(&true),
            "one shard: it exports the inventory"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_before_the_first_listing() {
        use crate::exposition::Views;
        struct Slow;
        #[async_trait::async_trait]
        impl Source for Slow {
            fn targets(&self) -> Vec<SourceTarget> {
                Vec::new()
            }
            async fn poll(
                &self,
                _target: &SourceTarget,
                _deadline: std::time::Instant,
            ) -> Result<PollOutput, Fault> {
                Ok(PollOutput::default())
            }
            async fn discover(
                &self,
                _deadline: std::time::Instant,
                _inventory: bool,
                _listing: &Listing<'_>,
            ) -> Result<Discovery, Fault> {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(Discovery::default())
            }
        }
        let telemetry = Telemetry::new();
        let store = Arc::new(Store::new(Arc::new(Packed::new())));
        let mut l = lister(
            Arc::new(Listed {
                listings: Mutex::default(),
                asked_inventory: Mutex::default(),
            }),
            &[],
            &telemetry,
        );
        l.source = Arc::new(Slow);
        let task = Task::start(
            l,
            shared(SeriesSettings::stale_after(Duration::from_secs(90))),
            store.clone(),
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!store.ready());
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(store.ready());
        task.stop().await;
    }
}
