//! The keys of a `type: zdm` upstream, their checks with YAML paths, and the resolved
//! config the ZDM source runs with: its summary and warnings.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::config::checks::{count, join, Cx, RawDuration, Scalar, Secret};
use crate::config::settings::{self, Defaults, RawSettings, Settings, Validated};
use crate::config::upstream::{self, naive_times, Discover};

use super::version::{ApiVersion, VersionChoice};

/// Query parameters each ZDM endpoint documents (besides the `:identifier` path part), over
/// every released version (0.2.0 .. 2.0.1, the vendor's API pages): what one version lacks
/// its server ignores. `center` is not here: no monitoring endpoint documents it (2.0 adds
/// it to lists and histories only).
///
/// `GET /backups/monitoring/system/:identifier`: `detail` (0.2.0, 2.0), `drive`, `server`,
/// `page`, `limit` (1.0.3 on), `sort` (2.0).
const SERVER_QUERY: &[&str] = &[
    "mode",
    "partition",
    "drive",
    "server",
    "repositoryType",
    "repositoryPath",
    "status",
    "detail",
    "jobName",
    "page",
    "limit",
    "sort",
];
/// `GET /backups/monitoring/job/:identifier`: `detail` and `sort` from 2.0.
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
    "detail",
    "sort",
];
/// `GET /recoveries/monitoring/job/:identifier`: `serverName` (0.2.0) became `server`
/// (1.0.3 on), which added `status`.
const RECOVERY_JOB_QUERY: &[&str] = &[
    "mode",
    "partition",
    "drive",
    "server",
    "serverName",
    "serverType",
    "status",
    "jobName",
    "detail",
];

/// `GET /recoveries/monitoring/system/:identifier`: `serverName` (0.2.0) became `server`
/// (1.0.3 on), which added `page` and `limit`.
const RECOVERY_SERVER_QUERY: &[&str] = &[
    "mode",
    "partition",
    "drive",
    "server",
    "serverName",
    "serverType",
    "status",
    "jobName",
    "detail",
    "page",
    "limit",
];
/// `GET /replications/monitoring/job/:identifier` (1.2.0 .. 2.0.1 pages).
const REPLICATION_JOB_QUERY: &[&str] = &["server", "status", "page", "limit", "sort"];

/// Values the vendor documents for the typed query parameters: `page` and `limit` are
/// numbers (1 and up), `detail` a boolean, `sort` `asc` or `desc`.
fn query_value_error(key: &str, value: &str) -> Option<String> {
    let ok = match key {
        "page" | "limit" => value.parse::<u32>().is_ok_and(|n| n >= 1),
        "detail" => matches!(value, "true" | "false"),
        "sort" => matches!(value, "asc" | "desc"),
        _ => true,
    };
    (!ok).then(|| {
        let want = match key {
            "page" | "limit" => "a whole number from 1",
            "detail" => "true or false",
            _ => "asc or desc",
        };
        format!("`{key}` must be {want}, not `{value}`")
    })
}

/// A `type: zdm` upstream as written (the poll settings keys are read by `settings`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZdm {
    /// Unique name; becomes the `upstream` label.
    name: String,
    /// `zdm`.
    #[serde(rename = "type")]
    _type: String,
    /// Base URL of the ZDM API server (http or https), e.g. `https://zdm.example.com`.
    url: String,
    /// The ZDM API version: `auto` (default: settled from what the server answers) or
    /// `"0.2"`, `"1.0"`, `"1.1"`, `"1.2"`, `"1.3"`, `"2.0"` (a release such as `"1.3.1"`
    /// names its profile).
    api_version: Option<Scalar>,
    /// Path prefix of the API; default the version's (`/api` from 1.0.3 on, `/api/v1` for
    /// 0.2).
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
    /// Servers whose recoveries to poll, with their summary:
    /// `GET {api_prefix}/recoveries/monitoring/system/{id}`.
    recovery_servers: Option<Vec<RawTarget>>,
    /// Replication jobs to poll (ZDM 1.1 on):
    /// `GET {api_prefix}/replications/monitoring/job/{id}`.
    replication_jobs: Option<Vec<RawTarget>>,
    /// List the upstream (1.0.3 on: `/servers`, `/backups`, `/recoveries`, `/replications`,
    /// `/zdms/repositories`, `/licenses`) and monitor every job found, beside the targets
    /// listed here (which win over a discovered duplicate). Default false.
    discover: Option<bool>,
    /// How often the listings are read with `discover: true`. Default 10m, from 1s to 24h.
    discover_interval: Option<RawDuration>,
    /// Filters of the listings with `discover: true`.
    discover_filters: Option<RawFilters>,
}

