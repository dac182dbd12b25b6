//! Azure Backup jobs (seed 004) and the two ways to get a token for them, with the
//! simulator's own types and raw JSON.
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: Azure AD client credentials (form body), checked
//!   against [`SimOptions::azure`](super::SimOptions::azure);
//! - `GET /metadata/identity/oauth2/token`: managed identity (IMDS), needs `Metadata: true`;
//!   `expires_in` is a string, as the real IMDS sends it;
//! - `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs`:
//!   newest first, pages of [`PAGE_SIZE`] linked by an absolute `nextLink` with
//!   `$skiptoken`; `$filter` takes `startTime eq '...' and endTime eq '...'` (the job's
//!   `startTime` inside the window; `YYYY-MM-DD hh:mm:ss AM` in UTC, as Azure's examples, or
//!   RFC 3339) and `operation`, `status`, `backupManagementType eq` clauses. List items
//!   carry no `extendedInfo`;
//! - `GET .../backupJobs/{jobName}`: the job with `extendedInfo` (tasks, property bag,
//!   `progressPercentage` and `estimatedRemainingDuration` while in progress).
//!
//! Path segment names, subscription, resource group and vault are case-insensitive, as in
//! Azure Resource Manager. The management endpoints need `Authorization: Bearer` with a
//! live token from either token endpoint.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST};
use hyper::{Method, Request, Response, StatusCode};
use serde::ser::SerializeMap as _;
use serde::Serialize;
use serde_json::{json, Value};

use super::faults::{self, Action, Target};
use super::fixtures::{AZURE_JOB_DETAILS, AZURE_JOB_LIST_ITEM, AZURE_SEED_VAULT};
use super::router::{
    form_pairs, full, percent_decode, percent_encode, read_body, reason, streamed, truncated,
    with_retry_after, Body, DropConnection,
};
use super::scenario::{fnv, mix, unit};
use super::Simulator;

/// Jobs per page of the job list.
pub(crate) const PAGE_SIZE: usize = 3;
/// Cycles of live jobs kept in a vault's list.
const HISTORY: i64 = 3;
/// Longer cycles are treated as this long, which keeps every time computable.
const MAX_CYCLE_MS: i64 = 30 * 86_400_000;
/// Largest token request body accepted.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;
/// How long an expired token is remembered, to answer `ExpiredAuthenticationToken`.
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);
/// `client_id` that IMDS reports for the managed identity.
const IMDS_CLIENT_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

/// A VM protected by a live vault, and how its jobs go.
pub(crate) struct VmDef {
    pub name: &'static str,
    /// The backup of cycle `n` fails when `n % fail_every == 0` (0 = never).
    fail_every: i64,
    /// ... completes with warnings when `n % warn_every == 2`.
    warn_every: i64,
    /// ... is cancelled (shown `Cancelling` a moment first) when `n % cancel_every == 1`.
    cancel_every: i64,
    /// A restore runs late in cycle `n` when `n % restore_every == 0`.
    restore_every: i64,
    /// Backup is (re)configured early in cycle `n` when `n % configure_every == 3`.
    configure_every: i64,
    /// Durations as ISO 8601 (`PT12.4272909S`) instead of a TimeSpan (`00:20:23.0896697`).
    iso_duration: bool,
    classic: bool,
    /// Share of the cycle a backup takes.
    run: f64,
    size_mb: u32,
}

const fn vm(name: &'static str) -> VmDef {
    VmDef {
        name,
        fail_every: 0,
        warn_every: 0,
        cancel_every: 0,
        restore_every: 0,
        configure_every: 0,
        iso_duration: false,
        classic: false,
        run: 0.5,
        size_mb: 2048,
    }
}

/// A live Recovery Services vault.
pub(crate) struct VaultDef {
    pub subscription: &'static str,
    pub resource_group: &'static str,
    pub name: &'static str,
    pub vms: &'static [VmDef],
}

