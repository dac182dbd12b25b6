//! The vendor's documented answers of every released ZDM API version
//! (`tests/data/vendor/zdm/<version>/`, verbatim, provenance in its README), decoded and
//! mapped to the records interface 6.1 implies. Every file of every version is either
//! replayed here or named as belonging to an endpoint this exporter does not poll yet, so a
//! new fixture cannot be skipped silently.

use std::path::PathBuf;

use super::auth::{expires_at, parse_login};
use super::map::{
    self, map_backup_job, map_recovery_job, map_recovery_server, map_replication_job,
    map_system, Words,
};
use super::wire::{decode_envelope, JobData, RecoveryData, ReplicationData, SystemData};
use super::SYSTEM;
use crate::model::{JobRecord, PollOutput, ServerSummary};
use crate::outcome::Outcome;
use crate::sources::source::FieldParser;
use crate::status::{Status, StatusMap};
use crate::telemetry::Telemetry;

/// Every released version the vendor documents (0.2.0 is the pre-rename name of 1.0.3).
pub(super) const VERSIONS: [&str; 8] = [
    "0.2.0", "1.0.3", "1.1.0", "1.2.0", "1.3.0", "1.3.1", "2.0.0", "2.0.1",
];

/// Endpoints of the fixtures replayed elsewhere: the histories (`history.rs`) and the
/// listings discovery reads (`list-*`, `vendor_lists.rs`).
const NOT_POLLED: [&str; 3] = ["backups-histories", "recoveries-histories", "list-"];

/// 2025-01-15 in UTC (the upstream in these tests has no `timezone`, so naive times are UTC).
const T0200: f64 = 1_736_906_400.0;
const T0230: f64 = 1_736_908_200.0;
const T0300: f64 = 1_736_910_000.0;
const T1000: f64 = 1_736_935_200.0;
const T1030: f64 = 1_736_937_000.0;
/// 2026-03-20 02:00 and 02:30 UTC: the replication examples (1.2.0 .. 2.0.1).
const R0200: f64 = 1_773_972_000.0;
const R0230: f64 = 1_773_973_800.0;

pub(super) fn dir(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vendor/zdm")
        .join(version)
}

pub(super) fn read(version: &str, file: &str) -> Vec<u8> {
    std::fs::read(dir(version).join(file)).unwrap_or_else(|e| panic!("{version}/{file}: {e}"))
}

fn fields(telemetry: &Telemetry) -> FieldParser {
    FieldParser::new(
        SYSTEM,
        std::sync::Arc::from("vendor"),
        chrono_tz::UTC,
        StatusMap::new(),
        telemetry.clone(),
    )
    .with_labels(map::label)
}

/// One job record as the exposition sees it: operation, job_name, server, volume, status,
/// progress, elapsed, start, end.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Status,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// A [`Row`] as mapped.
type Got = (String, String, String, String, Status, [Option<f64>; 4]);

/// A documented summary: completed, running, failed, pending, total, progress.
type Sum = (u64, u64, u64, u64, u64, f64);

fn row(job: &JobRecord) -> Got {
    (
        job.key.operation.clone(),
        job.key.job_name.clone(),
        job.key.server.clone(),
        job.key.volume.clone(),
        job.status,
        [
            job.progress,
            job.elapsed_seconds,
            job.start_time,
            job.end_time,
        ],
    )
}

fn want(rows: &[Row]) -> Vec<Got> {
    rows.iter()
        .map(|r| {
            (
                r.0.to_string(),
                r.1.to_string(),
                r.2.to_string(),
                r.3.to_string(),
                r.4,
                [r.5, r.6, r.7, r.8],
            )
        })
        .collect()
}

/// The summary as `(completed, running, failed, pending, total, progress)`.
fn summary(s: &ServerSummary) -> ([Option<u64>; 5], Option<f64>) {
    (
        [s.completed, s.running, s.failed, s.pending, s.total],
        s.progress,
    )
}

/// Decodes and maps one 200 answer of a monitoring endpoint the way its target kind does.
pub(super) fn replay(file: &str, body: &[u8], fields: &FieldParser, words: Words) -> PollOutput {
    fn what<T>(file: &str) -> impl FnOnce(crate::outcome::Fault) -> T + '_ {
        move |e| panic!("{file}: {}", e.reason)
    }
    if file.starts_with("backups-monitoring-system") {
        let data: SystemData = decode_envelope(body).unwrap_or_else(what(file));
        map_system(fields, words, data, "configured-id")
    } else if file.starts_with("backups-monitoring-job") {
        let data: JobData = decode_envelope(body).unwrap_or_else(what(file));
        map_backup_job(fields, words, data, "configured-id")
    } else if file.starts_with("recoveries-monitoring-system") {
        let data: RecoveryData = decode_envelope(body).unwrap_or_else(what(file));
        map_recovery_server(fields, words, data, "configured-id")
    } else if file.starts_with("replications-monitoring-job") {
        let data: ReplicationData = decode_envelope(body).unwrap_or_else(what(file));
        map_replication_job(fields, words, data, "configured-id")
    } else {
        let data: RecoveryData = decode_envelope(body).unwrap_or_else(what(file));
        map_recovery_job(fields, words, data, "configured-id")
    }
}

