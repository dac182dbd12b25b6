//! Run counting and the last success of one job identity, whoever reports it: a run is
//! counted once when it is seen ending, back-to-back runs are told apart by their start (or
//! end) times, and a job first seen already ended adds nothing. Also when its current run of
//! failures began and how long its latest finished run took.
//!
//! Failing since: the failure of a run is known from its end time, so a streak of failures
//! begins at the end of its first failed run when the upstream gives it (and it is not in
//! the future), else at the first poll that saw that run failed. Runs in between (a retry
//! running) keep the streak; a success ends it, and so does a last success newer than the
//! streak's start (a success the exporter did not see, reported by a run history).

use crate::metrics::{self, JobHistory};
use crate::model::JobRecord;
use crate::status::Status;

/// The run a record belongs to, to tell a new run from the same one seen again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMark {
    pub status: Status,
    pub start: Option<f64>,
    pub end: Option<f64>,
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
#[derive(Debug, Clone, PartialEq)]
pub struct RunHistory {
    totals: JobHistory,
    last: RunMark,
    /// When the current run of failures began, kept while a retry runs.
    streak: Option<f64>,
}

/// What [`RunHistory`] keeps, in the form storage writes and reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// Indexed like `metrics::RUN_RESULTS`.
    pub runs: [u64; 4],
    pub last_success: Option<f64>,
    /// When the current run of failures began (kept while a retry runs).
    pub failing_since: Option<f64>,
    pub last_duration: Option<f64>,
    /// The run the job was in when last observed.
    pub last: RunMark,
}

impl RunHistory {
    /// A job seen for the first time at `now` (Unix seconds): a run that already ended is
    /// not counted, so a restart adds nothing (sources that tell runs apart report what
    /// ended since their own baseline).
    pub fn first_sight(job: &JobRecord, now: f64) -> Self {
        let mut history = RunHistory {
            totals: JobHistory {
                runs: [0; 4],
                last_success: success_end(job),
                failing_since: None,
                last_duration: None,
            },
            last: RunMark::of(job),
            streak: None,
        };
        if let Some(reported) = &job.ended_runs {
            count(&mut history.totals, reported);
        }
        history.follow(job, now);
        history
    }

    /// A history as storage kept it.
    pub fn restore(kept: Kept) -> Self {
        let mut history = RunHistory {
            totals: JobHistory {
                runs: kept.runs,
                last_success: kept.last_success,
                failing_since: None,
                last_duration: kept.last_duration,
            },
            last: kept.last,
            streak: kept.failing_since,
        };
        history.totals.failing_since = history.failing_since();
        history
    }

    /// What storage writes of it.
    pub fn kept(&self) -> Kept {
        Kept {
            runs: self.totals.runs,
            last_success: self.totals.last_success,
            failing_since: self.streak,
            last_duration: self.totals.last_duration,
            last: self.last,
        }
    }

    /// Updates run counting, the last success, the failure streak and the last duration with
    /// one more observation of the job at `now` (Unix seconds). Returns whether anything it
    /// keeps changed.
    pub fn observe(&mut self, job: &JobRecord, now: f64) -> bool {
        let before = self.clone();
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
        self.follow(job, now);
        *self != before
    }

    /// The failure streak and the last finished run's duration after observing `job`.
    fn follow(&mut self, job: &JobRecord, now: f64) {
        if job.status.is_terminal() {
            if let Some(d) = run_duration(job) {
                self.totals.last_duration = Some(d);
            }
        }
        match job.status {
            Status::Completed | Status::CompletedWithWarnings => self.streak = None,
            Status::Failed => {
                let succeeded_since = |since: f64| {
                    self.totals
                        .last_success
                        .is_some_and(|success| success > since)
                };
                if self.streak.is_none_or(succeeded_since) {
                    let failed_at = job.end_time.filter(|end| end.is_finite() && *end <= now);
                    self.streak = Some(failed_at.unwrap_or(now));
                }
            }
            _ => {}
        }
        self.totals.failing_since = self.failing_since();
    }

    /// The streak's start while the latest run seen is failed.
    fn failing_since(&self) -> Option<f64> {
        self.streak.filter(|_| self.last.status == Status::Failed)
    }

    /// The run counts, the last success, failing since and the last duration, as `metrics`
    /// renders them.
    pub fn totals(&self) -> &JobHistory {
        &self.totals
    }
}

/// How long a finished run took: end minus start, else the elapsed time the upstream gives.
fn run_duration(job: &JobRecord) -> Option<f64> {
    match (job.start_time, job.end_time) {
        (Some(start), Some(end)) if end >= start && (end - start).is_finite() => Some(end - start),
        _ => job.elapsed_seconds.filter(|e| e.is_finite() && *e >= 0.0),
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

    use super::RunHistory;
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

    fn seen(
        history: &mut RunHistory,
        status: Status,
        start: Option<f64>,
        end: Option<f64>,
        now: f64,
    ) -> Option<f64> {
        history.observe(&job(status, start, end), now);
        history.totals().failing_since
    }

    #[test]
    fn failing_since_is_the_first_failed_run_of_a_streak() {
        // Seen failed with an end time: the failure happened then.
        let mut h = RunHistory::first_sight(&job(Status::Failed, Some(5.0), Some(10.0)), 100.0);
        assert_eq!(h.totals().failing_since, Some(10.0));
        // A retry running: absent, the streak kept.
        assert_eq!(
            seen(&mut h, Status::Running, Some(110.0), None, 120.0),
            None
        );
        assert_eq!(
            seen(&mut h, Status::Failed, Some(110.0), Some(130.0), 140.0),
            Some(10.0)
        );
        // A success ends it; the next failure without an end time starts at the poll.
        assert_eq!(
            seen(&mut h, Status::Completed, Some(150.0), Some(160.0), 170.0),
            None
        );
        assert_eq!(
            seen(&mut h, Status::Failed, Some(180.0), None, 200.0),
            Some(200.0)
        );
        // An end time in the future (a wrong time zone) is not evidence.
        let h = RunHistory::first_sight(&job(Status::Failed, None, Some(500.0)), 300.0);
        assert_eq!(h.totals().failing_since, Some(300.0));
        // A success the exporter did not see (a run history reports it) ends the streak.
        let mut h = RunHistory::first_sight(&job(Status::Failed, None, Some(10.0)), 20.0);
        let mut later = job(Status::Failed, Some(40.0), Some(50.0));
        later.newest_success_end = Some(30.0);
        h.observe(&later, 60.0);
        assert_eq!(h.totals().failing_since, Some(50.0));
        assert_eq!(h.totals().last_success, Some(30.0));
    }

    #[test]
    fn the_last_duration_is_of_the_latest_finished_run() {
        let mut h = RunHistory::first_sight(&job(Status::Running, Some(0.0), None), 1.0);
        assert_eq!(h.totals().last_duration, None, "no finished run yet");
        h.observe(&job(Status::Completed, Some(0.0), Some(100.0)), 101.0);
        assert_eq!(h.totals().last_duration, Some(100.0));
        h.observe(&job(Status::Running, Some(200.0), None), 201.0);
        assert_eq!(
            h.totals().last_duration,
            Some(100.0),
            "kept while the next runs"
        );
        let mut elapsed = job(Status::Failed, Some(200.0), None);
        elapsed.elapsed_seconds = Some(42.0);
        h.observe(&elapsed, 300.0);
        assert_eq!(
            h.totals().last_duration,
            Some(42.0),
            "the API's elapsed without an end"
        );
        // What storage keeps comes back the same.
        assert_eq!(RunHistory::restore(h.kept()), h);
    }
}
