//! The fault knobs of the admin API: faults injected per `(target, id)` and the request
//! counts kept beside them, and what a fault turns a request into. Each system then
//! writes that outcome in its own error shape.
//!
//! It knows no system's routes, wire format or names: each system declares the [`Target`]s
//! its knobs are attached to.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;

use super::http::DropConnection;

/// What faults and request counts are attached to, together with an id: the `{endpoint}`
/// of `/_sim/fault/{endpoint}/{id}` and the first half of a stats key. Each system names
/// its own (`System::targets`); the knobs only tell them apart by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Target(&'static str);

impl Target {
    /// The target called `name` in the admin API and the stats keys.
    pub(crate) const fn new(name: &'static str) -> Target {
        Target(name)
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

/// The faults set through the admin API and the requests counted, per target and id.
#[derive(Default)]
pub(crate) struct Faults {
    state: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    faults: HashMap<Target, HashMap<String, Fault>>,
    requests: HashMap<Target, HashMap<String, u64>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; recover anyway rather than cascade.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one request for `(target, id)`.
    pub(crate) fn count(&self, target: Target, id: &str) {
        let mut state = self.lock();
        let counts = state.requests.entry(target).or_default();
        match counts.get_mut(id) {
            Some(n) => *n += 1,
            None => {
                counts.insert(id.to_string(), 1);
            }
        }
    }

    /// The fault set for `(target, id)`; a one-shot fault is consumed.
    pub(crate) fn take(&self, target: Target, id: &str) -> Option<Fault> {
        let mut state = self.lock();
        let faults = state.faults.get_mut(&target)?;
        match faults.get(id)? {
            Fault::Error500Once => faults.remove(id),
            fault => Some(fault.clone()),
        }
    }

    /// Sets the fault of `(target, id)`; [`Fault::None`] removes it.
    pub(crate) fn set(&self, target: Target, id: String, fault: Fault) {
        let mut state = self.lock();
        let faults = state.faults.entry(target).or_default();
        if fault == Fault::None {
            faults.remove(&id);
        } else {
            faults.insert(id, fault);
        }
    }

    /// The request counts keyed `<target>/<id>`.
    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        let state = self.lock();
        let mut counts = BTreeMap::new();
        for (target, requests) in &state.requests {
            for (id, n) in requests {
                counts.insert(format!("{}/{id}", target.as_str()), *n);
            }
        }
        counts
    }

    /// Clears every fault and count.
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.faults.clear();
        state.requests.clear();
    }
}

/// What a request becomes under a fault, independent of any system's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer normally (no fault, or after a `slow` delay).
    Answer,
    /// Answer this status with the system's error body.
    Error(StatusCode),
    /// 429 with `Retry-After: <secs>`.
    RateLimited(u64),
    /// The normal answer cut in half, with status 200.
    Truncate,
    /// About 20 MiB of valid JSON, streamed (see [`padded_parts`]).
    Oversize,
}

/// Applies `fault`: sleeps for `slow`, and errs for `connection_close` so that the
/// connection is dropped without an answer.
pub(crate) async fn action(fault: Option<Fault>) -> Result<Action, DropConnection> {
    let action = match fault {
        None | Some(Fault::None) => Action::Answer,
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            Action::Answer
        }
        Some(Fault::ConnectionClose) => return Err(DropConnection),
        Some(Fault::NotFound) => Action::Error(StatusCode::NOT_FOUND),
        Some(Fault::BadRequest) => Action::Error(StatusCode::BAD_REQUEST),
        Some(Fault::Error500 | Fault::Error500Once) => {
            Action::Error(StatusCode::INTERNAL_SERVER_ERROR)
        }
        Some(Fault::Unauthorized) => Action::Error(StatusCode::UNAUTHORIZED),
        Some(Fault::RateLimited(secs)) => Action::RateLimited(secs),
        Some(Fault::Truncated) => Action::Truncate,
        Some(Fault::Oversized) => Action::Oversize,
    };
    Ok(action)
}

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

/// `prefix`, the shared chunk of string items [`OVERSIZED_CHUNKS`] times, then `suffix`:
/// valid JSON when `prefix` opens an array and `suffix` starts with its last item.
pub(crate) fn padded_parts(
    prefix: String,
    suffix: String,
) -> impl Iterator<Item = Bytes> + Send + 'static {
    let chunk = log_chunk();
    std::iter::once(Bytes::from(prefix))
        .chain(std::iter::repeat_n(chunk, OVERSIZED_CHUNKS))
        .chain(std::iter::once(Bytes::from(suffix)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{action, Action, Fault};

    /// `slow:<secs>` waits exactly its delay, on tokio's clock (paused here: no real waiting),
    /// and then answers normally; no fault waits nothing.
    #[tokio::test(start_paused = true)]
    async fn a_slow_fault_waits_its_delay_then_answers() {
        let start = Instant::now();
        let slow = action(Some(Fault::Slow(Duration::from_millis(1500)))).await;
        assert!(matches!(slow, Ok(Action::Answer)));
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
        assert!(matches!(action(None).await, Ok(Action::Answer)));
        assert!(matches!(
            action(Some(Fault::None)).await,
            Ok(Action::Answer)
        ));
        assert_eq!(start.elapsed(), Duration::from_millis(1500));
    }

    #[test]
    fn fault_names_round_trip() {
        for text in [
            "none",
            "not_found",
            "bad_request",
            "error500",
            "error500_once",
            "slow:1.5",
            "truncated",
            "unauthorized",
            "oversized",
            "rate_limited:30",
            "connection_close",
        ] {
            let fault = Fault::parse(text).expect(text);
            assert_eq!(fault.to_string(), text);
        }
    }
}
