//! `discover: true` for SCP: the backup list and the backup targets, read page by page, and
//! what they make of them.
//!
//! Which targets: every backup `GET /v1/backups` lists (`listBackups`, with the
//! `discover_filters` `name` and `server_name` the SDK documents) becomes a `backup` target
//! (its restore histories) and a `backup_histories` target (its backup runs), by its `id`,
//! its `name` exported as `job_name`.
//!
//! Coverage (asked only of the shard that exports the inventory):
//! `backup_server_protected{server}` for every server `GET /v1/backups/backup-targets`
//! lists, asked once per `server_category` (`VIRTUAL_SERVER`, `GPU_SERVER`,
//! `BAREMETAL_SERVER`: every category the SDK's `ServerCategory` names, so no server is
//! left out): 1 when some listed backup's `server_name` is the server's `server_name`
//! (the backup list names its server only by name), else 0. With a `name` filter the
//! coverage is not exported (it would call every server outside the filter unprotected);
//! with a `server_name` filter the backup targets are asked with it too. A failed backup
//! target list keeps the coverage it gave last, without failing the discovery of targets.
//!
//! Bounds: pages of [`PAGE_SIZE`] items, at most [`MAX_PAGES`] of them; a listing with more
//! distinct items than `max_jobs_per_target`, or a page that brings no new item while
//! another should follow (a server repeating a page), ends as `too_large`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::labels::{BACKUP, BACKUP_HISTORIES};
use super::source::Scp;
use crate::inventory::InventorySeries;
use crate::metrics::InventoryFamily;
use crate::model::TargetKind;
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{Listing, endpoint, Discovery, FieldParser};

/// Items asked per page (the SDK's example is 20; it documents no maximum).
pub(super) const PAGE_SIZE: usize = 100;
/// The most pages one listing follows.
pub(super) const MAX_PAGES: usize = 1000;
/// The `server_category` values of `GET /v1/backups/backup-targets` (`ServerCategory`).
pub(super) const CATEGORIES: [&str; 3] = ["VIRTUAL_SERVER", "GPU_SERVER", "BAREMETAL_SERVER"];

/// A page of either list: `BackupListResponse` or `BackupTargetListResponse`.
#[derive(Debug, Deserialize)]
pub(super) struct ListPage<T> {
    pub(super) contents: Option<Vec<T>>,
    pub(super) count: Option<Value>,
}

/// The fields of a `BackupResponse` discovery reads.
#[derive(Debug, Deserialize)]
pub(super) struct BackupItem {
    pub(super) id: Option<Value>,
    pub(super) name: Option<Value>,
    pub(super) server_name: Option<Value>,
}

/// The field of a `BackupTargetResponse` the coverage reads.
#[derive(Debug, Deserialize)]
pub(super) struct ServerItem {
    pub(super) server_name: Option<Value>,
}

/// What the backup list says: each backup's id with its name, and the servers backed up.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Found {
    /// Backup id -> its name (empty when it has none).
    pub(super) backups: BTreeMap<String, String>,
    /// The `server_name` of every backup.
    pub(super) servers: HashSet<String>,
}

/// A non-empty trimmed text.
fn text(fields: &FieldParser, field: &str, value: Option<&Value>) -> Option<String> {
    fields
        .text(field, value)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Takes one page of the backup list into `found`; returns the page's backup ids. A backup
/// without an id, or with one that is not letters, digits, `-` and `_` (as a configured id),
/// is a parse error of `id` and no target.
pub(super) fn backup_page(
    fields: &FieldParser,
    items: Vec<BackupItem>,
    found: &mut Found,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        // A backup without an id cannot be polled, but its server has a backup.
        if let Some(server) = text(fields, "server_name", item.server_name.as_ref()) {
            found.servers.insert(server);
        }
        let Some(id) = text(fields, "id", item.id.as_ref()) else {
            fields.missing("id");
            continue;
        };
        // It goes into request paths: the characters a configured id may have.
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            fields.invalid("id", &"not letters, digits, - or _");
            continue;
        }
        let name = text(fields, "name", item.name.as_ref()).unwrap_or_default();
        found.backups.insert(id.clone(), name);
        keys.push(id);
    }
    keys
}

