//! What a Recovery Services vault lists besides its jobs, with the shapes of the 2025-08-01
//! specification (`Azure/azure-rest-api-specs`, `tests/data/vendor/azure/`):
//! - the vault itself as the vault list shows it (`Vaults_ListBySubscriptionId`,
//!   `Vaults_ListByResourceGroup`);
//! - its protected items (`BackupProtectedItems_List`): an IaaS VM as
//!   `AzureIaaSComputeVMProtectedItem` (classic: `...ClassicComputeVM...`), a SQL Server
//!   database as `AzureVmWorkloadSQLDatabaseProtectedItem`, an Azure Files share as
//!   `AzureFileshareProtectedItem`, each with the fields its model defines;
//! - its protectable items (`BackupProtectableItems_List`): VMs nothing protects, as
//!   `AzureIaaSComputeVMProtectableItem` with `protectionState: NotProtected`.
//!
//! A protected item's last backup is the newest finished backup job the vault lists for it
//! (so items and jobs always agree); a VM whose protection was stopped has no jobs and its
//! last backup [`STOPPED_DAYS`] days ago.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::scenario::{VaultDef, Workload, STOPPED_DAYS};
use super::wire::JobRecord;
use crate::clock::{fnv, mix};

/// Days before today of the last recovery point of an item none of whose listed backups
/// succeeded (every backup failing for a while): past the default `lookback` too.
pub(crate) const NO_SUCCESS_DAYS: i64 = 20;

const DAY_MS: i64 = 86_400_000;

/// A protected item of a vault: what it is and how Azure rates it.
#[derive(Clone, Copy)]
pub(crate) struct Protected<'a> {
    pub name: &'a str,
    pub workload: Workload,
    pub classic: bool,
    /// `healthStatus` while the last backup did not fail; `None` is `Passed`.
    pub health: Option<&'a str>,
    /// Protection stopped: no jobs, last backup [`STOPPED_DAYS`] days ago.
    pub stopped: bool,
}

/// Where a vault lives.
#[derive(Clone, Copy)]
pub(crate) struct Place<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    pub vault: &'a str,
}

impl Place<'_> {
    fn vault_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.RecoveryServices/vaults/{}",
            self.subscription, self.resource_group, self.vault
        )
    }
}

/// The protected items of a live vault: its VMs, databases and shares, then the VMs whose
/// protection was stopped.
pub(crate) fn live_protected(vault: &VaultDef) -> Vec<Protected<'static>> {
    let mut items: Vec<Protected<'static>> = vault
        .vms
        .iter()
        .map(|vm| Protected {
            name: vm.name,
            workload: vm.workload,
            classic: vm.classic,
            health: vm.health,
            stopped: false,
        })
        .collect();
    items.extend(vault.stopped.iter().map(|name| Protected {
        name,
        workload: Workload::Vm,
        classic: false,
        health: None,
        stopped: true,
    }));
    items
}

/// A vault as the vault list shows it, with the fields of the specification's example.
pub(crate) fn vault(place: Place<'_>, location: &str) -> Value {
    let created = 1_709_543_702_117 + (mix(fnv(place.vault)) % 86_400_000) as i64;
    let etag = DateTime::<Utc>::from_timestamp_millis(created)
        .map(|t| t.format("%Y-%m-%dT%H%%3A%M%%3A%S%.3fZ").to_string())
        .unwrap_or_default();
    json!({
        "name": place.vault,
        "type": "Microsoft.RecoveryServices/vaults",
        "etag": format!("W/\"datetime'{etag}'\""),
        "id": place.vault_id(),
        "location": location,
        "properties": { "provisioningState": "Succeeded" },
        "sku": { "name": "Standard" },
        "tags": { "owner": "backup-team" },
    })
}

