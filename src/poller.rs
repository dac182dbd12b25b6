//! Schedules polls: every target every `interval`, first polls at once, later polls spread
//! over the interval, `Retry-After` honoured, faults logged when they start and clear.
//! Time is tokio's clock, so tests with a paused clock run a schedule without sleeping.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::unix_now;
use crate::config::{Config, Upstream};
use crate::model::{ParseField, TargetId};
use crate::outcome::{Fault, Outcome};
use crate::shard::Shard;
use crate::sources::{self, Source, SourceTarget};
use crate::store::{PollResult, Store};
use crate::telemetry::Telemetry;

/// One target with everything needed to poll it.
#[derive(Clone)]
pub struct Planned {
    /// The target's identity in the store and its labels.
    pub id: TargetId,
    /// The upstream's source, shared by its targets (one token cache).
    pub source: Arc<dyn Source>,
    /// The target as the source knows it.
    pub target: SourceTarget,
    /// How often it is polled.
    pub interval: Duration,
    /// Timeout of each request.
    pub timeout: Duration,
    /// Offset of this target's polls within the interval, so an upstream's targets are not
    /// all polled at the same instant.
    pub phase: Duration,
    /// The upstream's one concurrency limit: a poll waits here before it builds any request,
    /// and a poll sends its requests one after another, so at most `concurrency` requests
    /// of an upstream are in flight, and thousands of due targets do not hold thousands of
    /// half-started requests.
    pub admission: Arc<Semaphore>,
    /// Where a poll counts what it had to cut (`backup_parse_errors_total{field="label"}`).
    pub telemetry: Telemetry,
}

/// Builds the sources of a configuration and lists every target.
/// Only the targets of `shard` are planned (all of them with one shard).
pub fn plan(
    config: &Config,
    client: &reqwest::Client,
    telemetry: &Telemetry,
    shard: Shard,
) -> Vec<Planned> {
    config
        .upstreams
        .iter()
        .flat_map(|upstream| plan_upstream(upstream, client, telemetry, shard))
        .collect()
}

/// The targets of one upstream (of `shard`), sharing one source: one token cache, one
/// concurrency limit.
pub fn plan_upstream(
    upstream: &Upstream,
    client: &reqwest::Client,
    telemetry: &Telemetry,
    shard: Shard,
) -> Vec<Planned> {
    plan_upstream_parts(upstream, client, telemetry, shard).planned
}

/// One upstream's plan with the parts its discovery shares: the source and the
/// concurrency limit.
pub struct UpstreamPlan {
    pub source: Arc<dyn Source>,
    pub admission: Arc<Semaphore>,
    /// Its configured targets of `shard`.
    pub planned: Vec<Planned>,
}

/// [`plan_upstream`] with the source and the concurrency limit it made.
pub fn plan_upstream_parts(
    upstream: &Upstream,
    client: &reqwest::Client,
    telemetry: &Telemetry,
    shard: Shard,
) -> UpstreamPlan {
    let mut planned = Vec::new();
    let source = sources::build(upstream, client.clone(), telemetry.clone());
    let name: Arc<str> = Arc::from(upstream.name.as_str());
    let targets: Vec<SourceTarget> = source
        .targets()
        .into_iter()
        .filter(|t| shard.owns(&upstream.name, t.kind.as_str(), &t.name))
        .collect();
    let count = targets.len().max(1) as u32;
    let admission = Arc::new(Semaphore::new(upstream.settings.concurrency.max(1)));
    for (i, target) in targets.into_iter().enumerate() {
        planned.push(Planned {
            id: TargetId {
                system: upstream.kind.system(),
                upstream: name.clone(),
                kind: target.kind,
                target: Arc::from(target.name.as_str()),
            },
            source: source.clone(),
            target,
            interval: upstream.settings.interval,
            timeout: upstream.settings.timeout,
            phase: phase(upstream.settings.interval, i as u32, count),
            admission: admission.clone(),
            telemetry: telemetry.clone(),
        });
    }
    UpstreamPlan {
        source,
        admission,
        planned,
    }
}

/// Phases are whole multiples of this: an upstream's targets start in batches every 100 ms
/// instead of one every few milliseconds, so the runtime wakes once per batch rather than
/// per poll, and a run of neighbouring targets finishes together for the packer.
const PHASE_STEP: Duration = Duration::from_millis(100);

