//! `--web.config.file`: the whole exporter-toolkit web configuration (TLS with client
//! certificates, cipher suites and curves; HTTP/2 and extra headers; rate limit; basic auth),
//! so the endpoints are protected exactly like the official exporters', and a file copied from
//! one of them works as is. The file and the files it names are re-read when they change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    rate_limit: Option<RawRateLimit>,
    /// user name -> bcrypt hash
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

/// exporter-toolkit's `tls_server_config`, key for key; empty strings count as unset, as in Go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    cipher_suites: Option<Vec<String>>,
    curve_preferences: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    client_allowed_sans: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    #[serde(default)]
    headers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// A Go duration (`1s`, `100ms`); 0 or absent turns the limiter off.
    interval: Option<String>,
    burst: Option<u32>,
}

/// bcrypt checks that may run at once, on tokio's blocking pool: a flood of wrong passwords
/// queues here instead of taking every core or any of the runtime's worker threads.
const BCRYPT_SLOTS: usize = 2;
/// How long a (user, password) pair that passed bcrypt is accepted without bcrypt again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Pairs remembered at most; the oldest goes first.
const VERIFIED_MAX: usize = 256;
/// Salt and checksum of a well-formed bcrypt hash (exporter-toolkit's dummy): an unknown user
/// is checked against it, at the configured cost, so that it takes as long as a wrong password.
const DUMMY_SALT_AND_CHECKSUM: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// HTTP/2 offered over TLS (ALPN `h2`); never on plain HTTP, as in Go.
    http2: bool,
    /// `http_server_config.headers`, added to every response.
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimit>,
    users: HashMap<String, String>,
    /// No password matches it; its cost is the highest of the configured hashes.
    dummy_hash: String,
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    verified: Mutex<Verified>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A load attempt: the files it named (to watch them), and what came of it.
struct Attempt {
    files: Vec<PathBuf>,
    result: Result<WebConfig, WebConfigError>,
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        Self::attempt(path, Arc::new(tokio::sync::Semaphore::new(BCRYPT_SLOTS))).result
    }

    fn attempt(path: &Path, bcrypt_slots: Arc<tokio::sync::Semaphore>) -> Attempt {
        let mut files = vec![path.to_path_buf()];
        let result = Self::parse(path, bcrypt_slots, &mut files);
        Attempt { files, result }
    }

    fn parse(
        path: &Path,
        bcrypt_slots: Arc<tokio::sync::Semaphore>,
        files: &mut Vec<PathBuf>,
    ) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let at = e.path().to_string();
                invalid(format!("{at}: {}", e.into_inner()))
            })?
        };
        let mut users: Vec<(&String, &String)> = raw.basic_auth_users.iter().collect();
        users.sort();
        let mut cost = 0;
        for (user, hash) in users {
            let this = bcrypt_cost(hash).map_err(|reason| {
                invalid(format!(
                    "basic_auth_users.{user}: not a bcrypt hash ({reason}; expected 60 characters like $2y$10$...)"
                ))
            })?;
            cost = cost.max(this);
        }
        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let headers = extra_headers(&http.headers).map_err(invalid)?;
        let rate_limit = match raw.rate_limit {
            Some(r) => RateLimit::new(&r).map_err(invalid)?,
            None => None,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(tls) if tls.enabled() => {
                let tls = tls.resolved(base);
                files.extend(
                    [&tls.cert_file, &tls.key_file, &tls.client_ca_file]
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
                Some(build_tls(&tls, http2).map_err(invalid)?)
            }
            _ => None,
        };
        let mut web = WebConfig::new(tls, raw.basic_auth_users, cost);
        web.http2 = http2;
        web.headers = headers;
        web.rate_limit = rate_limit;
        web.bcrypt_slots = bcrypt_slots;
        Ok(web)
    }

    fn new(
        tls: Option<tokio_rustls::TlsAcceptor>,
        users: HashMap<String, String>,
        cost: u32,
    ) -> Self {
        WebConfig {
            tls,
            http2: true,
            headers: Vec::new(),
            rate_limit: None,
            users,
            dummy_hash: format!("$2y${cost:02}${DUMMY_SALT_AND_CHECKSUM}"),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(BCRYPT_SLOTS)),
            verified: Mutex::new(Verified::default()),
        }
    }

    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// Whether HTTP/2 is offered to TLS clients (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// `http_server_config.headers`, for every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// False when `rate_limit` has no token left for this request (answered 429).
    pub fn allow_request(&self) -> bool {
        self.rate_limit
            .as_ref()
            .is_none_or(|r| r.allow(Instant::now()))
    }

    /// True when no users are configured, or the Basic credentials match a bcrypt hash.
    ///
    /// An unknown user is checked against a dummy hash of the same cost, so the answer takes
    /// as long as for a wrong password and does not tell which users exist. bcrypt runs on the
    /// blocking pool, at most `BCRYPT_SLOTS` at once; a pair that passed is remembered for
    /// `VERIFIED_FOR` so that a scrape every few seconds does not pay for bcrypt each time.
    pub async fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known && self.verified().contains(&digest, Instant::now()) {
            return true;
        }
        let Ok(slot) = self.bcrypt_slots.clone().acquire_owned().await else {
            return false;
        };
        // The slot moves into the blocking task: a client that hangs up mid-check does not
        // free it before bcrypt has finished.
        let matched = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matched && known;
        if ok {
            self.verified().insert(digest, Instant::now());
        }
        ok
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often, at most, the web config file and the files it names are checked for changes.
const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// The web config file as it is now: re-read when it, a certificate, a key or the client CA
/// file changes (checked at most once per second, on a connection or request), so rotating a
/// certificate needs no restart. A new file that does not load is logged once and the running
/// configuration stays; so does one that would turn TLS on or off (that needs a restart, as
/// the listening log line and the scheme Prometheus scrapes would change).
pub struct LiveWebConfig {
    path: PathBuf,
    current: std::sync::RwLock<Arc<WebConfig>>,
    watch: Mutex<Watch>,
    tls: bool,
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
}

