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

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::Serialize;
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
/// recovery target and the unprotected ones (built once: every page of a generated fleet
/// reads them for each item).
static FIXED_SERVERS: LazyLock<Vec<&'static str>> = LazyLock::new(fixed_servers);
/// [`fixed_backups`], built once.
static FIXED_BACKUPS: LazyLock<Vec<(&'static str, JobDef<'static>)>> = LazyLock::new(fixed_backups);

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

/// `status` of a job item: its phase and times.
#[derive(Serialize)]
struct StatusBlock {
    current: &'static str,
    time: Times,
}

#[derive(Serialize)]
struct Times {
    start: String,
    elapsed: String,
    end: String,
}

fn status_block(world: &World, def: &JobDef<'_>) -> StatusBlock {
    let state = scenario::job_state(def, world.now_ms, world.cycle_ms);
    StatusBlock {
        current: state.phase.status(world.version),
        time: Times {
            start: time(world, state.start),
            elapsed: state.elapsed.map_or_else(|| "-".to_string(), wire::hms),
            end: time(world, state.end),
        },
    }
}

/// A server's `id`: its position in the servers listing, from 1.
fn server_id(name: &str) -> String {
    let fixed = &*FIXED_SERVERS;
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

/// The items of the two listings a generated fleet makes long (`/servers`, `/backups`) are
/// written from these structs rather than through `json!`'s maps, so a page of a
/// 50,000-job fleet costs the simulator little beside the exporter it is measured against.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerItem<'a> {
    id: String,
    name: &'a str,
    agent: Agent,
    os: Os,
    ip: Ip,
    license: Id,
    status: Connect,
    last_updated: &'a str,
}

#[derive(Serialize)]
struct Agent {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
}

#[derive(Serialize)]
struct Os {
    version: &'static str,
}

#[derive(Serialize)]
struct Ip {
    public: &'static str,
    private: [&'static str; 1],
}

#[derive(Serialize)]
struct Id {
    id: &'static str,
}

#[derive(Serialize)]
struct Connect {
    connect: &'static str,
}

fn server_item<'a>(now: &'a str, name: &'a str, detail: bool) -> ServerItem<'a> {
    let windows = name.starts_with("win");
    ServerItem {
        id: server_id(name),
        name,
        agent: Agent {
            mode: if name == TARGET_SERVER { "Target" } else { "Source" },
            version: detail.then_some(AGENT_VERSION),
        },
        os: Os {
            version: if windows { "Windows Server 2019" } else { "Ubuntu 22.04 LTS" },
        },
        ip: Ip {
            public: "192.168.1.100",
            private: ["10.0.0.1"],
        },
        license: Id { id: "1" },
        status: Connect {
            connect: if name == DISCONNECTED { "disconnect" } else { "connect" },
        },
        last_updated: now,
    }
}

#[derive(Serialize)]
struct BackupItem<'a> {
    system: BackupSystem<'a>,
    job: BackupJob<'a>,
    repository: Repository,
}

#[derive(Serialize)]
struct BackupSystem<'a> {
    id: String,
    name: &'a str,
    os: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupJob<'a> {
    info: BackupInfo<'a>,
    last_updated: &'a str,
}

#[derive(Serialize)]
struct BackupInfo<'a> {
    id: String,
    name: &'a str,
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<&'a str>,
    schedule: Schedule,
    status: StatusBlock,
}

#[derive(Serialize)]
struct Schedule {
    basic: Basic,
    advanced: &'static str,
}

#[derive(Serialize)]
struct Basic {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct Repository {
    id: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    path: String,
}

fn backup_item<'a>(
    world: &World,
    now: &'a str,
    server: &'a str,
    def: &JobDef<'a>,
    id: usize,
) -> BackupItem<'a> {
    let (partition, drive) = match def.volume {
        Volume::Partition(p) => (Some(p), None),
        Volume::Drive(d) => (None, Some(d)),
    };
    BackupItem {
        system: BackupSystem {
            id: server_id(server),
            name: server,
            os: if drive.is_some() { "Windows" } else { "Linux" },
        },
        job: BackupJob {
            info: BackupInfo {
                id: id.to_string(),
                name: def.name,
                mode: "full",
                partition,
                drive,
                schedule: Schedule {
                    basic: Basic {
                        id: "1",
                        kind: "daily",
                        description: "Every day at 02:00",
                    },
                    advanced: "-",
                },
                status: status_block(world, def),
            },
            last_updated: now,
        },
        repository: Repository {
            id: "1",
            kind: "nfs",
            path: format!("/backup/{server}"),
        },
    }
}

fn recovery_item(world: &World, now: &str, index: usize) -> Option<Value> {
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
                "lastUpdated": now,
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
                "lastUpdated": now,
            },
            "detail": details,
        }
    }))
}

