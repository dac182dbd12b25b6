//! The Azure wire format with the simulator's own types: the JobResource of seed 004 and
//! its time and duration formats, and the error answers of Azure Resource Manager, Azure AD
//! and IMDS.

use std::fmt::Write as _;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde::ser::SerializeMap as _;
use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::mix;
use crate::http::{full, json_response, Body};

/// One job as the vault serves it: its list item and details answer, ready-made, and the
/// fields the list filters and sorts on.
#[derive(Clone, Debug)]
pub(crate) struct JobRecord {
    pub name: String,
    pub start: Option<DateTime<Utc>>,
    pub operation: String,
    pub status: String,
    pub management: String,
    /// `entityFriendlyName`: the VM, database or share it ran for.
    pub entity: String,
    /// The list item: the JobResource without `extendedInfo`.
    pub list: String,
    /// The details answer: the whole JobResource.
    pub details: String,
}

impl JobRecord {
    /// A JobResource object; `properties.extendedInfo` only goes into the details answer.
    pub(crate) fn from_value(mut value: Value) -> Result<JobRecord, String> {
        let name = value["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or("every job needs a non-empty string \"name\"")?
            .to_string();
        let details = value.to_string();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let properties = &value["properties"];
        let start = properties["startTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let operation = text(&properties["operation"]);
        let status = text(&properties["status"]);
        let management = text(&properties["backupManagementType"]);
        let entity = text(&properties["entityFriendlyName"]);
        if let Some(properties) = value.get_mut("properties").and_then(Value::as_object_mut) {
            properties.remove("extendedInfo");
        }
        Ok(JobRecord {
            name,
            start,
            operation,
            status,
            management,
            entity,
            list: value.to_string(),
            details,
        })
    }

    /// The details answer, parsed.
    #[cfg(test)]
    pub(crate) fn details_json(&self) -> Value {
        serde_json::from_str(&self.details).unwrap_or_default()
    }
}

/// Newest `startTime` first, jobs without one last; ties by name.
pub(crate) fn sort_newest_first(jobs: &mut [JobRecord]) {
    jobs.sort_by(|a, b| {
        b.start
            .is_some()
            .cmp(&a.start.is_some())
            .then(b.start.cmp(&a.start))
            .then(a.name.cmp(&b.name))
    });
}

/// A JobResource in the field order of seed 004.
#[derive(Serialize)]
pub(crate) struct JobResource<'a> {
    pub id: String,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub properties: JobProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobProperties<'a> {
    pub job_type: &'static str,
    /// Workload jobs only (`SQLDataBase`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_type: Option<&'static str>,
    pub duration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions_info: Option<[u8; 1]>,
    /// VM jobs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_machine_version: Option<&'static str>,
    /// Azure Files jobs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_account_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_info: Option<ExtendedInfo>,
    pub entity_friendly_name: &'a str,
    pub backup_management_type: &'static str,
    pub operation: &'static str,
    pub status: &'static str,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub activity_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_details: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExtendedInfo {
    pub tasks_list: Vec<Task>,
    pub property_bag: Bag,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_remaining_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dynamic_error_message: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Task {
    pub task_id: &'static str,
    pub duration: String,
    pub status: &'static str,
}

/// A JSON object keeping its insertion order.
pub(crate) struct Bag(pub Vec<(&'static str, String)>);

impl Serialize for Bag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A UUID-shaped string from a hash.
pub(crate) fn uuid(h: u64) -> String {
    let (a, b) = (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `2018-05-21T08:35:40.9488967Z`: seven fraction digits, the last four from `jitter`.
pub(crate) fn time7(ms: i64, jitter: u64) -> Option<String> {
    let t = DateTime::<Utc>::from_timestamp_millis(ms)?;
    let ticks = u64::from(t.timestamp_subsec_millis()) * 10_000 + jitter % 10_000;
    Some(format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S")))
}

/// A .NET TimeSpan: `00:20:23.0896697`, `1.02:03:04.0000000` past a day.
pub(crate) fn timespan(ticks: u64) -> String {
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let hms = format!(
        "{:02}:{:02}:{:02}.{frac:07}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    match secs / 86_400 {
        0 => hms,
        days => format!("{days}.{hms}"),
    }
}

/// ISO 8601: `PT12.4272909S`, `PT1H2M3.0000000S`.
pub(crate) fn iso_duration(ticks: u64) -> String {
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let mut out = "PT".to_string();
    if secs >= 3600 {
        let _ = write!(out, "{}H", secs / 3600);
    }
    if secs >= 60 {
        let _ = write!(out, "{}M", secs / 60 % 60);
    }
    let _ = write!(out, "{}.{frac:07}S", secs % 60);
    out
}

/// `HH:MM:SS`, as the seed writes task durations.
pub(crate) fn hms(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// An Azure Resource Manager error answer.
pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    full(status, arm_error_body(code, message))
}

pub(crate) fn arm_error_body(code: &str, message: &str) -> Bytes {
    let body = json!({ "error": { "code": code, "message": message } });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

pub(crate) fn arm_unauthorized(code: &str, message: &str) -> Response<Body> {
    let mut response = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{message}\""
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

/// An Azure AD (and IMDS) error answer: `error`, `error_description` and the usual extras.
pub(crate) fn aad_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let trace = uuid(rand::random());
    let correlation = uuid(rand::random());
    let now = Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let code: u64 = description
        .strip_prefix("AADSTS")
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = json!({
        "error": error,
        "error_description": format!(
            "{description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now.to_string(),
        "trace_id": trace,
        "correlation_id": correlation,
    });
    json_response(status, &body)
}

pub(crate) fn imds_error(status: StatusCode, description: &str) -> Response<Body> {
    let body = json!({ "error": "invalid_request", "error_description": description });
    json_response(status, &body)
}