/// The records of each documented 200 answer of the monitoring endpoints. 1.0.3 .. 2.0.1
/// serve these files byte for byte (one shared include), 0.2.0 its own.
fn expected(version: &str, file: &str) -> Option<(Vec<Row>, Option<Sum>)> {
    use Status::{Completed, Pending, Running};
    const B: &str = "backup";
    const R: &str = "restore";
    const P: &str = "replication";
    // `Scheduled` with an end time: its finished run (interface 6.1).
    let scheduled = Completed;
    let legacy = version == "0.2.0";
    let linux_summary = Some((1, 1, 0, 1, 3, 0.45));
    let out: (Vec<Row>, _) = match (legacy, file) {
        (true, "backups-monitoring-system.json") => (
            vec![
                (B, "daily-backup-root", "server-01", "/", Completed, Some(1.0), Some(1800.0), Some(T0200), Some(T0230)),
                (B, "daily-backup-home", "server-01", "/home", Running, Some(0.45), Some(900.0), Some(T0300), None),
            ],
            linux_summary,
        ),
        (true, "backups-monitoring-job.json") => (
            vec![(B, "daily-backup", "server-01", "/", Completed, Some(1.0), Some(1800.0), Some(T0200), Some(T0230))],
            None,
        ),
        (true, "recoveries-monitoring-job.json") => (
            vec![
                (R, "daily-recovery", "target-server", "/", Running, Some(0.45), Some(900.0), Some(T1000), None),
                (R, "daily-recovery", "target-server", "/home", Pending, Some(0.0), None, None, None),
            ],
            None,
        ),
        (true, "recoveries-monitoring-system.json") => (
            vec![
                (R, "daily-recovery", "target-server", "/", Completed, Some(1.0), Some(1800.0), Some(T1000), Some(T1030)),
                (R, "daily-recovery", "target-server", "/home", Running, Some(0.45), Some(900.0), Some(T1030), None),
            ],
            linux_summary,
        ),
        (false, "backups-monitoring-system-linux.json") => (
            vec![
                (B, "daily-backup-root", "linux-server-01", "/", scheduled, Some(1.0), Some(1800.0), Some(T0200), Some(T0230)),
                (B, "daily-backup-home", "linux-server-01", "/home", Running, Some(0.45), Some(900.0), Some(T0300), None),
            ],
            linux_summary,
        ),
        (false, "backups-monitoring-system-windows.json") => (
            vec![
                (B, "daily-backup-c", "windows-server-01", "C:", scheduled, Some(1.0), Some(1800.0), Some(T0200), Some(T0230)),
                (B, "daily-backup-d", "windows-server-01", "D:", Running, Some(0.5), Some(900.0), Some(T0300), None),
            ],
            Some((1, 1, 0, 0, 2, 0.75)),
        ),
        (false, "backups-monitoring-system-paged.json") => (
            vec![(B, "daily-backup-root", "linux-server-01", "/", scheduled, Some(1.0), Some(1800.0), Some(T0200), Some(T0230))],
            linux_summary,
        ),
        (false, "backups-monitoring-job-linux.json") => (
            vec![(B, "daily-backup", "linux-server-01", "/", scheduled, Some(1.0), Some(1800.0), Some(T0200), Some(T0230))],
            None,
        ),
        (false, "backups-monitoring-job-windows.json") => (
            vec![(B, "daily-backup-win", "windows-server-01", "C:", Running, Some(0.6), Some(1200.0), Some(T0200), None)],
            None,
        ),
        (false, "recoveries-monitoring-job-linux.json") => (
            vec![
                (R, "daily-recovery", "target-server", "/", Running, Some(0.45), Some(900.0), Some(T1000), None),
                (R, "daily-recovery", "target-server", "/home", Pending, Some(0.0), None, None, None),
            ],
            None,
        ),
        (false, "recoveries-monitoring-job-windows.json") => (
            vec![
                (R, "daily-recovery-win", "target-win-server", "C:", Running, Some(0.6), Some(1200.0), Some(T1000), None),
                (R, "daily-recovery-win", "target-win-server", "D:", Pending, Some(0.0), None, None, None),
            ],
            None,
        ),
        (false, "recoveries-monitoring-system-linux.json") => (
            vec![
                (R, "daily-recovery", "target-server", "/", Completed, Some(1.0), Some(1800.0), Some(T1000), Some(T1030)),
                (R, "daily-recovery", "target-server", "/home", Running, Some(0.45), Some(900.0), Some(T1030), None),
            ],
            linux_summary,
        ),
        (false, "recoveries-monitoring-system-windows.json") => (
            vec![
                (R, "daily-recovery-win", "target-win-server", "C:", Completed, Some(1.0), Some(1800.0), Some(T1000), Some(T1030)),
                (R, "daily-recovery-win", "target-win-server", "D:", Running, Some(0.5), Some(900.0), Some(T1030), None),
            ],
            Some((1, 1, 0, 0, 2, 0.75)),
        ),
        (false, "recoveries-monitoring-system-paged.json") => (
            vec![(R, "daily-recovery", "target-server", "/", Completed, Some(1.0), Some(1800.0), Some(T1000), Some(T1030))],
            linux_summary,
        ),
        // `success` and `running`: the words the examples answer (the replication status
        // list names others; both sets are mapped).
        (false, "replications-monitoring-job-complete.json") => (
            vec![(P, "backup-replication-01", "center-01", "", Completed, Some(1.0), Some(1800.0), Some(R0200), Some(R0230))],
            None,
        ),
        (false, "replications-monitoring-job-running.json") => (
            vec![(P, "backup-replication-01", "center-01", "", Running, Some(0.65), Some(1200.0), Some(R0200), None)],
            None,
        ),
        _ => return None,
    };
    Some(out)
}

