//! backup-simulator: a fake ZDM, Samsung Cloud Platform (SCP) and Azure Backup server on one
//! listener, for backup-exporter's `--demo`, its tests and its benches.
//!
//! It speaks the APIs of the seed documents with its own types and raw JSON. It is a crate of
//! its own that does not depend on the exporter, so it cannot touch the exporter's client
//! code: a misreading of the docs on one side shows up as a failing test instead of passing
//! silently.
//!
//! One folder per system under [`systems`] (`zdm/`, `scp/`, `azure/`), one file per concern
//! (`wire.rs` the wire format, `seed.rs` the seed document's examples verbatim,
//! `scenario.rs` the live scenario, `auth.rs` its authentication, `routes.rs` its endpoints
//! and what the admin API reaches of it, `options.rs` its flags, `demo.rs` its part of
//! `--demo`, `tests.rs` its tests). A system's folder is all there is of it: the rest of
//! the simulator reaches it through two traits (`system.rs`: `Setup` for its options,
//! `System` for its running state) and one list, the registry (`systems/mod.rs`).
//!
//! Shared by the systems: `http.rs` (body type, JSON answers, percent coding; a leaf),
//! `faults.rs` (the fault knobs and request counts), `clock.rs` (the wall clock and the
//! stable hashes of the live scenarios), `targets.rs` (the exporter configuration `--demo`
//! writes). On top: `router.rs` (the [`Simulator`] and request dispatch), `admin.rs` (the
//! `/_sim/` API: faults, pinned answers, replaced lists, request counts), `server.rs` (the
//! listener), `options.rs` ([`SimOptions`]), `demo.rs` (`--demo`: its credentials and the
//! exporter configuration that monitors it) and `cli.rs` (the `backup-simulator` binary).
//! Modules only import downwards, never from a parent `mod.rs` or `lib.rs`, so there are no
//! import cycles.
#![forbid(unsafe_code)]

mod admin;
mod cli;
mod clock;
pub mod demo;
mod faults;
mod http;
mod options;
mod router;
mod server;
mod system;
pub mod systems;
mod targets;
#[cfg(test)]
mod testing;

pub use cli::main_cli;
pub use options::SimOptions;
pub use router::Simulator;
pub use systems::Systems;
