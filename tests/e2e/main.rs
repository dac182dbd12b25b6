//! The end-to-end tier, one binary: tests that run tools from outside cargo's build (a real
//! Prometheus and Alertmanager, promtool and amtool, Chromium, curl, Python's
//! prometheus_client) and the one-minute soak. `scripts/test-all.sh` installs the tools and
//! runs it: `cargo test --features e2e --test e2e`. The fast tier is tests/tests.rs.

// A test fails loudly by design: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The harness the fast tier uses too.
#[path = "../common/mod.rs"]
mod common;

mod prom;

mod alerts_and_dashboards;
mod gzip_answers;
mod landing_browser;
mod open_metrics;
mod restart_page;
mod seed_samples;
mod shards_prometheus;
mod soak;
