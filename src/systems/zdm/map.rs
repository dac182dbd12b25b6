//! ZDM: backup server, backup job and recovery job monitoring (API 1.0.x under `/api`,
//! later versions under `/api/v1`), Bearer token or login, mapping to the model.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::source::{
    bearer, count_entries, endpoint, set_bearer, Entries, FieldParser, IssuedToken, Source,
    SourceTarget, TokenCache, MAX_TOKEN_LIFETIME,
};
use crate::config::{Secret, ZdmAuth, ZdmConfig, ZdmTarget};
use crate::http::{StatusRules, UpstreamHttp};
use crate::model::{Failure, JobKey, JobRecord, PollOutput, ServerSummary, System, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::status::Status;

const RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: true,
    bad_request_is_auth_error: false,
};

pub struct Zdm {
    config: ZdmConfig,
    http: UpstreamHttp,
    fields: FieldParser,
    /// The token from login and when to re-issue it.
    issued: TokenCache,
    /// Each target's request URL (or why it has none), built once: servers, backup jobs,
    /// recovery jobs, each in configuration order.
    urls: [Vec<Result<Url, Fault>>; 3],
    /// `Authorization` of a static `token`, built once; `None` with login, or when the
    /// token cannot be a header value (then every request says so, as before).
    bearer: Option<HeaderValue>,
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
            (TargetKind::Server, &self.config.servers),
            (TargetKind::BackupJob, &self.config.backup_jobs),
            (TargetKind::RecoveryJob, &self.config.recovery_jobs),
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
            TargetKind::Server => (&self.config.servers, &self.urls[0]),
            TargetKind::BackupJob => (&self.config.backup_jobs, &self.urls[1]),
            TargetKind::RecoveryJob => (&self.config.recovery_jobs, &self.urls[2]),
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
            TargetKind::Server => {
                let data = self
                    .get(url, deadline, &|b| decode_counted::<SystemData>(fields, b))
                    .await?;
                map_system(fields, data, fallback)
            }
            TargetKind::BackupJob => {
                let data = self
                    .get(url, deadline, &|b| decode_counted::<JobData>(fields, b))
                    .await?;
                map_backup_job(fields, data, fallback)
            }
            TargetKind::RecoveryJob => {
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
    pub fn new(config: ZdmConfig, http: UpstreamHttp, fields: FieldParser) -> Self {
        let lists = [&config.servers, &config.backup_jobs, &config.recovery_jobs];
        let urls = std::array::from_fn(|i| {
            lists[i]
                .iter()
                .map(|target| url(&config, PATHS[i], target))
                .collect()
        });
        let bearer = match &config.auth {
            ZdmAuth::Token(token) => bearer(token).ok(),
            ZdmAuth::Login { .. } => None,
        };
        Zdm {
            config,
            http,
            fields,
            issued: TokenCache::default(),
            urls,
            bearer,
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
        if let ZdmAuth::Token(_) = &self.config.auth {
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
        match &self.bearer {
            Some(value) => {
                request
                    .headers_mut()
                    .insert(reqwest::header::AUTHORIZATION, value.clone());
            }
            None => set_bearer(&mut request, &self.token(deadline, renew).await?)?,
        }
        request.headers_mut().insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        self.http.fetch(request, RULES, deadline, decode).await
    }

    async fn token(&self, deadline: Instant, renew: bool) -> Result<Secret, Fault> {
        let (path, email, password) = match &self.config.auth {
            ZdmAuth::Token(token) => return Ok(token.clone()),
            ZdmAuth::Login {
                path,
                email,
                password,
            } => (path, email, password),
        };
        self.issued
            .get(renew, || async {
                let url = Url::parse(&format!("{}{}", self.config.url, path)).map_err(|e| {
                    Fault::new(Outcome::UpstreamError, format!("bad login URL: {e}"))
                })?;
                let mut request = reqwest::Request::new(Method::POST, url);
                let body =
                    serde_json::json!({ "email": email.expose(), "password": password.expose() });
                *request.body_mut() = Some(body.to_string().into());
                request.headers_mut().insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.http
                    .fetch(request, StatusRules::default(), deadline, parse_login)
                    .await
            })
            .await
    }
}

/// Reads `data.token` (or `token`) and `data.expiresAt` of a login answer.
fn parse_login(body: &[u8]) -> Result<IssuedToken, Fault> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Fault::decode(format!("login answer: {e}")))?;
    let token = v
        .pointer("/data/token")
        .or_else(|| v.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::new(Outcome::AuthError, "login answer has no token"))?;
    let expires_at = v
        .pointer("/data/expiresAt")
        .or_else(|| v.get("expiresAt"))
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64));
    Ok(IssuedToken {
        token: Secret::new(token.to_string()),
        renew_at: renew_at(Instant::now(), SystemTime::now(), expires_at),
    })
}

