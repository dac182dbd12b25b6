//! backup-simulator: a fake ZDM, Samsung Cloud Platform (SCP) and Azure Backup server on one
//! listener, for backup-exporter's `--demo`, its tests and its benches.
//!
//! It speaks the APIs of the seed documents with its own types and raw JSON. It is a crate of
//! its own that does not depend on the exporter, so it cannot touch the exporter's client
//! code: a misreading of the docs on one side shows up as a failing test instead of passing
//! silently.
//!
//! One folder per system, each with one file per concern (`wire.rs` the wire format,
//! `seed.rs` the seed document's examples verbatim, `scenario.rs` the live scenario,
//! `auth.rs` its authentication, `routes.rs` its endpoints, `tests.rs` its tests):
//! - `zdm/`: `/api/v1/...` and `/api/...` (1.0.x): system, backup job and recovery job
//!   monitoring, login issuing expiring tokens, an optional generated fleet;
//! - `scp/`: `GET /v1/backups/{backup_id}/restore-histories` with paging, sorting and
//!   filters (`query.rs`), signature v2 checked when [`SimOptions::scp`] is set;
//! - `azure/`: the AD token endpoint `POST /{tenant}/oauth2/v2.0/token`, managed identity
//!   `GET /metadata/identity/oauth2/token`, and
//!   `GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}/backupJobs[/{job}]`
//!   behind a bearer token, with `$filter` (`query.rs`) and `nextLink` paging.
//!
//! Shared by the three: `http.rs` (body type, JSON answers, percent coding; a leaf),
//! `faults.rs` (the fault knobs and request counts), `clock.rs` (the wall clock and the
//! stable hashes of the live scenarios). On top: `router.rs` (the [`Simulator`] and request
//! dispatch), `admin.rs` (the `/_sim/` API: faults, pinned answers, replaced SCP histories
//! and Azure jobs, request counts), `server.rs` (the listener), `options.rs`, `targets.rs`
//! (what `--demo` monitors), `demo.rs` (`--demo`: its credentials and the exporter
//! configuration that monitors it) and `cli.rs` (the `backup-simulator` binary). Modules only
//! import downwards, never from a parent `mod.rs` or `lib.rs`, so there are no import cycles.
#![forbid(unsafe_code)]

mod admin;
mod azure;
mod cli;
mod clock;
pub mod demo;
mod faults;
mod http;
mod options;
mod router;
mod scp;
mod server;
mod targets;
#[cfg(test)]
mod testing;
mod zdm;

pub use azure::AzureSim;
pub use cli::main_cli;
pub use options::SimOptions;
pub use router::Simulator;
