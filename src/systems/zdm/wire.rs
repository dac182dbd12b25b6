//! ZDM's answers as serde structs: the `{success, data, error}` envelope, the `data` of
//! each endpoint, and the streamed readers of `job` (one entry or a list) and `log` (only
//! its last line is kept). Leaves are raw JSON values so a wrong type in one field is a
//! parse error of that field, not a failed poll.

use serde::Deserialize;
use serde_json::Value;

use crate::outcome::{Fault, Outcome};
use crate::sources::source::{count_entries, Entries, FieldParser};

/// Every ZDM answer: whether it succeeded, its `data`, and `error` when it did not.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope<T> {
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
pub(super) struct Jobs<T>(Vec<T>);

impl<T> Jobs<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        self.0
    }

    pub(super) fn as_slice(&self) -> &[T] {
        &self.0
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
pub(super) enum OneOrMany<T> {
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
pub(super) trait Streamed: for<'de> Deserialize<'de> {
    type Compat: for<'de> Deserialize<'de> + Into<Self>;

    /// The documented object this answer lacks (`data.system`, `data.job`), if any: such an
    /// answer is a `decode_error`, never "up with no jobs".
    fn missing(&self) -> Option<&'static str>;
}

/// What an answer with `system` and `job` lacks, `system` first.
fn lacks<S, J>(system: &Option<S>, job: &Option<J>) -> Option<&'static str> {
    match (system, job) {
        (None, _) => Some("data.system"),
        (_, None) => Some("data.job"),
        _ => None,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Named {
    pub(super) name: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SystemData<J = Jobs<JobEntry>> {
    pub(super) system: Option<Named>,
    pub(super) summary: Option<Summary>,
    pub(super) job: Option<J>,
    /// Present when the answer is one page (1.0.3 on, when `page`/`limit` are sent).
    pub(super) pagination: Option<Pagination>,
}

/// `data.pagination` of a paged answer: whether another page follows, and how many pages
/// the list has (which lets a listing ask for the rest at once).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Pagination {
    pub(super) has_next_page: Option<Value>,
    pub(super) total_pages: Option<Value>,
}

impl Pagination {
    /// True only for `hasNextPage: true` (anything else ends the list).
    pub(super) fn has_next(&self) -> bool {
        self.has_next_page.as_ref().and_then(Value::as_bool) == Some(true)
    }

    /// `totalPages` when it is a whole number that fits (anything else: unknown).
    pub(super) fn total_pages(&self) -> Option<u32> {
        self.total_pages
            .as_ref()
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    }
}

impl Streamed for SystemData {
    type Compat = SystemData<OneOrMany<JobEntry>>;

    fn missing(&self) -> Option<&'static str> {
        lacks(&self.system, &self.job)
    }
}

impl From<SystemData<OneOrMany<JobEntry>>> for SystemData {
    fn from(d: SystemData<OneOrMany<JobEntry>>) -> Self {
        SystemData {
            system: d.system,
            summary: d.summary,
            job: d.job.map(Jobs::from),
            pagination: d.pagination,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Summary {
    pub(super) total: Option<Value>,
    pub(super) completed: Option<Value>,
    pub(super) in_progress: Option<Value>,
    pub(super) failed: Option<Value>,
    pub(super) pending: Option<Value>,
    pub(super) overall_progress: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobEntry {
    pub(super) info: Option<JobInfo>,
    pub(super) progress_info: Option<ProgressInfo>,
    pub(super) log: Option<LastLine>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct JobInfo {
    pub(super) name: Option<Value>,
    pub(super) partition: Option<Value>,
    pub(super) drive: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ProgressInfo {
    pub(super) status: Option<Value>,
    pub(super) percent: Option<Value>,
    pub(super) message: Option<Value>,
    pub(super) start: Option<Value>,
    pub(super) elapsed: Option<Value>,
    pub(super) end: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct JobData<J = Jobs<JobEntry>> {
    pub(super) system: Option<Named>,
    pub(super) job: Option<J>,
}

impl Streamed for JobData {
    type Compat = JobData<OneOrMany<JobEntry>>;

    fn missing(&self) -> Option<&'static str> {
        lacks(&self.system, &self.job)
    }
}

impl From<JobData<OneOrMany<JobEntry>>> for JobData {
    fn from(d: JobData<OneOrMany<JobEntry>>) -> Self {
        JobData {
            system: d.system,
            job: d.job.map(Jobs::from),
        }
    }
}

/// `data` of a recovery job answer and of a recovery server answer; the server answer
/// adds `summary` and, when paged (1.0.3 on), `pagination`.
#[derive(Debug, Deserialize)]
pub(super) struct RecoveryData<J = Jobs<RecoveryJob>> {
    pub(super) system: Option<RecoverySystem>,
    pub(super) summary: Option<Summary>,
    pub(super) job: Option<J>,
    pub(super) pagination: Option<Pagination>,
}

impl Streamed for RecoveryData {
    type Compat = RecoveryData<OneOrMany<RecoveryJob>>;

    fn missing(&self) -> Option<&'static str> {
        lacks(&self.system, &self.job)
    }
}

impl From<RecoveryData<OneOrMany<RecoveryJob>>> for RecoveryData {
    fn from(d: RecoveryData<OneOrMany<RecoveryJob>>) -> Self {
        RecoveryData {
            system: d.system,
            summary: d.summary,
            job: d.job.map(Jobs::from),
            pagination: d.pagination,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RecoverySystem {
    pub(super) source: Option<Named>,
    pub(super) target: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RecoveryJob {
    pub(super) info: Option<JobInfo>,
    pub(super) log: Option<LastLine>,
    pub(super) details: Option<Vec<RecoveryDetail>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RecoveryDetail {
    pub(super) partition: Option<Value>,
    pub(super) drive: Option<Value>,
    pub(super) progress_info: Option<ProgressInfo>,
}

/// `data` of a replication job answer (`GET /replications/monitoring/job/:identifier`,
/// 1.1.0 on): `system.name` (the center), `job.info.name`, `job.log`,
/// `job.progress.{status, percent, message}`, `job.time.{start, end, elapsed}`.
#[derive(Debug, Deserialize)]
pub(super) struct ReplicationData<J = Jobs<ReplicationJob>> {
    pub(super) system: Option<Named>,
    pub(super) job: Option<J>,
}

impl Streamed for ReplicationData {
    type Compat = ReplicationData<OneOrMany<ReplicationJob>>;

    fn missing(&self) -> Option<&'static str> {
        lacks(&self.system, &self.job)
    }
}

impl From<ReplicationData<OneOrMany<ReplicationJob>>> for ReplicationData {
    fn from(d: ReplicationData<OneOrMany<ReplicationJob>>) -> Self {
        ReplicationData {
            system: d.system,
            job: d.job.map(Jobs::from),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplicationJob {
    pub(super) info: Option<JobInfo>,
    pub(super) log: Option<LastLine>,
    pub(super) progress: Option<ReplicationProgress>,
    pub(super) time: Option<ReplicationTime>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReplicationProgress {
    pub(super) status: Option<Value>,
    pub(super) percent: Option<Value>,
    pub(super) message: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReplicationTime {
    pub(super) start: Option<Value>,
    pub(super) end: Option<Value>,
    pub(super) elapsed: Option<Value>,
}

/// An answer that may be one page of several (`data.pagination`).
pub(super) trait Paged {
    /// True when `pagination.hasNextPage` says another page follows.
    fn has_next(&self) -> bool;
}

impl Paged for SystemData {
    fn has_next(&self) -> bool {
        self.pagination.as_ref().is_some_and(Pagination::has_next)
    }
}

impl Paged for RecoveryData {
    fn has_next(&self) -> bool {
        self.pagination.as_ref().is_some_and(Pagination::has_next)
    }
}

/// Decodes the ZDM envelope; `success: false` or a missing `data` is an upstream error.
/// [`decode_envelope`] after counting `data.job`: past `max_jobs_per_target` the answer
/// is refused before a single job is built.
/// An answer without the object its endpoint documents is a `decode_error`.
pub(super) fn decode_counted<T: Streamed>(fields: &FieldParser, body: &[u8]) -> Result<T, Fault> {
    fields.check_jobs(count_entries::<JobCount>(body))?;
    let data: T = decode_envelope(body)?;
    match data.missing() {
        Some(object) => Err(Fault::decode(format!("answer has no {object}"))),
        None => Ok(data),
    }
}

pub(super) fn decode_envelope<T: Streamed>(body: &[u8]) -> Result<T, Fault> {
    match serde_json::from_slice(body) {
        Ok(envelope) => open_envelope(envelope),
        // Not read straight: the untagged enum's reading decides (and its error is the
        // one reported).
        Err(_) => open_envelope(compat_envelope(body)?),
    }
}

/// The answer read with [`OneOrMany`], as every answer was read before [`Jobs`].
pub(super) fn compat_envelope<T: Streamed>(body: &[u8]) -> Result<Envelope<T>, Fault> {
    let compat: Envelope<T::Compat> = serde_json::from_slice(body).map_err(Fault::decode)?;
    Ok(Envelope {
        success: compat.success,
        data: compat.data.map(Into::into),
        error: compat.error,
    })
}

pub(super) fn open_envelope<T>(envelope: Envelope<T>) -> Result<T, Fault> {
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

/// The last non-empty line of a job's `log` array.
pub(super) fn last_log_line(log: Option<&LastLine>) -> Option<String> {
    log?.0.clone()
}

/// A job's `log` as it is used: the last line of the array that is a string and not blank
/// (the failure reason when the progress message gives none). It accepts and refuses what a
/// [`Value`] does, but keeps one line instead of building the whole array.
#[derive(Debug, Default)]
pub(super) struct LastLine(Option<String>);

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: an answer without `data.job` (or `data.system`) read as "up, no jobs".
    #[test]
    fn an_answer_without_its_documented_object_is_a_decode_error() {
        let telemetry = crate::telemetry::Telemetry::new();
        let fields = FieldParser::new(
            super::super::SYSTEM,
            std::sync::Arc::from("u"),
            chrono_tz::UTC,
            crate::status::StatusMap::new(),
            telemetry,
        );
        let no_job = br#"{"success":true,"data":{"system":{"name":"s"},"summary":{"total":0}}}"#;
        let null_job = br#"{"success":true,"data":{"system":{"name":"s"},"job":null}}"#;
        let no_system = br#"{"success":true,"data":{"job":[]}}"#;
        let empty = br#"{"success":true,"data":{}}"#;
        for (body, object) in [
            (&no_job[..], "data.job"),
            (&null_job[..], "data.job"),
            (&no_system[..], "data.system"),
            (&empty[..], "data.system"),
        ] {
            let text = String::from_utf8_lossy(body);
            for fault in [
                decode_counted::<SystemData>(&fields, body).err(),
                decode_counted::<JobData>(&fields, body).err(),
                decode_counted::<RecoveryData>(&fields, body).err(),
            ] {
                let fault = fault.unwrap_or_else(|| panic!("{text} decoded"));
                assert_eq!(fault.outcome, Outcome::DecodeError, "{text}");
                assert!(fault.reason.contains(object), "{text}: {}", fault.reason);
            }
        }
        // A documented object that is empty is an answer: a server with an empty job list.
        let listed = br#"{"success":true,"data":{"system":{"name":"s"},"job":[]}}"#;
        assert!(decode_counted::<SystemData>(&fields, listed).is_ok());
    }

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
}
