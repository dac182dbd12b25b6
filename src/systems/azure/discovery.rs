//! `discover: true` for Azure: the subscription's Recovery Services vaults, and what their
//! protected and protectable items say, read page by page.
//!
//! Which targets: every vault `GET /subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults`
//! lists (`Vaults_ListBySubscriptionId`; with `discover_filters.resource_group`,
//! `.../resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults`,
//! `Vaults_ListByResourceGroup`) becomes a `vault` target `{resource_group}/{name}`, the
//! resource group read from its `id`. A configured vault wins over a listed one that names
//! the same vault in another case (ARM compares names without case).
//!
//! Coverage and items (asked only of the shard that exports the inventory), for every
//! listed or configured vault:
//! - `GET .../backupProtectedItems` (every workload): per item its last backup time,
//!   status, health and protection state; `backup_server_protected{server} 1` for the
//!   item's server (an IaaS VM's `friendlyName`, a workload item's `serverName`; an Azure
//!   Files share has none);
//! - `GET .../backupProtectableItems?$filter=backupManagementType eq 'AzureIaasVM'`: each VM
//!   `NotProtected` is `backup_server_protected{server} 0` unless an item of any vault
//!   protects it.
//!
//! A failed item list keeps what that list of that vault gave last (a partial listing),
//! without failing the discovery of targets.
//!
//! Bounds: at most [`MAX_PAGES`] pages per list; a `nextLink` that repeats one already
//! followed, or [`MAX_EMPTY_PAGES`] pages in a row bringing no new item, ends the list as
//! `too_large`, as do more than `max_jobs_per_target` vaults, or items in one vault, or
//! [`MAX_ITEMS`] items over every vault. A `nextLink` to another origin than
//! `management_url` is refused (the token is never sent elsewhere). The item lists of as
//! many vaults as the listing may send requests at once are read at once (each vault's two
//! lists one after the other). The vaults are handed to the discovery loop as soon as they
//! are listed, so their polls run while the items are read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use futures_util::stream::{self, StreamExt};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::config::{is_azure_name, AzureVault};
use super::items::{Item, VaultItems};
use super::labels::VAULT;
use super::source::Azure;
use crate::inventory::InventorySeries;
use crate::metrics::InventoryFamily;
use crate::model::TargetKind;
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{Listing, endpoint, Discovery, FieldParser};
use crate::text::truncate;

/// The api-version of the vault and item lists: the one of the REST specification
/// examples in `tests/data/vendor/azure/` (the job calls keep `api_version`).
pub(super) const LIST_API_VERSION: &str = "2025-08-01";
/// The most pages one list follows.
pub(super) const MAX_PAGES: usize = 1000;
/// Pages in a row that bring no new item while a `nextLink` follows: past this, the list
/// is going nowhere.
pub(super) const MAX_EMPTY_PAGES: usize = 10;
/// The most protected and protectable items read over every vault of one listing.
pub(super) const MAX_ITEMS: usize = 100_000;
/// The protectable items asked: IaaS VMs, as the specification's example does.
pub(super) const PROTECTABLE_FILTER: &str = "backupManagementType eq 'AzureIaasVM'";
/// `healthStatus` of `AzureIaaSVMProtectedItem` (`bms.json`).
pub(super) const HEALTH: [&str; 4] = ["Passed", "ActionRequired", "ActionSuggested", "Invalid"];
/// `ProtectionState` (`bms.json`).
pub(super) const PROTECTION: [&str; 7] = [
    "Invalid",
    "IRPending",
    "Protected",
    "ProtectionError",
    "ProtectionStopped",
    "ProtectionPaused",
    "BackupsSuspended",
];
/// `lastBackupStatus` values that mean the last backup succeeded: `Completed` (IaaS VM and
/// Azure Files, a string), `Healthy` (workload items, the enum `Invalid`, `Healthy`,
/// `Unhealthy`, `IRPending`).
const SUCCESS: [&str; 2] = ["Completed", "Healthy"];
/// A status or state outside the enums is exported as given, cut to this many characters.
const MAX_STATE_CHARS: usize = 64;

