//! The generated vaults of `--azure-fleet` for benchmarks: `fleet-vault-00001`.. in resource
//! group `rg-fleet` of the live subscription, each running the VMs of the first live vault
//! (`vault-01`) under its own job and VM names (`{vm}-f00007` in vault 7: a subscription's
//! VMs have names of their own), with the same protected items and one VM of its own that
//! nothing protects.

use super::scenario::{live_jobs, VaultDef, VAULTS};
use super::wire::{uuid, JobRecord};
use crate::clock::fnv;

/// The resource group of the fleet's vaults.
pub(crate) const RESOURCE_GROUP: &str = "rg-fleet";

/// The live vault every fleet vault copies.
pub(crate) fn template() -> Option<&'static VaultDef> {
    VAULTS.first()
}

/// Fleet vault `index` (1-based).
pub(crate) fn name(index: usize) -> String {
    format!("fleet-vault-{index:05}")
}

/// What fleet vault `index` calls the template's VM (or other entity) `entity`.
pub(crate) fn entity(index: usize, entity: &str) -> String {
    format!("{entity}-f{index:05}")
}

/// The VM of fleet vault `index` that nothing protects.
pub(crate) fn idle_vm(index: usize) -> String {
    format!("fleet-{index:05}-idle-vm")
}

/// The 1-based index of the fleet vault a path names, case-insensitively, if it is one of
/// `fleet`.
pub(crate) fn index(subscription: &str, resource_group: &str, vault: &str, fleet: usize) -> Option<usize> {
    let template = template()?;
    if !subscription.eq_ignore_ascii_case(template.subscription)
        || !resource_group.eq_ignore_ascii_case(RESOURCE_GROUP)
    {
        return None;
    }
    let digits = vault.to_ascii_lowercase();
    let digits = digits.strip_prefix("fleet-vault-")?;
    let index: usize = digits.parse().ok()?;
    (digits.len() == 5 && (1..=fleet).contains(&index)).then_some(index)
}

/// The jobs of fleet vault `index` at `now_ms`: the template's, renamed (job names unique
/// to the vault) and placed in it.
pub(crate) fn jobs(index: usize, now_ms: i64, cycle_ms: i64) -> Vec<JobRecord> {
    let Some(template) = template() else {
        return Vec::new();
    };
    let vault = name(index);
    let from = format!(
        "/resourceGroups/{}/providers/microsoft.recoveryservices/vaults/{}/backupJobs/",
        template.resource_group, template.name
    );
    let to = format!(
        "/resourceGroups/{RESOURCE_GROUP}/providers/microsoft.recoveryservices/vaults/{vault}/backupJobs/"
    );
    live_jobs(template, now_ms, cycle_ms)
        .into_iter()
        .map(|mut job| {
            let renamed = uuid(fnv(&vault) ^ fnv(&job.name).rotate_left(17));
            let own = entity(index, &job.entity);
            // The entity as a whole JSON string, wherever it is one.
            let (quoted, own_quoted) = (format!("\"{}\"", job.entity), format!("\"{own}\""));
            for text in [&mut job.list, &mut job.details] {
                *text = text
                    .replace(&from, &to)
                    .replace(&job.name, &renamed)
                    .replace(&quoted, &own_quoted);
            }
            job.name = renamed;
            job.entity = own;
            job
        })
        .collect()
}
