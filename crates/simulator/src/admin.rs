//! The admin API under `/_sim/`, served on the simulator's own listener:
//!
//! | request | effect |
//! |---|---|
//! | `PUT /_sim/fault/{endpoint}/{id}` + text body | inject a fault (see [`Fault`]); `none` or `DELETE` clears it |
//! | `PUT /_sim/fixture/{endpoint}/{id}` + JSON body | serve that body verbatim with 200 from now on (`?raw=1`: any bytes, unchecked) |
//! | `DELETE /_sim/fixture/{endpoint}/{id}` | stop serving the pinned body |
//! | `PUT /_sim/scp/{backup_id}/entries` + JSON array | replace that backup's restore history (the simulator still sorts, filters and pages it) |
//! | `DELETE /_sim/scp/{backup_id}/entries` | back to the default history (404 for an unknown id) |
//! | `PUT /_sim/azure/{vault}/jobs` + JSON array of JobResource | replace that vault's jobs (`extendedInfo` only in details); an unknown vault name answers under any subscription and resource group |
//! | `DELETE /_sim/azure/{vault}/jobs` | back to the default jobs |
//! | `GET /_sim/stats` | `{"<endpoint>/<id>": requests, ..., "login": n, "azure_assertions": [...]}`; the last: the distinct workload-identity client assertions accepted, once there is one |
//! | `POST /_sim/reset` | clear faults, fixtures, replaced histories and jobs, and stats |
//!
//! Fault `endpoint`s (and stats keys): `system`, `backup_job`, `recovery_job` (ZDM),
//! `backup` (SCP backup id, every page), `vault` (Azure vault: first list page and job
//! details), `vault_next` (its `nextLink` pages only), `job` (Azure job details by job name),
//! `token` (Azure AD tenant), `imds` (id `default`). Fixtures are ZDM only. Ids are
//! percent-decoded.

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::azure::Azure;
use super::faults::{Fault, Faults, Target, FAULT_NAMES};
use super::http::{json_response, percent_decode, read_body, Body};
use super::scp::Scp;
use super::zdm::{Endpoint, Zdm};

/// Largest fixture body accepted (big enough for tests of the exporter's body cap).
const FIXTURE_BODY_LIMIT: usize = 64 * 1024 * 1024;
const FAULT_BODY_LIMIT: usize = 4 * 1024;

/// The parts of the simulator the admin API reaches.
pub(crate) struct Parts<'a> {
    pub faults: &'a Faults,
    pub zdm: &'a Zdm,
    pub scp: &'a Scp,
    pub azure: &'a Azure,
}

fn reply(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    json_response(status, &value)
}

fn fail(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    reply(status, json!({ "success": false, "error": message.into() }))
}

pub(crate) async fn handle(
    sim: Parts<'_>,
    req: Request<Incoming>,
    rest: &[&str],
) -> Response<Body> {
    match rest {
        ["fault", target, id] => match (Target::parse(target), decode_id(id)) {
            (None, _) => fail(
                StatusCode::NOT_FOUND,
                format!("unknown endpoint: expected one of {}", target_names()),
            ),
            (Some(target), Ok(id)) => fault(sim.faults, req, target, id).await,
            (_, Err(response)) => response,
        },
        ["fixture", endpoint, id] => match (Endpoint::parse(endpoint), decode_id(id)) {
            (None, _) => fail(
                StatusCode::NOT_FOUND,
                "unknown endpoint: expected system, backup_job or recovery_job",
            ),
            (Some(endpoint), Ok(id)) => fixture(sim.zdm, req, endpoint, id).await,
            (_, Err(response)) => response,
        },
        ["scp", id, "entries"] => match decode_id(id) {
            Ok(id) => scp_entries(sim.scp, req, id).await,
            Err(response) => response,
        },
        ["azure", vault, "jobs"] => match decode_id(vault) {
            Ok(vault) => azure_jobs(sim.azure, req, vault).await,
            Err(response) => response,
        },
        ["stats"] if req.method() == Method::GET => reply(StatusCode::OK, stats(&sim)),
        ["reset"] if req.method() == Method::POST => {
            sim.faults.clear();
            sim.zdm.reset();
            sim.scp.reset();
            sim.azure.reset();
            reply(StatusCode::OK, json!({ "success": true }))
        }
        ["stats"] | ["reset"] => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        _ => fail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn target_names() -> String {
    Target::ALL.map(Target::as_str).join(", ")
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
    zdm: &Zdm,
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
            zdm.pin(endpoint, id.clone(), body);
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint.as_str(), "id": id, "bytes": bytes }),
            )
        }
        Method::DELETE => {
            let removed = zdm.unpin(endpoint, &id);
            reply(
                StatusCode::OK,
                json!({ "success": true, "endpoint": endpoint.as_str(), "id": id, "removed": removed }),
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

async fn scp_entries(scp: &Scp, req: Request<Incoming>, id: String) -> Response<Body> {
    match *req.method() {
        Method::PUT => {
            let entries = match json_array(req).await {
                Ok(entries) => entries,
                Err(response) => return response,
            };
            let count = scp.replace(id.clone(), entries);
            reply(
                StatusCode::OK,
                json!({ "success": true, "backup_id": id, "entries": count }),
            )
        }
        Method::DELETE => {
            let removed = scp.restore(&id);
            reply(
                StatusCode::OK,
                json!({ "success": true, "backup_id": id, "removed": removed }),
            )
        }
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

async fn azure_jobs(azure: &Azure, req: Request<Incoming>, vault: String) -> Response<Body> {
    match *req.method() {
        Method::PUT => {
            let items = match json_array(req).await {
                Ok(items) => items,
                Err(response) => return response,
            };
            let count = match azure.replace(&vault, items) {
                Ok(count) => count,
                Err(message) => return fail(StatusCode::BAD_REQUEST, message),
            };
            reply(
                StatusCode::OK,
                json!({ "success": true, "vault": vault, "jobs": count }),
            )
        }
        Method::DELETE => {
            let removed = azure.restore(&vault);
            reply(
                StatusCode::OK,
                json!({ "success": true, "vault": vault, "removed": removed }),
            )
        }
        _ => fail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
    }
}

fn stats(sim: &Parts<'_>) -> serde_json::Value {
    let mut counts = sim.faults.counts();
    counts.insert("login".to_string(), sim.zdm.logins());
    let mut stats = json!(counts);
    let assertions = sim.azure.assertions();
    if !assertions.is_empty() {
        stats["azure_assertions"] = json!(assertions);
    }
    stats
}
