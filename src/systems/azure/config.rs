//! The keys of a `type: azure` upstream, their checks with YAML paths, and the resolved
//! config the Azure source runs with: its summary and warnings.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Deserialize;

use crate::config::checks::{
    count, join, read_capped, Cx, RawDuration, Scalar, Secret, MAX_SECRET_FILE_BYTES,
};
use crate::config::settings::{self, Defaults, RawSettings, Settings, Validated};
use crate::config::upstream::{self, Discover};

/// `lookback` by default: the longest threshold the shipped rules give a job without a
/// successful run (8 days, weekly jobs in `backup-exporter-overrides.rules.yml`) and a day
/// to spare, so a job that stopped running is still listed when its alert fires, even
/// right after a restart (interface 6.2).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(9 * 86_400);
/// `lookback`: at least a minute; the long end is for replaying old job histories (the
/// seed samples date from years back), the job pages stay capped whatever the window.
pub const LOOKBACK: RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(20 * 31_557_600);
const DEFAULT_API_VERSION: &str = "2017-07-01";
const DEFAULT_MANAGEMENT_URL: &str = "https://management.azure.com";
const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
/// What the AKS workload identity webhook injects into the pod.
const ENV_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
const ENV_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// A `type: azure` upstream as written (the poll settings keys are read by `settings`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAzure {
    /// Unique name; becomes the `upstream` label.
    name: String,
    /// `azure`.
    #[serde(rename = "type")]
    _type: String,
    /// Azure AD tenant (directory) id; required with a client secret.
    tenant_id: Option<String>,
    /// Application (client) id; required with a client secret, picks a user-assigned
    /// identity with `managed_identity`.
    client_id: Option<String>,
    /// Environment variable holding the client secret.
    client_secret_env: Option<String>,
    /// File holding the client secret (relative to the config file's directory).
    client_secret_file: Option<String>,
    /// Use the managed identity (IMDS) instead of a client secret.
    managed_identity: Option<bool>,
    /// Use workload identity (AKS): exchange the federated token in the file named by
    /// `AZURE_FEDERATED_TOKEN_FILE` (re-read on every token request) for a token; the
    /// client id and tenant come from `AZURE_CLIENT_ID`/`AZURE_TENANT_ID` unless
    /// `client_id`/`tenant_id` are set.
    workload_identity: Option<bool>,
    /// The subscription holding the vaults.
    subscription_id: String,
    /// Vaults to poll: `{resource_group, name}`.
    vaults: Option<Vec<RawVault>>,
    /// The job list window (default 24h, from 1m to 20 years).
    lookback: Option<RawDuration>,
    /// ARM api-version of the backupJobs calls (default 2017-07-01).
    api_version: Option<Scalar>,
    /// ARM endpoint (default https://management.azure.com).
    management_url: Option<String>,
    /// Azure AD authority (default https://login.microsoftonline.com; with
    /// `workload_identity`, `AZURE_AUTHORITY_HOST` when set), or the IMDS base (default
    /// http://169.254.169.254) with `managed_identity`.
    authority_url: Option<String>,
    /// Extra raw status -> normalized status.
    status_map: Option<BTreeMap<String, String>>,
    /// List the subscription's Recovery Services vaults and monitor every vault found,
    /// beside the vaults listed here (which win over a discovered duplicate). Default false.
    discover: Option<bool>,
    /// How often the vaults are listed with `discover: true`. Default 10m, from 1s to 24h.
    discover_interval: Option<RawDuration>,
    /// Filters of the vault list with `discover: true`.
    discover_filters: Option<RawFilters>,
}

/// The filter of the vault list ARM offers: the resource group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilters {
    /// Only the vaults of this resource group
    /// (`/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults`).
    resource_group: Option<Scalar>,
}

/// A Recovery Services vault as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    /// The resource group holding the vault.
    resource_group: String,
    /// The vault's name.
    name: String,
}

