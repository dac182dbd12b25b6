//! ZDM's inventory listings as series: `GET /servers` (coverage and agents),
//! `GET /zdms/repositories` (capacity) and `GET /licenses` (expiry and copies).
//!
//! Choices where the vendor's pages are silent:
//! - `backup_server_protected` is exported for the servers whose `agent.mode` is not
//!   `Target` (a recovery target holds no backup by design); a server is protected when a
//!   `/backups` item names it by `system.name` or `system.id`.
//! - `backup_server_agent_connected`: `status.connect` `connect` is 1, `disconnect` 0;
//!   another word is a parse error and no series. The agent version (`agent.version`) is
//!   sent only with `detail=true`, which discovery asks for.
//! - Repository sizes: `*.raw` (bytes) when it is a number, else `*.formatted` (`"1.0 TB"`).
//! - A licence's label is its `name` (its documented identity; the answer has no id), cut
//!   to [`MAX_LICENSE_LABEL`] characters. The `key` is read only to make sure it never
//!   becomes a label: a name that holds the key, or looks like a key itself
//!   (`XXXX-XXXX-XXXX` groups), is replaced by `license-<position>` and counted as a parse
//!   error. Names repeated in one listing get ` (2)`, ` (3)`, ... so no series repeats.
//! - `dates.expires` (`2026-01-01`) is the start of that day in the upstream's `timezone`.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;

use crate::inventory::InventorySeries;
use crate::metrics::InventoryFamily;
use crate::sources::source::FieldParser;
use crate::text::truncate;

/// The longest licence label kept.
pub(super) const MAX_LICENSE_LABEL: usize = 128;

/// The inventory listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Servers,
    Repositories,
    Licenses,
}

impl Part {
    pub(super) const ALL: [Part; 3] = [Part::Servers, Part::Repositories, Part::Licenses];

    pub(super) fn path(self) -> &'static str {
        match self {
            Part::Servers => "servers",
            Part::Repositories => "zdms/repositories",
            Part::Licenses => "licenses",
        }
    }

    fn index(self) -> usize {
        match self {
            Part::Servers => 0,
            Part::Repositories => 1,
            Part::Licenses => 2,
        }
    }
}

/// What each inventory listing said last.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    parts: [Vec<InventorySeries>; 3],
}

impl Kept {
    pub(super) fn set(&mut self, part: Part, series: Vec<InventorySeries>) {
        if let Some(slot) = self.parts.get_mut(part.index()) {
            *slot = series;
        }
    }

    pub(super) fn get(&self, part: Part) -> Vec<InventorySeries> {
        self.parts.get(part.index()).cloned().unwrap_or_default()
    }
}

