//! `--demo`: the simulator the exporter starts on loopback, the credentials it accepts there,
//! and the exporter configuration that monitors it. The simulator knows what it serves and
//! which credentials it takes, so this is the one place that writes that configuration:
//! each system its own credentials and upstreams (`Setup`), in the registry's order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::options::SimOptions;
use super::router::Simulator;
pub use super::targets::ExporterConfig;

/// The demo simulator's options: every system's credentials checked, a 2-minute job cycle.
fn options() -> SimOptions {
    let mut options = SimOptions {
        cycle: Duration::from_secs(120),
        ..SimOptions::default()
    };
    for system in options.systems.all_mut() {
        system.use_demo_credentials();
    }
    options
}

/// Starts the demo simulator on 127.0.0.1 (an ephemeral port) for the life of the process.
/// Needs a Tokio runtime.
pub async fn start() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let sim = Simulator::new(options());
    tokio::spawn(async move {
        if let Err(e) = Arc::clone(&sim)
            .serve(listener, std::future::pending())
            .await
        {
            tracing::error!(error = %e, "demo simulator stopped");
        }
    });
    Ok(addr)
}

/// The configuration that monitors the demo simulator at `sim`: every system's upstreams
/// (each system's `demo.rs`), with the credentials the demo simulator checks.
pub fn exporter_config(sim: SocketAddr) -> ExporterConfig {
    let mut config = ExporterConfig {
        yaml: "defaults:\n  interval: 5s\n  timeout: 3s\nupstreams:\n".to_string(),
        env: Vec::new(),
    };
    for system in options().systems.all() {
        system.write_demo_config(sim, &mut config);
    }
    config
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn config() -> ExporterConfig {
        exporter_config(SocketAddr::from(([127, 0, 0, 1], 10096)))
    }

    #[test]
    fn every_variable_the_config_names_is_given_and_no_other() {
        let config = config();
        let named: BTreeSet<&str> = config
            .yaml
            .split("_env: ")
            .skip(1)
            .filter_map(|rest| rest.split([' ', ',', '\n']).next())
            .collect();
        let given: BTreeSet<&str> = config.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(named, given);
        assert_eq!(given.len(), config.env.len(), "a variable given twice");
        assert!(config.env.iter().all(|(_, v)| !v.is_empty()));
    }

    #[test]
    fn every_system_writes_an_upstream() {
        let yaml = config().yaml;
        let upstreams = yaml.matches("\n  - name: ").count();
        assert!(upstreams >= options().systems.all().len(), "{yaml}");
    }
}
