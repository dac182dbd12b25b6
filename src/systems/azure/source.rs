//! Azure Backup's source: each vault's backupJobs list over the lookback window, its
//! `nextLink` pages followed on the management endpoint only, the details of the jobs
//! whose progress, size or failure only they carry; every request with an Azure AD token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;

use super::auth::token;
use super::carry::Carry;
use super::config::{AzureConfig, AzureVault};
use super::items::VaultItems;
use super::labels::VAULT;
use super::map::{self, facts_of, job_name, record, status_of, Facts, Groups, Memory};
use super::wire::{Job, JobList, ListCount};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::PollOutput;
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{Listing, 
    count_entries, endpoint, set_bearer, Discovery, FieldParser, Source, SourceTarget,
    TokenCache,
};
use crate::status::Status;

/// A runaway `nextLink` chain stops here and fails the poll (the jobs themselves are
/// bounded by `max_jobs_per_target`): room for a first list of 9 days of a vault with 500 VMs
/// and 50 SQL databases in pages of 200 (BENCHMARKS.md).
const MAX_PAGES: usize = 1000;

/// A vault's job list names runs, many per exporter job (a SQL database's 15-minute log
/// backups are 864 runs in 9 days under one `backup_log` series). The series are bounded by
/// `max_jobs_per_target`; the runs listed, whose ids are held while the pages are folded
/// (to count each run once), by this many times that: 250,000 with the default, a few MB.
const RUNS_PER_JOB: usize = 25;

/// Polls one Azure upstream's vaults.
pub struct Azure {
    config: AzureConfig,
    http: UpstreamHttp,
    fields: FieldParser,
    token: TokenCache,
    /// Job ids seen finished and the facts read of them, per vault.
    memory: Memory,
    /// The last series of every group, and how far back the next list reaches, per vault.
    carry: Carry,
    /// The items each vault's lists gave last (`discover: true`): kept when a list fails.
    kept_items: Mutex<HashMap<(String, String), VaultItems>>,
}

