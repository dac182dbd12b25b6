//! The query of a job list: `$filter` (`startTime`/`endTime` window, `operation`, `status`,
//! `backupManagementType`) and the `api-version` check.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::wire::JobRecord;

/// The parsed `$filter` of a job list.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    operation: Option<String>,
    status: Option<String>,
    management: Option<String>,
}

/// A filter time: `2024-01-01 01:02:03 AM` (UTC, Azure's examples), `2024-01-01 13:02:03`,
/// or RFC 3339.
fn filter_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%d %I:%M:%S %p",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .into_iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
}

/// The clauses of an OData `$filter`: `field eq 'value' [and field eq 'value']...`,
/// keywords case-insensitive; the fields as written.
pub(crate) fn clauses(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let field_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let (field, after) = rest.split_at(field_len);
        let after = after.trim_start();
        let after = after
            .get(..2)
            .filter(|op| op.eq_ignore_ascii_case("eq"))
            .map(|_| after[2..].trim_start())
            .ok_or_else(|| format!("expected `{field} eq '...'` in $filter"))?;
        let after = after
            .strip_prefix('\'')
            .ok_or_else(|| format!("expected a quoted value after `{field} eq`"))?;
        let close = after
            .find('\'')
            .ok_or("unterminated quoted value in $filter")?;
        out.push((field.to_string(), after[..close].to_string()));
        rest = after[close + 1..].trim_start();
        if !rest.is_empty() {
            rest = rest
                .get(..3)
                .filter(|and| and.eq_ignore_ascii_case("and"))
                .map(|_| rest[3..].trim_start())
                .filter(|r| !r.is_empty())
                .ok_or("$filter clauses must be joined by `and`")?;
        }
    }
    Ok(out)
}

impl Filter {
    /// `field eq 'value' [and field eq 'value']...`, keywords and fields case-insensitive.
    pub(crate) fn parse(text: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for (field, value) in clauses(text)? {
            let time =
                || filter_time(&value).ok_or_else(|| format!("invalid time '{value}' in $filter"));
            match field.to_ascii_lowercase().as_str() {
                "starttime" => filter.start = Some(time()?),
                "endtime" => filter.end = Some(time()?),
                "operation" => filter.operation = Some(value),
                "status" => filter.status = Some(value),
                "backupmanagementtype" => filter.management = Some(value),
                _ => return Err(format!("unsupported $filter property '{field}'")),
            }
        }
        Ok(filter)
    }

    pub(crate) fn matches(&self, job: &JobRecord) -> bool {
        let same = |want: &Option<String>, have: &str| {
            want.as_ref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        if !same(&self.operation, &job.operation)
            || !same(&self.status, &job.status)
            || !same(&self.management, &job.management)
        {
            return false;
        }
        if self.start.is_none() && self.end.is_none() {
            return true;
        }
        job.start
            .is_some_and(|t| self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e))
    }
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`.
pub(crate) fn valid_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// The `$filter` of a vault's item list: `eq` clauses on the properties of the list's
/// query object, each compared case-insensitively with a property of the item.
#[derive(Debug, Default)]
pub(crate) struct ItemFilter {
    /// (property of the item's `properties`, wanted value).
    clauses: Vec<(&'static str, String)>,
}

impl ItemFilter {
    /// `fields` maps each `$filter` property the list accepts (lowercase) to the item
    /// property it compares.
    pub(crate) fn parse(
        text: &str,
        fields: &[(&str, &'static str)],
    ) -> Result<ItemFilter, String> {
        let mut filter = ItemFilter::default();
        for (field, value) in clauses(text)? {
            let lower = field.to_ascii_lowercase();
            let (_, property) = fields
                .iter()
                .find(|(name, _)| *name == lower)
                .ok_or_else(|| format!("unsupported $filter property '{field}'"))?;
            filter.clauses.push((property, value));
        }
        Ok(filter)
    }

    /// Whether every clause matches the item; `policyName` compares the last segment of
    /// `policyId`.
    pub(crate) fn matches(&self, item: &serde_json::Value) -> bool {
        let properties = &item["properties"];
        self.clauses.iter().all(|(property, want)| {
            let have = if *property == "policyName" {
                properties["policyId"]
                    .as_str()
                    .and_then(|id| id.rsplit('/').next())
            } else {
                properties[*property].as_str()
            };
            have.is_some_and(|have| have.eq_ignore_ascii_case(want))
        })
    }
}
