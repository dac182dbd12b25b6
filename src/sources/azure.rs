//! Azure Backup: Azure AD token cache (client credentials or managed identity), the
//! backupJobs list with its `nextLink` pages, job details for progress, mapping.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{endpoint, set_bearer, FieldParser, IssuedToken, Source, SourceTarget, TokenCache};
use crate::config::{AzureAuth, AzureConfig, AzureVault, Secret};
use crate::http::{Fault, Outcome, StatusRules, UpstreamHttp};
use crate::model::{JobKey, JobRecord, PollOutput, System, TargetKind};
use crate::status::Status;

/// The ARM resource tokens are requested for (the contract's fixed scope).
const RESOURCE: &str = "https://management.azure.com/";
const SCOPE: &str = "https://management.azure.com/.default";
const IMDS_API_VERSION: &str = "2018-02-01";
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
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobList {
    value: Option<Vec<Job>>,
    next_link: Option<String>,
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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedInfo {
    progress_percentage: Option<Value>,
    dynamic_error_message: Option<Value>,
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
        // Every page must arrive: a half list would make jobs vanish.
        let mut jobs = Vec::new();
        let mut next = Some(self.list_url(vault)?);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Fault::new(
                    Outcome::UpstreamError,
                    format!("more than {MAX_PAGES} pages of jobs; narrow `lookback`"),
                ));
            }
            let page: JobList = self.get(url, deadline).await?;
            jobs.extend(page.value.unwrap_or_default());
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                next = Some(self.next_url(&link)?);
            }
        }

        let groups = self.newest_per_entity(&target.name, jobs);
        let mut records = Vec::with_capacity(groups.len());
        for group in groups {
            let mut newest = group.newest.clone();
            let status = self.status_of(&newest).0;
            if !status.is_terminal() {
                // Only the details carry progress.
                if let Some(name) = job_name(&newest) {
                    match self.get::<Job>(self.job_url(vault, &name)?, deadline).await {
                        Ok(detail) => newest = detail,
                        Err(fault) if fault.outcome == Outcome::NotFound => {}
                        Err(fault) => return Err(fault),
                    }
                }
            }
            records.push(self.record(vault, &newest, group.ended, group.newest_success_end));
        }
        Ok(PollOutput {
            jobs: records,
            summaries: Vec::new(),
        })
    }
}

/// One job series: the newest job of an (entity, operation) and what ended in the group.
struct Group {
    newest: Job,
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
    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        url: Url,
        deadline: Instant,
    ) -> Result<T, Fault> {
        match self.get_once(url.clone(), deadline, false).await {
            Err(fault) if fault.outcome == Outcome::AuthError => {
                self.get_once(url, deadline, true).await
            }
            other => other,
        }
    }

    async fn get_once<T: for<'de> Deserialize<'de>>(
        &self,
        url: Url,
        deadline: Instant,
        renew: bool,
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
        self.http
            .fetch(request, StatusRules::default(), deadline, |body| {
                serde_json::from_slice::<T>(body).map_err(Fault::decode)
            })
            .await
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
                let mut request = reqwest::Request::new(Method::POST, url);
                request.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                *request.body_mut() = Some(body.into());
                Ok(request)
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

    /// Groups jobs by (entity, operation); the newest (by start time) represents the group.
    /// Jobs seen finished for the first time count as ended runs, except on the first poll.
    fn newest_per_entity(&self, vault_key: &str, jobs: Vec<Job>) -> Vec<Group> {
        let fields = &self.fields;
        let mut groups: BTreeMap<(String, String), Vec<Job>> = BTreeMap::new();
        for job in jobs {
            let props = job.properties.clone().unwrap_or_default();
            let Some(entity) = fields
                .text("entityFriendlyName", props.entity_friendly_name.as_ref())
                .filter(|e| !e.is_empty())
            else {
                fields.missing("entityFriendlyName");
                continue;
            };
            let operation = fields
                .text("operation", props.operation.as_ref())
                .filter(|o| !o.is_empty())
                .unwrap_or_else(|| "Unknown".to_string());
            groups.entry((entity, operation)).or_default().push(job);
        }

        let mut finished = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        // No entry for the vault yet: this is its first poll; remember, count nothing.
        let baseline = finished.contains_key(vault_key);
        let known = finished.entry(vault_key.to_string()).or_default();
        let mut out = Vec::with_capacity(groups.len());
        let mut seen_now: HashSet<String> = HashSet::new();
        for (_, mut members) in groups {
            members.sort_by(|a, b| {
                let t = |j: &Job| {
                    fields.time(
                        "startTime",
                        j.properties.as_ref().and_then(|p| p.start_time.as_ref()),
                    )
                };
                t(b).partial_cmp(&t(a)).unwrap_or(std::cmp::Ordering::Equal)
            });
            let mut ended = Vec::new();
            let mut newest_success_end: Option<f64> = None;
            for job in &members {
                let (status, _) = self.status_of(job);
                let Some(name) = job_name(job) else { continue };
                if status.is_terminal() {
                    seen_now.insert(name.clone());
                    if !known.contains(&name) && baseline {
                        ended.push(status);
                    }
                }
                if matches!(status, Status::Completed | Status::CompletedWithWarnings) {
                    let end = fields.time(
                        "endTime",
                        job.properties.as_ref().and_then(|p| p.end_time.as_ref()),
                    );
                    if let Some(end) = end {
                        newest_success_end =
                            Some(newest_success_end.map_or(end, |n: f64| n.max(end)));
                    }
                }
            }
            if let Some(newest) = members.into_iter().next() {
                out.push(Group {
                    newest,
                    ended,
                    newest_success_end,
                });
            }
        }
        // Jobs leave the list when they fall out of the lookback window; so may their ids.
        *known = seen_now;
        out
    }

    fn record(
        &self,
        vault: &AzureVault,
        job: &Job,
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
        let (status, raw_status) = self.status_of(job);
        let extended = props.extended_info.clone().unwrap_or_default();
        let mut info = vec![("vault", vault.name.clone())];
        if let Some(job_type) = fields
            .text("jobType", props.job_type.as_ref())
            .filter(|t| !t.is_empty())
        {
            info.push(("job_type", job_type));
        }
        if let Some(name) = job_name(job) {
            info.push(("job_id", name));
        }
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
            start_time: fields.time("startTime", props.start_time.as_ref()),
            end_time: fields.time("endTime", props.end_time.as_ref()),
            message: fields
                .text(
                    "extendedInfo.dynamicErrorMessage",
                    extended.dynamic_error_message.as_ref(),
                )
                .filter(|m| !m.is_empty()),
            info,
            ended_runs: Some(ended),
            newest_success_end,
        }
    }
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
    Ok(IssuedToken {
        token: Secret::new(token),
        renew_at: Instant::now() + renew_after(Duration::from_secs(expires_in)),
    })
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
}
