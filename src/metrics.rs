//! Records -> Prometheus text exposition: families, label escaping, state sets.
//!
//! Each target's series are rendered into one chunk per family when its poll finishes;
//! a scrape then writes each family header once followed by every target's chunk for it,
//! so families are never split and the scrape does no formatting.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::model::{JobKey, JobRecord, JobStatusSeries, ServerSummary, TargetId};
use crate::status::Status;

/// The job and target families, in exposition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    JobStatus,
    JobProgress,
    JobElapsed,
    JobStart,
    JobEnd,
    JobLastSuccess,
    JobRuns,
    JobInfo,
    JobFailureReason,
    JobSize,
    JobFailingSince,
    JobLastRunDuration,
    ServerJobs,
    ServerProgress,
    TargetUp,
    TargetLastSuccess,
    TargetPollDuration,
    TargetFailureReason,
}

pub const FAMILY_COUNT: usize = 18;

impl Family {
    pub const ALL: [Family; FAMILY_COUNT] = [
        Family::JobStatus,
        Family::JobProgress,
        Family::JobElapsed,
        Family::JobStart,
        Family::JobEnd,
        Family::JobLastSuccess,
        Family::JobRuns,
        Family::JobInfo,
        Family::JobFailureReason,
        Family::JobSize,
        Family::JobFailingSince,
        Family::JobLastRunDuration,
        Family::ServerJobs,
        Family::ServerProgress,
        Family::TargetUp,
        Family::TargetLastSuccess,
        Family::TargetPollDuration,
        Family::TargetFailureReason,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::JobStatus => "backup_job_status",
            Family::JobProgress => "backup_job_progress_ratio",
            Family::JobElapsed => "backup_job_elapsed_seconds",
            Family::JobStart => "backup_job_start_time_seconds",
            Family::JobEnd => "backup_job_end_time_seconds",
            Family::JobLastSuccess => "backup_job_last_success_time_seconds",
            Family::JobRuns => "backup_job_runs_total",
            Family::JobInfo => "backup_job_info",
            Family::JobFailureReason => "backup_job_failure_reason",
            Family::JobSize => "backup_job_size_bytes",
            Family::JobFailingSince => "backup_job_failing_since_seconds",
            Family::JobLastRunDuration => "backup_job_last_run_duration_seconds",
            Family::ServerJobs => "backup_server_jobs",
            Family::ServerProgress => "backup_server_progress_ratio",
            Family::TargetUp => "backup_target_up",
            Family::TargetLastSuccess => "backup_target_last_success_time_seconds",
            Family::TargetPollDuration => "backup_target_poll_duration_seconds",
            Family::TargetFailureReason => "backup_target_failure_reason",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::JobStatus => "Current status of the job's latest run as a state set: exactly one status is 1.",
            Family::JobProgress => "Progress of the job's latest run as a ratio from 0 to 1.",
            Family::JobElapsed => "Elapsed time of the job's latest run in seconds, as reported upstream.",
            Family::JobStart => "Start time of the job's latest run as a Unix timestamp.",
            Family::JobEnd => "End time of the job's latest run as a Unix timestamp.",
            Family::JobLastSuccess => "End time of the newest run seen completed (with or without warnings) as a Unix timestamp.",
            Family::JobRuns => "Runs seen ending since the exporter first saw the job, by result.",
            Family::JobInfo => "Descriptive labels of the job; the value is always 1.",
            Family::JobFailureReason => "Why the job's latest run failed (upstream message and code); present only while it is failed, the value is always 1.",
            Family::JobSize => "Size of the job's newest finished run in bytes, as reported upstream.",
            Family::JobFailingSince => "When the job's current run of failures began as a Unix timestamp (the failed run's end, else the first poll that saw it failed); present only while its latest run is failed.",
            Family::JobLastRunDuration => "Duration in seconds of the job's latest finished run (end minus start, else the elapsed time reported upstream).",
            Family::ServerJobs => "Jobs of a server by status, from the upstream's summary block.",
            Family::ServerProgress => "Overall progress of a server's jobs as a ratio from 0 to 1.",
            Family::TargetUp => "1 if the last poll of the target succeeded, 0 otherwise.",
            Family::TargetLastSuccess => "Time of the target's last successful poll as a Unix timestamp.",
            Family::TargetPollDuration => "Duration of the target's last poll in seconds, pages and retries included.",
            Family::TargetFailureReason => "The outcome that failed the target's last poll; present only while it is failing, the value is always 1.",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Family::JobRuns => "counter",
            _ => "gauge",
        }
    }

    /// `# HELP` and `# TYPE` lines of the family in `format`. The samples are the same
    /// bytes in both formats; only OpenMetrics names a counter's family without `_total`
    /// and types `backup_job_info` as `info` (family `backup_job`).
    pub fn header(self, format: Format) -> String {
        let (name, kind) = match (format, self) {
            (Format::OpenMetrics, Family::JobRuns) => ("backup_job_runs", "counter"),
            (Format::OpenMetrics, Family::JobInfo) => ("backup_job", "info"),
            _ => (self.name(), self.kind()),
        };
        format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            help = self.help()
        )
    }
}

