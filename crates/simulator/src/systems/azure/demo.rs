//! Azure in `--demo`: the application the demo simulator's token endpoint accepts, and the
//! upstreams of the exporter configuration that monitor its live vaults with a client
//! secret, one per subscription.

use std::net::SocketAddr;

use super::scenario::VAULTS;
use crate::targets::{quoted, ExporterConfig};

pub(super) const TENANT: &str = "demo-tenant";
pub(super) const CLIENT_ID: &str = "demo-client";
pub(super) const CLIENT_SECRET: &str = "demo-client-secret";

/// Azure's upstreams in the configuration that monitors the demo simulator at `sim`.
pub(super) fn write_config(sim: SocketAddr, config: &mut ExporterConfig) {
    let mut subscriptions: Vec<&str> = VAULTS.iter().map(|v| v.subscription).collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    for (i, subscription) in subscriptions.iter().enumerate() {
        config.line(&format!(
            "  - name: demo-azure{}\n    type: azure\n    tenant_id: {TENANT}\n    client_id: {CLIENT_ID}\n    client_secret_env: DEMO_AZURE_CLIENT_SECRET\n    subscription_id: {subscription}\n    management_url: http://{sim}\n    authority_url: http://{sim}\n    vaults:",
            if i == 0 { String::new() } else { format!("-{}", i + 1) }
        ));
        for vault in VAULTS.iter().filter(|v| v.subscription == *subscription) {
            config.line(&format!(
                "      - {{ resource_group: {}, name: {} }}",
                quoted(vault.resource_group),
                quoted(vault.name)
            ));
        }
    }
    config.env("DEMO_AZURE_CLIENT_SECRET", CLIENT_SECRET);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_vault_the_scenario_serves() {
        let mut config = ExporterConfig {
            yaml: String::new(),
            env: Vec::new(),
        };
        write_config(SocketAddr::from(([127, 0, 0, 1], 10096)), &mut config);
        for vault in VAULTS {
            assert!(config.yaml.contains(&quoted(vault.name)), "{}", config.yaml);
            let subscription = format!("subscription_id: {}\n", vault.subscription);
            assert!(config.yaml.contains(&subscription), "{}", config.yaml);
        }
    }
}
