//! The SCP listings that discovery and coverage read, in the shapes of Samsung's SDK OpenAPI
//! document (`library/backup/1.0/api/openapi.yaml`, `tests/data/vendor/scp/`):
//! - `GET /v1/backups` (`listBackups`, `BackupListResponse`): every backup with the server it
//!   backs up (`server_name`); `page` (0-based), `size` (default 20), `sort`
//!   (`field[:asc|desc]`, default `created_at:desc`), `name` and `server_name` (substring
//!   matches);
//! - `GET /v1/backups/backup-targets` (`getBackupTargetList`, `BackupTargetListResponse`):
//!   the servers of a `server_category` (required: `VIRTUAL_SERVER`, `GPU_SERVER` or
//!   `BAREMETAL_SERVER`) that backups can target, with or without a backup; `region`
//!   (exact), `server_name` (substring), `page`, `size` (default 20), by server name.
//!
//! `count` is the number of matching items, as in the histories. The backups are the seed's
//! (`00cd2538...`, the names of the SDK's example), the live scenario's and the generated
//! fleet's (`--scp-fleet`: id `f1ee7` + the index in 27 hex digits, histories of a live
//! backup), so every backup listed has histories.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::scenario::{BackupDef, BACKUPS, USER_ID};
use super::seed;
use crate::clock::{fnv, mix};
use crate::http::form_pairs;

/// Largest `size` accepted.
const MAX_SIZE: usize = 10_000;
/// `size` when the request gives none (the document's example value).
const DEFAULT_SIZE: usize = 20;

/// The `server_category` values (`ServerCategory`).
const CATEGORIES: [&str; 3] = ["VIRTUAL_SERVER", "GPU_SERVER", "BAREMETAL_SERVER"];

/// The fields of a backup the list can be sorted by.
const SORT_FIELDS: [&str; 9] = [
    "created_at",
    "modified_at",
    "name",
    "server_name",
    "id",
    "state",
    "policy_type",
    "retention_period",
    "role_type",
];

/// A server of the account, as the backup-target list shows it.
struct ServerDef {
    name: &'static str,
    category: &'static str,
    region: &'static str,
    os: &'static str,
    kind: &'static str,
}

/// The account's servers: those the backups back up, two virtual servers and a bare-metal
/// one that no backup covers.
static SERVERS: &[ServerDef] = &[
    server("server-001", "Ubuntu 22.04"),
    server("erp-db-01", "Rocky Linux 9.4"),
    server("파일서버-01", "Windows Server 2022"),
    server("web-01", "Ubuntu 22.04"),
    server("app-02", "Ubuntu 24.04"),
    server("batch-03", "Rocky Linux 9.4"),
    ServerDef {
        category: "BAREMETAL_SERVER",
        kind: "h2v32m256",
        ..server("bm-db-01", "Rocky Linux 8.10")
    },
];

const fn server(name: &'static str, os: &'static str) -> ServerDef {
    ServerDef {
        name,
        category: "VIRTUAL_SERVER",
        region: "kr-west1",
        os,
        kind: "s1v2m4",
    }
}

/// The names of the servers no backup covers, for the tests.
#[cfg(test)]
pub(crate) fn unprotected_servers() -> Vec<&'static str> {
    let backed_up: Vec<String> = backups(0)
        .iter()
        .filter_map(|b| b["server_name"].as_str().map(str::to_string))
        .collect();
    SERVERS
        .iter()
        .map(|s| s.name)
        .filter(|name| !backed_up.iter().any(|b| b == name))
        .collect()
}

