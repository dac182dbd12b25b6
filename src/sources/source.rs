//! What every system's source shares: the `Source` trait, its targets, the field parser
//! that counts parse errors, the token cache and request helpers. The systems import this;
//! it imports none of them.

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Url;
use serde_json::Value;

use crate::config::checks::Secret;
use crate::config::settings::DEFAULT_MAX_JOBS_PER_TARGET;
use crate::inventory::InventorySeries;
use crate::model::{ParseField, PollOutput, System, TargetKind};
use crate::outcome::{Fault, Outcome};
use crate::parse;
use crate::status::{self, Status, StatusMap};
use crate::telemetry::Telemetry;
use crate::text::{loggable, truncate};

/// One configured thing a source polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTarget {
    /// What it points at: the `kind` label.
    pub kind: TargetKind,
    /// The identifier as configured: the `target` label.
    pub name: String,
    /// Index into the source's own list for that kind; [`SourceTarget::DISCOVERED`] for a
    /// target its upstream's listing named (polled by `name` alone, with no query filters).
    pub index: usize,
}

impl SourceTarget {
    /// The `index` of a discovered target.
    pub const DISCOVERED: usize = usize::MAX;

    /// A target the upstream's listing named.
    pub fn discovered(kind: TargetKind, name: String) -> Self {
        SourceTarget {
            kind,
            name,
            index: Self::DISCOVERED,
        }
    }

    /// Whether discovery found it (rather than the configuration).
    pub fn is_discovered(&self) -> bool {
        self.index == Self::DISCOVERED
    }
}

/// How one listing runs: the requests it may have in flight at once (the slots of the
/// upstream's `concurrency` it holds while it runs), and where it hands the targets it has
/// found so far before it ends. The discovery loop starts polling those while the rest is
/// listed; they stay if the listing then fails (it named them). A target may be handed over
/// more than once; every one must still be in the listing's [`Discovery::targets`].
pub struct Listing<'a> {
    pub requests: usize,
    early: &'a (dyn Fn(Vec<(TargetKind, String)>) + Send + Sync),
}

impl<'a> Listing<'a> {
    /// A listing of `requests` at once that hands its targets to `early`.
    pub fn new(
        requests: usize,
        early: &'a (dyn Fn(Vec<(TargetKind, String)>) + Send + Sync),
    ) -> Self {
        Listing {
            requests: requests.max(1),
            early,
        }
    }

    /// A listing of `requests` at once whose targets are used once it is complete.
    pub fn unhurried(requests: usize) -> Listing<'static> {
        Listing::new(requests, &|_| {})
    }

    /// Hands over targets found so far (none: nothing happens).
    pub fn found(&self, targets: Vec<(TargetKind, String)>) {
        if !targets.is_empty() {
            (self.early)(targets);
        }
    }
}

/// What one listing of an upstream found (`discover: true`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    /// Every target the listing names, of the source's kinds; duplicates are allowed.
    pub targets: Vec<(TargetKind, String)>,
    /// The inventory series (asked only of the shard that exports them).
    pub inventory: Vec<InventorySeries>,
    /// Why a part of the inventory could not be listed this time (its last series are in
    /// `inventory` again); the targets are complete all the same.
    pub partial: Vec<Fault>,
}

/// One upstream's poller of its targets: each system has one.
#[async_trait]
pub trait Source: Send + Sync {
    /// Every target of the upstream, in configuration order.
    fn targets(&self) -> Vec<SourceTarget>;
    /// Polls one target: all its requests (pages, logins, retries) finish before `deadline`
    /// or fail.
    async fn poll(&self, target: &SourceTarget, deadline: Instant) -> Result<PollOutput, Fault>;
    /// Lists the upstream's targets (`discover: true`), and with `inventory` its inventory
    /// series too, as `listing` says. Every request finishes
    /// before `deadline`. A system that cannot list has this default, and its config
    /// refuses `discover: true`.
    async fn discover(
        &self,
        _deadline: Instant,
        _inventory: bool,
        _listing: &Listing<'_>,
    ) -> Result<Discovery, Fault> {
        Err(Fault::new(
            Outcome::UpstreamError,
            "this upstream's type cannot discover its targets",
        ))
    }
}

/// Parses upstream strings into numbers for one upstream, counting what fails in
/// `backup_parse_errors_total{field}` instead of failing the job.
pub struct FieldParser {
    system: System,
    /// The shared `field` label of each of the system's own field names.
    labels: fn(&str) -> ParseField,
    upstream: Arc<str>,
    timezone: chrono_tz::Tz,
    status_map: StatusMap,
    telemetry: Telemetry,
    max_jobs: usize,
}

