//! Inventory series: what an upstream's listings say besides its jobs (servers with and
//! without a backup job, agents, repositories, licences) and how many targets discovery
//! found. A source returns them as [`InventorySeries`]; they are rendered once per listing
//! into one chunk per family and upstream, and `/metrics` only copies the chunks (a scrape
//! formats nothing). Names no system: the `system` label is the upstream's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::metrics::{escape_label_value, write_value, Format, InventoryFamily};
use crate::text::truncate;

/// Label values longer than this are cut (as job labels are).
const MAX_LABEL_CHARS: usize = 1024;

/// Names, repositories and licences the landing page keeps per upstream and list; the rest
/// are counted (a listing of 100,000 servers does not make a page of 100,000 names).
pub const MAX_SUMMARY_ITEMS: usize = 50;

/// One inventory sample; `system` and `upstream` are added when it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct InventorySeries {
    pub family: InventoryFamily,
    /// The labels after `system` and `upstream`, in the order written.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl InventorySeries {
    pub fn new(family: InventoryFamily, labels: Vec<(&'static str, String)>, value: f64) -> Self {
        InventorySeries {
            family,
            labels,
            value,
        }
    }
}

/// What one upstream's chunks are, per family, for the two parts that are set apart: the
/// inventory proper (exported by the one shard that owns the upstream's listing) and the
/// discovered target counts (every shard its own).
#[derive(Debug, Default)]
struct Chunks {
    inventory: BTreeMap<InventoryFamily, String>,
    targets: String,
    /// What the landing page shows of the upstream.
    summary: Arc<Summary>,
}

/// Whether an upstream's inventory is here to show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Listing {
    /// It discovers, and this replica exports its inventory, but no listing finished yet.
    #[default]
    Pending,
    /// It discovers, and another shard's replica exports its inventory.
    Elsewhere,
    /// Its last successful listing is summed up.
    Listed,
}

/// Some names of a list, at most [`MAX_SUMMARY_ITEMS`], and how many there are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounded<T> {
    pub shown: Vec<T>,
    pub total: usize,
}

impl<T> Bounded<T> {
    fn push(&mut self, item: T) {
        self.total += 1;
        if self.shown.len() < MAX_SUMMARY_ITEMS {
            self.shown.push(item);
        }
    }
}

/// A backup repository as its listing gave it (bytes; `None` when the listing left it out).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repository {
    pub center: String,
    pub name: String,
    pub kind: String,
    pub size: Option<f64>,
    pub used: Option<f64>,
    pub free: Option<f64>,
}

impl Repository {
    /// Free bytes over size, when both are known and the size is positive.
    pub fn free_ratio(&self) -> Option<f64> {
        match (self.free, self.size) {
            (Some(free), Some(size)) if size > 0.0 => Some((free / size).clamp(0.0, 1.0)),
            _ => None,
        }
    }
}

/// A licence as its listing gave it (never its key: the name is the exported label).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Licence {
    pub name: String,
    /// When it expires (Unix seconds).
    pub expiry: Option<f64>,
    pub total: Option<f64>,
    pub used: Option<f64>,
}

/// What the landing page shows of one discovering upstream: the servers without a backup
/// job, the disconnected agents, repositories and licences of its last listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub system: String,
    pub upstream: String,
    pub listing: Listing,
    /// Servers the listing says whether they are protected.
    pub servers: usize,
    pub unprotected: Bounded<String>,
    /// Agents the listing gives a connection state.
    pub agents: usize,
    pub disconnected: Bounded<String>,
    /// Fullest first (least free).
    pub repositories: Bounded<Repository>,
    /// Soonest expiry first.
    pub licences: Bounded<Licence>,
}

fn label<'a>(series: &'a InventorySeries, name: &str) -> &'a str {
    series
        .labels
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, v)| v.as_str())
}

