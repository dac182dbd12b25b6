//! The simulated Azure Backup (seed 004), with its own types and raw JSON:
//! - the token endpoints, Azure AD client credentials and managed identity (IMDS)
//!   (`auth.rs`);
//! - the backup jobs of Recovery Services vaults, listed with `$filter` (`query.rs`) and
//!   `nextLink` paging, and one job's details (`routes.rs`), behind a bearer token;
//! - the seed's vault `abdemovault` (`seed.rs`) and live vaults whose VM backup jobs run
//!   each cycle (`scenario.rs`);
//! - the listings discovery reads (`items.rs`, `routes.rs`): a subscription's vaults (or a
//!   resource group's), a vault's protected items (last backup status and time, health,
//!   from its jobs) and protectable items (VMs nothing protects);
//! - with `--azure-fleet`, generated vaults in resource group `rg-fleet` that copy the
//!   first live vault (`fleet.rs`).
//!
//! In the admin API: fault endpoints `vault` (the first page of a vault's job list, and
//! its job details), `vault_next` (its `nextLink` pages only), `job` (details by job name),
//! `vault_list`/`vault_list_next` (a subscription's vault list, by subscription id),
//! `protected_items`/`protected_items_next` and `protectable_items`/`protectable_items_next`
//! (by vault name), `token` (by AD tenant) and `imds` (id `default`); the replaceable jobs
//! `/_sim/azure/{vault}/jobs` (an unknown vault name answers under any subscription and
//! resource group); `azure_assertions` in the stats (the distinct workload-identity client
//! assertions accepted, once there is one).
//!
//! `wire.rs` holds the JobResource and the error shapes of ARM, AD and IMDS, `routes.rs`
//! also what the admin API reaches, `options.rs` the flag ([`Options`]) and `demo.rs` its part of
//! `--demo`.

mod auth;
mod demo;
mod fleet;
mod items;
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
