//! The normalized records every source produces and the state store consumes.

use std::fmt;
use std::sync::Arc;

use crate::status::Status;

/// An upstream product family: the `system` label. Each system declares its own in its
/// folder under `src/systems/`; the core knows none by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct System {
    /// Series of different systems sort by this first (derived `Ord` compares the fields
    /// in order), so `/metrics` lists the systems in the registry's order.
    rank: u8,
    name: &'static str,
}

impl System {
    /// The system labelled `name`, sorting by `rank` among the others.
    pub const fn new(name: &'static str, rank: u8) -> Self {
        System { rank, name }
    }

    /// The `system` label.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// Where its series sort among the systems'.
    pub fn rank(self) -> u8 {
        self.rank
    }
}

/// What a configured target points at: the `kind` label of `backup_target_*`. Each system
/// declares the kinds it polls in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetKind {
    /// Targets of one upstream sort by this first, then by name.
    rank: u8,
    name: &'static str,
}

impl TargetKind {
    /// The kind labelled `name`, sorting by `rank` among the others.
    pub const fn new(name: &'static str, rank: u8) -> Self {
        TargetKind { rank, name }
    }

    /// The `kind` label.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    /// Where its targets sort among the kinds'.
    pub fn rank(self) -> u8 {
        self.rank
    }
}

/// One polled thing: a configured server, job, backup or vault of one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId {
    pub system: System,
    pub upstream: Arc<str>,
    pub kind: TargetKind,
    pub target: Arc<str>,
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.upstream,
            self.kind.as_str(),
            self.target
        )
    }
}

/// The identity of a job series: the labels every `backup_job_*` series carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub system: System,
    pub upstream: Arc<str>,
    pub operation: String,
    pub job_name: String,
    pub server: String,
    pub volume: String,
}

/// A job as one poll saw it, already parsed. Absent values are `None`, never 0.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Shared: the store keeps one copy of each identity however often it is seen.
    pub key: Arc<JobKey>,
    pub status: Status,
    /// The upstream's own status word, for the landing page.
    pub raw_status: String,
    pub progress: Option<f64>,
    pub elapsed_seconds: Option<f64>,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub message: Option<String>,
    /// Descriptive labels of `backup_job_info` (e.g. source_server, target_server), sorted by name.
    pub info: Vec<(&'static str, String)>,
    /// How runs are counted. `None`: the store counts the ends it sees in this record's
    /// status transitions. `Some`: the source tells individual runs apart itself (history
    /// entries, job ids) and these are the results of the runs it saw end since its
    /// previous poll.
    pub ended_runs: Option<Vec<Status>>,
    /// End time of the newest completed run the source saw, when that is not this
    /// record's own run (an older history entry or job).
    pub newest_success_end: Option<f64>,
    /// Why the latest run failed: set by the source when `status` is failed.
    pub failure: Option<Failure>,
    /// Size of the newest finished run in bytes, where the upstream says.
    pub size_bytes: Option<f64>,
}

/// Why a run failed, as `backup_job_failure_reason{code, reason, title}` says it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Failure {
    /// Normalized with [`failure_text`]; "" when the upstream gives no reason.
    pub reason: String,
    /// The upstream's error code; "" where there is none.
    pub code: String,
    /// The upstream's title of the error (Azure's `errorTitle`); "" where there is none.
    pub title: String,
}

impl Failure {
    /// A failure with `reason` and `code` normalized for a label: whitespace runs collapsed
    /// to one space, at most 200 characters (cut on a character boundary, ending in `…`).
    pub fn new(reason: &str, code: &str) -> Self {
        Failure {
            reason: failure_text(reason),
            code: failure_text(code),
            title: String::new(),
        }
    }

    /// The same failure with the upstream's error `title`, normalized like the reason.
    pub fn with_title(mut self, title: &str) -> Self {
        self.title = failure_text(title);
        self
    }
}

/// Characters a failure reason keeps (interface 5.1).
pub const MAX_REASON_CHARS: usize = 200;

/// Whitespace runs collapsed to one space, trimmed, at most [`MAX_REASON_CHARS`] characters.
pub fn failure_text(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::text::truncate(&collapsed, MAX_REASON_CHARS)
}

/// A server's summary block (its jobs counted by state), where the upstream gives one.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSummary {
    pub server: String,
    /// Each count is absent when the summary leaves it out (no series, never 0).
    pub completed: Option<u64>,
    pub running: Option<u64>,
    pub failed: Option<u64>,
    pub pending: Option<u64>,
    pub total: Option<u64>,
    pub progress: Option<f64>,
}

impl ServerSummary {
    /// `summary.total` minus the counts present, floored at 0, so the states sum to total;
    /// absent when the total is.
    pub fn other(&self) -> Option<u64> {
        let counted = [self.completed, self.running, self.failed, self.pending]
            .into_iter()
            .flatten()
            .fold(0u64, u64::saturating_add);
        Some(self.total?.saturating_sub(counted))
    }
}

/// Everything one successful poll of a target produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollOutput {
    pub jobs: Vec<JobRecord>,
    pub summaries: Vec<ServerSummary>,
}

/// How `backup_job_status` is exported (`job_status`, interface 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobStatusSeries {
    /// One series per status, exactly one of them 1 (the state set).
    #[default]
    StateSet,
    /// Only the series whose value is 1: a seventh of the samples.
    Active,
}

/// The `field` label of `backup_parse_errors_total`: the same names for every system
/// (interface 5.1), whatever the upstream calls the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseField {
    Status,
    Percent,
    Elapsed,
    StartTime,
    EndTime,
    Size,
    JobName,
    Server,
    Summary,
    Label,
    Other,
}

