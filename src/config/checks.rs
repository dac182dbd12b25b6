//! Small checks every part of the config shares: the error collector, typed reading with
//! YAML paths, durations, time zones, URLs, secrets from the environment or a file,
//! `status_map`. Imports only `error` and the leaf `status`, so every config file can use it.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::error::ConfigError;
use crate::status::{Status, StatusMap};

/// A credential read from a file or the environment. Never printed: `Debug` and
/// `Display` show `<redacted>`, and it has no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(s: String) -> Self {
        Secret(s)
    }

    /// The credential itself, for the request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A duration-like value as written; interpreted during validation so the error can
/// say which forms are accepted.
#[derive(Debug)]
pub struct RawDuration(pub String);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like 500ms, 30s, 5m or 1h")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A string, number or bool, kept as text (it ends up in a URL).
#[derive(Debug)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `path.key`, or `key` at the top level.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `1 server`, `2 servers`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A value that does not fit its type, and the top-level key it sits under (`None`: the map
/// as a whole, e.g. a missing key, which serde reports after every key was read).
#[derive(Debug)]
pub struct Misfit {
    /// What does not fit, at its full YAML path.
    pub error: ConfigError,
    /// The top-level key it sits under.
    pub key: Option<String>,
}

/// Deserializes `value` as `T`; a failure carries its full YAML path.
pub fn deserialize<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, Misfit> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let key = match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
            _ => None,
        };
        let inner = e.path().to_string();
        let full = if inner == "." {
            path.to_owned()
        } else if inner.starts_with('[') {
            format!("{path}{inner}")
        } else {
            join(path, &inner)
        };
        let message = e.into_inner().to_string();
        // Say it in YAML terms: serde's "field" is a key, `usize` a whole number.
        let message = message
            .replacen("unknown field `", "unknown key `", 1)
            .replacen("missing field `", "missing key `", 1)
            .replace("expected usize", "expected a whole number")
            .replace("expected u64", "expected a whole number");
        Misfit {
            error: ConfigError {
                path: full,
                message,
            },
            key,
        }
    })
}

/// The validation pass: collects every problem, reads secrets from `base_dir` and `env`.
pub struct Cx<'a> {
    /// Every problem found so far, in the order found.
    pub errors: Vec<ConfigError>,
    /// The config file's directory: relative secret and certificate files are read there.
    pub base_dir: &'a Path,
    /// Looks up an environment variable (injectable for tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `LoadOptions::skip_secrets`: check the shape of secret settings, read none.
    pub skip_secrets: bool,
}

/// Every secret's value under `LoadOptions::skip_secrets`.
const SKIPPED_SECRET: &str = "skipped-secret";

