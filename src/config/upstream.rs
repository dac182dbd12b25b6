//! What the core knows of an upstream system, without naming one: the descriptor the
//! registry (`src/systems/mod.rs`) lists ([`SystemDef`]), the config a system resolves an
//! upstream to ([`UpstreamConfig`]), the [`Upstream`] that wraps it with what every type
//! shares, and [`read`], the one reader of an upstream's map every system calls.
//!
//! A leaf of the config: it imports the shared checks, settings and connection keys and the
//! source machinery, never the systems (they import it) nor the config's `mod.rs`.

use std::any::Any;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_yaml_ng::{Mapping, Value};

use super::checks::{self, deserialize, join, Cx, Misfit, RawDuration};
use super::client::{self, ClientSettings, RawClient};
use super::settings::{self, Defaults, RawSettings, Settings, Validated};
use crate::http::UpstreamHttp;
use crate::model::{System, TargetKind};
use crate::sources::source::{FieldParser, Source};
use crate::status::StatusMap;

/// One upstream system as the registry lists it: its `type` name, its `system` label and
/// target kinds, and the reader of its upstreams.
pub trait SystemDef: Sync {
    /// The `type:` of its upstreams in the config file.
    fn type_name(&self) -> &'static str;
    /// Its `system` label.
    fn system(&self) -> System;
    /// Every kind of target it polls (the `kind` label), in the order they sort.
    fn kinds(&self) -> &'static [TargetKind];
    /// Reads and validates one upstream of this type, the map at `path` (`upstreams[i]`),
    /// reporting every problem to `cx`; `None` when it has one.
    fn upstream(
        &self,
        cx: &mut Cx<'_>,
        path: &str,
        map: Mapping,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream>;
}

/// A system's resolved config of one upstream: all the core asks of it.
pub trait UpstreamConfig: fmt::Debug + Send + Sync + 'static {
    /// Its `system` label.
    fn system(&self) -> System;
    /// The `--check-config` line after `name: <system> `; never contains a secret. `every`
    /// is the poll interval, formatted.
    fn summary(&self, every: &str) -> String;
    /// Why this config, although valid, may not be what was meant: one line each, without
    /// the upstream's name (the caller puts it in front).
    fn warnings(&self, settings: &Settings) -> Vec<String>;
    /// The source that polls its targets: its requests go through `http`, its answers'
    /// fields are parsed by `fields`.
    fn source(&self, http: UpstreamHttp, fields: FieldParser) -> Arc<dyn Source>;
    /// The config itself, for a test that inspects a system's own fields.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is the same config: a reload keeps an unchanged upstream running.
    /// Implement it with [`same`].
    fn same(&self, other: &dyn UpstreamConfig) -> bool;
    /// With `discover: true`, how often its targets are listed (`discover_interval`);
    /// `None` (the default): only the configured targets are polled.
    fn discover_interval(&self) -> Option<std::time::Duration> {
        None
    }
}

/// [`UpstreamConfig::same`] for a config type with `PartialEq`: equal when `other` is a `T`
/// too and equal to `config`.
pub fn same<T: PartialEq + 'static>(config: &T, other: &dyn UpstreamConfig) -> bool {
    other
        .as_any()
        .downcast_ref::<T>()
        .is_some_and(|other| other == config)
}

/// One configured upstream API, with its defaults already applied.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Unique; the `upstream` label.
    pub name: String,
    /// Poll settings: its own keys over `defaults`.
    pub settings: Settings,
    /// Extra raw status -> normalized status.
    pub status_map: StatusMap,
    /// How it is connected to: `tls_config`, `proxy_url`.
    pub client: ClientSettings,
    /// Its system's own config: what its `type` and that type's keys resolved to.
    pub kind: Arc<dyn UpstreamConfig>,
}

/// Written out: `derive` cannot compare an `Arc<dyn _>` field (rust-lang/rust#31740). The
/// destructuring makes a new field fail to compile here until it is compared too.
impl PartialEq for Upstream {
    fn eq(&self, other: &Self) -> bool {
        let Upstream {
            name,
            settings,
            status_map,
            client,
            kind,
        } = self;
        *name == other.name
            && *settings == other.settings
            && *status_map == other.status_map
            && *client == other.client
            && kind.same(&*other.kind)
    }
}

impl Upstream {
    /// One line for `--check-config` and the startup log; never contains a secret.
    pub fn summary(&self) -> String {
        let every = humantime::format_duration(self.settings.interval).to_string();
        format!(
            "{}: {} {}{}",
            self.name,
            self.system(),
            self.kind.summary(&every),
            self.client.summary()
        )
    }

    /// Why this upstream's configuration, although valid, may not be what was meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self
            .client
            .tls
            .as_ref()
            .is_some_and(|tls| tls.insecure_skip_verify)
        {
            warnings.push(format!(
                "{}: tls_config.insecure_skip_verify is true: the upstream's certificate is not verified, so anyone on the path can read its credentials and answers",
                self.name
            ));
        }
        for warning in self.kind.warnings(&self.settings) {
            warnings.push(format!("{}: {warning}", self.name));
        }
        warnings
    }

    /// The `system` label of its type.
    pub fn system(&self) -> &'static str {
        self.kind.system().as_str()
    }
}