/// The filters the vendor documents on every listing discovery reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilters {
    /// Only these centers (ZDM 2.0: an ID or name, several comma-separated).
    center: Option<Scalar>,
    /// Only the jobs with this name (`jobName` of the job listings); the servers'
    /// `backup_server_protected` is then not exported (it would call every server outside
    /// the filter unprotected).
    #[serde(rename = "jobName")]
    job_name: Option<Scalar>,
}

/// ZDM token issuing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    /// Token issuing endpoint; default the version's: `/api/auth/issue` (1.x),
    /// `/api/token/issue` (2.0), `/api/v1/auth/issue` (0.2).
    path: Option<String>,
    /// Environment variable holding the login email.
    email_env: String,
    /// Environment variable holding the password.
    password_env: String,
}

/// A target: a bare identifier (string or number) or `{id: ..., <query param>: ...}`.
#[derive(Debug)]
struct RawTarget {
    /// The identifier in the endpoint's path.
    id: String,
    /// Query filters the endpoint documents, in the order written.
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

/// A validated ZDM upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ZdmConfig {
    /// Base URL, no trailing slash.
    pub url: String,
    /// `api_version`: fixed, or settled from the server's answers.
    pub api_version: VersionChoice,
    /// The configured `api_prefix` (leading slash, no trailing slash, `""` when the API is
    /// at the root); `None`: the version's.
    pub api_prefix: Option<String>,
    /// How requests are authorized.
    pub auth: ZdmAuth,
    /// `GET {api_prefix}/backups/monitoring/system/{id}`
    pub servers: Vec<ZdmTarget>,
    /// `GET {api_prefix}/backups/monitoring/job/{id}`
    pub backup_jobs: Vec<ZdmTarget>,
    /// `GET {api_prefix}/recoveries/monitoring/job/{id}`
    pub recovery_jobs: Vec<ZdmTarget>,
    /// `GET {api_prefix}/recoveries/monitoring/system/{id}`
    pub recovery_servers: Vec<ZdmTarget>,
    /// `GET {api_prefix}/replications/monitoring/job/{id}`
    pub replication_jobs: Vec<ZdmTarget>,
    /// The poll interval: how often the run histories are read (once per interval).
    pub interval: std::time::Duration,
    /// `discover: true`: how and how often the upstream is listed.
    pub discovery: Option<ZdmDiscovery>,
}

/// How a ZDM upstream is listed (`discover: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct ZdmDiscovery {
    /// `discover_interval`.
    pub interval: std::time::Duration,
    /// `discover_filters.center`, sent as `center` on every listing.
    pub center: Option<String>,
    /// `discover_filters.jobName`, sent as `jobName` on the job listings.
    pub job_name: Option<String>,
}

/// How a ZDM upstream's requests are authorized.
#[derive(Debug, Clone, PartialEq)]
pub enum ZdmAuth {
    /// A static bearer token.
    Token(Secret),
    /// Issue a token by POSTing `{"email","password"}` to `path`.
    Login {
        /// The configured token issuing endpoint, leading slash; `None`: the version's.
        path: Option<String>,
        /// The login email.
        email: Secret,
        /// The login password.
        password: Secret,
    },
}

/// One identifier to poll, with the query filters to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ZdmTarget {
    /// The identifier in the endpoint's path.
    pub id: String,
    /// Query filters, in the order configured.
    pub query: Vec<(String, String)>,
}

