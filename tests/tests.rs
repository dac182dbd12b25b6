//! The fast tier of integration tests, one binary (as ripgrep's `tests/tests.rs`): the real
//! `backup-exporter` and `backup-simulator` binaries and the library, and nothing outside
//! cargo's build. `cargo test` runs it; the end-to-end tier, which runs external tools, is
//! tests/e2e/ (`cargo test --features e2e --test e2e`).

// A test fails loudly by design: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod architecture;
mod azure;
mod azure_discovery;
mod cli;
mod config_errors;
mod daemon;
mod discovery;
mod fuzz_inputs;
mod gzip_answers;
mod hostile_upstream;
mod http_server;
mod listen;
mod ops_kit;
mod scp;
mod scp_discovery;
mod scrape_answers;
mod seed_samples;
mod shards;
mod storage;
mod upstream_client;
mod web_config;
mod zdm;