struct Watch {
    checked: Instant,
    files: Vec<PathBuf>,
    stamps: Vec<Option<FileStamp>>,
}

/// What tells a changed file from the same one cheaply: modification time, size and inode
/// (a Kubernetes secret swaps a symlink to a new file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(files: &[PathBuf]) -> Vec<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt as _;
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f).ok().map(|m| FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            })
        })
        .collect()
}

impl LiveWebConfig {
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let bcrypt_slots = Arc::new(tokio::sync::Semaphore::new(BCRYPT_SLOTS));
        let attempt = WebConfig::attempt(path, bcrypt_slots.clone());
        let stamps = stamps(&attempt.files);
        let web = attempt.result?;
        Ok(LiveWebConfig {
            path: path.to_path_buf(),
            tls: web.tls.is_some(),
            current: std::sync::RwLock::new(Arc::new(web)),
            watch: Mutex::new(Watch {
                checked: Instant::now(),
                files: attempt.files,
                stamps,
            }),
            bcrypt_slots,
        })
    }

    /// Whether the server speaks TLS (fixed at start).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The configuration in force, after re-reading it if a file changed.
    pub fn current(&self) -> Arc<WebConfig> {
        self.recheck(Instant::now());
        self.snapshot()
    }

    fn snapshot(&self) -> Arc<WebConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn recheck(&self, now: Instant) {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(watch.checked) < RECHECK_EVERY {
            return;
        }
        watch.checked = now;
        if stamps(&watch.files) == watch.stamps {
            return;
        }
        let attempt = WebConfig::attempt(&self.path, self.bcrypt_slots.clone());
        watch.stamps = stamps(&attempt.files);
        watch.files = attempt.files;
        match attempt.result {
            Ok(web) if web.tls.is_some() != self.tls => {
                tracing::error!(
                    path = %self.path.display(),
                    "web config changed: turning TLS on or off needs a restart; the running web config stays"
                );
            }
            Ok(web) => {
                tracing::info!(path = %self.path.display(), tls = self.tls, "web config reloaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(web);
            }
            Err(e) => {
                tracing::error!(error = %e, "web config changed but does not load; the running web config stays");
            }
        }
    }
}

