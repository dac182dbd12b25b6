//! The YAML config file: raw serde structs (unknown keys rejected), then a validation
//! pass that resolves defaults, secrets and targets and collects *every* problem with
//! its YAML path (`upstreams[1].servers[0]: ...`), so `--check-config` shows them all.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::status::{Status, StatusMap};

/// A credential read from a file or the environment. Never printed: `Debug` and
/// `Display` show `<redacted>`, and it has no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Overridden by `--web.listen-address`.
    pub listen: Option<SocketAddr>,
    pub upstreams: Vec<Upstream>,
}

/// One configured upstream API, with its defaults already applied.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Unique; the `upstream` label.
    pub name: String,
    pub settings: Settings,
    pub status_map: StatusMap,
    pub kind: UpstreamKind,
}

/// Polling settings, from `defaults` overridden per upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub interval: Duration,
    pub timeout: Duration,
    pub concurrency: usize,
    pub timezone: chrono_tz::Tz,
    /// Resolved: `3x` is already `3 * interval`.
    pub stale_after: Duration,
    pub max_body_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            concurrency: 16,
            timezone: chrono_tz::UTC,
            stale_after: Duration::from_secs(90),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub enum UpstreamKind {
    Zdm(ZdmConfig),
    Scp(ScpConfig),
    Azure(AzureConfig),
}

#[derive(Debug, Clone)]
pub struct ZdmConfig {
    /// Base URL, no trailing slash.
    pub url: String,
    /// Leading slash, no trailing slash (`""` when the API is at the root).
    pub api_prefix: String,
    pub auth: ZdmAuth,
    /// `GET {api_prefix}/backups/monitoring/system/{id}`
    pub servers: Vec<ZdmTarget>,
    /// `GET {api_prefix}/backups/monitoring/job/{id}`
    pub backup_jobs: Vec<ZdmTarget>,
    /// `GET {api_prefix}/recoveries/monitoring/job/{id}`
    pub recovery_jobs: Vec<ZdmTarget>,
}

#[derive(Debug, Clone)]
pub enum ZdmAuth {
    /// A static bearer token.
    Token(Secret),
    /// Issue a token by POSTing `{"email","password"}` to `path`.
    Login {
        path: String,
        email: Secret,
        password: Secret,
    },
}

/// Samsung Cloud Platform backup restore histories.
#[derive(Debug, Clone)]
pub struct ScpConfig {
    /// Base URL, no trailing slash.
    pub url: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    /// Sent as `Scp-AccountId` and signed when given.
    pub account_id: Option<String>,
    pub backups: Vec<ScpBackup>,
}

/// One SCP backup whose restore histories are polled.
#[derive(Debug, Clone, PartialEq)]
pub struct ScpBackup {
    pub id: String,
    /// The `job_name` label; the backup id when not configured.
    pub name: Option<String>,
}

/// Azure Backup (Recovery Services vaults) through the ARM API.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    pub auth: AzureAuth,
    pub subscription_id: String,
    pub vaults: Vec<AzureVault>,
    /// The job list window.
    pub lookback: Duration,
    pub api_version: String,
    /// No trailing slash.
    pub management_url: String,
    /// No trailing slash: the Azure AD authority, or the IMDS base with managed identity.
    pub authority_url: String,
}

#[derive(Debug, Clone)]
pub enum AzureAuth {
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: Secret,
    },
    /// The VM's or pod's managed identity through IMDS; `client_id` picks a user-assigned one.
    ManagedIdentity { client_id: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AzureVault {
    pub resource_group: String,
    pub name: String,
}

/// One identifier to poll, with the query filters to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ZdmTarget {
    pub id: String,
    pub query: Vec<(String, String)>,
}

/// One problem in the config file, at a YAML path (`""` for the whole file).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Upstream {
    /// One line for `--check-config` and the startup log; never contains a secret.
    pub fn summary(&self) -> String {
        let every = humantime::format_duration(self.settings.interval);
        match &self.kind {
            UpstreamKind::Zdm(zdm) => {
                let auth = match &zdm.auth {
                    ZdmAuth::Token(_) => "auth token".to_owned(),
                    ZdmAuth::Login { path, .. } => format!("auth login {path}"),
                };
                format!(
                    "{}: {} {}{}, {}, {}, {}, every {every}, {auth}",
                    self.name,
                    self.system(),
                    zdm.url,
                    zdm.api_prefix,
                    count(zdm.servers.len(), "server"),
                    count(zdm.backup_jobs.len(), "backup job"),
                    count(zdm.recovery_jobs.len(), "recovery job"),
                )
            }
            UpstreamKind::Scp(scp) => format!(
                "{}: scp {}, {}, every {every}, auth signature v2{}",
                self.name,
                scp.url,
                count(scp.backups.len(), "backup"),
                if scp.account_id.is_some() {
                    " with account id"
                } else {
                    ""
                },
            ),
            UpstreamKind::Azure(az) => {
                let auth = match &az.auth {
                    AzureAuth::ClientSecret { .. } => "client secret",
                    AzureAuth::ManagedIdentity { .. } => "managed identity",
                };
                format!(
                    "{}: azure {} subscription {}, {}, lookback {}, every {every}, auth {auth}",
                    self.name,
                    az.management_url,
                    az.subscription_id,
                    count(az.vaults.len(), "vault"),
                    humantime::format_duration(az.lookback),
                )
            }
        }
    }

    /// The `system` label.
    pub fn system(&self) -> &'static str {
        match self.kind {
            UpstreamKind::Zdm(_) => "zdm",
            UpstreamKind::Scp(_) => "scp",
            UpstreamKind::Azure(_) => "azure",
        }
    }
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Reads and validates the config file; `token_file` paths are relative to its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, LoadOptions::default())
}

/// How secrets are treated by [`load_with`] and [`parse_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Check the shape of every secret setting (exactly one method, a valid variable name, a
    /// non-empty file name) but read no environment variable and no secret file: every secret
    /// of the result is a placeholder. For `--check-config.skip-secrets`, a CI lint without
    /// the production secrets; such a config is never run.
    pub skip_secrets: bool,
}

/// [`load`] with [`LoadOptions`].
pub fn load_with(path: &Path, options: LoadOptions) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            message: format!("cannot read config file {}: {e}", path.display()),
        }])
    })?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    parse_with(&text, base_dir, &|name| std::env::var(name).ok(), options)
}

/// Validates config text. `base_dir` resolves relative `token_file` paths, `env` looks up
/// environment variables (injectable for tests).
pub fn parse(
    yaml: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    parse_with(yaml, base_dir, env, LoadOptions::default())
}

/// [`parse`] with [`LoadOptions`].
pub fn parse_with(
    yaml: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    options: LoadOptions,
) -> Result<Config, ConfigErrors> {
    let mut cx = Cx {
        errors: Vec::new(),
        base_dir,
        env,
        skip_secrets: options.skip_secrets,
    };
    let config = cx.config(yaml);
    match config {
        Some(config) if cx.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(cx.errors)),
    }
}

