//! Server monitoring answers paged as ZDM pages them (1.0.3 on): when the request sends
//! `page` or `limit` (defaults 1 and 20), `data.job` is that page's slice of the list (a
//! backup server's jobs) or `data.job.details` that of the recovery's partitions (a
//! recovery server: its documented paged answer keeps the job and `summary`, one detail a
//! page at `limit=1`), and `data.pagination` says where it stands; without either the whole
//! list comes unpaged.

use bytes::Bytes;
use serde_json::{json, Value};

/// ZDM's default `limit`.
const DEFAULT_LIMIT: usize = 20;

/// `body` (a server answer) cut to the page `query` asks for; unchanged when the query sends
/// neither `page` nor `limit`, or when the body has no `data.job` list nor
/// `data.job.details` list.
pub(crate) fn page(query: Option<&str>, body: Bytes) -> Bytes {
    let (mut page, mut limit, mut paged) = (1usize, DEFAULT_LIMIT, false);
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = value.parse::<usize>().ok().filter(|n| *n >= 1);
        match key {
            "page" => (page, paged) = (number.unwrap_or(1), true),
            "limit" => (limit, paged) = (number.unwrap_or(DEFAULT_LIMIT), true),
            _ => {}
        }
    }
    if !paged {
        return body;
    }
    let Ok(mut answer) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let Some(data) = answer.get_mut("data").and_then(Value::as_object_mut) else {
        return body;
    };
    let list = match data.get_mut("job") {
        Some(Value::Array(jobs)) => jobs,
        Some(Value::Object(job)) => match job.get_mut("details") {
            Some(Value::Array(details)) => details,
            _ => return body,
        },
        _ => return body,
    };
    let total = list.len();
    let pages = total.div_ceil(limit).max(1);
    let from = page.saturating_sub(1).saturating_mul(limit).min(total);
    let to = from.saturating_add(limit).min(total);
    let slice: Vec<Value> = list.get(from..to).unwrap_or_default().to_vec();
    *list = slice;
    data.insert(
        "pagination".into(),
        json!({
            "currentPage": page,
            "totalPages": pages,
            "totalItems": total,
            "itemsPerPage": limit,
            "hasNextPage": page < pages,
            "hasPreviousPage": page > 1,
        }),
    );
    Bytes::from(answer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(jobs: usize) -> Bytes {
        let jobs: Vec<Value> = (0..jobs).map(|i| json!({"info": {"name": i}})).collect();
        Bytes::from(json!({"success": true, "data": {"system": {"name": "s"}, "job": jobs}}).to_string())
    }

    fn names_and_next(body: &Bytes) -> (Vec<u64>, Value) {
        let v: Value = serde_json::from_slice(body).unwrap();
        let names = v["data"]["job"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["info"]["name"].as_u64().unwrap())
            .collect();
        (names, v["data"]["pagination"]["hasNextPage"].clone())
    }

    #[test]
    fn pages_slice_the_list_like_zdm() {
        let body = answer(5);
        assert_eq!(page(None, body.clone()), body, "unpaged without page/limit");
        assert_eq!(page(Some("mode=full"), body.clone()), body);
        assert_eq!(names_and_next(&page(Some("limit=2"), body.clone())), (vec![0, 1], json!(true)));
        assert_eq!(names_and_next(&page(Some("page=2&limit=2"), body.clone())), (vec![2, 3], json!(true)));
        assert_eq!(names_and_next(&page(Some("limit=2&page=3"), body.clone())), (vec![4], json!(false)));
        assert_eq!(names_and_next(&page(Some("page=9&limit=2"), body.clone())), (vec![], json!(false)));
        assert_eq!(names_and_next(&page(Some("page=1"), body.clone())), (vec![0, 1, 2, 3, 4], json!(false)));
        let v: Value = serde_json::from_slice(&page(Some("page=2&limit=2"), body)).unwrap();
        assert_eq!(
            v["data"]["pagination"],
            json!({"currentPage": 2, "totalPages": 3, "totalItems": 5, "itemsPerPage": 2, "hasNextPage": true, "hasPreviousPage": true})
        );
    }

    /// A recovery server's answer pages its job's partitions, as the documented paged
    /// answer shows (`limit=1`: the job, its summary and one detail, `totalItems` 2).
    #[test]
    fn a_recovery_servers_partitions_are_paged() {
        let body = Bytes::from(
            json!({"success": true, "data": {
                "system": {"source": {"name": "s"}, "target": {"name": "t"}},
                "summary": {"total": 3},
                "job": {"info": {"name": "r"}, "log": [], "details": [{"partition": "/"}, {"partition": "/home"}]}
            }})
            .to_string(),
        );
        assert_eq!(page(None, body.clone()), body);
        for (n, partition, next) in [(1, "/", true), (2, "/home", false)] {
            let v: Value = serde_json::from_slice(&page(Some(&format!("page={n}&limit=1")), body.clone())).unwrap();
            assert_eq!(v["data"]["job"]["details"], json!([{"partition": partition}]));
            assert_eq!(v["data"]["job"]["info"]["name"], "r");
            assert_eq!(v["data"]["summary"]["total"], 3);
            assert_eq!(v["data"]["pagination"]["totalItems"], 2);
            assert_eq!(v["data"]["pagination"]["hasNextPage"], next);
        }
    }
}