fn replication_item(world: &World, now: &str, index: usize) -> Option<Value> {
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
                "lastUpdated": now,
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

fn repository_item(world: &World, now: &str, i: usize) -> Option<Value> {
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
        "lastUpdated": now,
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

/// How many items the listing has.
fn count(world: &World, listing: &str) -> usize {
    let fleet = world.fleet.map_or((0, 0), |f| (f.servers, f.jobs));
    match listing {
        "servers" => FIXED_SERVERS.len() + fleet.0,
        "backups" => FIXED_BACKUPS.len() + fleet.0 * fleet.1,
        "recoveries" => RECOVERIES.len(),
        "replications" if world.replications => REPLICATIONS.len(),
        "repositories" => 3,
        "licenses" => LICENSES.len(),
        _ => 0,
    }
}

/// Server `i` of the servers listing, by name.
fn server_at(i: usize) -> Cow<'static, str> {
    let fixed = &*FIXED_SERVERS;
    match fixed.get(i) {
        Some(name) => Cow::Borrowed(*name),
        None => Cow::Owned(Fleet::server_name(i - fixed.len() + 1)),
    }
}

/// Backup job `i` of the backups listing.
enum BackupAt {
    /// A fixed job: its server and definition.
    Fixed(&'static str, JobDef<'static>),
    /// A generated fleet job: its server's and its own position (from 1) and names.
    Fleet {
        server: usize,
        job: usize,
        server_name: String,
        job_name: String,
    },
}

fn backup_at(world: &World, i: usize) -> Option<BackupAt> {
    if let Some((server, def)) = FIXED_BACKUPS.get(i) {
        return Some(BackupAt::Fixed(server, *def));
    }
    let fleet = world.fleet?;
    let n = i - FIXED_BACKUPS.len();
    let (server, job) = (n / fleet.jobs.max(1) + 1, n % fleet.jobs.max(1) + 1);
    Some(BackupAt::Fleet {
        server,
        job,
        server_name: Fleet::server_name(server),
        job_name: Fleet::job_name(server, job),
    })
}

/// Item `i` of a short listing (not servers or backups) as a value.
fn short_item(world: &World, now: &str, listing: &str, i: usize) -> Option<Value> {
    match listing {
        "recoveries" => recovery_item(world, now, i),
        "replications" => replication_item(world, now, i),
        "repositories" => repository_item(world, now, i),
        "licenses" => license_item(world, i),
        _ => None,
    }
}

/// Where a page's items are written, and what the query filters them by.
struct Writer<'q> {
    world: World,
    now: String,
    listing: &'q str,
    detail: bool,
    /// `jobName` on the job listings.
    job_name: Option<&'q str>,
    /// `center` on the repositories.
    center: Option<&'q str>,
}