// ---------------------------------------------------------------------------
// Raw schema: what the YAML may contain. The `///` comments are the reference docs.

/// Poll settings; every key may appear under `defaults` and be overridden per upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    /// Poll interval (humantime: 500ms, 30s, 5m, 1h). Default 30s.
    interval: Option<RawDuration>,
    /// Timeout of each request. Default 10s.
    timeout: Option<RawDuration>,
    /// Maximum in-flight requests per upstream. Default 16.
    concurrency: Option<usize>,
    /// IANA time zone for timestamps that carry no offset. Default UTC.
    timezone: Option<String>,
    /// How long last-known series are kept after polls fail: `Nx` (N intervals) or a
    /// duration of at least one interval. Default 3x.
    stale_after: Option<RawDuration>,
    /// Response bodies larger than this are refused as `too_large`. Default 16 MiB.
    max_body_bytes: Option<u64>,
}

/// A `type: zdm` upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZdm {
    /// Unique name; becomes the `upstream` label.
    name: String,
    /// `zdm`.
    #[serde(rename = "type")]
    _type: String,
    /// Base URL of the ZDM API server (http or https), e.g. `https://zdm.example.com`.
    url: String,
    /// Path prefix of the API: `/api/v1` (default) or `/api` for ZDM 1.0.x.
    api_prefix: Option<String>,
    /// File holding the bearer token (relative to the config file's directory).
    token_file: Option<String>,
    /// Environment variable holding the bearer token.
    token_env: Option<String>,
    /// Log in with email and password and re-issue the token before it expires.
    login: Option<RawLogin>,
    /// Extra raw status -> normalized status (pending, running, completed,
    /// completed_with_warnings, failed, cancelled, unknown).
    status_map: Option<BTreeMap<String, String>>,
    /// Servers to poll: `GET {api_prefix}/backups/monitoring/system/{id}`.
    servers: Option<Vec<RawTarget>>,
    /// Backup jobs to poll: `GET {api_prefix}/backups/monitoring/job/{id}`.
    backup_jobs: Option<Vec<RawTarget>>,
    /// Recovery jobs to poll: `GET {api_prefix}/recoveries/monitoring/job/{id}`.
    recovery_jobs: Option<Vec<RawTarget>>,
    /// Overrides `defaults.interval`.
    interval: Option<RawDuration>,
    /// Overrides `defaults.timeout`.
    timeout: Option<RawDuration>,
    /// Overrides `defaults.concurrency`.
    concurrency: Option<usize>,
    /// Overrides `defaults.timezone`.
    timezone: Option<String>,
    /// Overrides `defaults.stale_after`.
    stale_after: Option<RawDuration>,
    /// Overrides `defaults.max_body_bytes`.
    max_body_bytes: Option<u64>,
}

/// ZDM token issuing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    /// Token issuing endpoint: `/api/auth/issue` (default, up to ZDM 1.3) or
    /// `/api/token/issue` (ZDM 2.0 on).
    path: Option<String>,
    /// Environment variable holding the login email.
    email_env: String,
    /// Environment variable holding the password.
    password_env: String,
}

/// A `type: scp` upstream (Samsung Cloud Platform backup restore histories).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScp {
    /// Unique name; becomes the `upstream` label.
    name: String,
    /// `scp`.
    #[serde(rename = "type")]
    _type: String,
    /// Base URL of the SCP OpenAPI endpoint, e.g. `https://scp.example.com`.
    url: String,
    /// Environment variable holding the access key.
    access_key_env: String,
    /// Environment variable holding the secret key.
    secret_key_env: String,
    /// Optional account id, sent as `Scp-AccountId` and signed.
    account_id: Option<Scalar>,
    /// Extra raw status -> normalized status.
    status_map: Option<BTreeMap<String, String>>,
    /// Backups to poll: `GET /v1/backups/{id}/restore-histories`; a bare id or `{id, name}`.
    backups: Option<Vec<RawScpBackup>>,
    /// Overrides `defaults.interval`.
    interval: Option<RawDuration>,
    /// Overrides `defaults.timeout`.
    timeout: Option<RawDuration>,
    /// Overrides `defaults.concurrency`.
    concurrency: Option<usize>,
    /// Overrides `defaults.timezone` (SCP restore times carry no offset).
    timezone: Option<String>,
    /// Overrides `defaults.stale_after`.
    stale_after: Option<RawDuration>,
    /// Overrides `defaults.max_body_bytes`.
    max_body_bytes: Option<u64>,
}

/// An SCP backup: its id, and the name to export as `job_name`.
#[derive(Debug)]
struct RawScpBackup {
    id: String,
    name: Option<String>,
}

impl<'de> Deserialize<'de> for RawScpBackup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            id: Scalar,
            name: Option<Scalar>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Bare(Scalar),
            Full(Full),
        }
        match Either::deserialize(d) {
            Ok(Either::Bare(Scalar(id))) => Ok(RawScpBackup { id, name: None }),
            Ok(Either::Full(f)) => Ok(RawScpBackup {
                id: f.id.0,
                name: f.name.map(|n| n.0),
            }),
            Err(_) => Err(de::Error::custom(
                "expected a backup id or a map with `id` and an optional `name`",
            )),
        }
    }
}

/// A `type: azure` upstream (Azure Backup jobs of Recovery Services vaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAzure {
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
    /// The subscription holding the vaults.
    subscription_id: String,
    /// Vaults to poll: `{resource_group, name}`.
    vaults: Option<Vec<RawVault>>,
    /// The job list window (default 24h).
    lookback: Option<RawDuration>,
    /// ARM api-version of the backupJobs calls (default 2017-07-01).
    api_version: Option<Scalar>,
    /// ARM endpoint (default https://management.azure.com).
    management_url: Option<String>,
    /// Azure AD authority (default https://login.microsoftonline.com), or the IMDS base
    /// (default http://169.254.169.254) with `managed_identity`.
    authority_url: Option<String>,
    /// Extra raw status -> normalized status.
    status_map: Option<BTreeMap<String, String>>,
    /// Overrides `defaults.interval`.
    interval: Option<RawDuration>,
    /// Overrides `defaults.timeout`.
    timeout: Option<RawDuration>,
    /// Overrides `defaults.concurrency`.
    concurrency: Option<usize>,
    /// Overrides `defaults.timezone`.
    timezone: Option<String>,
    /// Overrides `defaults.stale_after`.
    stale_after: Option<RawDuration>,
    /// Overrides `defaults.max_body_bytes`.
    max_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    resource_group: String,
    name: String,
}

/// The per-upstream setting overrides, whatever the upstream type.
macro_rules! overrides_of {
    ($raw:expr) => {
        RawSettings {
            interval: $raw.interval.take(),
            timeout: $raw.timeout.take(),
            concurrency: $raw.concurrency.take(),
            timezone: $raw.timezone.take(),
            stale_after: $raw.stale_after.take(),
            max_body_bytes: $raw.max_body_bytes.take(),
        }
    };
}

