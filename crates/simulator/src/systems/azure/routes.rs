//! The Azure routes: the token endpoints (served by [`Auth`]) and the management
//! endpoints of the vaults and their backup jobs and items, with the jobs the admin API
//! replaces.
//!
//! `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs`
//! lists jobs newest first, in pages of [`PAGE_SIZE`] (or `--azure-page-size`) linked by an absolute `nextLink` with
//! `$skiptoken` (see [`query`](super::query) for `$filter`); list items carry no
//! `extendedInfo`. `GET .../backupJobs/{jobName}` answers the job with `extendedInfo`.
//!
//! The listings (same page size, `nextLink` with `$skipToken`):
//! `GET /subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults` and
//! `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults`
//! (the vaults, by resource group then name), `GET .../vaults/{vault}/backupProtectedItems`
//! and `GET .../vaults/{vault}/backupProtectableItems` (see [`items`](super::items); their
//! `$filter` in [`ITEM_FILTERS`] and [`PROTECTABLE_FILTERS`]).
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
use super::fleet;
use super::items::{self, Place, Protected};
use super::query::{valid_api_version, Filter, ItemFilter};
use super::scenario::{live_jobs, VaultDef, Workload, VAULTS};
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
/// The fault target of a subscription's vault list (its first page; either form), by
/// subscription id.
const VAULT_LIST: Target = Target::new("vault_list");
/// ... and of its `nextLink` pages.
const VAULT_LIST_NEXT: Target = Target::new("vault_list_next");
/// The fault target of a vault's protected items (first page), by vault name.
const PROTECTED: Target = Target::new("protected_items");
/// ... and of their `nextLink` pages.
const PROTECTED_NEXT: Target = Target::new("protected_items_next");
/// The fault target of a vault's protectable items (first page), by vault name.
const PROTECTABLE: Target = Target::new("protectable_items");
/// ... and of their `nextLink` pages.
const PROTECTABLE_NEXT: Target = Target::new("protectable_items_next");

/// The `$filter` properties of `backupProtectedItems` (`ProtectedItemQueryObject`) that the
/// simulator applies, and the item property each compares (`policyName`: the last segment
/// of `policyId`).
pub(crate) const ITEM_FILTERS: &[(&str, &str)] = &[
    ("backupmanagementtype", "backupManagementType"),
    ("itemtype", "workloadType"),
    ("friendlyname", "friendlyName"),
    ("containername", "containerName"),
    ("policyname", "policyName"),
    ("healthstate", "healthStatus"),
];

/// The `$filter` properties of `backupProtectableItems` the simulator applies: the one the
/// specification's example uses.
pub(crate) const PROTECTABLE_FILTERS: &[(&str, &str)] =
    &[("backupmanagementtype", "backupManagementType")];

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
    /// Generated vaults of `--azure-fleet` (0: none).
    fleet: usize,
}

/// What a management request lists or reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A vault's jobs, or one job's details.
    Jobs,
    /// The vaults of a subscription, or of one of its resource groups (`resource_group`
    /// not empty).
    Vaults,
    /// A vault's protected items.
    Protected,
    /// A vault's protectable items.
    Protectable,
}

