//! ZDM's source: the API version settled (fixed, or asked by `auto`), then the request of
//! each target (`url` + the version's or the configured prefix + the endpoint path + the
//! target's id, with its query filters), sent with the upstream's authorization, its answer
//! decoded and mapped with the version's status words.

use std::collections::HashSet;
use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};

use super::auth::Authorizer;
use super::history::{self, Book, Ledger, Schedule};
use super::config::{ZdmAuth, ZdmConfig, ZdmTarget};
use super::labels::{BACKUP_JOB, RECOVERY_JOB, RECOVERY_SERVER, REPLICATION_JOB, SERVER};
use super::map::{
    self, map_backup_job, map_recovery_job, map_recovery_server, map_replication_job,
    map_system, Words,
};
use super::version::{
    login_candidates, oldest_under, ApiVersion, Probe, ProbeMethod, VersionChoice,
    AUTO_PREFIXES, PROBES,
};
use super::wire::{
    decode_counted, JobData, Paged, RecoveryData, ReplicationData, Streamed, SystemData,
};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::{PollOutput, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{endpoint, FieldParser, Source, SourceTarget};

const RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: true,
    bad_request_is_auth_error: false,
    every_error_is_auth_error: false,
};

/// A probe of a path: only 404 says "not here" (a login route answers `{}` with 400/422).
const PROBE_RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: false,
    bad_request_is_auth_error: false,
    every_error_is_auth_error: false,
};

/// Polls one ZDM upstream's servers, backup jobs and recovery jobs.
pub struct Zdm {
    pub(super) config: ZdmConfig,
    http: UpstreamHttp,
    pub(super) fields: FieldParser,
    /// The static token, or the login and its cached token.
    auth: Authorizer,
    /// What the requests use: the version's prefix, login path and words. Settled once (a
    /// fixed `api_version` at once, `auto` by the first poll); the lock makes the other
    /// targets wait for the probes instead of probing too.
    profile: tokio::sync::Mutex<Option<Profile>>,
    /// Targets (kind rank, index) whose last poll answered 404: when it holds every
    /// target, `auto` settles the version again.
    not_found: std::sync::Mutex<HashSet<(u8, usize)>>,
    /// The backup and the recovery history (1.2 on), shared by every target of the
    /// upstream: at most one read per interval once each has had its first.
    histories: tokio::sync::Mutex<Histories>,
    /// The last inventory each listing gave (`discover: true`): kept when a listing fails.
    pub(super) kept: std::sync::Mutex<super::inventory::Kept>,
}

/// The upstream's histories: when to read which, and what each said.
#[derive(Debug, Default)]
struct Histories {
    schedule: Schedule,
    backups: Ledger,
    recoveries: Ledger,
    /// Whether the last read of each history (backups, recoveries) stopped at
    /// [`history::MAX_PAGES`] with every entry still new (runs may have been missed).
    gap: [bool; 2],
}

impl Histories {
    fn ledger(&mut self, book: Book) -> &mut Ledger {
        match book {
            Book::Backups => &mut self.backups,
            Book::Recoveries => &mut self.recoveries,
        }
    }
}

/// The endpoint path of each target kind.
fn path_of(kind: TargetKind) -> Option<&'static str> {
    match kind {
        SERVER => Some("backups/monitoring/system"),
        BACKUP_JOB => Some("backups/monitoring/job"),
        RECOVERY_JOB => Some("recoveries/monitoring/job"),
        RECOVERY_SERVER => Some("recoveries/monitoring/system"),
        REPLICATION_JOB => Some("replications/monitoring/job"),
        _ => None,
    }
}

/// What one settled version decides for the requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Profile {
    /// `None`: `auto` found no documented path (the newest version's defaults are used).
    pub version: Option<ApiVersion>,
    /// The configured `api_prefix`, else the version's.
    pub prefix: String,
    /// The configured `login.path`, else the one that issued a token, else the version's.
    pub login_path: String,
}

