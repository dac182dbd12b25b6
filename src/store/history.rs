//! Run counting and the last success of one job identity, whoever reports it: a run is
//! counted once when it is seen ending, back-to-back runs are told apart by their start (or
//! end) times, and a job first seen already ended adds nothing.

use crate::metrics::{self, JobHistory};
use crate::model::JobRecord;
use crate::status::Status;

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

/// What one job identity has done: its run counts and last success, and the run it was in
/// when last observed.
#[derive(Debug)]
pub struct RunHistory {
    totals: JobHistory,
    last: RunMark,
}

impl RunHistory {
    /// A job seen for the first time: a run that already ended is not counted, so a restart
    /// adds nothing (sources that tell runs apart report what ended since their own
    /// baseline).
    pub fn first_sight(job: &JobRecord) -> Self {
        let mut history = RunHistory {
            totals: JobHistory {
                runs: [0; 4],
                last_success: success_end(job),
            },
            last: RunMark::of(job),
        };
        if let Some(reported) = &job.ended_runs {
            count(&mut history.totals, reported);
        }
        history
    }

    /// Updates run counting and the last success with one more observation of the job.
    /// Returns whether the totals changed.
    pub fn observe(&mut self, job: &JobRecord) -> bool {
        let before = self.totals.clone();
        let mark = RunMark::of(job);
        match &job.ended_runs {
            Some(reported) => count(&mut self.totals, reported),
            None if mark.ends_new_run(&self.last) => count(&mut self.totals, &[job.status]),
            None => {}
        }
        if let Some(end) = success_end(job) {
            if self.totals.last_success.is_none_or(|prev| end > prev) {
                self.totals.last_success = Some(end);
            }
        }
        self.last = mark;
        self.totals != before
    }

    /// The run counts and the last success, as `metrics` renders them.
    pub fn totals(&self) -> &JobHistory {
        &self.totals
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

fn count(history: &mut JobHistory, ended: &[Status]) {
    for status in ended {
        if let Some(i) = metrics::RUN_RESULTS.iter().position(|r| r == status) {
            history.runs[i] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::systems::zdm;
    use std::time::Duration;

    use crate::status::Status;
    use crate::store::test_support::{job, poll, runs, store, target, text, track};

    #[test]
    fn runs_count_transitions_once_and_back_to_back_runs_by_start_time() {
        let store = store();
        let t = target(zdm::BACKUP_JOB, "j");
        track(&store, &[(t.clone(), Duration::from_secs(90))]);
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
}
