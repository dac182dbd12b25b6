//! `--demo`: the simulator the exporter starts on loopback, the credentials it accepts there,
//! and the exporter configuration that monitors it. The simulator knows what it serves and
//! which credentials it takes, so this is the one place that writes that configuration.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::azure::AzureSim;
use super::options::SimOptions;
use super::router::Simulator;
use super::targets::demo_targets;

const DEMO_TOKEN: &str = "demo-token";
const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "demo-password";
const DEMO_SCP_ACCESS: &str = "demo-scp-access";
const DEMO_SCP_SECRET: &str = "demo-scp-secret";
const DEMO_TENANT: &str = "demo-tenant";
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-client-secret";

/// An exporter configuration for a demo simulator: the YAML text, and the environment
/// variables its `*_env` keys name (the secrets stay out of the text, as in a real one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The configuration file's text.
    pub yaml: String,
    /// `(variable, value)` for every `*_env` key of `yaml`.
    pub env: Vec<(String, String)>,
}

/// The demo simulator's options: every system's credentials checked, a 2-minute job cycle.
fn options() -> SimOptions {
    SimOptions {
        token: Some(DEMO_TOKEN.to_string()),
        login: Some((DEMO_EMAIL.to_string(), DEMO_PASSWORD.to_string())),
        scp: Some((DEMO_SCP_ACCESS.to_string(), DEMO_SCP_SECRET.to_string())),
        azure: Some(AzureSim {
            tenant_id: DEMO_TENANT.to_string(),
            client_id: DEMO_CLIENT_ID.to_string(),
            client_secret: DEMO_CLIENT_SECRET.to_string(),
        }),
        cycle: Duration::from_secs(120),
        ..SimOptions::default()
    }
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

fn yaml_list(out: &mut String, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "    {key}:");
    for item in items {
        // JSON strings are valid YAML scalars, whatever the name holds.
        let _ = writeln!(out, "      - {}", serde_json::Value::String(item.clone()));
    }
}

/// The configuration that monitors the demo simulator at `sim`: ZDM on the current API with a
/// static token and on the 1.0.x API (`/api`, naive Seoul times) with login, SCP with signed
/// requests, Azure with a client secret.
pub fn exporter_config(sim: SocketAddr) -> ExporterConfig {
    let targets = demo_targets();
    let mut yaml = String::new();
    let _ = writeln!(yaml, "defaults:\n  interval: 5s\n  timeout: 3s\nupstreams:");
    let _ = writeln!(
        yaml,
        "  - name: demo-zdm\n    type: zdm\n    url: http://{sim}\n    api_prefix: /api/v1\n    token_env: DEMO_ZDM_TOKEN"
    );
    yaml_list(&mut yaml, "servers", &targets.servers);
    yaml_list(&mut yaml, "recovery_jobs", &targets.recovery_jobs);
    let _ = writeln!(
        yaml,
        "  - name: demo-zdm-legacy\n    type: zdm\n    url: http://{sim}\n    api_prefix: /api\n    timezone: Asia/Seoul\n    login: {{ path: /api/auth/issue, email_env: DEMO_ZDM_EMAIL, password_env: DEMO_ZDM_PASSWORD }}"
    );
    yaml_list(&mut yaml, "backup_jobs", &targets.backup_jobs);
    let _ = writeln!(
        yaml,
        "  - name: demo-scp\n    type: scp\n    url: http://{sim}\n    access_key_env: DEMO_SCP_ACCESS_KEY\n    secret_key_env: DEMO_SCP_SECRET_KEY\n    backups:"
    );
    for (id, name) in &targets.scp_backups {
        let _ = writeln!(
            yaml,
            "      - {{ id: {}, name: {} }}",
            serde_json::Value::String(id.clone()),
            serde_json::Value::String(name.clone())
        );
    }
    let mut subscriptions: Vec<&str> = targets
        .azure_vaults
        .iter()
        .map(|(s, _, _)| s.as_str())
        .collect();
    subscriptions.sort_unstable();
    subscriptions.dedup();
    for (i, subscription) in subscriptions.iter().enumerate() {
        let _ = writeln!(
            yaml,
            "  - name: demo-azure{}\n    type: azure\n    tenant_id: {DEMO_TENANT}\n    client_id: {DEMO_CLIENT_ID}\n    client_secret_env: DEMO_AZURE_CLIENT_SECRET\n    subscription_id: {subscription}\n    management_url: http://{sim}\n    authority_url: http://{sim}\n    vaults:",
            if i == 0 { String::new() } else { format!("-{}", i + 1) }
        );
        for (_, rg, vault) in targets
            .azure_vaults
            .iter()
            .filter(|(s, _, _)| s == subscription)
        {
            let _ = writeln!(
                yaml,
                "      - {{ resource_group: {}, name: {} }}",
                serde_json::Value::String(rg.clone()),
                serde_json::Value::String(vault.clone())
            );
        }
    }
    let env = [
        ("DEMO_ZDM_TOKEN", DEMO_TOKEN),
        ("DEMO_ZDM_EMAIL", DEMO_EMAIL),
        ("DEMO_ZDM_PASSWORD", DEMO_PASSWORD),
        ("DEMO_SCP_ACCESS_KEY", DEMO_SCP_ACCESS),
        ("DEMO_SCP_SECRET_KEY", DEMO_SCP_SECRET),
        ("DEMO_AZURE_CLIENT_SECRET", DEMO_CLIENT_SECRET),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    ExporterConfig { yaml, env }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::testing::{enc, run, start};

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
        assert!(config.env.iter().all(|(_, v)| !v.is_empty()));
    }

    #[test]
    fn the_config_names_every_target_the_scenarios_serve() {
        let yaml = config().yaml;
        let targets = demo_targets();
        let quoted = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let names = targets
            .servers
            .iter()
            .chain(&targets.backup_jobs)
            .chain(&targets.recovery_jobs)
            .chain(targets.scp_backups.iter().map(|(id, _)| id))
            .chain(targets.azure_vaults.iter().map(|(_, _, vault)| vault));
        for name in names {
            assert!(yaml.contains(&quoted(name)), "{name} missing from\n{yaml}");
        }
        for (subscription, _, _) in &targets.azure_vaults {
            assert!(yaml.contains(&format!("subscription_id: {subscription}\n")));
        }
    }

    #[test]
    fn the_demo_simulator_takes_the_token_the_config_gives() {
        let config = config();
        let token = config
            .env
            .iter()
            .find(|(k, _)| k == "DEMO_ZDM_TOKEN")
            .map(|(_, v)| v.clone())
            .expect("token variable");
        run(async move {
            let sim = start(options()).await;
            let server = &demo_targets().servers[0];
            let path = format!("/api/v1/backups/monitoring/system/{}", enc(server));
            assert_eq!(sim.get_with_token(&path, &token).await.status, 200);
            assert_eq!(sim.get_with_token(&path, "wrong").await.status, 401);
            sim.stop().await;
        });
    }
}