impl Cx<'_> {
    /// Reports a problem at `path`.
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Deserializes `value` as `T`, reporting a failure at its full YAML path.
    pub fn typed<T: DeserializeOwned>(&mut self, path: &str, value: Value) -> Option<T> {
        match deserialize(path, value) {
            Ok(t) => Some(t),
            Err(misfit) => {
                self.errors.push(misfit.error);
                None
            }
        }
    }

    /// An upstream's `name`: the `upstream` label, so it must say something.
    pub fn name(&mut self, path: &str, name: &str) {
        if name.trim().is_empty() {
            self.error(join(path, "name"), "must not be empty");
        }
    }

    /// A duration greater than zero.
    pub fn duration(&mut self, path: &str, raw: &RawDuration) -> Option<Duration> {
        match humantime::parse_duration(raw.0.trim()) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    path,
                    format!(
                        "invalid duration `{}`: {e} (expected e.g. 500ms, 30s, 5m, 1h)",
                        raw.0
                    ),
                );
                None
            }
        }
    }

    /// A duration within `range`; zero is refused as with [`Cx::duration`].
    pub fn bounded_duration(
        &mut self,
        path: &str,
        raw: &RawDuration,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let d = self.duration(path, raw)?;
        if range.contains(&d) {
            return Some(d);
        }
        self.error(
            path,
            format!(
                "must be from {} to {}, got `{}`",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end()),
                raw.0.trim()
            ),
        );
        None
    }

    /// A whole number within `range`; zero is refused as with [`Cx::positive`].
    pub fn bounded<T>(&mut self, path: &str, v: T, range: RangeInclusive<T>) -> Option<T>
    where
        T: Copy + Default + PartialOrd + fmt::Display,
    {
        let v = self.positive(path, v)?;
        if range.contains(&v) {
            return Some(v);
        }
        self.error(
            path,
            format!("must be from {} to {}, got {v}", range.start(), range.end()),
        );
        None
    }

    /// An IANA time zone name.
    pub fn timezone(&mut self, path: &str, raw: &str) -> Option<chrono_tz::Tz> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map_err(|_| {
                self.error(
                    path,
                    format!(
                        "unknown time zone `{raw}`, expected an IANA name like UTC or Asia/Seoul"
                    ),
                )
            })
            .ok()
    }

    /// A number greater than zero.
    pub fn positive<T: Copy + Default + PartialEq>(&mut self, path: &str, v: T) -> Option<T> {
        if v == T::default() {
            self.error(path, "must be greater than zero");
            None
        } else {
            Some(v)
        }
    }

    /// Extra raw status -> normalized status.
    pub fn status_map(&mut self, path: &str, raw: Option<&BTreeMap<String, String>>) -> StatusMap {
        let mut status_map = StatusMap::new();
        for (key, value) in raw.into_iter().flatten() {
            let entry = format!("{path}.{key}");
            if crate::status::normalize_status(key).is_empty() {
                self.error(
                    entry.clone(),
                    "status_map key must contain a letter or digit",
                );
            }
            match Status::from_label(value.trim()) {
                Some(status) => status_map.insert(key, status),
                None => {
                    let labels: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    self.error(
                        entry,
                        format!(
                            "unknown status `{value}`, expected one of {}",
                            labels.join(", ")
                        ),
                    );
                }
            }
        }
        status_map
    }

    /// An http(s) base URL without credentials, query or fragment; no trailing slash.
    pub fn url(&mut self, path: &str, raw: &str) -> Option<String> {
        let raw = raw.trim();
        // A URL may carry credentials; only echo it when it cannot.
        let shown = if raw.contains('@') { "(hidden)" } else { raw };
        let parsed = match reqwest::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                self.error(
                    path,
                    format!(
                        "invalid url `{shown}`: {e} (expected e.g. https://backup.example.com)"
                    ),
                );
                return None;
            }
        };
        let problem = if !matches!(parsed.scheme(), "http" | "https") {
            Some("the scheme must be http or https")
        } else if !parsed.has_host() {
            Some("a host is required")
        } else if !parsed.username().is_empty() || parsed.password().is_some() {
            Some("credentials must not be in the url; use token_file, token_env or login")
        } else if parsed.query().is_some() || parsed.fragment().is_some() {
            Some("a query or fragment is not allowed")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                self.error(path, format!("invalid url `{shown}`: {problem}"));
                None
            }
            None => Some(parsed.as_str().trim_end_matches('/').to_owned()),
        }
    }

    /// Normalizes a URL path to a leading `/` and no trailing `/`; `allow_root` lets
    /// `/` (and `""`) stand for "no prefix".
    pub fn url_path(&mut self, path: &str, raw: &str, allow_root: bool) -> Option<String> {
        let trimmed = raw.trim().trim_matches('/');
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            self.error(
                path,
                format!("invalid path `{raw}`: must not contain spaces, `?` or `#`"),
            );
            return None;
        }
        if trimmed.is_empty() {
            if allow_root {
                return Some(String::new());
            }
            self.error(path, "must not be empty");
            return None;
        }
        Some(format!("/{trimmed}"))
    }

    /// The value of the environment variable `var` names.
    pub fn env_secret(&mut self, path: &str, var: &str) -> Option<Secret> {
        let var = var.trim();
        if var.is_empty() {
            self.error(path, "the environment variable name must not be empty");
            return None;
        }
        let valid_name = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            // Not echoed: a value here is more likely a pasted secret than a name.
            self.error(
                path,
                "must name an environment variable (letters, digits and _), not hold the secret itself",
            );
            return None;
        }
        if self.skip_secrets {
            return Some(Secret::new(SKIPPED_SECRET.to_owned()));
        }
        match (self.env)(var) {
            None => {
                self.error(path, format!("environment variable {var} is not set"));
                None
            }
            Some(v) if v.trim().is_empty() => {
                self.error(path, format!("environment variable {var} is empty"));
                None
            }
            Some(v) => self.header_safe(path, &format!("environment variable {var}"), v.trim()),
        }
    }

    /// The trimmed content of a file, relative to the config file's directory; at most
    /// [`MAX_SECRET_FILE_BYTES`] (a path such as `/dev/zero` must not eat the memory).
    pub fn token_file(&mut self, path: &str, file: &str) -> Option<Secret> {
        if self.skip_secrets {
            if file.trim().is_empty() {
                self.error(path, "the file name must not be empty");
                return None;
            }
            return Some(Secret::new(SKIPPED_SECRET.to_owned()));
        }
        let full = self.base_dir.join(file.trim());
        match read_capped(&full, MAX_SECRET_FILE_BYTES) {
            Err(e) => {
                self.error(
                    path,
                    format!("cannot read token file {}: {e}", full.display()),
                );
                None
            }
            Ok(text) if text.trim().is_empty() => {
                self.error(path, format!("token file {} is empty", full.display()));
                None
            }
            Ok(text) => {
                self.header_safe(path, &format!("token file {}", full.display()), text.trim())
            }
        }
    }

    /// Secrets go into HTTP headers or JSON; reject control characters (e.g. a token
    /// file holding two lines) without ever showing the value.
    fn header_safe(&mut self, path: &str, source: &str, value: &str) -> Option<Secret> {
        if value.chars().any(char::is_control) {
            self.error(
                path,
                format!(
                    "{source} contains control characters (e.g. a line break inside the value)"
                ),
            );
            return None;
        }
        Some(Secret::new(value.to_owned()))
    }
}

