//! `--demo`: the bundled simulator on loopback and a built-in configuration that monitors it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::app::ConfigSource;
use crate::simulator::{demo_targets, AzureSim, SimOptions, Simulator};

const DEMO_TOKEN: &str = "demo-token";
const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "demo-password";
const DEMO_SCP_ACCESS: &str = "demo-scp-access";
const DEMO_SCP_SECRET: &str = "demo-scp-secret";
const DEMO_TENANT: &str = "demo-tenant";
const DEMO_CLIENT_ID: &str = "demo-client";
const DEMO_CLIENT_SECRET: &str = "demo-client-secret";

/// Starts the simulator on 127.0.0.1 (an ephemeral port) for the life of the process.
pub async fn start_simulator() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let sim = Simulator::new(SimOptions {
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
    });
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

/// The built-in configuration: ZDM on the current API with a static token and on the 1.0.x
/// API (`/api`, naive Seoul times) with login, SCP with signed requests, Azure with a client
/// secret.
pub fn config(sim: SocketAddr) -> ConfigSource {
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
    let env = HashMap::from([
        ("DEMO_ZDM_TOKEN".to_string(), DEMO_TOKEN.to_string()),
        ("DEMO_ZDM_EMAIL".to_string(), DEMO_EMAIL.to_string()),
        ("DEMO_ZDM_PASSWORD".to_string(), DEMO_PASSWORD.to_string()),
        (
            "DEMO_SCP_ACCESS_KEY".to_string(),
            DEMO_SCP_ACCESS.to_string(),
        ),
        (
            "DEMO_SCP_SECRET_KEY".to_string(),
            DEMO_SCP_SECRET.to_string(),
        ),
        (
            "DEMO_AZURE_CLIENT_SECRET".to_string(),
            DEMO_CLIENT_SECRET.to_string(),
        ),
    ]);
    ConfigSource::Inline { yaml, env }
}
