//! Samsung Cloud Platform backup restore histories (seed 003), written as raw JSON.
//!
//! `GET /v1/backups/{backup_id}/restore-histories?page=&size=&sort=&restore_state=&start_time=&end_time=`
//! answers `{"contents": [...], "count": <total matching>}`. The simulator sorts, filters and
//! pages every history itself: the seed's one entry, a history replaced by the admin API,
//! or a live history in which each cycle adds one restore (`INPROGRESS`, then `COMPLETED`
//! or, for some cycles, `FAILED`).
//!
//! Times are written as the seed does: `restore_*` and `backup_start_time` naive
//! (`YYYY-MM-DDTHH:MM:SS`, in UTC here), `created_at`/`modified_at` in UTC with `Z`. The
//! `start_time`/`end_time` filters apply to `restore_start_time`.
//!
//! With [`SimOptions::scp`](super::SimOptions::scp) set, every request must carry a valid
//! signature v2 (see [`Simulator::check_signature`]).

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, HOST};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::faults::{self, Action, Target};
use super::fixtures::{SCP_BACKUP_ID, SCP_RESTORE_HISTORIES};
use super::router::{
    form_pairs, full, percent_decode, reason, streamed, truncated, with_retry_after, Body,
    DropConnection,
};
use super::scenario::{fnv, mix, unit};
use super::Simulator;

/// A live backup whose restore history grows by one entry per cycle.
pub(crate) struct BackupDef {
    pub id: &'static str,
    /// Display name, for `--demo`'s config.
    pub name: &'static str,
    server_name: &'static str,
    server_id: &'static str,
    schedule: &'static str,
    /// The restore of cycle `n` fails when `n % fail_every == 0` (0 = never).
    fail_every: i64,
    /// Share of the cycle a restore takes (before a per-cycle jitter of up to -30%).
    run: f64,
}

pub(crate) static BACKUPS: &[BackupDef] = &[
    BackupDef {
        id: "5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c",
        name: "erp-db",
        server_name: "erp-db-restore",
        server_id: "7c2d9a41-5e3b-4f6a-9d8c-1b2e3f4a5b6c",
        schedule: "FULL_DAILY_02:00:00-erp7Qz",
        fail_every: 4,
        run: 0.5,
    },
    BackupDef {
        id: "a3c9e1f27b4d4c8e9f0a1b2c3d4e5f60",
        name: "파일서버-복구",
        server_name: "파일서버-복구-01",
        server_id: "0e8f6a2b-3c4d-4e5f-8a9b-7c6d5e4f3a2b",
        schedule: "INCREMENTAL_DAILY_15:00:00-fs3Kp2",
        fail_every: 5,
        run: 0.6,
    },
    BackupDef {
        id: "0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b",
        name: "web-static",
        server_name: "restoretest2",
        server_id: "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
        schedule: "INCREMENTAL_WEEKLY_SUN_03:00:00-web9Xa",
        fail_every: 0,
        run: 0.35,
    },
];

/// Entries a live history already has when the simulator starts.
const PRELOADED: i64 = 32;
/// A live history keeps its newest entries only.
const MAX_ENTRIES: i64 = 200;
/// Longer cycles are treated as this long, which keeps every time computable.
const MAX_CYCLE_MS: i64 = 30 * 86_400_000;
/// `created_by` / `modified_by` of live entries.
const USER_ID: &str = "3f9a1c7e5b2d4e6f8a0b1c2d3e4f5a6b";
/// Largest `size` accepted.
const MAX_SIZE: usize = 10_000;
/// Largest allowed distance between `Scp-Timestamp` and the clock.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

