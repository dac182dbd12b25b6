//! ZDM's source: the request of each target (`url` + `api_prefix` + the endpoint path +
//! the target's id, with its query filters), sent with the upstream's authorization, its
//! answer decoded and mapped.

use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};

use super::auth::Authorizer;
use super::config::{ZdmConfig, ZdmTarget};
use super::labels::{BACKUP_JOB, RECOVERY_JOB, SERVER};
use super::map::{self, map_backup_job, map_recovery_job, map_system};
use super::wire::{decode_counted, JobData, RecoveryData, SystemData};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::{PollOutput, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{endpoint, FieldParser, Source, SourceTarget};

const RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: true,
    bad_request_is_auth_error: false,
    every_error_is_auth_error: false,
};

/// Polls one ZDM upstream's servers, backup jobs and recovery jobs.
pub struct Zdm {
    config: ZdmConfig,
    http: UpstreamHttp,
    fields: FieldParser,
    /// The static token, or the login and its cached token.
    auth: Authorizer,
    /// Each target's request URL (or why it has none), built once: servers, backup jobs,
    /// recovery jobs, each in configuration order.
    urls: [Vec<Result<Url, Fault>>; 3],
}

/// The endpoint path of each target kind, in the order of [`Zdm::urls`].
const PATHS: [&str; 3] = [
    "backups/monitoring/system",
    "backups/monitoring/job",
    "recoveries/monitoring/job",
];

#[async_trait]
impl Source for Zdm {
    fn targets(&self) -> Vec<SourceTarget> {
        let lists = [
            (SERVER, &self.config.servers),
            (BACKUP_JOB, &self.config.backup_jobs),
            (RECOVERY_JOB, &self.config.recovery_jobs),
        ];
        lists
            .into_iter()
            .flat_map(|(kind, list)| {
                list.iter().enumerate().map(move |(index, t)| SourceTarget {
                    kind,
                    name: t.id.clone(),
                    index,
                })
            })
            .collect()
    }

    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault> {
        let (list, urls) = match target.kind {
            SERVER => (&self.config.servers, &self.urls[0]),
            BACKUP_JOB => (&self.config.backup_jobs, &self.urls[1]),
            RECOVERY_JOB => (&self.config.recovery_jobs, &self.urls[2]),
            other => return Err(not_ours(other)),
        };
        let (Some(configured), Some(url)) = (list.get(target.index), urls.get(target.index)) else {
            return Err(Fault::new(
                Outcome::UpstreamError,
                "target is no longer configured",
            ));
        };
        let url = url.clone()?;
        let fallback = configured.id.as_str();
        let fields = &self.fields;
        let output = match target.kind {
            SERVER => self.poll_server(url, deadline, fallback).await?,
            BACKUP_JOB => {
                let data = self
                    .get(url, deadline, &|b| decode_counted::<JobData>(fields, b))
                    .await?;
                map_backup_job(fields, data, fallback)
            }
            RECOVERY_JOB => {
                let data = self
                    .get(url, deadline, &|b| {
                        decode_counted::<RecoveryData>(fields, b)
                    })
                    .await?;
                map_recovery_job(fields, data, fallback)
            }
            other => return Err(not_ours(other)),
        };
        // A recovery job's volumes are series too.
        fields.check_jobs(output.jobs.len())?;
        Ok(output)
    }
}

/// The request URL of one target: `url` + `api_prefix` + the endpoint `path` + the target's
/// id as one path segment, with its query filters.
fn url(config: &ZdmConfig, path: &str, target: &ZdmTarget) -> Result<Url, Fault> {
    let base = format!("{}{}/{path}", config.url, config.api_prefix);
    let mut url = endpoint(&base, &[&target.id])?;
    if !target.query.is_empty() {
        url.query_pairs_mut().extend_pairs(target.query.iter());
    }
    Ok(url)
}

/// The most pages one poll of a server follows: a list that never ends (or a server that
/// says `hasNextPage` forever) is `too_large`, like a list past `max_jobs_per_target`.
const MAX_PAGES: u32 = 100;

/// The page a target's request starts at: its configured `page`, else 1.
fn first_page(url: &Url) -> u32 {
    url.query_pairs()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1)
}

