//! backup-exporter: polls backup and disaster-recovery monitoring APIs and serves what they
//! say as Prometheus metrics.
#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod exposition;
pub mod http;
pub mod inventory;
pub mod landing;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod outcome;
pub mod parse;
pub mod poller;
pub mod server;
pub mod shard;
pub mod sources;
pub mod status;
pub mod storage;
pub mod store;
pub mod systems;
pub mod telemetry;
pub mod text;
pub mod web;
