//! The SCP wire format of seed 003 as raw JSON: the restore-histories page, the time
//! formats of its entries, and the error answers (the seed documents 401/403/404 without a
//! schema).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{full, reason, Body};

/// One page of a history: `{"contents": [...], "count": <total matching>}`.
#[derive(Serialize)]
pub(crate) struct Page<'a> {
    pub contents: Vec<&'a Value>,
    pub count: usize,
}

/// `restore_*` and `backup_start_time`: naive, `YYYY-MM-DDTHH:MM:SS` (in UTC here).
pub(crate) fn naive(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// `created_at` and `modified_at`: UTC with `Z`.
pub(crate) fn zulu(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Backup history times, as the SDK's example writes them: `2000-01-23T04:56:07.000+00:00`.
pub(crate) fn offset(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string())
}

/// The SCP error answer.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    full(status, error_body(status, message))
}

pub(crate) fn error_body(status: StatusCode, message: &str) -> Bytes {
    let code = reason(status).to_ascii_uppercase().replace([' ', '-'], "_");
    Bytes::from(
        serde_json::to_vec(&json!({ "code": code, "message": message })).unwrap_or_default(),
    )
}