/// A duration-like value as written; interpreted during validation so the error can
/// say which forms are accepted.
#[derive(Debug)]
struct RawDuration(String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like 500ms, 30s, 5m or 1h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A target: a bare identifier (string or number) or `{id: ..., <query param>: ...}`.
#[derive(Debug)]
struct RawTarget {
    id: String,
    query: Vec<(String, String)>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an identifier (string or number) or a map with `id` and query parameters",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget {
                    id: v.to_owned(),
                    query: Vec::new(),
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTarget, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTarget, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTarget, A::Error> {
                let mut id = None;
                let mut query = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Scalar(value) = map.next_value()?;
                    if key == "id" {
                        id = Some(value);
                    } else {
                        query.push((key, value));
                    }
                }
                let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
                Ok(RawTarget { id, query })
            }
        }
        d.deserialize_any(V)
    }
}

/// A string, number or bool, kept as text (it ends up in a URL).
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Validation.

const SUPPORTED_TYPES: &str = "zdm, scp, azure";
const DEFAULT_LOOKBACK: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_AZURE_API_VERSION: &str = "2017-07-01";
const DEFAULT_MANAGEMENT_URL: &str = "https://management.azure.com";
const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";
const DEFAULT_IMDS_URL: &str = "http://169.254.169.254";
const TOP_LEVEL_KEYS: [&str; 3] = ["listen", "defaults", "upstreams"];
const DEFAULT_API_PREFIX: &str = "/api/v1";
const DEFAULT_LOGIN_PATH: &str = "/api/auth/issue";
const DEFAULT_STALE_INTERVALS: u32 = 3;

/// Query parameters each ZDM endpoint documents (besides the `:identifier` path part).
const SERVER_QUERY: &[&str] = &[
    "mode",
    "partition",
    "repositoryType",
    "repositoryPath",
    "status",
    "detail",
    "jobName",
];
const BACKUP_JOB_QUERY: &[&str] = &[
    "mode",
    "partition",
    "drive",
    "server",
    "repositoryType",
    "repositoryPath",
    "status",
    "jobName",
    "page",
    "limit",
];
const RECOVERY_JOB_QUERY: &[&str] = &[
    "mode",
    "partition",
    "drive",
    "serverName",
    "serverType",
    "jobName",
    "detail",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum StaleAfter {
    Intervals(u32),
    Fixed(Duration),
}

/// `defaults` after validation (built-in values where a key was invalid and reported).
struct Defaults {
    settings: Settings,
    stale_after: StaleAfter,
}

struct Cx<'a> {
    errors: Vec<ConfigError>,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// [`LoadOptions::skip_secrets`]
    skip_secrets: bool,
}