/// The warning of a system whose answers (`who`, e.g. "the API's answers") carry times
/// without an offset: `None` when `timezone` is set, so they are read in that zone.
pub fn naive_times(who: &str, settings: &Settings) -> Option<String> {
    (!settings.timezone_set).then(|| {
        format!(
            "{who} with times that carry no offset, and no `timezone` is set: they are read as UTC (set e.g. `timezone: Asia/Seoul` if the upstream answers in local time)"
        )
    })
}

/// A system's validation of its own keys `T` at a path, given the upstream's poll settings
/// keys and `defaults` (it validates them where their messages belong among its own).
pub type Validate<T, C> =
    fn(&mut Cx<'_>, &str, T, &RawSettings, Option<&Defaults>) -> Option<Validated<C>>;

/// Reads an upstream's map at `path` as its type's own keys `T` plus the keys every type
/// takes (the poll settings and the connection keys), then validates the connection keys
/// and, with `validate`, the rest.
pub fn read<T: DeserializeOwned, C: UpstreamConfig>(
    cx: &mut Cx<'_>,
    path: &str,
    map: Mapping,
    defaults: Option<&Defaults>,
    validate: Validate<T, C>,
) -> Option<Upstream> {
    let (raw, overrides, connect) = split::<T>(cx, path, map)?;
    let client = client::validate(cx, path, &connect);
    let v = validate(cx, path, raw, &overrides, defaults)?;
    Some(Upstream {
        name: v.name,
        settings: v.settings,
        status_map: v.status_map,
        client: client?,
        kind: Arc::new(v.config),
    })
}

/// Splits the map into `T`, the poll settings and the connection keys. Like one struct
/// would, it reports only the first misfit in file order (a missing key last), and nothing
/// is validated further then.
fn split<T: DeserializeOwned>(
    cx: &mut Cx<'_>,
    path: &str,
    map: Mapping,
) -> Option<(T, RawSettings, RawClient)> {
    let keys: Vec<Option<String>> = map.keys().map(|k| k.as_str().map(str::to_owned)).collect();
    let (mut own, mut overrides, mut connect) = (Mapping::new(), Mapping::new(), Mapping::new());
    for (key, value) in map {
        match key.as_str() {
            Some(k) if settings::KEYS.contains(&k) => overrides.insert(key, value),
            Some(k) if client::KEYS.contains(&k) => connect.insert(key, value),
            _ => own.insert(key, value),
        };
    }
    let overrides = deserialize::<RawSettings>(path, Value::Mapping(overrides));
    let connect = deserialize::<RawClient>(path, Value::Mapping(connect));
    let own = deserialize::<T>(path, Value::Mapping(own)).map_err(|mut misfit| {
        // The keys every type takes are accepted too: list them after the type's own.
        let top_level = misfit
            .key
            .as_ref()
            .is_some_and(|key| misfit.error.path == checks::join(path, key));
        let discover = misfit
            .key
            .as_deref()
            .is_some_and(|key| key.starts_with("discover"));
        if top_level && discover && misfit.error.message.starts_with("unknown key `") {
            misfit.error.message = "this upstream's type cannot discover its targets yet (`discover`, `discover_interval`, `discover_filters`): list them".to_owned();
        } else if top_level && misfit.error.message.starts_with("unknown key `") {
            for key in settings::KEYS.iter().chain(client::KEYS) {
                misfit.error.message.push_str(&format!(", `{key}`"));
            }
        }
        misfit
    });
    let position = |misfit: &Misfit| {
        misfit
            .key
            .as_ref()
            .and_then(|key| keys.iter().position(|k| k.as_ref() == Some(key)))
            .unwrap_or(usize::MAX)
    };
    let (own, overrides, connect) = match (own, overrides, connect) {
        (Ok(own), Ok(overrides), Ok(connect)) => return Some((own, overrides, connect)),
        (own, overrides, connect) => (own.err(), overrides.err(), connect.err()),
    };
    let first = [own, overrides, connect]
        .into_iter()
        .flatten()
        .min_by_key(|misfit| position(misfit))?;
    cx.errors.push(first.error);
    None
}

/// `discover_interval` when not set.
pub const DEFAULT_DISCOVER_INTERVAL: Duration = Duration::from_secs(600);
/// The bounds of `discover_interval`.
const DISCOVER_INTERVAL: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);

/// What the keys every discovering type shares say: `discover`, `discover_interval`, and
/// whether `discover_filters` is set.
pub enum Discover {
    /// `discover` is not true (and neither other key is set).
    Off,
    /// `discover: true`, listed every `interval` (`None`: `discover_interval` is in error,
    /// reported to `cx`).
    On { interval: Option<Duration> },
}

/// Reads the keys every discovering type shares, at `path`; `None` when
/// `discover_interval` or `discover_filters` is set without `discover: true` (reported to
/// `cx`). Each type then reads its own `discover_filters`.
pub fn discover(
    cx: &mut Cx<'_>,
    path: &str,
    discover: Option<bool>,
    interval: Option<&RawDuration>,
    filters: bool,
) -> Option<Discover> {
    if discover != Some(true) {
        let mut ok = true;
        for (key, set) in [
            ("discover_interval", interval.is_some()),
            ("discover_filters", filters),
        ] {
            if set {
                cx.error(join(path, key), "has no effect without `discover: true`");
                ok = false;
            }
        }
        return ok.then_some(Discover::Off);
    }
    let interval = match interval {
        Some(d) => cx.bounded_duration(&join(path, "discover_interval"), d, DISCOVER_INTERVAL),
        None => Some(DEFAULT_DISCOVER_INTERVAL),
    };
    Some(Discover::On { interval })
}