impl Profile {
    /// The profile of `version` with the configured keys winning.
    fn of(config: &ZdmConfig, version: Option<ApiVersion>, login_path: Option<&str>) -> Self {
        let defaults = version.unwrap_or(ApiVersion::V2_0);
        let configured_login = match &config.auth {
            ZdmAuth::Login { path, .. } => path.as_deref(),
            ZdmAuth::Token(_) => None,
        };
        Profile {
            version,
            prefix: config
                .api_prefix
                .clone()
                .unwrap_or_else(|| defaults.api_prefix().to_owned()),
            login_path: configured_login
                .or(login_path)
                .unwrap_or(defaults.login_path())
                .to_owned(),
        }
    }

    fn words(&self) -> Words {
        match self.version {
            Some(v) if !v.scheduled_is_a_finished_run() => Words::V0_2,
            _ => Words::Current,
        }
    }
}

#[async_trait]
impl Source for Zdm {
    fn targets(&self) -> Vec<SourceTarget> {
        let lists = [
            (SERVER, &self.config.servers),
            (BACKUP_JOB, &self.config.backup_jobs),
            (RECOVERY_JOB, &self.config.recovery_jobs),
            (RECOVERY_SERVER, &self.config.recovery_servers),
            (REPLICATION_JOB, &self.config.replication_jobs),
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
        let result = self.poll_target(target, deadline).await;
        if !target.is_discovered() {
            self.note(target, &result).await;
        }
        result
    }
}

/// The request URL of one target: `url` + the prefix + the endpoint `path` + the target's
/// id as one path segment, with its query filters.
fn url(config: &ZdmConfig, prefix: &str, path: &str, target: &ZdmTarget) -> Result<Url, Fault> {
    let base = format!("{}{prefix}/{path}", config.url);
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
        let fields = fields.with_labels(map::label);
        // A fixed version is settled from the start; `auto` exports nothing until it is.
        let profile = match config.api_version {
            VersionChoice::Fixed(v) => {
                fields.upstream_info(Some(v.as_str()));
                Some(Profile::of(&config, Some(v), None))
            }
            VersionChoice::Auto => {
                fields.upstream_info(None);
                None
            }
        };
        Zdm {
            auth: Authorizer::new(&config, fields.timezone()),
            config,
            http,
            fields,
            profile: tokio::sync::Mutex::new(profile),
            not_found: std::sync::Mutex::default(),
            histories: Default::default(),
            kept: std::sync::Mutex::default(),
        }
    }

    async fn poll_target(
        &self,
        target: &SourceTarget,
        deadline: Instant,
    ) -> Result<PollOutput, Fault> {
        let list = match target.kind {
            SERVER => &self.config.servers,
            BACKUP_JOB => &self.config.backup_jobs,
            RECOVERY_JOB => &self.config.recovery_jobs,
            RECOVERY_SERVER => &self.config.recovery_servers,
            REPLICATION_JOB => &self.config.replication_jobs,
            other => return Err(not_ours(other)),
        };
        // A discovered target is polled by its name alone.
        let found;
        let configured = if target.is_discovered() {
            found = ZdmTarget {
                id: target.name.clone(),
                query: Vec::new(),
            };
            Some(&found)
        } else {
            list.get(target.index)
        };
        let (Some(configured), Some(path)) = (configured, path_of(target.kind)) else {
            return Err(Fault::new(
                Outcome::UpstreamError,
                "target is no longer configured",
            ));
        };
        let profile = self.profile(deadline).await?;
        let url = url(&self.config, &profile.prefix, path, configured)?;
        let fallback = configured.id.as_str();
        let fields = &self.fields;
        let words = profile.words();
        let login = profile.login_path.as_str();
        let output = match target.kind {
            SERVER => {
                self.poll_pages(url, deadline, login, |data: SystemData| {
                    map_system(fields, words, data, fallback)
                })
                .await?
            }
            RECOVERY_SERVER => {
                self.poll_pages(url, deadline, login, |data: RecoveryData| {
                    map_recovery_server(fields, words, data, fallback)
                })
                .await?
            }
            REPLICATION_JOB => {
                let data = self
                    .get(url, deadline, login, &|b| {
                        decode_counted::<ReplicationData>(fields, b)
                    })
                    .await?;
                map_replication_job(fields, words, data, fallback)
            }
            BACKUP_JOB => {
                let data = self
                    .get(url, deadline, login, &|b| decode_counted::<JobData>(fields, b))
                    .await?;
                map_backup_job(fields, words, data, fallback)
            }
            RECOVERY_JOB => {
                let data = self
                    .get(url, deadline, login, &|b| {
                        decode_counted::<RecoveryData>(fields, b)
                    })
                    .await?;
                map_recovery_job(fields, words, data, fallback)
            }
            other => return Err(not_ours(other)),
        };
        // A recovery job's volumes are series too.
        fields.check_jobs(output.jobs.len())?;
        let mut output = output;
        let book = match target.kind {
            SERVER | BACKUP_JOB => Some(Book::Backups),
            RECOVERY_JOB | RECOVERY_SERVER => Some(Book::Recoveries),
            _ => None,
        };
        if let (Some(book), Some(true)) = (book, profile.version.map(ApiVersion::has_histories)) {
            self.with_history(book, &profile, deadline, &mut output).await;
        }
        Ok(output)
    }

