//! Azure Backup: Azure AD token cache (client credentials, managed identity or workload
//! identity), the backupJobs list with its `nextLink` pages, job details for progress,
//! mapping.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::source::{
    count_entries, endpoint, set_bearer, Entries, FieldParser, IssuedToken, Source, SourceTarget,
    TokenCache, MAX_TOKEN_LIFETIME,
};
use crate::config::{
    read_capped, AzureAuth, AzureConfig, AzureVault, Secret, MAX_SECRET_FILE_BYTES,
};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::{Failure, JobKey, JobRecord, PollOutput, System, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::parse;
use crate::status::Status;

/// The ARM resource tokens are requested for (the contract's fixed scope).
const RESOURCE: &str = "https://management.azure.com/";
const SCOPE: &str = "https://management.azure.com/.default";
const IMDS_API_VERSION: &str = "2018-02-01";
/// The `client_assertion_type` of a federated (workload identity) token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// A runaway `nextLink` chain stops here and fails the poll.
const MAX_PAGES: usize = 200;

/// The token endpoints answer 400 for a bad client id and 401 for a bad secret.
const TOKEN_RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: false,
    bad_request_is_auth_error: true,
};

pub struct Azure {
    config: AzureConfig,
    http: UpstreamHttp,
    fields: FieldParser,
    token: TokenCache,
    /// Per vault: job ids seen finished; no entry until the vault's first successful poll.
    finished: Mutex<BTreeMap<String, HashSet<String>>>,
    /// Per vault: what the details of the finished jobs it shows said, by job id.
    details: Mutex<HashMap<String, HashMap<String, Facts>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobList {
    value: Option<Vec<Job>>,
    next_link: Option<String>,
}

/// A job list page as counted before it is built.
#[derive(Deserialize)]
struct ListCount {
    value: Option<Entries>,
}

impl From<ListCount> for usize {
    fn from(c: ListCount) -> usize {
        c.value.map_or(0, |e| e.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
struct Job {
    name: Option<Value>,
    properties: Option<JobProperties>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobProperties {
    job_type: Option<Value>,
    duration: Option<Value>,
    entity_friendly_name: Option<Value>,
    operation: Option<Value>,
    status: Option<Value>,
    start_time: Option<Value>,
    end_time: Option<Value>,
    extended_info: Option<ExtendedInfo>,
    error_details: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedInfo {
    progress_percentage: Option<Value>,
    dynamic_error_message: Option<Value>,
    tasks_list: Option<Value>,
    property_bag: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<Value>,
}

#[async_trait]
impl Source for Azure {
    fn targets(&self) -> Vec<SourceTarget> {
        self.config
            .vaults
            .iter()
            .enumerate()
            .map(|(index, v)| SourceTarget {
                kind: TargetKind::Vault,
                name: format!("{}/{}", v.resource_group, v.name),
                index,
            })
            .collect()
    }

    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault> {
        let Some(vault) = self.config.vaults.get(target.index) else {
            return Err(Fault::new(
                Outcome::UpstreamError,
                "target is no longer configured",
            ));
        };
        // Every page must arrive: a half list would make jobs vanish. Each page is folded
        // into the groups as it arrives, so only the newest job of each group is held,
        // never every job of every page.
        let mut groups = Groups::default();
        let mut next = Some(self.list_url(vault)?);
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
                groups.add(&self.fields, job, |job| self.status_of(job));
            }
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                next = Some(self.next_url(&link)?);
            }
        }

        let groups = self.finish_groups(&target.name, groups);
        let mut records = Vec::with_capacity(groups.len());
        let mut facts_now: HashMap<String, Facts> = HashMap::new();
        for group in groups {
            let mut newest = group.newest;
            let mut seen = group.newest_seen;
            let id = job_name(&newest);
            let known = id
                .as_ref()
                .and_then(|id| self.known_facts(&target.name, id));
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
                        Ok(detail) => {
                            newest = detail;
                            if running {
                                seen = self.parse_again(&newest);
                            }
                        }
                        Err(fault) if fault.outcome == Outcome::NotFound => {}
                        Err(fault) => return Err(fault),
                    }
                    let facts = self.facts(&newest, seen.status);
                    if seen.status.is_terminal() {
                        facts_now.insert(id.clone(), facts.clone());
                    }
                    facts
                }
                _ => self.facts(&newest, seen.status),
            };
            let mut facts = facts;
            // A run going on: the size is that of the newest finished run, read once.
            if !seen.status.is_terminal() {
                if let Some(finished) = group
                    .newest_finished
                    .as_ref()
                    .filter(|f| Some(*f) != id.as_ref())
                {
                    let known = match self.known_facts(&target.name, finished) {
                        Some(known) => known,
                        None => match self
                            .get::<Job>(self.job_url(vault, finished)?, deadline, None)
                            .await
                        {
                            Ok(detail) => {
                                let status = self.status_of(&detail).0;
                                self.facts(&detail, status)
                            }
                            Err(fault) if fault.outcome == Outcome::NotFound => Facts::default(),
                            Err(fault) => return Err(fault),
                        },
                    };
                    facts.size_bytes = known.size_bytes;
                    facts_now.insert(finished.clone(), known);
                }
            }
            records.push(self.record(
                vault,
                &newest,
                seen,
                facts,
                group.ended,
                group.newest_success_end,
            ));
        }
        // Only the ids still shown are remembered: bounded by the number of series.
        self.lock_details().insert(target.name.clone(), facts_now);
        Ok(PollOutput {
            jobs: records,
            summaries: Vec::new(),
        })
    }
}

