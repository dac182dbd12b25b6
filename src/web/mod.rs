//! `--web.config.file`: the whole exporter-toolkit web configuration (TLS with client
//! certificates, cipher suites and curves; HTTP/2 and extra headers; rate limit; basic auth),
//! so the endpoints are protected exactly like the official exporters', and a file copied from
//! one of them works as is. The file and the files it names are re-read when they change.
//!
//! The file is exporter-toolkit's `web-config.yml`, key for key (`tls_server_config`,
//! `http_server_config`, `rate_limit`, `basic_auth_users`); an unknown key is refused, never
//! ignored. One file per concern, as exporter-toolkit's `web/`:
//!
//! - `config.rs`: the YAML keys, [`WebConfig`] (one loaded file and what the server asks of
//!   it) and [`WebConfigError`];
//! - `headers.rs`: the response headers `http_server_config.headers` may set;
//! - `tls.rs`: the rustls acceptor: versions, cipher suites, curves, PEM sources, client
//!   certificates and `client_allowed_sans`;
//! - `basic_auth.rs`: Basic credentials against bcrypt hashes: cost check, dummy hash for
//!   unknown users, bounded bcrypt slots, cache of checks that passed;
//! - `rate_limit.rs`: the token bucket in front of every request;
//! - `reload.rs`: [`LiveWebConfig`], the file re-read when it or a file it names changes.

mod basic_auth;
mod config;
mod headers;
mod rate_limit;
mod reload;
mod tls;

pub use basic_auth::Auth;
pub use config::{WebConfig, WebConfigError};
pub use reload::LiveWebConfig;
