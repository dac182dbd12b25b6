//! The query of a history request and the filtering, sorting and paging it asks for:
//! restore histories (`page`, `size`, `sort`, `restore_state`, `start_time`, `end_time`)
//! and backup histories (`page`, `size`, `sort`, `backup_job_state`, `backup_start_time`,
//! `backup_end_time`), as the SDK's OpenAPI document lists them.

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::wire::Page;
use crate::http::form_pairs;

/// Largest `size` accepted.
const MAX_SIZE: usize = 10_000;

/// The two histories of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `restore-histories` (`BackupRestoreHistoryResponse` entries).
    Restores,
    /// `backup-histories` (`BackupHistoryResponse` entries).
    Backups,
}

impl Kind {
    /// The fields its entries can be sorted by.
    fn sort_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Restores => &[
                "created_at",
                "modified_at",
                "restore_start_time",
                "restore_end_time",
                "backup_start_time",
            ],
            Kind::Backups => &["backup_start_time", "backup_end_time"],
        }
    }

    /// The sort without a `sort` parameter: restores' documented `created_at:desc`;
    /// backup histories document none, newest runs first here.
    fn default_sort(self) -> &'static str {
        match self {
            Kind::Restores => "created_at",
            Kind::Backups => "backup_start_time",
        }
    }

    /// The state field, and its filter parameter of the same name.
    pub(crate) fn state_field(self) -> &'static str {
        match self {
            Kind::Restores => "restore_state",
            Kind::Backups => "backup_job_state",
        }
    }

    /// The values of the state filter (`BackupRestoreState`, `BackupJobState`).
    fn states(self) -> &'static [&'static str] {
        match self {
            Kind::Restores => &["COMPLETED", "FAILED", "INPROGRESS"],
            Kind::Backups => &["SUCCESS", "PARTIAL_SUCCESS", "FAILED", "INPROGRESS", "ALL"],
        }
    }

    /// The time filter parameters (from, to), both applied to the run's start.
    fn time_filters(self) -> (&'static str, &'static str) {
        match self {
            Kind::Restores => ("start_time", "end_time"),
            Kind::Backups => ("backup_start_time", "backup_end_time"),
        }
    }

    /// The field the time filters apply to.
    fn start_field(self) -> &'static str {
        match self {
            Kind::Restores => "restore_start_time",
            Kind::Backups => "backup_start_time",
        }
    }
}

/// The query of a history request.
#[derive(Debug)]
pub(crate) struct Query {
    kind: Kind,
    page: usize,
    size: usize,
    sort_field: &'static str,
    descending: bool,
    state: Option<&'static str>,
    start: Option<NaiveDateTime>,
    end: Option<NaiveDateTime>,
}

impl Query {
    pub(crate) fn parse(kind: Kind, query: Option<&str>) -> Result<Query, String> {
        let (from, to) = kind.time_filters();
        let mut q = Query {
            kind,
            page: 0,
            size: 20,
            sort_field: kind.default_sort(),
            descending: true,
            state: None,
            start: None,
            end: None,
        };
        let pairs = form_pairs(query.unwrap_or("")).ok_or("malformed query string")?;
        for (key, value) in &pairs {
            // The parameters are nullable: empty or `null` means the default.
            let value = value.trim();
            if value.is_empty() || value == "null" {
                continue;
            }
            match key.as_str() {
                "page" => {
                    q.page = value.parse().map_err(|_| {
                        format!("page must be a non-negative integer, got {value:?}")
                    })?;
                }
                "size" => {
                    q.size = value
                        .parse()
                        .ok()
                        .filter(|s| (1..=MAX_SIZE).contains(s))
                        .ok_or_else(|| format!("size must be 1..={MAX_SIZE}, got {value:?}"))?;
                }
                "sort" => {
                    let (field, direction) = value.split_once(':').unwrap_or((value, "asc"));
                    q.sort_field = kind
                        .sort_fields()
                        .iter()
                        .copied()
                        .find(|f| *f == field)
                        .ok_or_else(|| format!("cannot sort by {field:?}"))?;
                    q.descending = match direction.to_ascii_lowercase().as_str() {
                        "asc" => false,
                        "desc" => true,
                        _ => {
                            return Err(format!(
                                "sort direction must be asc or desc, got {direction:?}"
                            ))
                        }
                    };
                }
                state if state == kind.state_field() => {
                    let found = kind
                        .states()
                        .iter()
                        .copied()
                        .find(|s| s.eq_ignore_ascii_case(value))
                        .ok_or_else(|| {
                            format!(
                                "{state} must be one of {}, got {value:?}",
                                kind.states().join(", ")
                            )
                        })?;
                    // `ALL` (backup histories) filters nothing.
                    q.state = (found != "ALL").then_some(found);
                }
                time if time == from || time == to => {
                    let time = DateTime::parse_from_rfc3339(value)
                        .map_err(|_| format!("{key} must be a date-time, got {value:?}"))?
                        .naive_utc();
                    if key == from {
                        q.start = Some(time);
                    } else {
                        q.end = Some(time);
                    }
                }
                _ => {}
            }
        }
        Ok(q)
    }

    fn matches(&self, entry: &Value) -> bool {
        if let Some(state) = self.state {
            let same = entry[self.kind.state_field()]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(state));
            if !same {
                return false;
            }
        }
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        let Some(started) = time_of(&entry[self.kind.start_field()]) else {
            return false;
        };
        self.start.is_none_or(|s| started >= s) && self.end.is_none_or(|e| started <= e)
    }
}

/// A time field of an entry: naive (read as UTC) or with an offset.
fn time_of(value: &Value) -> Option<NaiveDateTime> {
    let s = value.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").ok())
}

/// Filters, sorts (stably; among equal keys the later entry counts as newer) and pages.
pub(crate) fn page<'a>(entries: &'a [Value], q: &Query) -> Page<'a> {
    let mut matching: Vec<(usize, &Value)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| q.matches(e))
        .collect();
    let key = |e: &Value| {
        let v = &e[q.sort_field];
        (time_of(v), v.as_str().map(str::to_string))
    };
    matching.sort_by(|(i, a), (j, b)| {
        let order = key(a).cmp(&key(b)).then(i.cmp(j));
        if q.descending {
            order.reverse()
        } else {
            order
        }
    });
    let count = matching.len();
    let contents = matching
        .into_iter()
        .skip(q.page.saturating_mul(q.size))
        .take(q.size)
        .map(|(_, e)| e)
        .collect();
    Page { contents, count }
}
