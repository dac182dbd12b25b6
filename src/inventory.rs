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
        self.with(|book| {
            book.entry((system.to_owned(), upstream.to_owned()))
                .or_default()
                .inventory = families;
        });
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
