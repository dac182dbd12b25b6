//! One target's series as bytes per family, rendered by `metrics` into a scratch buffer
//! that each thread reuses.

use crate::metrics::{self, Family, FamilyBuffers, JobHistory, Rendered, TargetHealth};
use crate::model::{JobKey, JobRecord, JobStatusSeries, ServerSummary, TargetId};

/// The families [`metrics::render_target`] writes.
pub const HEALTH_FAMILIES: u32 = 1 << Family::TargetUp as u32
    | 1 << Family::TargetLastSuccess as u32
    | 1 << Family::TargetPollDuration as u32
    | 1 << Family::TargetFailureReason as u32;

/// What one target renders: the jobs it owns with their histories, the jobs it remembers,
/// its server summaries, and its health once it has been polled.
pub struct TargetSeries<'a, J, R> {
    /// The target whose series these are.
    pub target: &'a TargetId,
    /// The jobs it owns, sorted by key, each with its identity's run history.
    pub jobs: J,
    /// The jobs no target reports that it reported last, sorted by key: their last success
    /// and failing-since only.
    pub remembered: R,
    /// Its server summaries (empty when only the health is rendered).
    pub summaries: &'a [ServerSummary],
    /// Which `backup_job_status` series the jobs export.
    pub job_status: JobStatusSeries,
    /// Its `backup_target_*` values; `None` before its first poll.
    pub health: Option<TargetHealth>,
}

/// Renders `series` with this thread's scratch buffers.
pub fn render<'a, J, R>(series: TargetSeries<'a, J, R>) -> Rendered
where
    J: Iterator<Item = (&'a JobRecord, &'a JobHistory)>,
    R: Iterator<Item = (&'a JobKey, &'a JobHistory)>,
{
    thread_local! {
        // Reused across renders on this thread: no growth-doubling on every poll.
        static SCRATCH: std::cell::RefCell<FamilyBuffers> = std::cell::RefCell::new(FamilyBuffers::new());
    }
    SCRATCH.with(|scratch| {
        let mut out = scratch.borrow_mut();
        out.clear();
        render_into(&mut out, series);
        let rendered = out.finish();
        // Given back now, not at this thread's next render: an idle thread holds no more
        // than the bound.
        out.clear();
        rendered
    })
}

fn render_into<'a, J, R>(out: &mut FamilyBuffers, series: TargetSeries<'a, J, R>)
where
    J: Iterator<Item = (&'a JobRecord, &'a JobHistory)>,
    R: Iterator<Item = (&'a JobKey, &'a JobHistory)>,
{
    for (record, history) in series.jobs {
        metrics::render_job(out, record, history, series.job_status);
    }
    for (key, history) in series.remembered {
        metrics::render_remembered(out, key, history);
    }
    for summary in series.summaries {
        metrics::render_summary(out, series.target, summary);
    }
    if let Some(health) = &series.health {
        metrics::render_target(out, series.target, health);
    }
}

#[cfg(test)]
mod tests {
    use crate::systems::zdm;
    use std::sync::Arc;

    use super::*;
    use crate::model::JobKey;
    use crate::status::Status;
    use crate::store::test_support::{job, target};

    /// Regression: the thread-local render scratch buffers never shrank after one huge
    /// target.
    #[test]
    fn render_scratch_gives_back_what_a_huge_target_grew() {
        let t = target(zdm::SERVER, "huge");
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
        let history = JobHistory::default();
        let series = || TargetSeries {
            target: &t,
            jobs: jobs.iter().map(|j| (j, &history)),
            remembered: std::iter::empty(),
            summaries: &[],
            job_status: JobStatusSeries::StateSet,
            health: None,
        };
        // The path a poll takes: the thread's scratch, given back after the render.
        let big = render(series());
        let len: usize = Family::ALL.iter().map(|f| big.family(*f).len()).sum();
        assert!(len > 8 * metrics::SCRATCH_KEEP);
        let mut bufs = FamilyBuffers::new();
        render_into(&mut bufs, series());
        assert!(bufs.capacity() > 8 * metrics::SCRATCH_KEEP);
        bufs.clear();
        assert!(bufs.capacity() <= metrics::FAMILY_COUNT * metrics::SCRATCH_KEEP);
    }
}