impl Summary {
    /// The summary of one listing's `series`.
    fn of(system: &str, upstream: &str, series: &[InventorySeries]) -> Summary {
        let mut summary = Summary {
            system: system.to_owned(),
            upstream: upstream.to_owned(),
            listing: Listing::Listed,
            ..Summary::default()
        };
        let mut repositories: BTreeMap<(&str, &str), Repository> = BTreeMap::new();
        let mut licences: BTreeMap<&str, Licence> = BTreeMap::new();
        for s in series {
            let cut = |name: &str| truncate(label(s, name), MAX_LABEL_CHARS);
            match s.family {
                InventoryFamily::ServerProtected => {
                    summary.servers += 1;
                    if s.value == 0.0 {
                        summary.unprotected.push(cut("server"));
                    }
                }
                InventoryFamily::ServerAgentConnected => {
                    summary.agents += 1;
                    if s.value == 0.0 {
                        summary.disconnected.push(cut("server"));
                    }
                }
                InventoryFamily::RepositorySize
                | InventoryFamily::RepositoryUsed
                | InventoryFamily::RepositoryFree => {
                    let r = repositories
                        .entry((label(s, "center"), label(s, "repository")))
                        .or_insert_with(|| Repository {
                            center: cut("center"),
                            name: cut("repository"),
                            kind: cut("type"),
                            ..Repository::default()
                        });
                    let value = Some(s.value).filter(|v| v.is_finite());
                    match s.family {
                        InventoryFamily::RepositorySize => r.size = value,
                        InventoryFamily::RepositoryUsed => r.used = value,
                        _ => r.free = value,
                    }
                }
                InventoryFamily::LicenseExpiry | InventoryFamily::LicenseCopies => {
                    let l = licences
                        .entry(label(s, "license"))
                        .or_insert_with(|| Licence {
                            name: cut("license"),
                            ..Licence::default()
                        });
                    let value = Some(s.value).filter(|v| v.is_finite());
                    match (s.family, label(s, "state")) {
                        (InventoryFamily::LicenseExpiry, _) => l.expiry = value,
                        (_, "total") => l.total = value,
                        (_, "used") => l.used = value,
                        _ => {}
                    }
                }
                InventoryFamily::DiscoveryTargets
                | InventoryFamily::ServerAgentInfo
                | InventoryFamily::ItemLastBackup
                | InventoryFamily::ItemLastSuccess
                | InventoryFamily::ItemLastBackupStatus
                | InventoryFamily::ItemHealth
                | InventoryFamily::ItemProtectionState => {}
            }
        }
        let mut repositories: Vec<Repository> = repositories.into_values().collect();
        repositories.sort_by(|a, b| {
            let ra = a.free_ratio().unwrap_or(f64::INFINITY);
            let rb = b.free_ratio().unwrap_or(f64::INFINITY);
            ra.total_cmp(&rb)
        });
        for r in repositories {
            summary.repositories.push(r);
        }
        let mut licences: Vec<Licence> = licences.into_values().collect();
        licences.sort_by(|a, b| {
            let ea = a.expiry.unwrap_or(f64::INFINITY);
            let eb = b.expiry.unwrap_or(f64::INFINITY);
            ea.total_cmp(&eb)
        });
        for l in licences {
            summary.licences.push(l);
        }
        summary
    }
}

/// The rendered inventory of every upstream; shared by the discovery loops (writers) and
/// the telemetry (reader at scrape time).
#[derive(Debug, Clone, Default)]
pub struct InventoryBook {
    upstreams: Arc<Mutex<BTreeMap<(String, String), Chunks>>>,
}

fn render_into(out: &mut String, system: &str, upstream: &str, series: &InventorySeries) {
    out.push_str(series.family.name());
    out.push_str("{system=\"");
    escape_label_value(out, system);
    out.push_str("\",upstream=\"");
    escape_label_value(out, upstream);
    out.push('"');
    for (name, value) in &series.labels {
        out.push(',');
        out.push_str(name);
        out.push_str("=\"");
        if value.chars().count() > MAX_LABEL_CHARS {
            escape_label_value(out, &truncate(value, MAX_LABEL_CHARS));
        } else {
            escape_label_value(out, value);
        }
        out.push('"');
    }
    out.push_str("} ");
    write_value(out, series.value);
    out.push('\n');
}

