//! The ZDM wire format as the seed documents show it, with the simulator's own types:
//! the endpoints and API versions, the success and error envelopes, the `data` of each
//! endpoint, and the ZDM-shaped error and fault answers.
//!
//! Deliberately independent of the exporter's client structs: a typo shared by both sides
//! would otherwise pass every test.

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::faults::{padded_parts, Target};
use crate::http::{full, with_allow, Body};

/// The ZDM monitoring endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    /// `GET {prefix}/backups/monitoring/system/{id}`
    System,
    /// `GET {prefix}/backups/monitoring/job/{id}`
    BackupJob,
    /// `GET {prefix}/recoveries/monitoring/job/{id}`
    RecoveryJob,
    /// `GET {prefix}/recoveries/monitoring/system/{id}`: a server's recoveries and summary.
    RecoverySystem,
    /// `GET {prefix}/replications/monitoring/job/{id}` (1.1.0 on).
    ReplicationJob,
}

impl Endpoint {
    pub(crate) const ALL: [Endpoint; 5] = [
        Endpoint::System,
        Endpoint::BackupJob,
        Endpoint::RecoveryJob,
        Endpoint::RecoverySystem,
        Endpoint::ReplicationJob,
    ];

    /// The names of [`ALL`](Endpoint::ALL), for the admin API's fixtures.
    pub(crate) const NAMES: [&'static str; 5] = [
        Endpoint::System.as_str(),
        Endpoint::BackupJob.as_str(),
        Endpoint::RecoveryJob.as_str(),
        Endpoint::RecoverySystem.as_str(),
        Endpoint::ReplicationJob.as_str(),
    ];

    /// What the faults and request counts of [`ALL`](Endpoint::ALL) attach to.
    pub(crate) const TARGETS: [Target; 5] = [
        Target::new(Endpoint::System.as_str()),
        Target::new(Endpoint::BackupJob.as_str()),
        Target::new(Endpoint::RecoveryJob.as_str()),
        Target::new(Endpoint::RecoverySystem.as_str()),
        Target::new(Endpoint::ReplicationJob.as_str()),
    ];

    /// Name used by the admin API and the stats keys.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Endpoint::System => "system",
            Endpoint::BackupJob => "backup_job",
            Endpoint::RecoveryJob => "recovery_job",
            Endpoint::RecoverySystem => "recovery_system",
            Endpoint::ReplicationJob => "replication_job",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// `message` of a successful answer, as in the seeds.
    pub(crate) fn ok_message(self) -> &'static str {
        match self {
            Endpoint::System => "Server backup monitoring info",
            Endpoint::BackupJob => "Backup monitoring info",
            Endpoint::RecoveryJob => "Recovery monitoring info",
            Endpoint::RecoverySystem => "Server recovery monitoring info",
            Endpoint::ReplicationJob => "Replication monitoring info",
        }
    }

    /// The seed's 404 text, with the noun (and its Korean particle) adapted per endpoint.
    pub(crate) fn not_found_error(self, id: &str) -> String {
        let noun = match self {
            Endpoint::System | Endpoint::RecoverySystem => "서버를",
            Endpoint::BackupJob => "Backup 작업을",
            Endpoint::RecoveryJob => "Recovery 작업을",
            Endpoint::ReplicationJob => "Replication 작업을",
        };
        format!("Name이 '{id}'인 조건에 맞는 {noun} 찾을 수 없습니다.")
    }

    /// The seed's 400 "incomplete data" text, adapted per endpoint.
    pub(crate) fn incomplete_error(self) -> &'static str {
        match self {
            Endpoint::System => "작업 데이터가 불완전합니다. system 정보가 누락되었습니다.",
            Endpoint::BackupJob => "작업 데이터가 불완전합니다. backup 정보가 누락되었습니다.",
            Endpoint::RecoveryJob | Endpoint::RecoverySystem => {
                "작업 데이터가 불완전합니다. recovery 정보가 누락되었습니다."
            }
            Endpoint::ReplicationJob => "작업 데이터가 불완전합니다. replication 정보가 누락되었습니다.",
        }
    }
}