/// The two exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Results of `backup_job_runs_total`, in exposition order.
pub const RUN_RESULTS: [Status; 4] = [
    Status::Completed,
    Status::CompletedWithWarnings,
    Status::Failed,
    Status::Cancelled,
];

/// What the exporter remembers of a job between polls: counted runs, the last success, when
/// its current failures began and how long its latest finished run took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobHistory {
    /// Indexed like [`RUN_RESULTS`].
    pub runs: [u64; 4],
    pub last_success: Option<f64>,
    /// When the current run of failures began; `None` unless the latest run seen failed.
    pub failing_since: Option<f64>,
    /// Duration of the latest finished run.
    pub last_duration: Option<f64>,
}

/// Capacity a render scratch buffer keeps between renders (per family, per thread).
pub const SCRATCH_KEEP: usize = 64 * 1024;

/// One chunk of text per family for one target.
#[derive(Debug, Default)]
pub struct FamilyBuffers {
    bufs: [String; FAMILY_COUNT],
}

impl FamilyBuffers {
    pub fn new() -> Self {
        Self::default()
    }

    fn buf(&mut self, family: Family) -> &mut String {
        &mut self.bufs[family as usize]
    }

    /// Empties the buffers but keeps their capacity, to render the next target; a buffer
    /// that one huge target grew past [`SCRATCH_KEEP`] is given back, so a single hostile
    /// answer does not pin its size per thread for the life of the process.
    pub fn clear(&mut self) {
        for buf in &mut self.bufs {
            buf.clear();
            if buf.capacity() > SCRATCH_KEEP {
                buf.shrink_to(SCRATCH_KEEP);
            }
        }
    }

    /// The bytes the buffers hold on to between renders.
    pub fn capacity(&self) -> usize {
        self.bufs.iter().map(String::capacity).sum()
    }

    /// Copies the chunks into one allocation of exactly their size. The result lives until
    /// the target's next poll; one right-sized block per target (instead of a dozen
    /// growth-doubled ones) keeps the long-running heap from fragmenting.
    pub fn finish(&self) -> Rendered {
        let total = self.bufs.iter().map(String::len).sum();
        let mut text = Vec::with_capacity(total);
        let mut ends = [0; FAMILY_COUNT];
        for (end, buf) in ends.iter_mut().zip(&self.bufs) {
            text.extend_from_slice(buf.as_bytes());
            *end = text.len();
        }
        Rendered {
            text: Bytes::from(text),
            ends,
        }
    }
}

/// One target's series: every family's chunk, back to back in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    text: Bytes,
    /// Where each family's chunk ends in `text`.
    ends: [usize; FAMILY_COUNT],
}

impl Rendered {
    /// The chunk of `family` (a cheap reference into the shared buffer).
    pub fn family(&self, family: Family) -> Bytes {
        let i = family as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.slice(start..self.ends[i])
    }

    pub fn has(&self, family: Family) -> bool {
        let i = family as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.ends[i] > start
    }
}

/// Appends `value` escaped for a label value of the text format. The format can escape only
/// `\\`, `"` and newline; other control characters (a raw CR or NUL makes strict parsers
/// reject the whole exposition) are replaced by U+FFFD.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Appends a sample value in the text format's float syntax.
pub fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

