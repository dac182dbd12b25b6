//! ZDM in `--demo`: the credentials the demo simulator checks, and the two upstreams of the
//! exporter configuration that monitor it. The demo simulator speaks the newest release
//! (2.0.1: `/api`, login at `/api/token/issue`, naive Seoul times, the vendor's status
//! words); both upstreams leave `api_version` at `auto`, one with a static token, one with
//! login.

use std::net::SocketAddr;

use super::scenario::{BACKUP_JOBS, RECOVERIES, REPLICATIONS, SERVERS};
use crate::targets::ExporterConfig;

pub(super) const TOKEN: &str = "demo-token";
pub(super) const EMAIL: &str = "demo@example.com";
pub(super) const PASSWORD: &str = "demo-password";

/// What the demo monitors: the targets of the live scenario, read from its tables.
pub(super) struct Targets {
    pub servers: Vec<String>,
    /// Standalone backup jobs.
    pub backup_jobs: Vec<String>,
    pub recovery_jobs: Vec<String>,
    /// The recoveries' target servers.
    pub recovery_servers: Vec<String>,
    pub replication_jobs: Vec<String>,
}

pub(super) fn targets() -> Targets {
    Targets {
        servers: SERVERS.iter().map(|s| s.name.to_string()).collect(),
        backup_jobs: BACKUP_JOBS.iter().map(|b| b.job.name.to_string()).collect(),
        recovery_jobs: RECOVERIES.iter().map(|r| r.name.to_string()).collect(),
        recovery_servers: RECOVERIES.iter().map(|r| r.target.to_string()).collect(),
        replication_jobs: REPLICATIONS.iter().map(|r| r.job.name.to_string()).collect(),
    }
}

/// ZDM's upstreams in the configuration that monitors the demo simulator at `sim`.
pub(super) fn write_config(sim: SocketAddr, config: &mut ExporterConfig) {
    let Targets {
        servers,
        backup_jobs,
        recovery_jobs,
        recovery_servers,
        replication_jobs,
    } = targets();
    config.line(&format!(
        "  - name: demo-zdm\n    type: zdm\n    url: http://{sim}\n    timezone: Asia/Seoul\n    token_env: DEMO_ZDM_TOKEN"
    ));
    config.list("servers", &servers);
    config.list("recovery_jobs", &recovery_jobs);
    config.list("recovery_servers", &recovery_servers);
    config.list("replication_jobs", &replication_jobs);
    config.line(&format!(
        "  - name: demo-zdm-login\n    type: zdm\n    url: http://{sim}\n    timezone: Asia/Seoul\n    login: {{ email_env: DEMO_ZDM_EMAIL, password_env: DEMO_ZDM_PASSWORD }}"
    ));
    config.list("backup_jobs", &backup_jobs);
    config.env("DEMO_ZDM_TOKEN", TOKEN);
    config.env("DEMO_ZDM_EMAIL", EMAIL);
    config.env("DEMO_ZDM_PASSWORD", PASSWORD);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::SimOptions;
    use crate::system::Setup as _;
    use crate::targets::quoted;
    use crate::testing::{enc, run, start};
    use crate::systems::zdm::Options;

    fn config() -> ExporterConfig {
        let mut config = ExporterConfig {
            yaml: String::new(),
            env: Vec::new(),
        };
        write_config(SocketAddr::from(([127, 0, 0, 1], 10096)), &mut config);
        config
    }

    #[test]
    fn the_config_names_every_target_the_scenario_serves() {
        let yaml = config().yaml;
        let targets = targets();
        let names = targets.servers.iter().chain(&targets.backup_jobs);
        let names = names.chain(&targets.recovery_servers).chain(&targets.replication_jobs);
        for name in names.chain(&targets.recovery_jobs) {
            assert!(yaml.contains(&quoted(name)), "{name} missing from\n{yaml}");
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
            let mut options = SimOptions::default();
            options.systems.zdm.use_demo_credentials();
            assert_ne!(options.systems.zdm, Options::default());
            let sim = start(options).await;
            let path = format!("/api/backups/monitoring/system/{}", enc(SERVERS[0].name));
            assert_eq!(sim.get_with_token(&path, &token).await.status, 200);
            assert_eq!(sim.get_with_token(&path, "wrong").await.status, 401);
            // The newest release only: no 0.2 prefix, no 1.x login path.
            let old = format!("/api/v1/backups/monitoring/system/{}", enc(SERVERS[0].name));
            assert_eq!(sim.get_with_token(&old, &token).await.status, 404);
            assert_eq!(sim.send("POST", "/api/auth/issue", &[], b"{}").await.status, 404);
            assert_eq!(sim.send("POST", "/api/token/issue", &[], b"{}").await.status, 400);
            sim.stop().await;
        });
    }
}