/// The jobs of a vault's list folded page by page into one accumulator per
/// (entity, operation): only the newest job of each is kept whole.
#[derive(Default)]
struct Groups {
    by_key: BTreeMap<(String, String), Accumulated>,
}

struct Accumulated {
    newest: Job,
    /// The newest job's fields, parsed once when it was folded in.
    newest_seen: Parsed,
    newest_start: Option<f64>,
    /// Id and status of every finished job of the group, to count runs by id.
    terminal: Vec<(String, Status)>,
    newest_success_end: Option<f64>,
    /// Id and start of the newest finished job: its size stays while a new run goes on.
    newest_finished: Option<(String, Option<f64>)>,
}

impl Groups {
    fn add(
        &mut self,
        fields: &FieldParser,
        job: Job,
        status_of: impl Fn(&Job) -> (Status, String),
    ) {
        let props = job.properties.as_ref();
        let Some(entity) = fields
            .text(
                "entityFriendlyName",
                props.and_then(|p| p.entity_friendly_name.as_ref()),
            )
            .filter(|e| !e.is_empty())
        else {
            fields.missing("entityFriendlyName");
            return;
        };
        let operation = fields
            .text("operation", props.and_then(|p| p.operation.as_ref()))
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "Unknown".to_string());
        let start = fields.time("startTime", props.and_then(|p| p.start_time.as_ref()));
        let end = fields.time("endTime", props.and_then(|p| p.end_time.as_ref()));
        let (status, raw_status) = status_of(&job);
        let seen = Parsed {
            status,
            raw_status,
            start,
            end,
        };
        let success_end = if matches!(status, Status::Completed | Status::CompletedWithWarnings) {
            end
        } else {
            None
        };
        let terminal = status
            .is_terminal()
            .then(|| job_name(&job))
            .flatten()
            .map(|name| (name, status));
        match self.by_key.entry((entity, operation)) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Accumulated {
                    newest: job,
                    newest_seen: seen,
                    newest_start: start,
                    newest_finished: terminal.as_ref().map(|(id, _)| (id.clone(), start)),
                    terminal: terminal.into_iter().collect(),
                    newest_success_end: success_end,
                });
            }
            std::collections::btree_map::Entry::Occupied(mut slot) => {
                let acc = slot.get_mut();
                if let Some((id, _)) = &terminal {
                    let newer_finished = match (&acc.newest_finished, start) {
                        (None, _) => true,
                        (Some((_, Some(b))), Some(a)) => a > *b,
                        (Some((_, None)), Some(_)) => true,
                        _ => false,
                    };
                    if newer_finished {
                        acc.newest_finished = Some((id.clone(), start));
                    }
                }
                acc.terminal.extend(terminal);
                if let Some(end) = success_end {
                    acc.newest_success_end =
                        Some(acc.newest_success_end.map_or(end, |n| n.max(end)));
                }
                // Newest by start time; a job without a start never displaces one with.
                let newer = match (start, acc.newest_start) {
                    (Some(a), Some(b)) => a > b,
                    (Some(_), None) => true,
                    _ => false,
                };
                if newer {
                    acc.newest = job;
                    acc.newest_seen = seen;
                    acc.newest_start = start;
                }
            }
        }
    }
}

