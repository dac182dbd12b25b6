//! The SCP routes `GET /v1/backups/{backup_id}/restore-histories` and
//! `GET /v1/backups/{backup_id}/backup-histories`, the listings `GET /v1/backups` and
//! `GET /v1/backups/backup-targets` (see [`listing`](super::listing)), their fault targets,
//! and the histories the admin API replaces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::auth::Auth;
use super::listing;
use super::query::{self, Kind, Query};
use super::scenario;
use super::seed;
use super::wire::{error, error_body};
use crate::clock;
use crate::faults::{self, Action, Faults, Target};
use crate::http::{
    form_pairs, full, percent_decode, reason, streamed, truncated, with_allow, with_retry_after,
    Body, DropConnection,
};
use crate::system::{Replaceable, Reply, System};

/// The fault target of every restore-histories request of a backup, each page included.
const BACKUP: Target = Target::new("backup");
/// The fault target of every backup-histories request of a backup, each page included.
const BACKUP_HISTORIES: Target = Target::new("backup_histories");
/// The fault target of the backup list's first page (`page` absent or 0), id `default`.
const BACKUP_LIST: Target = Target::new("backup_list");
/// ... and of its later pages (`page` 1 and on).
const BACKUP_LIST_NEXT: Target = Target::new("backup_list_next");
/// The fault target of every backup-targets request (the servers), id `default`.
const BACKUP_TARGETS: Target = Target::new("backup_targets");
/// The id the listings' faults and counts are kept under.
const LISTING_ID: &str = "default";

/// Which listing a request reads.
#[derive(Clone, Copy)]
enum Listing {
    Backups,
    Targets,
}

/// The simulated SCP backup API.
pub(crate) struct Scp {
    auth: Auth,
    cycle_ms: i64,
    /// Creation time in Unix milliseconds: live histories grow from here.
    started_ms: i64,
    /// Histories replaced by the admin API, by backup id: entries with `backup_job_state`
    /// are the backup's runs, the others its restores.
    replaced: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    /// Generated backups of `--scp-fleet` (0: none).
    fleet: usize,
    /// The backup list (it does not change): made on first use.
    backups: OnceLock<Vec<Value>>,
}

impl Scp {
    /// `keys` as in [`Options::keys`](super::Options::keys), `fleet` the generated backups.
    pub(crate) fn new(keys: Option<(String, String)>, cycle_ms: i64, fleet: usize) -> Scp {
        Scp {
            auth: Auth::new(keys),
            cycle_ms,
            started_ms: clock::now_ms(),
            replaced: Mutex::default(),
            fleet,
            backups: OnceLock::new(),
        }
    }

    fn replaced(&self) -> MutexGuard<'_, HashMap<String, Arc<Vec<Value>>>> {
        self.replaced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn history(
        &self,
        kind: Kind,
        faults: &Faults,
        req: Request<Incoming>,
        raw_id: &str,
    ) -> Result<Response<Body>, DropConnection> {
        let target = match kind {
            Kind::Restores => BACKUP,
            Kind::Backups => BACKUP_HISTORIES,
        };
        let Some(id) = percent_decode(raw_id).filter(|id| !id.is_empty()) else {
            return Ok(error(StatusCode::BAD_REQUEST, "invalid backup id in path"));
        };
        if req.method() != Method::GET {
            return Ok(with_allow(
                error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
                "GET",
            ));
        }
        faults.count(target, &id);
        if let Err((status, message)) = self.auth.check_signature(&req) {
            return Ok(error(status, message));
        }
        let query = req.uri().query();
        let response = match faults::action(faults.take(target, &id)).await? {
            Action::Answer => {
                let (status, body) = self.histories(kind, &id, query);
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
            Action::Truncate => truncated(self.histories(kind, &id, query).1),
            Action::Oversize => streamed(faults::padded_parts(
                r#"{"contents":[],"count":0,"padding":["#.to_string(),
                r#""end"]}"#.to_string(),
            )),
        };
        Ok(response)
    }

    /// The normal answer for the `kind` history of backup `id`: a replaced history, the
    /// seed's (verbatim when the page holds all its entries), a live one, else 404.
    fn histories(&self, kind: Kind, id: &str, query: Option<&str>) -> (StatusCode, Bytes) {
        let replaced = self.replaced().get(id).cloned();
        let is_seed = replaced.is_none() && id == seed::BACKUP_ID;
        let verbatim = match kind {
            Kind::Restores => seed::RESTORE_HISTORIES,
            Kind::Backups => seed::BACKUP_HISTORIES,
        };
        let mut owned: Vec<Value>;
        let entries: &[Value] = if let Some(replaced) = &replaced {
            owned = replaced
                .iter()
                .filter(|e| (kind == Kind::Backups) == e.get("backup_job_state").is_some())
                .cloned()
                .collect();
            &owned
        } else if is_seed {
            let body: Value = serde_json::from_str(verbatim).unwrap_or_default();
            owned = body["contents"].as_array().cloned().unwrap_or_default();
            &owned
        } else if let Some((def, fleet_id)) = scenario::BACKUPS
            .iter()
            .find(|b| b.id == id)
            .map(|def| (def, None))
            .or_else(|| listing::fleet_template(id, self.fleet).map(|def| (def, Some(id))))
        {
            let now = clock::now_ms();
            owned = match kind {
                Kind::Restores => scenario::entries(def, now, self.started_ms, self.cycle_ms),
                Kind::Backups => scenario::runs(def, now, self.started_ms, self.cycle_ms),
            };
            if let Some(fleet_id) = fleet_id {
                // A fleet backup runs as its template does, under its own id.
                for entry in &mut owned {
                    if let Some(backup_id) = entry.get_mut("backup_id") {
                        *backup_id = Value::from(fleet_id);
                    }
                }
            }
            &owned
        } else {
            let body = error_body(StatusCode::NOT_FOUND, &format!("Backup '{id}' not found"));
            return (StatusCode::NOT_FOUND, body);
        };
        let q = match Query::parse(kind, query) {
            Ok(q) => q,
            Err(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error_body(StatusCode::BAD_REQUEST, &message),
                )
            }
        };
        let page = query::page(entries, &q);
        if is_seed && page.contents.len() == entries.len() {
            return (StatusCode::OK, Bytes::from_static(verbatim.as_bytes()));
        }
        (
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&page).unwrap_or_default()),
        )
    }
}