/// The largest secret file read (tokens and client secrets are a few KiB at most).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// The deepest nesting of YAML collections accepted. Real configs nest five levels; the
/// YAML parser's time grows with the square of the depth, so a hostile file of nested
/// brackets is refused before it is parsed.
pub const MAX_NESTING: usize = 64;

/// How long a file read after start-up may take (the config on reload, secret and token
/// files): a FIFO or a hung mount fails that read instead of stalling anything else.
pub const FILE_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// File reads that may be under way at once on the blocking pool; a read that never returns
/// keeps its place, so a file that blocks for good holds a few threads, not one per try.
const READS_AT_ONCE: usize = 8;

static READS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A place among the reads under way, given back when the read returns.
struct Reading;

impl Drop for Reading {
    fn drop(&mut self) {
        READS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Runs `read` (file I/O) on tokio's blocking pool, never on a worker thread, and waits for
/// it at most `limit`; the error says why there is no result (never the file's content).
pub async fn read_off_runtime<T: Send + 'static>(
    limit: std::time::Duration,
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    use std::sync::atomic::Ordering;
    if READS.fetch_add(1, Ordering::AcqRel) >= READS_AT_ONCE {
        READS.fetch_sub(1, Ordering::AcqRel);
        return Err(format!(
            "{READS_AT_ONCE} file reads are blocked already (a FIFO or a hung mount?)"
        ));
    }
    let reading = Reading;
    let task = tokio::task::spawn_blocking(move || {
        let _reading = reading;
        read()
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err("the file read failed".into()),
        Err(_) => Err(format!(
            "the file read did not finish within {}s (a FIFO or a hung mount?)",
            limit.as_secs_f64()
        )),
    }
}

/// A file's text, refused when longer than `cap` bytes (read no further than that).
pub fn read_capped(path: &std::path::Path, cap: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {cap} bytes"),
        ));
    }
    Ok(text)
}

