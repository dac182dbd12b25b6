//! The one place that registers the upstream systems: the `type -> Source` map.

use std::sync::Arc;

use crate::config::{Upstream, UpstreamKind};
use crate::http::{self, Limits, UpstreamHttp};
use crate::telemetry::Telemetry;

pub mod azure;
#[cfg(test)]
mod fuzzing;
pub mod scp;
mod source;
pub mod zdm;

pub use source::*;

/// Builds the source of one configured upstream: the `type -> Source` map. `client` is the
/// shared client; an upstream with `tls_config` or `proxy_url` gets one of its own.
pub fn build(
    upstream: &Upstream,
    client: reqwest::Client,
    telemetry: Telemetry,
) -> Arc<dyn Source> {
    let name: Arc<str> = Arc::from(upstream.name.as_str());
    let limits = Limits {
        timeout: upstream.settings.timeout,
        max_body_bytes: upstream.settings.max_body_bytes,
    };
    let system = upstream.kind.system();
    let own = http::upstream_client(&client, &upstream.client);
    let http = UpstreamHttp::new(
        own.as_ref().map_or(client, Clone::clone),
        system.as_str(),
        name.clone(),
        limits,
        telemetry.clone(),
    );
    let http = match &own {
        Ok(_) => http,
        Err(e) => {
            tracing::error!(upstream = %name, problem = %e, "cannot build the upstream's HTTP client; its polls fail");
            http.unusable(e)
        }
    };
    let fields = FieldParser::new(
        system,
        name,
        upstream.settings.timezone,
        upstream.status_map.clone(),
        telemetry,
    )
    .with_max_jobs(upstream.settings.max_jobs_per_target);
    match &upstream.kind {
        UpstreamKind::Zdm(config) => Arc::new(zdm::Zdm::new(config.clone(), http, fields)),
        UpstreamKind::Scp(config) => Arc::new(scp::Scp::new(config.clone(), http, fields)),
        UpstreamKind::Azure(config) => Arc::new(azure::Azure::new(config.clone(), http, fields)),
    }
}
