//! ZDM's answers -> `JobRecord`s: one series per job and volume, the server summary block,
//! recoveries with their source and target servers; and the table from ZDM's field names
//! to the shared `field` labels of `backup_parse_errors_total`.

use std::sync::Arc;

use serde_json::Value;

use super::labels::SYSTEM;
use super::wire::{
    last_log_line, JobData, JobEntry, Jobs, LastLine, Named, ProgressInfo, RecoveryData,
    ReplicationData, Summary, SystemData,
};
use crate::model::{Failure, JobKey, JobRecord, ParseField, PollOutput, ServerSummary};
use crate::sources::source::FieldParser;
use crate::status::Status;

/// The shared `field` label of each of ZDM's field names (interface 5.1).
pub(super) fn label(field: &str) -> ParseField {
    match field {
        "start" => ParseField::StartTime,
        "end" => ParseField::EndTime,
        "info.name" => ParseField::JobName,
        "system.name" | "system.target.name" | "system.source.name" => ParseField::Server,
        "summary.overallProgress" => ParseField::Percent,
        f if f.starts_with("summary.") => ParseField::Summary,
        shared => ParseField::of(shared),
    }
}

fn name_of(fields: &FieldParser, field: &str, named: Option<&Named>) -> Option<String> {
    fields
        .text(field, named.and_then(|n| n.name.as_ref()))
        .filter(|n| !n.is_empty())
}

/// The volume label: a Linux partition or a Windows drive, "" when the API gives none.
fn volume(fields: &FieldParser, partition: Option<&Value>, drive: Option<&Value>) -> String {
    fields
        .text("partition", partition)
        .filter(|p| !p.is_empty() && p != "-")
        .or_else(|| {
            fields
                .text("drive", drive)
                .filter(|d| !d.is_empty() && d != "-")
        })
        .unwrap_or_default()
}

/// ZDM's own status words (1.0.3 .. 2.0.1, the vendor's `job-status` list; the rest are in
/// the shared table): `Scheduled` is a run that finished and waits for its next schedule
/// (the vendor's server summary counts it as completed), so with an end time it is that
/// finished run, completed (the store counts it once per end time, and its end is the last
/// success); without one it has never run, pending.
/// 0.2.0's list has no `Scheduled` (its `schedule` is pending in the shared table), so
/// there the word is not ZDM's and goes to the shared table like any other.
pub(super) fn vendor_word(word: &str, end_time: Option<f64>, words: Words) -> Option<Status> {
    match (word, words) {
        ("scheduled", Words::Current) if end_time.is_some() => Some(Status::Completed),
        ("scheduled", Words::Current) => Some(Status::Pending),
        _ => None,
    }
}

/// Which `job-status` list a server speaks: the version decides (section 6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Words {
    /// 1.0.3 .. 2.0.1 (and a server whose version is not settled): `Scheduled` is a
    /// finished run.
    #[default]
    Current,
    /// 0.2.0: `run`, `complete`, `start`, `waiting`, `cancel`, `schedule`.
    V0_2,
}

