//! The admin API under `/_sim/`, served on the simulator's own listener:
//!
//! | request | effect |
//! |---|---|
//! | `PUT /_sim/fault/{endpoint}/{id}` + text body | inject a fault (see [`Fault`]); `none` or `DELETE` clears it |
//! | `PUT /_sim/fixture/{endpoint}/{id}` + JSON body | serve that body verbatim with 200 from now on (`?raw=1`: any bytes, unchecked) |
//! | `DELETE /_sim/fixture/{endpoint}/{id}` | stop serving the pinned body |
//! | `GET /_sim/stats` | `{"<endpoint>/<id>": requests, ..., "login": n}` |
//! | `POST /_sim/reset` | clear faults, fixtures and stats |
//!
//! `endpoint` is `system`, `backup_job` or `recovery_job`; `id` is percent-decoded.

use std::collections::BTreeMap;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::faults::{Fault, FAULT_NAMES};
use super::router::{full, percent_decode, read_body, Body};
use super::zdm::Endpoint;
use super::Simulator;

/// Largest fixture body accepted (big enough for tests of the exporter's body cap).
const FIXTURE_BODY_LIMIT: usize = 64 * 1024 * 1024;
const FAULT_BODY_LIMIT: usize = 4 * 1024;

fn reply(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    full(status, serde_json::to_vec(&value).unwrap_or_default())
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    reply(status, json!({ "success": false, "error": message.into() }))
}

pub(crate) async fn handle(
    sim: &Simulator,
    req: Request<Incoming>,
    rest: &[&str],
) -> Response<Body> {
    match rest {
        ["fault", endpoint, id] => match target(endpoint, id) {
            Ok((endpoint, id)) => fault(sim, req, endpoint, id).await,
            Err(response) => response,
        },
        ["fixture", endpoint, id] => match target(endpoint, id) {
            Ok((endpoint, id)) => fixture(sim, req, endpoint, id).await,
            Err(response) => response,
        },
        ["stats"] if req.method() == Method::GET => reply(StatusCode::OK, stats(sim)),
        ["reset"] if req.method() == Method::POST => {
            let mut state = sim.lock();
            for endpoint in Endpoint::ALL {
                let i = endpoint.index();
                state.faults[i].clear();
                state.fixtures[i].clear();
                state.requests[i].clear();
            }
            state.logins = 0;
            reply(StatusCode::OK, json!({ "success": true }))
        }
        ["stats"] | ["reset"] => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        _ => fail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

#[allow(clippy::result_large_err)]
fn target(endpoint: &str, id: &str) -> Result<(Endpoint, String), Response<Body>> {
    let Some(endpoint) = Endpoint::parse(endpoint) else {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "unknown endpoint: expected system, backup_job or recovery_job",
        ));
    };
    match percent_decode(id).filter(|id| !id.is_empty()) {
        Some(id) => Ok((endpoint, id)),
        None => Err(fail(StatusCode::BAD_REQUEST, "invalid identifier in path")),
    }
}

async fn fault(
    sim: &Simulator,
    req: Request<Incoming>,
    endpoint: Endpoint,
    id: String,
) -> Response<Body> {
    let fault = match *req.method() {
        Method::PUT => {
            let body = match read_body(req.into_body(), FAULT_BODY_LIMIT).await {
                Ok(body) => body,
                Err(status) => return fail(status, "cannot read the request body"),
            };
            let parsed = std::str::from_utf8(&body).ok().and_then(Fault::parse);
            match parsed {
                Some(fault) => fault,
                None => {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        format!("unknown fault; expected one of: {FAULT_NAMES}"),
                    )
                }
            }
        }
        Method::DELETE => Fault::None,
        _ => return fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    };
    let shown = fault.to_string();
    {
        let mut state = sim.lock();
        let faults = &mut state.faults[endpoint.index()];
        if fault == Fault::None {
            faults.remove(&id);
        } else {
            faults.insert(id.clone(), fault);
        }
    }
    reply(
        StatusCode::OK,
        json!({ "success": true, "endpoint": endpoint.as_str(), "id": id, "fault": shown }),
    )
}

async fn fixture(
    sim: &Simulator,
    req: Request<Incoming>,
    endpoint: Endpoint,
    id: String,
) -> Response<Body> {
    match *req.method() {
        Method::PUT => {
            let raw = req.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|p| p == "raw" || p == "raw=1" || p == "raw=true")
            });
            let body = match read_body(req.into_body(), FIXTURE_BODY_LIMIT).await {
                Ok(body) => body,
                Err(status) => return fail(status, "cannot read the request body"),
            };
            if !raw {
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                    return fail(
                        StatusCode::BAD_REQUEST,
                        format!("fixture body is not JSON ({e}); add ?raw=1 to serve it anyway"),
                    );
                }
            }
            let bytes = body.len();
            sim.lock().fixtures[endpoint.index()].insert(id.clone(), body);
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint.as_str(), "id": id, "bytes": bytes }),
            )
        }
        Method::DELETE => {
            let removed = sim.lock().fixtures[endpoint.index()].remove(&id).is_some();
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint.as_str(), "id": id, "removed": removed }),
            )
        }
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

fn stats(sim: &Simulator) -> serde_json::Value {
    let state = sim.lock();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for endpoint in Endpoint::ALL {
        for (id, n) in &state.requests[endpoint.index()] {
            counts.insert(format!("{}/{id}", endpoint.as_str()), *n);
        }
    }
    counts.insert("login".to_string(), state.logins);
    json!(counts)
}
