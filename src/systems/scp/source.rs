//! SCP's source: each configured backup's restore histories and backup histories, newest
//! first, paged back until the entries are older than what the previous poll saw (and
//! every entry it saw running is found again), each page signed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth::sign_request;
use super::config::ScpConfig;
use super::config::ScpBackup;
use super::map::{self, order_key, Before, Histories};
use super::wire::{Entry, Page, Runs};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::PollOutput;
use crate::outcome::{Fault, Outcome};
use crate::inventory::InventorySeries;
use crate::sources::source::{Listing, endpoint, Discovery, FieldParser, Source, SourceTarget};

/// Entries per page; the seed's default.
const PAGE_SIZE: usize = 20;
/// How far back one poll may page; beyond this, older entries are left unseen.
const MAX_PAGES: usize = 10;

/// Polls one SCP upstream's backups.
pub struct Scp {
    config: ScpConfig,
    http: UpstreamHttp,
    fields: FieldParser,
    histories: Histories,
    /// The names of the backups the last listing found (`discover: true`), by id.
    listed: Mutex<HashMap<String, String>>,
    /// The coverage the backup targets gave last: kept when that list fails.
    kept_coverage: Mutex<Vec<InventorySeries>>,
}

#[async_trait]
impl Source for Scp {
    fn targets(&self) -> Vec<SourceTarget> {
        [Runs::Restores, Runs::Backups]
            .into_iter()
            .flat_map(|runs| {
                self.backups(runs)
                    .iter()
                    .enumerate()
                    .map(move |(index, b)| SourceTarget {
                        kind: runs.kind(),
                        name: b.id.clone(),
                        index,
                    })
            })
            .collect()
    }

    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault> {
        let runs = if target.kind == Runs::Backups.kind() {
            Runs::Backups
        } else {
            Runs::Restores
        };
        let discovered;
        let backup = if target.is_discovered() {
            discovered = ScpBackup {
                id: target.name.clone(),
                name: lock(&self.listed).get(&target.name).cloned(),
            };
            &discovered
        } else {
            match self.backups(runs).get(target.index) {
                Some(backup) => backup,
                None => {
                    return Err(Fault::new(
                        Outcome::UpstreamError,
                        "target is no longer configured",
                    ))
                }
            }
        };
        let Before {
            baseline,
            newest: newest_before,
            open: open_before,
        } = self.histories.before(runs, &backup.id);

        let mut entries: Vec<Entry> = Vec::new();
        for page in 0..MAX_PAGES {
            let url = self.url(runs, &backup.id, page)?;
            let Page { contents, count } = self.get(url, deadline).await?;
            let contents = contents.unwrap_or_default();
            let total = self.fields.count("count", count.as_ref());
            let fetched = contents.len();
            entries.extend(contents);
            let more_pages =
                fetched == PAGE_SIZE && total.is_none_or(|t| ((page + 1) * PAGE_SIZE) < t as usize);
            if !more_pages || !baseline {
                // The first poll needs only the newest entry: older finished runs are
                // not counted, so a restart adds nothing.
                break;
            }
            // Read quietly: every entry's fields are parsed (and counted) once, in `map`.
            let oldest_here = entries.last().and_then(|e| {
                let time = |v: Option<&Value>| {
                    v.and_then(Value::as_str)
                        .and_then(|t| crate::parse::parse_time(t, self.fields.timezone()).ok())
                        .flatten()
                };
                order_key(time(runs.start(e).1), time(runs.created(e))).0
            });
            let all_new = match (oldest_here, newest_before) {
                (Some(oldest), Some(newest)) => oldest > newest,
                _ => false,
            };
            let open_missing = open_before
                .iter()
                .any(|key| !entries.iter().any(|e| &runs.identity(e) == key));
            if !all_new && !open_missing {
                break;
            }
        }
        Ok(self
            .histories
            .map(&self.fields, runs, backup, entries, baseline))
    }

    async fn discover(
        &self,
        deadline: Instant,
        inventory: bool,
        listing: &Listing<'_>,
    ) -> Result<Discovery, Fault> {
        Scp::discover(self, deadline, inventory, listing).await
    }
}

/// Locks `mutex`; a panic while it was held leaves at worst stale names or coverage.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scp {
    /// The source of `config`, its requests sent through `http`, its fields parsed by
    /// `fields` (counted under SCP's labels).
    pub fn new(config: ScpConfig, http: UpstreamHttp, fields: FieldParser) -> Self {
        Scp {
            config,
            http,
            fields: fields.with_labels(map::label),
            histories: Histories::default(),
            listed: Mutex::default(),
            kept_coverage: Mutex::default(),
        }
    }

    pub(super) fn config(&self) -> &ScpConfig {
        &self.config
    }

    pub(super) fn fields(&self) -> &FieldParser {
        &self.fields
    }

    /// The base URL.
    pub(super) fn base(&self) -> &str {
        &self.config.url
    }

    /// The coverage kept from the last backup target list.
    pub(super) fn kept_coverage(&self) -> MutexGuard<'_, Vec<InventorySeries>> {
        lock(&self.kept_coverage)
    }

    /// The names of the backups the listing found, by id (those without a name are left
    /// out: their id is their `job_name`).
    pub(super) fn set_listed(&self, names: HashMap<String, String>) {
        *lock(&self.listed) = names;
    }

    /// The backups whose history of `runs` is polled.
    fn backups(&self, runs: Runs) -> &[ScpBackup] {
        match runs {
            Runs::Restores => &self.config.backups,
            Runs::Backups => &self.config.backup_histories,
        }
    }

    /// The request URL of one page of a backup's history of `runs`.
    pub(super) fn url(&self, runs: Runs, backup_id: &str, page: usize) -> Result<Url, Fault> {
        let mut url = endpoint(
            &self.config.url,
            &["v1", "backups", backup_id, runs.path()],
        )?;
        url.query_pairs_mut()
            .append_pair("page", &page.to_string())
            .append_pair("size", &PAGE_SIZE.to_string())
            .append_pair("sort", runs.sort());
        Ok(url)
    }

    async fn get(&self, url: Url, deadline: Instant) -> Result<Page, Fault> {
        self.get_json(url, deadline).await
    }

    /// A signed GET of `url`, its answer decoded as `T`.
    pub(super) async fn get_json<T: DeserializeOwned + Send>(
        &self,
        url: Url,
        deadline: Instant,
    ) -> Result<T, Fault> {
        let mut request = reqwest::Request::new(Method::GET, url);
        sign_request(&mut request, &self.config)?;
        request
            .headers_mut()
            .insert(ACCEPT, HeaderValue::from_static("application/json"));
        self.http
            .fetch(request, StatusRules::default(), deadline, |body| {
                serde_json::from_slice::<T>(body).map_err(Fault::decode)
            })
            .await
    }
}