/// Azure Backup (Recovery Services vaults) through the ARM API.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureConfig {
    /// How tokens for the ARM API are obtained.
    pub auth: AzureAuth,
    /// The subscription holding the vaults.
    pub subscription_id: String,
    /// The vaults whose jobs are polled.
    pub vaults: Vec<AzureVault>,
    /// The job list window.
    pub lookback: Duration,
    /// ARM api-version of the backupJobs calls.
    pub api_version: String,
    /// No trailing slash.
    pub management_url: String,
    /// No trailing slash: the Azure AD authority, or the IMDS base with managed identity.
    pub authority_url: String,
    /// `discover: true`: how and how often the vaults are listed.
    pub discovery: Option<AzureDiscovery>,
}

/// How an Azure upstream is listed (`discover: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct AzureDiscovery {
    /// `discover_interval`.
    pub interval: Duration,
    /// `discover_filters.resource_group`: only this resource group's vaults are listed.
    pub resource_group: Option<String>,
}

/// How tokens for the ARM API are obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum AzureAuth {
    /// An app registration's client secret.
    ClientSecret {
        /// The Azure AD tenant (directory) id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        secret: Secret,
    },
    /// The VM's or pod's managed identity through IMDS; `client_id` picks a user-assigned one.
    ManagedIdentity {
        /// Picks a user-assigned identity; the system-assigned one when absent.
        client_id: Option<String>,
    },
    /// Workload identity: a federated token (a file that rotates) exchanged as a jwt-bearer
    /// client assertion.
    WorkloadIdentity {
        /// The Azure AD tenant (directory) id.
        tenant_id: String,
        /// The application (client) id the federated credential belongs to.
        client_id: String,
        /// The federated token file (`AZURE_FEDERATED_TOKEN_FILE`), read on every token
        /// request: the kubelet rotates it.
        token_file: std::path::PathBuf,
    },
}

/// One Recovery Services vault.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureVault {
    /// The resource group holding the vault.
    pub resource_group: String,
    /// The vault's name.
    pub name: String,
}

