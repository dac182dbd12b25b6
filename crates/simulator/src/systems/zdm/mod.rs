//! The simulated ZDM, under both `/api/v1` (RFC 3339 times) and `/api` (1.0.x, naive
//! Seoul times):
//! - the seed examples verbatim (`seed.rs`): system `server-01`, backup jobs
//!   `daily-backup`, `daily-backup-win`, `incomplete-job` (400), recovery job
//!   `daily-recovery`;
//! - a live scenario whose jobs cycle with wall-clock time (`scenario.rs`), plus an
//!   optional generated fleet `fleet-00001`.. for benchmarks;
//! - login (`POST {prefix}/auth/issue`, `POST {prefix}/token/issue`) issuing expiring
//!   tokens (`auth.rs`).
//!
//! In the admin API: fault endpoints `system`, `backup_job` and `recovery_job` (by name;
//! their answers can be pinned as fixtures too), and the `login` count in the stats.
//!
//! Server answers (backups and recoveries) are paged like ZDM's when the request sends
//! `page`/`limit` (`paging.rs`); the run histories (1.2.0 on) list the scenario's finished
//! runs with the documented filters, order and pages (`history.rs`), their requests counted
//! in the stats.
//!
//! The listings of 1.0.3 on (`/servers`, `/backups`, `/recoveries`, `/replications`,
//! `/zdms/repositories`, `/licenses`) in the vendor's shapes, paged as documented, with a
//! few servers without a backup job, one disconnected agent, a repository filling up and a
//! licence running out (`listing.rs`); in the admin API their fault endpoint and fixture
//! endpoint is `listing` with the listing's name as id (`servers`, `backups`, ...,
//! `repositories`, `licenses`), and `listing/<name>` counts their requests.
//!
//! `wire.rs` holds the wire format, `routes.rs` the endpoints and what the admin API
//! reaches (pinned fixtures, the login count), `options.rs` the flags ([`Options`]) and
//! `demo.rs` its part of `--demo`. Nothing here is declared in this file: it only names
//! the parts the rest of the simulator uses.

mod auth;
mod demo;
mod history;
mod listing;
mod options;
mod paging;
mod routes;
mod scenario;
mod seed;
#[cfg(test)]
mod tests;
mod wire;

pub use options::Options;