impl Scp {
    /// `GET /v1/backups` or `GET /v1/backups/backup-targets`.
    async fn listing(
        &self,
        listing: Listing,
        faults: &Faults,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, DropConnection> {
        if req.method() != Method::GET {
            return Ok(with_allow(
                error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
                "GET",
            ));
        }
        let query = req.uri().query();
        let later_page = form_pairs(query.unwrap_or(""))
            .unwrap_or_default()
            .iter()
            .any(|(k, v)| k == "page" && v.trim().parse::<usize>().is_ok_and(|p| p > 0));
        let target = match listing {
            Listing::Backups if later_page => BACKUP_LIST_NEXT,
            Listing::Backups => BACKUP_LIST,
            Listing::Targets => BACKUP_TARGETS,
        };
        faults.count(target, LISTING_ID);
        if let Err((status, message)) = self.auth.check_signature(&req) {
            return Ok(error(status, message));
        }
        let body = || {
            let page = match listing {
                Listing::Backups => listing::backup_list(
                    query,
                    self.backups.get_or_init(|| listing::backups(self.fleet)),
                ),
                Listing::Targets => listing::backup_targets(query, self.fleet),
            };
            match page {
                Ok(page) => (
                    StatusCode::OK,
                    Bytes::from(serde_json::to_vec(&page).unwrap_or_default()),
                ),
                Err(message) => (
                    StatusCode::BAD_REQUEST,
                    error_body(StatusCode::BAD_REQUEST, &message),
                ),
            }
        };
        let response = match faults::action(faults.take(target, LISTING_ID)).await? {
            Action::Answer => {
                let (status, body) = body();
                full(status, body)
            }
            Action::Error(status) => error(status, reason(status)),
            Action::RateLimited(secs) => with_retry_after(
                error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
                secs,
            ),
            Action::Truncate => truncated(body().1),
            Action::Oversize => streamed(faults::padded_parts(
                r#"{"contents":[],"count":0,"padding":["#.to_string(),
                r#""end"]}"#.to_string(),
            )),
        };
        Ok(response)
    }
}

impl System for Scp {
    fn route<'a>(
        &'a self,
        faults: &'a Faults,
        req: Request<Incoming>,
        path: &'a [&'a str],
    ) -> Result<Reply<'a>, Request<Incoming>> {
        match path {
            ["v1", "backups"] => Ok(Box::pin(self.listing(Listing::Backups, faults, req))),
            ["v1", "backups", "backup-targets"] => {
                Ok(Box::pin(self.listing(Listing::Targets, faults, req)))
            }
            ["v1", "backups", id, "restore-histories"] => {
                Ok(Box::pin(self.history(Kind::Restores, faults, req, id)))
            }
            ["v1", "backups", id, "backup-histories"] => {
                Ok(Box::pin(self.history(Kind::Backups, faults, req, id)))
            }
            _ => Err(req),
        }
    }

    fn targets(&self) -> &'static [Target] {
        &[
            BACKUP,
            BACKUP_HISTORIES,
            BACKUP_LIST,
            BACKUP_LIST_NEXT,
            BACKUP_TARGETS,
        ]
    }

    /// `/_sim/scp/{backup_id}/entries`: a backup's histories (entries with
    /// `backup_job_state` are its backup runs, the others its restores), still sorted,
    /// filtered and paged on request.
    fn replaceable(&self) -> Option<Replaceable> {
        Some(Replaceable {
            system: "scp",
            key_name: "backup_id",
            items: "entries",
        })
    }

    fn replace(&self, id: &str, entries: Vec<Value>) -> Result<usize, String> {
        let count = entries.len();
        self.replaced().insert(id.to_string(), Arc::new(entries));
        Ok(count)
    }

    fn restore(&self, id: &str) -> bool {
        self.replaced().remove(id).is_some()
    }

    /// Back to the default history of every backup.
    fn reset(&self) {
        self.replaced().clear();
    }
}