/// The offset of target `i` of `count` within `interval`: spread evenly, rounded down to
/// [`PHASE_STEP`].
pub(crate) fn phase(interval: Duration, i: u32, count: u32) -> Duration {
    let even = interval * i.min(count) / count.max(1);
    in_steps(even)
}

/// `offset` rounded down to whole [`PHASE_STEP`]s.
pub(crate) fn in_steps(offset: Duration) -> Duration {
    let steps = offset.as_nanos() / PHASE_STEP.as_nanos();
    // `steps` steps are at most `offset`: no overflow.
    PHASE_STEP * u32::try_from(steps).unwrap_or(0)
}

/// Polls one target once and records the result. Never panics, never hangs past the
/// interval plus one request timeout.
pub async fn poll_once(planned: &Planned, store: &Store) -> Result<(), Fault> {
    // The semaphore is never closed; without a permit the poll simply runs unthrottled.
    let _permit = planned.admission.acquire().await.ok();
    let started = Instant::now();
    let deadline = (started + planned.interval).into_std();
    let bound = planned.interval + planned.timeout;
    let result =
        match tokio::time::timeout(bound, planned.source.poll(&planned.target, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(Fault::new(
                Outcome::Timeout,
                format!("poll did not finish within {bound:?}"),
            )),
        };
    let (record, outcome) = match result {
        Ok(mut output) => {
            for _ in 0..output.cap_labels() {
                planned.telemetry.parse_error(
                    planned.id.system.as_str(),
                    &planned.id.upstream,
                    ParseField::Label,
                );
            }
            tracing::debug!(
                upstream = %planned.id.upstream,
                target = %planned.id.target,
                kind = planned.id.kind.as_str(),
                jobs = output.jobs.len(),
                seconds = started.elapsed().as_secs_f64(),
                "poll finished"
            );
            (PollResult::Success(output), Ok(()))
        }
        Err(fault) if fault.outcome == Outcome::NotFound => (PollResult::Gone, Err(fault)),
        Err(fault) => (PollResult::Failed(fault.outcome), Err(fault)),
    };
    store.record_poll(&planned.id, record, started.elapsed(), unix_now());
    outcome
}

/// Running poll loops; dropping them does not stop them, `stop` does.
pub struct Pollers {
    cancel: CancellationToken,
    handles: Vec<JoinHandle<()>>,
}

impl Pollers {
    /// Starts one poll loop per planned target, recording into `store`; all start together
    /// and keep their phase from that start.
    pub fn spawn(plan: Vec<Planned>, store: Arc<Store>) -> Self {
        Self::spawn_from(plan, store, Instant::now())
    }

    /// [`Pollers::spawn`] with phases taken from `start` (at or before now): the first
    /// polls still run at once.
    pub fn spawn_from(plan: Vec<Planned>, store: Arc<Store>, start: Instant) -> Self {
        let cancel = CancellationToken::new();
        let handles: Vec<JoinHandle<()>> = plan
            .into_iter()
            .map(|p| tokio::spawn(run(p, store.clone(), cancel.clone(), start)))
            .collect();
        Pollers { cancel, handles }
    }

    /// Tells every loop to stop without waiting for them: a poll in flight is abandoned at
    /// its next step (and the store drops what an untracked target reports).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Stops every loop; a poll in flight is abandoned and its result dropped.
    pub async fn stop(self) {
        self.cancel.cancel();
        for handle in self.handles {
            let _ = handle.await;
        }
    }
}

async fn run(planned: Planned, store: Arc<Store>, cancel: CancellationToken, start: Instant) {
    let mut failing: Option<Outcome> = None;
    let mut next = start;
    let mut cycle: u32 = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        let result = tokio::select! {
            _ = cancel.cancelled() => return,
            r = poll_once(&planned, &store) => r,
        };
        log_transition(&planned.id, &mut failing, &result);

        // First polls run at once; later ones keep a fixed phase within the interval.
        cycle = cycle.saturating_add(1);
        let now = Instant::now();
        next = start + planned.phase + planned.interval * cycle;
        if next <= now {
            // Fell behind (a slow poll): skip the missed slots rather than bursting.
            let behind = now.duration_since(start + planned.phase);
            cycle = (behind.as_secs_f64() / planned.interval.as_secs_f64()).ceil() as u32;
            next = start + planned.phase + planned.interval * cycle.max(1);
        }
        if let Err(Fault {
            retry_after: Some(wait),
            ..
        }) = &result
        {
            // Retry-After comes from the upstream: never wait past the stale window, so
            // a hostile or broken value cannot park the target (or overflow the clock).
            // The store holds the window (a reload may change it without restarting this
            // loop); a target it no longer tracks is about to be stopped.
            let stale_after = store.stale_after(&planned.id).unwrap_or_default();
            next = next.max(now + (*wait).min(stale_after));
        }
    }
}

