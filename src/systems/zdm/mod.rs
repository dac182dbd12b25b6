//! `type: zdm`: the ZDM monitoring API (backup servers, backup jobs and recovery jobs) of
//! every released version (0.2.0 .. 2.0.1), with a bearer token or a login.
//!
//! `config.rs` reads its keys, `version.rs` knows the versions and what `auto` asks,
//! `auth.rs` authorizes its requests, `wire.rs` decodes its answers, `map.rs` turns them
//! into records, `source.rs` settles the version and polls its targets; this file is what
//! the registry and the core see of it.

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
mod history;
mod inventory;
mod labels;
mod map;
mod source;
#[cfg(test)]
mod vendor;
#[cfg(test)]
mod vendor_lists;
mod version;
mod wire;

pub use config::{ZdmAuth, ZdmConfig, ZdmDiscovery, ZdmTarget};
pub use labels::{BACKUP_JOB, RECOVERY_JOB, SERVER, SYSTEM};
pub use source::Zdm;

/// ZDM as the registry lists it.
pub struct Def;

/// The registry's entry.
pub static DEF: Def = Def;

impl SystemDef for Def {
    fn type_name(&self) -> &'static str {
        "zdm"
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
impl UpstreamConfig for ZdmConfig {
    fn system(&self) -> System {
        SYSTEM
    }

    fn summary(&self, every: &str) -> String {
        ZdmConfig::summary(self, every)
    }

    fn warnings(&self, settings: &Settings) -> Vec<String> {
        ZdmConfig::warnings(self, settings)
    }

    fn source(&self, http: UpstreamHttp, fields: FieldParser) -> Arc<dyn Source> {
        Arc::new(discovery::Listed(Zdm::new(self.clone(), http, fields)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn UpstreamConfig) -> bool {
        upstream::same(self, other)
    }

    fn discover_interval(&self) -> Option<std::time::Duration> {
        self.discovery.as_ref().map(|d| d.interval)
    }
}