/// `url` asking for page `page` (every other parameter kept, `limit` included).
fn with_page(url: &Url, page: u32) -> Url {
    let mut next = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("page", &page.to_string());
    next
}

fn not_ours(kind: TargetKind) -> Fault {
    Fault::new(
        Outcome::UpstreamError,
        format!("a {} target is not a ZDM target", kind.as_str()),
    )
}

impl Zdm {
    /// The source of `config`, its requests sent through `http`, its fields parsed by
    /// `fields` (counted under ZDM's labels).
    pub fn new(config: ZdmConfig, http: UpstreamHttp, fields: FieldParser) -> Self {
        let lists = [&config.servers, &config.backup_jobs, &config.recovery_jobs];
        let urls = std::array::from_fn(|i| {
            lists[i]
                .iter()
                .map(|target| url(&config, PATHS[i], target))
                .collect()
        });
        Zdm {
            auth: Authorizer::new(&config, fields.timezone()),
            config,
            http,
            fields: fields.with_labels(map::label),
            urls,
        }
    }

    /// A server's jobs, page after page while `data.pagination.hasNextPage` says more
    /// follow (ZDM 1.0.3 on pages when `page`/`limit` are sent); the summary and the server
    /// name come from the first page. Bounded by `max_jobs_per_target` (checked after every
    /// page, so a long list stops early) and [`MAX_PAGES`].
    async fn poll_server(
        &self,
        url: Url,
        deadline: Instant,
        fallback: &str,
    ) -> Result<PollOutput, Fault> {
        let fields = &self.fields;
        let first = first_page(&url);
        let mut output = PollOutput::default();
        let mut next = url.clone();
        for n in 0..MAX_PAGES {
            let data = self
                .get(next, deadline, &|b| decode_counted::<SystemData>(fields, b))
                .await?;
            let more = data.pagination.as_ref().is_some_and(|p| p.has_next());
            let page = map_system(fields, data, fallback);
            if n == 0 {
                output = page;
            } else {
                output.jobs.extend(page.jobs);
            }
            fields.check_jobs(output.jobs.len())?;
            if !more {
                return Ok(output);
            }
            next = with_page(&url, first.saturating_add(n + 1));
        }
        Err(Fault::new(
            Outcome::TooLarge,
            format!("more than {MAX_PAGES} pages of jobs"),
        ))
    }

    /// GET with the Bearer token, the answer decoded by `decode` (so a bad body is counted
    /// as `decode_error`); with login, a 401 re-issues the token and retries once.
    async fn get<T>(
        &self,
        url: Url,
        deadline: Instant,
        decode: &(dyn Fn(&[u8]) -> Result<T, Fault> + Sync),
    ) -> Result<T, Fault> {
        if !self.auth.renews() {
            return self.get_with_token(url, deadline, false, decode).await;
        }
        let first = self
            .get_with_token(url.clone(), deadline, false, decode)
            .await;
        match first {
            Err(fault) if fault.outcome == Outcome::AuthError => {
                self.get_with_token(url, deadline, true, decode).await
            }
            result => result,
        }
    }

    async fn get_with_token<T>(
        &self,
        url: Url,
        deadline: Instant,
        renew: bool,
        decode: &(dyn Fn(&[u8]) -> Result<T, Fault> + Sync),
    ) -> Result<T, Fault> {
        let mut request = reqwest::Request::new(Method::GET, url);
        self.auth
            .authorize(&mut request, &self.http, deadline, renew)
            .await?;
        request.headers_mut().insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        self.http.fetch(request, RULES, deadline, decode).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_from_the_configured_page_keeping_the_other_parameters() {
        let url = Url::parse("http://z/api/backups/monitoring/system/s?limit=2&page=3&mode=full")
            .unwrap();
        assert_eq!(first_page(&url), 3);
        assert_eq!(
            with_page(&url, 4).as_str(),
            "http://z/api/backups/monitoring/system/s?limit=2&mode=full&page=4"
        );
        let plain = Url::parse("http://z/api/backups/monitoring/system/s").unwrap();
        assert_eq!(first_page(&plain), 1);
        assert_eq!(
            with_page(&plain, 2).as_str(),
            "http://z/api/backups/monitoring/system/s?page=2"
        );
    }
}