/// exporter-toolkit's `rate_limit`: a token bucket over every request, before authentication.
#[derive(Debug)]
struct RateLimit {
    every: Duration,
    burst: u32,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    fn new(raw: &RawRateLimit) -> Result<Option<Self>, String> {
        let every = match raw.interval.as_deref().map(str::trim) {
            None | Some("") | Some("0") => return Ok(None),
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| format!("rate_limit.interval: {text:?}: {e}"))?,
        };
        if every.is_zero() {
            return Ok(None);
        }
        let burst = raw.burst.unwrap_or(0);
        if burst == 0 {
            return Err(
                "rate_limit.burst: must be at least 1 when an interval is set (0 would refuse every request)"
                    .into(),
            );
        }
        Ok(Some(RateLimit {
            every,
            burst,
            bucket: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    fn allow(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = *bucket;
        let refill = now.saturating_duration_since(at).as_secs_f64() / self.every.as_secs_f64();
        let tokens = (tokens + refill).min(f64::from(self.burst));
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

/// The response headers exporter-toolkit lets a web config set, and the values allowed where
/// they are an enumeration; any other header is refused, as there.
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn extra_headers(
    configured: &HashMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut names: Vec<&String> = configured.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let value = &configured[name];
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(n, _)| *n == name.as_str()) else {
            return Err(format!(
                "http_server_config.headers: HTTP header {name:?} can not be configured (allowed: {})",
                EXTRA_HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config.headers.{name}: {value:?} is not one of {allowed:?}"
            ));
        }
        if value.is_empty() {
            continue;
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("http_server_config.headers.{name}: not a valid header value"))?;
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("http_server_config.headers: {name:?} is not a header name"))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

/// The cost of a well-formed bcrypt hash, or why it is not one.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| {
        let reason = e.to_string();
        reason
            .strip_prefix("Invalid hash: ")
            .unwrap_or(&reason)
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 04..31"));
    }
    Ok(cost)
}

/// Digests of (user, password, hash) that passed bcrypt, with when they did.
#[derive(Default)]
struct Verified {
    at: HashMap<[u8; 32], Instant>,
}

impl Verified {
    fn contains(&mut self, digest: &[u8; 32], now: Instant) -> bool {
        match self.at.get(digest) {
            Some(at) if now.saturating_duration_since(*at) < VERIFIED_FOR => true,
            Some(_) => {
                self.at.remove(digest);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, digest: [u8; 32], now: Instant) {
        if self.at.len() >= VERIFIED_MAX && !self.at.contains_key(&digest) {
            self.at
                .retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_FOR);
            if self.at.len() >= VERIFIED_MAX {
                let oldest = self.at.iter().min_by_key(|(_, at)| **at).map(|(d, _)| *d);
                if let Some(oldest) = oldest {
                    self.at.remove(&oldest);
                }
            }
        }
        self.at.insert(digest, now);
    }
}

fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `tls_server_config` with empty strings dropped and relative paths joined to the web config
/// file's folder (as exporter-toolkit's `SetDirectory`).
struct ResolvedTls {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_ca_file: Option<PathBuf>,
    client_auth_type: String,
    cipher_suites: Vec<String>,
    curve_preferences: Vec<String>,
    min_version: String,
    max_version: String,
    prefer_server_cipher_suites: bool,
    client_allowed_sans: Option<Vec<String>>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

fn non_empty_path(p: &Option<PathBuf>, base: &Path) -> Option<PathBuf> {
    p.as_ref().filter(|p| !p.as_os_str().is_empty()).map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    })
}

impl RawTls {
    /// exporter-toolkit's `IsEnabled`: TLS is on when a certificate, key, client CA or client
    /// auth type is set; a section with only versions or suites leaves plain HTTP.
    fn enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.client_auth_type,
        ]
        .iter()
        .any(|s| non_empty(s).is_some())
            || [&self.cert_file, &self.key_file, &self.client_ca_file]
                .iter()
                .any(|p| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty()))
    }

    fn resolved(&self, base: &Path) -> ResolvedTls {
        ResolvedTls {
            cert: non_empty(&self.cert),
            key: non_empty(&self.key),
            client_ca: non_empty(&self.client_ca),
            cert_file: non_empty_path(&self.cert_file, base),
            key_file: non_empty_path(&self.key_file, base),
            client_ca_file: non_empty_path(&self.client_ca_file, base),
            client_auth_type: non_empty(&self.client_auth_type)
                .unwrap_or_else(|| "NoClientCert".into()),
            cipher_suites: self.cipher_suites.clone().unwrap_or_default(),
            curve_preferences: self.curve_preferences.clone().unwrap_or_default(),
            min_version: non_empty(&self.min_version).unwrap_or_else(|| "TLS12".into()),
            max_version: non_empty(&self.max_version).unwrap_or_else(|| "TLS13".into()),
            prefer_server_cipher_suites: self.prefer_server_cipher_suites.unwrap_or(true),
            client_allowed_sans: self.client_allowed_sans.clone(),
        }
    }
}

/// Go's `tls.VersionTLS1x` names, in order; rustls speaks 1.2 and 1.3 only.
fn tls_version(key: &str, name: &str) -> Result<u8, String> {
    match name {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {name} is not supported (rustls speaks TLS12 and TLS13 only)"
        )),
        other => Err(format!(
            "tls_server_config.{key}: unknown TLS version: {other} (TLS12 or TLS13)"
        )),
    }
}