pub(crate) static VAULTS: &[VaultDef] = &[
    VaultDef {
        subscription: "11111111-2222-3333-4444-555555555555",
        resource_group: "rg-backup",
        name: "vault-01",
        vms: &[
            VmDef {
                warn_every: 3,
                size_mb: 5120,
                ..vm("vm-web-01")
            },
            VmDef {
                fail_every: 4,
                restore_every: 5,
                iso_duration: true,
                run: 0.6,
                size_mb: 40_960,
                ..vm("vm-db-01")
            },
            VmDef {
                cancel_every: 4,
                configure_every: 6,
                run: 0.4,
                ..vm("vm-app-02")
            },
            VmDef {
                fail_every: 5,
                warn_every: 4,
                restore_every: 7,
                iso_duration: true,
                run: 0.65,
                size_mb: 153_600,
                ..vm("가상머신-파일서버")
            },
        ],
    },
    VaultDef {
        subscription: "11111111-2222-3333-4444-555555555555",
        resource_group: "rg-dr",
        name: "vault-dr",
        vms: &[
            VmDef {
                classic: true,
                run: 0.3,
                ..vm("vm-dr-01")
            },
            VmDef {
                fail_every: 3,
                iso_duration: true,
                ..vm("vm-dr-02")
            },
        ],
    },
];

/// One job as the vault serves it: its list item and details answer, ready-made, and the
/// fields the list filters and sorts on.
#[derive(Clone, Debug)]
pub(crate) struct JobRecord {
    name: String,
    start: Option<DateTime<Utc>>,
    operation: String,
    status: String,
    management: String,
    list: String,
    details: String,
}