impl ParseField {
    pub const ALL: [ParseField; 11] = [
        ParseField::Status,
        ParseField::Percent,
        ParseField::Elapsed,
        ParseField::StartTime,
        ParseField::EndTime,
        ParseField::Size,
        ParseField::JobName,
        ParseField::Server,
        ParseField::Summary,
        ParseField::Label,
        ParseField::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ParseField::Status => "status",
            ParseField::Percent => "percent",
            ParseField::Elapsed => "elapsed",
            ParseField::StartTime => "start_time",
            ParseField::EndTime => "end_time",
            ParseField::Size => "size",
            ParseField::JobName => "job_name",
            ParseField::Server => "server",
            ParseField::Summary => "summary",
            ParseField::Label => "label",
            ParseField::Other => "other",
        }
    }

    /// The shared field labelled `label` (the inverse of [`ParseField::as_str`]), `Other`
    /// for any other name. A system maps its own field names onto these in its folder and
    /// hands that table to its `FieldParser`.
    pub fn of(label: &str) -> ParseField {
        ParseField::ALL
            .into_iter()
            .find(|field| field.as_str() == label)
            .unwrap_or(ParseField::Other)
    }
}

/// The longest label value exported, in bytes; longer upstream text is cut (and counted as
/// a `label` parse error by the poller). Also the bound on the texts kept for the landing
/// page (status word, message).
pub const MAX_LABEL_BYTES: usize = 1024;

/// Cuts `value` to at most `max` bytes, on a character boundary. True if it was cut.
fn cap(value: &mut String, max: usize) -> bool {
    if value.len() <= max {
        return false;
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.truncate(end);
    true
}

impl PollOutput {
    /// Cuts every label value longer than [`MAX_LABEL_BYTES`] (and bounds the landing
    /// page's texts the same way); returns how many label values were cut.
    pub fn cap_labels(&mut self) -> usize {
        let mut cut = 0;
        for job in &mut self.jobs {
            let key = &job.key;
            let long = [&key.operation, &key.job_name, &key.server, &key.volume]
                .iter()
                .any(|v| v.len() > MAX_LABEL_BYTES);
            if long {
                let mut key = (*job.key).clone();
                for value in [
                    &mut key.operation,
                    &mut key.job_name,
                    &mut key.server,
                    &mut key.volume,
                ] {
                    cut += usize::from(cap(value, MAX_LABEL_BYTES));
                }
                job.key = Arc::new(key);
            }
            for (_, value) in &mut job.info {
                cut += usize::from(cap(value, MAX_LABEL_BYTES));
            }
            cap(&mut job.raw_status, MAX_LABEL_BYTES);
            if let Some(message) = &mut job.message {
                cap(message, MAX_LABEL_BYTES);
            }
        }
        for summary in &mut self.summaries {
            cut += usize::from(cap(&mut summary.server, MAX_LABEL_BYTES));
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_fields_read_back_from_their_labels() {
        for field in ParseField::ALL {
            assert_eq!(ParseField::of(field.as_str()), field);
        }
        assert_eq!(ParseField::of("restore_state"), ParseField::Other);
    }

    /// Series order: by rank first (the registry's order), whatever the names.
    #[test]
    fn systems_and_kinds_sort_by_rank_then_name() {
        assert!(System::new("b", 0) < System::new("a", 1));
        assert!(TargetKind::new("z", 0) < TargetKind::new("a", 1));
        assert!(TargetKind::new("a", 1) < TargetKind::new("b", 1));
        assert_eq!(System::new("x", 3).as_str(), "x");
        assert_eq!(TargetKind::new("y", 4).rank(), 4);
    }

    #[test]
    fn failure_reasons_are_collapsed_and_cut() {
        let f = Failure::new("  disk\n\t full   on  /data ", "E42");
        assert_eq!(f.reason, "disk full on /data");
        assert_eq!(f.code, "E42");
        let long = Failure::new(&"가 ".repeat(300), "");
        assert_eq!(long.reason.chars().count(), MAX_REASON_CHARS + 1);
        assert!(long.reason.ends_with('…'));
        assert_eq!(Failure::new("", "").reason, "");
    }

    #[test]
    fn long_label_values_are_cut_on_a_character_boundary_and_counted() {
        let key = JobKey {
            system: System::new("zdm", 0),
            upstream: Arc::from("u"),
            operation: "backup".into(),
            job_name: "가".repeat(500), // 1,500 bytes
            server: "s".repeat(MAX_LABEL_BYTES),
            volume: String::new(),
        };
        let mut output = PollOutput {
            jobs: vec![JobRecord {
                key: Arc::new(key),
                status: Status::Running,
                raw_status: "x".repeat(1 << 20),
                progress: None,
                elapsed_seconds: None,
                start_time: None,
                end_time: None,
                message: Some("m".repeat(5000)),
                info: vec![("vault", "v".repeat(2000))],
                ended_runs: None,
                newest_success_end: None,
                failure: None,
                size_bytes: None,
            }],
            summaries: Vec::new(),
        };
        assert_eq!(output.cap_labels(), 2, "job_name and the info label");
        let job = &output.jobs[0];
        assert_eq!(job.key.job_name, "가".repeat(341));
        assert_eq!(
            job.key.server.len(),
            MAX_LABEL_BYTES,
            "exactly the limit stays"
        );
        assert_eq!(job.info[0].1.len(), MAX_LABEL_BYTES);
        assert_eq!(job.raw_status.len(), MAX_LABEL_BYTES);
        assert_eq!(job.message.as_deref().map(str::len), Some(MAX_LABEL_BYTES));
        assert_eq!(output.cap_labels(), 0, "nothing left to cut");
    }
}