/// A token is used until one minute before it expires, or for half its life when that is
/// under two minutes; never longer than a day (re-issued daily without an expiry, or at once
/// when the upstream answers 401).
fn renew_at(now: Instant, now_wall: SystemTime, expires_at: Option<SystemTime>) -> Instant {
    let Some(expires_at) = expires_at else {
        return now + MAX_TOKEN_LIFETIME;
    };
    let lifetime = expires_at.duration_since(now_wall).unwrap_or_default();
    let usable = if lifetime < Duration::from_secs(120) {
        lifetime / 2
    } else {
        lifetime - Duration::from_secs(60)
    };
    now + usable.min(MAX_TOKEN_LIFETIME)
}

// Response structs: leaves are raw JSON values so a wrong type in one field is a parse
// error of that field, not a failed poll.

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: Option<bool>,
    data: Option<T>,
    error: Option<Value>,
}

/// A ZDM answer as counted before it is built: how many entries `data.job` holds.
#[derive(Deserialize)]
struct JobCount {
    data: Option<JobCountData>,
}

#[derive(Deserialize)]
struct JobCountData {
    job: Option<Entries>,
}

impl From<JobCount> for usize {
    fn from(c: JobCount) -> usize {
        c.data.and_then(|d| d.job).map_or(0, |e| e.0)
    }
}

/// `job`: a list of entries or one entry, read straight from the body (an array is the
/// list, an object the one entry, anything else an error). Serde's untagged enum
/// ([`OneOrMany`]) buffers the whole value and reads it again; this does not. Where this
/// fails, [`decode_envelope`] reads the answer again through [`OneOrMany`], so every answer
/// decodes exactly as the untagged enum decodes it.
#[derive(Debug)]
struct Jobs<T>(Vec<T>);

impl<T> Jobs<T> {
    fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Jobs<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Entries<T> {
            type Value = Jobs<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of jobs or one job")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Jobs<T>, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Jobs)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Jobs<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|one| Jobs(vec![one]))
            }
        }
        d.deserialize_any(Entries(std::marker::PhantomData))
    }
}

/// `job` as serde's untagged enum reads it: the reference [`Jobs`] falls back to.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> From<OneOrMany<T>> for Jobs<T> {
    fn from(jobs: OneOrMany<T>) -> Self {
        match jobs {
            OneOrMany::Many(v) => Jobs(v),
            OneOrMany::One(t) => Jobs(vec![t]),
        }
    }
}

/// A `data` shape read with [`Jobs`], and `Compat`, the same shape read with
/// [`OneOrMany`] for the answers [`Jobs`] refuses.
trait Streamed: for<'de> Deserialize<'de> {
    type Compat: for<'de> Deserialize<'de> + Into<Self>;
}

