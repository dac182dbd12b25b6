//! The identifiers the live scenarios serve, for `--demo`'s built-in config.

use super::{azure, scp, zdm};

/// Identifiers the live scenario serves, for `--demo`'s built-in config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DemoTargets {
    /// ZDM servers.
    pub servers: Vec<String>,
    /// ZDM standalone backup jobs.
    pub backup_jobs: Vec<String>,
    /// ZDM recovery jobs.
    pub recovery_jobs: Vec<String>,
    /// SCP `(backup_id, display name)` with live restore histories.
    pub scp_backups: Vec<(String, String)>,
    /// Azure `(subscription, resource_group, vault)` with live backup jobs.
    pub azure_vaults: Vec<(String, String, String)>,
}

/// The targets of the live scenarios, read from their tables.
pub(crate) fn demo_targets() -> DemoTargets {
    DemoTargets {
        servers: zdm::SERVERS.iter().map(|s| s.name.to_string()).collect(),
        backup_jobs: zdm::BACKUP_JOBS
            .iter()
            .map(|b| b.job.name.to_string())
            .collect(),
        recovery_jobs: zdm::RECOVERIES.iter().map(|r| r.name.to_string()).collect(),
        scp_backups: scp::BACKUPS
            .iter()
            .map(|b| (b.id.to_string(), b.name.to_string()))
            .collect(),
        azure_vaults: azure::VAULTS
            .iter()
            .map(|v| {
                (
                    v.subscription.to_string(),
                    v.resource_group.to_string(),
                    v.name.to_string(),
                )
            })
            .collect(),
    }
}