fn files(version: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir(version))
        .unwrap_or_else(|e| panic!("{version}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Whether `file` is a documented error answer (`-<HTTP status>` before `.json`, optionally
/// followed by what the example is about).
fn error_status(file: &str) -> Option<u16> {
    file.trim_end_matches(".json")
        .split('-')
        .find_map(|part| part.parse::<u16>().ok().filter(|s| (400..600).contains(s)))
}

#[test]
fn every_documented_answer_of_every_version_maps_to_the_records_6_1_implies() {
    for version in VERSIONS {
        let names = files(version);
        assert!(!names.is_empty(), "{version} has no fixtures");
        for file in names {
            let body = read(version, &file);
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            let at = format!("{version}/{file}");
            if NOT_POLLED.iter().any(|p| file.starts_with(p)) {
                continue;
            }
            if file.starts_with("auth-issue") || file.starts_with("token-issue") {
                let login = parse_login(&body, chrono_tz::UTC);
                match error_status(&file) {
                    None => {
                        let token = login.unwrap_or_else(|e| panic!("{at}: {}", e.reason));
                        assert_eq!(token.token.expose(), "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...", "{at}");
                        // 0.2.0 with `Z`; from 1.0.3 naive, read in the upstream's timezone
                        // (UTC here: none configured).
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let unix = expires_at(&v, chrono_tz::UTC)
                            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
                        let want = if version == "0.2.0" { 1_737_023_400 } else { 1_768_666_449 };
                        assert_eq!(unix, Some(want), "{at}");
                    }
                    Some(_) => {
                        let fault = login.err().unwrap_or_else(|| panic!("{at} issued a token"));
                        assert_eq!(fault.outcome, Outcome::AuthError, "{at}");
                    }
                }
                continue;
            }
            if let Some(status) = error_status(&file) {
                // The HTTP status decides these answers before any body is read; their body
                // alone (`success: false`) is never "up, no jobs" either.
                let data = decode_envelope::<SystemData>(&body);
                let fault = data.err().unwrap_or_else(|| panic!("{at} ({status}) decoded"));
                assert_eq!(fault.outcome, Outcome::UpstreamError, "{at}");
                continue;
            }
            let (rows, sum) =
                expected(version, &file).unwrap_or_else(|| panic!("{at}: no expectation"));
            // Each version's own words: 0.2.0 has no `Scheduled`.
            let words = match version {
                "0.2.0" => Words::V0_2,
                _ => Words::Current,
            };
            let out = replay(&file, &body, &fields, words);
            let got: Vec<_> = out.jobs.iter().map(row).collect();
            assert_eq!(got, want(&rows), "{at}");
            if file.contains("-monitoring-system") {
                let got: Vec<_> = out.summaries.iter().map(summary).collect();
                let want = sum.map(|(c, r, f, p, t, pr)| {
                    ([Some(c), Some(r), Some(f), Some(p), Some(t)], Some(pr))
                });
                assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{at}");
            }
            for field in ["status", "percent", "elapsed", "start_time", "end_time", "job_name", "server", "summary", "other"] {
                assert_eq!(telemetry.parse_error_count("zdm", "vendor", field), 0, "{at}: {field}");
            }
        }
    }
}

#[test]
fn the_fixture_set_covers_every_version_and_endpoint() {
    for version in VERSIONS {
        let names = files(version);
        let has = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
        for endpoint in [
            "backups-monitoring-system",
            "backups-monitoring-job",
            "recoveries-monitoring-job",
            "recoveries-monitoring-system",
        ] {
            assert!(has(endpoint), "{version} lacks {endpoint}");
        }
        let login = if version.starts_with("2.") { "token-issue" } else { "auth-issue" };
        assert!(has(login), "{version} lacks {login}");
        // Replication pages from 1.2.0 (1.1.0's changelog names the endpoint, its pages
        // lack it).
        let replication = !matches!(version, "0.2.0" | "1.0.3" | "1.1.0");
        assert_eq!(has("replications-monitoring-job"), replication, "{version}");
    }
}
