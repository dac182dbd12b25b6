//! `discover: true` for ZDM: the listings (1.0.3 on) read page by page, and what they make
//! of them.
//!
//! Which targets: every server that `GET {prefix}/backups` names becomes a `server` target
//! (`/backups/monitoring/system/{name}`), whose one answer carries every backup job of the
//! server with its summary, so each backup job gets its series from one request per server
//! and none is polled twice (a `backup_job` target would repeat a job its server already
//! reports). Every recovery job of `GET {prefix}/recoveries` becomes a `recovery_job`
//! target and every replication job of `GET {prefix}/replications` (1.1 on) a
//! `replication_job` target, each by its name. A listing that answers 404 (an older
//! release without it) lists nothing; any other failure of the job listings fails the
//! discovery, and the last known set stays.
//!
//! The inventory (`GET {prefix}/servers`, `/zdms/repositories`, `/licenses`) is read only
//! when asked (the one shard that exports it); a failed inventory listing keeps what that
//! listing said last, without failing the discovery of targets.
//!
//! Each server is handed to the discovery loop with the page that first names it, so its
//! polls run while the rest is listed.
//!
//! Bounds: pages of [`PAGE_LIMIT`] items, at most [`MAX_PAGES`] of them; a listing with
//! more distinct items than `max_jobs_per_target`, or a page that brings no new item while
//! it says another follows (a server repeating a page), ends as `too_large`.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::inventory::{self, Part};
use super::labels::{RECOVERY_JOB, REPLICATION_JOB, SERVER};
use super::source::{Profile, Zdm};
use super::version::ApiVersion;
use super::wire::Pagination;
use crate::model::TargetKind;
use crate::outcome::{Fault, Outcome};
use crate::model::PollOutput;
use crate::sources::source::{Discovery, Listing, FieldParser, Source, SourceTarget};

/// Items asked per page (the vendor's default is 20; none documents a maximum).
pub(super) const PAGE_LIMIT: u32 = 100;
/// The most pages one listing follows.
pub(super) const MAX_PAGES: u32 = 1000;

/// One page of a listing: `data` is the page's items.
#[derive(Debug, Deserialize)]
struct ListPage<T> {
    success: Option<bool>,
    data: Option<Vec<T>>,
    pagination: Option<Pagination>,
    error: Option<Value>,
}

/// Decodes one page: its items and whether another follows. `success: false` is an
/// upstream error, an answer without `data` a decode error.
#[cfg(test)]
pub(super) fn decode_list<T: DeserializeOwned>(body: &[u8]) -> Result<(Vec<T>, bool), Fault> {
    decode_page(body).map(|page| (page.items, page.more))
}

/// One decoded page of a listing.
pub(super) struct Page<T> {
    pub(super) items: Vec<T>,
    /// `hasNextPage: true`.
    pub(super) more: bool,
    /// `totalPages`, when given.
    pub(super) total_pages: Option<u32>,
}

/// [`decode_list`] with `totalPages`.
pub(super) fn decode_page<T: DeserializeOwned>(body: &[u8]) -> Result<Page<T>, Fault> {
    let page: ListPage<T> = serde_json::from_slice(body).map_err(Fault::decode)?;
    if page.success == Some(false) {
        let message = page
            .error
            .as_ref()
            .and_then(Value::as_str)
            .map(|m| crate::text::truncate(m, 200))
            .unwrap_or_else(|| "no error message".to_string());
        return Err(Fault::new(
            Outcome::UpstreamError,
            format!("success=false: {message}"),
        ));
    }
    let more = page.pagination.as_ref().is_some_and(Pagination::has_next);
    let total_pages = page.pagination.as_ref().and_then(Pagination::total_pages);
    let items = page
        .data
        .ok_or_else(|| Fault::decode("listing answer has no data"))?;
    Ok(Page {
        items,
        more,
        total_pages,
    })
}

/// `id` and `name` of a server or job.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Ided {
    pub(super) id: Option<Value>,
    pub(super) name: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ItemJob {
    pub(super) info: Option<Ided>,
}

