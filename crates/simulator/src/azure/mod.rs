//! The simulated Azure Backup (seed 004), with its own types and raw JSON:
//! - the token endpoints, Azure AD client credentials and managed identity (IMDS)
//!   ([`auth`]);
//! - the backup jobs of Recovery Services vaults, listed with `$filter` ([`query`]) and
//!   `nextLink` paging, and one job's details ([`routes`]), behind a bearer token;
//! - the seed's vault `abdemovault` ([`seed`]) and live vaults whose VM backup jobs run
//!   each cycle ([`scenario`]).
//!
//! [`wire`] holds the JobResource and the error shapes of ARM, AD and IMDS.

mod auth;
mod query;
mod routes;
mod scenario;
mod seed;
#[cfg(test)]
mod tests;
mod wire;

pub use auth::AzureSim;
pub(crate) use routes::Azure;
pub(crate) use scenario::VAULTS;