impl From<Endpoint> for Target {
    fn from(endpoint: Endpoint) -> Target {
        Target::new(endpoint.as_str())
    }
}

/// Which API prefix a request came in on; decides how times are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    /// `/api/v1`: RFC 3339 in UTC with `Z`, like seeds 000 and 002.
    V1,
    /// `/api` (1.0.x): naive `YYYY-MM-DD HH:MM:SS` in Asia/Seoul, like seed 001.
    Legacy,
    /// `/api` of a released version 1.0.3 .. 2.0.1 (`--zdm-version`): naive Seoul times
    /// like `Legacy`, the vendor's `job-status` words (`Processing`, `Complete`, `Error`,
    /// `Canceled`, `Scheduled`).
    Vendor,
}

impl ApiVersion {
    pub(crate) fn format_time(self, t: DateTime<Utc>) -> String {
        match self {
            ApiVersion::V1 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            ApiVersion::Legacy | ApiVersion::Vendor => t
                .with_timezone(&chrono_tz::Asia::Seoul)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
        }
    }

    pub(crate) fn format_unix(self, secs: i64) -> String {
        match Utc.timestamp_opt(secs, 0).single() {
            Some(t) => self.format_time(t),
            None => "-".to_string(),
        }
    }

    pub(crate) fn now(self) -> String {
        self.format_time(Utc::now())
    }
}

/// A ZDM release the simulator speaks with `--zdm-version` (the vendor's changelogs): its
/// prefix, its login path and the lists it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Release {
    major: u8,
    minor: u8,
    patch: u8,
}

impl Release {
    /// Every release the vendor documents.
    pub(crate) const ALL: [&'static str; 8] = [
        "0.2.0", "1.0.3", "1.1.0", "1.2.0", "1.3.0", "1.3.1", "2.0.0", "2.0.1",
    ];
    /// The newest: what `--demo` speaks.
    pub(crate) const NEWEST: &'static str = "2.0.1";

    pub(crate) fn parse(text: &str) -> Option<Release> {
        if !Release::ALL.contains(&text) {
            return None;
        }
        let mut parts = text.split('.').map(|p| p.parse::<u8>().ok());
        Some(Release {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        })
    }

    pub(crate) fn at_least(self, major: u8, minor: u8) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `api` then `v1` for 0.2, `api` from 1.0.3 on; the routes' version.
    pub(crate) fn route<'p, 'a>(self, path: &'p [&'a str]) -> Option<(ApiVersion, &'p [&'a str])> {
        match (path, self.at_least(1, 0)) {
            (["api", "v1", rest @ ..], false) => Some((ApiVersion::V1, rest)),
            (["api", rest @ ..], true) => Some((ApiVersion::Vendor, rest)),
            _ => None,
        }
    }

    /// Its login path after the prefix: `token/issue` from 2.0, `auth/issue` before.
    pub(crate) fn login(self) -> [&'static str; 2] {
        if self.at_least(2, 0) {
            ["token", "issue"]
        } else {
            ["auth", "issue"]
        }
    }

    /// Whether it has replication monitoring: from 1.1.0, as its changelog says.
    pub(crate) fn has_replication(self) -> bool {
        self.at_least(1, 1)
    }

    /// Whether it has the list at `rest` (after the prefix): `backups` always,
    /// `replications` from 1.1.0, `backups/histories` from 1.2.0, `os-replications` from
    /// 1.3.0 (the changelogs).
    pub(crate) fn has_list(self, rest: &[&str]) -> bool {
        match rest {
            ["backups"] => true,
            ["replications"] => self.at_least(1, 1),
            ["backups", "histories"] | ["recoveries", "histories"] => self.at_least(1, 2),
            ["os-replications"] => self.at_least(1, 3),
            _ => false,
        }
    }
}

