//! `type: azure`: Azure Backup jobs of Recovery Services vaults through the ARM API, with
//! an Azure AD token from a client secret, the managed identity or workload identity.
//!
//! `config.rs` reads its keys, `auth.rs` gets its tokens, `wire.rs` decodes its answers,
//! `map.rs` turns the job lists into records (and remembers runs between polls),
//! `source.rs` pages through the lists and reads job details, `discovery.rs` lists the
//! vaults and their protected and protectable items (`discover: true`), `items.rs` holds
//! what it read of the items between listings; this file is what the registry and the core
//! see of it.

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
mod carry;
mod config;
mod discovery;
#[cfg(test)]
mod fuzz;
mod items;
mod labels;
mod map;
mod source;
#[cfg(test)]
mod vendor;
mod wire;

pub use config::{AzureAuth, AzureConfig, AzureDiscovery, AzureVault, DEFAULT_LOOKBACK, LOOKBACK};
pub use labels::{SYSTEM, VAULT};
pub use source::Azure;

/// Azure Backup as the registry lists it.
pub struct Def;

/// The registry's entry.
pub static DEF: Def = Def;

impl SystemDef for Def {
    fn type_name(&self) -> &'static str {
        "azure"
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
impl UpstreamConfig for AzureConfig {
    fn system(&self) -> System {
        SYSTEM
    }

    fn summary(&self, every: &str) -> String {
        AzureConfig::summary(self, every)
    }

    fn warnings(&self, settings: &Settings) -> Vec<String> {
        AzureConfig::warnings(self, settings)
    }

    fn source(&self, http: UpstreamHttp, fields: FieldParser) -> Arc<dyn Source> {
        Arc::new(Azure::new(self.clone(), http, fields))
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