    /// Applies `book`'s history to `output`'s jobs, reading a history first when the
    /// [`Schedule`] says so. A failed read keeps what the earlier ones said (the request is
    /// counted under its outcome; the target's poll does not fail for it).
    async fn with_history(
        &self,
        book: Book,
        profile: &Profile,
        deadline: Instant,
        output: &mut PollOutput,
    ) {
        let mut state = self.histories.lock().await;
        let due = state
            .schedule
            .due(book, Instant::now(), self.config.interval);
        if let Some(read) = due {
            let result = self
                .read_history(read, profile, deadline, state.ledger(read))
                .await;
            let slot = match read {
                Book::Backups => &mut state.gap[0],
                Book::Recoveries => &mut state.gap[1],
            };
            match result {
                Ok(gap) => {
                    if gap && !*slot {
                        tracing::warn!(
                            upstream = %self.fields.upstream(),
                            history = read.path(),
                            pages = history::MAX_PAGES,
                            "more runs ended since the last history read than its pages hold: some are not counted"
                        );
                    }
                    *slot = gap;
                }
                Err(fault) => tracing::debug!(
                    upstream = %self.fields.upstream(),
                    history = read.path(),
                    outcome = fault.outcome.as_str(),
                    reason = %fault.reason,
                    "history not read; keeping the last one"
                ),
            }
        }
        let ledger = state.ledger(book);
        for job in &mut output.jobs {
            ledger.apply(job);
        }
    }

