//! What every simulated system provides, and all the rest of the simulator knows of one:
//! - [`Setup`], implemented by the system's options (its command-line flags): its lines of
//!   `--help`, its part of `--demo` (credentials, and the upstreams of the exporter
//!   configuration that monitors it) and how it starts;
//! - [`System`], implemented by its running state: the request paths it claims and answers,
//!   its fault targets, its pinned fixtures and replaced lists (the admin API), its stats
//!   and its reset.
//!
//! The systems are listed once, in the registry (`systems/mod.rs`); the router, the admin API,
//! the CLI and `--demo` go through these two traits only.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Map, Value};

use super::faults::{Faults, Target};
use super::http::{Body, DropConnection};
use super::targets::ExporterConfig;

/// A system's answer to a request it claimed.
pub(crate) type Reply<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, DropConnection>> + Send + 'a>>;

/// What every system's state is built from besides its own options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shared {
    /// Lifetime of the tokens a system issues.
    pub token_lifetime: Duration,
    /// Length of one job cycle of the live scenarios, in milliseconds (at least 1).
    pub cycle_ms: i64,
}

/// A system's lines of `backup-simulator --help`.
#[derive(Debug)]
pub(crate) struct Help {
    /// Its name in the one-line summary: `SCP`.
    pub name: &'static str,
    /// Its name in the long description: `Samsung Cloud Platform`.
    pub long_name: &'static str,
    /// Its line of the long description: the routes it serves.
    pub routes: &'static str,
    /// Its admin routes, listed after the shared ones: `/_sim/scp/{backup_id}/entries`.
    pub admin: &'static [&'static str],
}

/// A system's options, before it runs: one flattened `clap::Args` group of the command
/// line each (`systems/mod.rs` gathers them).
pub(crate) trait Setup {
    /// Its lines of `--help`.
    fn help(&self) -> &'static Help;

    /// Its running state.
    fn start(&self, shared: &Shared) -> Box<dyn System>;

    /// Sets the credentials the `--demo` simulator checks.
    fn use_demo_credentials(&mut self);

    /// Appends its upstreams (and the variables their `*_env` keys name) to the exporter
    /// configuration that monitors the demo simulator at `sim`.
    fn write_demo_config(&self, sim: SocketAddr, config: &mut ExporterConfig);
}

/// The admin API's replaceable lists of a system: `PUT /_sim/{system}/{key}/{items}` with
/// a JSON array of objects replaces what `key` serves, `DELETE` restores the default.
/// The answers name the key `key_name` and count the items under `items`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Replaceable {
    /// The path segment after `/_sim/`: `scp`.
    pub system: &'static str,
    /// What the key is called in the answers: `backup_id`.
    pub key_name: &'static str,
    /// The last path segment, and the count's name in the answers: `entries`.
    pub items: &'static str,
}

/// A running system.
pub(crate) trait System: Send + Sync {
    /// Answers the request when `path` (its raw segments) is one of its routes, else hands
    /// the request back for the next system of the registry.
    // Not an error: the request itself, passed on.
    #[allow(clippy::result_large_err)]
    fn route<'a>(
        &'a self,
        faults: &'a Faults,
        req: Request<Incoming>,
        path: &'a [&'a str],
    ) -> Result<Reply<'a>, Request<Incoming>>;

    /// What its faults and request counts attach to (`/_sim/fault/{target}/{id}`, the stats
    /// keys), in the order the admin API lists them.
    fn targets(&self) -> &'static [Target];

    /// Its endpoints whose answer the admin API can pin (`/_sim/fixture/{endpoint}/{id}`).
    fn fixture_endpoints(&self) -> &'static [&'static str] {
        &[]
    }

    /// Serves `body` verbatim with 200 for `(endpoint, id)` from now on; `endpoint` is one
    /// of [`fixture_endpoints`](System::fixture_endpoints).
    fn pin(&self, _endpoint: &str, _id: String, _body: Bytes) {}

    /// Stops serving the body pinned for `(endpoint, id)`; whether there was one.
    fn unpin(&self, _endpoint: &str, _id: &str) -> bool {
        false
    }

    /// Its answer to a path no system claims, if it gives one (the first system of the
    /// registry that does answers; ZDM's 404 today, as before there were other systems).
    fn not_found(&self) -> Option<Response<Body>> {
        None
    }

    /// Its list the admin API replaces, if any.
    fn replaceable(&self) -> Option<Replaceable> {
        None
    }

    /// Replaces what `key` serves by `items` (JSON objects); their number, or why they
    /// were refused.
    fn replace(&self, _key: &str, _items: Vec<Value>) -> Result<usize, String> {
        Err("nothing to replace here".to_string())
    }

    /// Back to the default list of `key`; whether it had been replaced.
    fn restore(&self, _key: &str) -> bool {
        false
    }

    /// Adds its own counters to `GET /_sim/stats` (the request counts are the core's).
    fn stats(&self, _stats: &mut Map<String, Value>) {}

    /// `POST /_sim/reset`: drops what the admin API set and its own counters.
    fn reset(&self);
}

/// `a, b and c` (with `conjunction` "and"): names listed in a sentence.
pub(crate) fn listed(names: &[&str], conjunction: &str) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::listed;

    #[test]
    fn names_are_listed_as_in_a_sentence() {
        assert_eq!(listed(&[], "and"), "");
        assert_eq!(listed(&["a"], "and"), "a");
        assert_eq!(listed(&["a", "b"], "or"), "a or b");
        assert_eq!(listed(&["a", "b", "c"], "and"), "a, b and c");
    }
}
