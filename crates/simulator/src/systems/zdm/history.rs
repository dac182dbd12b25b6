//! The run histories (1.2.0 on), `GET {prefix}/backups/histories` and
//! `GET {prefix}/recoveries/histories`, as their pages document them: the live scenario's
//! finished runs (and the generated fleet's backups) filtered by `jobId`, `jobName`,
//! `server` (with `serverType`: `target`, the default, or `source` for recoveries),
//! `partition` (exact; a Windows server's drive letter gets its `:`) and `result`
//! (`success`, `failed`), ordered by `sort` (`desc`, the default, newest first, or `asc`),
//! and paged by `page`/`limit` (defaults 1 and 20; `pagination` beside `data` when either is
//! sent). An unknown `result` or `sort` is the documented 400. Parameters the pages do not
//! list are ignored.

use serde_json::{json, Value};

use super::scenario::PastRun;
use super::wire::{self, ApiVersion};
use crate::clock::fnv;
use crate::http::percent_decode;

/// ZDM's default `limit`.
const DEFAULT_LIMIT: usize = 20;
/// The most entries one page gives, whatever `limit` asks (the vendor documents no bound;
/// this one is past what the exporter asks, 5,000).
const MAX_LIMIT: usize = 10_000;

/// What a history request asks for.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Query {
    job_id: Option<u64>,
    job_name: Option<String>,
    server: Option<String>,
    /// `serverType=source` (recoveries): `server` names the source, not the target.
    source: bool,
    partition: Option<String>,
    /// `result`: `Some(true)` failed runs only, `Some(false)` successful ones only.
    failed: Option<bool>,
    page: Option<usize>,
    limit: Option<usize>,
    ascending: bool,
}

impl Query {
    /// The query string's parameters; `Err` is the 400's message.
    pub(crate) fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(&raw.replace('+', " ")).unwrap_or_default();
            let number = || value.parse::<u64>().ok();
            let count = || usize::try_from(number()?).ok().filter(|n| *n >= 1);
            match key {
                "jobId" => q.job_id = number(),
                "jobName" => q.job_name = Some(value),
                "server" => q.server = Some(value),
                "serverType" => q.source = value == "source",
                "partition" => q.partition = Some(value),
                "result" => {
                    q.failed = Some(match value.as_str() {
                        "success" => false,
                        "failed" => true,
                        other => return Err(enum_error(&["success", "failed"], other)),
                    })
                }
                "sort" => {
                    q.ascending = match value.as_str() {
                        "asc" => true,
                        "desc" => false,
                        other => return Err(enum_error(&["asc", "desc"], other)),
                    }
                }
                "page" => q.page = Some(count().unwrap_or(1)),
                "limit" => q.limit = Some(count().unwrap_or(DEFAULT_LIMIT)),
                _ => {}
            }
        }
        Ok(q)
    }

    fn keeps(&self, run: &PastRun) -> bool {
        let server = match (&run.target, self.source) {
            (Some(target), false) => target,
            _ => &run.system,
        };
        let partition = self.partition.as_deref().map(|p| {
            // A Windows server's drive letter without its colon, as the pages note.
            if self.server.is_some() && run.windows && p.len() == 1 {
                format!("{p}:")
            } else {
                p.to_string()
            }
        });
        self.job_id.is_none_or(|id| id == job_id(&run.job))
            && self.job_name.as_ref().is_none_or(|n| *n == run.job)
            && self.server.as_ref().is_none_or(|s| s == server)
            && partition.is_none_or(|p| p == run.volume)
            && self.failed.is_none_or(|f| f == run.failed)
    }
}

/// The 400 the pages document for a value outside an enum.
fn enum_error(expected: &[&str], received: &str) -> String {
    let expected: Vec<String> = expected.iter().map(|e| format!("'{e}'")).collect();
    format!(
        "Invalid enum value. Expected {}, received '{received}'",
        expected.join(" | ")
    )
}

/// A job's `job.id`: a stable number per name.
fn job_id(job: &str) -> u64 {
    fnv(job) % 1_000_000 + 1
}

/// The list answer of `runs` (newest first) for `query`.
pub(crate) fn body(version: ApiVersion, recoveries: bool, runs: &[PastRun], query: &Query) -> Vec<u8> {
    let paged = query.page.is_some() || query.limit.is_some();
    let page = query.page.unwrap_or(1);
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let kept: Vec<&PastRun> = runs.iter().filter(|r| query.keeps(r)).collect();
    let total = kept.len();
    let ordered: Box<dyn Iterator<Item = &&PastRun>> = if query.ascending {
        Box::new(kept.iter().rev())
    } else {
        Box::new(kept.iter())
    };
    let entries: Vec<Value> = ordered
        .skip((page - 1).saturating_mul(limit))
        .take(limit)
        .map(|r| entry(version, r))
        .collect();
    let pages = total.div_ceil(limit).max(1);
    let mut body = json!({
        "success": true,
        "requestID": wire::request_id(),
        "data": entries,
        "message": if recoveries { "Recovery history list" } else { "Backup history list" },
        "timestamp": version.now(),
    });
    if let (true, Some(map)) = (paged, body.as_object_mut()) {
        map.insert(
            "pagination".to_string(),
            json!({
                "currentPage": page, "totalPages": pages, "totalItems": total,
                "itemsPerPage": limit, "hasNextPage": page < pages, "hasPreviousPage": page > 1
            }),
        );
    }
    serde_json::to_vec(&body).unwrap_or_default()
}

