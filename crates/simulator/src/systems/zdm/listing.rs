//! The listings of ZDM 1.0.3 on, in the shapes the vendor's pages document (`GET /servers`,
//! `/backups`, `/recoveries`, `/replications`, `/zdms/repositories`, `/licenses`), paged as
//! documented: with `page` or `limit` (defaults 1 and 20) the answer is that page with a
//! `pagination` block, without either the whole list.
//!
//! The fleet they list: the live scenario's servers and jobs, the server `app-01` of the
//! standalone backup job, the recovery target `db-dr-02` (agent mode `Target`), two servers
//! with no backup job (`legacy-erp-01`, `test-vm-07`), the agent of `win-fs-01`
//! disconnected, and with `--zdm-fleet` every generated server and job. Three repositories,
//! of which `2` fills up over [`FILL_CYCLES`] scenario cycles and then starts again; two
//! licences, one expiring within a month and fully used.
//!
//! Items are generated per page (an item is a function of its position), so a page of a
//! 50,000-job fleet costs what a page of the demo costs.

use serde_json::{json, Value};

use super::scenario::{
    self, Fleet, JobDef, Volume, BACKUP_JOBS, RECOVERIES, REPLICATIONS, SERVERS,
};
use super::wire::{self, ApiVersion};

/// ZDM's default `limit`.
const DEFAULT_LIMIT: usize = 20;
/// Scenario cycles repository `2` takes to fill from half to full.
pub(crate) const FILL_CYCLES: i64 = 40;
/// Servers the listing names that have no backup job.
pub(crate) const UNPROTECTED: [&str; 2] = ["legacy-erp-01", "test-vm-07"];
/// The server whose agent is disconnected.
pub(crate) const DISCONNECTED: &str = "win-fs-01";
/// The recovery target (agent mode `Target`).
const TARGET_SERVER: &str = "db-dr-02";
/// The center every item is in.
pub(crate) const CENTER: &str = "Main-Center";
const AGENT_VERSION: &str = "3.2.1";

/// The listing a path names (after the prefix), as its fault and fixture id.
pub(crate) fn which(rest: &[&str]) -> Option<&'static str> {
    match rest {
        ["servers"] => Some("servers"),
        ["backups"] => Some("backups"),
        ["recoveries"] => Some("recoveries"),
        ["replications"] => Some("replications"),
        ["zdms", "repositories"] => Some("repositories"),
        ["licenses"] => Some("licenses"),
        _ => None,
    }
}

/// Where the listing stands in time and which fleet it lists.
#[derive(Clone, Copy)]
pub(crate) struct World {
    pub version: ApiVersion,
    pub now_ms: i64,
    pub cycle_ms: i64,
    pub fleet: Option<Fleet>,
    /// Whether the release has replications (`/replications` lists none otherwise).
    pub replications: bool,
}

/// The fixed servers before the fleet's: the scenario's, then the standalone job's, the
/// recovery target and the unprotected ones.
fn fixed_servers() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SERVERS.iter().map(|s| s.name).collect();
    for b in BACKUP_JOBS {
        if !names.contains(&b.server) {
            names.push(b.server);
        }
    }
    names.push(TARGET_SERVER);
    names.extend(UNPROTECTED);
    names
}

/// Every fixed backup job with its server, each once (a job both a server's and standalone
/// is listed once).
fn fixed_backups() -> Vec<(&'static str, JobDef<'static>)> {
    let mut jobs: Vec<(&'static str, JobDef<'static>)> = SERVERS
        .iter()
        .flat_map(|s| s.jobs.iter().map(move |j| (s.name, *j)))
        .collect();
    for b in BACKUP_JOBS {
        if !jobs.iter().any(|(s, j)| *s == b.server && j.name == b.job.name) {
            jobs.push((b.server, b.job));
        }
    }
    jobs
}

fn time(world: &World, t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_string(), |s| world.version.format_unix(s))
}

fn status_block(world: &World, def: &JobDef<'_>) -> Value {
    let state = scenario::job_state(def, world.now_ms, world.cycle_ms);
    json!({
        "current": state.phase.status(world.version),
        "time": {
            "start": time(world, state.start),
            "elapsed": state.elapsed.map_or_else(|| "-".to_string(), wire::hms),
            "end": time(world, state.end),
        }
    })
}

/// A server's `id`: its position in the servers listing, from 1.
fn server_id(name: &str) -> String {
    let fixed = fixed_servers();
    match fixed.iter().position(|n| *n == name) {
        Some(i) => (i + 1).to_string(),
        None => {
            let index: usize = name
                .strip_prefix("fleet-")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            (fixed.len() + index).to_string()
        }
    }
}