#[derive(Debug, Default, Deserialize)]
struct Named {
    name: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct SystemData<J = Jobs<JobEntry>> {
    system: Option<Named>,
    summary: Option<Summary>,
    job: Option<J>,
}

impl Streamed for SystemData {
    type Compat = SystemData<OneOrMany<JobEntry>>;
}

impl From<SystemData<OneOrMany<JobEntry>>> for SystemData {
    fn from(d: SystemData<OneOrMany<JobEntry>>) -> Self {
        SystemData {
            system: d.system,
            summary: d.summary,
            job: d.job.map(Jobs::from),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    total: Option<Value>,
    completed: Option<Value>,
    in_progress: Option<Value>,
    failed: Option<Value>,
    pending: Option<Value>,
    overall_progress: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobEntry {
    info: Option<JobInfo>,
    progress_info: Option<ProgressInfo>,
    log: Option<LastLine>,
}

#[derive(Debug, Default, Deserialize)]
struct JobInfo {
    name: Option<Value>,
    partition: Option<Value>,
    drive: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct ProgressInfo {
    status: Option<Value>,
    percent: Option<Value>,
    message: Option<Value>,
    start: Option<Value>,
    elapsed: Option<Value>,
    end: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct JobData<J = Jobs<JobEntry>> {
    system: Option<Named>,
    job: Option<J>,
}

impl Streamed for JobData {
    type Compat = JobData<OneOrMany<JobEntry>>;
}

impl From<JobData<OneOrMany<JobEntry>>> for JobData {
    fn from(d: JobData<OneOrMany<JobEntry>>) -> Self {
        JobData {
            system: d.system,
            job: d.job.map(Jobs::from),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RecoveryData<J = Jobs<RecoveryJob>> {
    system: Option<RecoverySystem>,
    job: Option<J>,
}

impl Streamed for RecoveryData {
    type Compat = RecoveryData<OneOrMany<RecoveryJob>>;
}

impl From<RecoveryData<OneOrMany<RecoveryJob>>> for RecoveryData {
    fn from(d: RecoveryData<OneOrMany<RecoveryJob>>) -> Self {
        RecoveryData {
            system: d.system,
            job: d.job.map(Jobs::from),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RecoverySystem {
    source: Option<Named>,
    target: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct RecoveryJob {
    info: Option<JobInfo>,
    log: Option<LastLine>,
    details: Option<Vec<RecoveryDetail>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecoveryDetail {
    partition: Option<Value>,
    drive: Option<Value>,
    progress_info: Option<ProgressInfo>,
}

/// Decodes the ZDM envelope; `success: false` or a missing `data` is an upstream error.
/// [`decode_envelope`] after counting `data.job`: past `max_jobs_per_target` the answer
/// is refused before a single job is built.
fn decode_counted<T: Streamed>(fields: &FieldParser, body: &[u8]) -> Result<T, Fault> {
    fields.check_jobs(count_entries::<JobCount>(body))?;
    decode_envelope(body)
}

fn decode_envelope<T: Streamed>(body: &[u8]) -> Result<T, Fault> {
    match serde_json::from_slice(body) {
        Ok(envelope) => open_envelope(envelope),
        // Not read straight: the untagged enum's reading decides (and its error is the
        // one reported).
        Err(_) => open_envelope(compat_envelope(body)?),
    }
}

/// The answer read with [`OneOrMany`], as every answer was read before [`Jobs`].
fn compat_envelope<T: Streamed>(body: &[u8]) -> Result<Envelope<T>, Fault> {
    let compat: Envelope<T::Compat> = serde_json::from_slice(body).map_err(Fault::decode)?;
    Ok(Envelope {
        success: compat.success,
        data: compat.data.map(Into::into),
        error: compat.error,
    })
}

fn open_envelope<T>(envelope: Envelope<T>) -> Result<T, Fault> {
    if envelope.success == Some(false) {
        let message = envelope
            .error
            .as_ref()
            .and_then(Value::as_str)
            .map(|m| crate::text::truncate(m, 200))
            .unwrap_or_else(|| "no error message".to_string());
        return Err(Fault::new(
            Outcome::UpstreamError,
            format!("success=false: {message}"),
        ));
    }
    envelope
        .data
        .ok_or_else(|| Fault::decode("answer has no data"))
}

fn name_of(fields: &FieldParser, field: &str, named: Option<&Named>) -> Option<String> {
    fields
        .text(field, named.and_then(|n| n.name.as_ref()))
        .filter(|n| !n.is_empty())
}

/// The volume label: a Linux partition or a Windows drive, "" when the API gives none.
fn volume(fields: &FieldParser, partition: Option<&Value>, drive: Option<&Value>) -> String {
    fields
        .text("partition", partition)
        .filter(|p| !p.is_empty() && p != "-")
        .or_else(|| {
            fields
                .text("drive", drive)
                .filter(|d| !d.is_empty() && d != "-")
        })
        .unwrap_or_default()
}

fn job_record(
    fields: &FieldParser,
    key: JobKey,
    progress: Option<&ProgressInfo>,
    log: Option<&LastLine>,
    info: Vec<(&'static str, String)>,
) -> JobRecord {
    let empty = ProgressInfo::default();
    let p = progress.unwrap_or(&empty);
    let (status, raw_status) = fields.status("status", p.status.as_ref());
    let message = fields
        .text("message", p.message.as_ref())
        .filter(|m| !m.trim().is_empty() && m != "-");
    // Why it failed: the progress message, else the last line of the job's log.
    let failure = (status == Status::Failed).then(|| {
        let reason = message.clone().or_else(|| last_log_line(log));
        Failure::new(reason.as_deref().unwrap_or(""), "")
    });
    JobRecord {
        key: Arc::new(key),
        status,
        raw_status,
        progress: fields.percent("percent", p.percent.as_ref()),
        elapsed_seconds: fields.duration("elapsed", p.elapsed.as_ref()),
        start_time: fields.time("start", p.start.as_ref()),
        end_time: fields.time("end", p.end.as_ref()),
        message,
        info,
        ended_runs: None,
        newest_success_end: None,
        failure,
        size_bytes: None,
    }
}

/// The last non-empty line of a job's `log` array.
fn last_log_line(log: Option<&LastLine>) -> Option<String> {
    log?.0.clone()
}

/// A job's `log` as it is used: the last line of the array that is a string and not blank
/// (the failure reason when the progress message gives none). It accepts and refuses what a
/// [`Value`] does, but keeps one line instead of building the whole array.
#[derive(Debug, Default)]
struct LastLine(Option<String>);

impl<'de> Deserialize<'de> for LastLine {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LogVisitor)
    }
}

/// `log` itself: an array is read line by line; anything else has no line.
struct LogVisitor;

impl<'de> serde::de::Visitor<'de> for LogVisitor {
    type Value = LastLine;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a job log")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<LastLine, A::Error> {
        let mut last = String::new();
        let mut found = false;
        while let Some(line) = seq.next_element_seed(LineSeed(&mut last))? {
            found |= line;
        }
        Ok(LastLine(found.then_some(last)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<LastLine, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(LastLine(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
    fn visit_unit<E>(self) -> Result<LastLine, E> {
        Ok(LastLine(None))
    }
}

/// One entry of `log`: a string that is not blank replaces the line kept in the buffer
/// (`true`); arrays and objects are read as a [`Value`] would read them, then dropped.
struct LineSeed<'a>(&'a mut String);

impl<'de> serde::de::DeserializeSeed<'de> for LineSeed<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LineSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a log line")
    }

    fn visit_str<E>(self, line: &str) -> Result<bool, E> {
        if line.trim().is_empty() {
            return Ok(false);
        }
        self.0.clear();
        self.0.push_str(line);
        Ok(true)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        Ok(false)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(false)
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

fn backup_jobs(fields: &FieldParser, server: &str, jobs: Option<Jobs<JobEntry>>) -> Vec<JobRecord> {
    let mut out = Vec::new();
    for entry in jobs.map(Jobs::into_vec).unwrap_or_default() {
        let info = entry.info.unwrap_or_default();
        let Some(job_name) = fields
            .text("info.name", info.name.as_ref())
            .filter(|n| !n.is_empty())
        else {
            fields.missing("info.name");
            continue;
        };
        let key = JobKey {
            system: System::Zdm,
            upstream: fields.upstream().clone(),
            operation: "backup".to_string(),
            job_name,
            server: server.to_string(),
            volume: volume(fields, info.partition.as_ref(), info.drive.as_ref()),
        };
        out.push(job_record(
            fields,
            key,
            entry.progress_info.as_ref(),
            entry.log.as_ref(),
            Vec::new(),
        ));
    }
    out
}

fn map_system(fields: &FieldParser, data: SystemData, fallback: &str) -> PollOutput {
    let server = name_of(fields, "system.name", data.system.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    let summaries = data
        .summary
        .map(|s| {
            vec![ServerSummary {
                server: server.clone(),
                completed: fields.count("summary.completed", s.completed.as_ref()),
                running: fields.count("summary.inProgress", s.in_progress.as_ref()),
                failed: fields.count("summary.failed", s.failed.as_ref()),
                pending: fields.count("summary.pending", s.pending.as_ref()),
                total: fields.count("summary.total", s.total.as_ref()),
                progress: fields.percent("summary.overallProgress", s.overall_progress.as_ref()),
            }]
        })
        .unwrap_or_default();
    PollOutput {
        jobs: backup_jobs(fields, &server, data.job),
        summaries,
    }
}

fn map_backup_job(fields: &FieldParser, data: JobData, fallback: &str) -> PollOutput {
    let server = name_of(fields, "system.name", data.system.as_ref())
        .unwrap_or_else(|| fallback.to_string());
    PollOutput {
        jobs: backup_jobs(fields, &server, data.job),
        summaries: Vec::new(),
    }
}

fn map_recovery_job(fields: &FieldParser, data: RecoveryData, fallback: &str) -> PollOutput {
    let system = data.system.as_ref();
    let source = name_of(
        fields,
        "system.source.name",
        system.and_then(|s| s.source.as_ref()),
    )
    .unwrap_or_default();
    // Without a target name the configured job id stands in, as backup endpoints do for
    // a missing system name (interface 5.1).
    let target = name_of(
        fields,
        "system.target.name",
        system.and_then(|s| s.target.as_ref()),
    )
    .unwrap_or_else(|| fallback.to_string());
    let mut jobs = Vec::new();
    for job in data.job.map(Jobs::into_vec).unwrap_or_default() {
        let info = job.info.unwrap_or_default();
        let job_name = fields
            .text("info.name", info.name.as_ref())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                fields.missing("info.name");
                fallback.to_string()
            });
        let labels = vec![
            ("source_server", source.clone()),
            ("target_server", target.clone()),
        ];
        for detail in job.details.unwrap_or_default() {
            let key = JobKey {
                system: System::Zdm,
                upstream: fields.upstream().clone(),
                operation: "restore".to_string(),
                job_name: job_name.clone(),
                server: target.clone(),
                volume: volume(fields, detail.partition.as_ref(), detail.drive.as_ref()),
            };
            jobs.push(job_record(
                fields,
                key,
                detail.progress_info.as_ref(),
                job.log.as_ref(),
                labels.clone(),
            ));
        }
    }
    PollOutput {
        jobs,
        summaries: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Status, StatusMap};
    use crate::telemetry::Telemetry;

    fn fields(telemetry: &Telemetry) -> FieldParser {
        let mut map = StatusMap::new();
        map.insert("verifying", Status::Running);
        FieldParser::new(
            System::Zdm,
            std::sync::Arc::from("u"),
            chrono_tz::Asia::Seoul,
            map,
            telemetry.clone(),
        )
    }

    fn system(body: &str) -> PollOutput {
        let telemetry = Telemetry::new();
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        map_system(&fields(&telemetry), data, "configured-id")
    }

    /// `LastLine` keeps what the `Value` it replaced gave, and refuses what it refused.
    #[test]
    fn last_log_line_reads_as_the_log_value_did() {
        fn from_value(log: &Value) -> Option<String> {
            log.as_array()?
                .iter()
                .rev()
                .filter_map(Value::as_str)
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        }
        let logs = [
            r#"["a","b"]"#,
            r#"["a","  ",""]"#,
            r#"["a\u0041",1,null,true,{"x":[1]},["y"],"  "]"#,
            r#"[1e400,"z",-0.5,18446744073709551616]"#,
            r#"[]"#,
            r#""one line""#,
            r#"{"line":"x"}"#,
            r#"5"#,
            r#"null"#,
            r#"["\ud800"]"#,
            r#"[{"a":"\ud800"}]"#,
            r#"["a",[[[["b"]]]]]"#,
            r#"["a","#,
            r#"["caf\u00e9 done","\t\n"]"#,
        ];
        for log in logs {
            let want = serde_json::from_str::<Option<Value>>(log)
                .map(|v| v.as_ref().and_then(from_value))
                .map_err(|e| e.to_string());
            let got = serde_json::from_str::<Option<LastLine>>(log)
                .map(|l| last_log_line(l.as_ref()))
                .map_err(|e| e.to_string());
            assert_eq!(got.is_ok(), want.is_ok(), "{log}: {got:?} vs {want:?}");
            if let (Ok(got), Ok(want)) = (got, want) {
                assert_eq!(got, want, "{log}");
            }
        }
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            serde_json::from_str::<Option<LastLine>>(&deep).is_ok(),
            serde_json::from_str::<Option<Value>>(&deep).is_ok()
        );
    }

    #[test]
    fn job_may_be_an_object_or_an_array() {
        let one = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"a","drive":"D:"},"progressInfo":{"status":"run"}}}}"#,
        );
        let many = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":[{"info":{"name":"a","drive":"D:"},"progressInfo":{"status":"run"}}]}}"#,
        );
        assert_eq!(one, many);
        assert_eq!(one.jobs.len(), 1);
        assert_eq!(one.jobs[0].key.volume, "D:");
        assert_eq!(one.jobs[0].status, Status::Running);
        assert!(one.summaries.is_empty());
    }

    #[test]
    fn dashes_nulls_and_missing_fields_are_absent_not_zero() {
        let out = system(
            r#"{"success":true,"data":{"job":[{"info":{"name":"a"},"progressInfo":{"status":"pending","percent":"-","start":null,"elapsed":"","end":"-","message":"-"}}]}}"#,
        );
        let job = &out.jobs[0];
        assert_eq!(
            job.key.server, "configured-id",
            "the configured id stands in for a missing system.name"
        );
        assert_eq!(job.key.volume, "");
        assert_eq!(
            (
                job.progress,
                job.elapsed_seconds,
                job.start_time,
                job.end_time
            ),
            (None, None, None, None)
        );
        assert_eq!(job.message, None);
    }

    /// A failed run says why: the progress message, else the job's last log line; a
    /// recovery without `system.target.name` uses the configured job id as `server`.
    #[test]
    fn failures_carry_their_reason_and_recoveries_fall_back_to_the_configured_id() {
        let out = system(
            r#"{"success":true,"data":{"system":{"name":"s"},"job":[
                {"info":{"name":"a"},"progressInfo":{"status":"fail","message":"  disk\n full "},"log":["x"]},
                {"info":{"name":"b"},"progressInfo":{"status":"error","message":"-"},"log":["Starting","Volume  shadow copy failed",""]},
                {"info":{"name":"c"},"progressInfo":{"status":"done"}}]}}"#,
        );
        let reason = |i: usize| out.jobs[i].failure.as_ref().map(|f| f.reason.clone());
        assert_eq!(reason(0).as_deref(), Some("disk full"));
        assert_eq!(reason(1).as_deref(), Some("Volume shadow copy failed"));
        assert_eq!(reason(2), None, "no failure, no reason");

        let telemetry = Telemetry::new();
        let data: RecoveryData = decode_envelope(
            br#"{"success":true,"data":{"system":{"source":{"name":"src"}},"job":{"info":{"name":"r"},"details":[{"partition":"/","progressInfo":{"status":"run"}}]}}}"#,
        )
        .unwrap();
        let out = map_recovery_job(&fields(&telemetry), data, "daily-recovery");
        assert_eq!(out.jobs[0].key.server, "daily-recovery");
    }

    /// Regression: `"percent": 1e400` (no f64 holds it) failed the whole poll.
    #[test]
    fn a_number_out_of_range_is_a_parse_error_of_its_field() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"a"},"progressInfo":{"status":"run","percent":1e400,"elapsed":-1e999}}}}"#;
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_system(&fields(&telemetry), data, "id");
        assert_eq!(out.jobs.len(), 1);
        assert_eq!(out.jobs[0].status, Status::Running);
        assert_eq!(out.jobs[0].progress, None);
        assert_eq!(telemetry.parse_error_count("zdm", "u", "percent"), 1);
        assert_eq!(telemetry.parse_error_count("zdm", "u", "elapsed"), 1);
    }