fn entry(version: ApiVersion, r: &PastRun) -> Value {
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_string(), |s| version.format_unix(s));
    let job = match &r.target {
        Some(target) => json!({
            "name": r.job, "id": job_id(&r.job), "recoverySystemName": target,
            "recoverDrive": [r.volume]
        }),
        None => json!({
            "name": r.job, "id": job_id(&r.job), "backupType": "Full Backup", "drive": r.volume,
            "repositoryPath": "/backup"
        }),
    };
    json!({
        "id": r.id,
        "system": { "name": r.system },
        "job": job,
        "result": {
            "status": if r.failed { "FAIL" } else { "COMPLETE" },
            "description": r.state.message,
        },
        "time": {
            "start": time(r.state.start),
            "end": time(r.state.end),
            "elapsed": r.state.elapsed.map_or_else(|| "-".to_string(), wire::hms),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::zdm::scenario::{self, Fleet};

    /// 2026-12-03 07:00 UTC.
    const NOW: i64 = 1_796_281_200_000;

    fn runs(recoveries: bool) -> Vec<PastRun> {
        scenario::history(recoveries, NOW, 2_000, Some(Fleet { servers: 3, jobs: 2 }))
    }

    fn listed(recoveries: bool, query: &str) -> Vec<Value> {
        let query = Query::parse(Some(query)).unwrap();
        let body: Value =
            serde_json::from_slice(&body(ApiVersion::Legacy, recoveries, &runs(recoveries), &query)).unwrap();
        body["data"].as_array().cloned().unwrap_or_default()
    }

    fn text(e: &Value, a: &str, b: &str) -> String {
        e[a][b].as_str().unwrap_or("").to_owned()
    }

    /// Each documented filter keeps exactly the entries it names, `sort=asc` reverses the
    /// order, pages continue each other; the fleet's runs are listed too.
    #[test]
    fn the_documented_filters_order_and_pages() {
        let all = listed(false, "limit=1000");
        assert!(all.len() > 20, "{}", all.len());
        assert!(all.iter().any(|e| text(e, "job", "name") == "fleet-00002-job-01"));
        let keep = |f: &dyn Fn(&Value) -> bool| all.iter().filter(|e| f(e)).cloned().collect::<Vec<_>>();
        let job = text(&all[0], "job", "name");
        let server = text(&all[0], "system", "name");
        let job_id = all[0]["job"]["id"].clone();
        let failing = all
            .iter()
            .find(|e| text(e, "result", "status") == "FAIL")
            .map(|e| text(e, "system", "name"))
            .unwrap();
        let cases: Vec<(String, Vec<Value>)> = vec![
            (format!("jobName={}", job), keep(&|e| text(e, "job", "name") == job)),
            (format!("jobId={job_id}"), keep(&|e| e["job"]["id"] == job_id)),
            (format!("server={server}"), keep(&|e| text(e, "system", "name") == server)),
            ("partition=/home".into(), keep(&|e| text(e, "job", "drive") == "/home")),
            ("result=failed".into(), keep(&|e| text(e, "result", "status") == "FAIL")),
            ("result=success".into(), keep(&|e| text(e, "result", "status") == "COMPLETE")),
            (
                format!("server={failing}&result=failed&sort=desc"),
                keep(&|e| text(e, "system", "name") == failing && text(e, "result", "status") == "FAIL"),
            ),
        ];
        for (query, want) in cases {
            assert!(!want.is_empty(), "{query}");
            assert!(want.len() < all.len(), "{query} filters something");
            assert_eq!(listed(false, &format!("limit=1000&{query}")), want, "{query}");
        }
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(listed(false, "limit=1000&sort=asc"), reversed);
        let pages: Vec<Value> = (1..=3).flat_map(|p| listed(false, &format!("page={p}&limit=2"))).collect();
        assert_eq!(pages, all[..6]);
        assert_eq!(listed(false, "").len(), 20, "ZDM's default limit");
    }

    /// Recoveries: `server` names the target server unless `serverType=source`;
    /// `partition` matches one of `recoverDrive`.
    #[test]
    fn recoveries_filter_by_target_or_source() {
        let all = listed(true, "limit=1000");
        assert!(!all.is_empty());
        assert_eq!(listed(true, "limit=1000&server=db-dr-02"), all);
        assert!(listed(true, "limit=1000&server=db-서버-02").is_empty());
        assert_eq!(listed(true, "limit=1000&server=db-서버-02&serverType=source"), all);
        let home = listed(true, "limit=1000&partition=/home");
        assert!(!home.is_empty() && home.len() < all.len());
        for e in home {
            assert_eq!(e["job"]["recoverDrive"], serde_json::json!(["/home"]));
        }
    }

    /// An unknown `result` or `sort` is the documented 400; a percent-encoded value is
    /// decoded; an unknown parameter is ignored.
    #[test]
    fn query_values_are_checked_and_decoded() {
        assert_eq!(
            Query::parse(Some("result=unknown")),
            Err("Invalid enum value. Expected 'success' | 'failed', received 'unknown'".to_string())
        );
        assert!(Query::parse(Some("sort=newest")).is_err());
        let q = Query::parse(Some("jobName=app-config-%EB%B0%B1%EC%97%85&center=c1&page=0")).unwrap();
        assert_eq!(q.job_name.as_deref(), Some("app-config-백업"));
        assert_eq!(q.page, Some(1));
    }
}
