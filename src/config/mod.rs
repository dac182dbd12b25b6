//! The YAML config file: raw serde structs (unknown keys rejected), then a validation
//! pass that resolves defaults, secrets and targets and collects *every* problem with
//! its YAML path (`upstreams[1].servers[0]: ...`), so `--check-config` shows them all.
//!
//! This file reads the top level and the upstream list and hands each upstream to the
//! system its `type` names, through the registry (`src/systems/`); what the core knows of
//! a system and of an upstream is in `upstream.rs`, the poll settings every type shares
//! are read by `settings.rs`, the connection keys by `client.rs`, small shared checks live
//! in `checks.rs`, the error types in `error.rs`. Those are leaves the systems use; the
//! children never use this file, and only this file uses the registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use serde_yaml_ng::Value;

use crate::systems;

pub mod checks;
pub mod client;
mod error;
pub mod settings;
pub mod upstream;

pub use checks::{read_capped, read_off_runtime, Secret, FILE_READ_TIMEOUT, MAX_SECRET_FILE_BYTES};
pub use client::{ClientIdentity, ClientSettings, PemFile, TlsSettings};
pub use error::{ConfigError, ConfigErrors};
pub use settings::Settings;
pub use upstream::{SystemDef, Upstream, UpstreamConfig};

use checks::Cx;
use settings::{Defaults, RawSettings};

const TOP_LEVEL_KEYS: [&str; 3] = ["listen", "defaults", "upstreams"];

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Overridden by `--web.listen-address`.
    pub listen: Option<SocketAddr>,
    /// Every configured upstream, in file order.
    pub upstreams: Vec<Upstream>,
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
    let text = checks::read_capped(path, checks::MAX_CONFIG_BYTES).map_err(|e| {
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
    let config = config(&mut cx, yaml);
    match config {
        Some(config) if cx.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(cx.errors)),
    }
}

fn config(cx: &mut Cx<'_>, yaml: &str) -> Option<Config> {
    let depth = checks::nesting_depth(yaml);
    if depth > checks::MAX_NESTING {
        cx.error(
            "",
            format!(
                "nested {depth} levels deep; at most {} levels are accepted",
                checks::MAX_NESTING
            ),
        );
        return None;
    }
    let doc: Value = match serde_yaml_ng::from_str(yaml) {
        Ok(doc) => doc,
        Err(e) => {
            cx.error("", format!("invalid YAML: {e}"));
            return None;
        }
    };
    let mut top = match doc {
        Value::Mapping(m) => m,
        Value::Null => {
            cx.error(
                "",
                "the config file is empty; it needs at least `upstreams`",
            );
            return None;
        }
        _ => {
            cx.error("", "expected a map with `upstreams` at the top level");
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
        cx.error(
            key.clone(),
            format!("unknown key `{key}`, expected one of `listen`, `defaults`, `upstreams`"),
        );
    }

    let listen = match top.remove("listen") {
        None | Some(Value::Null) => None,
        Some(v) => cx.typed::<String>("listen", v).and_then(|s| {
            s.trim()
                .parse::<SocketAddr>()
                .map_err(|_| {
                    cx.error(
                        "listen",
                        format!("invalid address `{s}`, expected IP:PORT like 0.0.0.0:10095"),
                    )
                })
                .ok()
        }),
    };

    let raw_defaults = match top.remove("defaults") {
        None | Some(Value::Null) => Some(RawSettings::default()),
        Some(v) => cx.typed::<RawSettings>("defaults", v),
    };
    let defaults = raw_defaults.map(|raw| settings::defaults(cx, &raw));

    let upstreams = match top.remove("upstreams") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            cx.error("upstreams", "expected a list of upstreams");
            return None;
        }
    };
    if upstreams.is_empty() {
        cx.error("upstreams", "at least one upstream is required");
    }

    let mut seen_names: HashMap<String, usize> = HashMap::new();
    let mut resolved = Vec::new();
    for (i, item) in upstreams.into_iter().enumerate() {
        let path = format!("upstreams[{i}]");
        if let Some(name) = item.get("name").and_then(Value::as_str) {
            if let Some(first) = seen_names.get(name) {
                cx.error(
                    format!("{path}.name"),
                    format!("duplicate upstream name `{name}` (also used by upstreams[{first}])"),
                );
            } else {
                seen_names.insert(name.to_owned(), i);
            }
        }
        if let Some(up) = upstream(cx, &path, item, defaults.as_ref()) {
            resolved.push(up);
        }
    }
    Some(Config {
        listen,
        upstreams: resolved,
    })
}

/// One upstream: its `type` picks the system that validates the rest.
fn upstream(
    cx: &mut Cx<'_>,
    path: &str,
    item: Value,
    defaults: Option<&Defaults>,
) -> Option<Upstream> {
    let Value::Mapping(map) = item else {
        cx.error(path, "expected a map describing an upstream");
        return None;
    };
    let system = match map.get("type") {
        Some(Value::String(t)) => systems::by_type(t),
        _ => None,
    };
    if let Some(system) = system {
        return system.upstream(cx, path, map, defaults);
    }
    match map.get("type") {
        None | Some(Value::Null) => {
            cx.error(
                path,
                format!(
                    "missing `type` (supported types: {})",
                    systems::type_names()
                ),
            );
        }
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| format!("{other:?}"), str::to_owned);
            cx.error(
                format!("{path}.type"),
                format!(
                    "unknown type `{shown}` (supported types: {})",
                    systems::type_names()
                ),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ZDM_TOKEN" => Some("tok-3f9a-SECRET".to_owned()),
            "EMPTY" => Some(" ".to_owned()),
            _ => None,
        }
    }

    fn parse_err(yaml: &str) -> Vec<ConfigError> {
        match parse(yaml, Path::new("/nonexistent"), &env) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(ConfigErrors(errors)) => errors,
        }
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
    fn one_misfit_per_upstream_the_first_in_the_file() {
        // A settings key and a key of the type's own both misfit: the first one written.
        let errors = parse_err(
            "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, concurrency: many, servers: [[1]]}]",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "upstreams[0].concurrency");
        let errors = parse_err(
            "upstreams: [{name: a, type: zdm, url: 'http://h', servers: [[1]], token_env: ZDM_TOKEN, timeout: 5}]",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "upstreams[0].servers[0]");
        // A missing key is found after every key was read.
        let errors = parse_err("upstreams: [{name: a, type: scp, interval: [1], backups: [b]}]");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "upstreams[0].interval");
    }

    #[test]
    fn each_type_maps_to_its_system() {
        let yaml = "upstreams: [{name: a, type: zdm, url: 'http://h', token_env: ZDM_TOKEN, servers: [x]}]";
        let c = parse(yaml, Path::new("."), &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.upstreams[0].kind.system(), crate::systems::zdm::SYSTEM);
        assert_eq!(c.upstreams[0].system(), "zdm");
    }

    #[test]
    fn an_unknown_type_lists_the_registered_ones() {
        let errors = parse_err("upstreams: [{name: a, type: tape}]");
        assert_eq!(
            errors[0].to_string(),
            "upstreams[0].type: unknown type `tape` (supported types: zdm, scp, azure)"
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