/// A job's fields that are parsed (and whose parse errors are counted) once per poll.
#[derive(Debug, Clone)]
struct Parsed {
    status: Status,
    raw_status: String,
    start: Option<f64>,
    end: Option<f64>,
}

/// What a finished job's details say; read once per finished job id.
#[derive(Debug, Clone, Default)]
struct Facts {
    size_bytes: Option<f64>,
    failure: Option<Failure>,
}

/// One job series: the newest job of an (entity, operation) and what ended in the group.
struct Group {
    newest: Job,
    newest_seen: Parsed,
    /// The id of the newest finished job, whose size is exported while a new run goes on.
    newest_finished: Option<String>,
    ended: Vec<Status>,
    newest_success_end: Option<f64>,
}

fn job_name(job: &Job) -> Option<String> {
    match &job.name {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `ConfigureBackup` -> `configure_backup`.
pub fn snake_case(operation: &str) -> String {
    let mut out = String::with_capacity(operation.len() + 4);
    let mut prev_lower = false;
    for c in operation.chars() {
        if c.is_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else if c == ' ' || c == '-' {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            prev_lower = false;
        } else {
            out.push(c);
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

impl Azure {
    pub fn new(config: AzureConfig, http: UpstreamHttp, fields: FieldParser) -> Self {
        Azure {
            config,
            http,
            fields,
            token: TokenCache::default(),
            finished: Mutex::new(BTreeMap::new()),
            details: Mutex::new(HashMap::new()),
        }
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

    fn list_url(&self, vault: &AzureVault) -> Result<Url, Fault> {
        let mut url = self.vault_base(vault, None)?;
        let now = chrono::Utc::now();
        let from = now
            - chrono::Duration::from_std(self.config.lookback).unwrap_or(chrono::Duration::days(1));
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
    /// token must never be sent anywhere else.
    fn next_url(&self, link: &str) -> Result<Url, Fault> {
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
    /// With `jobs`, the answer is a job list: its `value` entries are counted (without
    /// building them) into `jobs` first, and past `max_jobs_per_target` it is `too_large`.
    async fn get<T: for<'de> Deserialize<'de>>(
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
        let token = self
            .token
            .get(renew, || async {
                let request = self.token_request()?;
                self.http
                    .fetch(request, TOKEN_RULES, deadline, parse_token)
                    .await
            })
            .await?;
        let mut request = reqwest::Request::new(Method::GET, url);
        set_bearer(&mut request, &token)?;
        let counted = AtomicUsize::new(jobs.as_deref().copied().unwrap_or(0));
        let result = self
            .http
            .fetch(request, StatusRules::default(), deadline, |body| {
                if jobs.is_some() {
                    let total = counted.load(Ordering::Relaxed) + count_entries::<ListCount>(body);
                    self.fields.check_jobs(total)?;
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

    fn token_request(&self) -> Result<reqwest::Request, Fault> {
        match &self.config.auth {
            AzureAuth::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => {
                let url = endpoint(
                    &self.config.authority_url,
                    &[tenant_id, "oauth2", "v2.0", "token"],
                )?;
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("client_secret", secret.expose())
                    .append_pair("scope", SCOPE)
                    .finish();
                Ok(form_request(url, body))
            }
            AzureAuth::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                let assertion = federated_token(token_file)?;
                let url = endpoint(
                    &self.config.authority_url,
                    &[tenant_id, "oauth2", "v2.0", "token"],
                )?;
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "client_credentials")
                    .append_pair("client_id", client_id)
                    .append_pair("scope", SCOPE)
                    .append_pair("client_assertion_type", JWT_BEARER)
                    .append_pair("client_assertion", assertion.expose())
                    .finish();
                Ok(form_request(url, body))
            }
            AzureAuth::ManagedIdentity { client_id } => {
                let mut url = endpoint(
                    &self.config.authority_url,
                    &["metadata", "identity", "oauth2", "token"],
                )?;
                url.query_pairs_mut()
                    .append_pair("api-version", IMDS_API_VERSION)
                    .append_pair("resource", RESOURCE);
                if let Some(id) = client_id {
                    url.query_pairs_mut().append_pair("client_id", id);
                }
                let mut request = reqwest::Request::new(Method::GET, url);
                request
                    .headers_mut()
                    .insert("Metadata", HeaderValue::from_static("true"));
                Ok(request)
            }
        }
    }

    fn status_of(&self, job: &Job) -> (Status, String) {
        let props = job.properties.as_ref();
        self.fields
            .status("status", props.and_then(|p| p.status.as_ref()))
    }

    /// Turns the folded groups into job series. Jobs seen finished for the first time count
    /// as ended runs, except on the vault's first poll.
    fn finish_groups(&self, vault_key: &str, groups: Groups) -> Vec<Group> {
        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        // No entry for the vault yet: this is its first poll; remember, count nothing.
        let baseline = finished.contains_key(vault_key);
        let known = finished.entry(vault_key.to_string()).or_default();
        let mut out = Vec::with_capacity(groups.by_key.len());
        let mut seen_now: HashSet<String> = HashSet::new();
        for (_, acc) in groups.by_key {
            let mut ended = Vec::new();
            for (name, status) in acc.terminal {
                if !known.contains(&name) && baseline {
                    ended.push(status);
                }
                seen_now.insert(name);
            }
            out.push(Group {
                newest: acc.newest,
                newest_seen: acc.newest_seen,
                newest_finished: acc.newest_finished.map(|(id, _)| id),
                ended,
                newest_success_end: acc.newest_success_end,
            });
        }
        // Jobs leave the list when they fall out of the lookback window; so may their ids.
        *known = seen_now;
        out
    }

    fn record(
        &self,
        vault: &AzureVault,
        job: &Job,
        seen: Parsed,
        facts: Facts,
        ended: Vec<Status>,
        newest_success_end: Option<f64>,
    ) -> JobRecord {
        let fields = &self.fields;
        let props = job.properties.clone().unwrap_or_default();
        let entity = fields
            .text("entityFriendlyName", props.entity_friendly_name.as_ref())
            .unwrap_or_default();
        let operation = fields
            .text("operation", props.operation.as_ref())
            .map(|o| snake_case(&o))
            .filter(|o| !o.is_empty())
            .unwrap_or_else(|| "unknown".to_string());
        let Parsed {
            status,
            raw_status,
            start,
            end,
        } = seen;
        let extended = props.extended_info.clone().unwrap_or_default();
        let mut info = vec![("vault", vault.name.clone())];
        if let Some(job_type) = fields
            .text("jobType", props.job_type.as_ref())
            .filter(|t| !t.is_empty())
        {
            info.push(("job_type", job_type));
        }
        // No `job_id`: it changes with every run, and an info series per run is churn
        // (interface 5.1).
        JobRecord {
            key: Arc::new(JobKey {
                system: System::Azure,
                upstream: fields.upstream().clone(),
                operation,
                job_name: entity.clone(),
                server: entity,
                volume: String::new(),
            }),
            status,
            raw_status,
            progress: fields.percent(
                "extendedInfo.progressPercentage",
                extended.progress_percentage.as_ref(),
            ),
            elapsed_seconds: fields.duration("duration", props.duration.as_ref()),
            start_time: start,
            end_time: end,
            message: fields
                .text(
                    "extendedInfo.dynamicErrorMessage",
                    extended.dynamic_error_message.as_ref(),
                )
                .filter(|m| !m.is_empty()),
            info,
            ended_runs: Some(ended),
            newest_success_end,
            failure: facts.failure,
            size_bytes: facts.size_bytes,
        }
    }

    /// A job's status and times parsed from a fresh answer (its details).
    fn parse_again(&self, job: &Job) -> Parsed {
        let props = job.properties.as_ref();
        let (status, raw_status) = self.status_of(job);
        Parsed {
            status,
            raw_status,
            start: self
                .fields
                .time("startTime", props.and_then(|p| p.start_time.as_ref())),
            end: self
                .fields
                .time("endTime", props.and_then(|p| p.end_time.as_ref())),
        }
    }

    fn lock_details(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Facts>>> {
        self.details.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The facts already read for a finished job id of this vault.
    fn known_facts(&self, vault_key: &str, id: &str) -> Option<Facts> {
        self.lock_details().get(vault_key)?.get(id).cloned()
    }

    /// Size and failure details of a job (from its details answer when read).
    fn facts(&self, job: &Job, status: Status) -> Facts {
        let props = job.properties.as_ref();
        let extended = props.and_then(|p| p.extended_info.as_ref());
        let size_bytes = extended
            .and_then(|e| e.property_bag.as_ref())
            .and_then(|bag| bag.get("Backup Size"))
            .and_then(|size| self.fields.text("Backup Size", Some(size)))
            .and_then(|size| match parse::parse_size(&size) {
                Ok(bytes) => bytes,
                Err(e) => {
                    self.fields.invalid("Backup Size", &e);
                    None
                }
            });
        let failure = (status == Status::Failed).then(|| failure_of(job));
        Facts {
            size_bytes,
            failure,
        }
    }
}

/// Why a job failed: `errorDetails[0].errorString` and `errorCode`, else the `taskId` of
/// the first failed task (interface 5.1).
fn failure_of(job: &Job) -> Failure {
    let props = job.properties.as_ref();
    let first_error = props
        .and_then(|p| p.error_details.as_ref())
        .and_then(|d| d.as_array())
        .and_then(|d| d.first());
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let code = text(first_error.and_then(|e| e.get("errorCode")));
    let mut reason = text(first_error.and_then(|e| e.get("errorString")));
    if reason.trim().is_empty() {
        reason = props
            .and_then(|p| p.extended_info.as_ref())
            .and_then(|e| e.tasks_list.as_ref())
            .and_then(|t| t.as_array())
            .and_then(|tasks| {
                tasks.iter().find(|t| {
                    t.get("status")
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.eq_ignore_ascii_case("failed"))
                })
            })
            .map(|t| text(t.get("taskId")))
            .unwrap_or_default();
    }
    Failure::new(&reason, &code)
}

/// A form POST to a token endpoint.
fn form_request(url: Url, body: String) -> reqwest::Request {
    let mut request = reqwest::Request::new(Method::POST, url);
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    *request.body_mut() = Some(body.into());
    request
}

/// The federated token, read again for every token request (the kubelet rotates the file),
/// with the cap of secret files. Its content never goes into a message.
fn federated_token(file: &std::path::Path) -> Result<Secret, Fault> {
    let text = read_capped(file, MAX_SECRET_FILE_BYTES).map_err(|e| {
        Fault::new(
            Outcome::AuthError,
            format!("cannot read federated token file {}: {e}", file.display()),
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Fault::new(
            Outcome::AuthError,
            format!("federated token file {} is empty", file.display()),
        ));
    }
    Ok(Secret::new(token.to_owned()))
}

/// Reads `access_token` and `expires_in` (a number from Azure AD, a string from IMDS).
fn parse_token(body: &[u8]) -> Result<IssuedToken, Fault> {
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|e| Fault::decode(format!("token answer: {e}")))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::new(Outcome::AuthError, "token answer has no access_token"))?;
    let expires_in = match answer.expires_in {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .unwrap_or(3600);
    let lifetime = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME);
    Ok(IssuedToken::renewed_after(
        Secret::new(token),
        renew_after(lifetime),
    ))
}

/// Cached until five minutes before expiry; a short-lived token for half its life.
fn renew_after(lifetime: Duration) -> Duration {
    if lifetime > RENEW_BEFORE * 2 {
        lifetime - RENEW_BEFORE
    } else {
        lifetime / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_become_snake_case() {
        for (raw, want) in [
            ("Backup", "backup"),
            ("Restore", "restore"),
            ("ConfigureBackup", "configure_backup"),
            ("DeleteBackupData", "delete_backup_data"),
            ("CrossRegionRestore", "cross_region_restore"),
            ("Disable backup", "disable_backup"),
            ("already_snake", "already_snake"),
        ] {
            assert_eq!(snake_case(raw), want, "{raw}");
        }
    }

    #[test]
    fn tokens_renew_five_minutes_early_or_at_half_a_short_life() {
        assert_eq!(
            renew_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            renew_after(Duration::from_secs(300)),
            Duration::from_secs(150)
        );
    }

    #[test]
    fn token_answers_from_azure_ad_and_imds() {
        let ad = parse_token(br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#)
            .unwrap();
        assert_eq!(ad.token.expose(), "abc");
        let imds =
            parse_token(br#"{"access_token":"xyz","expires_in":"3599","token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!(imds.token.expose(), "xyz");
        let none = parse_token(br#"{"token_type":"Bearer"}"#).err().unwrap();
        assert_eq!(none.outcome, Outcome::AuthError);
        assert_eq!(
            parse_token(b"<html>").err().unwrap().outcome,
            Outcome::DecodeError
        );
    }

    mod fuzz {
        //! Arbitrary bytes and mutated seed-shaped answers through the job list, job details
        //! and token decoders and the mapping: never a panic, what is kept stays in range, a
        //! `nextLink` is only ever followed on the management origin, token lifetimes are
        //! clamped.
        use super::*;
        use crate::sources::fuzzing;
        use crate::status::StatusMap;
        use crate::telemetry::Telemetry;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        const LIST: &str = r#"{"value":[{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/microsoft.recoveryservices/vaults/abdemovault/backupJobs/7ddead57-bcb9-4269-ac31-6a1b57588700","name":"7ddead57-bcb9-4269-ac31-6a1b57588700","type":"Microsoft.RecoveryServices/vaults/backupJobs","properties":{"jobType":"AzureIaaSVMJob","duration":"00:20:23.0896697","actionsInfo":[1],"entityFriendlyName":"uttestvmub1","operation":"Backup","status":"Completed","startTime":"2018-05-21T08:35:40.9488967Z","endTime":"2018-05-21T08:56:04.0385664Z"}},{"name":"0b1c","properties":{"jobType":"AzureIaaSVMJob","duration":"PT1H2M","entityFriendlyName":"uttestvmub1","operation":"ConfigureBackup","status":"InProgress","startTime":"2018-05-22T08:35:40Z","extendedInfo":{"progressPercentage":45.5,"dynamicErrorMessage":"-"}}}],"nextLink":"http://127.0.0.1:9/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupJobs?$skiptoken=2"}"#;
        const DETAILS: &str = r#"{"name":"0b1c","properties":{"jobType":"AzureIaaSVMJob","duration":"1.02:03:04","entityFriendlyName":"가상머신","operation":"Restore","status":"InProgress","startTime":"2018-05-22T08:35:40Z","endTime":null,"extendedInfo":{"progressPercentage":"45","dynamicErrorMessage":"slow disk"}}}"#;
        const TOKEN: &str = r#"{"token_type":"Bearer","expires_in":"3599","access_token":"abc"}"#;

        /// Object keys the mutations use: this system's field names.
        const KEYS: &[&str] = &[
            "value",
            "nextLink",
            "name",
            "properties",
            "jobType",
            "duration",
            "entityFriendlyName",
            "operation",
            "status",
            "startTime",
            "endTime",
            "extendedInfo",
            "progressPercentage",
            "dynamicErrorMessage",
            "access_token",
            "expires_in",
        ];

        fn vault() -> AzureVault {
            AzureVault {
                resource_group: "rg".to_string(),
                name: "v".to_string(),
            }
        }

        fn azure() -> Azure {
            static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
            let client = CLIENT
                .get_or_init(|| crate::http::build_client().unwrap())
                .clone();
            let telemetry = Telemetry::new();
            let name: Arc<str> = Arc::from("u");
            let limits = crate::http::Limits {
                timeout: Duration::from_secs(1),
                max_body_bytes: 1 << 20,
            };
            let http = UpstreamHttp::new(client, "azure", name.clone(), limits, telemetry.clone());
            let fields = FieldParser::new(
                System::Azure,
                name,
                chrono_tz::UTC,
                StatusMap::new(),
                telemetry,
            );
            let config = AzureConfig {
                auth: AzureAuth::ManagedIdentity { client_id: None },
                subscription_id: "s".to_string(),
                vaults: vec![vault()],
                lookback: Duration::from_secs(24 * 3600),
                api_version: "2017-07-01".to_string(),
                management_url: "http://127.0.0.1:9".to_string(),
                authority_url: "http://127.0.0.1:9".to_string(),
            };
            Azure::new(config, http, fields)
        }

        /// A job list folded and grouped the way a poll does it.
        fn groups_of(azure: &Azure, jobs: Vec<Job>) -> Vec<Group> {
            let mut groups = Groups::default();
            for job in jobs {
                groups.add(&azure.fields, job, |j| azure.status_of(j));
            }
            azure.finish_groups("rg/v", groups)
        }

        fn record_of_group(azure: &Azure, g: Group) -> JobRecord {
            let facts = azure.facts(&g.newest, g.newest_seen.status);
            azure.record(
                &vault(),
                &g.newest,
                g.newest_seen,
                facts,
                g.ended,
                g.newest_success_end,
            )
        }

        /// One job's details mapped the way a poll maps them.
        fn record_of_job(azure: &Azure, job: &Job) -> JobRecord {
            let seen = azure.parse_again(job);
            let facts = azure.facts(job, seen.status);
            azure.record(&vault(), job, seen, facts, Vec::new(), None)
        }

        fn answers(body: &[u8]) -> Result<(), TestCaseError> {
            let azure = azure();
            if let Ok(list) = serde_json::from_slice::<JobList>(body) {
                let jobs = list.value.unwrap_or_default();
                for _first_then_later_poll in 0..2 {
                    let records = groups_of(&azure, jobs.clone())
                        .into_iter()
                        .map(|g| record_of_group(&azure, g))
                        .collect();
                    fuzzing::check(PollOutput {
                        jobs: records,
                        summaries: Vec::new(),
                    })?;
                }
                if let Some(link) = list.next_link {
                    if let Ok(url) = azure.next_url(&link) {
                        prop_assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:9");
                    }
                }
            }
            if let Ok(job) = serde_json::from_slice::<Job>(body) {
                let record = record_of_job(&azure, &job);
                fuzzing::check(PollOutput {
                    jobs: vec![record],
                    summaries: Vec::new(),
                })?;
            }
            if let Ok(issued) = parse_token(body) {
                prop_assert!(issued.renew_at <= Instant::now() + MAX_TOKEN_LIFETIME);
            }
            Ok(())
        }

        #[test]
        fn the_seeds_decode_and_map() {
            let azure = azure();
            let list: JobList = serde_json::from_str(LIST).unwrap();
            let groups = groups_of(&azure, list.value.unwrap());
            assert_eq!(groups.len(), 2);
            assert!(azure.next_url(&list.next_link.unwrap()).is_ok());
            let job: Job = serde_json::from_str(DETAILS).unwrap();
            let record = record_of_job(&azure, &job);
            assert_eq!(record.progress, Some(0.45));
            assert!(parse_token(TOKEN.as_bytes()).is_ok());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
                answers(&body)?;
            }

            #[test]
            fn mutated_answers_never_panic(
                body in prop_oneof![fuzzing::mutated(LIST, KEYS), fuzzing::mutated(DETAILS, KEYS), fuzzing::mutated(TOKEN, KEYS)]
            ) {
                answers(&body)?;
            }

            #[test]
            fn next_links_never_leave_the_management_origin(link in prop_oneof![
                any::<String>(),
                "(https?|ftp)://(127\\.0\\.0\\.1|evil\\.example|127\\.0\\.0\\.1\\.evil|\\[::1\\])(:[0-9]{1,5})?/[a-z?=&$]{0,12}",
                "//[a-z.]{1,12}/x",
                "http://127.0.0.1:9@evil.example/x",
            ]) {
                if let Ok(url) = azure().next_url(&link) {
                    prop_assert_eq!(url.origin().ascii_serialization(), "http://127.0.0.1:9");
                }
            }
        }
    }
}