/// Logs a fault when it starts or changes, and once when it clears.
fn log_transition(id: &TargetId, failing: &mut Option<Outcome>, result: &Result<(), Fault>) {
    match (result, *failing) {
        (Ok(()), Some(previous)) => {
            tracing::info!(
                upstream = %id.upstream,
                target = %id.target,
                kind = id.kind.as_str(),
                previous_outcome = previous.as_str(),
                "target recovered"
            );
            *failing = None;
        }
        (Err(fault), previous) if previous != Some(fault.outcome) => {
            tracing::warn!(
                upstream = %id.upstream,
                target = %id.target,
                kind = id.kind.as_str(),
                outcome = fault.outcome.as_str(),
                reason = %fault.reason,
                "target poll failing"
            );
            *failing = Some(fault.outcome);
        }
        _ => {}
    }
}

#[cfg(test)]
mod phase_tests {
    use super::*;

    #[test]
    fn phases_spread_over_the_interval_in_whole_steps() {
        let interval = Duration::from_secs(5);
        let phases: Vec<Duration> = (0..2000).map(|i| phase(interval, i, 2000)).collect();
        assert!(phases.windows(2).all(|w| w[0] <= w[1]));
        assert!(phases.iter().all(|p| *p < interval));
        assert!(phases
            .iter()
            .all(|p| p.as_nanos() % PHASE_STEP.as_nanos() == 0));
        let mut distinct = phases.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 50, "one batch per 100 ms step");
        assert_eq!(phase(interval, 0, 1), Duration::ZERO);
        // Below one step, every target starts with the first.
        assert!((0..10).all(|i| phase(Duration::from_millis(50), i, 10) == Duration::ZERO));
        // No overflow at the largest interval.
        let day = Duration::from_secs(86_400);
        assert!(phase(day, u32::MAX - 1, u32::MAX) < day);
    }
}

#[cfg(test)]
mod schedule_tests {
    use crate::systems::zdm;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::exposition::Packed;
    use crate::metrics::Format;
    use crate::model::PollOutput;
    use crate::store::SeriesSettings;

    /// A source that notes when it is polled and answers from a script (then succeeds).
    struct Scripted {
        polls: Mutex<Vec<Instant>>,
        answers: Mutex<VecDeque<Result<PollOutput, Fault>>>,
    }

    #[async_trait::async_trait]
    impl Source for Scripted {
        fn targets(&self) -> Vec<SourceTarget> {
            Vec::new()
        }

        async fn poll(
            &self,
            _target: &SourceTarget,
            _deadline: std::time::Instant,
        ) -> Result<PollOutput, Fault> {
            self.polls.lock().unwrap().push(Instant::now());
            let next = self.answers.lock().unwrap().pop_front();
            next.unwrap_or_else(|| Ok(PollOutput::default()))
        }
    }

    fn rate_limited(wait: Duration) -> Result<PollOutput, Fault> {
        let mut fault = Fault::new(Outcome::RateLimited, "429");
        fault.retry_after = Some(wait);
        Err(fault)
    }

    /// One target of `source` polled every `interval` at `phase`, tracked by a fresh store
    /// with `stale_after`.
    fn setup(
        source: &Arc<Scripted>,
        interval: Duration,
        phase: Duration,
        stale_after: Duration,
    ) -> (Planned, Arc<Store>) {
        let id = TargetId {
            system: zdm::SYSTEM,
            upstream: Arc::from("u"),
            kind: zdm::SERVER,
            target: Arc::from("s"),
        };
        let store = Arc::new(Store::new(Arc::new(Packed::new())));
        store.track(&[(id.clone(), SeriesSettings::stale_after(stale_after))]);
        let planned = Planned {
            id,
            source: source.clone(),
            target: SourceTarget {
                kind: zdm::SERVER,
                name: "s".into(),
                index: 0,
            },
            interval,
            timeout: Duration::from_secs(1),
            phase,
            admission: Arc::new(Semaphore::new(1)),
            telemetry: Telemetry::new(),
        };
        (planned, store)
    }