impl JobRecord {
    /// A JobResource object; `properties.extendedInfo` only goes into the details answer.
    pub(crate) fn from_value(mut value: Value) -> Result<JobRecord, String> {
        let name = value["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or("every job needs a non-empty string \"name\"")?
            .to_string();
        let details = value.to_string();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let properties = &value["properties"];
        let start = properties["startTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let operation = text(&properties["operation"]);
        let status = text(&properties["status"]);
        let management = text(&properties["backupManagementType"]);
        if let Some(properties) = value.get_mut("properties").and_then(Value::as_object_mut) {
            properties.remove("extendedInfo");
        }
        Ok(JobRecord {
            name,
            start,
            operation,
            status,
            management,
            list: value.to_string(),
            details,
        })
    }

    /// The details answer, parsed.
    #[cfg(test)]
    pub(crate) fn details_json(&self) -> Value {
        serde_json::from_str(&self.details).unwrap_or_default()
    }

    /// The seed 004 job: the details answer verbatim, the list item without `extendedInfo`.
    fn seed() -> JobRecord {
        JobRecord {
            name: "7ddead57-bcb9-4269-ac31-6a1b57588700".to_string(),
            start: DateTime::parse_from_rfc3339("2018-05-21T08:35:40.9488967Z")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            operation: "Backup".to_string(),
            status: "Completed".to_string(),
            management: "AzureIaasVM".to_string(),
            list: AZURE_JOB_LIST_ITEM.to_string(),
            details: AZURE_JOB_DETAILS.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Backup,
    Restore,
    ConfigureBackup,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "Backup",
            Operation::Restore => "Restore",
            Operation::ConfigureBackup => "ConfigureBackup",
        }
    }
}

/// A JobResource in the field order of seed 004.
#[derive(Serialize)]
struct JobResource<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: JobProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobProperties<'a> {
    job_type: &'static str,
    duration: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actions_info: Option<[u8; 1]>,
    virtual_machine_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    extended_info: Option<ExtendedInfo>,
    entity_friendly_name: &'a str,
    backup_management_type: &'static str,
    operation: &'static str,
    status: &'static str,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    activity_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_details: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtendedInfo {
    tasks_list: Vec<Task>,
    property_bag: Bag,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress_percentage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    estimated_remaining_duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dynamic_error_message: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Task {
    task_id: &'static str,
    duration: String,
    status: &'static str,
}

/// A JSON object keeping its insertion order.
struct Bag(Vec<(&'static str, String)>);

impl Serialize for Bag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A UUID-shaped string from a hash.
fn uuid(h: u64) -> String {
    let (a, b) = (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// `2018-05-21T08:35:40.9488967Z`: seven fraction digits, the last four from `jitter`.
fn time7(ms: i64, jitter: u64) -> Option<String> {
    let t = DateTime::<Utc>::from_timestamp_millis(ms)?;
    let ticks = u64::from(t.timestamp_subsec_millis()) * 10_000 + jitter % 10_000;
    Some(format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S")))
}

/// A .NET TimeSpan: `00:20:23.0896697`, `1.02:03:04.0000000` past a day.
fn timespan(ticks: u64) -> String {
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let hms = format!(
        "{:02}:{:02}:{:02}.{frac:07}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    match secs / 86_400 {
        0 => hms,
        days => format!("{days}.{hms}"),
    }
}

/// ISO 8601: `PT12.4272909S`, `PT1H2M3.0000000S`.
fn iso_duration(ticks: u64) -> String {
    let (secs, frac) = (ticks / 10_000_000, ticks % 10_000_000);
    let mut out = "PT".to_string();
    if secs >= 3600 {
        let _ = write!(out, "{}H", secs / 3600);
    }
    if secs >= 60 {
        let _ = write!(out, "{}M", secs / 60 % 60);
    }
    let _ = write!(out, "{}.{frac:07}S", secs % 60);
    out
}

/// `HH:MM:SS`, as the seed writes task durations.
fn hms(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The job `op` of `vm` in cycle `k`, as it stands at `now_ms`; `None` before it starts.
fn live_job(
    vault: &VaultDef,
    vm: &VmDef,
    op: Operation,
    k: i64,
    now_ms: i64,
    cycle: i64,
) -> Option<JobRecord> {
    let vm_seed = fnv(vault.name) ^ fnv(vm.name).rotate_left(21);
    let offset = (unit(mix(vm_seed)) * cycle as f64) as i64;
    let seed = mix(vm_seed ^ mix(k as u64) ^ ((op as u64) << 56));
    let roll = unit(seed);
    let base = k.saturating_mul(cycle).saturating_sub(offset);
    let (start_share, run_share) = match op {
        Operation::Backup => (0.1, vm.run.clamp(0.05, 0.6) * (0.8 + 0.2 * roll)),
        Operation::Restore => (0.72, 0.18),
        Operation::ConfigureBackup => (0.02, 0.03),
    };
    let start = base + (start_share * cycle as f64) as i64;
    if now_ms < start {
        return None;
    }
    let run = ((run_share * cycle as f64) as i64).max(1);
    let hit = |every: i64, rem: i64| every > 0 && k.rem_euclid(every) == rem;
    let (outcome, stop_at) = match op {
        Operation::Backup if hit(vm.fail_every, 0) => ("Failed", 0.3 + 0.6 * roll),
        Operation::Backup if hit(vm.cancel_every, 1) => ("Cancelled", 0.2 + 0.5 * roll),
        Operation::Backup if hit(vm.warn_every, 2) => ("CompletedWithWarnings", 1.0),
        _ => ("Completed", 1.0),
    };
    let stop = start + ((run as f64 * stop_at) as i64).max(1);
    let cancelling = if outcome == "Cancelled" {
        (cycle / 20).max(1)
    } else {
        0
    };
    let (status, end, done) = if now_ms < stop {
        ("InProgress", None, (now_ms - start) as f64 / run as f64)
    } else if now_ms < stop + cancelling {
        ("Cancelling", None, stop_at)
    } else {
        (outcome, Some(stop + cancelling), stop_at)
    };
    let running = end.is_none();
    let elapsed_ms = end.unwrap_or(now_ms) - start;
    let ticks = u64::try_from(elapsed_ms).unwrap_or(0) * 10_000 + (mix(seed ^ 1) % 10_000);
    let duration = if vm.iso_duration {
        iso_duration(ticks)
    } else {
        timespan(ticks)
    };
    let name = uuid(seed ^ 0xa5);
    let start_time = time7(start, mix(seed ^ 2))?;
    let end_time = match end {
        Some(end) => Some(time7(end, mix(seed ^ 3))?),
        None => None,
    };

    // Tasks: each covers a share of the run; the one the run stopped in takes its outcome.
    let shares: &[(&'static str, f64, f64)] = match op {
        Operation::Backup => &[
            ("Take Snapshot", 0.0, 0.2),
            ("Transfer data to vault", 0.2, 1.0),
        ],
        Operation::Restore => &[("Transfer data", 0.0, 1.0)],
        Operation::ConfigureBackup => &[],
    };
    let tasks_list = shares
        .iter()
        .map(|&(task_id, from, to)| {
            let finished = running || outcome.starts_with("Completed") || to < stop_at;
            let status = if done >= to && finished {
                "Completed"
            } else if done < from {
                "NotStarted"
            } else if running {
                "InProgress"
            } else if outcome == "Failed" {
                "Failed"
            } else {
                "Cancelled"
            };
            let spent = (done.clamp(from, to) - from) * run as f64;
            Task {
                task_id,
                duration: hms(spent as i64),
                status,
            }
        })
        .collect();
    let mut bag = vec![("VM Name", vm.name.to_string())];
    match op {
        Operation::Backup if outcome.starts_with("Completed") && !running => {
            let size = f64::from(vm.size_mb) * (0.9 + 0.2 * unit(mix(seed ^ 4)));
            bag.push(("Backup Size", format!("{} MB", size.round())));
        }
        Operation::Restore => {
            bag.push(("Job Type", "Recover disks".to_string()));
            bag.push(("Target Storage Account Name", "restorestg01".to_string()));
            bag.push(("Target resource group", "rg-restore".to_string()));
        }
        Operation::ConfigureBackup => {
            bag.push(("Policy Name", "DefaultPolicy".to_string()));
        }
        Operation::Backup => {}
    }
    let failed = outcome == "Failed" && !running;
    let extended_info = ExtendedInfo {
        tasks_list,
        property_bag: Bag(bag),
        progress_percentage: running.then(|| ((done * 100.0).min(99.99) * 100.0).round() / 100.0),
        estimated_remaining_duration: (status == "InProgress")
            .then(|| hms(((1.0 - done) * run as f64) as i64)),
        dynamic_error_message: failed
            .then_some("Could not communicate with the VM agent for snapshot status."),
    };
    let error_details = if failed {
        vec![json!({
            "errorCode": 400_006,
            "errorString": "Could not communicate with the VM agent for snapshot status.",
            "errorTitle": "",
            "recommendations": [
                "Ensure that the VM agent is running and reachable, then retry the operation."
            ],
        })]
    } else {
        Vec::new()
    };
    let mut resource = JobResource {
        id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/microsoft.recoveryservices/vaults/{}/backupJobs/{name}",
            vault.subscription, vault.resource_group, vault.name
        ),
        name: &name,
        kind: "Microsoft.RecoveryServices/vaults/backupJobs",
        properties: JobProperties {
            job_type: "AzureIaaSVMJob",
            duration,
            actions_info: running.then_some([1]),
            virtual_machine_version: if vm.classic { "ClassicCompute" } else { "Compute" },
            extended_info: Some(extended_info),
            entity_friendly_name: vm.name,
            backup_management_type: "AzureIaasVM",
            operation: op.as_str(),
            status,
            start_time,
            end_time,
            activity_id: uuid(seed ^ 0x5a),
            error_details,
        },
    };
    let details = serde_json::to_string(&resource).ok()?;
    resource.properties.extended_info = None;
    let list = serde_json::to_string(&resource).ok()?;
    Some(JobRecord {
        name: name.clone(),
        start: DateTime::<Utc>::from_timestamp_millis(start),
        operation: op.as_str().to_string(),
        status: status.to_string(),
        management: "AzureIaasVM".to_string(),
        list,
        details,
    })
}

/// The jobs of a live vault at `now_ms` that have started: each VM's backups of the last
/// [`HISTORY`] cycles and its two latest restores and configurations.
pub(crate) fn live_jobs(vault: &VaultDef, now_ms: i64, cycle_ms: i64) -> Vec<JobRecord> {
    let cycle = cycle_ms.clamp(1, MAX_CYCLE_MS);
    let mut jobs = Vec::new();
    for vm in vault.vms {
        let vm_seed = fnv(vault.name) ^ fnv(vm.name).rotate_left(21);
        let offset = (unit(mix(vm_seed)) * cycle as f64) as i64;
        let n = now_ms.saturating_add(offset).div_euclid(cycle);
        let mut runs: Vec<(Operation, i64)> = (n - HISTORY + 1..=n)
            .map(|k| (Operation::Backup, k))
            .collect();
        // Restores and configurations are rarer: keep the latest two of each, so that one
        // that has already started is always in the list.
        for (op, every, rem) in [
            (Operation::Restore, vm.restore_every, 0),
            (Operation::ConfigureBackup, vm.configure_every, 3),
        ] {
            if every > 0 {
                let latest = n - (n - rem).rem_euclid(every);
                runs.push((op, latest));
                runs.push((op, latest - every));
            }
        }
        jobs.extend(
            runs.into_iter()
                .filter_map(|(op, k)| live_job(vault, vm, op, k, now_ms, cycle)),
        );
    }
    sort_newest_first(&mut jobs);
    jobs
}

/// Newest `startTime` first, jobs without one last; ties by name.
pub(crate) fn sort_newest_first(jobs: &mut [JobRecord]) {
    jobs.sort_by(|a, b| {
        b.start
            .is_some()
            .cmp(&a.start.is_some())
            .then(b.start.cmp(&a.start))
            .then(a.name.cmp(&b.name))
    });
}

/// An Azure Resource Manager error answer.
fn arm_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    full(status, arm_error_body(code, message))
}

fn arm_error_body(code: &str, message: &str) -> Bytes {
    let body = json!({ "error": { "code": code, "message": message } });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

fn arm_unauthorized(code: &str, message: &str) -> Response<Body> {
    let mut response = arm_error(StatusCode::UNAUTHORIZED, code, message);
    let challenge = format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{message}\""
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert("www-authenticate", value);
    }
    response
}

/// An Azure AD (and IMDS) error answer: `error`, `error_description` and the usual extras.
fn aad_error(status: StatusCode, error: &str, description: &str) -> Response<Body> {
    let trace = uuid(rand::random());
    let correlation = uuid(rand::random());
    let now = Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let code: u64 = description
        .strip_prefix("AADSTS")
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = json!({
        "error": error,
        "error_description": format!(
            "{description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"
        ),
        "error_codes": [code],
        "timestamp": now.to_string(),
        "trace_id": trace,
        "correlation_id": correlation,
    });
    full(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn imds_error(status: StatusCode, description: &str) -> Response<Body> {
    let body = json!({ "error": "invalid_request", "error_description": description });
    full(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// The whole body of a ready-made answer (for the `truncated` fault).
async fn body_bytes(response: Response<Body>) -> Bytes {
    use http_body_util::BodyExt as _;
    match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    }
}

/// A fresh opaque access token.
fn new_token() -> String {
    format!(
        "sim-azure.{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

impl Simulator {
    /// Issues an Azure token living for `token_lifetime`.
    fn issue_azure_token(&self) -> String {
        let token = new_token();
        let now = Instant::now();
        let lifetime = self.opts.token_lifetime;
        let expiry = now
            .checked_add(lifetime)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        let mut state = self.lock();
        state
            .azure_tokens
            .retain(|_, e| e.checked_add(EXPIRED_MEMORY).is_none_or(|e| e > now));
        state.azure_tokens.insert(token.clone(), expiry);
        token
    }

    /// `Authorization: Bearer` with a live Azure token, else the ARM 401 answer.
    #[allow(clippy::result_large_err)]
    fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let Some(token) = token else {
            return Err(arm_unauthorized(
                "InvalidAuthenticationToken",
                "The access token is missing or malformed.",
            ));
        };
        let expiry = self.lock().azure_tokens.get(token).copied();
        match expiry {
            Some(expiry) if Instant::now() < expiry => Ok(()),
            Some(_) => Err(arm_unauthorized(
                "ExpiredAuthenticationToken",
                "The access token has expired.",
            )),
            None => Err(arm_unauthorized(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )),
        }
    }

    fn lifetime_secs(&self) -> u64 {
        self.opts.token_lifetime.as_secs()
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`: client credentials.
pub(crate) async fn token(
    sim: &Simulator,
    req: Request<Incoming>,
    raw_tenant: &str,
) -> Result<Response<Body>, DropConnection> {
    let Some(tenant) = percent_decode(raw_tenant).filter(|t| !t.is_empty()) else {
        return Ok(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002: Tenant '' not found.",
        ));
    };
    sim.count(Target::Token, &tenant);
    if req.method() != Method::POST {
        return Ok(aad_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests.",
        ));
    }
    let body = match read_body(req.into_body(), TOKEN_BODY_LIMIT).await {
        Ok(body) => body,
        Err(status) => {
            return Ok(aad_error(
                status,
                "invalid_request",
                "AADSTS900144: The request body could not be read.",
            ))
        }
    };
    let response = match faults::action(sim.take_fault(Target::Token, &tenant)).await? {
        Action::Answer => client_credentials(sim, &tenant, &body),
        Action::Error(StatusCode::UNAUTHORIZED) => aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        ),
        Action::Error(StatusCode::NOT_FOUND) => aad_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        ),
        Action::Error(StatusCode::BAD_REQUEST) => aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        ),
        Action::Error(status) => aad_error(
            status,
            "server_error",
            "AADSTS50000: There was an error issuing a token.",
        ),
        Action::RateLimited(secs) => with_retry_after(
            aad_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
            ),
            secs,
        ),
        Action::Truncate => {
            truncated(body_bytes(client_credentials(sim, &tenant, &body)).await)
        }
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"token_type":"Bearer","padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
    Ok(response)
}

fn client_credentials(sim: &Simulator, tenant: &str, body: &[u8]) -> Response<Body> {
    let missing = |name: &str| {
        aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "AADSTS900144: The request body must contain the following parameter: '{name}'."
            ),
        )
    };
    let Some(pairs) = std::str::from_utf8(body).ok().and_then(form_pairs) else {
        return missing("grant_type");
    };
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(grant_type) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant_type != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    let (Some(client_id), Some(client_secret), Some(scope)) =
        (field("client_id"), field("client_secret"), field("scope"))
    else {
        let name = ["client_id", "client_secret", "scope"]
            .into_iter()
            .find(|n| field(n).is_none())
            .unwrap_or("scope");
        return missing(name);
    };
    let Some(app) = sim
        .opts
        .azure
        .as_ref()
        .filter(|a| a.tenant_id.eq_ignore_ascii_case(tenant))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."),
        );
    };
    if !scope.split(' ').all(|s| s.ends_with("/.default")) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    if !app.client_id.eq_ignore_ascii_case(client_id) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    if app.client_secret != client_secret {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        );
    }
    let lifetime = sim.lifetime_secs();
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": sim.issue_azure_token(),
    });
    full(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// `GET /metadata/identity/oauth2/token`: managed identity.
pub(crate) async fn imds(
    sim: &Simulator,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    sim.count(Target::Imds, "default");
    if req.method() != Method::GET {
        return Ok(imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET is supported",
        ));
    }
    let metadata = req
        .headers()
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !metadata {
        return Ok(imds_error(
            StatusCode::BAD_REQUEST,
            "Required metadata header not specified",
        ));
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let response = match faults::action(sim.take_fault(Target::Imds, "default")).await? {
        Action::Answer => managed_identity(sim, &query),
        Action::Error(status) => imds_error(status, reason(status)),
        Action::RateLimited(secs) => with_retry_after(
            imds_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            secs,
        ),
        Action::Truncate => truncated(body_bytes(managed_identity(sim, &query)).await),
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"token_type":"Bearer","padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
    Ok(response)
}

fn managed_identity(sim: &Simulator, query: &str) -> Response<Body> {
    let Some(pairs) = form_pairs(query) else {
        return imds_error(StatusCode::BAD_REQUEST, "Malformed query string");
    };
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    if param("api-version").is_none() {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = param("resource") else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "Required audience parameter not specified",
        );
    };
    let lifetime = sim.lifetime_secs();
    let now = Utc::now().timestamp();
    let expires_on = now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
    let body = json!({
        "access_token": sim.issue_azure_token(),
        "client_id": IMDS_CLIENT_ID,
        "expires_in": lifetime.to_string(),
        "expires_on": expires_on.to_string(),
        "ext_expires_in": lifetime.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    full(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The parsed `$filter` of a job list.
#[derive(Debug, Default)]
struct Filter {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    operation: Option<String>,
    status: Option<String>,
    management: Option<String>,
}

/// A filter time: `2024-01-01 01:02:03 AM` (UTC, Azure's examples), `2024-01-01 13:02:03`,
/// or RFC 3339.
fn filter_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %I:%M:%S %p",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .into_iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
}

impl Filter {
    /// `field eq 'value' [and field eq 'value']...`, keywords and fields case-insensitive.
    fn parse(text: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        let mut rest = text.trim();
        while !rest.is_empty() {
            let field_len = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let (field, after) = rest.split_at(field_len);
            let after = after.trim_start();
            let after = after
                .get(..2)
                .filter(|op| op.eq_ignore_ascii_case("eq"))
                .map(|_| after[2..].trim_start())
                .ok_or_else(|| format!("expected `{field} eq '...'` in $filter"))?;
            let after = after
                .strip_prefix('\'')
                .ok_or_else(|| format!("expected a quoted value after `{field} eq`"))?;
            let close = after
                .find('\'')
                .ok_or("unterminated quoted value in $filter")?;
            let value = &after[..close];
            let time =
                || filter_time(value).ok_or_else(|| format!("invalid time '{value}' in $filter"));
            match field.to_ascii_lowercase().as_str() {
                "starttime" => filter.start = Some(time()?),
                "endtime" => filter.end = Some(time()?),
                "operation" => filter.operation = Some(value.to_string()),
                "status" => filter.status = Some(value.to_string()),
                "backupmanagementtype" => filter.management = Some(value.to_string()),
                _ => return Err(format!("unsupported $filter property '{field}'")),
            }
            rest = after[close + 1..].trim_start();
            if !rest.is_empty() {
                rest = rest
                    .get(..3)
                    .filter(|and| and.eq_ignore_ascii_case("and"))
                    .map(|_| rest[3..].trim_start())
                    .filter(|r| !r.is_empty())
                    .ok_or("$filter clauses must be joined by `and`")?;
            }
        }
        Ok(filter)
    }

    fn matches(&self, job: &JobRecord) -> bool {
        let same = |want: &Option<String>, have: &str| {
            want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        if !same(&self.operation, &job.operation)
            || !same(&self.status, &job.status)
            || !same(&self.management, &job.management)
        {
            return false;
        }
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        job.start
            .is_some_and(|t| self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e))
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
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

/// `GET /subscriptions/...`; `rest` are the raw path segments after `subscriptions`.
pub(crate) async fn management(
    sim: &Simulator,
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
        let mut response = arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The requested method is not allowed.",
        );
        response
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET"));
        return Ok(response);
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
        (Some(job), _) => (Target::Job, job),
        (None, Some(_)) => (Target::VaultNext, &request.vault),
        (None, None) => (Target::Vault, &request.vault),
    };
    sim.count(target, key);
    if let Err(response) = sim.check_bearer(req.headers()) {
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
        Some(job) => sim
            .take_fault(Target::Vault, &request.vault)
            .or_else(|| sim.take_fault(Target::Job, job)),
        None => sim.take_fault(target, &request.vault),
    };
    let response = match faults::action(fault).await? {
        Action::Answer => {
            let (status, body) = sim.jobs_body(&request);
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
        Action::Truncate => truncated(sim.jobs_body(&request).1),
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"value":[],"padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
    Ok(response)
}

/// Which vault a request names, if any, case-insensitively.
fn known_vault(subscription: &str, resource_group: &str, vault: &str) -> Option<Known> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let (seed_sub, seed_rg, seed_vault) = AZURE_SEED_VAULT;
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
    let (seed_sub, seed_rg, _) = AZURE_SEED_VAULT;
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

impl Simulator {
    /// The jobs of the vault a request names, newest first: replaced by the admin API
    /// (an unknown vault name then answers under any subscription and resource group), the
    /// seed's, or live.
    fn vault_jobs(&self, request: &JobsRequest) -> Option<Arc<Vec<JobRecord>>> {
        let known = known_vault(
            &request.subscription,
            &request.resource_group,
            &request.vault,
        );
        let replaced = self
            .lock()
            .azure_jobs
            .get(&request.vault.to_lowercase())
            .cloned();
        if let Some(jobs) = replaced {
            let named_elsewhere = known.is_none()
                && (request.vault.eq_ignore_ascii_case(AZURE_SEED_VAULT.2)
                    || VAULTS
                        .iter()
                        .any(|v| v.name.eq_ignore_ascii_case(&request.vault)));
            return (!named_elsewhere).then_some(jobs);
        }
        match known? {
            Known::Seed => Some(Arc::new(vec![JobRecord::seed()])),
            Known::Live(vault) => {
                let now = Utc::now().timestamp_millis();
                Some(Arc::new(live_jobs(vault, now, self.cycle_ms)))
            }
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
        for (i, job) in matching.iter().skip(skip).take(PAGE_SIZE).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&job.list);
        }
        body.push(']');
        let next = skip.saturating_add(PAGE_SIZE);
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
