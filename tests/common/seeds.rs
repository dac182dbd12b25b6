//! The seed documents' sample answers as the simulator serves them, and one `--once` run of
//! the real binary over them. Used by tests/seed_samples.rs and tests/e2e/seed_samples.rs.

use std::process::Command;

use super::{exporter_bin, write_config, Sim, TOKEN};

/// Seeds 000 and 002 under `/api/v1` (RFC 3339 times, ZDM 0.2), seed 001 under the 1.0.x
/// `/api` prefix whose naive times are read in Asia/Seoul; their versions fixed (nothing
/// asked), so `backup_upstream_info` names them.
pub fn seed_config(sim: &Sim) -> String {
    format!(
        "upstreams:
  - name: zdm-v1
    type: zdm
    url: {url}
    api_version: '0.2'
    api_prefix: /api/v1
    token_env: SIM_TOKEN
    servers: [server-01]
    recovery_jobs: [daily-recovery]
  - name: zdm-legacy
    type: zdm
    url: {url}
    api_version: '1.0'
    api_prefix: /api
    timezone: Asia/Seoul
    token_env: SIM_TOKEN
    backup_jobs: [daily-backup, daily-backup-win]
  - name: scp
    type: scp
    url: {url}
    access_key_env: SCP_ACCESS_KEY
    secret_key_env: SCP_SECRET_KEY
    backups: [{{ id: 00cd2538fbf94d12b36aabbdd607e974, name: restore-test }}]
  - name: azure
    type: azure
    tenant_id: seed-tenant
    client_id: seed-client
    client_secret_env: AZURE_CLIENT_SECRET
    subscription_id: 00000000-0000-0000-0000-000000000000
    management_url: {url}
    authority_url: {url}
    lookback: 100000h
    vaults: [{{ resource_group: Default-RecoveryServices-ResourceGroup-centralindia, name: abdemovault }}]
",
        url = sim.url()
    )
}

/// The simulator with credentials for all three systems.
pub fn seed_sim() -> Sim {
    Sim::start_with(&[
        "--token",
        TOKEN,
        "--scp-keys",
        "seed-access:seed-secret",
        "--azure-client",
        "seed-tenant:seed-client:seed-client-secret",
    ])
}

/// `--once` over `yaml` with the seed credentials: (exit code, stdout, stderr).
pub fn run_once(yaml: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), yaml);
    let out = Command::new(exporter_bin())
        .arg("--once")
        .arg("--config")
        .arg(&config)
        .env("SIM_TOKEN", TOKEN)
        .env("SCP_ACCESS_KEY", "seed-access")
        .env("SCP_SECRET_KEY", "seed-secret")
        .env("AZURE_CLIENT_SECRET", "seed-client-secret")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
