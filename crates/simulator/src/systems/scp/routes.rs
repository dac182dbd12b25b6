//! The SCP route `GET /v1/backups/{backup_id}/restore-histories`, its fault target, and
//! the histories the admin API replaces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::auth::Auth;
use super::query::{self, Query};
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

/// The simulated SCP backup API.
pub(crate) struct Scp {
    auth: Auth,
    cycle_ms: i64,
    /// Creation time in Unix milliseconds: live histories grow from here.
    started_ms: i64,
    /// Histories replaced by the admin API, by backup id.
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

    async fn restore_histories(
        &self,
        faults: &Faults,
        req: Request<Incoming>,
        raw_id: &str,
    ) -> Result<Response<Body>, DropConnection> {
        let Some(id) = percent_decode(raw_id).filter(|id| !id.is_empty()) else {
            return Ok(error(StatusCode::BAD_REQUEST, "invalid backup id in path"));
        };
        if req.method() != Method::GET {
            return Ok(with_allow(
                error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
                "GET",
            ));
        }
        faults.count(BACKUP, &id);
        if let Err((status, message)) = self.auth.check_signature(&req) {
            return Ok(error(status, message));
        }
        let query = req.uri().query();
        let response = match faults::action(faults.take(BACKUP, &id)).await? {
            Action::Answer => {
                let (status, body) = self.histories(&id, query);
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
            Action::Truncate => truncated(self.histories(&id, query).1),
            Action::Oversize => streamed(faults::padded_parts(
                r#"{"contents":[],"count":0,"padding":["#.to_string(),
                r#""end"]}"#.to_string(),
            )),
        };
        Ok(response)
    }

    /// The normal answer for backup `id`: a replaced history, the seed's (verbatim when the
    /// page holds exactly its one entry), a live one, else 404.
    fn histories(&self, id: &str, query: Option<&str>) -> (StatusCode, Bytes) {
        let replaced = self.replaced().get(id).cloned();
        let is_seed = replaced.is_none() && id == seed::BACKUP_ID;
        let owned;
        let entries: &[Value] = if let Some(replaced) = &replaced {
            replaced
        } else if is_seed {
            let body: Value = serde_json::from_str(seed::RESTORE_HISTORIES).unwrap_or_default();
            owned = body["contents"].as_array().cloned().unwrap_or_default();
            &owned
        } else if let Some(def) = scenario::BACKUPS.iter().find(|b| b.id == id) {
            owned = scenario::entries(def, clock::now_ms(), self.started_ms, self.cycle_ms);
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
        let page = query::page(entries, &q);
        if is_seed && page.count == 1 && page.contents.len() == 1 {
            return (
                StatusCode::OK,
                Bytes::from_static(seed::RESTORE_HISTORIES.as_bytes()),
            );
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
                Ok(Box::pin(self.restore_histories(faults, req, id)))
            }
            _ => Err(req),
        }
    }

    fn targets(&self) -> &'static [Target] {
        &[BACKUP]
    }

    /// `/_sim/scp/{backup_id}/entries`: a backup's restore history, still sorted, filtered
    /// and paged on request.
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
