//! The source machinery every upstream system shares, naming none of them: [`source`] (the
//! `Source` trait, `FieldParser`, the token cache, request helpers) and [`build`], which
//! makes an upstream's HTTP client and field parser and asks its system's config for its
//! `Source`. The systems themselves live in `src/systems/`, one folder each.

use std::sync::Arc;

use crate::config::upstream::Upstream;
use crate::http::{self, Limits, UpstreamHttp};
use crate::telemetry::Telemetry;

#[cfg(test)]
pub(crate) mod fuzzing;
pub mod source;

pub use source::*;

/// Builds the source of one configured upstream. `client` is the shared client; an
/// upstream with `tls_config` or `proxy_url` gets one of its own.
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
    upstream.kind.source(http, fields)
}
