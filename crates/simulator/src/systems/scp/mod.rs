//! The simulated Samsung Cloud Platform backup API (seed 003), written as raw JSON.
//!
//! `GET /v1/backups/{backup_id}/restore-histories?page=&size=&sort=&restore_state=&start_time=&end_time=`
//! answers `{"contents": [...], "count": <total matching>}`. The simulator sorts, filters and
//! pages every history itself (`query.rs`): the seed's one entry (`seed.rs`), a history
//! replaced by the admin API (`/_sim/scp/{backup_id}/entries`), or a live history in which
//! each cycle adds one restore (`scenario.rs`).
//!
//! Times are written as the seed does (`wire.rs`): `restore_*` and `backup_start_time` naive
//! (`YYYY-MM-DDTHH:MM:SS`, in UTC here), `created_at`/`modified_at` in UTC with `Z`. The
//! `start_time`/`end_time` filters apply to `restore_start_time`.
//!
//! `GET /v1/backups` lists the backups (each with the `server_name` it backs up) and
//! `GET /v1/backups/backup-targets?server_category=...` the account's servers, some with no
//! backup (`listing.rs`), paged with `page`/`size` and `{"contents", "count"}` as above.
//!
//! In the admin API: fault endpoints `backup` (by backup id, every page of its restore
//! history), `backup_histories` (its backup runs), `backup_list` (the backup list's first
//! page), `backup_list_next` (its later pages) and `backup_targets` (every page), the last
//! three with id `default`; and the replaceable histories `/_sim/scp/{backup_id}/entries`.
//!
//! With [`Options::keys`] set, every request must carry a valid signature v2 (`auth.rs`).
//! `routes.rs` holds the route and what the admin API reaches, `options.rs` the flag and
//! `demo.rs` its part of `--demo`.

mod auth;
mod demo;
mod listing;
mod options;
mod query;
mod routes;
mod scenario;
mod seed;
#[cfg(test)]
mod tests;
mod wire;

pub use options::Options;
#[cfg(test)]
pub(crate) use seed::RESTORE_HISTORIES;