impl AzureConfig {
    /// The `--check-config` line after `name: azure `; never contains a secret.
    pub fn summary(&self, every: &str) -> String {
        let auth = match &self.auth {
            AzureAuth::ClientSecret { .. } => "client secret",
            AzureAuth::ManagedIdentity { .. } => "managed identity",
            AzureAuth::WorkloadIdentity { .. } => "workload identity",
        };
        let discovers = match &self.discovery {
            Some(d) => format!(
                ", discovers every {}{}",
                humantime::format_duration(d.interval),
                d.resource_group
                    .as_ref()
                    .map(|rg| format!(" in resource group {rg}"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        format!(
            "{} subscription {}, {}{discovers}, lookback {}, every {every}, auth {auth}",
            self.management_url,
            self.subscription_id,
            count(self.vaults.len(), "vault"),
            humantime::format_duration(self.lookback),
        )
    }

    /// None: ARM's times carry their offset, and every setting here says what it means.
    pub fn warnings(&self, _: &Settings) -> Vec<String> {
        Vec::new()
    }
}

impl AzureVault {
    /// Whether both name the same vault: ARM compares resource groups and names without
    /// regard to case.
    pub fn same(&self, other: &AzureVault) -> bool {
        self.key() == other.key()
    }

    /// What [`AzureVault::same`] compares: both names in lower case.
    pub fn key(&self) -> (String, String) {
        (self.resource_group.to_lowercase(), self.name.to_lowercase())
    }

    /// The `target` label: `{resource_group}/{name}`.
    pub fn target(&self) -> String {
        format!("{}/{}", self.resource_group, self.name)
    }
}

/// Ids and names that go into ARM URL paths: letters, digits, `-`, `_`, `.`, `(`, `)`.
pub(super) fn is_azure_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

/// Validates a `type: azure` upstream at `path`, with its poll settings `overrides`.
pub(super) fn validate(
    cx: &mut Cx<'_>,
    path: &str,
    mut raw: RawAzure,
    overrides: &RawSettings,
    defaults: Option<&Defaults>,
) -> Option<Validated<AzureConfig>> {
    let errors_before = cx.errors.len();
    let p = |key: &str| join(path, key);
    cx.name(path, &raw.name);
    let auth = auth(cx, path, &raw);
    let subscription_id = raw.subscription_id.trim().to_owned();
    if !is_azure_name(&subscription_id) {
        cx.error(
            p("subscription_id"),
            format!("invalid subscription id `{subscription_id}`"),
        );
    }
    let lookback = match &raw.lookback {
        None => Some(DEFAULT_LOOKBACK),
        Some(d) => cx.bounded_duration(&p("lookback"), d, LOOKBACK),
    };
    let api_version = raw
        .api_version
        .take()
        .map_or_else(|| DEFAULT_API_VERSION.to_owned(), |v| v.0.trim().to_owned());
    if api_version.is_empty()
        || !api_version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        cx.error(
            p("api_version"),
            format!("invalid api_version `{api_version}`, expected e.g. 2017-07-01"),
        );
    }
    let management_url = cx.url(
        &p("management_url"),
        raw.management_url
            .as_deref()
            .unwrap_or(DEFAULT_MANAGEMENT_URL),
    );
    let default_authority = match &auth {
        Some(AzureAuth::ManagedIdentity { .. }) => DEFAULT_IMDS_URL.to_owned(),
        Some(AzureAuth::WorkloadIdentity { .. }) => (cx.env)(ENV_AUTHORITY_HOST)
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_AUTHORITY_URL.to_owned()),
        _ => DEFAULT_AUTHORITY_URL.to_owned(),
    };
    let authority_url = cx.url(
        &p("authority_url"),
        raw.authority_url.as_deref().unwrap_or(&default_authority),
    );
    let settings = settings::upstream(cx, path, overrides, defaults);
    let status_map = cx.status_map(&p("status_map"), raw.status_map.as_ref());

    let mut vaults = Vec::new();
    for (i, v) in raw.vaults.take().into_iter().flatten().enumerate() {
        let vp = format!("{}[{i}]", p("vaults"));
        let vault = AzureVault {
            resource_group: v.resource_group.trim().to_owned(),
            name: v.name.trim().to_owned(),
        };
        if !is_azure_name(&vault.resource_group) {
            cx.error(
                format!("{vp}.resource_group"),
                format!("invalid resource group `{}`", vault.resource_group),
            );
            continue;
        }
        if !is_azure_name(&vault.name) {
            cx.error(
                format!("{vp}.name"),
                format!("invalid vault name `{}`", vault.name),
            );
            continue;
        }
        if vaults.iter().any(|v: &AzureVault| v.same(&vault)) {
            cx.error(
                vp,
                format!("duplicate vault `{}/{}`", vault.resource_group, vault.name),
            );
            continue;
        }
        vaults.push(vault);
    }
    let discovery = discovery(cx, path, &raw);
    if matches!(discovery, Some(None)) && vaults.is_empty() {
        cx.error(
            path,
            "no targets: list at least one vault under `vaults`, or set `discover: true`",
        );
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Validated {
        name: raw.name,
        settings: settings?,
        status_map,
        config: AzureConfig {
            auth: auth?,
            subscription_id,
            vaults,
            lookback: lookback?,
            api_version,
            management_url: management_url?,
            authority_url: authority_url?,
            discovery: discovery.flatten(),
        },
    })
}

/// `discover`, `discover_interval`, `discover_filters`: `Some(None)` when discovery is off,
/// `None` on an error (reported to `cx`).
fn discovery(cx: &mut Cx<'_>, path: &str, raw: &RawAzure) -> Option<Option<AzureDiscovery>> {
    let p = |key: &str| join(path, key);
    let errors_before = cx.errors.len();
    let interval = match upstream::discover(
        cx,
        path,
        raw.discover,
        raw.discover_interval.as_ref(),
        raw.discover_filters.is_some(),
    )? {
        Discover::Off => return Some(None),
        Discover::On { interval } => interval,
    };
    let resource_group = raw
        .discover_filters
        .as_ref()
        .and_then(|f| f.resource_group.as_ref())
        .map(|rg| rg.0.trim().to_owned());
    if let Some(rg) = &resource_group {
        if !is_azure_name(rg) {
            cx.error(
                join(&p("discover_filters"), "resource_group"),
                format!("invalid resource group `{rg}`"),
            );
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Some(AzureDiscovery {
        interval: interval?,
        resource_group,
    }))
}

fn auth(cx: &mut Cx<'_>, path: &str, raw: &RawAzure) -> Option<AzureAuth> {
    let p = |key: &str| join(path, key);
    let mut methods = Vec::new();
    if raw.client_secret_env.is_some() {
        methods.push("client_secret_env");
    }
    if raw.client_secret_file.is_some() {
        methods.push("client_secret_file");
    }
    if raw.managed_identity == Some(true) {
        methods.push("managed_identity");
    }
    if raw.workload_identity == Some(true) {
        methods.push("workload_identity");
    }
    if methods.len() > 1 {
        cx.error(
            path,
            format!(
                "more than one authentication method ({}); set exactly one of client_secret_env, client_secret_file, managed_identity: true, workload_identity: true",
                methods.join(", ")
            ),
        );
        return None;
    }
    if raw.workload_identity == Some(true) {
        return workload_identity(cx, path, raw);
    }
    let client_id = raw
        .client_id
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if raw.managed_identity == Some(true) {
        if let Some(c) = client_id {
            if !is_azure_name(c) {
                cx.error(p("client_id"), format!("invalid client id `{c}`"));
                return None;
            }
        }
        return Some(AzureAuth::ManagedIdentity {
            client_id: client_id.map(str::to_owned),
        });
    }
    let secret = if let Some(var) = &raw.client_secret_env {
        cx.env_secret(&p("client_secret_env"), var)
    } else if let Some(file) = &raw.client_secret_file {
        cx.token_file(&p("client_secret_file"), file)
    } else {
        cx.error(
            path,
            "missing authentication: set client_secret_env, client_secret_file, managed_identity: true or workload_identity: true",
        );
        return None;
    };
    let tenant_id = raw
        .tenant_id
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let tenant_id = match tenant_id {
        Some(t) if is_azure_name(t) => Some(t.to_owned()),
        Some(t) => {
            cx.error(p("tenant_id"), format!("invalid tenant id `{t}`"));
            None
        }
        None => {
            cx.error(p("tenant_id"), "required with a client secret");
            None
        }
    };
    let client_id = match client_id {
        Some(c) if is_azure_name(c) => Some(c.to_owned()),
        Some(c) => {
            cx.error(p("client_id"), format!("invalid client id `{c}`"));
            None
        }
        None => {
            cx.error(p("client_id"), "required with a client secret");
            None
        }
    };
    Some(AzureAuth::ClientSecret {
        tenant_id: tenant_id?,
        client_id: client_id?,
        secret: secret?,
    })
}

/// Workload identity: the federated token file from the environment (checked readable
/// now, read again on every token request), client id and tenant configured or from the
/// environment the webhook sets.
fn workload_identity(cx: &mut Cx<'_>, path: &str, raw: &RawAzure) -> Option<AzureAuth> {
    let p = |key: &str| join(path, key);
    let from_env = |cx: &mut Cx<'_>, key: &str, configured: Option<&str>, var: &str| {
        let value = configured
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .or_else(|| {
                (cx.env)(var)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
            // A CI lint without the pod's environment: what the webhook injects is absent.
            .or_else(|| cx.skip_secrets.then(|| "skipped".to_owned()));
        match value {
            Some(v) if is_azure_name(&v) => Some(v),
            Some(v) => {
                let what = key.replace('_', " ");
                cx.error(p(key), format!("invalid {what} `{v}`"));
                None
            }
            None => {
                cx.error(
                    p(key),
                    format!("required with workload_identity: set {key} or the environment variable {var}"),
                );
                None
            }
        }
    };
    let tenant_id = from_env(cx, "tenant_id", raw.tenant_id.as_deref(), ENV_TENANT_ID);
    let client_id = from_env(cx, "client_id", raw.client_id.as_deref(), ENV_CLIENT_ID);
    let token_file = match (cx.env)(ENV_TOKEN_FILE).map(|f| f.trim().to_owned()) {
        _ if cx.skip_secrets => Some(std::path::PathBuf::from("skipped")),
        Some(file) if !file.is_empty() => {
            let file = std::path::PathBuf::from(file);
            match read_capped(&file, MAX_SECRET_FILE_BYTES) {
                Ok(text) if !text.trim().is_empty() => Some(file),
                Ok(_) => {
                    cx.error(
                        p("workload_identity"),
                        format!("federated token file {} is empty", file.display()),
                    );
                    None
                }
                Err(e) => {
                    cx.error(
                        p("workload_identity"),
                        format!("cannot read federated token file {}: {e}", file.display()),
                    );
                    None
                }
            }
        }
        _ => {
            cx.error(
                p("workload_identity"),
                format!("environment variable {ENV_TOKEN_FILE} is not set (the workload identity webhook sets it)"),
            );
            None
        }
    };
    Some(AzureAuth::WorkloadIdentity {
        tenant_id: tenant_id?,
        client_id: client_id?,
        token_file: token_file?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{is_azure_name, AzureAuth, AzureConfig, LOOKBACK};
    use crate::config::{parse, ConfigErrors, Upstream};

    fn azure(u: &Upstream) -> &AzureConfig {
        match u.kind.as_any().downcast_ref::<AzureConfig>() {
            Some(az) => az,
            None => panic!("not azure: {:?}", u.kind),
        }
    }

    fn env(name: &str) -> Option<String> {
        (name == "AZURE_CLIENT_SECRET").then(|| "azure-SECRET".to_owned())
    }

    #[test]
    fn arm_names() {
        for ok in ["rg-backup", "vault_01", "a.b", "(x)", "볼트"] {
            assert!(is_azure_name(ok), "{ok}");
        }
        for bad in ["", "a/b", "a b", "a?b", "../x"] {
            assert!(!is_azure_name(bad), "{bad}");
        }
    }

    #[test]
    fn client_secret_and_defaults() {
        let yaml = "upstreams:\n  - { name: az, type: azure, tenant_id: t-1, client_id: c-1, client_secret_env: AZURE_CLIENT_SECRET, subscription_id: s-1, vaults: [{ resource_group: rg, name: v }] }\n";
        let c = parse(yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        let az = azure(&c.upstreams[0]);
        assert!(
            matches!(&az.auth, AzureAuth::ClientSecret { tenant_id, client_id, secret }
            if tenant_id == "t-1" && client_id == "c-1" && secret.expose() == "azure-SECRET")
        );
        assert_eq!(az.lookback, std::time::Duration::from_secs(9 * 86_400));
        assert_eq!(az.api_version, "2017-07-01");
        assert_eq!(az.management_url, "https://management.azure.com");
        assert_eq!(az.authority_url, "https://login.microsoftonline.com");
        assert!(!format!("{c:?}").contains("azure-SECRET"));
    }

    #[test]
    fn workload_identity_takes_ids_from_the_environment_unless_configured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("azure-identity-token");
        std::fs::write(&file, "federated-SECRET\n").unwrap();
        let file_name = file.display().to_string();
        let env = |name: &str| match name {
            "AZURE_FEDERATED_TOKEN_FILE" => Some(file_name.clone()),
            "AZURE_CLIENT_ID" => Some("env-client".to_owned()),
            "AZURE_TENANT_ID" => Some("env-tenant".to_owned()),
            "AZURE_AUTHORITY_HOST" => Some("https://login.example.test/".to_owned()),
            _ => None,
        };
        let yaml = "upstreams:\n  - { name: az, type: azure, workload_identity: true, client_id: own-client, subscription_id: s-1, vaults: [{ resource_group: rg, name: v }] }\n";
        let c = parse(yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        let az = azure(&c.upstreams[0]);
        assert_eq!(
            az.auth,
            AzureAuth::WorkloadIdentity {
                tenant_id: "env-tenant".into(),
                client_id: "own-client".into(),
                token_file: file.clone(),
            }
        );
        assert_eq!(az.authority_url, "https://login.example.test");
        assert!(c.upstreams[0].summary().ends_with("auth workload identity"));
        assert!(!format!("{c:?}").contains("federated-SECRET"));

        std::fs::write(&file, " \n").unwrap();
        let Err(ConfigErrors(errors)) = parse(yaml, Path::new("."), &env) else {
            panic!("expected errors");
        };
        assert_eq!(
            errors[0].to_string(),
            format!("upstreams[0].workload_identity: federated token file {file_name} is empty")
        );
    }

    #[test]
    fn bad_vaults_and_ids_are_reported_each() {
        let yaml = "upstreams:\n  - { name: az, type: azure, managed_identity: true, client_id: 'a b', subscription_id: 's/1', api_version: '1?', vaults: [{ resource_group: 'r g', name: v }, { resource_group: rg, name: 'v/1' }, { resource_group: rg, name: v }, { resource_group: rg, name: v }] }\n";
        let Err(ConfigErrors(errors)) = parse(yaml, Path::new("."), &env) else {
            panic!("expected errors");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "upstreams[0].client_id: invalid client id `a b`",
                "upstreams[0].subscription_id: invalid subscription id `s/1`",
                "upstreams[0].api_version: invalid api_version `1?`, expected e.g. 2017-07-01",
                "upstreams[0].vaults[0].resource_group: invalid resource group `r g`",
                "upstreams[0].vaults[1].name: invalid vault name `v/1`",
                "upstreams[0].vaults[3]: duplicate vault `rg/v`",
            ]
        );
    }

    /// `discover: true` alone is a whole upstream; the filter resolves; stray keys, a bad
    /// resource group and an interval out of bounds are errors at their paths; listed vaults
    /// of one name in two cases are one vault.
    #[test]
    fn discover_alone_is_enough_and_its_keys_are_checked() {
        let head = "upstreams:\n  - name: az\n    type: azure\n    managed_identity: true\n    subscription_id: s-1\n";
        let c = parse(&format!("{head}    discover: true\n"), Path::new("."), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        let az = azure(&c.upstreams[0]);
        let d = az.discovery.clone().expect("discovery on");
        assert_eq!(d.interval, std::time::Duration::from_secs(600));
        assert_eq!(d.resource_group, None);
        assert!(az.vaults.is_empty());
        assert!(c.upstreams[0].summary().contains("0 vaults, discovers every 10m"), "{}", c.upstreams[0].summary());
        let yaml = format!("{head}    discover: true\n    discover_interval: 90s\n    discover_filters: {{ resource_group: rg-backup }}\n    vaults: [{{ resource_group: rg, name: v }}]\n");
        let c = parse(&yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        let az = azure(&c.upstreams[0]);
        let d = az.discovery.clone().expect("discovery on");
        assert_eq!(d.interval, std::time::Duration::from_secs(90));
        assert_eq!(d.resource_group.as_deref(), Some("rg-backup"));
        assert_eq!(az.vaults.len(), 1);
        let errors = |extra: &str| -> Vec<String> {
            match parse(&format!("{head}{extra}"), Path::new("."), &env) {
                Err(ConfigErrors(errors)) => errors.iter().map(ToString::to_string).collect(),
                Ok(_) => panic!("expected errors for {extra}"),
            }
        };
        assert_eq!(
            errors("    discover_interval: 1m\n    discover_filters: { resource_group: a }\n"),
            [
                "upstreams[0].discover_interval: has no effect without `discover: true`",
                "upstreams[0].discover_filters: has no effect without `discover: true`",
            ]
        );
        assert_eq!(
            errors("    discover: false\n"),
            ["upstreams[0]: no targets: list at least one vault under `vaults`, or set `discover: true`"]
        );
        assert_eq!(
            errors("    discover: true\n    discover_filters: { resource_group: ' ' }\n"),
            ["upstreams[0].discover_filters.resource_group: invalid resource group ``"]
        );
        let shown = errors("    discover: true\n    discover_interval: 0s\n");
        assert!(shown[0].starts_with("upstreams[0].discover_interval:"), "{shown:?}");
        assert!(errors("    discover: true\n    discover_filters: { name: x }\n")[0]
            .starts_with("upstreams[0].discover_filters"));
        assert_eq!(
            errors("    vaults: [{ resource_group: RG, name: Vault }, { resource_group: rg, name: vault }]\n"),
            ["upstreams[0].vaults[1]: duplicate vault `rg/vault`"]
        );
    }

    /// The README's "Bounds" table says what `lookback` accepts.
    #[test]
    fn the_readme_lists_the_lookback_bounds() {
        let table = include_str!("../../../README.md")
            .split("### Bounds")
            .nth(1)
            .expect("a Bounds section in README.md");
        let row = table
            .lines()
            .find(|l| l.starts_with("| azure `lookback` |"))
            .expect("a Bounds row for azure `lookback`");
        let ends: Vec<std::time::Duration> = row
            .split('|')
            .nth(3)
            .unwrap_or_default()
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|d| humantime::parse_duration(d).unwrap())
            .collect();
        assert_eq!(ends[0]..=ends[1], LOOKBACK);
    }
}