impl ZdmConfig {
    /// The `--check-config` line after `name: zdm `; never contains a secret.
    pub fn summary(&self, every: &str) -> String {
        let auth = match &self.auth {
            ZdmAuth::Token(_) => "auth token".to_owned(),
            ZdmAuth::Login { path, .. } => match (path, self.api_version) {
                (Some(path), _) => format!("auth login {path}"),
                (None, VersionChoice::Fixed(v)) => format!("auth login {}", v.login_path()),
                (None, VersionChoice::Auto) => "auth login (path by version)".to_owned(),
            },
        };
        let version = match self.api_version {
            VersionChoice::Auto => "auto".to_owned(),
            VersionChoice::Fixed(v) => v.as_str().to_owned(),
        };
        let prefix = match (&self.api_prefix, self.api_version) {
            (Some(prefix), _) => prefix.as_str(),
            (None, VersionChoice::Fixed(v)) => v.api_prefix(),
            (None, VersionChoice::Auto) => "",
        };
        // The kinds added with the versions only when used, so older lines stay as they were.
        let mut more = String::new();
        if !self.recovery_servers.is_empty() {
            more.push_str(&format!(", {}", count(self.recovery_servers.len(), "recovery server")));
        }
        if !self.replication_jobs.is_empty() {
            more.push_str(&format!(", {}", count(self.replication_jobs.len(), "replication job")));
        }
        if let Some(d) = &self.discovery {
            more.push_str(&format!(
                ", discovers every {}",
                humantime::format_duration(d.interval)
            ));
        }
        format!(
            "{}{} (API {version}), {}, {}, {}{more}, every {every}, {auth}",
            self.url,
            prefix,
            count(self.servers.len(), "server"),
            count(self.backup_jobs.len(), "backup job"),
            count(self.recovery_jobs.len(), "recovery job"),
        )
    }

    /// ZDM from 1.0.3 on answers with times that carry no offset: read as UTC unless
    /// `timezone` is set (only 0.2, fixed or under its `/api/v1`, writes RFC 3339 with `Z`).
    pub fn warnings(&self, settings: &Settings) -> Vec<String> {
        let v0_2 = match self.api_version {
            VersionChoice::Fixed(v) => v == ApiVersion::V0_2,
            VersionChoice::Auto => self.api_prefix.as_deref() == Some(ApiVersion::V0_2.api_prefix()),
        };
        let naive = !v0_2;
        naive
            .then(|| naive_times("ZDM (1.0.3 on) answers", settings))
            .flatten()
            .into_iter()
            .collect()
    }
}

/// Validates a `type: zdm` upstream at `path`, with its poll settings `overrides`.
pub(super) fn validate(
    cx: &mut Cx<'_>,
    path: &str,
    raw: RawZdm,
    overrides: &RawSettings,
    defaults: Option<&Defaults>,
) -> Option<Validated<ZdmConfig>> {
    let errors_before = cx.errors.len();
    let p = |key: &str| join(path, key);

    cx.name(path, &raw.name);
    let url = cx.url(&p("url"), &raw.url);
    let api_version = api_version(cx, &p("api_version"), raw.api_version.as_ref());
    let api_prefix = raw.api_prefix.as_ref().map(|prefix| {
        cx.url_path(&p("api_prefix"), prefix, true)
            .unwrap_or_default()
    });
    let auth = auth(cx, path, &raw);
    let settings = settings::upstream(cx, path, overrides, defaults);
    let status_map = cx.status_map(&p("status_map"), raw.status_map.as_ref());

    let discovery = discovery(cx, path, &raw, api_version);
    let servers = targets(cx, &p("servers"), raw.servers, "server", SERVER_QUERY);
    let backup_jobs = targets(
        cx,
        &p("backup_jobs"),
        raw.backup_jobs,
        "backup job",
        BACKUP_JOB_QUERY,
    );
    let recovery_jobs = targets(
        cx,
        &p("recovery_jobs"),
        raw.recovery_jobs,
        "recovery job",
        RECOVERY_JOB_QUERY,
    );
    let recovery_servers = targets(
        cx,
        &p("recovery_servers"),
        raw.recovery_servers,
        "recovery server",
        RECOVERY_SERVER_QUERY,
    );
    let replication_jobs = targets(
        cx,
        &p("replication_jobs"),
        raw.replication_jobs,
        "replication job",
        REPLICATION_JOB_QUERY,
    );
    if let (false, Some(VersionChoice::Fixed(v))) = (replication_jobs.is_empty(), api_version) {
        if !v.has_replication() {
            cx.error(
                p("replication_jobs"),
                format!("ZDM {v} has no replication monitoring (from 1.1 on); set api_version to \"1.1\" or later, or auto"),
            );
        }
    }
    if matches!(discovery, Some(None))
        && servers.is_empty()
        && backup_jobs.is_empty()
        && recovery_jobs.is_empty()
        && recovery_servers.is_empty()
        && replication_jobs.is_empty()
    {
        cx.error(
            path,
            "no targets: list at least one of `servers`, `backup_jobs`, `recovery_jobs`, `recovery_servers`, `replication_jobs`, or set `discover: true`",
        );
    }

    if cx.errors.len() > errors_before {
        return None;
    }
    let settings = settings?;
    Some(Validated {
        name: raw.name,
        settings: settings.clone(),
        status_map,
        config: ZdmConfig {
            url: url?,
            api_version: api_version?,
            api_prefix,
            auth: auth?,
            servers,
            backup_jobs,
            recovery_jobs,
            recovery_servers,
            replication_jobs,
            interval: settings.interval,
            discovery: discovery.flatten(),
        },
    })
}

