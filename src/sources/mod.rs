//! The `Source` trait every upstream system implements, and the one place that registers them.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;
use serde_json::Value;

use crate::config::{Secret, Upstream, UpstreamKind};
use crate::http::{Fault, Limits, Outcome, UpstreamHttp};
use crate::model::{PollOutput, System, TargetKind};
use crate::parse;
use crate::status::{self, Status, StatusMap};
use crate::telemetry::Telemetry;

pub mod azure;
pub mod scp;
pub mod zdm;

/// One configured thing a source polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTarget {
    pub kind: TargetKind,
    /// The identifier as configured: the `target` label.
    pub name: String,
    /// Index into the source's own list for that kind.
    pub index: usize,
}

#[async_trait]
pub trait Source: Send + Sync {
    /// Every target of the upstream, in configuration order.
    fn targets(&self) -> Vec<SourceTarget>;
    /// Polls one target: all its requests (pages, logins, retries) finish before `deadline`
    /// or fail.
    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault>;
}

/// Builds the source of one configured upstream: the `type -> Source` map.
pub fn build(
    upstream: &Upstream,
    client: reqwest::Client,
    telemetry: Telemetry,
) -> Arc<dyn Source> {
    let name: Arc<str> = Arc::from(upstream.name.as_str());
    let limits = Limits {
        timeout: upstream.settings.timeout,
        max_body_bytes: upstream.settings.max_body_bytes,
        concurrency: upstream.settings.concurrency,
    };
    let system = upstream.kind.system();
    let http = UpstreamHttp::new(
        client,
        system.as_str(),
        name.clone(),
        limits,
        telemetry.clone(),
    );
    let fields = FieldParser::new(
        system,
        name,
        upstream.settings.timezone,
        upstream.status_map.clone(),
        telemetry,
    );
    match &upstream.kind {
        UpstreamKind::Zdm(config) => Arc::new(zdm::Zdm::new(config.clone(), http, fields)),
        UpstreamKind::Scp(config) => Arc::new(scp::Scp::new(config.clone(), http, fields)),
        UpstreamKind::Azure(config) => Arc::new(azure::Azure::new(config.clone(), http, fields)),
    }
}

/// Parses upstream strings into numbers for one upstream, counting what fails in
/// `backup_parse_errors_total{field}` instead of failing the job.
pub struct FieldParser {
    system: System,
    upstream: Arc<str>,
    timezone: chrono_tz::Tz,
    status_map: StatusMap,
    telemetry: Telemetry,
}

impl FieldParser {
    pub fn new(
        system: System,
        upstream: Arc<str>,
        timezone: chrono_tz::Tz,
        status_map: StatusMap,
        telemetry: Telemetry,
    ) -> Self {
        FieldParser {
            system,
            upstream,
            timezone,
            status_map,
            telemetry,
        }
    }

    /// Counts a required field the upstream left out.
    pub fn missing(&self, field: &str) {
        self.failed(field, &"missing");
    }

    pub fn upstream(&self) -> &Arc<str> {
        &self.upstream
    }

    fn failed(&self, field: &str, error: &dyn std::fmt::Display) {
        self.telemetry
            .parse_error(self.system.as_str(), &self.upstream, field);
        tracing::debug!(upstream = %self.upstream, field, error = %error, "unparsable upstream field");
    }

    /// A leaf as text: strings as they are, numbers and booleans printed, null absent.
    /// Objects and arrays where a scalar belongs are a parse error of `field`.
    pub fn text(&self, field: &str, value: Option<&Value>) -> Option<String> {
        match value? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.failed(
                    field,
                    &format!("expected a scalar, got {}", json_kind(other)),
                );
                None
            }
        }
    }

    fn with<T>(
        &self,
        field: &str,
        value: Option<&Value>,
        parse: impl Fn(&str) -> Result<Option<T>, parse::ParseError>,
    ) -> Option<T> {
        let text = self.text(field, value)?;
        match parse(&text) {
            Ok(v) => v,
            Err(e) => {
                self.failed(field, &e);
                None
            }
        }
    }

    pub fn percent(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, parse::parse_percent)
    }

    pub fn duration(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, parse::parse_duration)
    }

    pub fn time(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, |s| parse::parse_time(s, self.timezone))
    }

    /// A count: a non-negative integer as number or string; absent when missing.
    pub fn count(&self, field: &str, value: Option<&Value>) -> Option<u64> {
        if let Some(n) = value.and_then(Value::as_u64) {
            return Some(n);
        }
        let text = self.text(field, value)?;
        let text = text.trim();
        if text.is_empty() || text == "-" {
            return None;
        }
        match text.parse::<u64>() {
            Ok(n) => Some(n),
            Err(e) => {
                self.failed(field, &e);
                None
            }
        }
    }

    /// The normalized status; an unrecognized word is `unknown`, counted, and logged once.
    pub fn status(&self, field: &str, value: Option<&Value>) -> (Status, String) {
        let raw = self.text(field, value).unwrap_or_default();
        let status = status::parse_status(&raw, &self.status_map);
        if status == Status::Unknown {
            self.telemetry
                .parse_error(self.system.as_str(), &self.upstream, field);
            if first_sighting(&self.upstream, &raw) {
                tracing::warn!(
                    upstream = %self.upstream,
                    field,
                    raw_status = %raw,
                    "unrecognized job status, exported as unknown (map it with status_map)"
                );
            }
        }
        (status, raw)
    }
}

/// True the first time a raw status is seen for an upstream (bounded, so hostile upstreams
/// cannot grow it without limit).
fn first_sighting(upstream: &str, raw: &str) -> bool {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= 1024 {
        return false;
    }
    seen.insert((upstream.to_string(), raw.to_string()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A token issued by an upstream, and when to ask for a new one.
pub struct IssuedToken {
    pub token: Secret,
    pub renew_at: Instant,
}

/// One upstream's issued token, shared by its targets; one issue in flight at a time.
#[derive(Default)]
pub struct TokenCache {
    current: tokio::sync::Mutex<Option<IssuedToken>>,
}

impl TokenCache {
    /// The cached token, or a new one from `issue` when it is due for renewal or `renew`
    /// is set (after the upstream answered 401).
    pub async fn get<F, Fut>(&self, renew: bool, issue: F) -> Result<Secret, Fault>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<IssuedToken, Fault>>,
    {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref() {
            if !renew && Instant::now() < cached.renew_at {
                return Ok(cached.token.clone());
            }
        }
        let fresh = issue().await?;
        let token = fresh.token.clone();
        *current = Some(fresh);
        Ok(token)
    }
}

/// Sets `Authorization: Bearer <token>`, marked sensitive so no debug output shows it.
pub fn set_bearer(request: &mut reqwest::Request, token: &Secret) -> Result<(), Fault> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        Fault::new(
            Outcome::AuthError,
            "token holds characters not allowed in a header",
        )
    })?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// `base` with `segments` appended, each percent-encoded as one path segment (ids may hold
/// Korean text, spaces or slashes).
pub fn endpoint(base: &str, segments: &[&str]) -> Result<Url, Fault> {
    let bad = |why: String| Fault::new(Outcome::UpstreamError, format!("bad URL {base}: {why}"));
    let mut url =
        Url::parse(&format!("{}/", base.trim_end_matches('/'))).map_err(|e| bad(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|_| bad("it cannot have a path".to_string()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