/// Go's names of the TLS 1.0-1.2 suites (`tls.CipherSuites()`) that rustls implements.
fn cipher_suite(name: &str) -> Result<Option<rustls::SupportedCipherSuite>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        // TLS 1.3 suites are not configurable in Go either: accepted, and all three stay on.
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Ok(None)
        }
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Err(format!(
                "tls_server_config.cipher_suites: {name} is not supported (rustls has no RSA key exchange and no CBC suites; use the ECDHE GCM or CHACHA20 suites)"
            ))
        }
        other => return Err(format!("tls_server_config.cipher_suites: unknown cipher: {other}")),
    }))
}

/// Go's curve names; rustls' ring provider has no P-521.
fn curve(name: &str) -> Result<&'static dyn rustls::crypto::SupportedKxGroup, String> {
    use rustls::crypto::ring::kx_group;
    match name {
        "X25519" => Ok(kx_group::X25519),
        "CurveP256" => Ok(kx_group::SECP256R1),
        "CurveP384" => Ok(kx_group::SECP384R1),
        "CurveP521" => Err(
            "tls_server_config.curve_preferences: CurveP521 is not supported (rustls' ring provider has X25519, CurveP256 and CurveP384)"
                .into(),
        ),
        other => Err(format!(
            "tls_server_config.curve_preferences: unknown curve: {other}"
        )),
    }
}

/// PEM text from `<key>` inline or `<key>_file`, exactly one of them.
fn pem_source(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    key: &str,
    required: bool,
) -> Result<Option<Vec<u8>>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: set {key} or {key}_file, not both"
        )),
        (Some(text), None) => Ok(Some(text.clone().into_bytes())),
        (None, Some(path)) => std::fs::read(path).map(Some).map_err(|e| {
            format!(
                "tls_server_config.{key}_file: cannot read {}: {e}",
                path.display()
            )
        }),
        (None, None) if required => Err(format!(
            "tls_server_config: missing one of {key} or {key}_file"
        )),
        (None, None) => Ok(None),
    }
}

