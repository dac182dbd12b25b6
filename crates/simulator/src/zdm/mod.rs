//! The simulated ZDM, under both `/api/v1` (RFC 3339 times) and `/api` (1.0.x, naive
//! Seoul times):
//! - the seed examples verbatim ([`seed`]): system `server-01`, backup jobs `daily-backup`,
//!   `daily-backup-win`, `incomplete-job` (400), recovery job `daily-recovery`;
//! - a live scenario whose jobs cycle with wall-clock time ([`scenario`]), plus an optional
//!   generated fleet `fleet-00001`.. for benchmarks;
//! - login (`POST {prefix}/auth/issue`, `POST {prefix}/token/issue`) issuing expiring
//!   tokens ([`auth`]).
//!
//! [`wire`] holds the wire format, [`routes`] the endpoints. Nothing here is declared in
//! this file: it only names the parts the rest of the simulator uses.

mod auth;
mod routes;
mod scenario;
mod seed;
#[cfg(test)]
mod tests;
mod wire;

pub(crate) use routes::Zdm;
pub(crate) use scenario::{BACKUP_JOBS, RECOVERIES, SERVERS};
pub(crate) use wire::{error, ApiVersion, Endpoint};