/// An item of `GET /backups`.
#[derive(Debug, Deserialize)]
pub(super) struct BackupItem {
    pub(super) system: Option<Ided>,
    pub(super) job: Option<ItemJob>,
}

/// An item of `GET /recoveries`.
#[derive(Debug, Deserialize)]
pub(super) struct RecoveryItem {
    pub(super) job: Option<ItemJob>,
}

/// An item of `GET /replications`.
#[derive(Debug, Deserialize)]
pub(super) struct ReplicationItem {
    pub(super) job: Option<ItemJob>,
}

/// A name (else the id) as text; empty and `-` are none.
pub(super) fn name_or_id(fields: &FieldParser, field: &str, ided: Option<&Ided>) -> Option<String> {
    let ided = ided?;
    let text = |v: Option<&Value>| {
        fields
            .text(field, v)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty() && t != "-")
    };
    text(ided.name.as_ref()).or_else(|| text(ided.id.as_ref()))
}

/// What the job listings say: the targets, and the servers that have a backup job.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Found {
    pub(super) targets: Vec<(TargetKind, String)>,
    /// Names and ids of the servers with at least one backup job.
    pub(super) protected: HashSet<String>,
}

/// The targets of one page of `/backups`: its servers (those not in `servers` yet also go
/// to `fresh`); returns the page's keys, one per job.
pub(super) fn backup_page(
    fields: &FieldParser,
    items: Vec<BackupItem>,
    found: &mut Found,
    servers: &mut BTreeSet<String>,
    fresh: &mut Vec<(TargetKind, String)>,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let server = name_or_id(fields, "system.name", item.system.as_ref());
        let job = name_or_id(
            fields,
            "info.name",
            item.job.as_ref().and_then(|j| j.info.as_ref()),
        );
        if let Some(system) = &item.system {
            for v in [&system.id, &system.name] {
                if let Some(t) = fields.text("system.name", v.as_ref()) {
                    found.protected.insert(t);
                }
            }
        }
        match server {
            Some(server) => {
                keys.push(format!("{server}\u{0}{}", job.unwrap_or_default()));
                if !servers.contains(&server) {
                    servers.insert(server.clone());
                    fresh.push((SERVER, server));
                }
            }
            None => fields.missing("system.name"),
        }
    }
    keys
}

/// The bounds of one listing as its pages come in, in order.
struct Taker<'a> {
    path: &'a str,
    cap: usize,
    /// The keys of the items taken so far.
    seen: HashSet<String>,
}

impl Taker<'_> {
    /// Takes page `page` (handing its items to `each`): whether another page follows. A
    /// listing past `cap` distinct items, or a page that brings no new item while it says
    /// another follows, is `too_large`.
    fn take<T>(
        &mut self,
        page: u32,
        answer: Page<T>,
        each: &mut impl FnMut(Vec<T>) -> Vec<String>,
    ) -> Result<bool, Fault> {
        let before = self.seen.len();
        for key in each(answer.items) {
            self.seen.insert(key);
            if self.seen.len() > self.cap {
                return Err(Fault::new(
                    Outcome::TooLarge,
                    format!(
                        "/{} lists more than max_jobs_per_target ({}) items",
                        self.path, self.cap
                    ),
                ));
            }
        }
        if answer.more && self.seen.len() == before {
            return Err(Fault::new(
                Outcome::TooLarge,
                format!(
                    "/{} page {page} brings no new item but says another follows",
                    self.path
                ),
            ));
        }
        Ok(answer.more)
    }
}

