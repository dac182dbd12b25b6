//! The query of a restore-histories request (`page`, `size`, `sort`, `restore_state`,
//! `start_time`, `end_time`) and the filtering, sorting and paging it asks for.

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::wire::Page;
use crate::http::form_pairs;

/// Largest `size` accepted.
const MAX_SIZE: usize = 10_000;

/// The fields a history can be sorted by.
const SORT_FIELDS: [&str; 5] = [
    "created_at",
    "modified_at",
    "restore_start_time",
    "restore_end_time",
    "backup_start_time",
];

const STATES: [&str; 3] = ["COMPLETED", "FAILED", "INPROGRESS"];

/// The query of a restore-histories request.
#[derive(Debug)]
pub(crate) struct Query {
    page: usize,
    size: usize,
    sort_field: &'static str,
    descending: bool,
    state: Option<&'static str>,
    start: Option<NaiveDateTime>,
    end: Option<NaiveDateTime>,
}

impl Query {
    pub(crate) fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query {
            page: 0,
            size: 20,
            sort_field: "created_at",
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
                    q.sort_field = SORT_FIELDS
                        .into_iter()
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
                "restore_state" => {
                    q.state = Some(
                        STATES
                            .into_iter()
                            .find(|s| s.eq_ignore_ascii_case(value))
                            .ok_or_else(|| {
                                format!("restore_state must be COMPLETED, FAILED or INPROGRESS, got {value:?}")
                            })?,
                    );
                }
                "start_time" | "end_time" => {
                    let time = DateTime::parse_from_rfc3339(value)
                        .map_err(|_| format!("{key} must be a date-time, got {value:?}"))?
                        .naive_utc();
                    if key == "start_time" {
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
            let same = entry["restore_state"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(state));
            if !same {
                return false;
            }
        }
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        let Some(started) = time_of(&entry["restore_start_time"]) else {
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
