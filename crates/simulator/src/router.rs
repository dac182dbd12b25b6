//! The simulator's state (the fault knobs and one part per system) and request dispatch:
//! each path goes to the admin API or to one system's routes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::admin;
use super::azure::Azure;
use super::faults::Faults;
use super::http::{Body, DropConnection};
use super::options::SimOptions;
use super::scp::Scp;
use super::zdm::{self, ApiVersion, Zdm};

/// A fake upstream server for ZDM, SCP and Azure Backup; see the [`crate`]
/// documentation. [`serve`](Simulator::serve) runs it on a listener.
pub struct Simulator {
    faults: Faults,
    zdm: Zdm,
    scp: Scp,
    azure: Azure,
}

impl Simulator {
    pub fn new(opts: SimOptions) -> Arc<Simulator> {
        let cycle_ms = opts.cycle_ms();
        Arc::new(Simulator {
            faults: Faults::default(),
            zdm: Zdm::new(
                opts.token,
                opts.login,
                opts.token_lifetime,
                cycle_ms,
                opts.fleet,
            ),
            scp: Scp::new(opts.scp, cycle_ms),
            azure: Azure::new(opts.azure, opts.token_lifetime, cycle_ms),
        })
    }
}

pub(crate) async fn handle(
    sim: Arc<Simulator>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let Simulator {
        faults,
        zdm,
        scp,
        azure,
    } = &*sim;
    let response = match segments.as_slice() {
        ["_sim", rest @ ..] => {
            let parts = admin::Parts {
                faults,
                zdm,
                scp,
                azure,
            };
            admin::handle(parts, req, rest).await
        }
        ["api", "v1", rest @ ..] => zdm.api(faults, req, ApiVersion::V1, rest).await?,
        ["api", rest @ ..] => zdm.api(faults, req, ApiVersion::Legacy, rest).await?,
        ["v1", "backups", id, "restore-histories"] => {
            scp.restore_histories(faults, req, id).await?
        }
        ["metadata", "identity", "oauth2", "token"] => azure.imds(faults, req).await?,
        [tenant, "oauth2", "v2.0", "token"] => azure.token(faults, req, tenant).await?,
        [first, rest @ ..] if first.eq_ignore_ascii_case("subscriptions") => {
            azure.management(faults, req, rest).await?
        }
        _ => zdm::error(ApiVersion::V1, StatusCode::NOT_FOUND, "Not Found"),
    };
    tracing::debug!(status = %response.status(), path, "simulator: answered");
    Ok(response)
}