/// The lists the simulator answers (empty) so an exporter can tell the versions apart:
/// each is the path a release introduced.
pub(crate) fn is_probe_list(rest: &[&str]) -> bool {
    matches!(
        rest,
        ["backups"]
            | ["replications"]
            | ["backups", "histories"]
            | ["recoveries", "histories"]
            | ["os-replications"]
    )
}

/// A fresh `requestID` in the seeds' style (`req-abc123`).
pub(crate) fn request_id() -> String {
    format!("req-{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

/// Success envelope: field order as in the seeds.
#[derive(Serialize)]
pub(crate) struct Envelope<'a, T: Serialize> {
    pub success: bool,
    #[serde(rename = "requestID")]
    pub request_id: &'a str,
    pub data: T,
    pub message: &'a str,
    pub timestamp: &'a str,
}

/// Error body: field order as in seed 001's 404 and 400 examples.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "requestID")]
    pub request_id: &'a str,
    pub success: bool,
    pub error: &'a str,
    pub timestamp: &'a str,
}

/// An error body with a fresh request id and timestamp.
pub(crate) fn error_body(version: ApiVersion, error: &str) -> Vec<u8> {
    let body = ErrorBody {
        request_id: &request_id(),
        success: false,
        error,
        timestamp: &version.now(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A ZDM-style error answer (`requestID`, `success: false`, `error`, `timestamp`).
pub(crate) fn error(version: ApiVersion, status: StatusCode, message: &str) -> Response<Body> {
    full(status, error_body(version, message))
}

pub(crate) fn unauthorized(version: ApiVersion) -> Response<Body> {
    let mut response = error(version, StatusCode::UNAUTHORIZED, "Unauthorized");
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    response
}

pub(crate) fn method_not_allowed(version: ApiVersion, allow: &'static str) -> Response<Body> {
    with_allow(
        error(
            version,
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
        ),
        allow,
    )
}

#[derive(Serialize)]
pub(crate) struct Name<'a> {
    pub name: &'a str,
}

/// `data` of the system endpoint (seed 000).
#[derive(Serialize)]
pub(crate) struct SystemData<'a> {
    pub system: Name<'a>,
    pub summary: Summary,
    pub job: Vec<JobEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub total: u32,
    pub completed: u32,
    pub in_progress: u32,
    pub failed: u32,
    pub pending: u32,
    pub overall_progress: String,
}

/// `data` of the backup job endpoint (seed 001).
#[derive(Serialize)]
pub(crate) struct BackupJobData<'a> {
    pub system: Name<'a>,
    pub job: JobEntry<'a>,
}

/// One backup job: `info`, `progressInfo`, `log`.
#[derive(Serialize)]
pub(crate) struct JobEntry<'a> {
    pub info: JobInfo<'a>,
    #[serde(rename = "progressInfo")]
    pub progress_info: ProgressInfo,
    pub log: Vec<&'static str>,
}

/// `info`: a Linux job names a partition, a Windows job a drive.
#[derive(Serialize)]
pub(crate) struct JobInfo<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drive: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct ProgressInfo {
    pub status: &'static str,
    pub percent: String,
    pub message: String,
    pub start: String,
    pub elapsed: String,
    pub end: String,
}

/// `data` of the recovery job endpoint (seed 002), and of the recovery server endpoint
/// (with `summary`).
#[derive(Serialize)]
pub(crate) struct RecoveryData<'a> {
    pub system: RecoverySystems<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    pub job: RecoveryJob<'a>,
}

/// `data` of the replication job endpoint (1.2.0 .. 2.0.1 pages): the center, the job's
/// name and id, its log, `progress` and `time`.
#[derive(Serialize)]
pub(crate) struct ReplicationData<'a> {
    pub system: Name<'a>,
    pub job: ReplicationJob<'a>,
}