/// `2018-01-22T12:25:32.048723Z`, as the example writes item times.
fn item_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Two in the morning, `days` days before today (UTC).
fn days_ago(now_ms: i64, days: i64) -> Option<DateTime<Utc>> {
    let ms = (now_ms.div_euclid(DAY_MS) - days) * DAY_MS + 2 * 3_600_000;
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// A job's `startTime` to the tick (its `start` keeps milliseconds only).
fn start_time(job: &JobRecord) -> Option<DateTime<Utc>> {
    let value: Value = serde_json::from_str(&job.list).ok()?;
    value["properties"]["startTime"]
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .or(job.start)
}

/// The newest finished backup job of `entity` and the newest successful one, from a job
/// list sorted newest first.
fn last_backups<'j>(
    jobs: &'j [JobRecord],
    entity: &str,
) -> (Option<&'j JobRecord>, Option<&'j JobRecord>) {
    let mut backups = jobs.iter().filter(|j| {
        j.entity == entity
            && j.operation.starts_with("Backup")
            && !matches!(j.status.as_str(), "InProgress" | "Cancelling")
            && j.start.is_some()
    });
    let last = backups.next();
    let success = last
        .into_iter()
        .chain(backups)
        .find(|j| j.status.starts_with("Completed"));
    (last, success)
}

/// `MSSQLSERVER/salesdb [sql-01.contoso.com]` (a job's `entityFriendlyName`) as
/// (instance, database, server).
fn sql_parts(name: &str) -> (&str, &str, &str) {
    let (path, server) = match name.split_once(" [") {
        Some((path, rest)) => (path, rest.trim_end_matches(']')),
        None => (name, ""),
    };
    match path.split_once('/') {
        Some((instance, db)) => (instance, db, server),
        None => ("MSSQLSERVER", path, server),
    }
}