/// `discover`, `discover_interval`, `discover_filters`: `Some(None)` when discovery is off,
/// `None` on an error (reported to `cx`).
fn discovery(
    cx: &mut Cx<'_>,
    path: &str,
    raw: &RawZdm,
    api_version: Option<VersionChoice>,
) -> Option<Option<ZdmDiscovery>> {
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
    if let Some(VersionChoice::Fixed(v)) = api_version {
        if v == ApiVersion::V0_2 {
            cx.error(
                p("discover"),
                "ZDM 0.2 has no listings (they came with 1.0.3); list the targets or set api_version to \"1.0\" or later, or auto",
            );
        }
    }
    let filters = raw.discover_filters.as_ref();
    let center = filters.and_then(|f| f.center.as_ref()).map(|c| c.0.clone());
    if let (Some(_), Some(VersionChoice::Fixed(v))) = (&center, api_version) {
        if v < ApiVersion::V2_0 {
            cx.error(
                join(&p("discover_filters"), "center"),
                format!("ZDM {v} lists no centers (the `center` filter came with 2.0)"),
            );
        }
    }
    let job_name = filters
        .and_then(|f| f.job_name.as_ref())
        .map(|j| j.0.clone());
    for (key, value) in [("center", &center), ("jobName", &job_name)] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            cx.error(join(&p("discover_filters"), key), "must not be empty");
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Some(ZdmDiscovery {
        interval: interval?,
        center,
        job_name,
    }))
}

fn auth(cx: &mut Cx<'_>, path: &str, raw: &RawZdm) -> Option<ZdmAuth> {
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
        cx.error(
            path,
            format!(
                "more than one authentication method ({}); set exactly one of token_file, token_env, login",
                methods.join(", ")
            ),
        );
        return None;
    }
    if let Some(file) = &raw.token_file {
        return cx.token_file(&p("token_file"), file).map(ZdmAuth::Token);
    }
    if let Some(var) = &raw.token_env {
        return cx.env_secret(&p("token_env"), var).map(ZdmAuth::Token);
    }
    if let Some(login) = &raw.login {
        let lp = p("login");
        let login_path = match &login.path {
            None => Some(None),
            Some(path) => cx.url_path(&join(&lp, "path"), path, false).map(Some),
        };
        let email = cx.env_secret(&join(&lp, "email_env"), &login.email_env);
        let password = cx.env_secret(&join(&lp, "password_env"), &login.password_env);
        return Some(ZdmAuth::Login {
            path: login_path?,
            email: email?,
            password: password?,
        });
    }
    cx.error(
        path,
        "missing authentication: set one of token_file, token_env or login",
    );
    None
}