impl Zdm {
    /// Reads `{prefix}/{path}` page by page, handing each page's items to `each`, which
    /// returns their keys; bounded as the module says. `Ok(false)`: the listing answered
    /// 404 on its first page (this release has none).
    ///
    /// When the first page gives `totalPages`, the pages up to it are asked
    /// `at_once` at a time and taken in order (a 2,000-server listing is 21 pages);
    /// past it, while `hasNextPage` still says more, one at a time.
    async fn list<T: DeserializeOwned + Send>(
        &self,
        profile: &Profile,
        path: &str,
        query: &[(&str, &str)],
        deadline: Instant,
        at_once: usize,
        mut each: impl FnMut(Vec<T>) -> Vec<String> + Send,
    ) -> Result<bool, Fault> {
        let address = format!("{}{}/{path}", self.config.url, profile.prefix);
        let base = Url::parse(&address)
            .map_err(|e| Fault::new(Outcome::UpstreamError, format!("bad URL {address}: {e}")))?;
        let fetch = |page: u32| {
            let mut url = base.clone();
            url.query_pairs_mut()
                .extend_pairs(query.iter())
                .append_pair("page", &page.to_string())
                .append_pair("limit", &PAGE_LIMIT.to_string());
            self.get(url, deadline, &profile.login_path, &decode_page::<T>)
        };
        let mut taker = Taker {
            path,
            cap: self.fields.max_jobs(),
            seen: HashSet::new(),
        };
        let first = match fetch(1).await {
            Err(fault) if fault.outcome == Outcome::NotFound => return Ok(false),
            other => other?,
        };
        let total = first.total_pages.unwrap_or(1).clamp(1, MAX_PAGES);
        if !taker.take(1, first, &mut each)? {
            return Ok(true);
        }
        let mut pages = stream::iter(2..=total).map(fetch).buffered(at_once.max(1));
        let mut page = 1;
        while let Some(answer) = pages.next().await {
            page += 1;
            if !taker.take(page, answer?, &mut each)? {
                return Ok(true);
            }
        }
        drop(pages);
        for page in page + 1..=MAX_PAGES {
            if !taker.take(page, fetch(page).await?, &mut each)? {
                return Ok(true);
            }
        }
        Err(Fault::new(
            Outcome::TooLarge,
            format!("/{path} has more than {MAX_PAGES} pages"),
        ))
    }