/// One protected item of the vault at `place`, its last backup read from `jobs` (the
/// vault's job list, newest first).
pub(crate) fn protected(
    place: Place<'_>,
    item: &Protected<'_>,
    jobs: &[JobRecord],
    now_ms: i64,
) -> Value {
    let (last, success) = if item.stopped {
        (None, None)
    } else {
        last_backups(jobs, item.name)
    };
    let (last_time, last_status, recovery_point) = if item.stopped {
        let t = days_ago(now_ms, STOPPED_DAYS);
        (t, Some("Completed"), t)
    } else {
        let recovery = match success {
            Some(job) => start_time(job),
            None => days_ago(now_ms, NO_SUCCESS_DAYS),
        };
        (
            last.and_then(start_time),
            last.map(|j| j.status.as_str()),
            recovery,
        )
    };
    let failed = last_status == Some("Failed");
    let rg = place.resource_group;
    let policy_id = format!("{}/backupPolicies/DefaultPolicy", place.vault_id());
    let data_id = (mix(fnv(place.vault) ^ fnv(item.name).rotate_left(7)) % 1_000_000_000_000_000_000)
        .to_string();
    let (container, item_name, mut properties) = match item.workload {
        Workload::Vm => {
            let (prefix, provider, item_type) = if item.classic {
                (
                    "iaasvmcontainer",
                    "Microsoft.ClassicCompute",
                    "Microsoft.ClassicCompute/virtualMachines",
                )
            } else {
                (
                    "iaasvmcontainerv2",
                    "Microsoft.Compute",
                    "Microsoft.Compute/virtualMachines",
                )
            };
            let container = format!("{prefix};{rg};{}", item.name);
            let vm_id = format!(
                "/subscriptions/{}/resourceGroups/{rg}/providers/{provider}/virtualMachines/{}",
                place.subscription, item.name
            );
            let health = if failed {
                "ActionRequired"
            } else {
                item.health.unwrap_or("Passed")
            };
            let properties = json!({
                "backupManagementType": "AzureIaasVM",
                "containerName": container,
                "friendlyName": item.name,
                "healthStatus": health,
                "policyType": "V2",
                "protectedItemDataId": data_id,
                "protectedItemType": item_type,
                "protectionState": if item.stopped { "ProtectionStopped" } else { "Protected" },
                "protectionStatus": if health == "Passed" { "Healthy" } else { "Unhealthy" },
                "sourceResourceId": vm_id,
                "virtualMachineId": vm_id,
                "workloadType": "VM",
            });
            (
                format!("IaasVMContainer;{container}"),
                format!("VM;{container}"),
                properties,
            )
        }
        Workload::SqlDatabase => {
            let (instance, db, server) = sql_parts(item.name);
            let host = server.split('.').next().unwrap_or(server);
            let container = format!("VMAppContainer;compute;{rg};{host}");
            let status = if failed { "Unhealthy" } else { "Healthy" };
            let properties = json!({
                "backupManagementType": "AzureWorkload",
                "containerName": container,
                "friendlyName": db,
                "parentName": instance,
                "parentType": "AzureVmWorkloadSQLInstance",
                "protectedItemDataSourceId": data_id,
                "protectedItemHealthStatus": status,
                "protectedItemType": "AzureVmWorkloadSQLDatabase",
                "protectionState": "Protected",
                "protectionStatus": status,
                "serverName": server,
                "sourceResourceId": format!(
                    "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{host}",
                    place.subscription
                ),
                "workloadType": "SQLDataBase",
            });
            (
                container,
                format!(
                    "SQLDataBase;{};{}",
                    instance.to_lowercase(),
                    db.to_lowercase()
                ),
                properties,
            )
        }
        Workload::FileShare => {
            let account = "financestg01";
            let container = format!("StorageContainer;Storage;{rg};{account}");
            let properties = json!({
                "backupManagementType": "AzureStorage",
                "containerName": container,
                "friendlyName": item.name,
                "protectedItemType": "AzureFileShareProtectedItem",
                "protectionState": "Protected",
                "protectionStatus": if failed { "Unhealthy" } else { "Healthy" },
                "sourceResourceId": format!(
                    "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account}",
                    place.subscription
                ),
                "workloadType": "AzureFileShare",
            });
            (container, format!("AzureFileShare;{}", item.name), properties)
        }
    };
    if let Some(object) = properties.as_object_mut() {
        object.insert("policyId".into(), policy_id.into());
        if let Some(t) = last_time {
            object.insert("lastBackupTime".into(), item_time(t).into());
        }
        if let Some(status) = last_status {
            // SQL databases report `Healthy`/`Unhealthy` (LastBackupStatus), the others
            // the job's status.
            let status = match item.workload {
                Workload::SqlDatabase if status == "Failed" => "Unhealthy",
                Workload::SqlDatabase => "Healthy",
                Workload::Vm | Workload::FileShare => status,
            };
            object.insert("lastBackupStatus".into(), status.into());
        }
        if let Some(t) = recovery_point {
            object.insert("lastRecoveryPoint".into(), item_time(t).into());
        }
    }
    json!({
        "name": item_name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems",
        "id": format!("{}/protectionContainers/{container}/protectedItems/{item_name}", place.vault_id()),
        "properties": properties,
    })
}

/// A VM of the vault's region that nothing protects, as a protectable item.
pub(crate) fn protectable(place: Place<'_>, vm: &str) -> Value {
    let rg = place.resource_group;
    let container = format!("iaasvmcontainerv2;{rg};{vm}");
    let name = format!("VM;{container}");
    json!({
        "name": name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectableItems",
        "id": format!("{}/protectionContainers/IaasVMContainer;{container}/protectableItems/{name}", place.vault_id()),
        "properties": {
            "backupManagementType": "AzureIaasVM",
            "friendlyName": vm,
            "protectableItemType": "Microsoft.Compute/virtualMachines",
            "protectionState": "NotProtected",
            "virtualMachineId": format!(
                "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}",
                place.subscription
            ),
            "workloadType": "VM",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::sql_parts;

    #[test]
    fn sql_job_names_split_into_instance_database_and_server() {
        assert_eq!(
            sql_parts("MSSQLSERVER/salesdb [sql-01.contoso.com]"),
            ("MSSQLSERVER", "salesdb", "sql-01.contoso.com")
        );
        assert_eq!(sql_parts("db"), ("MSSQLSERVER", "db", ""));
    }
}