/// Every secret's value under [`LoadOptions::skip_secrets`].
const SKIPPED_SECRET: &str = "skipped-secret";

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Cx<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserializes `value` as `T`, reporting a failure at its full YAML path.
    fn typed<T: de::DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                let full = if inner == "." {
                    path.to_owned()
                } else if inner.starts_with('[') {
                    format!("{path}{inner}")
                } else {
                    join(path, &inner)
                };
                let message = e.into_inner().to_string();
                // Say it in YAML terms: serde's "field" is a key, `usize` a whole number.
                let message = message
                    .replacen("unknown field `", "unknown key `", 1)
                    .replacen("missing field `", "missing key `", 1)
                    .replace("expected usize", "expected a whole number")
                    .replace("expected u64", "expected a whole number");
                self.error(full, message);
                None
            }
        }
    }

    fn config(&mut self, yaml: &str) -> Option<Config> {
        let doc: Value = match serde_yaml_ng::from_str(yaml) {
            Ok(doc) => doc,
            Err(e) => {
                self.error("", format!("invalid YAML: {e}"));
                return None;
            }
        };
        let mut top = match doc {
            Value::Mapping(m) => m,
            Value::Null => {
                self.error(
                    "",
                    "the config file is empty; it needs at least `upstreams`",
                );
                return None;
            }
            _ => {
                self.error("", "expected a map with `upstreams` at the top level");
                return None;
            }
        };
        let mut unknown = Vec::new();
        for key in top.keys() {
            match key.as_str() {
                Some(k) if TOP_LEVEL_KEYS.contains(&k) => {}
                Some(k) => unknown.push(k.to_owned()),
                None => unknown.push(format!("{key:?}")),
            }
        }
        for key in unknown {
            self.error(
                key.clone(),
                format!("unknown key `{key}`, expected one of `listen`, `defaults`, `upstreams`"),
            );
        }

        let listen = match top.remove("listen") {
            None | Some(Value::Null) => None,
            Some(v) => self.typed::<String>("listen", v).and_then(|s| {
                s.trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| {
                        self.error(
                            "listen",
                            format!("invalid address `{s}`, expected IP:PORT like 0.0.0.0:10095"),
                        )
                    })
                    .ok()
            }),
        };

        let raw_defaults = match top.remove("defaults") {
            None | Some(Value::Null) => Some(RawSettings::default()),
            Some(v) => self.typed::<RawSettings>("defaults", v),
        };
        let defaults = raw_defaults.map(|raw| self.defaults(&raw));

        let upstreams = match top.remove("upstreams") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(items)) => items,
            Some(_) => {
                self.error("upstreams", "expected a list of upstreams");
                return None;
            }
        };
        if upstreams.is_empty() {
            self.error("upstreams", "at least one upstream is required");
        }

        let mut seen_names: HashMap<String, usize> = HashMap::new();
        let mut resolved = Vec::new();
        for (i, item) in upstreams.into_iter().enumerate() {
            let path = format!("upstreams[{i}]");
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                if let Some(first) = seen_names.get(name) {
                    self.error(
                        format!("{path}.name"),
                        format!(
                            "duplicate upstream name `{name}` (also used by upstreams[{first}])"
                        ),
                    );
                } else {
                    seen_names.insert(name.to_owned(), i);
                }
            }
            if let Some(up) = self.upstream(&path, item, defaults.as_ref()) {
                resolved.push(up);
            }
        }
        Some(Config {
            listen,
            upstreams: resolved,
        })
    }

    fn duration(&mut self, path: &str, raw: &RawDuration) -> Option<Duration> {
        match humantime::parse_duration(raw.0.trim()) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    path,
                    format!(
                        "invalid duration `{}`: {e} (expected e.g. 500ms, 30s, 5m, 1h)",
                        raw.0
                    ),
                );
                None
            }
        }
    }

    fn stale_after(&mut self, path: &str, raw: &RawDuration) -> Option<StaleAfter> {
        let text = raw.0.trim();
        if let Some(n) = text.strip_suffix(['x', 'X']) {
            return match n.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Some(StaleAfter::Intervals(n)),
                _ => {
                    self.error(
                        path,
                        format!("invalid stale_after `{text}`: expected Nx with a whole N >= 1 (like 3x) or a duration"),
                    );
                    None
                }
            };
        }
        match humantime::parse_duration(text) {
            Ok(d) => Some(StaleAfter::Fixed(d)),
            Err(e) => {
                self.error(
                    path,
                    format!("invalid stale_after `{text}`: {e} (expected Nx like 3x, or a duration like 5m)"),
                );
                None
            }
        }
    }

    fn timezone(&mut self, path: &str, raw: &str) -> Option<chrono_tz::Tz> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                self.error(
                    path,
                    format!(
                        "unknown time zone `{raw}`, expected an IANA name like UTC or Asia/Seoul"
                    ),
                )
            })
            .ok()
    }

    fn positive<T: Copy + Default + PartialEq>(&mut self, path: &str, v: T) -> Option<T> {
        if v == T::default() {
            self.error(path, "must be greater than zero");
            None
        } else {
            Some(v)
        }
    }

    /// Validates `defaults`, keeping the built-in value for any invalid key so the
    /// upstreams can still be checked.
    fn defaults(&mut self, raw: &RawSettings) -> Defaults {
        let mut s = Settings::default();
        let mut stale_after = StaleAfter::Intervals(DEFAULT_STALE_INTERVALS);
        if let Some(d) = raw
            .interval
            .as_ref()
            .and_then(|d| self.duration("defaults.interval", d))
        {
            s.interval = d;
        }
        if let Some(d) = raw
            .timeout
            .as_ref()
            .and_then(|d| self.duration("defaults.timeout", d))
        {
            s.timeout = d;
        }
        if let Some(c) = raw
            .concurrency
            .and_then(|c| self.positive("defaults.concurrency", c))
        {
            s.concurrency = c;
        }
        if let Some(tz) = raw
            .timezone
            .as_ref()
            .and_then(|t| self.timezone("defaults.timezone", t))
        {
            s.timezone = tz;
        }
        if let Some(b) = raw
            .max_body_bytes
            .and_then(|b| self.positive("defaults.max_body_bytes", b))
        {
            s.max_body_bytes = b;
        }
        if let Some(st) = raw
            .stale_after
            .as_ref()
            .and_then(|r| self.stale_after("defaults.stale_after", r))
        {
            if let StaleAfter::Fixed(d) = st {
                if d < s.interval {
                    self.error(
                        "defaults.stale_after",
                        format!(
                            "stale_after {} is shorter than the interval {}",
                            humantime::format_duration(d),
                            humantime::format_duration(s.interval)
                        ),
                    );
                }
            }
            stale_after = st;
        }
        s.stale_after = resolve_stale(stale_after, s.interval).unwrap_or(s.stale_after);
        Defaults {
            settings: s,
            stale_after,
        }
    }

    fn upstream(
        &mut self,
        path: &str,
        item: Value,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream> {
        if !item.is_mapping() {
            self.error(path, "expected a map describing an upstream");
            return None;
        }
        match item.get("type") {
            None | Some(Value::Null) => {
                self.error(
                    path,
                    format!("missing `type` (supported types: {SUPPORTED_TYPES})"),
                );
                None
            }
            Some(Value::String(t)) if t == "zdm" => {
                let raw = self.typed::<RawZdm>(path, item)?;
                self.zdm(path, raw, defaults)
            }
            Some(Value::String(t)) if t == "scp" => {
                let raw = self.typed::<RawScp>(path, item)?;
                self.scp(path, raw, defaults)
            }
            Some(Value::String(t)) if t == "azure" => {
                let raw = self.typed::<RawAzure>(path, item)?;
                self.azure(path, raw, defaults)
            }
            Some(other) => {
                let shown = other
                    .as_str()
                    .map_or_else(|| format!("{other:?}"), str::to_owned);
                self.error(
                    format!("{path}.type"),
                    format!("unknown type `{shown}` (supported types: {SUPPORTED_TYPES})"),
                );
                None
            }
        }
    }

    fn zdm(
        &mut self,
        path: &str,
        mut raw: RawZdm,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream> {
        let errors_before = self.errors.len();
        let p = |key: &str| join(path, key);

        if raw.name.trim().is_empty() {
            self.error(p("name"), "must not be empty");
        }
        let url = self.url(&p("url"), &raw.url);
        let api_prefix = match &raw.api_prefix {
            None => DEFAULT_API_PREFIX.to_owned(),
            Some(prefix) => self
                .url_path(&p("api_prefix"), prefix, true)
                .unwrap_or_default(),
        };
        let auth = self.zdm_auth(path, &raw);
        let settings = self.settings(path, &overrides_of!(raw), defaults);

        let status_map = self.status_map(&p("status_map"), raw.status_map.as_ref());

        let servers = self.targets(&p("servers"), raw.servers, "server", SERVER_QUERY);
        let backup_jobs = self.targets(
            &p("backup_jobs"),
            raw.backup_jobs,
            "backup job",
            BACKUP_JOB_QUERY,
        );
        let recovery_jobs = self.targets(
            &p("recovery_jobs"),
            raw.recovery_jobs,
            "recovery job",
            RECOVERY_JOB_QUERY,
        );
        if servers.is_empty() && backup_jobs.is_empty() && recovery_jobs.is_empty() {
            self.error(
                path,
                "no targets: list at least one of `servers`, `backup_jobs`, `recovery_jobs`",
            );
        }

        if self.errors.len() > errors_before {
            return None;
        }
        Some(Upstream {
            name: raw.name,
            settings: settings?,
            status_map,
            kind: UpstreamKind::Zdm(ZdmConfig {
                url: url?,
                api_prefix,
                auth: auth?,
                servers,
                backup_jobs,
                recovery_jobs,
            }),
        })
    }

    fn status_map(&mut self, path: &str, raw: Option<&BTreeMap<String, String>>) -> StatusMap {
        let mut status_map = StatusMap::new();
        for (key, value) in raw.into_iter().flatten() {
            let entry = format!("{path}.{key}");
            if crate::status::normalize_status(key).is_empty() {
                self.error(
                    entry.clone(),
                    "status_map key must contain a letter or digit",
                );
            }
            match Status::from_label(value.trim()) {
                Some(status) => status_map.insert(key, status),
                None => {
                    let labels: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    self.error(
                        entry,
                        format!(
                            "unknown status `{value}`, expected one of {}",
                            labels.join(", ")
                        ),
                    );
                }
            }
        }
        status_map
    }

    fn scp(
        &mut self,
        path: &str,
        mut raw: RawScp,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream> {
        let errors_before = self.errors.len();
        let p = |key: &str| join(path, key);
        if raw.name.trim().is_empty() {
            self.error(p("name"), "must not be empty");
        }
        let url = self.url(&p("url"), &raw.url);
        let access_key = self.env_secret(&p("access_key_env"), &raw.access_key_env);
        let secret_key = self.env_secret(&p("secret_key_env"), &raw.secret_key_env);
        let account_id = raw.account_id.take().map(|a| a.0.trim().to_owned());
        if account_id.as_deref() == Some("") {
            self.error(p("account_id"), "must not be empty (leave it out instead)");
        }
        let settings = self.settings(path, &overrides_of!(raw), defaults);
        let status_map = self.status_map(&p("status_map"), raw.status_map.as_ref());

        let mut backups = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, b) in raw.backups.take().into_iter().flatten().enumerate() {
            let bp = format!("{}[{i}]", p("backups"));
            let id = b.id.trim().to_owned();
            let valid = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                self.error(
                    bp,
                    format!("invalid backup id `{id}`: expected letters, digits, - or _"),
                );
                continue;
            }
            if let Some(first) = seen.get(&id) {
                self.error(
                    bp,
                    format!(
                        "duplicate backup `{id}` (also at {}[{first}])",
                        p("backups")
                    ),
                );
                continue;
            }
            seen.insert(id.clone(), i);
            let name = b
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty());
            backups.push(ScpBackup { id, name });
        }
        if backups.is_empty() {
            self.error(path, "no targets: list at least one backup under `backups`");
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Upstream {
            name: raw.name,
            settings: settings?,
            status_map,
            kind: UpstreamKind::Scp(ScpConfig {
                url: url?,
                access_key: access_key?,
                secret_key: secret_key?,
                account_id,
                backups,
            }),
        })
    }

    fn azure(
        &mut self,
        path: &str,
        mut raw: RawAzure,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream> {
        let errors_before = self.errors.len();
        let p = |key: &str| join(path, key);
        if raw.name.trim().is_empty() {
            self.error(p("name"), "must not be empty");
        }
        let auth = self.azure_auth(path, &raw);
        let managed = matches!(auth, Some(AzureAuth::ManagedIdentity { .. }));
        let subscription_id = raw.subscription_id.trim().to_owned();
        if !is_azure_name(&subscription_id) {
            self.error(
                p("subscription_id"),
                format!("invalid subscription id `{subscription_id}`"),
            );
        }
        let lookback = match &raw.lookback {
            None => Some(DEFAULT_LOOKBACK),
            Some(d) => self.duration(&p("lookback"), d),
        };
        let api_version = raw.api_version.take().map_or_else(
            || DEFAULT_AZURE_API_VERSION.to_owned(),
            |v| v.0.trim().to_owned(),
        );
        if api_version.is_empty()
            || !api_version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            self.error(
                p("api_version"),
                format!("invalid api_version `{api_version}`, expected e.g. 2017-07-01"),
            );
        }
        let management_url = self.url(
            &p("management_url"),
            raw.management_url
                .as_deref()
                .unwrap_or(DEFAULT_MANAGEMENT_URL),
        );
        let default_authority = if managed {
            DEFAULT_IMDS_URL
        } else {
            DEFAULT_AUTHORITY_URL
        };
        let authority_url = self.url(
            &p("authority_url"),
            raw.authority_url.as_deref().unwrap_or(default_authority),
        );
        let settings = self.settings(path, &overrides_of!(raw), defaults);
        let status_map = self.status_map(&p("status_map"), raw.status_map.as_ref());

        let mut vaults = Vec::new();
        for (i, v) in raw.vaults.take().into_iter().flatten().enumerate() {
            let vp = format!("{}[{i}]", p("vaults"));
            let vault = AzureVault {
                resource_group: v.resource_group.trim().to_owned(),
                name: v.name.trim().to_owned(),
            };
            if !is_azure_name(&vault.resource_group) {
                self.error(
                    format!("{vp}.resource_group"),
                    format!("invalid resource group `{}`", vault.resource_group),
                );
                continue;
            }
            if !is_azure_name(&vault.name) {
                self.error(
                    format!("{vp}.name"),
                    format!("invalid vault name `{}`", vault.name),
                );
                continue;
            }
            if vaults.contains(&vault) {
                self.error(
                    vp,
                    format!("duplicate vault `{}/{}`", vault.resource_group, vault.name),
                );
                continue;
            }
            vaults.push(vault);
        }
        if vaults.is_empty() {
            self.error(path, "no targets: list at least one vault under `vaults`");
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Upstream {
            name: raw.name,
            settings: settings?,
            status_map,
            kind: UpstreamKind::Azure(AzureConfig {
                auth: auth?,
                subscription_id,
                vaults,
                lookback: lookback?,
                api_version,
                management_url: management_url?,
                authority_url: authority_url?,
            }),
        })
    }

    fn azure_auth(&mut self, path: &str, raw: &RawAzure) -> Option<AzureAuth> {
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
        if methods.len() > 1 {
            self.error(
                path,
                format!(
                    "more than one authentication method ({}); set exactly one of client_secret_env, client_secret_file, managed_identity: true",
                    methods.join(", ")
                ),
            );
            return None;
        }
        let client_id = raw
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        if raw.managed_identity == Some(true) {
            if let Some(c) = client_id {
                if !is_azure_name(c) {
                    self.error(p("client_id"), format!("invalid client id `{c}`"));
                    return None;
                }
            }
            return Some(AzureAuth::ManagedIdentity {
                client_id: client_id.map(str::to_owned),
            });
        }
        let secret = if let Some(var) = &raw.client_secret_env {
            self.env_secret(&p("client_secret_env"), var)
        } else if let Some(file) = &raw.client_secret_file {
            self.token_file(&p("client_secret_file"), file)
        } else {
            self.error(
                path,
                "missing authentication: set client_secret_env, client_secret_file or managed_identity: true",
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
                self.error(p("tenant_id"), format!("invalid tenant id `{t}`"));
                None
            }
            None => {
                self.error(p("tenant_id"), "required with a client secret");
                None
            }
        };
        let client_id = match client_id {
            Some(c) if is_azure_name(c) => Some(c.to_owned()),
            Some(c) => {
                self.error(p("client_id"), format!("invalid client id `{c}`"));
                None
            }
            None => {
                self.error(p("client_id"), "required with a client secret");
                None
            }
        };
        Some(AzureAuth::ClientSecret {
            tenant_id: tenant_id?,
            client_id: client_id?,
            secret: secret?,
        })
    }

    fn settings(
        &mut self,
        path: &str,
        raw: &RawSettings,
        defaults: Option<&Defaults>,
    ) -> Option<Settings> {
        let p = |key: &str| join(path, key);
        let base = defaults.map(|d| d.settings.clone());
        let mut s = base.clone().unwrap_or_default();
        let mut ok = defaults.is_some();
        if let Some(d) = &raw.interval {
            set(self.duration(&p("interval"), d), &mut s.interval, &mut ok);
        }
        if let Some(d) = &raw.timeout {
            set(self.duration(&p("timeout"), d), &mut s.timeout, &mut ok);
        }
        if let Some(c) = raw.concurrency {
            set(
                self.positive(&p("concurrency"), c),
                &mut s.concurrency,
                &mut ok,
            );
        }
        if let Some(tz) = &raw.timezone {
            set(self.timezone(&p("timezone"), tz), &mut s.timezone, &mut ok);
        }
        if let Some(b) = raw.max_body_bytes {
            set(
                self.positive(&p("max_body_bytes"), b),
                &mut s.max_body_bytes,
                &mut ok,
            );
        }
        let (stale, stale_path) = match &raw.stale_after {
            Some(r) => (self.stale_after(&p("stale_after"), r), p("stale_after")),
            None => (defaults.map(|d| d.stale_after), p("interval")),
        };
        match stale {
            Some(stale) => match resolve_stale(stale, s.interval) {
                Ok(d) => s.stale_after = d,
                Err(message) => {
                    // A too-short default stale_after was already reported under defaults.
                    let from_defaults = raw.stale_after.is_none();
                    if !(from_defaults && raw.interval.is_none()) {
                        self.error(stale_path, message);
                    }
                    ok = false;
                }
            },
            None => ok = false,
        }
        ok.then_some(s)
    }

    fn url(&mut self, path: &str, raw: &str) -> Option<String> {
        let raw = raw.trim();
        // A URL may carry credentials; only echo it when it cannot.
        let shown = if raw.contains('@') { "(hidden)" } else { raw };
        let parsed = match reqwest::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                self.error(
                    path,
                    format!("invalid url `{shown}`: {e} (expected e.g. https://zdm.example.com)"),
                );
                return None;
            }
        };
        let problem = if !matches!(parsed.scheme(), "http" | "https") {
            Some("the scheme must be http or https")
        } else if !parsed.has_host() {
            Some("a host is required")
        } else if !parsed.username().is_empty() || parsed.password().is_some() {
            Some("credentials must not be in the url; use token_file, token_env or login")
        } else if parsed.query().is_some() || parsed.fragment().is_some() {
            Some("a query or fragment is not allowed")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(path, format!("invalid url `{shown}`: {problem}"));
                None
            }
            None => Some(parsed.as_str().trim_end_matches('/').to_owned()),
        }
    }

    /// Normalizes a URL path to a leading `/` and no trailing `/`; `allow_root` lets
    /// `/` (and `""`) stand for "no prefix".
    fn url_path(&mut self, path: &str, raw: &str, allow_root: bool) -> Option<String> {
        let trimmed = raw.trim().trim_matches('/');
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            self.error(
                path,
                format!("invalid path `{raw}`: must not contain spaces, `?` or `#`"),
            );
            return None;
        }
        if trimmed.is_empty() {
            if allow_root {
                return Some(String::new());
            }
            self.error(path, "must not be empty");
            return None;
        }
        Some(format!("/{trimmed}"))
    }

    fn zdm_auth(&mut self, path: &str, raw: &RawZdm) -> Option<ZdmAuth> {
        let p = |key: &str| join(path, key);
        let mut methods = Vec::new();
        if raw.token_file.is_some() {
            methods.push("token_file");
        }
        if raw.token_env.is_some() {
            methods.push("token_env");
        }
        if raw.login.is_some() {
            methods.push("login");
        }
        if methods.len() > 1 {
            self.error(
                path,
                format!(
                    "more than one authentication method ({}); set exactly one of token_file, token_env, login",
                    methods.join(", ")
                ),
            );
            return None;
        }
        if let Some(file) = &raw.token_file {
            return self.token_file(&p("token_file"), file).map(ZdmAuth::Token);
        }
        if let Some(var) = &raw.token_env {
            return self.env_secret(&p("token_env"), var).map(ZdmAuth::Token);
        }
        if let Some(login) = &raw.login {
            let lp = p("login");
            let login_path = match &login.path {
                None => Some(DEFAULT_LOGIN_PATH.to_owned()),
                Some(path) => self.url_path(&join(&lp, "path"), path, false),
            };
            let email = self.env_secret(&join(&lp, "email_env"), &login.email_env);
            let password = self.env_secret(&join(&lp, "password_env"), &login.password_env);
            return Some(ZdmAuth::Login {
                path: login_path?,
                email: email?,
                password: password?,
            });
        }
        self.error(
            path,
            "missing authentication: set one of token_file, token_env or login",
        );
        None
    }

    fn env_secret(&mut self, path: &str, var: &str) -> Option<Secret> {
        let var = var.trim();
        if var.is_empty() {
            self.error(path, "the environment variable name must not be empty");
            return None;
        }
        let valid_name = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            // Not echoed: a value here is more likely a pasted secret than a name.
            self.error(
                path,
                "must name an environment variable (letters, digits and _), not hold the secret itself",
            );
            return None;
        }
        if self.skip_secrets {
            return Some(Secret::new(SKIPPED_SECRET.to_owned()));
        }
        match (self.env)(var) {
            None => {
                self.error(path, format!("environment variable {var} is not set"));
                None
            }
            Some(v) if v.trim().is_empty() => {
                self.error(path, format!("environment variable {var} is empty"));
                None
            }
            Some(v) => self.header_safe(path, &format!("environment variable {var}"), v.trim()),
        }
    }

    fn token_file(&mut self, path: &str, file: &str) -> Option<Secret> {
        if self.skip_secrets {
            if file.trim().is_empty() {
                self.error(path, "the file name must not be empty");
                return None;
            }
            return Some(Secret::new(SKIPPED_SECRET.to_owned()));
        }
        let full = self.base_dir.join(file.trim());
        match std::fs::read_to_string(&full) {
            Err(e) => {
                self.error(
                    path,
                    format!("cannot read token file {}: {e}", full.display()),
                );
                None
            }
            Ok(text) if text.trim().is_empty() => {
                self.error(path, format!("token file {} is empty", full.display()));
                None
            }
            Ok(text) => {
                self.header_safe(path, &format!("token file {}", full.display()), text.trim())
            }
        }
    }

    /// Secrets go into HTTP headers or JSON; reject control characters (e.g. a token
    /// file holding two lines) without ever showing the value.
    fn header_safe(&mut self, path: &str, source: &str, value: &str) -> Option<Secret> {
        if value.chars().any(char::is_control) {
            self.error(
                path,
                format!(
                    "{source} contains control characters (e.g. a line break inside the value)"
                ),
            );
            return None;
        }
        Some(Secret::new(value.to_owned()))
    }

    fn targets(
        &mut self,
        path: &str,
        raw: Option<Vec<RawTarget>>,
        noun: &str,
        allowed: &[&str],
    ) -> Vec<ZdmTarget> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut targets = Vec::new();
        for (i, t) in raw.into_iter().flatten().enumerate() {
            let tp = format!("{path}[{i}]");
            let id = t.id.trim().to_owned();
            if id.is_empty() {
                self.error(tp.clone(), format!("empty {noun} identifier"));
                continue;
            }
            if let Some(first) = seen.get(&id) {
                self.error(
                    tp.clone(),
                    format!("duplicate {noun} `{id}` (also at {path}[{first}])"),
                );
                continue;
            }
            seen.insert(id.clone(), i);
            for (key, _) in &t.query {
                if !allowed.contains(&key.as_str()) {
                    self.error(
                        format!("{tp}.{key}"),
                        format!(
                            "unknown key `{key}`: a {noun} target takes `id` and the query parameters {}",
                            allowed.join(", ")
                        ),
                    );
                }
            }
            targets.push(ZdmTarget { id, query: t.query });
        }
        targets
    }
}