/// A page of any ARM list (`ResourceList`): its entries read one by one, so one odd entry
/// is a parse error and not a failed list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceList {
    pub(super) value: Option<Vec<Value>>,
    pub(super) next_link: Option<Value>,
}

/// The fields of a vault resource discovery reads.
#[derive(Debug, Deserialize)]
struct VaultResource {
    id: Option<Value>,
    name: Option<Value>,
}

/// A protected or protectable item resource.
#[derive(Debug, Deserialize)]
struct ItemResource {
    properties: Option<ItemProperties>,
}

/// The fields of `ProtectedItem` and `WorkloadProtectableItem` (and their IaaS VM,
/// workload and file share kinds) read here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemProperties {
    friendly_name: Option<Value>,
    workload_type: Option<Value>,
    virtual_machine_id: Option<Value>,
    server_name: Option<Value>,
    parent_name: Option<Value>,
    last_backup_status: Option<Value>,
    last_backup_time: Option<Value>,
    last_recovery_point: Option<Value>,
    health_status: Option<Value>,
    protection_state: Option<Value>,
}

/// A non-empty trimmed text.
fn text(fields: &FieldParser, field: &str, value: Option<&Value>) -> Option<String> {
    fields
        .text(field, value)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// A vault of the list: its resource group from its `id`, its name from `name` (or the
/// `id`). `None`, counted as a parse error, when either is missing or would not fit a
/// request path.
pub(super) fn vault_of(fields: &FieldParser, entry: Value) -> Option<AzureVault> {
    let resource: VaultResource = match serde_json::from_value(entry) {
        Ok(r) => r,
        Err(e) => {
            fields.invalid("value", &e);
            return None;
        }
    };
    let Some(id) = text(fields, "id", resource.id.as_ref()) else {
        fields.missing("id");
        return None;
    };
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let resource_group = segments.windows(2).find_map(|w| match w {
        [key, value] if key.eq_ignore_ascii_case("resourceGroups") => Some(*value),
        _ => None,
    });
    let name = text(fields, "name", resource.name.as_ref())
        .or_else(|| segments.last().map(|s| (*s).to_owned()));
    match (resource_group, name) {
        (Some(rg), Some(name)) if is_azure_name(rg) && is_azure_name(&name) => Some(AzureVault {
            resource_group: rg.to_owned(),
            name,
        }),
        _ => {
            fields.invalid("id", &"no resource group and vault name that fit a request path");
            None
        }
    }
}

fn properties(fields: &FieldParser, entry: Value) -> Option<ItemProperties> {
    match serde_json::from_value::<ItemResource>(entry) {
        Ok(ItemResource {
            properties: Some(p),
        }) => Some(p),
        Ok(_) => {
            fields.missing("properties");
            None
        }
        Err(e) => {
            fields.invalid("value", &e);
            None
        }
    }
}

/// A protected item of the list; `None` (counted) without a `friendlyName`.
pub(super) fn protected_item(fields: &FieldParser, entry: Value) -> Option<Item> {
    let p = properties(fields, entry)?;
    let Some(friendly) = text(fields, "friendlyName", p.friendly_name.as_ref()) else {
        fields.missing("friendlyName");
        return None;
    };
    let workload = text(fields, "workloadType", p.workload_type.as_ref()).unwrap_or_default();
    let server_name = text(fields, "serverName", p.server_name.as_ref());
    let parent = text(fields, "parentName", p.parent_name.as_ref());
    let is_vm = workload == "VM" || p.virtual_machine_id.as_ref().is_some_and(|v| !v.is_null());
    // A workload item (SQL, SAP HANA) runs jobs named `instance/database [server]`, as the
    // SQL job example's `entityFriendlyName` `MSSQLSERVER/msDB [sqlserver-0.contoso.com]`.
    let job_name = match (&parent, &server_name) {
        (Some(parent), Some(server)) if !is_vm => format!("{parent}/{friendly} [{server}]"),
        _ => friendly.clone(),
    };
    let server = if is_vm {
        Some(friendly.clone())
    } else {
        server_name
    };
    let last_backup_status = text(fields, "lastBackupStatus", p.last_backup_status.as_ref());
    let last_backup_time = fields.time("lastBackupTime", p.last_backup_time.as_ref());
    let succeeded = last_backup_status
        .as_deref()
        .is_some_and(|s| SUCCESS.iter().any(|ok| ok.eq_ignore_ascii_case(s)));
    let recovery_point = fields.time("lastRecoveryPoint", p.last_recovery_point.as_ref());
    let last_success_time = [last_backup_time.filter(|_| succeeded), recovery_point]
        .into_iter()
        .flatten()
        .filter(|t| t.is_finite())
        .reduce(f64::max);
    Some(Item {
        job_name,
        workload,
        server,
        last_backup_status,
        last_backup_time,
        last_success_time,
        health: text(fields, "healthStatus", p.health_status.as_ref()),
        protection_state: text(fields, "protectionState", p.protection_state.as_ref()),
    })
}

/// The VM a protectable item names when nothing protects it (`NotProtected`).
pub(super) fn unprotected_vm(fields: &FieldParser, entry: Value) -> Option<String> {
    let p = properties(fields, entry)?;
    let state = text(fields, "protectionState", p.protection_state.as_ref());
    let name = text(fields, "friendlyName", p.friendly_name.as_ref());
    if name.is_none() {
        fields.missing("friendlyName");
    }
    name.filter(|_| state.as_deref() == Some("NotProtected"))
}

/// A state set over `states`: the item's state 1, the others 0; a state outside them is
/// one more series.
fn state_set(
    out: &mut Vec<InventorySeries>,
    family: InventoryFamily,
    labels: &[(&'static str, String)],
    states: &[&str],
    state: &str,
) {
    let mut found = false;
    for known in states {
        let on = known.eq_ignore_ascii_case(state);
        found |= on;
        let mut l = labels.to_vec();
        l.push(("state", (*known).to_owned()));
        out.push(InventorySeries::new(family, l, if on { 1.0 } else { 0.0 }));
    }
    if !found {
        let mut l = labels.to_vec();
        l.push(("state", truncate(state, MAX_STATE_CHARS)));
        out.push(InventorySeries::new(family, l, 1.0));
    }
}

/// The inventory series of every vault's items.
pub(super) fn series(vaults: &[&VaultItems]) -> Vec<InventorySeries> {
    // Coverage: protected wins over unprotected, whichever vault says it; one series per
    // server name (ARM names compare without case).
    let mut servers: BTreeMap<String, (String, f64)> = BTreeMap::new();
    // One series per vault, job name and workload (two VMs of one name in two resource
    // groups share their jobs' series too): the item backed up last.
    let mut items: BTreeMap<(&str, &str, &str), &Item> = BTreeMap::new();
    for vault in vaults {
        for item in vault.protected.iter().flatten() {
            if let Some(server) = &item.server {
                servers.insert(server.to_lowercase(), (server.clone(), 1.0));
            }
            let key = (
                vault.target.as_str(),
                item.job_name.as_str(),
                item.workload.as_str(),
            );
            let newer = items.get(&key).is_none_or(|had| {
                item.last_backup_time.unwrap_or(f64::MIN) > had.last_backup_time.unwrap_or(f64::MIN)
            });
            if newer {
                items.insert(key, item);
            }
        }
    }
    for vault in vaults {
        for vm in vault.protectable.iter().flatten() {
            servers
                .entry(vm.to_lowercase())
                .or_insert_with(|| (vm.clone(), 0.0));
        }
    }
    let mut out: Vec<InventorySeries> = servers
        .into_values()
        .map(|(server, value)| {
            InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", server)],
                value,
            )
        })
        .collect();
    for ((vault, job_name, workload), item) in items {
        let labels = vec![
            ("vault", vault.to_owned()),
            ("job_name", job_name.to_owned()),
            ("workload", workload.to_owned()),
        ];
        if let Some(t) = item.last_backup_time {
            out.push(InventorySeries::new(
                InventoryFamily::ItemLastBackup,
                labels.clone(),
                t,
            ));
        }
        if let Some(t) = item.last_success_time {
            out.push(InventorySeries::new(
                InventoryFamily::ItemLastSuccess,
                labels.clone(),
                t,
            ));
        }
        if let Some(status) = &item.last_backup_status {
            let mut l = labels.clone();
            l.push(("status", truncate(status, MAX_STATE_CHARS)));
            out.push(InventorySeries::new(
                InventoryFamily::ItemLastBackupStatus,
                l,
                1.0,
            ));
        }
        if let Some(health) = &item.health {
            state_set(&mut out, InventoryFamily::ItemHealth, &labels, &HEALTH, health);
        }
        if let Some(state) = &item.protection_state {
            state_set(
                &mut out,
                InventoryFamily::ItemProtectionState,
                &labels,
                &PROTECTION,
                state,
            );
        }
    }
    out
}

/// Which of a vault's item lists.
#[derive(Debug, Clone, Copy)]
enum Items {
    Protected,
    Protectable,
}

impl Items {
    fn path(self) -> &'static str {
        match self {
            Items::Protected => "backupProtectedItems",
            Items::Protectable => "backupProtectableItems",
        }
    }
}

impl Azure {
    /// Reads a list from `first`, following `nextLink`, handing each entry to `each`, which
    /// returns its key (or `None` for an entry it could not read); bounded as the module
    /// says, at most `cap` distinct keys.
    async fn list(
        &self,
        first: Url,
        what: &str,
        cap: usize,
        deadline: Instant,
        mut each: impl FnMut(Value) -> Option<String> + Send,
    ) -> Result<(), Fault> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut links: HashSet<String> = HashSet::new();
        let mut empty = 0;
        let mut next = Some(first);
        for _ in 0..MAX_PAGES {
            let Some(url) = next.take() else {
                return Ok(());
            };
            let page: ResourceList = self.get(url, deadline, None).await?;
            let before = seen.len();
            for entry in page.value.unwrap_or_default() {
                if let Some(key) = each(entry) {
                    seen.insert(key);
                    if seen.len() > cap {
                        return Err(Fault::new(
                            Outcome::TooLarge,
                            format!("{what} lists more than {cap} items"),
                        ));
                    }
                }
            }
            let Some(link) = self
                .fields()
                .text("nextLink", page.next_link.as_ref())
                .filter(|l| !l.is_empty())
            else {
                return Ok(());
            };
            empty = if seen.len() == before { empty + 1 } else { 0 };
            if empty > MAX_EMPTY_PAGES {
                return Err(Fault::new(
                    Outcome::TooLarge,
                    format!("{what}: {empty} pages in a row bring no new item but another should follow"),
                ));
            }
            if links.contains(&link) {
                return Err(Fault::new(
                    Outcome::TooLarge,
                    format!("{what}: a nextLink repeats"),
                ));
            }
            next = Some(self.next_url(&link)?);
            links.insert(link);
        }
        match next {
            None => Ok(()),
            Some(_) => Err(Fault::new(
                Outcome::TooLarge,
                format!("{what} has more than {MAX_PAGES} pages"),
            )),
        }
    }

    /// The vaults of the subscription (or of the filter's resource group), by
    /// [`AzureVault::key`]; the first spelling listed wins.
    async fn vaults(
        &self,
        resource_group: Option<&str>,
        deadline: Instant,
    ) -> Result<BTreeMap<(String, String), AzureVault>, Fault> {
        let config = self.config();
        let mut segments = vec!["subscriptions", config.subscription_id.as_str()];
        if let Some(rg) = resource_group {
            segments.extend(["resourceGroups", rg]);
        }
        segments.extend(["providers", "Microsoft.RecoveryServices", "vaults"]);
        let mut url = endpoint(&config.management_url, &segments)?;
        url.query_pairs_mut()
            .append_pair("api-version", LIST_API_VERSION);
        let fields = self.fields();
        let mut vaults = BTreeMap::new();
        self.list(url, "the vault list", fields.max_jobs(), deadline, |entry| {
            let vault = vault_of(fields, entry)?;
            let key = vault.key();
            vaults.entry(key.clone()).or_insert(vault);
            Some(format!("{}/{}", key.0, key.1))
        })
        .await?;
        Ok(vaults)
    }

    /// One of a vault's item lists, at most `cap` items.
    async fn items<T: Send>(
        &self,
        vault: &AzureVault,
        which: Items,
        cap: usize,
        deadline: Instant,
        read: impl Fn(&FieldParser, Value) -> Option<T> + Send + Sync,
        key: impl Fn(&T) -> String + Send + Sync,
    ) -> Result<Vec<T>, Fault> {
        let config = self.config();
        let mut url = endpoint(
            &config.management_url,
            &[
                "subscriptions",
                &config.subscription_id,
                "resourceGroups",
                &vault.resource_group,
                "providers",
                "Microsoft.RecoveryServices",
                "vaults",
                &vault.name,
                which.path(),
            ],
        )?;
        url.query_pairs_mut()
            .append_pair("api-version", LIST_API_VERSION);
        if let Items::Protectable = which {
            url.query_pairs_mut()
                .append_pair("$filter", PROTECTABLE_FILTER);
        }
        let what = format!("{} of vault {}", which.path(), vault.target());
        let fields = self.fields();
        let mut found = Vec::new();
        self.list(url, &what, cap, deadline, |entry| {
            let item = read(fields, entry)?;
            let k = key(&item);
            found.push(item);
            Some(k)
        })
        .await
        .map_err(|mut fault| {
            fault.reason = format!("{what}: {}", fault.reason);
            fault
        })?;
        Ok(found)
    }

    /// Both item lists of `vault`, each of at most `cap` items.
    async fn vault_items<'a>(
        &self,
        vault: &'a AzureVault,
        cap: usize,
        deadline: Instant,
    ) -> (
        &'a AzureVault,
        Result<Vec<Item>, Fault>,
        Result<Vec<String>, Fault>,
    ) {
        let protected = self
            .items(vault, Items::Protected, cap, deadline, protected_item, |i| {
                format!("{}\u{0}{}", i.job_name, i.workload)
            })
            .await;
        let protectable = self
            .items(
                vault,
                Items::Protectable,
                cap,
                deadline,
                unprotected_vm,
                String::clone,
            )
            .await;
        (vault, protected, protectable)
    }

    /// The coverage and item series of `vaults`, and why a list failed; a failed list
    /// keeps what it gave last.
    async fn inventory(
        &self,
        vaults: &[AzureVault],
        deadline: Instant,
        at_once: usize,
    ) -> (Vec<InventorySeries>, Vec<Fault>) {
        let per_vault = self.fields().max_jobs();
        // A few vaults at once, taken in order: the budget over every vault is spent in
        // vault order, and at most `at_once` vaults' lists are held beyond it. The
        // reads are made before they are streamed: a closure in the stream's type would not
        // be `Send` for every lifetime (a rustc limitation with async trait methods).
        let reads: Vec<_> = vaults
            .iter()
            .map(|vault| self.vault_items(vault, per_vault, deadline))
            .collect();
        let mut lists = stream::iter(reads)
            .buffered(at_once.max(1));
        let mut budget = MAX_ITEMS;
        let mut results = Vec::with_capacity(vaults.len());
        while let Some((vault, protected, protectable)) = lists.next().await {
            let protected = within(protected, &mut budget, vault);
            let protectable = within(protectable, &mut budget, vault);
            results.push((vault, protected, protectable));
        }
        let mut partial = Vec::new();
        let mut kept = self.kept_items();
        let mut now: HashMap<(String, String), VaultItems> = HashMap::new();
        for (vault, protected, protectable) in results {
            let key = vault.key();
            let mut items = kept.remove(&key).unwrap_or_default();
            items.target = vault.target();
            match protected {
                Ok(list) => items.protected = Some(list),
                Err(fault) => partial.push(fault),
            }
            match protectable {
                Ok(list) => items.protectable = Some(list),
                Err(fault) => partial.push(fault),
            }
            now.insert(key, items);
        }
        *kept = now;
        let mut all: Vec<&VaultItems> = kept.values().collect();
        all.sort_by(|a, b| a.target.cmp(&b.target));
        (series(&all), partial)
    }

    /// [`crate::sources::Source::discover`] of Azure.
    pub(super) async fn discover(
        &self,
        deadline: Instant,
        inventory: bool,
        listing: &Listing<'_>,
    ) -> Result<Discovery, Fault> {
        let Some(discovery) = &self.config().discovery else {
            return Err(Fault::new(
                Outcome::UpstreamError,
                "this upstream does not discover (`discover: true` is not set)",
            ));
        };
        let listed = self
            .vaults(discovery.resource_group.as_deref(), deadline)
            .await?;
        let configured: HashSet<(String, String)> =
            self.config().vaults.iter().map(AzureVault::key).collect();
        let targets: Vec<(TargetKind, String)> = listed
            .iter()
            .filter(|(key, _)| !configured.contains(*key))
            .map(|(_, vault)| (VAULT, vault.target()))
            .collect();
        // The vaults are polled while their items are listed.
        listing.found(targets.clone());
        let (series, partial) = if inventory {
            let mut all: Vec<AzureVault> = listed.into_values().collect();
            for vault in &self.config().vaults {
                if !all.iter().any(|v| v.same(vault)) {
                    all.push(vault.clone());
                }
            }
            self.inventory(&all, deadline, listing.requests).await
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(Discovery {
            targets,
            inventory: series,
            partial,
        })
    }
}