/// How deeply the YAML text nests flow collections (`[`, `{`) and block indentation, at
/// most, from a scan that skips quoted strings and comments: an upper bound on what the
/// parser will build, computed in one pass.
pub fn nesting_depth(yaml: &str) -> usize {
    let mut deepest = 0;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start_matches([' ', '-']).len();
        deepest = deepest.max(indent / 2);
    }
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = ' ';
    for c in yaml.chars() {
        match (quote, c) {
            _ if comment && c == '\n' => comment = false,
            _ if comment => {}
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx<'a>(env: &'a dyn Fn(&str) -> Option<String>) -> Cx<'a> {
        Cx {
            errors: Vec::new(),
            base_dir: Path::new("/nonexistent"),
            env,
            skip_secrets: false,
        }
    }

    fn messages(cx: &Cx<'_>) -> Vec<String> {
        cx.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(s.to_string(), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn durations() {
        let env = |_: &str| None;
        let mut cx = cx(&env);
        assert_eq!(
            cx.duration("d", &RawDuration(" 1m30s ".into())),
            Some(Duration::from_secs(90))
        );
        assert_eq!(cx.duration("d", &RawDuration("0s".into())), None);
        assert_eq!(cx.duration("d", &RawDuration("soon".into())), None);
        let shown = messages(&cx);
        assert_eq!(shown[0], "d: must be greater than zero");
        assert!(
            shown[1].starts_with("d: invalid duration `soon`"),
            "{shown:?}"
        );
    }

    #[test]
    fn bounds_name_the_allowed_range() {
        let env = |_: &str| None;
        let mut cx = cx(&env);
        let range = Duration::from_secs(1)..=Duration::from_secs(3600);
        assert_eq!(
            cx.bounded_duration("d", &RawDuration("1h".into()), range.clone()),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            cx.bounded_duration("d", &RawDuration(" 2h ".into()), range.clone()),
            None
        );
        assert_eq!(
            cx.bounded_duration("d", &RawDuration("100000000000y".into()), range),
            None
        );
        assert_eq!(cx.bounded("n", 1024_usize, 1..=1024), Some(1024));
        assert_eq!(cx.bounded("n", usize::MAX, 1..=1024), None);
        assert_eq!(cx.bounded("n", 0_u64, 1024..=2048), None);
        assert_eq!(
            messages(&cx),
            [
                "d: must be from 1s to 1h, got `2h`",
                "d: must be from 1s to 1h, got `100000000000y`",
                "n: must be from 1 to 1024, got 18446744073709551615",
                "n: must be greater than zero",
            ]
        );
    }

    #[test]
    fn urls_keep_no_trailing_slash_and_hide_credentials() {
        let env = |_: &str| None;
        let mut cx = cx(&env);
        assert_eq!(
            cx.url("u", "https://h.example/api/"),
            Some("https://h.example/api".into())
        );
        assert_eq!(cx.url("u", "https://user:pw@h"), None);
        assert_eq!(cx.url("u", "https://h/?q=1"), None);
        let shown = messages(&cx).join("\n");
        assert!(!shown.contains("pw"), "{shown}");
        assert!(
            shown.contains("a query or fragment is not allowed"),
            "{shown}"
        );
    }

    #[test]
    fn url_paths() {
        let env = |_: &str| None;
        let mut cx = cx(&env);
        assert_eq!(cx.url_path("p", "api/", true), Some("/api".into()));
        assert_eq!(cx.url_path("p", "/", true), Some(String::new()));
        assert_eq!(cx.url_path("p", "/", false), None);
        assert_eq!(cx.url_path("p", "/a b", true), None);
        assert_eq!(cx.errors.len(), 2);
    }

    #[test]
    fn env_secrets() {
        let env = |name: &str| match name {
            "SET" => Some(" value \n".to_owned()),
            "BLANK" => Some(" ".to_owned()),
            "TWO_LINES" => Some("a\nb".to_owned()),
            _ => None,
        };
        let mut cx = cx(&env);
        assert_eq!(
            cx.env_secret("s", "SET").map(|s| s.expose().to_owned()),
            Some("value".into())
        );
        for bad in ["UNSET", "BLANK", "TWO_LINES", "", "not a name"] {
            assert!(cx.env_secret("s", bad).is_none(), "{bad}");
        }
        let shown = messages(&cx);
        assert_eq!(
            shown,
            [
                "s: environment variable UNSET is not set",
                "s: environment variable BLANK is empty",
                "s: environment variable TWO_LINES contains control characters (e.g. a line break inside the value)",
                "s: the environment variable name must not be empty",
                "s: must name an environment variable (letters, digits and _), not hold the secret itself",
            ]
        );
    }

    #[test]
    fn status_map_entries() {
        let env = |_: &str| None;
        let mut cx = cx(&env);
        let raw: BTreeMap<String, String> = [
            ("Verifying".to_owned(), "running".to_owned()),
            ("--".to_owned(), "failed".to_owned()),
            ("odd".to_owned(), "runing".to_owned()),
        ]
        .into();
        let map = cx.status_map("m", Some(&raw));
        let mut want = StatusMap::new();
        want.insert("verifying", Status::Running);
        want.insert("--", Status::Failed);
        assert_eq!(map, want);
        let shown = messages(&cx);
        assert_eq!(
            shown[0],
            "m.--: status_map key must contain a letter or digit"
        );
        assert!(
            shown[1].starts_with("m.odd: unknown status `runing`"),
            "{shown:?}"
        );
    }

    #[test]
    fn misfits_name_their_key() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u64,
            b: Option<Vec<u64>>,
        }
        let value = |yaml: &str| serde_yaml_ng::from_str::<Value>(yaml).unwrap();
        let e = deserialize::<T>("x", value("{a: 1, b: [1, z]}")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("b"));
        assert_eq!(e.error.path, "x.b[1]");
        let e = deserialize::<T>("x", value("{b: []}")).unwrap_err();
        assert_eq!(e.key, None);
        assert_eq!(e.error.to_string(), "x: missing key `a`");
        let e = deserialize::<T>("x", value("{a: -1}")).unwrap_err();
        assert!(
            e.error.message.ends_with("expected a whole number"),
            "{e:?}"
        );
    }
}