fn job_record(
    fields: &FieldParser,
    words: Words,
    key: JobKey,
    progress: Option<&ProgressInfo>,
    log: Option<&LastLine>,
    info: Vec<(&'static str, String)>,
) -> JobRecord {
    let empty = ProgressInfo::default();
    let p = progress.unwrap_or(&empty);
    let end_time = fields.time("end", p.end.as_ref());
    let (status, raw_status) =
        fields.status_with("status", p.status.as_ref(), |word| {
            vendor_word(word, end_time, words)
        });
    let message = fields
        .text("message", p.message.as_ref())
        .filter(|m| !m.trim().is_empty() && m != "-");
    // Why it failed: the progress message, else the last line of the job's log.
    let failure = (status == Status::Failed).then(|| {
        let reason = message.clone().or_else(|| last_log_line(log));
        Failure::new(reason.as_deref().unwrap_or(""), "")
    });
    JobRecord {
        key: Arc::new(key),
        status,
        raw_status,
        progress: fields.percent("percent", p.percent.as_ref()),
        elapsed_seconds: fields.duration("elapsed", p.elapsed.as_ref()),
        start_time: fields.time("start", p.start.as_ref()),
        end_time,
        message,
        info,
        ended_runs: None,
        newest_success_end: None,
        failure,
        size_bytes: None,
    }
}

fn backup_jobs(
    fields: &FieldParser,
    words: Words,
    server: &str,
    jobs: Option<Jobs<JobEntry>>,
) -> Vec<JobRecord> {
    let mut out = Vec::new();
    for entry in jobs.map(Jobs::into_vec).unwrap_or_default() {
        let info = entry.info.unwrap_or_default();
        let Some(job_name) = fields
            .text("info.name", info.name.as_ref())
            .filter(|n| !n.is_empty())
        else {
            fields.missing("info.name");
            continue;
        };
        let key = JobKey {
            system: SYSTEM,
            upstream: fields.upstream().clone(),
            operation: "backup".to_string(),
            job_name,
            server: server.to_string(),
            volume: volume(fields, info.partition.as_ref(), info.drive.as_ref()),
        };
        out.push(job_record(
            fields,
            words,
            key,
            entry.progress_info.as_ref(),
            entry.log.as_ref(),
            Vec::new(),
        ));
    }
    out
}

pub(super) fn map_system(
    fields: &FieldParser,
    words: Words,
    data: SystemData,
    fallback: &str,
) -> PollOutput {
    let server = name_of(fields, "system.name", data.system.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    PollOutput {
        summaries: summary(fields, &server, data.summary),
        jobs: backup_jobs(fields, words, &server, data.job),
    }
}

/// The `summary` block of a server answer (backups or recoveries) as the server's summary.
fn summary(fields: &FieldParser, server: &str, summary: Option<Summary>) -> Vec<ServerSummary> {
    summary
        .map(|s| {
            vec![ServerSummary {
                server: server.to_string(),
                completed: fields.count("summary.completed", s.completed.as_ref()),
                running: fields.count("summary.inProgress", s.in_progress.as_ref()),
                failed: fields.count("summary.failed", s.failed.as_ref()),
                pending: fields.count("summary.pending", s.pending.as_ref()),
                total: fields.count("summary.total", s.total.as_ref()),
                progress: fields.percent("summary.overallProgress", s.overall_progress.as_ref()),
            }]
        })
        .unwrap_or_default()
}

pub(super) fn map_backup_job(
    fields: &FieldParser,
    words: Words,
    data: JobData,
    fallback: &str,
) -> PollOutput {
    let server = name_of(fields, "system.name", data.system.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    PollOutput {
        jobs: backup_jobs(fields, words, &server, data.job),
        summaries: Vec::new(),
    }
}

pub(super) fn map_recovery_job(
    fields: &FieldParser,
    words: Words,
    data: RecoveryData,
    fallback: &str,
) -> PollOutput {
    let (_, jobs) = recoveries(fields, words, &data, fallback);
    PollOutput {
        jobs,
        summaries: Vec::new(),
    }
}

/// A recovery server answer (`/recoveries/monitoring/system/:identifier`): its recoveries
/// like a recovery job's, and its `summary` as the summary of the target server (the
/// configured id when the answer names none).
pub(super) fn map_recovery_server(
    fields: &FieldParser,
    words: Words,
    data: RecoveryData,
    fallback: &str,
) -> PollOutput {
    let (target, jobs) = recoveries(fields, words, &data, fallback);
    PollOutput {
        summaries: summary(fields, &target, data.summary),
        jobs,
    }
}

/// A replication job answer (1.1.0 on): one series per job, `operation="replication"`,
/// `server` the center the answer names (`system.name`, the configured id without one);
/// the status, percent and message from `job.progress`, the times from `job.time`.
pub(super) fn map_replication_job(
    fields: &FieldParser,
    words: Words,
    data: ReplicationData,
    fallback: &str,
) -> PollOutput {
    let server = name_of(fields, "system.name", data.system.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    let mut jobs = Vec::new();
    for job in data.job.map(Jobs::into_vec).unwrap_or_default() {
        let info = job.info.unwrap_or_default();
        let job_name = fields
            .text("info.name", info.name.as_ref())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                fields.missing("info.name");
                fallback.to_string()
            });
        let key = JobKey {
            system: SYSTEM,
            upstream: fields.upstream().clone(),
            operation: "replication".to_string(),
            job_name,
            server: server.clone(),
            volume: String::new(),
        };
        let progress = job.progress.unwrap_or_default();
        let time = job.time.unwrap_or_default();
        let as_progress = ProgressInfo {
            status: progress.status,
            percent: progress.percent,
            message: progress.message,
            start: time.start,
            elapsed: time.elapsed,
            end: time.end,
        };
        jobs.push(job_record(
            fields,
            words,
            key,
            Some(&as_progress),
            job.log.as_ref(),
            Vec::new(),
        ));
    }
    PollOutput {
        jobs,
        summaries: Vec::new(),
    }
}

/// The target server's name and the recovery records of a recovery answer.
fn recoveries(
    fields: &FieldParser,
    words: Words,
    data: &RecoveryData,
    fallback: &str,
) -> (String, Vec<JobRecord>) {
    let system = data.system.as_ref();
    let source = name_of(
        fields,
        "system.source.name",
        system.and_then(|s| s.source.as_ref()),
    )
    .unwrap_or_default();
    // Without a target name the configured job id stands in, as backup endpoints do for
    // a missing system name (interface 5.1).
    let target = name_of(
        fields,
        "system.target.name",
        system.and_then(|s| s.target.as_ref()),
    )
    .unwrap_or_else(|| fallback.to_string());
    let mut jobs = Vec::new();
    for job in data.job.iter().flat_map(Jobs::as_slice) {
        let info = job.info.as_ref();
        let job_name = fields
            .text("info.name", info.and_then(|i| i.name.as_ref()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                fields.missing("info.name");
                fallback.to_string()
            });
        let labels = vec![
            ("source_server", source.clone()),
            ("target_server", target.clone()),
        ];
        for detail in job.details.iter().flatten() {
            let key = JobKey {
                system: SYSTEM,
                upstream: fields.upstream().clone(),
                operation: "restore".to_string(),
                job_name: job_name.clone(),
                server: target.clone(),
                volume: volume(fields, detail.partition.as_ref(), detail.drive.as_ref()),
            };
            jobs.push(job_record(
                fields,
                words,
                key,
                detail.progress_info.as_ref(),
                job.log.as_ref(),
                labels.clone(),
            ));
        }
    }
    (target, jobs)
}

#[cfg(test)]
mod tests {
    use super::super::wire::decode_envelope;
    use super::*;
    use crate::status::StatusMap;
    use crate::telemetry::Telemetry;

    fn fields(telemetry: &Telemetry) -> FieldParser {
        let mut map = StatusMap::new();
        map.insert("verifying", Status::Running);
        FieldParser::new(
            SYSTEM,
            std::sync::Arc::from("u"),
            chrono_tz::Asia::Seoul,
            map,
            telemetry.clone(),
        )
        .with_labels(label)
    }

    /// Each field name ZDM's mapping uses is counted under the shared label it names.
    #[test]
    fn field_names_count_under_the_shared_labels() {
        for (field, shared) in [
            ("status", "status"),
            ("percent", "percent"),
            ("summary.overallProgress", "percent"),
            ("elapsed", "elapsed"),
            ("start", "start_time"),
            ("end", "end_time"),
            ("info.name", "job_name"),
            ("system.name", "server"),
            ("system.source.name", "server"),
            ("system.target.name", "server"),
            ("summary.total", "summary"),
            ("summary.inProgress", "summary"),
            ("message", "other"),
            ("partition", "other"),
            ("drive", "other"),
        ] {
            assert_eq!(label(field).as_str(), shared, "{field}");
        }
    }

    fn system(body: &str) -> PollOutput {
        let telemetry = Telemetry::new();
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        map_system(&fields(&telemetry), Words::Current, data, "configured-id")
    }

    #[test]
    fn job_may_be_an_object_or_an_array() {
        let one = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"a","drive":"D:"},"progressInfo":{"status":"run"}}}}"#,
        );
        let many = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":[{"info":{"name":"a","drive":"D:"},"progressInfo":{"status":"run"}}]}}"#,
        );
        assert_eq!(one, many);
        assert_eq!(one.jobs.len(), 1);
        assert_eq!(one.jobs[0].key.volume, "D:");
        assert_eq!(one.jobs[0].status, Status::Running);
        assert!(one.summaries.is_empty());
    }

    #[test]
    fn dashes_nulls_and_missing_fields_are_absent_not_zero() {
        let out = system(
            r#"{"success":true,"data":{"system":{},"job":[{"info":{"name":"a"},"progressInfo":{"status":"pending","percent":"-","start":null,"elapsed":"","end":"-","message":"-"}}]}}"#,
        );
        let job = &out.jobs[0];
        assert_eq!(
            job.key.server, "configured-id",
            "the configured id stands in for a missing system.name"
        );
        assert_eq!(job.key.volume, "");
        assert_eq!(
            (
                job.progress,
                job.elapsed_seconds,
                job.start_time,
                job.end_time
            ),
            (None, None, None, None)
        );
        assert_eq!(job.message, None);
    }

    /// A failed run says why: the progress message, else the job's last log line; a
    /// recovery without `system.target.name` uses the configured job id as `server`.
    #[test]
    fn failures_carry_their_reason_and_recoveries_fall_back_to_the_configured_id() {
        let out = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":[
                {"info":{"name":"a"},"progressInfo":{"status":"fail","message":"  disk\n full "},"log":["x"]},
                {"info":{"name":"b"},"progressInfo":{"status":"error","message":"-"},"log":["Starting","Volume  shadow copy failed",""]},
                {"info":{"name":"c"},"progressInfo":{"status":"done"}}]}}"#,
        );
        let reason = |i: usize| out.jobs[i].failure.as_ref().map(|f| f.reason.clone());
        assert_eq!(reason(0).as_deref(), Some("disk full"));
        assert_eq!(reason(1).as_deref(), Some("Volume shadow copy failed"));
        assert_eq!(reason(2), None, "no failure, no reason");

        let telemetry = Telemetry::new();
        let data: RecoveryData = decode_envelope(
            br#"{"success":true,"data":{"system":{"source":{"name":"src"}},"job":{"info":{"name":"r"},"details":[{"partition":"/","progressInfo":{"status":"run"}}]}}}"#,
        )
        .unwrap();
        let out = map_recovery_job(&fields(&telemetry), Words::Current, data, "daily-recovery");
        assert_eq!(out.jobs[0].key.server, "daily-recovery");
    }

    /// The vendor's `job-status` words of 1.0.3 .. 2.0.1, in any case, and the 0.2.0 and
    /// seed words; `Scheduled` by its end time; a `status_map` entry still wins.
    #[test]
    fn vendor_status_words_map_as_6_1_says() {
        let job = |status: &str, end: &str, map: StatusMap| {
            let telemetry = Telemetry::new();
            let fields = FieldParser::new(
                SYSTEM,
                std::sync::Arc::from("u"),
                chrono_tz::UTC,
                map,
                telemetry.clone(),
            )
            .with_labels(label);
            let body = serde_json::json!({"success": true, "data": {"system": {"name": "s"},
                "job": {"info": {"name": "a"}, "progressInfo": {"status": status, "end": end}}}});
            let data: SystemData = decode_envelope(body.to_string().as_bytes()).unwrap();
            let out = map_system(&fields, Words::Current, data, "id");
            assert_eq!(telemetry.parse_error_count("zdm", "u", "status"), 0, "{status}");
            (out.jobs[0].status, out.jobs[0].raw_status.clone())
        };
        let end = "2025-01-15 02:30:00";
        for (word, end, want) in [
            ("Preparing", "-", Status::Running),
            ("Processing", "-", Status::Running),
            ("Complete", end, Status::Completed),
            ("Registered", "-", Status::Pending),
            ("Canceling", "-", Status::Running),
            ("Canceled", end, Status::Cancelled),
            ("Error", end, Status::Failed),
            ("Scheduled", end, Status::Completed),
            ("Scheduled", "-", Status::Pending),
            ("scheduled", end, Status::Completed),
            ("SCHEDULED", "", Status::Pending),
            ("processing", "-", Status::Running),
            ("REGISTERED", "-", Status::Pending),
            // 0.2.0 and the seeds.
            ("run", "-", Status::Running),
            ("complete", end, Status::Completed),
            ("start", "-", Status::Running),
            ("waiting", "-", Status::Pending),
            ("cancel", end, Status::Cancelled),
            ("schedule", "-", Status::Pending),
            ("pending", "-", Status::Pending),
            ("fail", end, Status::Failed),
        ] {
            assert_eq!(job(word, end, StatusMap::new()), (want, word.to_string()), "{word} end {end}");
        }
        let mut map = StatusMap::new();
        map.insert("Scheduled", Status::Pending);
        assert_eq!(job("Scheduled", end, map).0, Status::Pending, "status_map wins");
    }

    /// Regression: `"percent": 1e400` (no f64 holds it) failed the whole poll.
    #[test]
    fn a_number_out_of_range_is_a_parse_error_of_its_field() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"a"},"progressInfo":{"status":"run","percent":1e400,"elapsed":-1e999}}}}"#;
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_system(&fields(&telemetry), Words::Current, data, "id");
        assert_eq!(out.jobs.len(), 1);
        assert_eq!(out.jobs[0].status, Status::Running);
        assert_eq!(out.jobs[0].progress, None);
        assert_eq!(telemetry.parse_error_count("zdm", "u", "percent"), 1);
        assert_eq!(telemetry.parse_error_count("zdm", "u", "elapsed"), 1);
    }

    #[test]
    fn bad_fields_are_counted_and_the_rest_of_the_job_is_kept() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"name":"s"},"summary":{"total":"x","completed":2,"inProgress":"1","failed":0,"pending":0,"overallProgress":"150%"},"job":[
            {"info":{"name":"a","partition":"/"},"progressInfo":{"status":"Verifying","percent":"abc","elapsed":{"h":1},"start":"yesterday","end":"2025-01-15 02:30:00"}},
            {"info":{"partition":"/x"},"progressInfo":{"status":"run"}},
            {"info":{"name":"c"},"progressInfo":{"status":"exploded","percent":45}}
        ]}}"#;
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_system(&fields(&telemetry), Words::Current, data, "id");
        assert_eq!(out.jobs.len(), 2, "the job without a name is skipped");
        let a = &out.jobs[0];
        assert_eq!(a.status, Status::Running, "status_map wins");
        assert_eq!(
            (a.progress, a.elapsed_seconds, a.start_time),
            (None, None, None)
        );
        assert_eq!(
            a.end_time,
            Some(1736875800.0),
            "naive time read in Asia/Seoul"
        );
        let c = &out.jobs[1];
        assert_eq!(c.status, Status::Unknown);
        assert_eq!(c.raw_status, "exploded");
        assert_eq!(
            c.progress,
            Some(0.45),
            "a number where a string was expected still parses"
        );
        // Counted under the field names every system shares (interface 5.1).
        for (field, count) in [
            ("percent", 2), // the job's "abc" and the summary's "150%"
            ("elapsed", 1),
            ("start_time", 1),
            ("job_name", 1),
            ("status", 1),
            ("summary", 1),
        ] {
            assert_eq!(
                telemetry.parse_error_count("zdm", "u", field),
                count,
                "{field}"
            );
        }
        let summary = &out.summaries[0];
        assert_eq!(
            (
                summary.total,
                summary.completed,
                summary.running,
                summary.progress
            ),
            (None, Some(2), Some(1), None),
            "an unparsable total is absent, not 0"
        );
    }

    #[test]
    fn recovery_details_become_one_series_per_volume_with_source_and_target() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"source":{"name":"src"},"target":{"name":"dst"}},"job":{"info":{"name":"r"},"details":[
            {"drive":"C:","progressInfo":{"status":"complete","percent":"100%","end":"2025-01-15T02:30:00Z"}},
            {"partition":"/home","progressInfo":{"status":"fail"}}]}}}"#;
        let data: RecoveryData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_recovery_job(&fields(&telemetry), Words::Current, data, "id");
        assert_eq!(out.jobs.len(), 2);
        assert!(out
            .jobs
            .iter()
            .all(|j| j.key.operation == "restore" && j.key.server == "dst"));
        assert_eq!(out.jobs[0].key.volume, "C:");
        assert_eq!(out.jobs[1].status, Status::Failed);
        assert_eq!(
            out.jobs[0].info,
            vec![
                ("source_server", "src".to_string()),
                ("target_server", "dst".to_string())
            ]
        );
    }
}
