//! The vendor's documented listing answers (`tests/data/vendor/zdm/<version>/list-*.json`,
//! verbatim, provenance in its README) replayed through discovery's decoding and mapping:
//! which targets each job listing names, which series each inventory listing gives, and
//! that the licence key never reaches a label. Every `list-*` file of every version is
//! replayed; a new one without an expectation fails.

use std::collections::{BTreeSet, HashSet};

use super::discovery::{backup_page, decode_list, name_or_id, BackupItem, Found, ItemJob};
use super::inventory::{self, LicenseItem, Names, RepositoryItem, ServerItem};
use super::vendor::{dir, read, VERSIONS};
use super::{map, SYSTEM};
use crate::inventory::{InventoryBook, InventorySeries};
use crate::metrics::{Format, InventoryFamily};
use crate::outcome::Outcome;
use crate::sources::source::FieldParser;
use crate::status::StatusMap;
use crate::telemetry::Telemetry;

fn fields(telemetry: &Telemetry) -> FieldParser {
    FieldParser::new(
        SYSTEM,
        std::sync::Arc::from("vendor"),
        chrono_tz::UTC,
        StatusMap::new(),
        telemetry.clone(),
    )
    .with_labels(map::label)
}

#[derive(serde::Deserialize)]
struct JobItem {
    job: Option<ItemJob>,
}

