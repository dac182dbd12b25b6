//! The keys of a `type: scp` upstream, their checks with YAML paths, and the resolved
//! config the SCP source runs with: its summary and warnings.

use std::collections::{BTreeMap, HashMap};

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::config::checks::{count, join, Cx, RawDuration, Scalar, Secret};
use crate::config::settings::{self, Defaults, RawSettings, Settings, Validated};
use crate::config::upstream::{self, Discover};
use super::version::ApiVersion;

/// A `type: scp` upstream as written (the poll settings keys are read by `settings`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScp {
    /// Unique name; becomes the `upstream` label.
    name: String,
    /// `scp`.
    #[serde(rename = "type")]
    _type: String,
    /// Base URL of the backup OpenAPI endpoint, e.g.
    /// `https://backup.kr-west1.s.samsungsdscloud.com`.
    url: String,
    /// The backup API version sent as `Scp-Api-Version: backup <version>`.
    api_version: Option<Scalar>,
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
    /// Backups whose runs are polled: `GET /v1/backups/{id}/backup-histories`; as `backups`.
    backup_histories: Option<Vec<RawScpBackup>>,
    /// List `GET /v1/backups` and monitor every backup found (both histories), beside the
    /// backups listed here (which win over a discovered duplicate). Default false.
    discover: Option<bool>,
    /// How often the list is read with `discover: true`. Default 10m, from 1s to 24h.
    discover_interval: Option<RawDuration>,
    /// Filters of the list with `discover: true`.
    discover_filters: Option<RawFilters>,
}

/// The filters the SDK documents on `GET /v1/backups` (`listBackups`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilters {
    /// Only the backups with this name (`name`); `backup_server_protected` is then not
    /// exported (it would call every server outside the filter unprotected).
    name: Option<Scalar>,
    /// Only the backups of these servers (`server_name`); the coverage then asks the
    /// backup targets with the same `server_name`.
    server_name: Option<Scalar>,
}

/// An SCP backup: its id, and the name to export as `job_name`.
#[derive(Debug)]
struct RawScpBackup {
    /// The backup id in the request path.
    id: String,
    /// The `job_name` label; the id when absent.
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

/// Samsung Cloud Platform backup restore histories and backup histories.
#[derive(Debug, Clone, PartialEq)]
pub struct ScpConfig {
    /// Base URL, no trailing slash.
    pub url: String,
    /// The backup API version the requests ask for.
    pub api_version: ApiVersion,
    /// The access key the requests are signed with.
    pub access_key: Secret,
    /// The secret key of the signature.
    pub secret_key: Secret,
    /// Sent as `Scp-AccountId` and signed when given.
    pub account_id: Option<String>,
    /// The backups whose restore histories are polled.
    pub backups: Vec<ScpBackup>,
    /// The backups whose backup histories (backup runs) are polled.
    pub backup_histories: Vec<ScpBackup>,
    /// `discover: true`: how and how often the backups are listed.
    pub discovery: Option<ScpDiscovery>,
}

/// How an SCP upstream is listed (`discover: true`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScpDiscovery {
    /// `discover_interval`.
    pub interval: std::time::Duration,
    /// `discover_filters.name`, sent as `name` on the backup list.
    pub name: Option<String>,
    /// `discover_filters.server_name`, sent as `server_name` on both lists.
    pub server_name: Option<String>,
}

/// One SCP backup whose restore or backup histories are polled.
#[derive(Debug, Clone, PartialEq)]
pub struct ScpBackup {
    /// Letters, digits, `-` and `_` (it goes into the request path).
    pub id: String,
    /// The `job_name` label; the backup id when not configured.
    pub name: Option<String>,
}