#[async_trait]
impl Source for Azure {
    fn targets(&self) -> Vec<SourceTarget> {
        self.config
            .vaults
            .iter()
            .enumerate()
            .map(|(index, v)| SourceTarget {
                kind: VAULT,
                name: v.target(),
                index,
            })
            .collect()
    }

    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault> {
        let discovered;
        let vault = if target.is_discovered() {
            // `{resource_group}/{name}` as the listing gave them (neither holds a `/`).
            let Some((resource_group, name)) = target.name.split_once('/') else {
                return Err(Fault::new(
                    Outcome::UpstreamError,
                    "a discovered vault is not `resource_group/name`",
                ));
            };
            discovered = AzureVault {
                resource_group: resource_group.to_owned(),
                name: name.to_owned(),
            };
            &discovered
        } else {
            match self.config.vaults.get(target.index) {
                Some(vault) => vault,
                None => {
                    return Err(Fault::new(
                        Outcome::UpstreamError,
                        "target is no longer configured",
                    ))
                }
            }
        };
        // Every page must arrive: a half list would make jobs vanish. Each page is folded
        // into the groups as it arrives, so only the newest job of each group is held,
        // never every job of every page.
        let mut groups = Groups::default();
        let now = chrono::Utc::now();
        let listed_at = now.timestamp_millis() as f64 / 1000.0;
        let from = self.carry.window_from(
            &target.name,
            listed_at,
            self.config.lookback.as_secs_f64(),
        );
        let mut next = Some(self.list_url(vault, from, now)?);
        let mut pages = 0;
        let mut total = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Fault::new(
                    Outcome::UpstreamError,
                    format!("more than {MAX_PAGES} pages of jobs; narrow `lookback`"),
                ));
            }
            let page: JobList = self.get(url, deadline, Some(&mut total)).await?;
            for job in page.value.unwrap_or_default() {
                groups.add(&self.fields, job, |job| status_of(&self.fields, job));
            }
            self.fields.check_jobs(groups.len())?;
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                next = Some(self.next_url(&link)?);
            }
        }

        let oldest_open = groups.oldest_open;
        let groups = self.memory.finish_groups(&target.name, groups);
        let mut records = Vec::with_capacity(groups.len());
        let mut facts_now: HashMap<String, Facts> = HashMap::new();
        for group in groups {
            // The list's job decides identity, status and times; its details only add.
            let newest = group.newest;
            let seen = group.newest_seen;
            let mut details: Option<Job> = None;
            let id = job_name(&newest);
            let known = id
                .as_ref()
                .and_then(|id| self.memory.known_facts(&target.name, id));
            // Details: every poll for a running (or pending) job, whose progress only they
            // carry; once per finished job id, for its size and failure details; never for
            // a status nobody recognized. A finished job's status and times stay those of
            // the list, so each field is parsed (and counted) once per poll.
            let running = matches!(seen.status, Status::Running | Status::Pending);
            let facts = match (&id, known) {
                (Some(id), Some(facts)) if seen.status.is_terminal() => {
                    facts_now.insert(id.clone(), facts.clone());
                    facts
                }
                (Some(id), _) if running || seen.status.is_terminal() => {
                    match self
                        .get::<Job>(self.job_url(vault, id)?, deadline, None)
                        .await
                    {
                        Ok(detail) => details = Some(detail),
                        Err(fault) if fault.outcome == Outcome::NotFound => {}
                        Err(fault) => return Err(fault),
                    }
                    let facts =
                        facts_of(&self.fields, details.as_ref().unwrap_or(&newest), seen.status);
                    if seen.status.is_terminal() {
                        facts_now.insert(id.clone(), facts.clone());
                    }
                    facts
                }
                _ => facts_of(&self.fields, &newest, seen.status),
            };
            let mut facts = facts;
            // A run going on: the size is that of the newest finished run, read once.
            if !seen.status.is_terminal() {
                if let Some(finished) = group
                    .newest_finished
                    .as_ref()
                    .filter(|f| Some(*f) != id.as_ref())
                {
                    let known = match self.memory.known_facts(&target.name, finished) {
                        Some(known) => known,
                        None => match self
                            .get::<Job>(self.job_url(vault, finished)?, deadline, None)
                            .await
                        {
                            Ok(detail) => {
                                let status = status_of(&self.fields, &detail).0;
                                facts_of(&self.fields, &detail, status)
                            }
                            Err(fault) if fault.outcome == Outcome::NotFound => Facts::default(),
                            Err(fault) => return Err(fault),
                        },
                    };
                    facts.size_bytes = known.size_bytes;
                    facts_now.insert(finished.clone(), known);
                }
            }
            records.push(record(
                &self.fields,
                vault,
                &newest,
                details.as_ref(),
                seen,
                facts,
                group.ended,
                group.newest_success_end,
            ));
        }
        // Only the ids still shown are remembered: bounded by the number of series.
        self.memory.keep_facts(&target.name, facts_now);
        let records = self.carry.carry(
            &target.name,
            records,
            listed_at,
            oldest_open,
            self.config.lookback.as_secs_f64(),
        );
        Ok(PollOutput {
            jobs: records,
            summaries: Vec::new(),
        })
    }

    async fn discover(
        &self,
        deadline: Instant,
        inventory: bool,
        listing: &Listing<'_>,
    ) -> Result<Discovery, Fault> {
        Azure::discover(self, deadline, inventory, listing).await
    }
}

impl Azure {
    /// The source of `config`, its requests sent through `http`, its fields parsed by
    /// `fields` (counted under Azure's labels).
    pub fn new(config: AzureConfig, http: UpstreamHttp, fields: FieldParser) -> Self {
        Azure {
            config,
            http,
            fields: fields.with_labels(map::label),
            token: TokenCache::default(),
            memory: Memory::default(),
            carry: Carry::default(),
            kept_items: Mutex::default(),
        }
    }

    pub(super) fn config(&self) -> &AzureConfig {
        &self.config
    }

    pub(super) fn fields(&self) -> &FieldParser {
        &self.fields
    }

    /// The items each vault's lists gave last, by [`AzureVault::key`].
    pub(super) fn kept_items(&self) -> MutexGuard<'_, HashMap<(String, String), VaultItems>> {
        self.kept_items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn vault_base(&self, vault: &AzureVault, job: Option<&str>) -> Result<Url, Fault> {
        let mut segments = vec![
            "subscriptions",
            &self.config.subscription_id,
            "resourceGroups",
            &vault.resource_group,
            "providers",
            "Microsoft.RecoveryServices",
            "vaults",
            &vault.name,
            "backupJobs",
        ];
        segments.extend(job);
        endpoint(&self.config.management_url, &segments)
    }