/// What a management request asks for.
struct JobsRequest {
    kind: Kind,
    subscription: String,
    /// Empty for a subscription's vault list.
    resource_group: String,
    /// Empty for a vault list.
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
        fleet: usize,
    ) -> Azure {
        Azure {
            auth: Auth::new(app, token_lifetime),
            cycle_ms,
            page_size: page_size.max(1),
            replaced: Mutex::default(),
            fleet,
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
        let provider = |p: &String, ns: &String, v: &String| {
            is(p, "providers") && is(ns, "Microsoft.RecoveryServices") && is(v, "vaults")
        };
        let empty = String::new();
        let (kind, subscription, resource_group, vault, job) = match segments.as_slice() {
            [sub, rg_, rg, p, ns, v, vault, jobs, job @ ..]
                if is(rg_, "resourceGroups")
                    && provider(p, ns, v)
                    && is(jobs, "backupJobs")
                    && job.len() <= 1 =>
            {
                (Kind::Jobs, sub, rg, vault, job.first())
            }
            [sub, rg_, rg, p, ns, v, vault, items]
                if is(rg_, "resourceGroups") && provider(p, ns, v) =>
            {
                let kind = if is(items, "backupProtectedItems") {
                    Kind::Protected
                } else if is(items, "backupProtectableItems") {
                    Kind::Protectable
                } else {
                    return Ok(not_served());
                };
                (kind, sub, rg, vault, None)
            }
            [sub, rg_, rg, p, ns, v] if is(rg_, "resourceGroups") && provider(p, ns, v) => {
                (Kind::Vaults, sub, rg, &empty, None)
            }
            [sub, p, ns, v] if provider(p, ns, v) => (Kind::Vaults, sub, &empty, &empty, None),
            _ => return Ok(not_served()),
        };
        let named = match kind {
            Kind::Vaults if resource_group.is_empty() => vec![subscription],
            Kind::Vaults => vec![subscription, resource_group],
            Kind::Jobs | Kind::Protected | Kind::Protectable => {
                vec![subscription, resource_group, vault]
            }
        };
        if named.iter().any(|s| s.is_empty()) || job.is_some_and(String::is_empty) {
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
            kind,
            subscription: subscription.clone(),
            resource_group: resource_group.clone(),
            vault: vault.clone(),
            job: job.cloned(),
            api_version: param("api-version").unwrap_or_default(),
            filter: param("$filter").filter(|f| !f.trim().is_empty()),
            skip: param("$skiptoken"),
            base_url: format!("http://{host}{}", req.uri().path()),
        };

        let next = request.skip.is_some();
        let (target, key) = match (kind, &request.job) {
            (Kind::Jobs, Some(job)) => (JOB, job),
            (Kind::Jobs, None) if next => (VAULT_NEXT, &request.vault),
            (Kind::Jobs, None) => (VAULT, &request.vault),
            (Kind::Vaults, _) if next => (VAULT_LIST_NEXT, &request.subscription),
            (Kind::Vaults, _) => (VAULT_LIST, &request.subscription),
            (Kind::Protected, _) if next => (PROTECTED_NEXT, &request.vault),
            (Kind::Protected, _) => (PROTECTED, &request.vault),
            (Kind::Protectable, _) if next => (PROTECTABLE_NEXT, &request.vault),
            (Kind::Protectable, _) => (PROTECTABLE, &request.vault),
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
            None => faults.take(target, key),
        };
        let response = match faults::action(fault).await? {
        Action::Answer => {
            let (status, body) = self.body(&request);
            full(status, body)
        }
        Action::Error(StatusCode::NOT_FOUND) if kind == Kind::Vaults => arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{}' could not be found.", request.subscription),
        ),
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
        Action::Truncate => truncated(self.body(&request).1),
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
    /// The jobs of the vault a request names, the live ones as they are at `now_ms`.
    fn vault_jobs(&self, request: &JobsRequest, now_ms: i64) -> Option<Arc<Vec<JobRecord>>> {
        let known = known_vault(
            &request.subscription,
            &request.resource_group,
            &request.vault,
            self.fleet,
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
            Known::Live(vault) => Some(Arc::new(live_jobs(vault, now_ms, self.cycle_ms))),
            Known::Fleet(index) => Some(Arc::new(fleet::jobs(index, now_ms, self.cycle_ms))),
        }
    }

    /// The normal answer of any management request.
    fn body(&self, request: &JobsRequest) -> (StatusCode, Bytes) {
        match request.kind {
            Kind::Jobs => self.jobs_body(request),
            Kind::Vaults => vaults_body(request, self.page_size, self.fleet),
            Kind::Protected | Kind::Protectable => self.items_body(request),
        }
    }

    /// One page of a vault's protected or protectable items.
    fn items_body(&self, request: &JobsRequest) -> (StatusCode, Bytes) {
        let Some(jobs) = self.vault_jobs(request, clock::now_ms()) else {
            return vault_not_found(request, self.fleet);
        };
        let fields = match request.kind {
            Kind::Protectable => PROTECTABLE_FILTERS,
            Kind::Jobs | Kind::Vaults | Kind::Protected => ITEM_FILTERS,
        };
        let filter = match request.filter.as_deref().map(|f| ItemFilter::parse(f, fields)) {
            None => ItemFilter::default(),
            Some(Ok(filter)) => filter,
            Some(Err(message)) => {
                return (
                    StatusCode::BAD_REQUEST,
                    arm_error_body("BadRequest", &message),
                )
            }
        };
        let known = known_vault(
            &request.subscription,
            &request.resource_group,
            &request.vault,
            self.fleet,
        );
        let place = Place {
            subscription: &request.subscription,
            resource_group: &request.resource_group,
            vault: &request.vault,
        };
        let items: Vec<Value> = match (request.kind, known) {
            (Kind::Protectable, Some(Known::Live(vault))) => vault
                .unprotected
                .iter()
                .map(|vm| items::protectable(place, vm))
                .collect(),
            (Kind::Protectable, Some(Known::Fleet(index))) => {
                vec![items::protectable(place, &fleet::idle_vm(index))]
            }
            (Kind::Protectable, _) => Vec::new(),
            (_, Some(Known::Fleet(index))) => {
                let now = clock::now_ms();
                let template = fleet::template()
                    .map(items::live_protected)
                    .unwrap_or_default();
                let names: Vec<String> = template
                    .iter()
                    .map(|item| fleet::entity(index, item.name))
                    .collect();
                template
                    .iter()
                    .zip(&names)
                    .map(|(item, name)| {
                        let own = items::Protected { name, ..*item };
                        items::protected(place, &own, &jobs, now)
                    })
                    .collect()
            }
            (_, Some(Known::Live(vault))) => {
                let now = clock::now_ms();
                items::live_protected(vault)
                    .iter()
                    .map(|item| items::protected(place, item, &jobs, now))
                    .collect()
            }
            // The seed vault, or a vault whose jobs the admin API replaced: one item per
            // entity of its jobs.
            _ => {
                let now = clock::now_ms();
                let mut entities: Vec<&str> = jobs
                    .iter()
                    .map(|j| j.entity.as_str())
                    .filter(|e| !e.is_empty())
                    .collect();
                entities.sort_unstable();
                entities.dedup();
                entities
                    .into_iter()
                    .map(|name| {
                        let workload = match jobs.iter().find(|j| j.entity == name) {
                            Some(j) if j.management == "AzureWorkload" => Workload::SqlDatabase,
                            Some(j) if j.management == "AzureStorage" => Workload::FileShare,
                            _ => Workload::Vm,
                        };
                        let item = Protected {
                            name,
                            workload,
                            classic: false,
                            health: None,
                            stopped: false,
                        };
                        items::protected(place, &item, &jobs, now)
                    })
                    .collect()
            }
        };
        let matching: Vec<&Value> = items.iter().filter(|i| filter.matches(i)).collect();
        page(request, &matching, self.page_size, |item| (*item).clone())
    }

    /// The normal answer of a job request: one page of the list, or one job's details.
    fn jobs_body(&self, request: &JobsRequest) -> (StatusCode, Bytes) {
        // `$skiptoken` is `{offset}_{ms}`: the later pages list the jobs as they were when the
        // first was read, so a job that starts meanwhile shifts no job onto a second page (a
        // continuation token's promise; a bare offset is still taken, read as of now).
        let (skip, now_ms) = match request.skip.as_deref().map(skip_token) {
            None => (0, clock::now_ms()),
            Some(Some(token)) => token,
            Some(None) => {
                return (
                    StatusCode::BAD_REQUEST,
                    arm_error_body("BadRequest", "Invalid $skiptoken."),
                )
            }
        };
        let Some(jobs) = self.vault_jobs(request, now_ms) else {
            return vault_not_found(request, self.fleet);
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
            let _ = write!(link, "&$skiptoken={next}_{now_ms}");
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
        &[
            VAULT,
            VAULT_NEXT,
            JOB,
            VAULT_LIST,
            VAULT_LIST_NEXT,
            PROTECTED,
            PROTECTED_NEXT,
            PROTECTABLE,
            PROTECTABLE_NEXT,
            TOKEN,
            IMDS,
        ]
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

/// ARM's 404 for a path the simulator does not serve.
fn not_served() -> Response<Body> {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested resource type is not served by this simulator.",
    )
}

/// A job list's `$skiptoken`: `{offset}` or `{offset}_{ms}` (the instant of its first page).
fn skip_token(token: &str) -> Option<(usize, i64)> {
    match token.split_once('_') {
        None => Some((token.parse().ok()?, clock::now_ms())),
        Some((skip, at)) => Some((skip.parse().ok()?, at.parse().ok()?)),
    }
}

/// One page of `items` (`$skipToken` the offset), each written by `render` (only the page's
/// are), with an absolute `nextLink` carrying the request's `api-version` and `$filter`
/// while items remain.
fn page<T>(
    request: &JobsRequest,
    items: &[T],
    page_size: usize,
    render: impl Fn(&T) -> Value,
) -> (StatusCode, Bytes) {
    let skip = match request.skip.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(skip)) => skip,
        Some(Err(_)) => {
            return (
                StatusCode::BAD_REQUEST,
                arm_error_body("BadRequest", "Invalid $skipToken."),
            )
        }
    };
    let value: Vec<Value> = items.iter().skip(skip).take(page_size).map(render).collect();
    let mut body = serde_json::Map::new();
    body.insert("value".into(), Value::Array(value));
    let next = skip.saturating_add(page_size);
    if next < items.len() {
        let mut link = format!(
            "{}?api-version={}",
            request.base_url,
            percent_encode(&request.api_version)
        );
        if let Some(filter) = &request.filter {
            let _ = write!(link, "&$filter={}", percent_encode(filter));
        }
        let _ = write!(link, "&$skipToken={next}");
        body.insert("nextLink".into(), link.into());
    }
    (
        StatusCode::OK,
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

/// One page of the vaults of the subscription (or resource group) a request names, by
/// resource group then name: the live vaults and the seed's. An unknown subscription is
/// `SubscriptionNotFound`, an unknown resource group `ResourceGroupNotFound`.
fn vaults_body(request: &JobsRequest, page_size: usize, fleet: usize) -> (StatusCode, Bytes) {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (seed_sub, seed_rg, seed_vault) = seed::VAULT;
    let all = VAULTS
        .iter()
        .map(|v| (v.subscription, v.resource_group, v.name, v.location))
        .chain(std::iter::once((seed_sub, seed_rg, seed_vault, "centralindia")));
    let mut found: Vec<(&str, &str, &str)> = Vec::new();
    let mut sub_known = false;
    for (sub, rg, name, location) in all {
        if !same(sub, &request.subscription) {
            continue;
        }
        sub_known = true;
        if request.resource_group.is_empty() || same(rg, &request.resource_group) {
            found.push((rg, name, location));
        }
    }
    let fleet_names: Vec<String> = match fleet::template() {
        Some(t)
            if same(t.subscription, &request.subscription)
                && (request.resource_group.is_empty()
                    || same(fleet::RESOURCE_GROUP, &request.resource_group)) =>
        {
            (1..=fleet).map(fleet::name).collect()
        }
        _ => Vec::new(),
    };
    found.extend(
        fleet_names
            .iter()
            .map(|name| (fleet::RESOURCE_GROUP, name.as_str(), "koreacentral")),
    );
    if !sub_known || (found.is_empty() && !request.resource_group.is_empty()) {
        return vault_not_found(request, fleet);
    }
    found.sort_by_cached_key(|(rg, name, _)| (rg.to_lowercase(), name.to_lowercase()));
    page(request, &found, page_size, |(rg, name, location)| {
        let place = Place {
            subscription: &request.subscription,
            resource_group: rg,
            vault: name,
        };
        items::vault(place, location)
    })
}

/// Which vault a request names, if any, case-insensitively.
fn known_vault(
    subscription: &str,
    resource_group: &str,
    vault: &str,
    fleet: usize,
) -> Option<Known> {
    if let Some(index) = fleet::index(subscription, resource_group, vault, fleet) {
        return Some(Known::Fleet(index));
    }
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
    /// Fleet vault `index` (1-based).
    Fleet(usize),
}

/// The 404 for a vault that does not exist, naming the first part of the path that is
/// unknown.
fn vault_not_found(request: &JobsRequest, fleet: usize) -> (StatusCode, Bytes) {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (seed_sub, seed_rg, _) = seed::VAULT;
    let fleet_place = fleet::template()
        .filter(|_| fleet > 0)
        .map(|t| (t.subscription, fleet::RESOURCE_GROUP));
    let places = VAULTS
        .iter()
        .map(|v| (v.subscription, v.resource_group))
        .chain(std::iter::once((seed_sub, seed_rg)))
        .chain(fleet_place);
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