fn rendered(series: &[InventorySeries]) -> String {
    let book = InventoryBook::default();
    book.set_inventory("zdm", "vendor", series);
    let mut out = Vec::new();
    book.encode(Format::Text, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn one(series: &[InventorySeries], family: InventoryFamily) -> Vec<(Vec<String>, f64)> {
    series
        .iter()
        .filter(|s| s.family == family)
        .map(|s| (s.labels.iter().map(|(_, v)| v.clone()).collect(), s.value))
        .collect()
}

#[test]
fn every_documented_listing_answer_of_every_version() {
    let mut replayed = 0;
    for version in VERSIONS {
        let Ok(entries) = std::fs::read_dir(dir(version)) else {
            continue;
        };
        let mut files: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.starts_with("list-"))
            .collect();
        files.sort();
        if version == "0.2.0" {
            assert!(files.is_empty(), "0.2.0 had no listings");
        }
        for file in files {
            let at = format!("{version}/{file}");
            let body = read(version, &file);
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            replayed += 1;
            if file.ends_with("-401.json") || file.ends_with("-400.json") {
                let fault = decode_list::<serde_json::Value>(&body).err();
                assert_eq!(fault.map(|f| f.outcome), Some(Outcome::UpstreamError), "{at}");
                continue;
            }
            let paged = file.contains("-paged");
            let listing = file.trim_start_matches("list-").split(['-', '.']).next();
            match listing {
                Some("backups") => {
                    let (items, more) = decode_list::<BackupItem>(&body).unwrap();
                    assert_eq!(more, paged, "{at}");
                    let mut found = Found::default();
                    let mut servers = BTreeSet::new();
                    let keys = backup_page(&fields, items, &mut found, &mut servers, &mut Vec::new());
                    let (server, id, job) = if file.contains("windows") {
                        ("win-server-01", "2", "windows-backup")
                    } else {
                        ("server-01", "1", "daily-backup")
                    };
                    assert_eq!(servers.into_iter().collect::<Vec<_>>(), [server], "{at}");
                    assert_eq!(keys, [format!("{server}\u{0}{job}")], "{at}");
                    assert!(found.protected.contains(server) && found.protected.contains(id), "{at}");
                }
                Some(kind @ ("recoveries" | "replications")) => {
                    let (items, more) = decode_list::<JobItem>(&body).unwrap();
                    assert_eq!(more, paged, "{at}");
                    let names: Vec<String> = items
                        .iter()
                        .filter_map(|i| {
                            name_or_id(&fields, "info.name", i.job.as_ref().and_then(|j| j.info.as_ref()))
                        })
                        .collect();
                    let want = match (kind, file.as_str()) {
                        ("recoveries", f) if f.contains("windows") => "windows-recovery",
                        ("recoveries", _) => "daily-recovery",
                        (_, f) if f.contains("repository-unit") => "repo-replication-01",
                        (_, f) if f.contains("server-unit") => "server-replication-01",
                        (_, f) if f.contains("v1-image") => "image-replication-01",
                        _ => "backup-replication-01",
                    };
                    assert_eq!(names, [want], "{at}");
                }
                Some("servers") => {
                    let (items, more) = decode_list::<ServerItem>(&body).unwrap();
                    assert_eq!(more, paged, "{at}");
                    let mut series = Vec::new();
                    let protected: HashSet<String> = ["server-01".to_owned()].into();
                    let keys = inventory::servers(&fields, items, &protected, true, &mut Names::default(), &mut series);
                    assert_eq!(keys, ["server-01"], "{at}");
                    let s = |v: &str| vec![v.to_owned()];
                    assert_eq!(one(&series, InventoryFamily::ServerProtected), [(s("server-01"), 1.0)], "{at}");
                    assert_eq!(one(&series, InventoryFamily::ServerAgentConnected), [(s("server-01"), 1.0)], "{at}");
                    // The agent's version only comes with detail=true.
                    let info = one(&series, InventoryFamily::ServerAgentInfo);
                    if file.contains("-detail") {
                        assert_eq!(info, [(vec!["server-01".to_owned(), "3.2.1".to_owned()], 1.0)], "{at}");
                    } else {
                        assert!(info.is_empty(), "{at}");
                    }
                    // Unprotected when no backup names it.
                    let mut series = Vec::new();
                    let (items, _) = decode_list::<ServerItem>(&body).unwrap();
                    inventory::servers(&fields, items, &HashSet::new(), true, &mut Names::default(), &mut series);
                    assert_eq!(one(&series, InventoryFamily::ServerProtected), [(s("server-01"), 0.0)], "{at}");
                }
                Some("repositories") => {
                    let (items, more) = decode_list::<RepositoryItem>(&body).unwrap();
                    assert_eq!(more, paged, "{at}");
                    let mut series = Vec::new();
                    inventory::repositories(&fields, items, &mut Names::default(), &mut series);
                    let labels = vec!["Main-Center".to_owned(), "1".to_owned(), "NFS".to_owned()];
                    assert_eq!(one(&series, InventoryFamily::RepositorySize), [(labels.clone(), 1_099_511_627_776.0)], "{at}");
                    assert_eq!(one(&series, InventoryFamily::RepositoryUsed), [(labels.clone(), 549_755_813_888.0)], "{at}");
                    assert_eq!(one(&series, InventoryFamily::RepositoryFree), [(labels, 549_755_813_888.0)], "{at}");
                }
                Some("licenses") => {
                    let (items, more) = decode_list::<LicenseItem>(&body).unwrap();
                    assert_eq!(more, paged, "{at}");
                    let mut series = Vec::new();
                    inventory::licenses(&fields, items, &mut Names::default(), &mut series);
                    let l = vec!["Enterprise License".to_owned()];
                    // 2026-01-01 00:00 in the upstream's zone (UTC here).
                    assert_eq!(one(&series, InventoryFamily::LicenseExpiry), [(l.clone(), 1_767_225_600.0)], "{at}");
                    let with = |state: &str| vec!["Enterprise License".to_owned(), state.to_owned()];
                    assert_eq!(
                        one(&series, InventoryFamily::LicenseCopies),
                        [(with("total"), 100.0), (with("used"), 25.0)],
                        "{at}"
                    );
                    let text = rendered(&series);
                    assert!(!text.contains("XXXX"), "{at}: the key leaked: {text}");
                }
                other => panic!("{at}: no expectation for listing {other:?}"),
            }
            assert_eq!(telemetry.parse_error_count("zdm", "vendor", "other"), 0, "{at}");
        }
    }
    assert_eq!(replayed, 238, "29 listing answers in 1.0.3 and 1.1.0, 36 (with replications) in 1.2.0 .. 2.0.1");
}

/// The documented licence with its key copied into the name: the name is not used, the key
/// is in no label, and the stand-in is counted as a parse error.
#[test]
fn a_licence_whose_name_holds_its_key_is_exported_under_a_stand_in() {
    let body = read("2.0.0", "list-licenses.json");
    let text = String::from_utf8(body).unwrap().replace(
        "\"name\": \"Enterprise License\"",
        "\"name\": \"Enterprise XXXX-XXXX-XXXX-XXXX\"",
    );
    let telemetry = Telemetry::new();
    let fields = fields(&telemetry);
    let (items, _) = decode_list::<LicenseItem>(text.as_bytes()).unwrap();
    let mut series = Vec::new();
    inventory::licenses(&fields, items, &mut Names::default(), &mut series);
    let out = rendered(&series);
    assert!(!out.contains("XXXX"), "{out}");
    assert!(out.contains("license=\"license-1\""), "{out}");
    assert_eq!(telemetry.parse_error_count("zdm", "vendor", "other"), 1);
}