fn build_tls(raw: &ResolvedTls, http2: bool) -> Result<tokio_rustls::TlsAcceptor, String> {
    let cert_pem = pem_source(&raw.cert, &raw.cert_file, "cert", true)?.unwrap_or_default();
    let key_pem = pem_source(&raw.key, &raw.key_file, "key", true)?.unwrap_or_default();
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("tls_server_config.cert_file: no certificate found".into());
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?
        .ok_or("tls_server_config.key_file: no private key found")?;

    let min = tls_version("min_version", &raw.min_version)?;
    let max = tls_version("max_version", &raw.max_version)?;
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| (min..=max).contains(rank))
            .map(|(_, v)| v)
            .collect();

    let mut provider = rustls::crypto::ring::default_provider();
    if !raw.cipher_suites.is_empty() {
        let mut suites = Vec::new();
        for name in &raw.cipher_suites {
            if let Some(suite) = cipher_suite(name)? {
                if !suites.contains(&suite) {
                    suites.push(suite);
                }
            }
        }
        suites.extend(
            provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied(),
        );
        provider.cipher_suites = suites;
    }
    if !raw.curve_preferences.is_empty() {
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for name in &raw.curve_preferences {
            let group = curve(name)?;
            if !groups.iter().any(|g| g.name() == group.name()) {
                groups.push(group);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    let client_ca = pem_source(&raw.client_ca, &raw.client_ca_file, "client_ca", false)?;
    let sans = raw.client_allowed_sans.clone();
    let (ask, mandatory, verify) = match raw.client_auth_type.as_str() {
        "NoClientCert" => (false, false, false),
        "RequestClientCert" => (true, false, false),
        "RequireAnyClientCert" | "RequireClientCert" => (true, true, false),
        "VerifyClientCertIfGiven" => (true, false, true),
        "RequireAndVerifyClientCert" => (true, true, true),
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: invalid ClientAuth: {other} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    if !ask && client_ca.is_some() {
        return Err(
            "tls_server_config: client CA's have been configured without a Client Auth Policy (client_auth_type)"
                .into(),
        );
    }
    if !ask && sans.is_some() {
        return Err(
            "tls_server_config.client_allowed_sans: needs a client_auth_type that asks for client certificates"
                .into(),
        );
    }
    let builder = if !ask {
        builder.with_no_client_auth()
    } else {
        let inner = if verify {
            let ca_pem = client_ca.ok_or(
                "tls_server_config.client_ca_file: required by client_auth_type (there is no system pool to fall back on)",
            )?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("tls_server_config.client_ca_file: no certificate found".into());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            Some(verifier)
        } else {
            None
        };
        builder.with_client_cert_verifier(Arc::new(ClientCerts {
            inner,
            // exporter-toolkit drops a connection without a certificate once SANs are
            // configured (its check indexes the first certificate): so does this.
            mandatory: mandatory || sans.is_some(),
            allowed_sans: sans,
            provider: provider.clone(),
        }))
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not match: {e}"))?;
    config.ignore_client_order = raw.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Client certificates as `client_auth_type` and `client_allowed_sans` ask: verified against
/// the client CAs (or any accepted for `RequestClientCert`/`RequireAnyClientCert`), then
/// required to carry one of the allowed SANs.
#[derive(Debug)]
struct ClientCerts {
    inner: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    mandatory: bool,
    allowed_sans: Option<Vec<String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for ClientCerts {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner
            .as_ref()
            .map(|v| v.root_hint_subjects())
            .unwrap_or(&[])
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if let Some(inner) = &self.inner {
            inner.verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            let sans = certificate_sans(end_entity).ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ))?;
            if !sans.iter().any(|san| allowed.contains(san)) {
                tracing::debug!(?sans, "client certificate has none of client_allowed_sans");
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SAN values of a certificate as Go lists them for exporter-toolkit's check: DNS names,
/// e-mail addresses, IP addresses (Go's text form) and URIs. `None`: not a certificate.
fn certificate_sans(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    out.push((*s).to_string())
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_user(user: &str, password: &str) -> WebConfig {
        let hash = bcrypt::hash(password, 4).unwrap();
        WebConfig::new(None, HashMap::from([(user.to_string(), hash)]), 4)
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password() {
        let web = config_with_user("prometheus", "s3cret");
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))).await);
        // Second time from the cache.
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))).await);
        assert!(!web.authorized(Some(&basic("prometheus", "wrong"))).await);
        assert!(!web.authorized(Some(&basic("other", "s3cret"))).await);
        assert!(!web.authorized(None).await);
        assert!(
            !web.authorized(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
        assert!(
            !web.authorized(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
    }

    #[test]
    fn the_dummy_hash_is_well_formed_at_every_cost_and_matches_nothing() {
        for cost in [4, 10, 31] {
            let web = WebConfig::new(None, HashMap::new(), cost);
            assert_eq!(bcrypt_cost(&web.dummy_hash), Ok(cost), "{}", web.dummy_hash);
        }
        let web = WebConfig::new(None, HashMap::new(), 4);
        for password in ["", "password", "prometheus"] {
            assert_eq!(bcrypt::verify(password, &web.dummy_hash).ok(), Some(false));
        }
    }

    #[test]
    fn malformed_hashes_are_named() {
        let good = bcrypt::hash("x", 4).unwrap();
        assert_eq!(bcrypt_cost(&good), Ok(4));
        let cost_99 = format!("$2b$99${}", &good[7..]);
        let cost_03 = format!("$2b$03${}", &good[7..]);
        let not_2 = format!("$3b$10${}", &good[7..]);
        for bad in [
            "",
            "$2",
            "plain",
            cost_99.as_str(),
            cost_03.as_str(),
            not_2.as_str(),
            &good[..59],
            "$2y$10$ééééééééééééééééééééééééééé",
        ] {
            assert!(bcrypt_cost(bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(
            bcrypt_cost(&cost_99).unwrap_err(),
            "cost 99 is outside 04..31"
        );
    }

    #[test]
    fn verified_pairs_expire_and_the_oldest_goes_first() {
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        let mut v = Verified::default();
        let t0 = Instant::now();
        v.insert(key(1), t0);
        assert!(v.contains(&key(1), t0 + Duration::from_secs(59)));
        assert!(!v.contains(&key(1), t0 + VERIFIED_FOR));
        assert!(v.at.is_empty(), "an expired pair is dropped when seen");
        for i in 0..VERIFIED_MAX {
            v.insert(key(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(v.at.len(), VERIFIED_MAX);
        let later = t0 + Duration::from_secs(1);
        let new = key(VERIFIED_MAX);
        v.insert(new, later);
        assert_eq!(v.at.len(), VERIFIED_MAX);
        assert!(!v.contains(&key(0), later), "the oldest went");
        assert!(v.contains(&new, later));
        assert!(v.contains(&key(1), later));
        // Everything expired: room is made by dropping the expired ones.
        v.insert(key(VERIFIED_MAX + 1), later + VERIFIED_FOR);
        assert_eq!(v.at.len(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users:\n  a: plain\n").unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("basic_auth_users.a: not a bcrypt hash"), "{e}");
        assert!(!e.contains("plain"), "the hash is not echoed: {e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suite: []\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cipher_suite"), "{e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: k\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cert_file: cannot read"), "{e}");
    }
}
