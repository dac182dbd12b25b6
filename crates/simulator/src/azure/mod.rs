//! The simulated Azure Backup (seed 004), with its own types and raw JSON:
//! - the token endpoints, Azure AD client credentials and managed identity (IMDS)
//!   (`auth.rs`);
//! - the backup jobs of Recovery Services vaults, listed with `$filter` (`query.rs`) and
//!   `nextLink` paging, and one job's details (`routes.rs`), behind a bearer token;
//! - the seed's vault `abdemovault` (`seed.rs`) and live vaults whose VM backup jobs run
//!   each cycle (`scenario.rs`).
//!
//! `wire.rs` holds the JobResource and the error shapes of ARM, AD and IMDS, `routes.rs`
//! also what the admin API reaches (`/_sim/azure/{vault}/jobs`, the accepted client
//! assertions of the stats), `options.rs` the flag ([`Options`]) and `demo.rs` its part of
//! `--demo`.

mod auth;
mod demo;
mod options;
mod query;
mod routes;
mod scenario;
mod seed;
#[cfg(test)]
mod tests;
mod wire;

pub use auth::AzureSim;
pub use options::Options;