/// An item list, unless it takes more than what is left of the [`MAX_ITEMS`] budget (then
/// `too_large`); spends its length.
fn within<T>(
    list: Result<Vec<T>, Fault>,
    budget: &mut usize,
    vault: &AzureVault,
) -> Result<Vec<T>, Fault> {
    let list = list?;
    if list.len() > *budget {
        return Err(Fault::new(
            Outcome::TooLarge,
            format!(
                "the item lists of vault {} pass {MAX_ITEMS} items over every vault",
                vault.target()
            ),
        ));
    }
    *budget -= list.len();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::systems::azure::vendor::{answer, Fixture};

    fn entries(file: &str) -> Vec<Value> {
        match answer(file)["value"].as_array() {
            Some(v) => v.clone(),
            None => panic!("{file}: no value"),
        }
    }

    /// The specification's vault lists: three vaults, the resource group of each read from
    /// its id.
    #[test]
    fn the_vendor_vault_lists_give_their_vaults_with_resource_groups() {
        let f = Fixture::new();
        let page: ResourceList =
            serde_json::from_value(answer("spec-2025-08-01-ListBySubscriptionIds.json")).unwrap();
        assert!(page.next_link.is_none());
        let vaults: Vec<String> = page
            .value
            .unwrap()
            .into_iter()
            .filter_map(|v| vault_of(&f.fields, v))
            .map(|v| v.target())
            .collect();
        assert_eq!(
            vaults,
            [
                "Default-RecoveryServices-ResourceGroup/patchtest",
                "HelloWorld/swaggerExample",
                "HelloWorld/today1"
            ]
        );
        let in_rg: Vec<String> = entries("spec-2025-08-01-ListResources.json")
            .into_iter()
            .filter_map(|v| vault_of(&f.fields, v))
            .map(|v| v.resource_group)
            .collect();
        assert_eq!(in_rg.len(), 3);
        assert_eq!(f.parse_errors(), []);
    }

    /// The specification's protected and protectable IaaS VM examples: each field where
    /// the mapping says, and the VM both protected (1) and listed protectable (but
    /// protected wins).
    #[test]
    fn the_vendor_item_lists_map_to_items_and_coverage() {
        let f = Fixture::new();
        let protected: Vec<Item> = entries("spec-2025-08-01-BackupProtectedItems_List.json")
            .into_iter()
            .filter_map(|v| protected_item(&f.fields, v))
            .collect();
        let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_micros() as f64 / 1e6;
        assert_eq!(
            protected,
            [Item {
                job_name: "iaasvm-1".into(),
                workload: "VM".into(),
                server: Some("iaasvm-1".into()),
                last_backup_status: Some("Completed".into()),
                last_backup_time: Some(at("2018-01-22T12:25:32.048723Z")),
                last_success_time: Some(at("2018-01-22T12:25:32.048723Z")),
                health: Some("Passed".into()),
                protection_state: Some("Protected".into()),
            }]
        );
        let protectable: Vec<String> = entries("spec-2025-08-01-BackupProtectableItems_List.json")
            .into_iter()
            .filter_map(|v| unprotected_vm(&f.fields, v))
            .collect();
        assert_eq!(protectable, ["iaasvm-1"]);
        assert_eq!(f.parse_errors(), []);

        let vault = VaultItems {
            target: "SwaggerTestRg/NetSDKTestRsVault".into(),
            protected: Some(protected),
            protectable: Some(vec!["iaasvm-1".into(), "other-vm".into()]),
        };
        let series = series(&[&vault]);
        let get = |family: InventoryFamily| -> Vec<(Vec<(&str, String)>, f64)> {
            series
                .iter()
                .filter(|s| s.family == family)
                .map(|s| (s.labels.clone(), s.value))
                .collect()
        };
        assert_eq!(
            get(InventoryFamily::ServerProtected),
            [
                (vec![("server", "iaasvm-1".to_owned())], 1.0),
                (vec![("server", "other-vm".to_owned())], 0.0)
            ]
        );
        let labels = vec![
            ("vault", "SwaggerTestRg/NetSDKTestRsVault".to_owned()),
            ("job_name", "iaasvm-1".to_owned()),
            ("workload", "VM".to_owned()),
        ];
        assert_eq!(
            get(InventoryFamily::ItemLastSuccess),
            [(labels.clone(), 1_516_623_932.048723)]
        );
        assert_eq!(get(InventoryFamily::ItemLastBackup).len(), 1);
        let mut status = labels.clone();
        status.push(("status", "Completed".into()));
        assert_eq!(get(InventoryFamily::ItemLastBackupStatus), [(status, 1.0)]);
        let health = get(InventoryFamily::ItemHealth);
        assert_eq!(health.len(), 4);
        assert_eq!(
            health
                .iter()
                .filter(|(_, v)| *v == 1.0)
                .map(|(l, _)| l[3].1.as_str())
                .collect::<Vec<_>>(),
            ["Passed"]
        );
        let protection = get(InventoryFamily::ItemProtectionState);
        assert_eq!(protection.len(), 7);
        assert_eq!(protection.iter().filter(|(_, v)| *v == 1.0).count(), 1);
    }

    /// A SQL database (fields of `AzureVmWorkloadProtectedItem`, no example published):
    /// named as its jobs are, its server covered, `Healthy` a success; a failed VM backup
    /// has its last recovery point as last success; an unknown state is its own series.
    #[test]
    fn workload_items_are_named_as_their_jobs_and_failures_keep_the_recovery_point() {
        let f = Fixture::new();
        let sql = protected_item(
            &f.fields,
            serde_json::json!({"properties": {
                "friendlyName": "msDB", "parentName": "MSSQLSERVER",
                "serverName": "sqlserver-0.contoso.com", "workloadType": "SQLDataBase",
                "lastBackupStatus": "Healthy", "lastBackupTime": "2024-01-02T00:00:00Z",
                "protectionState": "Protected"
            }}),
        )
        .unwrap();
        assert_eq!(sql.job_name, "MSSQLSERVER/msDB [sqlserver-0.contoso.com]");
        assert_eq!(sql.server.as_deref(), Some("sqlserver-0.contoso.com"));
        assert_eq!(sql.last_success_time, Some(1_704_153_600.0));
        let failed = protected_item(
            &f.fields,
            serde_json::json!({"properties": {
                "friendlyName": "vm-1", "workloadType": "VM", "lastBackupStatus": "Failed",
                "lastBackupTime": "2024-01-02T00:00:00Z",
                "lastRecoveryPoint": "2024-01-01T00:00:00Z", "healthStatus": "Bogus"
            }}),
        )
        .unwrap();
        assert_eq!(failed.last_success_time, Some(1_704_067_200.0));
        let share = protected_item(
            &f.fields,
            serde_json::json!({"properties": {"friendlyName": "azurefiles", "workloadType": "AzureFileShare", "lastBackupStatus": "Failed"}}),
        )
        .unwrap();
        assert_eq!((share.server, share.last_success_time), (None, None));
        let vault = VaultItems {
            target: "rg/v".into(),
            protected: Some(vec![failed]),
            protectable: None,
        };
        let health: Vec<_> = series(&[&vault])
            .into_iter()
            .filter(|s| s.family == InventoryFamily::ItemHealth)
            .collect();
        assert_eq!(health.len(), 5);
        assert_eq!(health[4].labels[3], ("state", "Bogus".to_owned()));
        assert_eq!(health[4].value, 1.0);
        assert_eq!(f.parse_errors(), []);
    }

    #[test]
    fn odd_entries_are_parse_errors_not_failures() {
        let f = Fixture::new();
        for odd in [
            serde_json::json!(1),
            serde_json::json!({"id": "/subscriptions/s/providers/x/vaults/v"}),
            serde_json::json!({"id": "/subscriptions/s/resourceGroups/r g/providers/x/vaults/v"}),
            serde_json::json!({"id": "/subscriptions/s/resourceGroups/rg/providers/x/vaults/v", "name": "a/b"}),
        ] {
            assert_eq!(vault_of(&f.fields, odd.clone()), None, "{odd}");
            assert_eq!(protected_item(&f.fields, odd), None);
        }
        assert!(!f.parse_errors().is_empty());
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~가-힣]{0,12}".prop_map(Value::String),
            Just(Value::String("2024-01-02T00:00:00Z".into())),
            Just(Value::String("Completed".into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let keys = prop_oneof![
                Just("properties".to_owned()),
                Just("friendlyName".to_owned()),
                Just("id".to_owned()),
                Just("name".to_owned()),
                Just("lastBackupTime".to_owned()),
                Just("lastBackupStatus".to_owned()),
                Just("lastRecoveryPoint".to_owned()),
                Just("healthStatus".to_owned()),
                Just("protectionState".to_owned()),
                Just("serverName".to_owned()),
                Just("parentName".to_owned()),
                Just("workloadType".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON entry: an item, a vault, or a counted parse error; never a panic, and
        /// the series of what was read are well formed.
        #[test]
        fn the_item_parsers_never_panic(entry in json()) {
            let f = Fixture::new();
            let item = protected_item(&f.fields, entry.clone());
            let _ = unprotected_vm(&f.fields, entry.clone());
            if let Some(vault) = vault_of(&f.fields, entry) {
                prop_assert!(!vault.target().is_empty());
            }
            let vault = VaultItems { target: "rg/v".into(), protected: item.map(|i| vec![i]), protectable: None };
            for s in series(&[&vault]) {
                prop_assert!(s.labels.iter().all(|(_, v)| v.chars().count() <= 1024 || s.family != InventoryFamily::ItemHealth));
            }
        }
    }
}