#[derive(Serialize)]
pub(crate) struct ReplicationJob<'a> {
    pub info: ReplicationInfo<'a>,
    pub log: Vec<&'static str>,
    pub progress: ReplicationProgress,
    pub time: ReplicationTime,
}

#[derive(Serialize)]
pub(crate) struct ReplicationInfo<'a> {
    pub name: &'a str,
    pub id: u32,
}

#[derive(Serialize)]
pub(crate) struct ReplicationProgress {
    pub status: &'static str,
    pub step: &'static str,
    pub percent: String,
    pub message: String,
}

#[derive(Serialize)]
pub(crate) struct ReplicationTime {
    pub start: String,
    pub end: String,
    pub elapsed: String,
}

#[derive(Serialize)]
pub(crate) struct RecoverySystems<'a> {
    pub source: Name<'a>,
    pub target: Name<'a>,
}

#[derive(Serialize)]
pub(crate) struct RecoveryJob<'a> {
    pub info: Name<'a>,
    pub log: Vec<&'static str>,
    pub details: Vec<RecoveryDetail<'a>>,
}

#[derive(Serialize)]
pub(crate) struct RecoveryDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drive: Option<&'a str>,
    #[serde(rename = "progressInfo")]
    pub progress_info: ProgressInfo,
}

/// Serializes a success envelope around `data`.
pub(crate) fn envelope<T: Serialize>(version: ApiVersion, endpoint: Endpoint, data: T) -> Vec<u8> {
    let body = Envelope {
        success: true,
        request_id: &request_id(),
        data,
        message: endpoint.ok_message(),
        timestamp: &version.now(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `HH:MM:SS`, hours past 24 allowed, as the seeds write `elapsed`.
pub(crate) fn hms(secs: i64) -> String {
    let secs = secs.max(0);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The `oversized` fault's ~20 MiB of valid JSON (see [`padded_parts`]): the padding
/// fills the `log` array of a job shaped like the endpoint's normal answer.
pub(crate) fn oversized_parts(
    endpoint: Endpoint,
    id: &str,
    timestamp: &str,
) -> impl Iterator<Item = Bytes> + Send + 'static {
    let name = serde_json::to_string(id).unwrap_or_else(|_| "\"-\"".to_string());
    let progress = r#""progressInfo":{"status":"run","percent":"50%","message":"Processing files...","start":"-","elapsed":"00:00:01","end":"-"}"#;
    let (open, close) = match endpoint {
        Endpoint::System => (
            format!(
                r#""system":{{"name":{name}}},"summary":{{"total":1,"completed":0,"inProgress":1,"failed":0,"pending":0,"overallProgress":"50%"}},"job":[{{"info":{{"name":"oversized","partition":"/"}},{progress},"log":["#
            ),
            "]}]",
        ),
        Endpoint::BackupJob => (
            format!(
                r#""system":{{"name":"oversized"}},"job":{{"info":{{"name":{name},"partition":"/"}},{progress},"log":["#
            ),
            "]}",
        ),
        Endpoint::RecoveryJob | Endpoint::RecoverySystem => (
            format!(
                r#""system":{{"source":{{"name":"oversized"}},"target":{{"name":"oversized"}}}},"job":{{"info":{{"name":{name}}},"details":[{{"partition":"/",{progress}}}],"log":["#
            ),
            "]}",
        ),
        Endpoint::ReplicationJob => (
            format!(
                r#""system":{{"name":"oversized"}},"job":{{"info":{{"name":{name},"id":1}},"progress":{{"status":"running","step":"Transferring","percent":"50%","message":"Transferring files"}},"time":{{"start":"-","end":"-","elapsed":"00:00:01"}},"log":["#
            ),
            "]}",
        ),
    };
    let prefix = format!(
        r#"{{"success":true,"requestID":"{}","data":{{{open}"#,
        request_id()
    );
    let suffix = format!(
        r#""end"{close}}},"message":"{}","timestamp":"{timestamp}"}}"#,
        endpoint.ok_message()
    );
    padded_parts(prefix, suffix)
}