/// Ids and names that go into ARM URL paths: letters, digits, `-`, `_`, `.`, `(`, `)`.
fn is_azure_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

/// Stores a validated override, or records that validation failed.
fn set<T>(value: Option<T>, slot: &mut T, ok: &mut bool) {
    match value {
        Some(v) => *slot = v,
        None => *ok = false,
    }
}

fn resolve_stale(stale: StaleAfter, interval: Duration) -> Result<Duration, String> {
    match stale {
        StaleAfter::Intervals(n) => interval
            .checked_mul(n)
            .ok_or_else(|| format!("stale_after {n}x the interval is too long")),
        StaleAfter::Fixed(d) if d < interval => Err(format!(
            "stale_after {} is shorter than the interval {}",
            humantime::format_duration(d),
            humantime::format_duration(interval)
        )),
        StaleAfter::Fixed(d) => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "tok-3f9a-SECRET";
    const EMAIL: &str = "ops@SECRET.example";
    const PASSWORD: &str = "pw-SECRET-hunter2";

    fn env(name: &str) -> Option<String> {
        match name {
            "ZDM_TOKEN" => Some(format!("  {TOKEN}\n")),
            "ZDM_EMAIL" => Some(EMAIL.to_owned()),
            "ZDM_PASSWORD" => Some(PASSWORD.to_owned()),
            "EMPTY" => Some(" ".to_owned()),
            _ => None,
        }
    }

    fn parse_ok(yaml: &str, dir: &Path) -> Config {
        parse(yaml, dir, &env).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(yaml: &str) -> Vec<ConfigError> {
        match parse(yaml, Path::new("/nonexistent"), &env) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(ConfigErrors(errors)) => errors,
        }
    }

    fn zdm(u: &Upstream) -> &ZdmConfig {
        match &u.kind {
            UpstreamKind::Zdm(z) => z,
            other => panic!("not zdm: {other:?}"),
        }
    }

    fn target(id: &str, query: &[(&str, &str)]) -> ZdmTarget {
        ZdmTarget {
            id: id.to_owned(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn full_config_resolves() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("\n {TOKEN} \n")).unwrap();
        let yaml = r#"
listen: "127.0.0.1:10095"
defaults:
  interval: 1m
  timeout: 5s
  concurrency: 4
  timezone: Asia/Seoul
  stale_after: 2x
  max_body_bytes: 1048576
upstreams:
  - name: zdm-prod
    type: zdm
    url: https://zdm.example.com/
    token_file: token
    status_map: { Verifying: running, "Half Done": completed_with_warnings }
    servers:
      - server-01
      - { id: 2, mode: full, detail: true }
    backup_jobs:
      - daily-backup
      - { id: 7, page: 2, limit: 50, drive: "C:" }
    recovery_jobs: [daily-recovery]
  - name: zdm-old
    type: zdm
    url: http://10.0.0.5:8080
    api_prefix: api/
    token_env: ZDM_TOKEN
    interval: 500ms
    timezone: UTC
    stale_after: 10m
    backup_jobs: [1]
  - name: zdm-login
    type: zdm
    url: https://zdm2.example.com
    api_prefix: /
    login: { email_env: ZDM_EMAIL, password_env: ZDM_PASSWORD }
    concurrency: 1
    max_body_bytes: 100
    servers: [s]
"#;
        let c = parse_ok(yaml, dir.path());
        assert_eq!(c.listen, Some("127.0.0.1:10095".parse().unwrap()));
        assert_eq!(c.upstreams.len(), 3);

        let prod = &c.upstreams[0];
        assert_eq!(prod.name, "zdm-prod");
        assert_eq!(prod.system(), "zdm");
        assert_eq!(
            prod.settings,
            Settings {
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(5),
                concurrency: 4,
                timezone: chrono_tz::Asia::Seoul,
                stale_after: Duration::from_secs(120),
                max_body_bytes: 1_048_576,
            }
        );
        let mut map = StatusMap::new();
        map.insert("verifying", Status::Running);
        map.insert("halfdone", Status::CompletedWithWarnings);
        assert_eq!(prod.status_map, map);
        let z = zdm(prod);
        assert_eq!(z.url, "https://zdm.example.com");
        assert_eq!(z.api_prefix, "/api/v1");
        assert!(matches!(&z.auth, ZdmAuth::Token(t) if t.expose() == TOKEN));
        assert_eq!(
            z.servers,
            [
                target("server-01", &[]),
                target("2", &[("mode", "full"), ("detail", "true")])
            ]
        );
        assert_eq!(
            z.backup_jobs,
            [
                target("daily-backup", &[]),
                target("7", &[("page", "2"), ("limit", "50"), ("drive", "C:")])
            ]
        );
        assert_eq!(z.recovery_jobs, [target("daily-recovery", &[])]);
        assert_eq!(
            prod.summary(),
            "zdm-prod: zdm https://zdm.example.com/api/v1, 2 servers, 2 backup jobs, 1 recovery job, every 1m, auth token"
        );

        let old = &c.upstreams[1];
        assert_eq!(
            old.settings,
            Settings {
                interval: Duration::from_millis(500),
                timeout: Duration::from_secs(5),
                concurrency: 4,
                timezone: chrono_tz::UTC,
                stale_after: Duration::from_secs(600),
                max_body_bytes: 1_048_576,
            }
        );
        assert!(old.status_map.is_empty());
        let z = zdm(old);
        assert_eq!(
            (z.url.as_str(), z.api_prefix.as_str()),
            ("http://10.0.0.5:8080", "/api")
        );
        assert!(matches!(&z.auth, ZdmAuth::Token(t) if t.expose() == TOKEN));
        assert_eq!(z.backup_jobs, [target("1", &[])]);
        assert!(z.servers.is_empty() && z.recovery_jobs.is_empty());

        let login = &c.upstreams[2];
        assert_eq!(login.settings.concurrency, 1);
        assert_eq!(login.settings.max_body_bytes, 100);
        assert_eq!(login.settings.stale_after, Duration::from_secs(120));
        let z = zdm(login);
        assert_eq!(z.api_prefix, "");
        match &z.auth {
            ZdmAuth::Login {
                path,
                email,
                password,
            } => {
                assert_eq!(path, "/api/auth/issue");
                assert_eq!(email.expose(), EMAIL);
                assert_eq!(password.expose(), PASSWORD);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            login.summary(),
            "zdm-login: zdm https://zdm2.example.com, 1 server, 0 backup jobs, 0 recovery jobs, every 1m, auth login /api/auth/issue"
        );
    }

    #[test]
    fn built_in_defaults() {
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x]}]";
        let c = parse_ok(yaml, Path::new("."));
        assert_eq!(c.listen, None);
        let u = &c.upstreams[0];
        assert_eq!(
            u.settings,
            Settings {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
                concurrency: 16,
                timezone: chrono_tz::UTC,
                stale_after: Duration::from_secs(90),
                max_body_bytes: 16_777_216,
            }
        );
        assert_eq!(u.settings, Settings::default());
        assert_eq!(zdm(u).api_prefix, "/api/v1");
        assert_eq!(
            u.summary(),
            "a: zdm http://h/api/v1, 1 server, 0 backup jobs, 0 recovery jobs, every 30s, auth token"
        );
    }

    #[test]
    fn stale_multiplier_follows_the_upstream_interval() {
        let yaml = "defaults: {stale_after: 4x}\nupstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x], interval: 10s}]";
        let c = parse_ok(yaml, Path::new("."));
        assert_eq!(c.upstreams[0].settings.stale_after, Duration::from_secs(40));
    }

    #[test]
    fn every_error_is_reported() {
        let yaml = r#"
listen: "localhost"
bogus: 1
defaults:
  interval: 0s
  timezone: Mars/Olympus
upstreams:
  - name: a
    type: zdm
    url: ftp://zdm
    token_env: NOPE
    stale_after: 0x
    status_map: { verifying: runing }
    servers: [x, x, {id: y, colour: red}]
  - name: a
    type: scp
  - name: c
    type: zdm
    url: https://zdm
    token_env: ZDM_TOKEN
    servers: [z]
    typo: 1
  - name: d
    url: https://zdm
  - name: e
    type: zdm
    url: https://zdm
    servers: [z]
"#;
        let errors: Vec<String> = parse_err(yaml).iter().map(ToString::to_string).collect();
        let expected = [
            "bogus: unknown key `bogus`",
            "listen: invalid address `localhost`",
            "defaults.interval: must be greater than zero",
            "defaults.timezone: unknown time zone `Mars/Olympus`",
            "upstreams[0].url: invalid url `ftp://zdm`: the scheme must be http or https",
            "upstreams[0].token_env: environment variable NOPE is not set",
            "upstreams[0].stale_after: invalid stale_after `0x`",
            "upstreams[0].status_map.verifying: unknown status `runing`",
            "upstreams[0].servers[1]: duplicate server `x` (also at upstreams[0].servers[0])",
            "upstreams[0].servers[2].colour: unknown key `colour`",
            "upstreams[1].name: duplicate upstream name `a` (also used by upstreams[0])",
            "upstreams[1]: missing key `url`",
            "upstreams[2].typo: unknown key `typo`",
            "upstreams[3]: missing `type` (supported types: zdm, scp, azure)",
            "upstreams[4]: missing authentication",
        ];
        for want in expected {
            assert!(
                errors.iter().any(|e| e.starts_with(want)),
                "missing {want:?} in:\n{}",
                errors.join("\n")
            );
        }
        assert_eq!(errors.len(), expected.len(), "{}", errors.join("\n"));
    }

    #[test]
    fn type_errors_carry_their_path() {
        let errors = parse_err(
            "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x], concurrency: many}]",
        );
        assert_eq!(errors[0].path, "upstreams[0].concurrency");
        assert!(
            errors[0]
                .message
                .starts_with("invalid type: string \"many\""),
            "{}",
            errors[0]
        );
        let errors = parse_err(
            "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x, [1]]}]",
        );
        assert_eq!(errors[0].path, "upstreams[0].servers[1]");
        let errors = parse_err("defaults: {interval: 30}\nupstreams: []");
        assert_eq!(errors[0].to_string(), "defaults.interval: invalid type: integer `30`, expected a duration with a unit, like 500ms, 30s, 5m or 1h");
        assert_eq!(
            errors[1].to_string(),
            "upstreams: at least one upstream is required"
        );
    }

    #[test]
    fn yaml_syntax_error_has_a_position() {
        let errors = parse_err("upstreams:\n  - name: [a\n");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "");
        assert!(errors[0].message.contains("line"), "{}", errors[0]);
        assert!(errors[0].message.contains("column"), "{}", errors[0]);
    }

    #[test]
    fn secrets_never_show() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        std::fs::write(dir.path().join("two-lines"), format!("{TOKEN}\n{TOKEN}")).unwrap();
        let yaml = r#"
