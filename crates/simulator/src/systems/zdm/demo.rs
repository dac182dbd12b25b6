//! ZDM in `--demo`: the credentials the demo simulator checks, and the two upstreams of the
//! exporter configuration that monitor it. The demo simulator speaks the newest release
//! (2.0.1: `/api`, login at `/api/token/issue`, naive Seoul times, the vendor's status
//! words); both upstreams leave `api_version` at `auto`, one with a static token, one with
//! login. The token upstream discovers its targets (`discover: true`: every server with a
//! backup job, every recovery and replication job, and the coverage, agents, repositories
//! and licences) and lists only the recovery server, which discovery does not list; the
//! login upstream lists the standalone backup jobs.

use std::net::SocketAddr;

use super::scenario::{BACKUP_JOBS, RECOVERIES, REPLICATIONS, SERVERS};
use crate::targets::ExporterConfig;

pub(super) const TOKEN: &str = "demo-token";
pub(super) const EMAIL: &str = "demo@example.com";
pub(super) const PASSWORD: &str = "demo-password";

/// What the demo monitors: the targets of the live scenario, read from its tables.
pub(super) struct Targets {
    /// Discovered by the demo's token upstream; the tests check the simulator serves them.
    #[cfg_attr(not(test), allow(dead_code, reason = "discovered, read by the tests"))]
    pub servers: Vec<String>,
    /// Standalone backup jobs.
    pub backup_jobs: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code, reason = "discovered, read by the tests"))]
    pub recovery_jobs: Vec<String>,
    /// The recoveries' target servers.
    pub recovery_servers: Vec<String>,
    #[cfg_attr(not(test), allow(dead_code, reason = "discovered, read by the tests"))]
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
        backup_jobs,
        recovery_servers,
        ..
    } = targets();
    config.line(&format!(
        "  - name: demo-zdm\n    type: zdm\n    url: http://{sim}\n    timezone: Asia/Seoul\n    token_env: DEMO_ZDM_TOKEN\n    discover: true"
    ));
    config.list("recovery_servers", &recovery_servers);
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

    /// Discovery finds the servers, recovery jobs and replication jobs; the config names
    /// the rest.
    #[test]
    fn the_config_names_every_target_discovery_does_not_find() {
        let yaml = config().yaml;
        assert!(yaml.contains("    discover: true\n"), "{yaml}");
        let targets = targets();
        for name in targets.backup_jobs.iter().chain(&targets.recovery_servers) {
            assert!(yaml.contains(&quoted(name)), "{name} missing from\n{yaml}");
        }
        assert!(!targets.servers.is_empty() && !targets.recovery_jobs.is_empty());
        assert!(!targets.replication_jobs.is_empty());
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
