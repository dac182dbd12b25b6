//! `--demo`: the bundled simulator on loopback, monitored by the configuration it writes for
//! itself (it knows what it serves and which credentials it accepts).

use std::net::SocketAddr;

use crate::app::ConfigSource;

/// Starts the simulator on 127.0.0.1 (an ephemeral port) for the life of the process.
pub async fn start_simulator() -> std::io::Result<SocketAddr> {
    backup_simulator::demo::start().await
}

/// The built-in configuration: the one the simulator at `sim` writes to monitor itself.
pub fn config(sim: SocketAddr) -> ConfigSource {
    let config = backup_simulator::demo::exporter_config(sim);
    ConfigSource::Inline {
        yaml: config.yaml,
        env: config.env.into_iter().collect(),
    }
}