fn write_sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    out.push('{');
    for (i, (label, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push_str("} ");
    write_value(out, value);
    out.push('\n');
}

fn job_labels(job: &JobRecord) -> [(&'static str, &str); 6] {
    key_labels(&job.key)
}

fn key_labels(k: &JobKey) -> [(&'static str, &str); 6] {
    [
        ("system", k.system.as_str()),
        ("upstream", &k.upstream),
        ("operation", &k.operation),
        ("job_name", &k.job_name),
        ("server", &k.server),
        ("volume", &k.volume),
    ]
}

fn with_extra<'a>(
    base: &[(&'static str, &'a str)],
    extra: (&'static str, &'a str),
) -> Vec<(&'static str, &'a str)> {
    let mut labels = Vec::with_capacity(base.len() + 1);
    labels.extend_from_slice(base);
    labels.push(extra);
    labels
}

/// Renders every series of one job; with [`JobStatusSeries::Active`] only the status
/// series whose value is 1.
pub fn render_job(
    out: &mut FamilyBuffers,
    job: &JobRecord,
    history: &JobHistory,
    status_series: JobStatusSeries,
) {
    let labels = job_labels(job);
    for status in Status::ALL {
        let value = if status == job.status { 1.0 } else { 0.0 };
        if status_series == JobStatusSeries::Active && status != job.status {
            continue;
        }
        let l = with_extra(&labels, ("status", status.as_str()));
        write_sample(
            out.buf(Family::JobStatus),
            Family::JobStatus.name(),
            &l,
            value,
        );
    }
    let optional = [
        (Family::JobProgress, job.progress),
        (Family::JobElapsed, job.elapsed_seconds),
        (Family::JobStart, job.start_time),
        (Family::JobEnd, job.end_time),
        (Family::JobLastSuccess, history.last_success),
        (Family::JobLastRunDuration, history.last_duration),
    ];
    for (family, value) in optional {
        if let Some(v) = value {
            write_sample(out.buf(family), family.name(), &labels, v);
        }
    }
    for (result, count) in RUN_RESULTS.iter().zip(history.runs) {
        let l = with_extra(&labels, ("result", result.as_str()));
        write_sample(
            out.buf(Family::JobRuns),
            Family::JobRuns.name(),
            &l,
            count as f64,
        );
    }
    let mut l = labels.to_vec();
    l.extend(job.info.iter().map(|(name, value)| (*name, value.as_str())));
    write_sample(out.buf(Family::JobInfo), Family::JobInfo.name(), &l, 1.0);
    if job.status == Status::Failed {
        let failure = job.failure.clone().unwrap_or_default();
        let mut l = labels.to_vec();
        l.push(("code", &failure.code));
        l.push(("reason", &failure.reason));
        l.push(("title", &failure.title));
        write_sample(
            out.buf(Family::JobFailureReason),
            Family::JobFailureReason.name(),
            &l,
            1.0,
        );
    }
    if let Some(size) = job.size_bytes {
        write_sample(
            out.buf(Family::JobSize),
            Family::JobSize.name(),
            &labels,
            size,
        );
    }
    if let Some(since) = history
        .failing_since
        .filter(|_| job.status == Status::Failed)
    {
        write_sample(
            out.buf(Family::JobFailingSince),
            Family::JobFailingSince.name(),
            &labels,
            since,
        );
    }
}

/// Renders what is kept of a job no target reports any more (its target's polls failed past
/// `stale_after`, or it was read from storage and its target has not answered yet): its last
/// success and, while its latest run seen is failed, since when, until `forget_after`.
pub fn render_remembered(out: &mut FamilyBuffers, key: &JobKey, history: &JobHistory) {
    let labels = key_labels(key);
    let kept = [
        (Family::JobLastSuccess, history.last_success),
        (Family::JobFailingSince, history.failing_since),
    ];
    for (family, value) in kept {
        if let Some(v) = value {
            write_sample(out.buf(family), family.name(), &labels, v);
        }
    }
}

/// Renders the server summary block of one server.
pub fn render_summary(out: &mut FamilyBuffers, target: &TargetId, summary: &ServerSummary) {
    let base = [
        ("system", target.system.as_str()),
        ("upstream", &*target.upstream),
        ("server", summary.server.as_str()),
    ];
    let counts = [
        ("completed", summary.completed),
        ("running", summary.running),
        ("failed", summary.failed),
        ("pending", summary.pending),
        ("other", summary.other()),
    ];
    for (status, count) in counts {
        let Some(count) = count else { continue };
        let l = with_extra(&base, ("status", status));
        write_sample(
            out.buf(Family::ServerJobs),
            Family::ServerJobs.name(),
            &l,
            count as f64,
        );
    }
    if let Some(p) = summary.progress {
        write_sample(
            out.buf(Family::ServerProgress),
            Family::ServerProgress.name(),
            &base,
            p,
        );
    }
}

/// The last poll's outcome for `backup_target_*`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetHealth {
    pub up: bool,
    /// The outcome word of the failure of the last poll (`http_5xx`, `timeout`, ...).
    pub failure: Option<&'static str>,
    pub last_success: Option<f64>,
    pub poll_duration: Option<f64>,
}

/// Renders `backup_target_*` of one target.
pub fn render_target(out: &mut FamilyBuffers, target: &TargetId, health: &TargetHealth) {
    let labels = [
        ("system", target.system.as_str()),
        ("upstream", &*target.upstream),
        ("kind", target.kind.as_str()),
        ("target", &*target.target),
    ];
    let up = if health.up { 1.0 } else { 0.0 };
    write_sample(
        out.buf(Family::TargetUp),
        Family::TargetUp.name(),
        &labels,
        up,
    );
    if let Some(t) = health.last_success {
        write_sample(
            out.buf(Family::TargetLastSuccess),
            Family::TargetLastSuccess.name(),
            &labels,
            t,
        );
    }
    if let Some(d) = health.poll_duration {
        write_sample(
            out.buf(Family::TargetPollDuration),
            Family::TargetPollDuration.name(),
            &labels,
            d,
        );
    }
    if let Some(reason) = health.failure.filter(|_| !health.up) {
        let l = with_extra(&labels, ("reason", reason));
        write_sample(
            out.buf(Family::TargetFailureReason),
            Family::TargetFailureReason.name(),
            &l,
            1.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::systems::zdm;

    fn job() -> JobRecord {
        JobRecord {
            key: Arc::new(JobKey {
                system: zdm::SYSTEM,
                upstream: Arc::from("zdm"),
                operation: "backup".into(),
                job_name: "일일 \"백업\"\\n".into(),
                server: "line\nbreak".into(),
                volume: "C:".into(),
            }),
            status: Status::Running,
            raw_status: "run".into(),
            progress: Some(0.45),
            elapsed_seconds: Some(900.0),
            start_time: Some(1736910000.0),
            end_time: None,
            message: None,
            info: vec![],
            ended_runs: None,
            newest_success_end: None,
            failure: None,
            size_bytes: None,
        }
    }

    #[test]
    fn label_values_are_escaped_per_text_format() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\"b\\c\nd 한글");
        assert_eq!(s, "a\\\"b\\\\c\\nd 한글");
        // Regression: raw CR and NUL went out as they were; strict parsers refuse them.
        let mut s = String::new();
        escape_label_value(&mut s, "cr\rnul\0esc\u{1b}tab\t");
        assert_eq!(s, "cr\u{FFFD}nul\u{FFFD}esc\u{FFFD}tab\t");
    }

    #[test]
    fn values_use_prometheus_float_syntax() {
        for (v, want) in [
            (0.45, "0.45"),
            (1736906400.0, "1736906400"),
            (93784.5, "93784.5"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn job_renders_state_set_runs_and_skips_absent_values() {
        let mut out = FamilyBuffers::new();
        render_job(
            &mut out,
            &job(),
            &JobHistory::default(),
            JobStatusSeries::StateSet,
        );
        let b = out.finish();
        let status = b.family(Family::JobStatus);
        let status = std::str::from_utf8(&status).unwrap();
        assert_eq!(status.lines().count(), 7);
        assert_eq!(status.lines().filter(|l| l.ends_with(" 1")).count(), 1);
        assert!(status.contains(
            "backup_job_status{system=\"zdm\",upstream=\"zdm\",operation=\"backup\",job_name=\"일일 \\\"백업\\\"\\\\n\",server=\"line\\nbreak\",volume=\"C:\",status=\"running\"} 1\n"
        ));
        assert!(!b.has(Family::JobEnd));
        assert!(!b.has(Family::JobLastSuccess));
        let runs = b.family(Family::JobRuns);
        let runs = std::str::from_utf8(&runs).unwrap();
        assert_eq!(runs.lines().count(), 4);
        assert!(runs.lines().all(|l| l.ends_with(" 0")));
    }

    #[test]
    fn summary_other_is_floored_at_zero() {
        let target = TargetId {
            system: zdm::SYSTEM,
            upstream: Arc::from("u"),
            kind: zdm::SERVER,
            target: Arc::from("s"),
        };
        let summary = ServerSummary {
            server: "s".into(),
            completed: Some(3),
            running: Some(2),
            failed: Some(0),
            pending: None,
            total: Some(4),
            progress: None,
        };
        let mut out = FamilyBuffers::new();
        render_summary(&mut out, &target, &summary);
        let b = out.finish();
        let text = b.family(Family::ServerJobs);
        let text = std::str::from_utf8(&text).unwrap();
        assert!(text.contains("status=\"other\"} 0\n"));
        // Regression: a count missing from the summary exported 0; it has no series.
        assert!(!text.contains("status=\"pending\""), "{text}");
        assert!(!b.has(Family::ServerProgress));
        let no_total = ServerSummary {
            total: None,
            ..summary
        };
        let mut out = FamilyBuffers::new();
        render_summary(&mut out, &target, &no_total);
        let b = out.finish();
        let text = b.family(Family::ServerJobs);
        let text = std::str::from_utf8(&text).unwrap();
        assert!(
            !text.contains("status=\"other\""),
            "no total, no other: {text}"
        );
        assert!(text.contains("status=\"completed\"} 3\n"));
    }
}

/// What an upstream lists besides its jobs (`discover: true`): coverage, agents,
/// repositories, licences, and the number of discovered targets. Rendered by
/// [`crate::inventory`] once per listing, not per poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InventoryFamily {
    DiscoveryTargets,
    ServerProtected,
    ServerAgentConnected,
    ServerAgentInfo,
    RepositorySize,
    RepositoryUsed,
    RepositoryFree,
    LicenseExpiry,
    LicenseCopies,
    ItemLastBackup,
    ItemLastSuccess,
    ItemLastBackupStatus,
    ItemHealth,
    ItemProtectionState,
}

impl InventoryFamily {
    pub const ALL: [InventoryFamily; 14] = [
        InventoryFamily::DiscoveryTargets,
        InventoryFamily::ServerProtected,
        InventoryFamily::ServerAgentConnected,
        InventoryFamily::ServerAgentInfo,
        InventoryFamily::RepositorySize,
        InventoryFamily::RepositoryUsed,
        InventoryFamily::RepositoryFree,
        InventoryFamily::LicenseExpiry,
        InventoryFamily::LicenseCopies,
        InventoryFamily::ItemLastBackup,
        InventoryFamily::ItemLastSuccess,
        InventoryFamily::ItemLastBackupStatus,
        InventoryFamily::ItemHealth,
        InventoryFamily::ItemProtectionState,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InventoryFamily::DiscoveryTargets => "backup_discovery_targets",
            InventoryFamily::ServerProtected => "backup_server_protected",
            InventoryFamily::ServerAgentConnected => "backup_server_agent_connected",
            InventoryFamily::ServerAgentInfo => "backup_server_agent_info",
            InventoryFamily::RepositorySize => "backup_repository_size_bytes",
            InventoryFamily::RepositoryUsed => "backup_repository_used_bytes",
            InventoryFamily::RepositoryFree => "backup_repository_free_bytes",
            InventoryFamily::LicenseExpiry => "backup_license_expiry_time_seconds",
            InventoryFamily::LicenseCopies => "backup_license_copies",
            InventoryFamily::ItemLastBackup => "backup_protected_item_last_backup_time_seconds",
            InventoryFamily::ItemLastSuccess => "backup_protected_item_last_success_time_seconds",
            InventoryFamily::ItemLastBackupStatus => "backup_protected_item_last_backup_status",
            InventoryFamily::ItemHealth => "backup_protected_item_health_status",
            InventoryFamily::ItemProtectionState => "backup_protected_item_protection_state",
        }
    }

    fn help(self) -> &'static str {
        match self {
            InventoryFamily::DiscoveryTargets => "Targets this replica polls because the upstream's listing named them (discover: true), by kind.",
            InventoryFamily::ServerProtected => "1 if the server the upstream lists has at least one backup job, 0 if it has none.",
            InventoryFamily::ServerAgentConnected => "1 if the server's agent is connected to the upstream, 0 if it is not.",
            InventoryFamily::ServerAgentInfo => "The version of the server's agent; the value is always 1.",
            InventoryFamily::RepositorySize => "Size of the backup repository in bytes.",
            InventoryFamily::RepositoryUsed => "Bytes used in the backup repository.",
            InventoryFamily::RepositoryFree => "Bytes free in the backup repository.",
            InventoryFamily::LicenseExpiry => "When the licence expires, as a Unix timestamp.",
            InventoryFamily::LicenseCopies => "Copies of the licence, total and used.",
            InventoryFamily::ItemLastBackup => "When the protected item's last backup ran, as the upstream's item list says (Unix time).",
            InventoryFamily::ItemLastSuccess => "When the protected item was last backed up successfully, as the upstream's item list says (Unix time), however long ago.",
            InventoryFamily::ItemLastBackupStatus => "The protected item's last backup status as the upstream names it; the value is always 1.",
            InventoryFamily::ItemHealth => "The protected item's health as a state set: exactly one state is 1.",
            InventoryFamily::ItemProtectionState => "The protected item's protection state as a state set: exactly one state is 1.",
        }
    }

    /// `# HELP` and `# TYPE` lines; the agent info gauge is an `info` family in OpenMetrics.
    pub fn header(self, format: Format) -> String {
        let (name, kind) = match (format, self) {
            (Format::OpenMetrics, InventoryFamily::ServerAgentInfo) => {
                ("backup_server_agent", "info")
            }
            _ => (self.name(), "gauge"),
        };
        format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n",
            help = self.help()
        )
    }
}