/// The label values one listing used so far (no series twice).
#[derive(Debug, Default)]
pub(super) struct Names {
    used: HashSet<String>,
    position: usize,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Agent {
    mode: Option<Value>,
    version: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Connection {
    connect: Option<Value>,
}

/// An item of `GET /servers`.
#[derive(Debug, Deserialize)]
pub(super) struct ServerItem {
    id: Option<Value>,
    name: Option<Value>,
    agent: Option<Agent>,
    status: Option<Connection>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Capacity {
    raw: Option<Value>,
    formatted: Option<Value>,
}

/// An item of `GET /zdms/repositories`.
#[derive(Debug, Deserialize)]
pub(super) struct RepositoryItem {
    id: Option<Value>,
    center: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
    size: Option<Capacity>,
    used: Option<Capacity>,
    free: Option<Capacity>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Copies {
    total: Option<Value>,
    used: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Dates {
    expires: Option<Value>,
}

/// An item of `GET /licenses`. `key` is read only to keep it out of every label.
#[derive(Deserialize)]
pub(super) struct LicenseItem {
    name: Option<Value>,
    key: Option<Value>,
    copies: Option<Copies>,
    dates: Option<Dates>,
}

fn text(fields: &FieldParser, field: &str, value: Option<&Value>) -> Option<String> {
    fields
        .text(field, value)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t != "-")
}

/// The series of one page of `/servers`; returns the page's keys (server names).
pub(super) fn servers(
    fields: &FieldParser,
    items: Vec<ServerItem>,
    protected: &HashSet<String>,
    export_protected: bool,
    names: &mut Names,
    out: &mut Vec<InventorySeries>,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let id = text(fields, "server.id", item.id.as_ref());
        let Some(server) = text(fields, "system.name", item.name.as_ref()).or(id.clone()) else {
            fields.missing("system.name");
            continue;
        };
        keys.push(server.clone());
        if !names.used.insert(server.clone()) {
            continue;
        }
        let agent = item.agent.unwrap_or_default();
        let target_mode = text(fields, "agent.mode", agent.mode.as_ref())
            .is_some_and(|m| m.eq_ignore_ascii_case("target"));
        if export_protected && !target_mode {
            let has_job = protected.contains(&server)
                || id.as_ref().is_some_and(|id| protected.contains(id));
            out.push(InventorySeries::new(
                InventoryFamily::ServerProtected,
                vec![("server", server.clone())],
                f64::from(u8::from(has_job)),
            ));
        }
        let connect = item.status.and_then(|s| s.connect);
        match text(fields, "status.connect", connect.as_ref()).as_deref() {
            Some(word) if word.eq_ignore_ascii_case("connect") => out.push(InventorySeries::new(
                InventoryFamily::ServerAgentConnected,
                vec![("server", server.clone())],
                1.0,
            )),
            Some(word) if word.eq_ignore_ascii_case("disconnect") => {
                out.push(InventorySeries::new(
                    InventoryFamily::ServerAgentConnected,
                    vec![("server", server.clone())],
                    0.0,
                ))
            }
            Some(other) => fields.invalid("status.connect", &format!("unknown word {other:?}")),
            None => {}
        }
        if let Some(version) = text(fields, "agent.version", agent.version.as_ref()) {
            out.push(InventorySeries::new(
                InventoryFamily::ServerAgentInfo,
                vec![("server", server), ("version", version)],
                1.0,
            ));
        }
    }
    keys
}

fn capacity(fields: &FieldParser, field: &str, capacity: Option<&Capacity>) -> Option<f64> {
    let capacity = capacity?;
    match &capacity.raw {
        Some(raw @ Value::Number(_)) => fields.size(field, Some(raw)),
        _ => fields.size(field, capacity.formatted.as_ref()),
    }
}

/// The series of one page of `/zdms/repositories`; returns the page's keys (ids).
pub(super) fn repositories(
    fields: &FieldParser,
    items: Vec<RepositoryItem>,
    names: &mut Names,
    out: &mut Vec<InventorySeries>,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        let Some(id) = text(fields, "repository.id", item.id.as_ref()) else {
            fields.missing("repository.id");
            continue;
        };
        let center = text(fields, "repository.center", item.center.as_ref()).unwrap_or_default();
        let kind = text(fields, "repository.type", item.kind.as_ref()).unwrap_or_default();
        let key = format!("{center}\u{0}{id}");
        keys.push(key.clone());
        if !names.used.insert(key) {
            continue;
        }
        let labels = vec![("center", center), ("repository", id), ("type", kind)];
        for (family, field, value) in [
            (InventoryFamily::RepositorySize, "size", &item.size),
            (InventoryFamily::RepositoryUsed, "size", &item.used),
            (InventoryFamily::RepositoryFree, "size", &item.free),
        ] {
            if let Some(bytes) = capacity(fields, field, value.as_ref()) {
                out.push(InventorySeries::new(family, labels.clone(), bytes));
            }
        }
    }
    keys
}

/// Whether `text` looks like a licence key: three or more groups of at least four letters
/// or digits joined by `-` (`XXXX-XXXX-XXXX-XXXX`).
pub(super) fn looks_like_key(text: &str) -> bool {
    let groups: Vec<&str> = text.trim().split('-').collect();
    groups.len() >= 3
        && groups
            .iter()
            .all(|g| g.len() >= 4 && g.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The `license` label of the licence at `position` (1-based) named `name` with `key`:
/// the name, unless it is missing, holds the key or looks like one; never longer than
/// [`MAX_LICENSE_LABEL`] characters. `Err` carries the stand-in and says why the name was
/// not used.
pub(super) fn license_label(
    name: Option<&str>,
    key: Option<&str>,
    position: usize,
) -> Result<String, (String, &'static str)> {
    let stand_in = format!("license-{position}");
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty() && *n != "-") else {
        return Err((stand_in, "missing"));
    };
    let key = key.map(str::trim).filter(|k| k.len() >= 4);
    if key.is_some_and(|k| name.contains(k)) || looks_like_key(name) {
        return Err((stand_in, "looks like a licence key"));
    }
    let label = truncate(name, MAX_LICENSE_LABEL - 1);
    if key.is_some_and(|k| label.contains(k)) || looks_like_key(&label) {
        return Err((stand_in, "looks like a licence key"));
    }
    Ok(label)
}

/// The series of one page of `/licenses`; returns the page's keys (labels).
pub(super) fn licenses(
    fields: &FieldParser,
    items: Vec<LicenseItem>,
    names: &mut Names,
    out: &mut Vec<InventorySeries>,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(items.len());
    for item in items {
        names.position += 1;
        let key = match &item.key {
            Some(Value::String(k)) => Some(k.as_str()),
            _ => None,
        };
        let name = match &item.name {
            Some(Value::String(n)) => Some(n.as_str()),
            _ => None,
        };
        let base = match license_label(name, key, names.position) {
            Ok(label) => label,
            Err((stand_in, why)) => {
                // The field name only: the value may be the key.
                fields.invalid("license.name", &why);
                stand_in
            }
        };
        let mut label = base.clone();
        let mut n = 1;
        while names.used.contains(&label) {
            n += 1;
            label = format!("{base} ({n})");
        }
        names.used.insert(label.clone());
        keys.push(label.clone());
        let dates = item.dates.unwrap_or_default();
        if let Some(expiry) = fields.date("end", dates.expires.as_ref()) {
            out.push(InventorySeries::new(
                InventoryFamily::LicenseExpiry,
                vec![("license", label.clone())],
                expiry,
            ));
        }
        let copies = item.copies.unwrap_or_default();
        for (state, value) in [("total", &copies.total), ("used", &copies.used)] {
            if let Some(count) = fields.count("summary.copies", value.as_ref()) {
                out.push(InventorySeries::new(
                    InventoryFamily::LicenseCopies,
                    vec![("license", label.clone()), ("state", state.to_owned())],
                    count as f64,
                ));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn license_labels() {
        assert_eq!(
            license_label(Some("Enterprise License"), Some("XXXX-XXXX-XXXX-XXXX"), 1),
            Ok("Enterprise License".to_owned())
        );
        for (name, key) in [
            (Some("ABCD-1234-EFGH-5678"), None),
            (Some("lic ABCD-1234-EFGH"), Some("ABCD-1234-EFGH")),
            (Some("K3Y9"), Some("K3Y9")),
            (None, Some("ABCD-1234-EFGH")),
            (Some(" - "), None),
        ] {
            let got = license_label(name, key, 7);
            assert!(matches!(&got, Err((s, _)) if s == "license-7"), "{name:?}: {got:?}");
        }
        let long = "é".repeat(500);
        let got = license_label(Some(&long), None, 1).unwrap();
        assert!(got.chars().count() <= MAX_LICENSE_LABEL);
        assert!(!looks_like_key("Enterprise License"));
        assert!(!looks_like_key("zdm-backup-2025"), "short groups are words");
        assert!(looks_like_key("AB12-CD34-EF56"));
    }

    proptest! {
        /// Whatever the answer holds, the label never carries the key nor anything that
        /// looks like one, and stays bounded.
        #[test]
        fn a_license_label_never_carries_the_key(
            name in proptest::option::of("\\PC{0,300}"),
            key in proptest::option::of("[A-Z0-9]{4}(-[A-Z0-9]{4}){1,4}"),
            position in 1usize..10_000,
        ) {
            let label = match license_label(name.as_deref(), key.as_deref(), position) {
                Ok(label) | Err((label, _)) => label,
            };
            prop_assert!(label.chars().count() <= MAX_LICENSE_LABEL);
            prop_assert!(!looks_like_key(&label));
            if let Some(key) = key {
                prop_assert!(!label.contains(key.as_str()));
            }
        }

        #[test]
        fn a_name_with_the_key_inside_is_never_used(
            before in "\\PC{0,20}", after in "\\PC{0,20}",
            key in "[A-Z0-9]{4}(-[A-Z0-9]{4}){2,4}",
        ) {
            let name = format!("{before}{key}{after}");
            let got = license_label(Some(&name), Some(&key), 3);
            prop_assert_eq!(got.map_err(|(s, _)| s), Err("license-3".to_owned()));
        }
    }
}