impl FieldParser {
    /// The parser of `upstream`'s answers; its field names are counted under the shared
    /// names ([`ParseField::of`]) until [`FieldParser::with_labels`] gives the system's own.
    pub fn new(
        system: System,
        upstream: Arc<str>,
        timezone: chrono_tz::Tz,
        status_map: StatusMap,
        telemetry: Telemetry,
    ) -> Self {
        FieldParser {
            system,
            labels: ParseField::of,
            upstream,
            timezone,
            status_map,
            telemetry,
            max_jobs: DEFAULT_MAX_JOBS_PER_TARGET,
        }
    }

    /// Sets the system's table from its own field names to the shared `field` labels of
    /// `backup_parse_errors_total`.
    pub fn with_labels(mut self, labels: fn(&str) -> ParseField) -> Self {
        self.labels = labels;
        self
    }

    /// Sets `max_jobs_per_target`: an answer (or a paged list) with more jobs fails.
    pub fn with_max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs.max(1);
        self
    }

    /// `max_jobs_per_target`.
    pub fn max_jobs(&self) -> usize {
        self.max_jobs
    }

    /// `too_large` when `jobs` exceeds `max_jobs_per_target`: a fleet answer that large is
    /// refused before it is built, instead of growing memory (a truncated list would make
    /// jobs vanish silently).
    pub fn check_jobs(&self, jobs: usize) -> Result<(), Fault> {
        if jobs > self.max_jobs {
            return Err(Fault::new(
                Outcome::TooLarge,
                format!("{jobs} jobs exceed max_jobs_per_target ({})", self.max_jobs),
            ));
        }
        Ok(())
    }

    /// Counts a required field the upstream left out.
    pub fn missing(&self, field: &str) {
        self.failed(field, &"missing");
    }

    /// The `upstream` label.
    pub fn upstream(&self) -> &Arc<str> {
        &self.upstream
    }

    /// The zone for times without an offset.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone
    }

    /// Exports `backup_upstream_info{api_version}` of this upstream (`None`: removes it).
    pub fn upstream_info(&self, api_version: Option<&str>) {
        self.telemetry
            .upstream_info(self.system.as_str(), &self.upstream, api_version);
    }

    /// Counts a value of `field` that could not be parsed.
    pub fn invalid(&self, field: &str, error: &dyn std::fmt::Display) {
        self.failed(field, error);
    }

    fn failed(&self, field: &str, error: &dyn std::fmt::Display) {
        self.telemetry
            .parse_error(self.system.as_str(), &self.upstream, (self.labels)(field));
        tracing::debug!(upstream = %self.upstream, field, error = %error, "unparsable upstream field");
    }

    /// A leaf as text: strings as they are, numbers and booleans printed, null absent.
    /// Objects and arrays where a scalar belongs are a parse error of `field`.
    pub fn text(&self, field: &str, value: Option<&Value>) -> Option<String> {
        self.scalar(field, value).map(Cow::into_owned)
    }

    /// [`FieldParser::text`] borrowed where the value is a string (no copy for a value
    /// that is only parsed).
    fn scalar<'v>(&self, field: &str, value: Option<&'v Value>) -> Option<Cow<'v, str>> {
        match value? {
            Value::Null => None,
            Value::String(s) => Some(Cow::Borrowed(s)),
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            Value::Bool(b) => Some(Cow::Owned(b.to_string())),
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
        let text = self.scalar(field, value)?;
        match parse(&text) {
            Ok(v) => v,
            Err(e) => {
                self.failed(field, &e);
                None
            }
        }
    }

    /// A percentage as a ratio from 0 to 1.
    pub fn percent(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, parse::parse_percent)
    }

    /// A duration in seconds.
    pub fn duration(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, parse::parse_duration)
    }

    /// A time as Unix seconds, read in the upstream's zone when it carries no offset.
    pub fn time(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, |s| parse::parse_time(s, self.timezone))
    }

    /// A size in bytes: a number is bytes, a string is read by [`parse::parse_size`]
    /// (`"512.0 GB"`).
    pub fn size(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        if let Some(n) = value.and_then(Value::as_f64) {
            if n.is_finite() && n >= 0.0 {
                return Some(n);
            }
            self.failed(field, &"a negative or non-finite size");
            return None;
        }
        self.with(field, value, parse::parse_size)
    }

    /// A date (`2026-01-01`, the start of that day in the upstream's zone) or a time, as
    /// Unix seconds.
    pub fn date(&self, field: &str, value: Option<&Value>) -> Option<f64> {
        self.with(field, value, |s| parse::parse_date(s, self.timezone))
    }

    /// A count: a non-negative integer as number or string; absent when missing.
    pub fn count(&self, field: &str, value: Option<&Value>) -> Option<u64> {
        if let Some(n) = value.and_then(Value::as_u64) {
            return Some(n);
        }
        let text = self.scalar(field, value)?;
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
        self.status_with(field, value, |_| None)
    }

    /// [`status`](Self::status) with a system's own words: `status_map` wins, then `own`
    /// (given the word normalized, lower case without spaces, `_` or `-`), then the shared
    /// table.
    pub fn status_with(
        &self,
        field: &str,
        value: Option<&Value>,
        own: impl Fn(&str) -> Option<Status>,
    ) -> (Status, String) {
        let raw = self.text(field, value).unwrap_or_default();
        let status = match self.status_map.lookup(&raw) {
            Some(mapped) => mapped,
            None => own(&status::normalize_status(&raw))
                .unwrap_or_else(|| status::parse_status(&raw, &self.status_map)),
        };
        if status == Status::Unknown {
            self.telemetry
                .parse_error(self.system.as_str(), &self.upstream, (self.labels)(field));
            if first_sighting(&self.upstream, &raw) {
                tracing::warn!(
                    upstream = %self.upstream,
                    field,
                    raw_status = %loggable(&raw, SIGHTING_CHARS),
                    "unrecognized job status, exported as unknown (map it with status_map)"
                );
            }
        }
        (status, raw)
    }
}

