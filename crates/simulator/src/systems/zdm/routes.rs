//! The ZDM routes under `/api/v1` and `/api`: the three monitoring endpoints and login,
//! the ZDM bodies the admin API pins, and the login count of the stats.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::auth::Auth;
use super::history;
use super::listing::{self, World};
use super::paging;
use super::scenario::{self, Fleet};
use super::seed;
use super::wire::{
    self, error, is_probe_list, method_not_allowed, oversized_parts, unauthorized, ApiVersion,
    Endpoint, Envelope, Release,
};
use crate::clock;
use crate::faults::{self, Action, Faults, Target};
use crate::http::{
    full, percent_decode, reason, streamed, truncated, with_retry_after, Body, DropConnection,
};
use crate::system::{Reply, System};

/// The simulated ZDM server.
pub(crate) struct Zdm {
    auth: Auth,
    cycle_ms: i64,
    fleet: Option<Fleet>,
    /// Bodies pinned by the admin API, indexed by [`Endpoint::index`].
    pinned: Mutex<[HashMap<String, Bytes>; 5]>,
    /// History list requests (backups, recoveries) since the start or the last reset.
    histories: [AtomicU64; 2],
    /// `--zdm-version`: only this release's prefix, login path, lists and words; `None`
    /// speaks every version at once (both prefixes, both login paths, every list).
    release: Option<Release>,
    /// Listing answers pinned by the admin API (`/_sim/fixture/listing/{name}`).
    pinned_listings: Mutex<HashMap<String, Bytes>>,
}

/// The fault and fixture endpoint of the listings (ids: the listing's name).
const LISTING: &str = "listing";

/// The fault endpoints: the monitoring endpoints' and the listings'.
static TARGETS: [Target; 6] = [
    Endpoint::TARGETS[0],
    Endpoint::TARGETS[1],
    Endpoint::TARGETS[2],
    Endpoint::TARGETS[3],
    Endpoint::TARGETS[4],
    Target::new(LISTING),
];

/// The fixture endpoints: the monitoring endpoints' and the listings'.
static FIXTURES: [&str; 6] = [
    Endpoint::NAMES[0],
    Endpoint::NAMES[1],
    Endpoint::NAMES[2],
    Endpoint::NAMES[3],
    Endpoint::NAMES[4],
    LISTING,
];

impl Zdm {
    /// `token` and `login` as in [`Options`](super::Options); `fleet` is
    /// `(servers, jobs per server)` of the generated benchmark fleet.
    pub(crate) fn new(
        token: Option<String>,
        login: Option<(String, String)>,
        token_lifetime: Duration,
        cycle_ms: i64,
        fleet: Option<(usize, usize)>,
        release: Option<Release>,
    ) -> Zdm {
        Zdm {
            auth: Auth::new(token, login, token_lifetime),
            cycle_ms,
            fleet: fleet
                .map(|(servers, jobs)| Fleet { servers, jobs })
                .filter(|f| f.servers > 0),
            pinned: Mutex::default(),
            histories: Default::default(),
            release,
            pinned_listings: Mutex::default(),
        }
    }

