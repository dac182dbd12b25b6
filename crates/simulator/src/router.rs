//! The simulator's state (the fault knobs and each system's running state) and request
//! dispatch: each path goes to the admin API or to the first system, in the registry's
//! order, whose routes claim it.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::admin;
use super::faults::Faults;
use super::http::{full, Body, DropConnection};
use super::options::SimOptions;
use super::system::{Reply, System};

/// A fake upstream server of every system of the registry; see the [`crate`]
/// documentation. [`serve`](Simulator::serve) runs it on a listener.
pub struct Simulator {
    faults: Faults,
    /// Every system of the registry, in its order.
    systems: Vec<Box<dyn System>>,
}

impl Simulator {
    /// A simulator of every system, each with its options from `opts`.
    pub fn new(opts: SimOptions) -> Arc<Simulator> {
        let shared = opts.shared();
        Arc::new(Simulator {
            faults: Faults::default(),
            systems: opts
                .systems
                .all()
                .into_iter()
                .map(|system| system.start(&shared))
                .collect(),
        })
    }
}

pub(crate) async fn handle(
    sim: Arc<Simulator>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let Simulator { faults, systems } = &*sim;
    let response = match segments.as_slice() {
        ["_sim", rest @ ..] => admin::handle(faults, systems, req, rest).await,
        path => match claim(systems, faults, req, path) {
            Some(reply) => reply.await?,
            // The first system's own 404 that has one; a bare 404 if none has.
            None => systems
                .iter()
                .find_map(|system| system.not_found())
                .unwrap_or_else(|| full(StatusCode::NOT_FOUND, "Not Found")),
        },
    };
    tracing::debug!(status = %response.status(), path, "simulator: answered");
    Ok(response)
}

/// The answer of the first system whose routes claim `path`.
fn claim<'a>(
    systems: &'a [Box<dyn System>],
    faults: &'a Faults,
    mut req: Request<Incoming>,
    path: &'a [&'a str],
) -> Option<Reply<'a>> {
    for system in systems {
        req = match system.route(faults, req, path) {
            Ok(reply) => return Some(reply),
            Err(unclaimed) => unclaimed,
        };
    }
    None
}
