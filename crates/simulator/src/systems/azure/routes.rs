//! The Azure routes: the token endpoints (served by [`Auth`]) and the management
//! endpoints of a vault's backup jobs, with the jobs the admin API replaces.
//!
//! `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs`
//! lists jobs newest first, in pages of [`PAGE_SIZE`] (or `--azure-page-size`) linked by an absolute `nextLink` with
//! `$skiptoken` (see [`query`](super::query) for `$filter`); list items carry no
//! `extendedInfo`. `GET .../backupJobs/{jobName}` answers the job with `extendedInfo`.
//! Path segment names, subscription, resource group and vault are case-insensitive, as in
//! Azure Resource Manager.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};

use super::auth::{Auth, AzureSim, IMDS, TOKEN};
use super::query::{valid_api_version, Filter};
use super::scenario::{live_jobs, VaultDef, VAULTS};
use super::seed;
use super::wire::{arm_error, arm_error_body, arm_unauthorized, sort_newest_first, JobRecord};
use crate::clock;
use crate::faults::{self, Action, Faults, Target};
use crate::http::{
    form_pairs, full, percent_decode, percent_encode, reason, streamed, truncated, with_allow,
    with_retry_after, Body, DropConnection,
};
use crate::system::{Replaceable, Reply, System};

/// The fault target of a vault's job list (its first page) and of its jobs' details.
const VAULT: Target = Target::new("vault");
/// The fault target of the `nextLink` pages of a vault's job list.
const VAULT_NEXT: Target = Target::new("vault_next");
/// The fault target of one job's details, by job name.
const JOB: Target = Target::new("job");

/// Jobs per page of the job list unless `--azure-page-size` says otherwise.
pub(crate) const PAGE_SIZE: usize = 3;

/// The simulated Azure: AD, IMDS and the Recovery Services vaults.
pub(crate) struct Azure {
    auth: Auth,
    cycle_ms: i64,
    /// Jobs per page of a job list.
    page_size: usize,
    /// Jobs replaced by the admin API, by lowercased vault name.
    replaced: Mutex<HashMap<String, Arc<Vec<JobRecord>>>>,
}

/// What a management request asks for.
struct JobsRequest {
    subscription: String,
    resource_group: String,
    vault: String,
    job: Option<String>,
    api_version: String,
    filter: Option<String>,
    skip: Option<String>,
    /// `http://{Host}{path}`, for `nextLink`.
    base_url: String,
}

impl Azure {
    /// `app` as in [`Options::client`](super::Options::client); tokens live
    /// for `token_lifetime`.
    pub(crate) fn new(
        app: Option<AzureSim>,
        token_lifetime: Duration,
        cycle_ms: i64,
        page_size: usize,
    ) -> Azure {
        Azure {
            auth: Auth::new(app, token_lifetime),
            cycle_ms,
            page_size: page_size.max(1),
            replaced: Mutex::default(),
        }
    }