impl InventoryBook {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<(String, String), Chunks>) -> T) -> T {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut upstreams)
    }

    /// Replaces the upstream's inventory with `series` (never the target counts).
    pub fn set_inventory(&self, system: &str, upstream: &str, series: &[InventorySeries]) {
        let mut families: BTreeMap<InventoryFamily, String> = BTreeMap::new();
        for s in series {
            if s.family == InventoryFamily::DiscoveryTargets {
                continue;
            }
            render_into(families.entry(s.family).or_default(), system, upstream, s);
        }
        let summary = Arc::new(Summary::of(system, upstream, series));
        self.with(|book| {
            let chunks = book
                .entry((system.to_owned(), upstream.to_owned()))
                .or_default();
            chunks.inventory = families;
            chunks.summary = summary;
        });
    }

    /// Notes that the upstream discovers, before its first listing: `exports` says whether
    /// this replica exports its inventory (the shard that owns the upstream does).
    pub fn expect(&self, system: &str, upstream: &str, exports: bool) {
        let summary = Arc::new(Summary {
            system: system.to_owned(),
            upstream: upstream.to_owned(),
            listing: if exports {
                Listing::Pending
            } else {
                Listing::Elsewhere
            },
            ..Summary::default()
        });
        self.with(|book| {
            book.entry((system.to_owned(), upstream.to_owned()))
                .or_default()
                .summary = summary;
        });
    }

    /// What the landing page shows of every discovering upstream, in upstream order.
    pub fn summaries(&self) -> Vec<Arc<Summary>> {
        self.with(|book| {
            book.iter()
                .map(|((system, upstream), chunks)| {
                    if chunks.summary.upstream.is_empty() {
                        // Counted targets before `expect`: listed elsewhere or pending.
                        Arc::new(Summary {
                            system: system.clone(),
                            upstream: upstream.clone(),
                            ..Summary::default()
                        })
                    } else {
                        chunks.summary.clone()
                    }
                })
                .collect()
        })
    }

    /// Replaces the upstream's `backup_discovery_targets` with these counts per kind.
    pub fn set_targets(&self, system: &str, upstream: &str, counts: &[(&str, usize)]) {
        let mut out = String::new();
        for (kind, count) in counts {
            let series = InventorySeries::new(
                InventoryFamily::DiscoveryTargets,
                vec![("kind", (*kind).to_owned())],
                *count as f64,
            );
            render_into(&mut out, system, upstream, &series);
        }
        self.with(|book| {
            book.entry((system.to_owned(), upstream.to_owned()))
                .or_default()
                .targets = out;
        });
    }

    /// Forgets everything of the upstream (removed, or restarted by a reload).
    pub fn forget(&self, system: &str, upstream: &str) {
        self.with(|book| book.remove(&(system.to_owned(), upstream.to_owned())));
    }

    /// Every family that has samples: its header, then each upstream's chunk, in order.
    pub fn encode(&self, format: Format, out: &mut Vec<u8>) {
        self.with(|book| {
            for family in InventoryFamily::ALL {
                let chunks: Vec<&str> = book
                    .values()
                    .map(|c| match family {
                        InventoryFamily::DiscoveryTargets => c.targets.as_str(),
                        _ => c.inventory.get(&family).map_or("", String::as_str),
                    })
                    .filter(|c| !c.is_empty())
                    .collect();
                if chunks.is_empty() {
                    continue;
                }
                out.extend_from_slice(family.header(format).as_bytes());
                for chunk in chunks {
                    out.extend_from_slice(chunk.as_bytes());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(book: &InventoryBook) -> String {
        let mut out = Vec::new();
        book.encode(Format::Text, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_family_once_with_every_upstream_and_replaced_wholesale() {
        let book = InventoryBook::default();
        let protected = |server: &str, v: f64| {
            InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", server.to_owned())],
                v,
            )
        };
        book.set_inventory("zdm", "a", &[protected("s1", 1.0), protected("s\"2", 0.0)]);
        book.set_inventory("zdm", "b", &[protected("t", 1.0)]);
        book.set_targets("zdm", "a", &[("server", 3)]);
        let t = text(&book);
        assert_eq!(
            t.matches("# TYPE backup_server_protected gauge").count(),
            1,
            "{t}"
        );
        assert!(
            t.contains(
                "backup_server_protected{system=\"zdm\",upstream=\"a\",server=\"s\\\"2\"} 0\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("backup_server_protected{system=\"zdm\",upstream=\"b\",server=\"t\"} 1\n")
        );
        assert!(t.contains(
            "backup_discovery_targets{system=\"zdm\",upstream=\"a\",kind=\"server\"} 3\n"
        ));
        // A new listing replaces the old series; the target counts stay apart.
        book.set_inventory("zdm", "a", &[protected("s1", 1.0)]);
        let t = text(&book);
        assert!(!t.contains("s\\\"2"), "{t}");
        assert!(t.contains("backup_discovery_targets{"));
        book.forget("zdm", "a");
        book.forget("zdm", "b");
        assert_eq!(text(&book), "");
    }

    #[test]
    fn open_metrics_types_the_agent_info_as_info() {
        let book = InventoryBook::default();
        book.set_inventory(
            "zdm",
            "a",
            &[InventorySeries::new(
                InventoryFamily::ServerAgentInfo,
                vec![("server", "s".into()), ("version", "3.2.1".into())],
                1.0,
            )],
        );
        let mut out = Vec::new();
        book.encode(Format::OpenMetrics, &mut out);
        let t = String::from_utf8(out).unwrap();
        assert!(t.contains("# TYPE backup_server_agent info\n"), "{t}");
        assert!(t.contains("backup_server_agent_info{system=\"zdm\",upstream=\"a\",server=\"s\",version=\"3.2.1\"} 1\n"));
    }

    fn series(family: InventoryFamily, labels: &[(&'static str, &str)], v: f64) -> InventorySeries {
        InventorySeries::new(
            family,
            labels.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
            v,
        )
    }

    #[test]
    fn the_summary_bounds_the_names_and_puts_the_worst_first() {
        let mut all = Vec::new();
        for i in 0..MAX_SUMMARY_ITEMS + 10 {
            let name = format!("s{i}");
            all.push(series(
                InventoryFamily::ServerProtected,
                &[("server", &name)],
                0.0,
            ));
        }
        all.push(series(
            InventoryFamily::ServerProtected,
            &[("server", "ok")],
            1.0,
        ));
        all.push(series(
            InventoryFamily::ServerAgentConnected,
            &[("server", "a")],
            0.0,
        ));
        all.push(series(
            InventoryFamily::ServerAgentConnected,
            &[("server", "b")],
            1.0,
        ));
        for (repo, free) in [("roomy", 50.0), ("full", 5.0)] {
            let labels = [("center", "c"), ("repository", repo), ("type", "t")];
            all.push(series(InventoryFamily::RepositorySize, &labels, 100.0));
            all.push(series(
                InventoryFamily::RepositoryUsed,
                &labels,
                100.0 - free,
            ));
            all.push(series(InventoryFamily::RepositoryFree, &labels, free));
        }
        for (licence, expiry) in [("late", 2e9), ("soon", 1e9)] {
            all.push(series(
                InventoryFamily::LicenseExpiry,
                &[("license", licence)],
                expiry,
            ));
            for (state, n) in [("total", 10.0), ("used", 4.0)] {
                all.push(series(
                    InventoryFamily::LicenseCopies,
                    &[("license", licence), ("state", state)],
                    n,
                ));
            }
        }
        let book = InventoryBook::default();
        assert!(book.summaries().is_empty());
        book.set_inventory("zdm", "a", &all);
        let summaries = book.summaries();
        let [s] = summaries.as_slice() else {
            panic!("{summaries:?}")
        };
        assert_eq!(s.listing, Listing::Listed);
        assert_eq!(s.servers, MAX_SUMMARY_ITEMS + 11);
        assert_eq!(s.unprotected.total, MAX_SUMMARY_ITEMS + 10);
        assert_eq!(s.unprotected.shown.len(), MAX_SUMMARY_ITEMS);
        assert_eq!(
            (s.agents, s.disconnected.shown.as_slice()),
            (2, &["a".to_owned()][..])
        );
        let repos: Vec<(&str, Option<f64>)> = s
            .repositories
            .shown
            .iter()
            .map(|r| (r.name.as_str(), r.free_ratio()))
            .collect();
        assert_eq!(repos, [("full", Some(0.05)), ("roomy", Some(0.5))]);
        let licences: Vec<(&str, Option<f64>, Option<f64>)> = s
            .licences
            .shown
            .iter()
            .map(|l| (l.name.as_str(), l.used, l.total))
            .collect();
        assert_eq!(
            licences,
            [
                ("soon", Some(4.0), Some(10.0)),
                ("late", Some(4.0), Some(10.0))
            ]
        );
    }

    #[test]
    fn an_upstream_that_discovers_is_summed_up_before_its_first_listing() {
        let book = InventoryBook::default();
        book.expect("zdm", "mine", true);
        book.expect("zdm", "theirs", false);
        book.set_targets("zdm", "counted", &[("server", 1)]);
        let states: Vec<(String, Listing)> = book
            .summaries()
            .iter()
            .map(|s| (s.upstream.clone(), s.listing))
            .collect();
        assert_eq!(
            states,
            [
                ("counted".to_owned(), Listing::Pending),
                ("mine".to_owned(), Listing::Pending),
                ("theirs".to_owned(), Listing::Elsewhere),
            ]
        );
        book.set_inventory("zdm", "mine", &[]);
        assert_eq!(book.summaries()[1].listing, Listing::Listed);
        book.forget("zdm", "mine");
        assert_eq!(book.summaries().len(), 2);
    }

    #[test]
    fn long_label_values_are_cut() {
        let book = InventoryBook::default();
        let long = "x".repeat(5000);
        book.set_inventory(
            "zdm",
            "a",
            &[InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", long)],
                1.0,
            )],
        );
        assert!(text(&book).len() < 1500);
    }
}
