//! The SCP routes `GET /v1/backups/{backup_id}/restore-histories` and
//! `GET /v1/backups/{backup_id}/backup-histories`, their fault targets, and the histories
//! the admin API replaces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::auth::Auth;
use super::query::{self, Kind, Query};
use super::scenario;
use super::seed;
use super::wire::{error, error_body};
use crate::clock;
use crate::faults::{self, Action, Faults, Target};
use crate::http::{
    full, percent_decode, reason, streamed, truncated, with_allow, with_retry_after, Body,
    DropConnection,
};
use crate::system::{Replaceable, Reply, System};

/// The fault target of every restore-histories request of a backup, each page included.
const BACKUP: Target = Target::new("backup");
/// The fault target of every backup-histories request of a backup, each page included.
const BACKUP_HISTORIES: Target = Target::new("backup_histories");

/// The simulated SCP backup API.
pub(crate) struct Scp {
    auth: Auth,
    cycle_ms: i64,
    /// Creation time in Unix milliseconds: live histories grow from here.
    started_ms: i64,
    /// Histories replaced by the admin API, by backup id: entries with `backup_job_state`
    /// are the backup's runs, the others its restores.
    replaced: Mutex<HashMap<String, Arc<Vec<Value>>>>,
}

impl Scp {
    /// `keys` as in [`Options::keys`](super::Options::keys).
    pub(crate) fn new(keys: Option<(String, String)>, cycle_ms: i64) -> Scp {
        Scp {
            auth: Auth::new(keys),
            cycle_ms,
            started_ms: clock::now_ms(),
            replaced: Mutex::default(),
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
        let owned: Vec<Value>;
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
        } else if let Some(def) = scenario::BACKUPS.iter().find(|b| b.id == id) {
            let now = clock::now_ms();
            owned = match kind {
                Kind::Restores => scenario::entries(def, now, self.started_ms, self.cycle_ms),
                Kind::Backups => scenario::runs(def, now, self.started_ms, self.cycle_ms),
            };
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

impl System for Scp {
    fn route<'a>(
        &'a self,
        faults: &'a Faults,
        req: Request<Incoming>,
        path: &'a [&'a str],
    ) -> Result<Reply<'a>, Request<Incoming>> {
        match path {
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
        &[BACKUP, BACKUP_HISTORIES]
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
