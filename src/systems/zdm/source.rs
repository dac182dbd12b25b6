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
            SERVER => {
                let data = self
                    .get(url, deadline, &|b| decode_counted::<SystemData>(fields, b))
                    .await?;
                map_system(fields, data, fallback)
            }
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