upstreams:
  - { name: a, type: zdm, url: 'http://h', token_file: token, servers: [x] }
  - { name: b, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x] }
  - { name: c, type: zdm, url: 'http://h', login: { email_env: ZDM_EMAIL, password_env: ZDM_PASSWORD, path: /api/token/issue }, servers: [x] }
"#;
        let c = parse_ok(yaml, dir.path());
        let shown = format!(
            "{c:?} {}",
            c.upstreams
                .iter()
                .map(Upstream::summary)
                .collect::<Vec<_>>()
                .join(" ")
        );
        for secret in [TOKEN, EMAIL, PASSWORD] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
        assert!(shown.contains("<redacted>"));
        assert_eq!(Secret::new(TOKEN.into()).to_string(), "<redacted>");

        // Nor in errors: a multi-line token file, credentials in a url, a value that is
        // not a valid env var name but could be a pasted secret.
        let yaml = format!(
            r#"
upstreams:
  - {{ name: a, type: zdm, url: 'http://h', token_file: two-lines, servers: [x] }}
  - {{ name: b, type: zdm, url: 'https://user:{PASSWORD}@h', token_env: EMPTY, servers: [x] }}
  - {{ name: c, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, token_file: token, servers: [x] }}
  - {{ name: d, type: zdm, url: 'http://h', token_env: '{TOKEN}', servers: [x] }}
"#
        );
        let errors = parse(&yaml, dir.path(), &env).unwrap_err().to_string();
        assert!(errors.contains("control characters"), "{errors}");
        assert!(
            errors.contains("upstreams[3].token_env: must name an environment variable"),
            "{errors}"
        );
        assert!(
            errors.contains("credentials must not be in the url"),
            "{errors}"
        );
        assert!(
            errors.contains("environment variable EMPTY is empty"),
            "{errors}"
        );
        assert!(
            errors.contains("more than one authentication method (token_file, token_env)"),
            "{errors}"
        );
        for secret in [TOKEN, PASSWORD] {
            assert!(!errors.contains(secret), "{secret} leaked: {errors}");
        }
    }

    #[test]
    fn unreadable_config_file() {
        let e = load(Path::new("/nonexistent/backup-exporter.yaml")).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(
            e.to_string()
                .starts_with("cannot read config file /nonexistent/backup-exporter.yaml"),
            "{e}"
        );
    }
}