/// `2024-05-17T00:23:17Z`, as the document writes `created_at`.
fn zulu(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A UUID-shaped string from a hash.
fn uuid(h: u64) -> String {
    let (a, b) = (mix(h), mix(h ^ 0x9e37_79b9_7f4a_7c15));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// The id of fleet backup `index` (1-based): 32 hex digits.
pub(crate) fn fleet_id(index: usize) -> String {
    format!("f1ee7{index:027x}")
}

/// The live backup whose histories fleet backup `id` replays, if `id` is one of the
/// `fleet` generated backups.
pub(crate) fn fleet_template(id: &str, fleet: usize) -> Option<&'static BackupDef> {
    let digits = id.strip_prefix("f1ee7")?;
    if digits.len() != 27 {
        return None;
    }
    let index = usize::from_str_radix(digits, 16).ok()?;
    if index == 0 || index > fleet || fleet_id(index) != id {
        return None;
    }
    BACKUPS.get(index % BACKUPS.len())
}

/// Fleet server `index` (1-based), as ZDM's fleet names them.
fn fleet_server(index: usize) -> String {
    format!("fleet-{index:05}")
}

/// Every backup as the list shows it (`BackupResponse`): the seed's, the live ones, then
/// the `fleet` generated ones.
pub(crate) fn backups(fleet: usize) -> Vec<Value> {
    // The seed's backup, with the values of the document's example.
    let mut out = vec![json!({
        "created_at": "2024-05-17T00:23:17Z",
        "created_by": "90dddfc2b1e04edba54ba2b41539a9ac",
        "id": seed::BACKUP_ID,
        "modified_at": "2024-05-17T00:23:17Z",
        "modified_by": "90dddfc2b1e04edba54ba2b41539a9ac",
        "name": "backup-001",
        "policy_type": "VM_IMAGE",
        "retention_period": "WEEK_2",
        "role_type": "ORIGINAL",
        "server_name": "server-001",
        "state": "AVAILABLE",
    })];
    for def in BACKUPS {
        // Created some day of the second half of 2024, modified a few days later.
        let created = 1_717_200_000 + (mix(fnv(def.id)) % (180 * 86_400)) as i64;
        let modified = created + (mix(fnv(def.id) ^ 1) % (7 * 86_400)) as i64;
        out.push(json!({
            "created_at": zulu(created),
            "created_by": USER_ID,
            "id": def.id,
            "modified_at": zulu(modified),
            "modified_by": USER_ID,
            "name": def.name,
            "policy_type": def.policy_type,
            "retention_period": def.retention,
            "role_type": "ORIGINAL",
            "server_name": def.server,
            "state": "AVAILABLE",
        }));
    }
    for index in 1..=fleet {
        let id = fleet_id(index);
        let created = zulu(1_717_200_000 + (mix(fnv(&id)) % (180 * 86_400)) as i64);
        out.push(json!({
            "created_at": created,
            "created_by": USER_ID,
            "id": id,
            "modified_at": created,
            "modified_by": USER_ID,
            "name": format!("{}-backup", fleet_server(index)),
            "policy_type": "VM_IMAGE",
            "retention_period": "MONTH_1",
            "role_type": "ORIGINAL",
            "server_name": fleet_server(index),
            "state": "AVAILABLE",
        }));
    }
    out
}

/// A server as the backup-target list shows it (`BackupTargetResponse`).
fn target(name: &str, os: &str, kind: &str) -> Value {
    let h = fnv(name);
    json!({
        "server_guid": format!("{:016x}{:016x}", mix(h ^ 7), mix(h ^ 8)),
        "server_name": name,
        "server_os_version": os,
        "server_type": kind,
        "server_uuid": uuid(h),
    })
}

/// The OS and type of the fleet's virtual servers: one per fleet backup, then one in a
/// hundred more with no backup (`fleet-idle-00001`..).
const FLEET_OS: &str = "Ubuntu 22.04";
const FLEET_KIND: &str = "s1v2m4";

/// The parameters of a listing: paging, sorting and the filters, unparsed.
struct Params {
    page: usize,
    size: usize,
    sort: Option<String>,
    /// (name, value) of the other non-empty parameters.
    rest: Vec<(String, String)>,
}

impl Params {
    fn parse(query: Option<&str>) -> Result<Params, String> {
        let mut params = Params {
            page: 0,
            size: DEFAULT_SIZE,
            sort: None,
            rest: Vec::new(),
        };
        let pairs = form_pairs(query.unwrap_or("")).ok_or("malformed query string")?;
        for (key, value) in pairs {
            // The parameters are nullable: empty or `null` means the default.
            let value = value.trim();
            if value.is_empty() || value == "null" {
                continue;
            }
            match key.as_str() {
                "page" => {
                    params.page = value.parse().map_err(|_| {
                        format!("page must be a non-negative integer, got {value:?}")
                    })?;
                }
                // The document allows 0: an empty page that still gives `count`.
                "size" => {
                    params.size = value
                        .parse()
                        .ok()
                        .filter(|s| *s <= MAX_SIZE)
                        .ok_or_else(|| format!("size must be 0..={MAX_SIZE}, got {value:?}"))?;
                }
                "sort" => params.sort = Some(value.to_string()),
                _ => params.rest.push((key, value.to_string())),
            }
        }
        Ok(params)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.rest
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `{"contents": [...], "count": <matching>}` of the requested page, each item written
    /// by `render` (only the page's are).
    fn page<T>(&self, items: &[T], render: impl Fn(&T) -> Value) -> Value {
        let contents: Vec<Value> = items
            .iter()
            .skip(self.page.saturating_mul(self.size))
            .take(self.size)
            .map(render)
            .collect();
        json!({ "contents": contents, "count": items.len() })
    }
}

/// Whether `field` of `item` contains `want` (no filter: always).
fn contains(item: &Value, field: &str, want: Option<&str>) -> bool {
    want.is_none_or(|want| item[field].as_str().is_some_and(|have| have.contains(want)))
}

/// One page of `GET /v1/backups` over `all` (what [`backups`] gives), or why the query is
/// refused.
pub(crate) fn backup_list(query: Option<&str>, all: &[Value]) -> Result<Value, String> {
    let params = Params::parse(query)?;
    let sort = params.sort.as_deref().unwrap_or("created_at:desc");
    let (field, direction) = sort.split_once(':').unwrap_or((sort, "asc"));
    let field = SORT_FIELDS
        .iter()
        .copied()
        .find(|f| *f == field)
        .ok_or_else(|| format!("cannot sort by {field:?}"))?;
    let descending = match direction.to_ascii_lowercase().as_str() {
        "asc" => false,
        "desc" => true,
        _ => return Err(format!("sort direction must be asc or desc, got {direction:?}")),
    };
    let mut items: Vec<&Value> = all
        .iter()
        .filter(|b| contains(b, "name", params.get("name")))
        .filter(|b| contains(b, "server_name", params.get("server_name")))
        .collect();
    // Ties by id, so that pages never overlap.
    items.sort_by(|a, b| {
        let order = a[field]
            .as_str()
            .cmp(&b[field].as_str())
            .then_with(|| a["id"].as_str().cmp(&b["id"].as_str()));
        if descending {
            order.reverse()
        } else {
            order
        }
    });
    Ok(params.page(&items, |b| (*b).clone()))
}

/// One page of `GET /v1/backups/backup-targets`, or why the query is refused.
pub(crate) fn backup_targets(query: Option<&str>, fleet: usize) -> Result<Value, String> {
    let params = Params::parse(query)?;
    let category = params
        .get("server_category")
        .ok_or("server_category is required")?;
    let category = CATEGORIES
        .iter()
        .find(|c| c.eq_ignore_ascii_case(category))
        .ok_or_else(|| {
            format!(
                "server_category must be one of {}, got {category:?}",
                CATEGORIES.join(", ")
            )
        })?;
    let region = params.get("region");
    let in_region = |r: &str| region.is_none_or(|want| want == r);
    let mut servers: Vec<&ServerDef> = SERVERS
        .iter()
        .filter(|s| s.category == *category && in_region(s.region))
        .collect();
    servers.sort_by_key(|s| s.name);
    let fleet = if *category == "VIRTUAL_SERVER" && in_region("kr-west1") {
        fleet
    } else {
        0
    };
    let idle = fleet.div_ceil(100);
    let name_filter = params.get("server_name");
    let items: Vec<(String, &str, &str)> = servers
        .into_iter()
        .map(|s| (s.name.to_string(), s.os, s.kind))
        .chain((1..=fleet).map(|i| (fleet_server(i), FLEET_OS, FLEET_KIND)))
        .chain((1..=idle).map(|i| (format!("fleet-idle-{i:05}"), FLEET_OS, FLEET_KIND)))
        .filter(|(name, _, _)| name_filter.is_none_or(|want| name.contains(want)))
        .collect();
    Ok(params.page(&items, |(name, os, kind)| target(name, os, kind)))
}