    fn pinned(&self) -> MutexGuard<'_, [HashMap<String, Bytes>; 5]> {
        self.pinned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `{prefix}/...`; `rest` are the raw path segments after the prefix.
    async fn api(
        &self,
        faults: &Faults,
        req: Request<Incoming>,
        version: ApiVersion,
        rest: &[&str],
    ) -> Result<Response<Body>, DropConnection> {
        let (endpoint, raw_id) = match rest {
            ["backups", "monitoring", "system", id] => (Endpoint::System, *id),
            ["backups", "monitoring", "job", id] => (Endpoint::BackupJob, *id),
            ["recoveries", "monitoring", "job", id] => (Endpoint::RecoveryJob, *id),
            ["recoveries", "monitoring", "system", id] => (Endpoint::RecoverySystem, *id),
            ["replications", "monitoring", "job", id]
                if self.release.is_none_or(Release::has_replication) =>
            {
                (Endpoint::ReplicationJob, *id)
            }
            list if listing::which(list).is_some()
                && self.release.is_none_or(|r| {
                    r.at_least(1, 0) && (list != ["replications"] || r.has_list(list))
                }) =>
            {
                return self.listing(faults, &req, version, list).await;
            }
            [a @ ("auth" | "token"), "issue"]
                if self.release.is_none_or(|r| r.login() == [*a, "issue"]) =>
            {
                return Ok(self.auth.login(req, version).await)
            }
            list if self.release.map_or(is_probe_list(list), |r| r.has_list(list)) => {
                return Ok(self.list(&req, version, list));
            }
            _ => return Ok(error(version, StatusCode::NOT_FOUND, "Not Found")),
        };
        let Some(id) = percent_decode(raw_id).filter(|id| !id.is_empty()) else {
            return Ok(error(
                version,
                StatusCode::BAD_REQUEST,
                "invalid identifier in path",
            ));
        };
        if req.method() != Method::GET {
            return Ok(method_not_allowed(version, "GET"));
        }
        let query = req.uri().query().map(str::to_owned);
        faults.count(endpoint.into(), &id);
        if !self.auth.authorized(req.headers()) {
            return Ok(unauthorized(version));
        }
        let response = match faults::action(faults.take(endpoint.into(), &id)).await? {
            Action::Answer => self.render(version, endpoint, &id, query.as_deref()),
            Action::Error(StatusCode::NOT_FOUND) => error(
                version,
                StatusCode::NOT_FOUND,
                &endpoint.not_found_error(&id),
            ),
            Action::Error(StatusCode::BAD_REQUEST) => error(
                version,
                StatusCode::BAD_REQUEST,
                endpoint.incomplete_error(),
            ),
            Action::Error(StatusCode::UNAUTHORIZED) => unauthorized(version),
            Action::Error(status) => error(version, status, reason(status)),
            Action::RateLimited(secs) => with_retry_after(
                error(version, StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
                secs,
            ),
            Action::Truncate => {
                let (_, body) = self.render_body(version, endpoint, &id);
                truncated(body)
            }
            Action::Oversize => streamed(oversized_parts(endpoint, &id, &version.now())),
        };
        Ok(response)
    }

    /// A listing (1.0.3 on): a pinned answer, else the live one (`listing.rs`); faults
    /// and request counts under `listing/<name>`; 401 without a valid token.
    async fn listing(
        &self,
        faults: &Faults,
        req: &Request<Incoming>,
        version: ApiVersion,
        rest: &[&str],
    ) -> Result<Response<Body>, DropConnection> {
        let Some(name) = listing::which(rest) else {
            return Ok(error(version, StatusCode::NOT_FOUND, "Not Found"));
        };
        if req.method() != Method::GET {
            return Ok(method_not_allowed(version, "GET"));
        }
        let target = Target::new(LISTING);
        faults.count(target, name);
        if !self.auth.authorized(req.headers()) {
            return Ok(unauthorized(version));
        }
        let replications = self.release.is_none_or(Release::has_replication);
        let answer = || {
            let pinned = self
                .pinned_listings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(name)
                .cloned();
            let body = pinned.unwrap_or_else(|| {
                let world = World {
                    version,
                    now_ms: clock::now_ms(),
                    cycle_ms: self.cycle_ms,
                    fleet: self.fleet,
                    replications,
                };
                Bytes::from(listing::body(&world, name, req.uri().query()))
            });
            full(StatusCode::OK, body)
        };
        Ok(match faults::action(faults.take(target, name)).await? {
            Action::Answer => answer(),
            Action::Error(StatusCode::UNAUTHORIZED) => unauthorized(version),
            Action::Error(status) => error(version, status, reason(status)),
            Action::RateLimited(secs) => with_retry_after(
                error(version, StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
                secs,
            ),
            Action::Truncate => {
                let body = listing::body(
                    &World {
                        version,
                        now_ms: clock::now_ms(),
                        cycle_ms: self.cycle_ms,
                        fleet: self.fleet,
                        replications,
                    },
                    name,
                    req.uri().query(),
                );
                truncated(Bytes::from(body))
            }
            Action::Oversize => streamed(oversized_parts(Endpoint::System, name, &version.now())),
        })
    }

    /// A list the release has (the paths an exporter's `api_version: auto` asks): the
    /// histories list the live scenario's finished runs (paged like ZDM's), the others are
    /// empty, with the documented envelope; 401 without a valid token.
    fn list(&self, req: &Request<Incoming>, version: ApiVersion, rest: &[&str]) -> Response<Body> {
        if req.method() != Method::GET {
            return method_not_allowed(version, "GET");
        }
        if !self.auth.authorized(req.headers()) {
            return unauthorized(version);
        }
        if let [book @ ("backups" | "recoveries"), "histories"] = rest {
            return self.history(version, *book == "recoveries", req.uri().query());
        }
        let body = Envelope {
            success: true,
            request_id: &wire::request_id(),
            data: Vec::<Value>::new(),
            message: "OK",
            timestamp: &version.now(),
        };
        crate::http::json_response(StatusCode::OK, &body)
    }

    /// A history list (`history.rs`), counted in the stats.
    fn history(&self, version: ApiVersion, recoveries: bool, query: Option<&str>) -> Response<Body> {
        let counter = &self.histories[usize::from(recoveries)];
        counter.fetch_add(1, Ordering::Relaxed);
        match history::Query::parse(query) {
            Ok(query) => {
                let runs = scenario::history(recoveries, clock::now_ms(), self.cycle_ms, self.fleet);
                full(StatusCode::OK, history::body(version, recoveries, &runs, &query))
            }
            Err(message) => error(version, StatusCode::BAD_REQUEST, &message),
        }
    }

    /// The normal answer, a server's paged when `query` asks for a page.
    fn render(
        &self,
        version: ApiVersion,
        endpoint: Endpoint,
        id: &str,
        query: Option<&str>,
    ) -> Response<Body> {
        let (status, body) = self.render_body(version, endpoint, id);
        let body = match (endpoint, status) {
            (Endpoint::System | Endpoint::RecoverySystem, StatusCode::OK) => {
                paging::page(query, body)
            }
            _ => body,
        };
        full(status, body)
    }

    /// The normal answer: a pinned body, else a seed example, else the live scenario,
    /// else the seed's 404.
    fn render_body(
        &self,
        version: ApiVersion,
        endpoint: Endpoint,
        id: &str,
    ) -> (StatusCode, Bytes) {
        if let Some(body) = self.pinned()[endpoint.index()].get(id) {
            return (StatusCode::OK, body.clone());
        }
        if let Some((status, body)) = seed::lookup(endpoint, id) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, Bytes::from_static(body.as_bytes()));
        }
        if let Some(body) = scenario::render(
            version,
            endpoint,
            id,
            clock::now_ms(),
            self.cycle_ms,
            self.fleet,
        ) {
            return (StatusCode::OK, Bytes::from(body));
        }
        let body = wire::error_body(version, &endpoint.not_found_error(id));
        (StatusCode::NOT_FOUND, Bytes::from(body))
    }
}