fn naive(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn zulu(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// The live history of `def` at `now_ms`, oldest first: one entry per cycle since
/// [`PRELOADED`] cycles before `started_ms`, the newest [`MAX_ENTRIES`] of them.
pub(crate) fn entries(def: &BackupDef, now_ms: i64, started_ms: i64, cycle_ms: i64) -> Vec<Value> {
    let cycle = cycle_ms.clamp(1, MAX_CYCLE_MS);
    let seed = fnv(def.id);
    let offset = (unit(mix(seed)) * cycle as f64) as i64;
    let n = now_ms.saturating_add(offset).div_euclid(cycle);
    let first =
        (started_ms.saturating_add(offset).div_euclid(cycle) - PRELOADED).max(n - MAX_ENTRIES + 1);
    let mut out = Vec::new();
    for k in first..=n {
        let roll = mix(seed ^ mix(k as u64));
        let base = k.saturating_mul(cycle).saturating_sub(offset);
        let start = base + cycle / 10;
        if now_ms < start {
            continue;
        }
        let run = ((def.run.clamp(0.01, 0.85) * (0.7 + 0.3 * unit(roll))) * cycle as f64) as i64;
        let end = start + run.max(1);
        let ended = now_ms >= end;
        let state = match (
            ended,
            def.fail_every > 0 && k.rem_euclid(def.fail_every) == 0,
        ) {
            (false, _) => "INPROGRESS",
            (true, true) => "FAILED",
            (true, false) => "COMPLETED",
        };
        // The restored backup was taken 1 to 21 hours before the restore started.
        let backup_start = start - 3_600_000 - (unit(mix(roll)) * 72_000_000.0) as i64;
        let entry = json!({
            "backup_id": def.id,
            "backup_start_time": naive(backup_start),
            "created_at": zulu(start),
            "created_by": USER_ID,
            "modified_at": zulu(if ended { end } else { start }),
            "modified_by": USER_ID,
            "restore_end_time": if ended { naive(end) } else { None },
            "restore_server_id": def.server_id,
            "restore_server_name": def.server_name,
            "restore_start_time": naive(start),
            "restore_state": state,
            "schedule_name": def.schedule,
        });
        out.push(entry);
    }
    out
}

/// The SCP error body: the seed documents 401/403/404 without a schema.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    full(status, error_body(status, message))
}

pub(crate) async fn restore_histories(
    sim: &Simulator,
    req: Request<Incoming>,
    raw_id: &str,
) -> Result<Response<Body>, DropConnection> {
    let Some(id) = percent_decode(raw_id).filter(|id| !id.is_empty()) else {
        return Ok(error(StatusCode::BAD_REQUEST, "invalid backup id in path"));
    };
    if req.method() != Method::GET {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET"));
        return Ok(response);
    }
    sim.count(Target::Backup, &id);
    if let Err((status, message)) = sim.check_signature(&req) {
        return Ok(error(status, message));
    }
    let query = req.uri().query();
    let response = match faults::action(sim.take_fault(Target::Backup, &id)).await? {
        Action::Answer => {
            let (status, body) = sim.histories(&id, query);
            full(status, body)
        }
        Action::Error(StatusCode::NOT_FOUND) => {
            error(StatusCode::NOT_FOUND, &format!("Backup '{id}' not found"))
        }
        Action::Error(status) => error(status, reason(status)),
        Action::RateLimited(secs) => with_retry_after(
            error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
            secs,
        ),
        Action::Truncate => truncated(sim.histories(&id, query).1),
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"contents":[],"count":0,"padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
    Ok(response)
}

/// `http://{Host}{request-target}`: the URL the client requested, which it signed.
fn request_url(req: &Request<Incoming>) -> String {
    let uri = req.uri();
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("http://{host}{target}")
}

/// The fields a history can be sorted by.
const SORT_FIELDS: [&str; 5] = [
    "created_at",
    "modified_at",
    "restore_start_time",
    "restore_end_time",
    "backup_start_time",
];

const STATES: [&str; 3] = ["COMPLETED", "FAILED", "INPROGRESS"];

/// The query of a restore-histories request.
#[derive(Debug)]
struct Query {
    page: usize,
    size: usize,
    sort_field: &'static str,
    descending: bool,
    state: Option<&'static str>,
    start: Option<NaiveDateTime>,
    end: Option<NaiveDateTime>,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query {
            page: 0,
            size: 20,
            sort_field: "created_at",
            descending: true,
            state: None,
            start: None,
            end: None,
        };
        let pairs = form_pairs(query.unwrap_or("")).ok_or("malformed query string")?;
        for (key, value) in &pairs {
            // The parameters are nullable: empty or `null` means the default.
            let value = value.trim();
            if value.is_empty() || value == "null" {
                continue;
            }
            match key.as_str() {
                "page" => {
                    q.page = value.parse().map_err(|_| {
                        format!("page must be a non-negative integer, got {value:?}")
                    })?;
                }
                "size" => {
                    q.size = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_SIZE).contains(s))
                        .ok_or_else(|| format!("size must be 1..={MAX_SIZE}, got {value:?}"))?;
                }
                "sort" => {
                    let (field, direction) = value.split_once(':').unwrap_or((value, "asc"));
                    q.sort_field = SORT_FIELDS
                        .into_iter()
                        .find(|f| *f == field)
                        .ok_or_else(|| format!("cannot sort by {field:?}"))?;
                    q.descending = match direction.to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(format!(
                                "sort direction must be asc or desc, got {direction:?}"
                            ))
                        }
                    };
                }
                "restore_state" => {
                    q.state = Some(
                        STATES
                            .into_iter()
                            .find(|s| s.eq_ignore_ascii_case(value))
                            .ok_or_else(|| {
                                format!("restore_state must be COMPLETED, FAILED or INPROGRESS, got {value:?}")
                            })?,
                    );
                }
                "start_time" | "end_time" => {
                    let time = DateTime::parse_from_rfc3339(value)
                        .map_err(|_| format!("{key} must be a date-time, got {value:?}"))?
                        .naive_utc();
                    if key == "start_time" {
                        q.start = Some(time);
                    } else {
                        q.end = Some(time);
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    fn matches(&self, entry: &Value) -> bool {
        if let Some(state) = self.state {
            let same = entry["restore_state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(state));
            if !same {
                return false;
            }
        }
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        let Some(started) = time_of(&entry["restore_start_time"]) else {
            return false;
        };
        self.start.is_none_or(|s| started >= s) && self.end.is_none_or(|e| started <= e)
    }
}

/// A time field of an entry: naive (read as UTC) or with an offset.
fn time_of(value: &Value) -> Option<NaiveDateTime> {
    let s = value.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
}

#[derive(Serialize)]
struct Page<'a> {
    contents: Vec<&'a Value>,
    count: usize,
}

/// Filters, sorts (stably; among equal keys the later entry counts as newer) and pages.
fn page<'a>(entries: &'a [Value], q: &Query) -> Page<'a> {
    let mut matching: Vec<(usize, &Value)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| q.matches(e))
        .collect();
    let key = |e: &Value| {
        let v = &e[q.sort_field];
        (time_of(v), v.as_str().map(str::to_string))
    };
    matching.sort_by(|(i, a), (j, b)| {
        let order = key(a).cmp(&key(b)).then(i.cmp(j));
        if q.descending {
            order.reverse()
        } else {
            order
        }
    });
    let count = matching.len();
    let contents = matching
        .into_iter()
        .skip(q.page.saturating_mul(q.size))
        .take(q.size)
        .map(|(_, e)| e)
        .collect();
    Page { contents, count }
}