    /// Reads `book` newest first (`sort=desc`, pages of [`Ledger::limit`] entries) into
    /// `ledger`: past a page only while every entry of it is new and another follows, at
    /// most [`history::MAX_PAGES`]. True when a read after the first stopped at that bound
    /// with every entry new (a gap).
    async fn read_history(
        &self,
        book: Book,
        profile: &Profile,
        deadline: Instant,
        ledger: &mut Ledger,
    ) -> Result<bool, Fault> {
        let address = format!("{}{}/{}", self.config.url, profile.prefix, book.path());
        let base = Url::parse(&address)
            .map_err(|e| Fault::new(Outcome::UpstreamError, format!("bad URL {address}: {e}")))?;
        let primed = ledger.primed();
        let limit = ledger.limit();
        let mut result = Ok(false);
        let mut ingested = false;
        for page in 1..=history::MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("limit", &limit.to_string())
                .append_pair("sort", "desc");
            let (entries, more) = match self
                .get(url, deadline, &profile.login_path, &history::decode_page)
                .await
            {
                Ok(answer) => answer,
                Err(fault) => {
                    result = Err(fault);
                    break;
                }
            };
            let runs = history::runs(&self.fields, book, entries);
            let parsed = runs.len();
            let new = ledger.ingest(runs);
            ingested = true;
            let caught_up = new < parsed || parsed == 0;
            if caught_up || !more {
                break;
            }
            if page == history::MAX_PAGES {
                result = Ok(primed);
            }
        }
        if result.is_ok() || ingested {
            ledger.finish_read();
        }
        result
    }

    /// The settled profile; with `auto` and none yet, settles it now (the other targets
    /// wait for it). A fault of the probes fails this poll and they run again next time.
    pub(super) async fn profile(&self, deadline: Instant) -> Result<Profile, Fault> {
        let mut settled = self.profile.lock().await;
        if let Some(profile) = settled.as_ref() {
            return Ok(profile.clone());
        }
        let profile = self.settle(deadline).await?;
        match profile.version {
            Some(version) => tracing::info!(
                upstream = %self.fields.upstream(),
                api_version = version.as_str(),
                api_prefix = %profile.prefix,
                "ZDM API version settled"
            ),
            None => tracing::warn!(
                upstream = %self.fields.upstream(),
                api_prefix = %profile.prefix,
                "no documented ZDM path answered: polling with the newest version's paths (set api_version to choose)"
            ),
        }
        self.fields
            .upstream_info(profile.version.map(ApiVersion::as_str));
        *settled = Some(profile.clone());
        Ok(profile)
    }

    /// After a poll: remembers which targets answered 404; once every target has, `auto`
    /// forgets the settled version so the next poll settles it again (the server was
    /// upgraded or moved).
    async fn note(&self, target: &SourceTarget, result: &Result<PollOutput, Fault>) {
        if self.config.api_version != VersionChoice::Auto {
            return;
        }
        let key = (target.kind.rank(), target.index);
        let every = {
            let mut not_found = self
                .not_found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match result {
                Err(fault) if fault.outcome == Outcome::NotFound => {
                    not_found.insert(key);
                }
                _ => {
                    not_found.remove(&key);
                }
            }
            let total = self.config.servers.len()
                + self.config.backup_jobs.len()
                + self.config.recovery_jobs.len()
                + self.config.recovery_servers.len()
                + self.config.replication_jobs.len();
            let every = total > 0 && not_found.len() >= total;
            if every {
                not_found.clear();
            }
            every
        };
        if every {
            let mut settled = self.profile.lock().await;
            if settled.take().is_some() {
                tracing::info!(
                    upstream = %self.fields.upstream(),
                    "every ZDM target answered 404: settling the API version again"
                );
            }
        }
    }

    /// `auto`: which version the server speaks. With login and no `login.path`, the
    /// login paths newest first (2.0's, 1.x's, 0.2's) until one issues a token: 2.0's and
    /// 0.2's settle it. Otherwise the [`PROBES`] newest first under the prefix (the
    /// configured one, else `/api`, then `/api/v1` where only `/backups` is asked): the
    /// first documented path that is there names the version.
    async fn settle(&self, deadline: Instant) -> Result<Profile, Fault> {
        let mut issued_at = None;
        if self.auth.renews() && self.auth.login_path().is_none() {
            let mut failed = None;
            for (family, path) in login_candidates() {
                match self.auth.issue_at(&self.http, deadline, path).await {
                    Ok(()) => {
                        issued_at = Some((family, path));
                        break;
                    }
                    Err(fault) if fault.outcome == Outcome::AuthError => failed = Some(fault),
                    Err(fault) => return Err(fault),
                }
            }
            match issued_at {
                None => {
                    return Err(failed.unwrap_or_else(|| {
                        Fault::new(Outcome::AuthError, "no login path issued a token")
                    }))
                }
                Some((family @ (ApiVersion::V2_0 | ApiVersion::V0_2), path)) => {
                    return Ok(Profile::of(&self.config, Some(family), Some(path)));
                }
                Some(_) => {}
            }
        }
        let login_path = issued_at.map(|(_, path)| path);
        // With login, its path already told 2.0 (`/token/issue`) from the others.
        let login_known = self.auth.renews();
        let configured_2_0 = self
            .auth
            .login_path()
            .is_some_and(|p| p.trim_end_matches('/').ends_with("/token/issue"));
        if configured_2_0 {
            return Ok(Profile::of(&self.config, Some(ApiVersion::V2_0), None));
        }
        let prefixes: Vec<&str> = match &self.config.api_prefix {
            Some(prefix) => vec![prefix.as_str()],
            None => AUTO_PREFIXES.to_vec(),
        };
        let fallback = Profile::of(&self.config, None, login_path);
        for prefix in prefixes {
            for probe in PROBES {
                if login_known && probe.method == ProbeMethod::Login {
                    continue;
                }
                let oldest = probe.path == "/backups";
                if self.config.api_prefix.is_none()
                    && prefix == ApiVersion::V0_2.api_prefix()
                    && !oldest
                {
                    continue;
                }
                if self
                    .exists(prefix, probe, deadline, &fallback.login_path)
                    .await?
                {
                    let version = if oldest {
                        oldest_under(prefix)
                    } else {
                        probe.version
                    };
                    return Ok(Profile::of(&self.config, Some(version), login_path));
                }
            }
        }
        Ok(fallback)
    }

    /// Whether `probe`'s path is there under `prefix`: anything but 404 says yes (a 401
    /// or a server error cannot tell, and fails the poll).
    async fn exists(
        &self,
        prefix: &str,
        probe: Probe,
        deadline: Instant,
        login_path: &str,
    ) -> Result<bool, Fault> {
        let address = format!("{}{prefix}{}", self.config.url, probe.path);
        let mut url = Url::parse(&address)
            .map_err(|e| Fault::new(Outcome::UpstreamError, format!("bad URL {address}: {e}")))?;
        let result = match probe.method {
            ProbeMethod::Login => {
                let mut request = reqwest::Request::new(Method::POST, url);
                *request.body_mut() = Some("{}".into());
                request.headers_mut().insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                match self
                    .http
                    .fetch(request, PROBE_RULES, deadline, |_| Ok(()))
                    .await
                {
                    // The route is there; it refused the empty body.
                    Err(fault)
                        if matches!(
                            fault.outcome,
                            Outcome::Http4xx | Outcome::AuthError | Outcome::Incomplete
                        ) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            }
            ProbeMethod::List => {
                url.query_pairs_mut()
                    .append_pair("page", "1")
                    .append_pair("limit", "1");
                self.get(url, deadline, login_path, &|_| Ok(())).await
            }
        };
        match result {
            Ok(()) => Ok(true),
            Err(fault) if fault.outcome == Outcome::NotFound => Ok(false),
            Err(fault) => Err(fault),
        }
    }

    /// A server's jobs (backups or recoveries), page after page while
    /// `data.pagination.hasNextPage` says more follow (ZDM 1.0.3 on pages when
    /// `page`/`limit` are sent), each page mapped by `map`; the summary and the server name
    /// come from the first page. Bounded by `max_jobs_per_target` (checked after every page,
    /// so a long list stops early) and [`MAX_PAGES`].
    async fn poll_pages<T: Streamed + Paged>(
        &self,
        url: Url,
        deadline: Instant,
        login_path: &str,
        map: impl Fn(T) -> PollOutput,
    ) -> Result<PollOutput, Fault> {
        let fields = &self.fields;
        let first = first_page(&url);
        let mut output = PollOutput::default();
        let mut next = url.clone();
        for n in 0..MAX_PAGES {
            let data = self
                .get(next, deadline, login_path, &|b| decode_counted::<T>(fields, b))
                .await?;
            let more = data.has_next();
            let page = map(data);
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

    /// GET with the Bearer token (login at `login_path`), the answer decoded by `decode`
    /// (so a bad body is counted as `decode_error`); with login, a 401 re-issues the token
    /// and retries once.
    pub(super) async fn get<T>(
        &self,
        url: Url,
        deadline: Instant,
        login_path: &str,
        decode: &(dyn Fn(&[u8]) -> Result<T, Fault> + Sync),
    ) -> Result<T, Fault> {
        if !self.auth.renews() {
            return self
                .get_with_token(url, deadline, false, login_path, decode)
                .await;
        }
        let first = self
            .get_with_token(url.clone(), deadline, false, login_path, decode)
            .await;
        match first {
            Err(fault) if fault.outcome == Outcome::AuthError => {
                self.get_with_token(url, deadline, true, login_path, decode)
                    .await
            }
            result => result,
        }
    }

    async fn get_with_token<T>(
        &self,
        url: Url,
        deadline: Instant,
        renew: bool,
        login_path: &str,
        decode: &(dyn Fn(&[u8]) -> Result<T, Fault> + Sync),
    ) -> Result<T, Fault> {
        let mut request = reqwest::Request::new(Method::GET, url);
        self.auth
            .authorize(&mut request, &self.http, deadline, renew, login_path)
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