/// Takes one page of the backup targets into `servers`; returns the page's server names.
pub(super) fn server_page(
    fields: &FieldParser,
    items: Vec<ServerItem>,
    servers: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        match text(fields, "server_name", item.server_name.as_ref()) {
            Some(name) => {
                servers.insert(name.clone());
                keys.push(name);
            }
            None => fields.missing("server_name"),
        }
    }
    keys
}

/// `backup_server_protected` of each of `servers`.
pub(super) fn coverage(servers: &BTreeSet<String>, found: &Found) -> Vec<InventorySeries> {
    servers
        .iter()
        .map(|server| {
            InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", server.clone())],
                if found.servers.contains(server) { 1.0 } else { 0.0 },
            )
        })
        .collect()
}

impl Scp {
    /// Reads `/v1/{segments}` page by page, handing each page's items to `each`, which
    /// returns their keys; bounded as the module says.
    async fn list<T: DeserializeOwned + Send>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        deadline: Instant,
        mut each: impl FnMut(Vec<T>) -> Vec<String> + Send,
    ) -> Result<(), Fault> {
        let path = segments.join("/");
        let cap = self.fields().max_jobs();
        let mut seen: HashSet<String> = HashSet::new();
        for page in 0..MAX_PAGES {
            let mut url = endpoint(self.base(), segments)?;
            url.query_pairs_mut()
                .extend_pairs(query.iter())
                .append_pair("page", &page.to_string())
                .append_pair("size", &PAGE_SIZE.to_string());
            let ListPage { contents, count } = self
                .get_json::<ListPage<T>>(url, deadline)
                .await?;
            let total = self.fields().count("count", count.as_ref());
            let items = contents.unwrap_or_default();
            let fetched = items.len();
            let before = seen.len();
            for key in each(items) {
                seen.insert(key);
                if seen.len() > cap {
                    return Err(Fault::new(
                        Outcome::TooLarge,
                        format!("/{path} lists more than max_jobs_per_target ({cap}) items"),
                    ));
                }
            }
            // A full page is followed by another unless `count` says it was the last.
            let more = fetched >= PAGE_SIZE
                && total.is_none_or(|t| ((page + 1).saturating_mul(PAGE_SIZE) as u64) < t);
            if !more {
                return Ok(());
            }
            if seen.len() == before {
                return Err(Fault::new(
                    Outcome::TooLarge,
                    format!("/{path} page {page} brings no new item but another should follow"),
                ));
            }
        }
        Err(Fault::new(
            Outcome::TooLarge,
            format!("/{path} has more than {MAX_PAGES} pages"),
        ))
    }

    /// The backup list, with the configured filters.
    async fn find(&self, deadline: Instant) -> Result<Found, Fault> {
        let filters = self.config().discovery.as_ref();
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(name) = filters.and_then(|f| f.name.as_deref()) {
            query.push(("name", name));
        }
        if let Some(server) = filters.and_then(|f| f.server_name.as_deref()) {
            query.push(("server_name", server));
        }
        let fields = self.fields();
        let mut found = Found::default();
        self.list(&["v1", "backups"], &query, deadline, |items| {
            backup_page(fields, items, &mut found)
        })
        .await?;
        Ok(found)
    }

    /// The servers of every category, or why one list failed.
    async fn servers(&self, deadline: Instant) -> Result<BTreeSet<String>, Fault> {
        let server_filter = self
            .config()
            .discovery
            .as_ref()
            .and_then(|f| f.server_name.as_deref());
        let fields = self.fields();
        let mut servers = BTreeSet::new();
        for category in CATEGORIES {
            let mut query = vec![("server_category", category)];
            if let Some(server) = server_filter {
                query.push(("server_name", server));
            }
            self.list(&["v1", "backups", "backup-targets"], &query, deadline, |items| {
                server_page(fields, items, &mut servers)
            })
            .await
            .map_err(|mut fault| {
                fault.reason = format!("/v1/backups/backup-targets ({category}): {}", fault.reason);
                fault
            })?;
        }
        Ok(servers)
    }

    /// [`crate::sources::Source::discover`] of SCP.
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
        let found = self.find(deadline).await?;
        let targets: Vec<(TargetKind, String)> = found
            .backups
            .keys()
            .flat_map(|id| [(BACKUP, id.clone()), (BACKUP_HISTORIES, id.clone())])
            .collect();
        // The backups' names first (their polls label with them), then the targets are
        // polled while the servers are listed.
        self.set_listed(
            found
                .backups
                .iter()
                .filter(|(_, name)| !name.is_empty())
                .map(|(id, name)| (id.clone(), name.clone()))
                .collect(),
        );
        listing.found(targets.clone());
        let mut series = Vec::new();
        let mut partial = Vec::new();
        if inventory && discovery.name.is_none() {
            let result = self.servers(deadline).await;
            let mut kept = self.kept_coverage();
            match result {
                Ok(servers) => *kept = coverage(&servers, &found),
                Err(fault) => partial.push(fault),
            }
            series = kept.clone();
        }
        Ok(Discovery {
            targets,
            inventory: series,
            partial,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::status::StatusMap;
    use crate::systems::scp::SYSTEM;
    use crate::telemetry::Telemetry;

    fn fields(telemetry: &Telemetry) -> FieldParser {
        FieldParser::new(
            SYSTEM,
            Arc::from("scp"),
            chrono_tz::UTC,
            StatusMap::default(),
            telemetry.clone(),
        )
    }

    fn vendor(file: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/vendor/scp")
            .join(file);
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// The SDK's `BackupListResponse` and `BackupTargetListResponse` examples, verbatim in
    /// `tests/data/vendor/scp/`: they decode, the backup becomes one target of each kind
    /// with its name, and its server is protected.
    #[test]
    fn the_sdk_list_examples_decode_and_map() {
        let telemetry = Telemetry::new();
        let fields = fields(&telemetry);
        let page: ListPage<BackupItem> =
            serde_json::from_value(vendor("sdk-1.0-backup-list-example.yaml")).unwrap();
        assert_eq!(fields.count("count", page.count.as_ref()), Some(0));
        let mut found = Found::default();
        let keys = backup_page(&fields, page.contents.unwrap(), &mut found);
        assert_eq!(keys.len(), 2, "both (identical) entries read");
        assert_eq!(
            found.backups.into_iter().collect::<Vec<_>>(),
            [(
                "0fdd87aab8cb46f59b7c1f81ed03fb3e".to_owned(),
                "backup-001".to_owned()
            )]
        );
        let found = Found {
            backups: BTreeMap::new(),
            servers: ["server-001".to_owned()].into_iter().collect(),
        };
        let page: ListPage<ServerItem> =
            serde_json::from_value(vendor("sdk-1.0-backup-target-list-example.yaml")).unwrap();
        let mut servers = BTreeSet::new();
        server_page(&fields, page.contents.unwrap(), &mut servers);
        let series = coverage(&servers, &found);
        assert_eq!(
            series,
            [InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", "server-001".to_owned())],
                1.0
            )]
        );
        let nobody = coverage(&servers, &Found::default());
        assert_eq!(nobody[0].value, 0.0);
        let exposition = String::from_utf8(telemetry.encode(crate::metrics::Format::Text)).unwrap();
        assert!(
            !exposition.contains("backup_parse_errors_total{"),
            "{exposition}"
        );
    }

    #[test]
    fn a_backup_without_an_id_is_a_parse_error_and_no_target() {
        let telemetry = Telemetry::new();
        let fields = fields(&telemetry);
        let items: Vec<BackupItem> = serde_json::from_value(serde_json::json!([
            {"name": "x", "server_name": "s"},
            {"id": " ", "name": "y"},
            {"id": 7, "name": ["bad"], "server_name": "t"},
            {"id": "../x", "name": "z"},
            {"id": "a b", "name": "z"},
        ]))
        .unwrap();
        let mut found = Found::default();
        let keys = backup_page(&fields, items, &mut found);
        assert_eq!(keys, ["7"]);
        assert_eq!(found.backups.get("7").map(String::as_str), Some(""));
        assert!(found.servers.contains("t") && found.servers.contains("s"));
        let exposition = String::from_utf8(telemetry.encode(crate::metrics::Format::Text)).unwrap();
        assert!(
            exposition.contains("backup_parse_errors_total{"),
            "{exposition}"
        );
    }
}