/// `api_version`: `auto` (also when absent), a profile (`"1.3"`; YAML's number `1.3` too)
/// or a release (`"1.3.1"`).
fn api_version(cx: &mut Cx<'_>, path: &str, raw: Option<&Scalar>) -> Option<VersionChoice> {
    let Some(Scalar(text)) = raw else {
        return Some(VersionChoice::Auto);
    };
    // YAML reads `2.0` unquoted as the number 2: the profile of that major.
    let text = match text.as_str() {
        "2" => "2.0",
        "1" => "1.0",
        other => other,
    };
    if text.trim() == "auto" {
        return Some(VersionChoice::Auto);
    }
    if let Some(v) = ApiVersion::parse(text) {
        return Some(VersionChoice::Fixed(v));
    }
    let known: Vec<String> = ApiVersion::ALL
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect();
    cx.error(
        path,
        format!(
            "unknown ZDM API version `{text}`: auto, {} (or a release such as \"1.3.1\")",
            known.join(", ")
        ),
    );
    None
}

fn targets(
    cx: &mut Cx<'_>,
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
            cx.error(tp.clone(), format!("empty {noun} identifier"));
            continue;
        }
        if let Some(first) = seen.get(&id) {
            cx.error(
                tp.clone(),
                format!("duplicate {noun} `{id}` (also at {path}[{first}])"),
            );
            continue;
        }
        seen.insert(id.clone(), i);
        for (key, value) in &t.query {
            if let Some(why) = query_value_error(key, value) {
                cx.error(format!("{tp}.{key}"), why);
            }
            if !allowed.contains(&key.as_str()) {
                cx.error(
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{parse, Config, Upstream};
    use crate::status::{Status, StatusMap};

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

    fn zdm(u: &Upstream) -> &ZdmConfig {
        match u.kind.as_any().downcast_ref::<ZdmConfig>() {
            Some(z) => z,
            None => panic!("not zdm: {:?}", u.kind),
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

    /// Every query parameter the vendor documents for an endpoint (any version) is accepted
    /// on its target kind and passed on in the order written.
    #[test]
    fn every_documented_query_parameter_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = r#"
upstreams:
  - name: z
    type: zdm
    url: https://zdm.example.com
    token_env: ZDM_TOKEN
    servers:
      - { id: s, mode: full, partition: /, drive: "C:", server: s, repositoryType: nfs, repositoryPath: /r, status: complete, detail: true, jobName: j, page: 1, limit: 20, sort: desc }
    backup_jobs:
      - { id: b, mode: full, partition: /, drive: "C:", server: s, repositoryType: smb, repositoryPath: /r, status: Scheduled, jobName: j, page: 2, limit: 5, detail: false, sort: asc }
    recovery_jobs:
      - { id: r, mode: full, partition: /, drive: "C:", server: s, serverName: s, serverType: target, status: error, jobName: j, detail: true }
    recovery_servers:
      - { id: t, mode: full, partition: /, drive: "C:", server: s, serverName: s, serverType: target, status: error, jobName: j, detail: true, page: 1, limit: 10 }
    replication_jobs:
      - { id: p, server: s, status: running, page: 1, limit: 5, sort: asc }
"#;
        let c = parse_ok(yaml, dir.path());
        let z = zdm(&c.upstreams[0]);
        assert_eq!(z.servers[0].query.len(), 12);
        assert_eq!(z.backup_jobs[0].query.len(), 12);
        assert_eq!(z.recovery_jobs[0].query.len(), 9);
        assert_eq!(z.recovery_servers[0].query.len(), 11);
        assert_eq!(z.replication_jobs[0].query.len(), 5);
        assert!(c.upstreams[0]
            .summary()
            .contains("1 recovery server, 1 replication job, every"));
        assert_eq!(z.servers[0].query[11], ("sort".to_string(), "desc".to_string()));
    }

    #[test]
    fn typed_query_parameters_are_checked_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        for (target, want) in [
            ("{ id: s, page: 0 }", "upstreams[0].servers[0].page: `page` must be a whole number from 1, not `0`"),
            ("{ id: s, limit: lots }", "upstreams[0].servers[0].limit: `limit` must be a whole number from 1, not `lots`"),
            ("{ id: s, sort: up }", "upstreams[0].servers[0].sort: `sort` must be asc or desc, not `up`"),
            ("{ id: s, detail: yes please }", "upstreams[0].servers[0].detail: `detail` must be true or false, not `yes please`"),
            ("{ id: s, center: c1 }", "upstreams[0].servers[0].center: unknown key `center`"),
        ] {
            let yaml = format!("upstreams:\n  - name: z\n    type: zdm\n    url: https://z.example.com\n    token_env: ZDM_TOKEN\n    servers:\n      - {target}\n");
            let err = parse(&yaml, dir.path(), &env).err().unwrap_or_else(|| panic!("{target} accepted"));
            assert!(err.to_string().contains(want), "{target}: {err}");
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
  max_jobs_per_target: 500
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
    api_version: 1.3
    login: { email_env: ZDM_EMAIL, password_env: ZDM_PASSWORD }
    concurrency: 1
    max_body_bytes: 2048
    max_jobs_per_target: 1000000
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
                timezone_set: true,
                stale_after: Duration::from_secs(120),
                max_body_bytes: 1_048_576,
                max_jobs_per_target: 500,
                job_status: crate::model::JobStatusSeries::StateSet,
                forget_after: crate::config::settings::DEFAULT_FORGET_AFTER,
            }
        );
        let mut map = StatusMap::new();
        map.insert("verifying", Status::Running);
        map.insert("halfdone", Status::CompletedWithWarnings);
        assert_eq!(prod.status_map, map);
        let z = zdm(prod);
        assert_eq!(z.url, "https://zdm.example.com");
        assert_eq!(z.api_prefix, None, "the version decides");
        assert_eq!(z.api_version, VersionChoice::Auto);
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
            "zdm-prod: zdm https://zdm.example.com (API auto), 2 servers, 2 backup jobs, 1 recovery job, every 1m, auth token"
        );

        let old = &c.upstreams[1];
        assert_eq!(
            old.settings,
            Settings {
                interval: Duration::from_millis(500),
                timeout: Duration::from_secs(5),
                concurrency: 4,
                timezone: chrono_tz::UTC,
                timezone_set: true,
                stale_after: Duration::from_secs(600),
                max_body_bytes: 1_048_576,
                max_jobs_per_target: 500,
                job_status: crate::model::JobStatusSeries::StateSet,
                forget_after: crate::config::settings::DEFAULT_FORGET_AFTER,
            }
        );
        assert!(old.status_map.is_empty());
        let z = zdm(old);
        assert_eq!(
            (z.url.as_str(), z.api_prefix.as_deref()),
            ("http://10.0.0.5:8080", Some("/api"))
        );
        assert!(matches!(&z.auth, ZdmAuth::Token(t) if t.expose() == TOKEN));
        assert_eq!(z.backup_jobs, [target("1", &[])]);
        assert!(z.servers.is_empty() && z.recovery_jobs.is_empty());

        let login = &c.upstreams[2];
        assert_eq!(login.settings.concurrency, 1);
        assert_eq!(login.settings.max_body_bytes, 2048);
        assert_eq!(login.settings.max_jobs_per_target, 1_000_000);
        assert_eq!(login.settings.stale_after, Duration::from_secs(120));
        let z = zdm(login);
        assert_eq!(z.api_prefix.as_deref(), Some(""));
        assert_eq!(z.api_version, VersionChoice::Fixed(ApiVersion::V1_3));
        match &z.auth {
            ZdmAuth::Login {
                path,
                email,
                password,
            } => {
                assert_eq!(path, &None, "the version's");
                assert_eq!(email.expose(), EMAIL);
                assert_eq!(password.expose(), PASSWORD);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            login.summary(),
            "zdm-login: zdm https://zdm2.example.com (API 1.3), 1 server, 0 backup jobs, 0 recovery jobs, every 1m, auth login /api/auth/issue"
        );
    }

    /// `discover: true` alone is a whole upstream: no target list, the default interval,
    /// the filters kept; the summary says it.
    #[test]
    fn discover_alone_is_enough() {
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, discover: true}]";
        let c = parse_ok(yaml, Path::new("."));
        let z = zdm(&c.upstreams[0]);
        let d = z.discovery.as_ref().expect("discovery on");
        assert_eq!(d.interval, Duration::from_secs(600));
        assert_eq!((d.center.as_deref(), d.job_name.as_deref()), (None, None));
        assert!(c.upstreams[0].summary().contains(", discovers every 10m, every 30s"), "{}", c.upstreams[0].summary());
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', api_version: '2.0', token_env: ZDM_TOKEN, discover: true, discover_interval: 90s, discover_filters: {center: 'destconm,9', jobName: nightly}, servers: [s]}]";
        let c = parse_ok(yaml, Path::new("."));
        let d = zdm(&c.upstreams[0]).discovery.clone().expect("discovery on");
        assert_eq!(d.interval, Duration::from_secs(90));
        assert_eq!(d.center.as_deref(), Some("destconm,9"));
        assert_eq!(d.job_name.as_deref(), Some("nightly"));
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, discover: false}]";
        let err = parse(yaml, Path::new("."), &env).unwrap_err().to_string();
        assert!(err.contains("no targets"), "{err}");
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
                timezone_set: false,
                stale_after: Duration::from_secs(90),
                max_body_bytes: 16_777_216,
                max_jobs_per_target: 10_000,
                job_status: crate::model::JobStatusSeries::StateSet,
                forget_after: crate::config::settings::DEFAULT_FORGET_AFTER,
            }
        );
        assert_eq!(u.settings, Settings::default());
        assert_eq!(zdm(u).api_prefix, None);
        assert_eq!(zdm(u).api_version, VersionChoice::Auto);
        assert_eq!(
            u.summary(),
            "a: zdm http://h (API auto), 1 server, 0 backup jobs, 0 recovery jobs, every 30s, auth token"
        );
    }

    /// `api_version` as a string, as YAML's number, as a release; each fixed version's
    /// defaults in the summary; an unknown one named with its path.
    #[test]
    fn api_version_picks_the_defaults_and_explicit_keys_win() {
        for (written, want, summary) in [
            ("auto", VersionChoice::Auto, "http://h (API auto)"),
            ("\"2.0\"", VersionChoice::Fixed(ApiVersion::V2_0), "http://h/api (API 2.0)"),
            ("2.0", VersionChoice::Fixed(ApiVersion::V2_0), "http://h/api (API 2.0)"),
            ("1.0", VersionChoice::Fixed(ApiVersion::V1_0), "http://h/api (API 1.0)"),
            ("1.3", VersionChoice::Fixed(ApiVersion::V1_3), "http://h/api (API 1.3)"),
            ("\"1.3.1\"", VersionChoice::Fixed(ApiVersion::V1_3), "http://h/api (API 1.3)"),
            ("0.2", VersionChoice::Fixed(ApiVersion::V0_2), "http://h/api/v1 (API 0.2)"),
        ] {
            let yaml = format!("upstreams: [{{name: a, type: zdm, url: 'http://h', api_version: {written}, login: {{ email_env: ZDM_EMAIL, password_env: ZDM_PASSWORD }}, servers: [x]}}]");
            let c = parse_ok(&yaml, Path::new("."));
            let u = &c.upstreams[0];
            assert_eq!(zdm(u).api_version, want, "{written}");
            assert!(u.summary().contains(summary), "{written}: {}", u.summary());
            if let VersionChoice::Fixed(v) = want {
                assert!(u.summary().ends_with(&format!("auth login {}", v.login_path())), "{}", u.summary());
            }
        }
        // A 0.2 config written before versions existed keeps its paths.
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', api_version: '0.2', api_prefix: /api/v1, login: { path: /api/v1/auth/issue, email_env: ZDM_EMAIL, password_env: ZDM_PASSWORD }, servers: [x]}]";
        let c = parse_ok(yaml, Path::new("."));
        assert!(c.upstreams[0].summary().contains("http://h/api/v1 (API 0.2)"));
        let dir = tempfile::tempdir().unwrap();
        for bad in ["1.4", "\"v2\"", "latest", "3"] {
            let yaml = format!("upstreams: [{{name: a, type: zdm, url: 'http://h', api_version: {bad}, token_env: ZDM_TOKEN, servers: [x]}}]");
            let err = parse(&yaml, dir.path(), &env).err().unwrap_or_else(|| panic!("{bad} accepted")).to_string();
            assert!(err.contains("upstreams[0].api_version: unknown ZDM API version"), "{bad}: {err}");
            assert!(err.contains(r#"auto, "0.2", "1.0", "1.1", "1.2", "1.3", "2.0""#), "{err}");
        }
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
}