    /// The job listings: every target they name (each handed to `listing` as it is
    /// found), and the servers with a backup job.
    async fn find(
        &self,
        profile: &Profile,
        deadline: Instant,
        listing: &Listing<'_>,
    ) -> Result<Found, Fault> {
        let fields = &self.fields;
        let filters = self.config.discovery.as_ref();
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(center) = filters.and_then(|f| f.center.as_deref()) {
            query.push(("center", center));
        }
        if let Some(job) = filters.and_then(|f| f.job_name.as_deref()) {
            query.push(("jobName", job));
        }
        let mut found = Found::default();
        let mut servers = BTreeSet::new();
        let at_once = listing.requests;
        let listed = self
            .list(profile, "backups", &query, deadline, at_once, |items: Vec<BackupItem>| {
                let mut fresh = Vec::new();
                let keys = backup_page(fields, items, &mut found, &mut servers, &mut fresh);
                // Past the cap the listing fails (each server has a job): none of them goes.
                if servers.len() <= fields.max_jobs() {
                    listing.found(fresh);
                }
                keys
            })
            .await?;
        if !listed {
            return Err(Fault::new(
                Outcome::NotFound,
                "the upstream has no /backups listing (ZDM 1.0.3 on lists)",
            ));
        }
        found
            .targets
            .extend(servers.into_iter().map(|s| (SERVER, s)));

        let mut recoveries = BTreeSet::new();
        self.list(profile, "recoveries", &query, deadline, at_once, |items: Vec<RecoveryItem>| {
            let mut keys = Vec::with_capacity(items.len());
            for item in items {
                let info = item.job.as_ref().and_then(|j| j.info.as_ref());
                match name_or_id(fields, "info.name", info) {
                    Some(name) => {
                        keys.push(name.clone());
                        recoveries.insert(name);
                    }
                    None => fields.missing("info.name"),
                }
            }
            keys
        })
        .await?;
        let recoveries: Vec<_> = recoveries.into_iter().map(|r| (RECOVERY_JOB, r)).collect();
        listing.found(recoveries.clone());
        found.targets.extend(recoveries);

        if profile.version.is_none_or(ApiVersion::has_replication) {
            let mut replications = BTreeSet::new();
            self.list(profile, "replications", &query, deadline, at_once, |items: Vec<ReplicationItem>| {
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    let info = item.job.as_ref().and_then(|j| j.info.as_ref());
                    match name_or_id(fields, "info.name", info) {
                        Some(name) => {
                            keys.push(name.clone());
                            replications.insert(name);
                        }
                        None => fields.missing("info.name"),
                    }
                }
                keys
            })
            .await?;
            let replications: Vec<_> = replications
                .into_iter()
                .map(|r| (REPLICATION_JOB, r))
                .collect();
            listing.found(replications.clone());
            found.targets.extend(replications);
        }
        Ok(found)
    }

    /// One inventory listing (`part`): its series, or what it said last when it fails now
    /// (with the fault, which the discovery loop logs and counts).
    async fn inventory_part(
        &self,
        part: Part,
        profile: &Profile,
        deadline: Instant,
        at_once: usize,
        found: &Found,
    ) -> (Vec<crate::inventory::InventorySeries>, Option<Fault>) {
        let fields = &self.fields;
        let filters = self.config.discovery.as_ref();
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(center) = filters.and_then(|f| f.center.as_deref()) {
            query.push(("center", center));
        }
        let mut series = Vec::new();
        let mut names = inventory::Names::default();
        let result = match part {
            Part::Servers => {
                query.push(("detail", "true"));
                let export_protected = filters.is_none_or(|f| f.job_name.is_none());
                self.list(profile, part.path(), &query, deadline, at_once, |items| {
                    inventory::servers(fields, items, &found.protected, export_protected, &mut names, &mut series)
                })
                .await
            }
            Part::Repositories => {
                self.list(profile, part.path(), &query, deadline, at_once, |items| {
                    inventory::repositories(fields, items, &mut names, &mut series)
                })
                .await
            }
            Part::Licenses => {
                self.list(profile, part.path(), &query, deadline, at_once, |items| {
                    inventory::licenses(fields, items, &mut names, &mut series)
                })
                .await
            }
        };
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fault = match result {
            Ok(true) => {
                kept.set(part, series);
                None
            }
            // This release has no such listing: nothing to export.
            Ok(false) => {
                kept.set(part, Vec::new());
                None
            }
            Err(mut fault) => {
                fault.reason = format!("/{}: {}", part.path(), fault.reason);
                Some(fault)
            }
        };
        (kept.get(part), fault)
    }
}

/// ZDM's source with its listings: polls as [`Zdm`] does, and lists (`discover: true`).
pub struct Listed(pub Zdm);

#[async_trait::async_trait]
impl Source for Listed {
    fn targets(&self) -> Vec<SourceTarget> {
        self.0.targets()
    }

    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault> {
        self.0.poll(target, deadline).await
    }

    async fn discover(
        &self,
        deadline: Instant,
        inventory: bool,
        listing: &Listing<'_>,
    ) -> Result<Discovery, Fault> {
        discover(&self.0, deadline, inventory, listing).await
    }
}

/// [`Source::discover`] of ZDM.
async fn discover(
    zdm: &Zdm,
    deadline: Instant,
    inventory: bool,
    listing: &Listing<'_>,
) -> Result<Discovery, Fault> {
    let profile = zdm.profile(deadline).await?;
    if profile.version == Some(ApiVersion::V0_2) {
        return Err(Fault::new(
            Outcome::UpstreamError,
            "ZDM 0.2 has no listings (they came with 1.0.3)",
        ));
    }
    let found = zdm.find(&profile, deadline, listing).await?;
    let mut series = Vec::new();
    let mut partial = Vec::new();
    if inventory {
        for part in Part::ALL {
            let (part_series, fault) = zdm
                .inventory_part(part, &profile, deadline, listing.requests, &found)
                .await;
            series.extend(part_series);
            partial.extend(fault);
        }
    }
    Ok(Discovery {
        targets: found.targets,
        inventory: series,
        partial,
    })
}