impl System for Zdm {
    fn not_found(&self) -> Option<Response<Body>> {
        Some(error(ApiVersion::V1, StatusCode::NOT_FOUND, "Not Found"))
    }

    fn route<'a>(
        &'a self,
        faults: &'a Faults,
        req: Request<Incoming>,
        path: &'a [&'a str],
    ) -> Result<Reply<'a>, Request<Incoming>> {
        let routed = match (self.release, path) {
            (Some(release), path) => release.route(path),
            (None, ["api", "v1", rest @ ..]) => Some((ApiVersion::V1, rest)),
            (None, ["api", rest @ ..]) => Some((ApiVersion::Legacy, rest)),
            (None, _) => None,
        };
        let Some((version, rest)) = routed else {
            return Err(req);
        };
        Ok(Box::pin(self.api(faults, req, version, rest)))
    }

    fn targets(&self) -> &'static [Target] {
        &TARGETS
    }

    fn fixture_endpoints(&self) -> &'static [&'static str] {
        &FIXTURES
    }

    fn pin(&self, endpoint: &str, id: String, body: Bytes) {
        if endpoint == LISTING {
            self.pinned_listings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, body);
            return;
        }
        if let Some(endpoint) = Endpoint::parse(endpoint) {
            self.pinned()[endpoint.index()].insert(id, body);
        }
    }

    fn unpin(&self, endpoint: &str, id: &str) -> bool {
        if endpoint == LISTING {
            return self
                .pinned_listings
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id)
                .is_some();
        }
        Endpoint::parse(endpoint)
            .is_some_and(|endpoint| self.pinned()[endpoint.index()].remove(id).is_some())
    }

    /// `login`: the login attempts since the start or the last reset; `backups/histories`
    /// and `recoveries/histories`: the history list requests (once there was one).
    fn stats(&self, stats: &mut Map<String, Value>) {
        stats.insert("login".to_string(), self.auth.logins().into());
        for (name, n) in ["backups/histories", "recoveries/histories"]
            .into_iter()
            .zip(&self.histories)
        {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                stats.insert(name.to_string(), n.into());
            }
        }
    }

    /// Drops every pinned body and the login count (issued tokens stay valid).
    fn reset(&self) {
        for pinned in self.pinned().iter_mut() {
            pinned.clear();
        }
        self.pinned_listings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.auth.reset_logins();
        for n in &self.histories {
            n.store(0, Ordering::Relaxed);
        }
    }
}