    /// The job list of jobs started from `from` (Unix seconds) to `now`.
    fn list_url(
        &self,
        vault: &AzureVault,
        from: f64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Url, Fault> {
        let mut url = self.vault_base(vault, None)?;
        let from = chrono::DateTime::from_timestamp_millis((from * 1000.0) as i64)
            .unwrap_or(chrono::DateTime::UNIX_EPOCH);
        // The format of Azure's own examples: `startTime eq '2016-01-01 00:00:00 AM'` (UTC).
        let format = "%Y-%m-%d %I:%M:%S %p";
        let filter = format!(
            "startTime eq '{}' and endTime eq '{}'",
            from.format(format),
            now.format(format)
        );
        url.query_pairs_mut()
            .append_pair("api-version", &self.config.api_version)
            .append_pair("$filter", &filter);
        Ok(url)
    }

    fn job_url(&self, vault: &AzureVault, name: &str) -> Result<Url, Fault> {
        let mut url = self.vault_base(vault, Some(name))?;
        url.query_pairs_mut()
            .append_pair("api-version", &self.config.api_version);
        Ok(url)
    }

    /// A `nextLink` is followed only on the configured management endpoint: the bearer
    /// token must never be sent anywhere else. A link refused is the request of the next
    /// page failing, so it is counted here, once, under its outcome (`upstream_error` for
    /// another origin, `decode_error` for no URL); its reason names only the origin, never
    /// the path or query, which may carry a token.
    pub(super) fn next_url(&self, link: &str) -> Result<Url, Fault> {
        self.checked_next_url(link)
            .map_err(|fault| self.http.refused(fault))
    }

    fn checked_next_url(&self, link: &str) -> Result<Url, Fault> {
        let url =
            Url::parse(link).map_err(|e| Fault::decode(format!("nextLink is not a URL: {e}")))?;
        let base = Url::parse(&self.config.management_url)
            .map_err(|e| Fault::new(Outcome::UpstreamError, format!("bad management_url: {e}")))?;
        if url.origin() != base.origin() {
            return Err(Fault::new(
                Outcome::UpstreamError,
                format!(
                    "nextLink leaves the management endpoint ({})",
                    url.origin().ascii_serialization()
                ),
            ));
        }
        Ok(url)
    }

    /// GET with the bearer token; a 401 refreshes the token once, then it is an error.
    /// With `jobs`, the answer is a job list: its `value` entries (runs) are counted
    /// (without building them) into `jobs` first, and past [`RUNS_PER_JOB`] times
    /// `max_jobs_per_target` it is `too_large`.
    pub(super) async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        url: Url,
        deadline: Instant,
        mut jobs: Option<&mut usize>,
    ) -> Result<T, Fault> {
        match self
            .get_once(url.clone(), deadline, false, jobs.as_deref_mut())
            .await
        {
            Err(fault) if fault.outcome == Outcome::AuthError => {
                self.get_once(url, deadline, true, jobs).await
            }
            other => other,
        }
    }

    async fn get_once<T: for<'de> Deserialize<'de>>(
        &self,
        url: Url,
        deadline: Instant,
        renew: bool,
        jobs: Option<&mut usize>,
    ) -> Result<T, Fault> {
        let token = token(&self.token, &self.config, &self.http, deadline, renew).await?;
        let mut request = reqwest::Request::new(Method::GET, url);
        set_bearer(&mut request, &token)?;
        let counted = AtomicUsize::new(jobs.as_deref().copied().unwrap_or(0));
        let result = self
            .http
            .fetch(request, StatusRules::default(), deadline, |body| {
                if jobs.is_some() {
                    let total = counted.load(Ordering::Relaxed) + count_entries::<ListCount>(body);
                    let limit = self.fields.max_jobs().saturating_mul(RUNS_PER_JOB);
                    if total > limit {
                        return Err(Fault::new(
                            Outcome::TooLarge,
                            format!(
                                "{total} listed runs exceed {RUNS_PER_JOB} x max_jobs_per_target ({limit})"
                            ),
                        ));
                    }
                    counted.store(total, Ordering::Relaxed);
                }
                serde_json::from_slice::<T>(body).map_err(Fault::decode)
            })
            .await;
        if let Some(jobs) = jobs {
            *jobs = counted.into_inner();
        }
        result
    }
}
