//! The admin API under `/_sim/`, served on the simulator's own listener:
//!
//! | request | effect |
//! |---|---|
//! | `PUT /_sim/fault/{endpoint}/{id}` + text body | inject a fault (see [`Fault`]); `none` or `DELETE` clears it |
//! | `PUT /_sim/fixture/{endpoint}/{id}` + JSON body | serve that body verbatim with 200 from now on (`?raw=1`: any bytes, unchecked) |
//! | `DELETE /_sim/fixture/{endpoint}/{id}` | stop serving the pinned body |
//! | `PUT /_sim/{system}/{key}/{items}` + JSON array of objects | replace what `key` serves (a system's replaceable list) |
//! | `DELETE /_sim/{system}/{key}/{items}` | back to the default list |
//! | `GET /_sim/stats` | `{"<endpoint>/<id>": requests, ...}` and each system's own counters |
//! | `POST /_sim/reset` | clear faults and request counts, and each system's pinned fixtures, replaced lists and counters |
//!
//! Each system says what it offers here (`System`, implemented in its `routes.rs`): its
//! fault endpoints (which are its stats keys too), the endpoints whose answers it pins, its
//! replaceable list and its own counters; this file names none of them. Ids are
//! percent-decoded.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::faults::{Fault, Faults, Target, FAULT_NAMES};
use super::http::{json_response, percent_decode, read_body, Body};
use super::system::{listed, Replaceable, System};

/// Largest fixture body accepted (big enough for tests of the exporter's body cap).
const FIXTURE_BODY_LIMIT: usize = 64 * 1024 * 1024;
const FAULT_BODY_LIMIT: usize = 4 * 1024;

fn reply(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    json_response(status, &value)
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    reply(status, json!({ "success": false, "error": message.into() }))
}

pub(crate) async fn handle(
    faults: &Faults,
    systems: &[Box<dyn System>],
    req: Request<Incoming>,
    rest: &[&str],
) -> Response<Body> {
    match rest {
        ["fault", target, id] => match (find_target(systems, target), decode_id(id)) {
            (None, _) => fail(
                StatusCode::NOT_FOUND,
                format!(
                    "unknown endpoint: expected one of {}",
                    target_names(systems)
                ),
            ),
            (Some(target), Ok(id)) => fault(faults, req, target, id).await,
            (_, Err(response)) => response,
        },
        ["fixture", endpoint, id] => match (fixture_system(systems, endpoint), decode_id(id)) {
            (None, _) => fail(
                StatusCode::NOT_FOUND,
                format!("unknown endpoint: expected {}", fixture_names(systems)),
            ),
            (Some(system), Ok(id)) => fixture(system, req, endpoint, id).await,
            (_, Err(response)) => response,
        },
        ["stats"] if req.method() == Method::GET => reply(StatusCode::OK, stats(faults, systems)),
        ["reset"] if req.method() == Method::POST => {
            faults.clear();
            for system in systems {
                system.reset();
            }
            reply(StatusCode::OK, json!({ "success": true }))
        }
        ["stats"] | ["reset"] => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        [system, key, items] => match (replaceable(systems, system, items), decode_id(key)) {
            (None, _) => fail(StatusCode::NOT_FOUND, "Not Found"),
            (Some((system, list)), Ok(key)) => replace(system, list, req, key).await,
            (_, Err(response)) => response,
        },
        _ => fail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// The fault target called `name`, of whichever system.
fn find_target(systems: &[Box<dyn System>], name: &str) -> Option<Target> {
    systems
        .iter()
        .flat_map(|system| system.targets())
        .copied()
        .find(|target| target.as_str() == name)
}

/// Every fault target's name, in the registry's order: `a, b, c`.
fn target_names(systems: &[Box<dyn System>]) -> String {
    let names: Vec<&str> = systems
        .iter()
        .flat_map(|system| system.targets())
        .map(|target| target.as_str())
        .collect();
    names.join(", ")
}

/// The system that pins answers of `endpoint`.
fn fixture_system<'a>(systems: &'a [Box<dyn System>], endpoint: &str) -> Option<&'a dyn System> {
    systems
        .iter()
        .find(|system| system.fixture_endpoints().contains(&endpoint))
        .map(|system| &**system)
}

/// Every endpoint with fixtures: `a, b or c`.
fn fixture_names(systems: &[Box<dyn System>]) -> String {
    let names: Vec<&str> = systems
        .iter()
        .flat_map(|system| system.fixture_endpoints())
        .copied()
        .collect();
    listed(&names, "or")
}

/// The system whose replaceable list is `/_sim/{name}/{key}/{items}`.
fn replaceable<'a>(
    systems: &'a [Box<dyn System>],
    name: &str,
    items: &str,
) -> Option<(&'a dyn System, Replaceable)> {
    systems.iter().find_map(|system| {
        let list = system.replaceable()?;
        (list.system == name && list.items == items).then_some((&**system, list))
    })
}

#[allow(clippy::result_large_err)]
fn decode_id(id: &str) -> Result<String, Response<Body>> {
    percent_decode(id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "invalid identifier in path"))
}

async fn fault(
    faults: &Faults,
    req: Request<Incoming>,
    target: Target,
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
    faults.set(target, id.clone(), fault);
    reply(
        StatusCode::OK,
        json!({ "success": true, "endpoint": target.as_str(), "id": id, "fault": shown }),
    )
}

async fn fixture(
    system: &dyn System,
    req: Request<Incoming>,
    endpoint: &str,
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
            system.pin(endpoint, id.clone(), body);
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint, "id": id, "bytes": bytes }),
            )
        }
        Method::DELETE => {
            let removed = system.unpin(endpoint, &id);
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint, "id": id, "removed": removed }),
            )
        }
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

/// A JSON array of objects from an admin body, or the 400 answer.
#[allow(clippy::result_large_err)]
async fn json_array(req: Request<Incoming>) -> Result<Vec<serde_json::Value>, Response<Body>> {
    let body = read_body(req.into_body(), FIXTURE_BODY_LIMIT)
        .await
        .map_err(|status| fail(status, "cannot read the request body"))?;
    match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
        Ok(items) if items.iter().all(serde_json::Value::is_object) => Ok(items),
        Ok(_) => Err(fail(
            StatusCode::BAD_REQUEST,
            "every item must be a JSON object",
        )),
        Err(e) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("body must be a JSON array of objects ({e})"),
        )),
    }
}

/// `PUT` (replace) or `DELETE` (restore) the list `key` of `system`.
async fn replace(
    system: &dyn System,
    list: Replaceable,
    req: Request<Incoming>,
    key: String,
) -> Response<Body> {
    let (field, value) = match *req.method() {
        Method::PUT => {
            let items = match json_array(req).await {
                Ok(items) => items,
                Err(response) => return response,
            };
            match system.replace(&key, items) {
                Ok(count) => (list.items, Value::from(count)),
                Err(message) => return fail(StatusCode::BAD_REQUEST, message),
            }
        }
        Method::DELETE => ("removed", Value::from(system.restore(&key))),
        _ => return fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    };
    let mut answer = Map::new();
    answer.insert("success".to_string(), Value::from(true));
    answer.insert(list.key_name.to_string(), Value::from(key));
    answer.insert(field.to_string(), value);
    reply(StatusCode::OK, Value::Object(answer))
}

fn stats(faults: &Faults, systems: &[Box<dyn System>]) -> Value {
    let mut stats: Map<String, Value> = faults
        .counts()
        .into_iter()
        .map(|(key, n)| (key, Value::from(n)))
        .collect();
    for system in systems {
        system.stats(&mut stats);
    }
    Value::Object(stats)
}