fn server_item(world: &World, name: &str, detail: bool) -> Value {
    let mode = if name == TARGET_SERVER { "Target" } else { "Source" };
    let connect = if name == DISCONNECTED { "disconnect" } else { "connect" };
    let windows = name.starts_with("win");
    let mut agent = json!({ "mode": mode });
    if detail {
        agent["version"] = json!(AGENT_VERSION);
    }
    json!({
        "id": server_id(name),
        "name": name,
        "agent": agent,
        "os": { "version": if windows { "Windows Server 2019" } else { "Ubuntu 22.04 LTS" } },
        "ip": { "public": "192.168.1.100", "private": ["10.0.0.1"] },
        "license": { "id": "1" },
        "status": { "connect": connect },
        "lastUpdated": world.version.now(),
    })
}

fn backup_item(world: &World, server: &str, def: &JobDef<'_>, id: usize) -> Value {
    let mut info = json!({
        "id": id.to_string(),
        "name": def.name,
        "mode": "full",
        "schedule": { "basic": { "id": "1", "type": "daily", "description": "Every day at 02:00" }, "advanced": "-" },
        "status": status_block(world, def),
    });
    match def.volume {
        Volume::Partition(p) => info["partition"] = json!(p),
        Volume::Drive(d) => info["drive"] = json!(d),
    }
    let windows = matches!(def.volume, Volume::Drive(_));
    json!({
        "system": {
            "id": server_id(server),
            "name": server,
            "os": if windows { "Windows" } else { "Linux" },
        },
        "job": { "info": info, "lastUpdated": world.version.now() },
        "repository": { "id": "1", "type": "nfs", "path": format!("/backup/{server}") },
    })
}

fn recovery_item(world: &World, index: usize) -> Option<Value> {
    let def = RECOVERIES.get(index)?;
    let first = def.details.first()?;
    let details: Vec<Value> = def
        .details
        .iter()
        .map(|d| {
            let volume = match d.volume {
                Volume::Partition(p) | Volume::Drive(p) => p,
            };
            json!({
                "from": volume,
                "to": volume,
                "targetDevice": "/dev/sda1",
                "mode": "full",
                "backup": { "jobName": "pgsql-백업", "fileName": "backup.img", "latest": "use" },
                "repository": { "id": "1", "path": "/backup", "type": "nfs" },
                "lastUpdated": world.version.now(),
            })
        })
        .collect();
    Some(json!({
        "system": {
            "source": { "id": server_id(def.source), "name": def.source, "os": "Ubuntu 22.04" },
            "target": { "id": server_id(def.target), "name": def.target, "os": "Ubuntu 22.04" },
        },
        "job": {
            "info": {
                "id": (index + 1).to_string(),
                "name": def.name,
                "schedule": { "basic": { "id": "1", "type": "daily", "description": "Every day at 10:00" } },
                "status": status_block(world, first),
                "lastUpdated": world.version.now(),
            },
            "detail": details,
        }
    }))
}

fn replication_item(world: &World, index: usize) -> Option<Value> {
    let def = REPLICATIONS.get(index)?;
    Some(json!({
        "system": { "name": def.center },
        "job": {
            "info": {
                "id": def.id.to_string(),
                "name": def.job.name,
                "unitType": "Backup Policy",
                "replicationMode": "Full",
                "status": status_block(world, &def.job),
                "lastUpdated": world.version.now(),
            },
            "backupJob": [{ "name": "pgsql-백업", "id": "1" }],
            "repository": { "target": { "id": "3", "type": "NFS", "path": "/replication/target" } },
            "option": { "compression": "Use", "encryption": "Not Use", "networkLimit": 0, "mailEvent": "" },
        }
    }))
}

