//! Helpers the unit tests of the store's files share: a store with its exposition, targets,
//! records, polls and what the exposition then says.

use std::sync::Arc;
use std::time::Duration;

use super::{PollResult, SeriesSettings, Store};
use crate::exposition::Packed;
use crate::metrics::Format;
use crate::model::{JobKey, JobRecord, PollOutput, TargetId, TargetKind};
use crate::status::Status;
use crate::systems::zdm;

/// A store writing to an exposition of its own.
pub fn store() -> Store {
    Store::new(Arc::new(Packed::new()))
}

/// Makes `store` track `targets` with these `stale_after`s and the default `job_status`.
pub fn track(store: &Store, targets: &[(TargetId, Duration)]) {
    let with: Vec<_> = targets
        .iter()
        .map(|(t, d)| (t.clone(), SeriesSettings::stale_after(*d)))
        .collect();
    store.track(&with);
}

pub fn target(kind: TargetKind, name: &str) -> TargetId {
    TargetId {
        system: zdm::SYSTEM,
        upstream: Arc::from("u"),
        kind,
        target: Arc::from(name),
    }
}

pub fn job(status: Status, start: Option<f64>, end: Option<f64>) -> JobRecord {
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

/// The job and target families the store's exposition holds (text format).
pub fn text(store: &Store) -> String {
    let mut answer = crate::exposition::Answer::default();
    store.packed.plain(Format::Text, &mut answer);
    String::from_utf8_lossy(&answer.to_vec()).into_owned()
}

pub fn runs(store: &Store, result: &str) -> Option<f64> {
    let needle = format!("result=\"{result}\"}} ");
    text(store)
        .lines()
        .find(|l| l.starts_with("backup_job_runs_total{") && l.contains(&needle))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

pub fn poll(store: &Store, t: &TargetId, jobs: Vec<JobRecord>) {
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