/// Distinct unrecognized status words remembered for "log once"; past that they are
/// counted but no longer logged.
const MAX_SIGHTINGS: usize = 256;
/// Characters of an unrecognized status word kept and logged.
const SIGHTING_CHARS: usize = 64;

/// True the first time a raw status is seen for an upstream. Bounded in count and in the
/// length of what it keeps, so a hostile upstream can grow neither memory nor the log.
static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();

fn first_sighting(upstream: &str, raw: &str) -> bool {
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() >= MAX_SIGHTINGS {
        return false;
    }
    seen.insert((upstream.to_string(), truncate(raw, SIGHTING_CHARS)))
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

/// The longest an issued token is used, whatever lifetime the upstream claims: a hostile
/// or broken `expires_in` can neither overflow the clock nor pin a token for years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A token issued by an upstream, and when to ask for a new one.
pub struct IssuedToken {
    /// The token.
    pub token: Secret,
    /// When the cache asks for a new one.
    pub renew_at: Instant,
}

impl IssuedToken {
    /// A token to be renewed after `usable` (at most [`MAX_TOKEN_LIFETIME`]) from now.
    pub fn renewed_after(token: Secret, usable: Duration) -> Self {
        IssuedToken {
            token,
            renew_at: Instant::now() + usable.min(MAX_TOKEN_LIFETIME),
        }
    }
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
    request.headers_mut().insert(AUTHORIZATION, bearer(token)?);
    Ok(())
}

/// The value of `Authorization: Bearer <token>`, marked sensitive.
pub fn bearer(token: &Secret) -> Result<HeaderValue, Fault> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
        Fault::new(
            Outcome::AuthError,
            "token holds characters not allowed in a header",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
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

/// How many entries a JSON array holds, read without building them (an object counts as
/// one entry, anything else as none): the cheap first look at an answer that
/// `max_jobs_per_target` may refuse.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Entries(pub usize);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> serde::de::Visitor<'de> for Counter {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of jobs or one job")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Entries, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Entries(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Entries, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Entries(1))
            }
            fn visit_unit<E>(self) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_none<E>(self) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Entries, E> {
                Ok(Entries(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Entries, E> {
                Ok(Entries(0))
            }
        }
        d.deserialize_any(Counter)
    }
}

/// The job count of an answer through the counting shape `C` (0 when the body does not
/// parse: the real decode reports that).
pub fn count_entries<C: for<'de> serde::Deserialize<'de> + Into<usize>>(body: &[u8]) -> usize {
    serde_json::from_slice::<C>(body).map_or(0, Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: unique 1 MB status words grew the "log once" set without bound and were
    /// logged in full.
    #[test]
    fn unrecognized_status_sightings_are_bounded_in_count_and_length() {
        let upstream = "sightings-test";
        let huge = "x".repeat(1 << 20);
        assert!(first_sighting(upstream, &huge));
        assert!(!first_sighting(upstream, &huge), "logged once");
        let stored = {
            let seen = SEEN.get_or_init(Default::default);
            let seen = seen.lock().unwrap();
            seen.iter()
                .filter(|(u, _)| u == upstream)
                .map(|(_, raw)| raw.chars().count())
                .max()
        };
        assert_eq!(
            stored,
            Some(SIGHTING_CHARS + 1),
            "kept cut to 64 characters and …"
        );
        for i in 0..(MAX_SIGHTINGS * 2) {
            first_sighting(upstream, &format!("word-{i}"));
        }
        let total = SEEN.get_or_init(Default::default).lock().unwrap().len();
        assert!(total <= MAX_SIGHTINGS, "{total} remembered");
        assert!(
            !first_sighting(upstream, "one-more-new-word"),
            "full: no more logged"
        );
    }
}