    /// When the source was polled, as offsets from `start` rounded to milliseconds (the
    /// timer's resolution).
    fn offsets(source: &Scripted, start: Instant) -> Vec<u128> {
        source
            .polls
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.duration_since(start).as_millis())
            .collect()
    }

    /// A source whose every poll takes a second of tokio's time, noting when each started.
    struct Slow {
        polls: Mutex<Vec<Instant>>,
    }

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
            self.polls.lock().unwrap().push(Instant::now());
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(PollOutput::default())
        }
    }

    /// Three targets of an upstream with `concurrency: 1` start together and take turns: their
    /// one-second polls start at 0, 1 and 2 s, and each records its own second as its poll
    /// duration, not the time it queued for its turn.
    #[tokio::test(start_paused = true)]
    async fn targets_beyond_the_concurrency_limit_wait_their_turn_which_is_not_their_duration() {
        let source = Arc::new(Slow {
            polls: Mutex::default(),
        });
        let packed = Arc::new(Packed::new());
        let store = Arc::new(Store::new(packed.clone()));
        let admission = Arc::new(Semaphore::new(1));
        let plan: Vec<Planned> = (0..3)
            .map(|i| {
                let name = format!("s{i}");
                Planned {
                    id: TargetId {
                        system: zdm::SYSTEM,
                        upstream: Arc::from("u"),
                        kind: zdm::SERVER,
                        target: Arc::from(name.as_str()),
                    },
                    source: source.clone(),
                    target: SourceTarget {
                        kind: zdm::SERVER,
                        name,
                        index: i,
                    },
                    interval: Duration::from_secs(30),
                    timeout: Duration::from_secs(5),
                    phase: Duration::from_secs(10) * i as u32,
                    admission: admission.clone(),
                    telemetry: Telemetry::new(),
                }
            })
            .collect();
        let tracked: Vec<_> = plan
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    SeriesSettings::stale_after(Duration::from_secs(90)),
                )
            })
            .collect();
        store.track(&tracked);
        let start = Instant::now();
        let pollers = Pollers::spawn(plan, store);
        tokio::time::sleep(Duration::from_secs(5)).await;
        pollers.stop().await;
        let polls: Vec<u128> = source
            .polls
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.duration_since(start).as_millis())
            .collect();
        assert_eq!(polls, [0, 1000, 2000]);
        let mut answer = crate::exposition::Answer::default();
        packed.plain(Format::Text, &mut answer);
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let durations: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("backup_target_poll_duration_seconds{"))
            .filter_map(|l| l.rsplit_once(' ').map(|(_, v)| v))
            .collect();
        assert_eq!(durations, ["1", "1", "1"], "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poller_keeps_its_phase_and_interval() {
        let source = Arc::new(Scripted {
            polls: Mutex::default(),
            answers: Mutex::default(),
        });
        let interval = Duration::from_secs(10);
        let (planned, store) = setup(
            &source,
            interval,
            Duration::from_millis(300),
            Duration::from_secs(30),
        );
        let start = Instant::now();
        let pollers = Pollers::spawn(vec![planned], store);
        tokio::time::sleep(Duration::from_secs(45)).await;
        pollers.stop().await;
        // The first poll at once, then at the phase within every interval.
        assert_eq!(offsets(&source, start), [0, 10_300, 20_300, 30_300, 40_300]);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_but_never_past_the_stale_window_of_the_store() {
        let hour = Duration::from_secs(3600);
        let source = Arc::new(Scripted {
            polls: Mutex::default(),
            answers: Mutex::new(VecDeque::from([rate_limited(hour), rate_limited(hour)])),
        });
        let (planned, store) = setup(
            &source,
            Duration::from_secs(5),
            Duration::ZERO,
            Duration::from_secs(12),
        );
        let id = planned.id.clone();
        let start = Instant::now();
        let pollers = Pollers::spawn(vec![planned], store.clone());
        // The hour is clamped to the 12 s stale window: no poll at 5 s or 10 s.
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(offsets(&source, start), [0]);
        // A reload that changes only stale_after reaches the running poller through the
        // store: the second hour, answered at 12 s, is clamped to 7 s.
        store.track(&[(id, SeriesSettings::stale_after(Duration::from_secs(7)))]);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(offsets(&source, start), [0, 12_000]);
        tokio::time::sleep(Duration::from_secs(10)).await;
        pollers.stop().await;
        let polls = offsets(&source, start);
        assert_eq!(polls.get(..3), Some(&[0, 12_000, 19_000][..]), "{polls:?}");
        // Back on its schedule after the success: every 5 s, on the interval's grid.
        assert_eq!(polls.get(3..), Some(&[20_000][..]), "{polls:?}");
    }
}