    fn replaced(&self) -> MutexGuard<'_, HashMap<String, Arc<Vec<JobRecord>>>> {
        self.replaced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /subscriptions/...`; `rest` are the raw path segments after `subscriptions`.
    async fn management(
        &self,
        faults: &Faults,
        req: Request<Incoming>,
        rest: &[&str],
    ) -> Result<Response<Body>, DropConnection> {
        let Some(segments) = rest
            .iter()
            .map(|s| percent_decode(s))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid escape in the request path.",
            ));
        };
        let is = |s: &String, name: &str| s.eq_ignore_ascii_case(name);
        let (subscription, resource_group, vault, job) = match segments.as_slice() {
            [sub, rg_, rg, p, ns, v, vault, jobs, job @ ..]
                if is(rg_, "resourceGroups")
                    && is(p, "providers")
                    && is(ns, "Microsoft.RecoveryServices")
                    && is(v, "vaults")
                    && is(jobs, "backupJobs")
                    && job.len() <= 1 =>
            {
                (sub, rg, vault, job.first())
            }
            _ => {
                return Ok(arm_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "The requested resource type is not served by this simulator.",
                ))
            }
        };
        if [subscription, resource_group, vault]
            .iter()
            .any(|s| s.is_empty())
            || job.is_some_and(String::is_empty)
        {
            return Ok(arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Empty identifier in the request path.",
            ));
        }
        if req.method() != Method::GET {
            return Ok(with_allow(
                arm_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The requested method is not allowed.",
                ),
                "GET",
            ));
        }
        let Some(pairs) = form_pairs(req.uri().query().unwrap_or("")) else {
            return Ok(arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Malformed query string.",
            ));
        };
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let host = req
            .headers()
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let request = JobsRequest {
            subscription: subscription.clone(),
            resource_group: resource_group.clone(),
            vault: vault.clone(),
            job: job.cloned(),
            api_version: param("api-version").unwrap_or_default(),
            filter: param("$filter").filter(|f| !f.trim().is_empty()),
            skip: param("$skiptoken"),
            base_url: format!("http://{host}{}", req.uri().path()),
        };

        let (target, key) = match (&request.job, &request.skip) {
            (Some(job), _) => (JOB, job),
            (None, Some(_)) => (VAULT_NEXT, &request.vault),
            (None, None) => (VAULT, &request.vault),
        };
        faults.count(target, key);
        if let Err(response) = self.auth.check_bearer(req.headers()) {
            return Ok(response);
        }
        if request.api_version.is_empty() {
            return Ok(arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        if !valid_api_version(&request.api_version) {
            return Ok(arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                "The api-version '{}' is invalid. The supported versions are like '2017-07-01'.",
                request.api_version
            ),
            ));
        }
        let fault = match &request.job {
            Some(job) => faults
                .take(VAULT, &request.vault)
                .or_else(|| faults.take(JOB, job)),
            None => faults.take(target, &request.vault),
        };
        let response = match faults::action(fault).await? {
        Action::Answer => {
            let (status, body) = self.jobs_body(&request);
            full(status, body)
        }
        Action::Error(StatusCode::NOT_FOUND) => arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.RecoveryServices/vaults/{}' under resource group '{}' was not found.",
                request.vault, request.resource_group
            ),
        ),
        Action::Error(StatusCode::BAD_REQUEST) => arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request is invalid.",
        ),
        Action::Error(StatusCode::UNAUTHORIZED) => {
            arm_unauthorized("InvalidAuthenticationToken", "The access token is invalid.")
        }
        Action::Error(status) => arm_error(
            status,
            &reason(status).replace(' ', ""),
            "The server encountered an internal error. Please retry the request.",
        ),
        Action::RateLimited(secs) => with_retry_after(
            arm_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request was throttled. Please retry after the time in Retry-After.",
            ),
            secs,
        ),
        Action::Truncate => truncated(self.jobs_body(&request).1),
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"value":[],"padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
        Ok(response)
    }

    /// The jobs of the vault a request names, newest first: replaced by the admin API
    /// (an unknown vault name then answers under any subscription and resource group), the
    /// seed's, or live.
    fn vault_jobs(&self, request: &JobsRequest) -> Option<Arc<Vec<JobRecord>>> {
        let known = known_vault(
            &request.subscription,
            &request.resource_group,
            &request.vault,
        );
        let replaced = self.replaced().get(&request.vault.to_lowercase()).cloned();
        if let Some(jobs) = replaced {
            let named_elsewhere = known.is_none()
                && (request.vault.eq_ignore_ascii_case(seed::VAULT.2)
                    || VAULTS
                        .iter()
                        .any(|v| v.name.eq_ignore_ascii_case(&request.vault)));
            return (!named_elsewhere).then_some(jobs);
        }
        match known? {
            Known::Seed => Some(Arc::new(vec![seed::job()])),
            Known::Live(vault) => Some(Arc::new(live_jobs(vault, clock::now_ms(), self.cycle_ms))),
        }
    }

    /// The normal answer: one page of the list, or one job's details.
    fn jobs_body(&self, request: &JobsRequest) -> (StatusCode, Bytes) {
        let Some(jobs) = self.vault_jobs(request) else {
            return vault_not_found(request);
        };
        if let Some(name) = &request.job {
            return match jobs.iter().find(|j| j.name.eq_ignore_ascii_case(name)) {
                Some(job) => (StatusCode::OK, Bytes::from(job.details.clone())),
                None => (
                    StatusCode::NOT_FOUND,
                    arm_error_body(
                        "ResourceNotFound",
                        &format!(
                            "The job '{name}' was not found in vault '{}'.",
                            request.vault
                        ),
                    ),
                ),
            };
        }
        let bad_request = |message: &str| {
            (
                StatusCode::BAD_REQUEST,
                arm_error_body("BadRequest", message),
            )
        };
        let filter = match request.filter.as_deref().map(Filter::parse) {
            None => Filter::default(),
            Some(Ok(filter)) => filter,
            Some(Err(message)) => return bad_request(&message),
        };
        let skip = match request.skip.as_deref().map(str::parse::<usize>) {
            None => 0,
            Some(Ok(skip)) => skip,
            Some(Err(_)) => return bad_request("Invalid $skiptoken."),
        };
        let matching: Vec<&JobRecord> = jobs.iter().filter(|j| filter.matches(j)).collect();
        let mut body = String::from("{\"value\":[");
        for (i, job) in matching.iter().skip(skip).take(self.page_size).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&job.list);
        }
        body.push(']');
        let next = skip.saturating_add(self.page_size);
        if next < matching.len() {
            let mut link = format!(
                "{}?api-version={}",
                request.base_url,
                percent_encode(&request.api_version)
            );
            if let Some(filter) = &request.filter {
                let _ = write!(link, "&$filter={}", percent_encode(filter));
            }
            let _ = write!(link, "&$skiptoken={next}");
            let _ = write!(
                body,
                ",\"nextLink\":{}",
                serde_json::to_string(&link).unwrap_or_default()
            );
        }
        body.push('}');
        (StatusCode::OK, Bytes::from(body))
    }
}

impl System for Azure {
    fn route<'a>(
        &'a self,
        faults: &'a Faults,
        req: Request<Incoming>,
        path: &'a [&'a str],
    ) -> Result<Reply<'a>, Request<Incoming>> {
        match path {
            ["metadata", "identity", "oauth2", "token"] => {
                Ok(Box::pin(self.auth.imds(faults, req)))
            }
            [tenant, "oauth2", "v2.0", "token"] => {
                Ok(Box::pin(self.auth.token(faults, req, tenant)))
            }
            [first, rest @ ..] if first.eq_ignore_ascii_case("subscriptions") => {
                Ok(Box::pin(self.management(faults, req, rest)))
            }
            _ => Err(req),
        }
    }

    fn targets(&self) -> &'static [Target] {
        &[VAULT, VAULT_NEXT, JOB, TOKEN, IMDS]
    }

    /// `/_sim/azure/{vault}/jobs`: JobResource objects (`extendedInfo` only in the
    /// details); an unknown vault name answers under any subscription and resource group.
    fn replaceable(&self) -> Option<Replaceable> {
        Some(Replaceable {
            system: "azure",
            key_name: "vault",
            items: "jobs",
        })
    }

    fn replace(&self, vault: &str, items: Vec<Value>) -> Result<usize, String> {
        let mut jobs = items
            .into_iter()
            .map(JobRecord::from_value)
            .collect::<Result<Vec<_>, _>>()?;
        sort_newest_first(&mut jobs);
        let count = jobs.len();
        self.replaced().insert(vault.to_lowercase(), Arc::new(jobs));
        Ok(count)
    }

    fn restore(&self, vault: &str) -> bool {
        self.replaced().remove(&vault.to_lowercase()).is_some()
    }

    /// `azure_assertions`: the distinct workload-identity client assertions the token
    /// endpoint accepted, once there is one.
    fn stats(&self, stats: &mut Map<String, Value>) {
        let assertions = self.auth.assertions();
        if !assertions.is_empty() {
            stats.insert("azure_assertions".to_string(), assertions.into());
        }
    }

    /// Back to the default jobs of every vault; the client assertions seen are forgotten.
    fn reset(&self) {
        self.replaced().clear();
        self.auth.forget_assertions();
    }
}

/// Which vault a request names, if any, case-insensitively.
fn known_vault(subscription: &str, resource_group: &str, vault: &str) -> Option<Known> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (seed_sub, seed_rg, seed_vault) = seed::VAULT;
    if same(subscription, seed_sub) && same(resource_group, seed_rg) && same(vault, seed_vault) {
        return Some(Known::Seed);
    }
    VAULTS
        .iter()
        .find(|v| {
            same(v.subscription, subscription)
                && same(v.resource_group, resource_group)
                && same(v.name, vault)
        })
        .map(Known::Live)
}

enum Known {
    Seed,
    Live(&'static VaultDef),
}

/// The 404 for a vault that does not exist, naming the first part of the path that is
/// unknown.
fn vault_not_found(request: &JobsRequest) -> (StatusCode, Bytes) {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (seed_sub, seed_rg, _) = seed::VAULT;
    let places = VAULTS
        .iter()
        .map(|v| (v.subscription, v.resource_group))
        .chain(std::iter::once((seed_sub, seed_rg)));
    let (mut sub_known, mut rg_known) = (false, false);
    for (sub, rg) in places {
        if same(sub, &request.subscription) {
            sub_known = true;
            rg_known |= same(rg, &request.resource_group);
        }
    }
    let body = if !sub_known {
        arm_error_body(
            "SubscriptionNotFound",
            &format!(
                "The subscription '{}' could not be found.",
                request.subscription
            ),
        )
    } else if !rg_known {
        arm_error_body(
            "ResourceGroupNotFound",
            &format!(
                "Resource group '{}' could not be found.",
                request.resource_group
            ),
        )
    } else {
        arm_error_body(
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.RecoveryServices/vaults/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                request.vault, request.resource_group
            ),
        )
    };
    (StatusCode::NOT_FOUND, body)
}