impl ScpConfig {
    /// The `--check-config` line after `name: scp `; never contains a secret.
    pub fn summary(&self, every: &str) -> String {
        let discovers = match &self.discovery {
            Some(d) => format!(
                ", discovers every {}",
                humantime::format_duration(d.interval)
            ),
            None => String::new(),
        };
        format!(
            "{}, backup {}, {} for restores, {} for backup runs{discovers}, every {every}, auth signature v2{}",
            self.url,
            self.api_version.as_str(),
            count(self.backups.len(), "backup"),
            count(self.backup_histories.len(), "backup"),
            if self.account_id.is_some() {
                " with account id"
            } else {
                ""
            },
        )
    }

    /// A version past the date Samsung guaranteed it until. (Offset-less times are read
    /// as UTC, as Samsung's SDK reads them: nothing to warn about.)
    pub fn warnings(&self, _settings: &Settings) -> Vec<String> {
        self.api_version
            .warning(chrono::Utc::now().date_naive())
            .into_iter()
            .collect()
    }
}

/// Validates a `type: scp` upstream at `path`, with its poll settings `overrides`.
pub(super) fn validate(
    cx: &mut Cx<'_>,
    path: &str,
    mut raw: RawScp,
    overrides: &RawSettings,
    defaults: Option<&Defaults>,
) -> Option<Validated<ScpConfig>> {
    let errors_before = cx.errors.len();
    let p = |key: &str| join(path, key);
    cx.name(path, &raw.name);
    let url = cx.url(&p("url"), &raw.url);
    let access_key = cx.env_secret(&p("access_key_env"), &raw.access_key_env);
    let secret_key = cx.env_secret(&p("secret_key_env"), &raw.secret_key_env);
    let account_id = raw.account_id.take().map(|a| a.0.trim().to_owned());
    if account_id.as_deref() == Some("") {
        cx.error(p("account_id"), "must not be empty (leave it out instead)");
    }
    let api_version = match raw.api_version.take() {
        None => Some(ApiVersion::default()),
        Some(Scalar(text)) => {
            let version = ApiVersion::parse(&text);
            if version.is_none() {
                cx.error(
                    p("api_version"),
                    format!("unknown version `{text}`: expected \"1.2\" (CURRENT) or \"1.1\" (1.0 is deprecated and past its date)"),
                );
            }
            version
        }
    };
    let settings = settings::upstream(cx, path, overrides, defaults);
    let status_map = cx.status_map(&p("status_map"), raw.status_map.as_ref());

    let backups = backup_list(cx, &p("backups"), raw.backups.take());
    let backup_histories = backup_list(cx, &p("backup_histories"), raw.backup_histories.take());
    let discovery = discovery(cx, path, &raw);
    if matches!(discovery, Some(None)) && backups.is_empty() && backup_histories.is_empty() {
        cx.error(
            path,
            "no targets: list at least one backup under `backups` or `backup_histories`, or set `discover: true`",
        );
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Validated {
        name: raw.name,
        settings: settings?,
        status_map,
        config: ScpConfig {
            url: url?,
            api_version: api_version?,
            access_key: access_key?,
            secret_key: secret_key?,
            account_id,
            backups,
            backup_histories,
            discovery: discovery.flatten(),
        },
    })
}

/// `discover`, `discover_interval`, `discover_filters`: `Some(None)` when discovery is off,
/// `None` on an error (reported to `cx`).
fn discovery(cx: &mut Cx<'_>, path: &str, raw: &RawScp) -> Option<Option<ScpDiscovery>> {
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
    let filters = raw.discover_filters.as_ref();
    let name = filters.and_then(|f| f.name.as_ref()).map(|n| n.0.clone());
    let server_name = filters
        .and_then(|f| f.server_name.as_ref())
        .map(|n| n.0.clone());
    for (key, value) in [("name", &name), ("server_name", &server_name)] {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            cx.error(join(&p("discover_filters"), key), "must not be empty");
        }
    }
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(Some(ScpDiscovery {
        interval: interval?,
        name,
        server_name,
    }))
}