impl Writer<'_> {
    /// Writes item `i` when it passes the query's filters (`json` is `None` for only the
    /// check); whether it passed and was written.
    fn item(&self, i: usize, json: Option<&mut Vec<u8>>) -> bool {
        let world = &self.world;
        let written = match self.listing {
            "servers" => {
                let name = server_at(i);
                let item = server_item(&self.now, &name, self.detail);
                json.map(|out| serde_json::to_writer(out, &item))
            }
            "backups" => {
                let Some(at) = backup_at(world, i) else {
                    return false;
                };
                let (server, def) = match &at {
                    BackupAt::Fixed(server, def) => (*server, *def),
                    BackupAt::Fleet { server, job, server_name, job_name } => {
                        (server_name.as_str(), Fleet::job_def(job_name, *server, *job))
                    }
                };
                if self.job_name.is_some_and(|want| want != def.name) {
                    return false;
                }
                let item = || backup_item(world, &self.now, server, &def, i + 1);
                json.map(|out| serde_json::to_writer(out, &item()))
            }
            listing => {
                let Some(value) = short_item(world, &self.now, listing, i) else {
                    return false;
                };
                if !passes(&value, listing, self.job_name, self.center) {
                    return false;
                }
                json.map(|out| serde_json::to_writer(out, &value))
            }
        };
        // An item that could not be written (none of these can fail) is left out.
        written.is_none_or(|result| result.is_ok())
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

/// The answer's `pagination` block.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    current_page: usize,
    total_pages: usize,
    total_items: usize,
    items_per_page: usize,
    has_next_page: bool,
    has_previous_page: bool,
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
    let writer = Writer {
        world: *world,
        now: world.version.now(),
        listing,
        detail,
        job_name: job_name.as_deref(),
        center: center.as_deref(),
    };
    let filtered = job_name.is_some() || center.is_some();
    let all = count(world, listing);
    // Without a filter the page's positions are the items'; with one, the page is a slice
    // of the items that pass, so every item is checked (the filtered listings the exporter
    // reads are one job's).
    let total = if filtered { (0..all).filter(|&i| writer.item(i, None)).count() } else { all };
    let from = if paged { page.saturating_sub(1).saturating_mul(limit).min(total) } else { 0 };
    let to = if paged { from.saturating_add(limit).min(total) } else { total };
    let mut data = Vec::with_capacity((to - from).saturating_mul(512) + 2);
    data.push(b'[');
    // `place` counts the items that passed before `i`; unfiltered, it is `i`.
    let first = if filtered { 0 } else { from };
    let mut place = first;
    for i in first..all {
        if place >= to {
            break;
        }
        let in_page = place >= from;
        let start = data.len();
        if in_page && place > from {
            data.push(b',');
        }
        let passed = writer.item(i, in_page.then_some(&mut data));
        if passed {
            place += 1;
        } else {
            data.truncate(start);
        }
    }
    data.push(b']');
    let message = match listing {
        "servers" => "Server information list",
        "backups" => "Backup job list",
        "recoveries" => "Recovery job list",
        "replications" => "Replication list",
        "repositories" => "Repository list retrieved",
        _ => "License information list",
    };
    let text = |v: &str| Value::from(v).to_string();
    let mut out = Vec::with_capacity(data.len() + 400);
    out.extend_from_slice(b"{\"success\":true,\"requestID\":");
    out.extend_from_slice(text(&wire::request_id()).as_bytes());
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(&data);
    if paged {
        let pages = total.div_ceil(limit).max(1);
        let pagination = Pagination {
            current_page: page,
            total_pages: pages,
            total_items: total,
            items_per_page: limit,
            has_next_page: page < pages,
            has_previous_page: page > 1,
        };
        out.extend_from_slice(b",\"pagination\":");
        out.extend_from_slice(json!(pagination).to_string().as_bytes());
    }
    out.extend_from_slice(b",\"message\":");
    out.extend_from_slice(text(message).as_bytes());
    out.extend_from_slice(b",\"timestamp\":");
    out.extend_from_slice(text(&writer.now).as_bytes());
    out.push(b'}');
    out
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

    /// Every key path of `value`'s objects (arrays by their items).
    fn paths(value: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    let path = format!("{prefix}/{key}");
                    out.insert(path.clone());
                    paths(item, &path, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| paths(item, prefix, out)),
            _ => {}
        }
    }

    /// The fields of a generated fleet's items (written from structs, not `json!`) are the
    /// vendor's documented ones (`tests/data/vendor/zdm/1.0.3/`), none invented.
    #[test]
    fn fleet_items_carry_only_the_vendor_documents_fields() {
        const VENDOR: &str =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/vendor/zdm/1.0.3/");
        let vendor = |file: &str| {
            let text = std::fs::read_to_string(format!("{VENDOR}{file}")).unwrap();
            let mut out = std::collections::BTreeSet::new();
            paths(&serde_json::from_str(&text).unwrap(), "", &mut out);
            out
        };
        let w = world(Some(Fleet { servers: 30, jobs: 3 }));
        let backups = ["list-backups-linux.json", "list-backups-windows.json"];
        let cases = [
            ("servers", "detail=true&page=2&limit=5", &["list-servers-detail.json"][..]),
            ("backups", "page=4&limit=7", &backups[..]),
            ("backups", "page=1&limit=100", &backups[..]),
        ];
        for (listing, query, files) in cases {
            let documented: std::collections::BTreeSet<String> =
                files.iter().flat_map(|f| vendor(f)).collect();
            let answer = data(&body(&w, listing, Some(query)));
            let mut ours = std::collections::BTreeSet::new();
            paths(&answer, "", &mut ours);
            ours.retain(|p| !p.starts_with("/pagination"));
            let invented: Vec<&String> = ours.difference(&documented).collect();
            assert!(invented.is_empty(), "{listing}?{query}: {invented:?}");
            assert!(!answer["data"].as_array().unwrap().is_empty());
        }
        // A page of the generated fleet is the positions it names, each once.
        let page = data(&body(&w, "backups", Some("page=4&limit=7")));
        let ids: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["job"]["info"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["22", "23", "24", "25", "26", "27", "28"]);
        // A filter names its one job, paged or not.
        for query in ["jobName=fleet-00030-job-03", "jobName=fleet-00030-job-03&page=1&limit=5"] {
            let v = data(&body(&w, "backups", Some(query)));
            let items = v["data"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{query}");
            assert_eq!(items[0]["system"]["name"], "fleet-00030");
        }
        let none = data(&body(&w, "backups", Some("jobName=nope&page=1&limit=5")));
        assert_eq!(none["data"], json!([]));
        assert_eq!(none["pagination"]["totalItems"], 0);
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
