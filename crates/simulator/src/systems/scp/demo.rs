//! SCP in `--demo`: the keys the demo simulator checks signatures with, and the upstream of
//! the exporter configuration that monitors its live backups (restores and backup runs)
//! with signed requests.

use std::net::SocketAddr;

use super::scenario::BACKUPS;
use crate::targets::{quoted, ExporterConfig};

pub(super) const ACCESS_KEY: &str = "demo-scp-access";
pub(super) const SECRET_KEY: &str = "demo-scp-secret";

/// SCP's upstream in the configuration that monitors the demo simulator at `sim`.
pub(super) fn write_config(sim: SocketAddr, config: &mut ExporterConfig) {
    config.line(&format!(
        "  - name: demo-scp\n    type: scp\n    url: http://{sim}\n    access_key_env: DEMO_SCP_ACCESS_KEY\n    secret_key_env: DEMO_SCP_SECRET_KEY\n    backups:"
    ));
    // Each live backup twice: its restores and its backup runs.
    for key in ["backups", "backup_histories"] {
        if key != "backups" {
            config.line(&format!("    {key}:"));
        }
        for backup in BACKUPS {
            config.line(&format!(
                "      - {{ id: {}, name: {} }}",
                quoted(backup.id),
                quoted(backup.name)
            ));
        }
    }
    config.env("DEMO_SCP_ACCESS_KEY", ACCESS_KEY);
    config.env("DEMO_SCP_SECRET_KEY", SECRET_KEY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_backup_the_scenario_serves() {
        let mut config = ExporterConfig {
            yaml: String::new(),
            env: Vec::new(),
        };
        write_config(SocketAddr::from(([127, 0, 0, 1], 10096)), &mut config);
        for backup in BACKUPS {
            assert_eq!(
                config.yaml.matches(&quoted(backup.id)).count(),
                2,
                "{}",
                config.yaml
            );
        }
        assert!(config.yaml.contains("\n    backup_histories:\n"), "{}", config.yaml);
    }
}
