//! `type: scp`: Samsung Cloud Platform backup restore histories and backup histories,
//! signed with signature v2.
//!
//! `config.rs` reads its keys, `version.rs` knows the API versions and their dates,
//! `auth.rs` signs its requests, `wire.rs` decodes its pages,
//! `map.rs` turns the histories into records (and remembers them between polls),
//! `source.rs` pages through them, `discovery.rs` lists the backups and the servers
//! (`discover: true`); this file is what the registry and the core see of it.

use std::any::Any;
use std::sync::Arc;

use serde_yaml_ng::Mapping;

use crate::config::checks::Cx;
use crate::config::settings::{Defaults, Settings};
use crate::config::upstream::{self, SystemDef, Upstream, UpstreamConfig};
use crate::http::UpstreamHttp;
use crate::model::{System, TargetKind};
use crate::sources::source::{FieldParser, Source};

mod auth;
mod config;
mod discovery;
#[cfg(test)]
mod fuzz;
mod labels;
mod map;
mod source;
mod version;
mod wire;

pub use config::{ScpBackup, ScpConfig, ScpDiscovery};
pub use version::ApiVersion;
pub use labels::{BACKUP, BACKUP_HISTORIES, SYSTEM};
pub use source::Scp;

/// SCP as the registry lists it.
pub struct Def;

/// The registry's entry.
pub static DEF: Def = Def;

impl SystemDef for Def {
    fn type_name(&self) -> &'static str {
        "scp"
    }

    fn system(&self) -> System {
        SYSTEM
    }

    fn kinds(&self) -> &'static [TargetKind] {
        labels::KINDS
    }

    fn upstream(
        &self,
        cx: &mut Cx<'_>,
        path: &str,
        map: Mapping,
        defaults: Option<&Defaults>,
    ) -> Option<Upstream> {
        upstream::read(cx, path, map, defaults, config::validate)
    }
}

/// `summary` and `warnings` are the inherent ones of `config.rs` (a path names the inherent
/// method before the trait's).
impl UpstreamConfig for ScpConfig {
    fn system(&self) -> System {
        SYSTEM
    }

    fn summary(&self, every: &str) -> String {
        ScpConfig::summary(self, every)
    }

    fn warnings(&self, settings: &Settings) -> Vec<String> {
        ScpConfig::warnings(self, settings)
    }

    fn source(&self, http: UpstreamHttp, fields: FieldParser) -> Arc<dyn Source> {
        Arc::new(Scp::new(self.clone(), http, fields))
    }

    fn discover_interval(&self) -> Option<std::time::Duration> {
        self.discovery.as_ref().map(|d| d.interval)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn UpstreamConfig) -> bool {
        upstream::same(self, other)
    }
}
