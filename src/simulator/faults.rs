//! Faults that the admin API can inject per `(endpoint, id)`.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;

/// One injected misbehaviour, named by the plain-text body of `PUT /_sim/fault/...`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fault {
    /// `none`: answer normally (removes the fault).
    None,
    /// `not_found`: 404 with the seed's error body.
    NotFound,
    /// `bad_request`: 400 with the seed's "incomplete data" body.
    BadRequest,
    /// `error500`: 500 on every request.
    Error500,
    /// `error500_once`: 500 once, then normal.
    Error500Once,
    /// `slow:<secs>`: wait, then answer normally.
    Slow(Duration),
    /// `truncated`: 200 with the JSON cut in half (Content-Length matches what is sent).
    Truncated,
    /// `unauthorized`: 401.
    Unauthorized,
    /// `oversized`: 200 streaming about 20 MiB of valid JSON.
    Oversized,
    /// `rate_limited:<secs>`: 429 with `Retry-After: <secs>`.
    RateLimited(u64),
    /// `connection_close`: close the connection without answering.
    ConnectionClose,
}

pub(crate) const FAULT_NAMES: &str = "none, not_found, bad_request, error500, error500_once, \
     slow:<secs>, truncated, unauthorized, oversized, rate_limited:<secs>, connection_close";

impl Fault {
    pub(crate) fn parse(text: &str) -> Option<Fault> {
        let text = text.trim();
        let fault = match text {
            "none" => Fault::None,
            "not_found" => Fault::NotFound,
            "bad_request" => Fault::BadRequest,
            "error500" => Fault::Error500,
            "error500_once" => Fault::Error500Once,
            "truncated" => Fault::Truncated,
            "unauthorized" => Fault::Unauthorized,
            "oversized" => Fault::Oversized,
            "connection_close" => Fault::ConnectionClose,
            _ => {
                let (name, arg) = text.split_once(':')?;
                let arg = arg.trim();
                let arg = arg.strip_suffix('s').unwrap_or(arg);
                match name.trim() {
                    "slow" => {
                        let secs: f64 = arg.parse().ok()?;
                        // Up to a day: longer is surely a typo, and from_secs_f64 panics on overflow.
                        if !(0.0..=86_400.0).contains(&secs) {
                            return None;
                        }
                        Fault::Slow(Duration::from_secs_f64(secs))
                    }
                    "rate_limited" => Fault::RateLimited(arg.parse().ok()?),
                    _ => return None,
                }
            }
        };
        Some(fault)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::None => f.write_str("none"),
            Fault::NotFound => f.write_str("not_found"),
            Fault::BadRequest => f.write_str("bad_request"),
            Fault::Error500 => f.write_str("error500"),
            Fault::Error500Once => f.write_str("error500_once"),
            Fault::Slow(d) => write!(f, "slow:{}", d.as_secs_f64()),
            Fault::Truncated => f.write_str("truncated"),
            Fault::Unauthorized => f.write_str("unauthorized"),
            Fault::Oversized => f.write_str("oversized"),
            Fault::RateLimited(s) => write!(f, "rate_limited:{s}"),
            Fault::ConnectionClose => f.write_str("connection_close"),
        }
    }
}

/// Size of one chunk of the oversized body.
const CHUNK: usize = 64 * 1024;
/// Number of log chunks: 320 x 64 KiB = 20 MiB.
pub(crate) const OVERSIZED_CHUNKS: usize = 320;

/// One chunk of JSON array items (`"...",` repeated), shared by every oversized answer so
/// that streaming 20 MiB allocates 64 KiB once.
fn log_chunk() -> Bytes {
    static CHUNK_BYTES: OnceLock<Bytes> = OnceLock::new();
    CHUNK_BYTES
        .get_or_init(|| {
            let item = "\"oversized log line: padding padding padding padding padding padding\",";
            let mut chunk = String::with_capacity(CHUNK + item.len());
            while chunk.len() + item.len() <= CHUNK {
                chunk.push_str(item);
            }
            Bytes::from(chunk)
        })
        .clone()
}

/// The pieces of a valid ~20 MiB JSON answer: `prefix`, the shared log chunk
/// [`OVERSIZED_CHUNKS`] times, then `suffix`. The prefix opens a `log` array of a job
/// shaped like the endpoint's normal answer.
pub(crate) fn oversized_parts(
    endpoint: super::zdm::Endpoint,
    id: &str,
    timestamp: &str,
) -> impl Iterator<Item = Bytes> + Send + 'static {
    use super::zdm::Endpoint;
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
        Endpoint::RecoveryJob => (
            format!(
                r#""system":{{"source":{{"name":"oversized"}},"target":{{"name":"oversized"}}}},"job":{{"info":{{"name":{name}}},"details":[{{"partition":"/",{progress}}}],"log":["#
            ),
            "]}",
        ),
    };
    let prefix = format!(
        r#"{{"success":true,"requestID":"{}","data":{{{open}"#,
        super::zdm::request_id()
    );
    let suffix = format!(
        r#""end"{close}}},"message":"{}","timestamp":"{timestamp}"}}"#,
        endpoint.ok_message()
    );
    let chunk = log_chunk();
    std::iter::once(Bytes::from(prefix))
        .chain(std::iter::repeat_n(chunk, OVERSIZED_CHUNKS))
        .chain(std::iter::once(Bytes::from(suffix)))
}