    #[test]
    fn bad_fields_are_counted_and_the_rest_of_the_job_is_kept() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"name":"s"},"summary":{"total":"x","completed":2,"inProgress":"1","failed":0,"pending":0,"overallProgress":"150%"},"job":[
            {"info":{"name":"a","partition":"/"},"progressInfo":{"status":"Verifying","percent":"abc","elapsed":{"h":1},"start":"yesterday","end":"2025-01-15 02:30:00"}},
            {"info":{"partition":"/x"},"progressInfo":{"status":"run"}},
            {"info":{"name":"c"},"progressInfo":{"status":"exploded","percent":45}}
        ]}}"#;
        let data: SystemData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_system(&fields(&telemetry), data, "id");
        assert_eq!(out.jobs.len(), 2, "the job without a name is skipped");
        let a = &out.jobs[0];
        assert_eq!(a.status, Status::Running, "status_map wins");
        assert_eq!(
            (a.progress, a.elapsed_seconds, a.start_time),
            (None, None, None)
        );
        assert_eq!(
            a.end_time,
            Some(1736875800.0),
            "naive time read in Asia/Seoul"
        );
        let c = &out.jobs[1];
        assert_eq!(c.status, Status::Unknown);
        assert_eq!(c.raw_status, "exploded");
        assert_eq!(
            c.progress,
            Some(0.45),
            "a number where a string was expected still parses"
        );
        // Counted under the field names every system shares (interface 5.1).
        for (field, count) in [
            ("percent", 2), // the job's "abc" and the summary's "150%"
            ("elapsed", 1),
            ("start_time", 1),
            ("job_name", 1),
            ("status", 1),
            ("summary", 1),
        ] {
            assert_eq!(
                telemetry.parse_error_count("zdm", "u", field),
                count,
                "{field}"
            );
        }
        let summary = &out.summaries[0];
        assert_eq!(
            (
                summary.total,
                summary.completed,
                summary.running,
                summary.progress
            ),
            (None, Some(2), Some(1), None),
            "an unparsable total is absent, not 0"
        );
    }

    #[test]
    fn recovery_details_become_one_series_per_volume_with_source_and_target() {
        let telemetry = Telemetry::new();
        let body = r#"{"success":true,"data":{"system":{"source":{"name":"src"},"target":{"name":"dst"}},"job":{"info":{"name":"r"},"details":[
            {"drive":"C:","progressInfo":{"status":"complete","percent":"100%","end":"2025-01-15T02:30:00Z"}},
            {"partition":"/home","progressInfo":{"status":"fail"}}]}}}"#;
        let data: RecoveryData = decode_envelope(body.as_bytes()).unwrap();
        let out = map_recovery_job(&fields(&telemetry), data, "id");
        assert_eq!(out.jobs.len(), 2);
        assert!(out
            .jobs
            .iter()
            .all(|j| j.key.operation == "restore" && j.key.server == "dst"));
        assert_eq!(out.jobs[0].key.volume, "C:");
        assert_eq!(out.jobs[1].status, Status::Failed);
        assert_eq!(
            out.jobs[0].info,
            vec![
                ("source_server", "src".to_string()),
                ("target_server", "dst".to_string())
            ]
        );
    }

    #[test]
    fn login_tokens_renew_a_minute_early_or_at_half_a_short_life() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let hour = renew_at(now, wall, Some(wall + Duration::from_secs(3600)));
        assert_eq!(hour - now, Duration::from_secs(3540));
        let short = renew_at(now, wall, Some(wall + Duration::from_secs(90)));
        assert_eq!(short - now, Duration::from_secs(45));
        let past = renew_at(now, wall, Some(wall - Duration::from_secs(5)));
        assert_eq!(past, now);
    }

    #[test]
    fn login_answer_reads_data_token_or_token() {
        let a = parse_login(
            br#"{"success":true,"data":{"token":"abc","expiresAt":"2999-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(a.token.expose(), "abc");
        let b = parse_login(br#"{"token":"xyz"}"#).unwrap();
        assert_eq!(b.token.expose(), "xyz");
        let missing = parse_login(br#"{"success":true,"data":{}}"#).err().unwrap();
        assert_eq!(missing.outcome, Outcome::AuthError);
        let garbage = parse_login(b"<html>").err().unwrap();
        assert_eq!(garbage.outcome, Outcome::DecodeError);
    }

    #[test]
    fn envelope_with_success_false_is_an_upstream_error() {
        let body = br#"{"success":false,"error":"nope","timestamp":"x"}"#;
        let e = decode_envelope::<JobData>(body).err().unwrap();
        assert_eq!(e.outcome, Outcome::UpstreamError);
        assert!(e.reason.contains("nope"));
        let e = decode_envelope::<JobData>(b"{\"success\":true}")
            .err()
            .unwrap();
        assert_eq!(e.outcome, Outcome::DecodeError);
        let e = decode_envelope::<JobData>(b"{\"success\":tr")
            .err()
            .unwrap();
        assert_eq!(e.outcome, Outcome::DecodeError);
    }

    mod fuzz {
        //! Arbitrary bytes and mutated seed-shaped answers through the decoders and mappers
        //! of each endpoint: `Ok` or a fault, never a panic, and what is kept stays in range.
        use super::*;
        use crate::sources::fuzzing;
        use proptest::prelude::*;

        const SYSTEM: &str = r#"{"success":true,"requestID":"r-1","timestamp":"2025-01-15 02:30:00","data":{"system":{"name":"server-01"},"summary":{"total":3,"completed":1,"inProgress":1,"failed":1,"pending":0,"overallProgress":"45%"},"job":[{"info":{"name":"a","partition":"/"},"progressInfo":{"status":"run","percent":"45%","message":"copying","start":"2025-01-15 02:00:00","elapsed":"00:30:00","end":"-"},"log":["x"]},{"info":{"name":"b","drive":"C:"},"progressInfo":{"status":"complete","percent":"100%","start":"2025-01-15T01:00:00Z","elapsed":"27:03:10","end":"2025-01-15T02:00:00+09:00"}}]}}"#;
        const JOB: &str = r#"{"success":true,"data":{"system":{"name":"s"},"job":{"info":{"name":"daily-backup","partition":"/var"},"progressInfo":{"status":"Verifying","percent":45.5,"start":"2025-01-15 02:00:00.123","elapsed":"1.02:03:04.5","end":null}}}}"#;
        const RECOVERY: &str = r#"{"success":true,"data":{"system":{"source":{"name":"src"},"target":{"name":"dst"}},"job":{"info":{"name":"r"},"details":[{"drive":"C:","progressInfo":{"status":"complete","percent":"100%","end":"2025-01-15T02:30:00Z"}},{"partition":"/home","progressInfo":{"status":"fail","elapsed":"PT1H2M3S"}}]}}}"#;
        const LOGIN: &str =
            r#"{"success":true,"data":{"token":"abc","expiresAt":"2999-01-01T00:00:00Z"}}"#;

        /// Object keys the mutations use: this system's field names.
        const KEYS: &[&str] = &[
            "success",
            "data",
            "system",
            "job",
            "info",
            "name",
            "partition",
            "drive",
            "progressInfo",
            "status",
            "percent",
            "elapsed",
            "start",
            "end",
            "summary",
            "details",
            "source",
            "target",
            "token",
        ];

        /// The streamed read decodes `body` exactly as the untagged enum does, for every
        /// endpoint: the same data or the same fault.
        fn streamed_as_untagged(body: &[u8]) -> Result<(), TestCaseError> {
            fn same<T: Streamed + std::fmt::Debug>(body: &[u8]) -> Result<(), TestCaseError> {
                let streamed = format!("{:?}", decode_envelope::<T>(body));
                let untagged = format!("{:?}", compat_envelope::<T>(body).and_then(open_envelope));
                prop_assert_eq!(streamed, untagged);
                Ok(())
            }
            same::<SystemData>(body)?;
            same::<JobData>(body)?;
            same::<RecoveryData>(body)
        }

        #[test]
        fn jobs_read_straight_decode_as_the_untagged_enum() {
            let bodies = [
                SYSTEM,
                JOB,
                RECOVERY,
                r#"{"success":true,"data":{"job":[]}}"#,
                r#"{"success":true,"data":{"job":null}}"#,
                r#"{"success":true,"data":{"job":5}}"#,
                r#"{"success":true,"data":{"job":"x"}}"#,
                r#"{"success":true,"data":{"job":[{"info":5}]}}"#,
                r#"{"success":true,"data":{"job":[[{"info":{"name":"a"}}]]}}"#,
                r#"{"success":true,"data":{"job":[{"info":{"name":"a"}},"x"]}}"#,
                r#"{"success":true,"data":{"job":{"info":{"name":"a"},"info":{}}}}"#,
                r#"{"success":true,"data":{"job":[{"progressInfo":{"percent":1e400}}]}}"#,
                r#"{"success":true,"data":{"job":{"details":[{"drive":"C:"}],"log":["a"]}}}"#,
                r#"{"success":false,"error":"no","data":{"job":[1]}}"#,
                r#"{"success":true,"data":{"job":[{"info":{"name":"a"}}"#,
            ];
            for body in bodies {
                streamed_as_untagged(body.as_bytes()).unwrap();
            }
        }

        fn all_endpoints(body: &[u8]) -> Result<(), TestCaseError> {
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            if let Ok(data) = decode_envelope::<SystemData>(body) {
                fuzzing::check(map_system(&fields, data, "id"))?;
            }
            if let Ok(data) = decode_envelope::<JobData>(body) {
                fuzzing::check(map_backup_job(&fields, data, "id"))?;
            }
            if let Ok(data) = decode_envelope::<RecoveryData>(body) {
                fuzzing::check(map_recovery_job(&fields, data, "id"))?;
            }
            if let Ok(issued) = parse_login(body) {
                prop_assert!(
                    issued.renew_at <= Instant::now() + crate::sources::MAX_TOKEN_LIFETIME
                );
            }
            Ok(())
        }

        #[test]
        fn seeds_decode_and_map() {
            let telemetry = Telemetry::new();
            let fields = fields(&telemetry);
            let system = map_system(&fields, decode_envelope(SYSTEM.as_bytes()).unwrap(), "id");
            assert_eq!((system.jobs.len(), system.summaries.len()), (2, 1));
            let job = map_backup_job(&fields, decode_envelope(JOB.as_bytes()).unwrap(), "id");
            assert_eq!(job.jobs.len(), 1);
            let recovery =
                map_recovery_job(&fields, decode_envelope(RECOVERY.as_bytes()).unwrap(), "id");
            assert_eq!(recovery.jobs.len(), 2);
            assert!(parse_login(LOGIN.as_bytes()).is_ok());
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
                all_endpoints(&body)?;
            }

            #[test]
            fn mutated_answers_never_panic(
                body in prop_oneof![fuzzing::mutated(SYSTEM, KEYS), fuzzing::mutated(JOB, KEYS), fuzzing::mutated(RECOVERY, KEYS), fuzzing::mutated(LOGIN, KEYS)]
            ) {
                all_endpoints(&body)?;
            }

            #[test]
            fn mutated_answers_decode_as_the_untagged_enum(
                body in prop_oneof![fuzzing::mutated(SYSTEM, KEYS), fuzzing::mutated(JOB, KEYS), fuzzing::mutated(RECOVERY, KEYS)]
            ) {
                streamed_as_untagged(&body)?;
            }
        }
    }
}