/// The backups listed at `path`, each checked (an id that fits a request path, no
/// duplicate within the list).
fn backup_list(cx: &mut Cx<'_>, path: &str, raw: Option<Vec<RawScpBackup>>) -> Vec<ScpBackup> {
    let mut backups = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, b) in raw.into_iter().flatten().enumerate() {
        let bp = format!("{path}[{i}]");
        let id = b.id.trim().to_owned();
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            cx.error(
                bp,
                format!("invalid backup id `{id}`: expected letters, digits, - or _"),
            );
            continue;
        }
        if let Some(first) = seen.get(&id) {
            cx.error(
                bp,
                format!("duplicate backup `{id}` (also at {path}[{first}])"),
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
    backups
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::ScpConfig;
    use crate::config::{parse, ConfigErrors};
    use crate::systems::scp::ApiVersion;

    fn env(name: &str) -> Option<String> {
        match name {
            "SCP_ACCESS_KEY" => Some("access".to_owned()),
            "SCP_SECRET_KEY" => Some("scp-SECRET".to_owned()),
            _ => None,
        }
    }

    const HEAD: &str = "upstreams:\n  - name: scp-kr\n    type: scp\n    url: https://scp.example.com/\n    access_key_env: SCP_ACCESS_KEY\n    secret_key_env: SCP_SECRET_KEY\n";

    #[test]
    fn backups_resolve_with_their_names() {
        let yaml = format!("{HEAD}    account_id: 42\n    backups: [abc-1, {{ id: def_2, name: ' erp-db ' }}, {{ id: 7, name: '' }}]\n");
        let c = parse(&yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        let Some(scp) = c.upstreams[0].kind.as_any().downcast_ref::<ScpConfig>() else {
            panic!("not scp");
        };
        assert_eq!(scp.url, "https://scp.example.com");
        assert_eq!(scp.account_id.as_deref(), Some("42"));
        let backups: Vec<(&str, Option<&str>)> = scp
            .backups
            .iter()
            .map(|b| (b.id.as_str(), b.name.as_deref()))
            .collect();
        assert_eq!(
            backups,
            [("abc-1", None), ("def_2", Some("erp-db")), ("7", None)]
        );
        assert!(!format!("{c:?}").contains("scp-SECRET"));
    }

    #[test]
    fn backup_histories_and_the_api_version_resolve() {
        let scp = |extra: &str| {
            let yaml = format!("{HEAD}{extra}");
            let c = parse(&yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
            let Some(scp) = c.upstreams[0].kind.as_any().downcast_ref::<ScpConfig>() else {
                panic!("not scp");
            };
            scp.clone()
        };
        let both = scp("    backups: [abc]\n    backup_histories: [abc, { id: def, name: erp }]\n");
        assert_eq!(both.api_version, ApiVersion::V1_2);
        assert_eq!(both.backups.len(), 1);
        let runs: Vec<(&str, Option<&str>)> = both
            .backup_histories
            .iter()
            .map(|b| (b.id.as_str(), b.name.as_deref()))
            .collect();
        assert_eq!(runs, [("abc", None), ("def", Some("erp"))]);
        // Backup runs alone are targets enough; 1.1 in either form, 1.2 as a YAML number.
        let runs_only = scp("    api_version: 1.1\n    backup_histories: [abc]\n");
        assert!(runs_only.backups.is_empty());
        assert_eq!(runs_only.api_version, ApiVersion::V1_1);
        let quoted = scp("    api_version: 'backup 1.2'\n    backups: [abc]\n");
        assert_eq!(quoted.api_version, ApiVersion::V1_2);
        assert!(ApiVersion::V1_2.warning(chrono::Utc::now().date_naive()).is_none());
    }

    #[test]
    fn bad_backup_histories_and_versions_are_reported() {
        let yaml = format!(
            "{HEAD}    api_version: '2.0'\n    backups: [a]\n    backup_histories: [a, a, 'x y']\n"
        );
        let Err(ConfigErrors(errors)) = parse(&yaml, Path::new("."), &env) else {
            panic!("expected errors");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "upstreams[0].api_version: unknown version `2.0`: expected \"1.2\" (CURRENT) or \"1.1\" (1.0 is deprecated and past its date)",
                "upstreams[0].backup_histories[1]: duplicate backup `a` (also at upstreams[0].backup_histories[0])",
                "upstreams[0].backup_histories[2]: invalid backup id `x y`: expected letters, digits, - or _",
            ]
        );
    }

    #[test]
    fn bad_backups_are_reported_each() {
        let yaml = format!("{HEAD}    account_id: ' '\n    backups: [a, a, 'x/y', [1]]\n");
        let Err(ConfigErrors(errors)) = parse(&yaml, Path::new("."), &env) else {
            panic!("expected errors");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["upstreams[0].backups[3]: expected a backup id or a map with `id` and an optional `name`"]
        );
        let yaml = format!("{HEAD}    account_id: ' '\n    backups: [a, a, 'x/y']\n");
        let Err(ConfigErrors(errors)) = parse(&yaml, Path::new("."), &env) else {
            panic!("expected errors");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "upstreams[0].account_id: must not be empty (leave it out instead)",
                "upstreams[0].backups[1]: duplicate backup `a` (also at upstreams[0].backups[0])",
                "upstreams[0].backups[2]: invalid backup id `x/y`: expected letters, digits, - or _",
            ]
        );
    }

    /// `discover: true` alone is a whole upstream; the filters resolve; stray or empty
    /// discovery keys are errors at their paths.
    #[test]
    fn discover_alone_is_enough_and_its_keys_are_checked() {
        let c = parse(&format!("{HEAD}    discover: true\n"), Path::new("."), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(scp) = c.upstreams[0].kind.as_any().downcast_ref::<ScpConfig>() else {
            panic!("not scp");
        };
        let d = scp.discovery.clone().expect("discovery on");
        assert_eq!(d.interval, std::time::Duration::from_secs(600));
        assert_eq!((d.name, d.server_name), (None, None));
        assert!(c.upstreams[0].summary().contains(", discovers every 10m"), "{}", c.upstreams[0].summary());
        let yaml = format!("{HEAD}    discover: true\n    discover_interval: 90s\n    discover_filters: {{ name: nightly, server_name: erp }}\n");
        let c = parse(&yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        let Some(scp) = c.upstreams[0].kind.as_any().downcast_ref::<ScpConfig>() else {
            panic!("not scp");
        };
        let d = scp.discovery.clone().expect("discovery on");
        assert_eq!(d.interval, std::time::Duration::from_secs(90));
        assert_eq!(d.name.as_deref(), Some("nightly"));
        assert_eq!(d.server_name.as_deref(), Some("erp"));

        let errors = |extra: &str| -> Vec<String> {
            let Err(ConfigErrors(errors)) = parse(&format!("{HEAD}{extra}"), Path::new("."), &env) else {
                panic!("expected errors for {extra}");
            };
            errors.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            errors("    discover_interval: 1m\n    discover_filters: { name: a }\n"),
            [
                "upstreams[0].discover_interval: has no effect without `discover: true`",
                "upstreams[0].discover_filters: has no effect without `discover: true`",
            ]
        );
        assert_eq!(
            errors("    discover: false\n"),
            ["upstreams[0]: no targets: list at least one backup under `backups` or `backup_histories`, or set `discover: true`"]
        );
        let shown = errors("    discover: true\n    discover_filters: { name: ' ', server_name: '' }\n");
        assert_eq!(
            shown,
            [
                "upstreams[0].discover_filters.name: must not be empty",
                "upstreams[0].discover_filters.server_name: must not be empty",
            ]
        );
        let shown = errors("    discover: true\n    discover_interval: 0s\n");
        assert!(shown[0].starts_with("upstreams[0].discover_interval: "), "{shown:?}");
        let shown = errors("    discover: true\n    discover_filters: { region: x }\n");
        assert!(shown[0].contains("region"), "{shown:?}");
    }
}