impl Simulator {
    /// Checks SCP signature v2 when keys are configured: `Scp-Signature` must be
    /// `base64(HMAC-SHA256(secret, METHOD + URL + Scp-Timestamp + access key + account id +
    /// "Openapi"))`, the timestamp within five minutes of the clock. The error never
    /// reveals the expected signature.
    pub(crate) fn check_signature(
        &self,
        req: &Request<Incoming>,
    ) -> Result<(), (StatusCode, &'static str)> {
        let Some((access_key, secret_key)) = &self.opts.scp else {
            return Ok(());
        };
        let unauthorized = |message| Err((StatusCode::UNAUTHORIZED, message));
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let (Some(key), Some(signature), Some(timestamp), Some(client_type), Some(version)) = (
            header("scp-accesskey"),
            header("scp-signature"),
            header("scp-timestamp"),
            header("scp-clienttype"),
            header("scp-api-version"),
        ) else {
            return unauthorized(
                "Scp-Accesskey, Scp-Signature, Scp-Timestamp, Scp-ClientType and Scp-Api-Version are required",
            );
        };
        if client_type != "Openapi" {
            return unauthorized("Scp-ClientType must be Openapi");
        }
        if version.trim() != "backup 1.1" {
            return Err((
                StatusCode::BAD_REQUEST,
                "unsupported Scp-Api-Version: expected backup 1.1",
            ));
        }
        if key != access_key {
            return unauthorized("unknown access key");
        }
        let Ok(sent_ms) = timestamp.parse::<i64>() else {
            return unauthorized("Scp-Timestamp must be Unix milliseconds");
        };
        if Utc::now().timestamp_millis().abs_diff(sent_ms) > MAX_SKEW_MS.unsigned_abs() {
            return unauthorized("Scp-Timestamp is more than 5 minutes from the server clock");
        }
        let account = header("scp-accountid").unwrap_or("");
        let message = format!(
            "{}{}{timestamp}{key}{account}Openapi",
            req.method(),
            request_url(req)
        );
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) else {
            return unauthorized("signature does not match");
        };
        mac.update(message.as_bytes());
        let sent = base64::engine::general_purpose::STANDARD.decode(signature.trim());
        match sent {
            Ok(sent) if mac.verify_slice(&sent).is_ok() => Ok(()),
            _ => unauthorized("signature does not match"),
        }
    }

    /// The normal answer for backup `id`: a replaced history, the seed's (verbatim when the
    /// page holds exactly its one entry), a live one, else 404.
    fn histories(&self, id: &str, query: Option<&str>) -> (StatusCode, Bytes) {
        let replaced = self.lock().scp_entries.get(id).cloned();
        let seed = replaced.is_none() && id == SCP_BACKUP_ID;
        let owned;
        let entries: &[Value] = if let Some(replaced) = &replaced {
            replaced
        } else if seed {
            let body: Value = serde_json::from_str(SCP_RESTORE_HISTORIES).unwrap_or_default();
            owned = body["contents"].as_array().cloned().unwrap_or_default();
            &owned
        } else if let Some(def) = BACKUPS.iter().find(|b| b.id == id) {
            let now = Utc::now().timestamp_millis();
            owned = entries(def, now, self.started_ms, self.cycle_ms);
            &owned
        } else {
            let body = error_body(StatusCode::NOT_FOUND, &format!("Backup '{id}' not found"));
            return (StatusCode::NOT_FOUND, body);
        };
        let q = match Query::parse(query) {
            Ok(q) => q,
            Err(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body(StatusCode::BAD_REQUEST, &message),
                )
            }
        };
        let page = page(entries, &q);
        if seed && page.count == 1 && page.contents.len() == 1 {
            return (
                StatusCode::OK,
                Bytes::from_static(SCP_RESTORE_HISTORIES.as_bytes()),
            );
        }
        (
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&page).unwrap_or_default()),
        )
    }
}

fn error_body(status: StatusCode, message: &str) -> Bytes {
    let code = reason(status).to_ascii_uppercase().replace([' ', '-'], "_");
    Bytes::from(
        serde_json::to_vec(&json!({ "code": code, "message": message })).unwrap_or_default(),
    )
}