/// `bytes` as the vendor formats sizes (`"512.0 GB"`).
fn formatted(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

fn capacity(bytes: u64) -> Value {
    json!({ "raw": bytes, "formatted": formatted(bytes) })
}

const TIB: u64 = 1 << 40;

/// Repository `i` (0-based): `(id, type, size, used, remote path)`.
pub(crate) fn repository(world: &World, i: usize) -> Option<(&'static str, &'static str, u64, u64, &'static str)> {
    match i {
        0 => Some(("1", "NFS", TIB, TIB / 2, "/backup")),
        1 => {
            // Fills from half to 99 % over FILL_CYCLES cycles, then starts again.
            let period = world.cycle_ms.max(1).saturating_mul(FILL_CYCLES);
            let phase = world.now_ms.rem_euclid(period) as f64 / period as f64;
            let size = 2 * TIB;
            let used = (size as f64 * (0.5 + 0.49 * phase)) as u64;
            Some(("2", "NFS", size, used, "/backup-fast"))
        }
        2 => Some(("3", "SMB", 4 * TIB, TIB, "\\\\nas\\backup")),
        _ => None,
    }
}

fn repository_item(world: &World, i: usize) -> Option<Value> {
    let (id, kind, size, used, remote) = repository(world, i)?;
    let free = size.saturating_sub(used);
    Some(json!({
        "id": id,
        "center": CENTER,
        "type": kind,
        "size": capacity(size),
        "used": capacity(used),
        "free": capacity(free),
        "usage": (used * 100 / size.max(1)),
        "remotePath": remote,
        "localPath": "/mnt/backup",
        "ipAddress": ["192.168.1.200"],
        "port": "2049",
        "lastUpdated": world.version.now(),
    }))
}

/// Licence `i`: `(name, key, total, used, days until it expires)`.
pub(crate) const LICENSES: [(&str, &str, u64, u64, i64); 2] = [
    ("ZDM Backup Enterprise", "ZDMB-7Q4K-2N8F-XW3P", 100, 37, 300),
    ("ZDM Recovery Standard", "ZDMR-4H6J-9T2L-QP5C", 10, 10, 20),
];

fn license_item(world: &World, i: usize) -> Option<Value> {
    let (name, key, total, used, days) = *LICENSES.get(i)?;
    let day = |offset: i64| {
        chrono::DateTime::from_timestamp(world.now_ms / 1000 + offset * 86_400, 0)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".to_string())
    };
    Some(json!({
        "name": name,
        "key": key,
        "category": "zdm(backup)",
        "copies": { "total": total, "used": used, "available": total - used, "usage": used * 100 / total },
        "description": name,
        "dates": { "created": day(-65), "expires": day(days), "daysRemaining": days },
    }))
}

/// How many items the listing has, and item `i`.
fn count(world: &World, listing: &str) -> usize {
    let fleet = world.fleet.map_or((0, 0), |f| (f.servers, f.jobs));
    match listing {
        "servers" => fixed_servers().len() + fleet.0,
        "backups" => fixed_backups().len() + fleet.0 * fleet.1,
        "recoveries" => RECOVERIES.len(),
        "replications" if world.replications => REPLICATIONS.len(),
        "repositories" => 3,
        "licenses" => LICENSES.len(),
        _ => 0,
    }
}

fn item(world: &World, listing: &str, i: usize, detail: bool) -> Option<Value> {
    match listing {
        "servers" => {
            let fixed = fixed_servers();
            match fixed.get(i) {
                Some(name) => Some(server_item(world, name, detail)),
                None => Some(server_item(world, &Fleet::server_name(i - fixed.len() + 1), detail)),
            }
        }
        "backups" => {
            let fixed = fixed_backups();
            if let Some((server, def)) = fixed.get(i) {
                return Some(backup_item(world, server, def, i + 1));
            }
            let fleet = world.fleet?;
            let n = i - fixed.len();
            let (server, job) = (n / fleet.jobs.max(1) + 1, n % fleet.jobs.max(1) + 1);
            let name = Fleet::job_name(server, job);
            let def = Fleet::job_def(&name, server, job);
            Some(backup_item(world, &Fleet::server_name(server), &def, i + 1))
        }
        "recoveries" => recovery_item(world, i),
        "replications" => replication_item(world, i),
        "repositories" => repository_item(world, i),
        "licenses" => license_item(world, i),
        _ => None,
    }
}

/// Whether item `i` passes the documented filters the query sends (`jobName` on the job
/// listings, `center` on the repositories).
fn passes(value: &Value, listing: &str, job_name: Option<&str>, center: Option<&str>) -> bool {
    let job_ok = match (listing, job_name) {
        ("backups" | "recoveries" | "replications", Some(want)) => {
            value.pointer("/job/info/name").and_then(Value::as_str) == Some(want)
        }
        _ => true,
    };
    let center_ok = match (listing, center) {
        ("repositories", Some(want)) => want
            .split(',')
            .any(|c| Some(c.trim()) == value.get("center").and_then(Value::as_str)),
        _ => true,
    };
    job_ok && center_ok
}

/// The answer to `GET {prefix}/{listing}?{query}`.
pub(crate) fn body(world: &World, listing: &str, query: Option<&str>) -> Vec<u8> {
    let (mut page, mut limit, mut paged, mut detail) = (1usize, DEFAULT_LIMIT, false, false);
    let (mut job_name, mut center) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = value.parse::<usize>().ok().filter(|n| *n >= 1);
        let text = crate::http::percent_decode(value);
        match key {
            "page" => (page, paged) = (number.unwrap_or(1), true),
            "limit" => (limit, paged) = (number.unwrap_or(DEFAULT_LIMIT), true),
            "detail" => detail = value == "true",
            "jobName" => job_name = text,
            "center" => center = text,
            _ => {}
        }
    }
    let filtered = job_name.is_some() || center.is_some();
    let total = count(world, listing);
    let wanted = |i: usize| {
        item(world, listing, i, detail)
            .filter(|v| passes(v, listing, job_name.as_deref(), center.as_deref()))
    };
    let (items, total): (Vec<Value>, usize) = if filtered {
        let all: Vec<Value> = (0..total).filter_map(wanted).collect();
        let n = all.len();
        let from = if paged { page.saturating_sub(1).saturating_mul(limit).min(n) } else { 0 };
        let to = if paged { from.saturating_add(limit).min(n) } else { n };
        (all.get(from..to).unwrap_or_default().to_vec(), n)
    } else {
        let from = if paged { page.saturating_sub(1).saturating_mul(limit).min(total) } else { 0 };
        let to = if paged { from.saturating_add(limit).min(total) } else { total };
        ((from..to).filter_map(wanted).collect(), total)
    };
    let message = match listing {
        "servers" => "Server information list",
        "backups" => "Backup job list",
        "recoveries" => "Recovery job list",
        "replications" => "Replication list",
        "repositories" => "Repository list retrieved",
        _ => "License information list",
    };
    let mut answer = json!({
        "success": true,
        "requestID": wire::request_id(),
        "data": items,
    });
    if paged {
        let pages = total.div_ceil(limit).max(1);
        answer["pagination"] = json!({
            "currentPage": page,
            "totalPages": pages,
            "totalItems": total,
            "itemsPerPage": limit,
            "hasNextPage": page < pages,
            "hasPreviousPage": page > 1,
        });
    }
    answer["message"] = json!(message);
    answer["timestamp"] = json!(world.version.now());
    answer.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(fleet: Option<Fleet>) -> World {
        World {
            version: ApiVersion::Vendor,
            now_ms: 1_800_000_000_000,
            cycle_ms: 60_000,
            fleet,
            replications: true,
        }
    }

    fn data(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn servers_list_the_unprotected_the_target_and_the_disconnected_agent() {
        let w = world(None);
        let v = data(&body(&w, "servers", Some("detail=true")));
        let items = v["data"].as_array().unwrap();
        let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        for want in ["web-01", "app-01", "db-dr-02", "legacy-erp-01", "test-vm-07"] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert!(v.get("pagination").is_none(), "unpaged without page or limit");
        let win = items.iter().find(|i| i["name"] == DISCONNECTED).unwrap();
        assert_eq!(win["status"]["connect"], "disconnect");
        assert_eq!(win["agent"]["version"], AGENT_VERSION);
        let plain = data(&body(&w, "servers", None));
        assert!(plain["data"][0]["agent"].get("version").is_none(), "only with detail");
        // Every backup names a server the servers listing has.
        let backups = data(&body(&w, "backups", None));
        for b in backups["data"].as_array().unwrap() {
            assert!(names.contains(&b["system"]["name"].as_str().unwrap()));
            assert!(!UNPROTECTED.contains(&b["system"]["name"].as_str().unwrap()));
        }
    }

    #[test]
    fn pages_as_documented_over_a_generated_fleet() {
        let w = world(Some(Fleet { servers: 1000, jobs: 5 }));
        let total = count(&w, "backups");
        let mut seen = 0;
        for page in 1.. {
            let v = data(&body(&w, "backups", Some(&format!("page={page}&limit=100"))));
            seen += v["data"].as_array().unwrap().len();
            assert_eq!(v["pagination"]["totalItems"], total);
            if v["pagination"]["hasNextPage"] != true {
                break;
            }
        }
        assert_eq!(seen, total);
        let v = data(&body(&w, "backups", Some("jobName=fleet-00007-job-03")));
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_fast_repository_fills_up_and_one_licence_runs_out() {
        let mut w = world(None);
        let used = |w: &World| repository(w, 1).unwrap().3;
        let before = used(&w);
        w.now_ms += w.cycle_ms * 10;
        assert!(used(&w) > before);
        let v = data(&body(&w, "licenses", None));
        let l = &v["data"][1];
        assert_eq!(l["copies"]["used"], l["copies"]["total"]);
        assert_eq!(l["dates"]["daysRemaining"], 20);
    }
}
