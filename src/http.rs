//! The one shared upstream HTTP client: timeout, body cap,
//! retries with jittered backoff, and the classification of every request's outcome.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::client::{ClientSettings, TlsSettings};
use crate::outcome::{Fault, Outcome};
use crate::telemetry::Telemetry;
use crate::text::loggable;

/// How one upstream's requests are sent.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub max_body_bytes: u64,
}

/// How non-2xx statuses of one request map to outcomes beyond the generic table.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusRules {
    /// For an API that answers 400 when a job's data is incomplete: `incomplete`, not
    /// `http_4xx`.
    pub bad_request_is_incomplete: bool,
    /// Token endpoints answer 400 for bad client credentials: `auth_error`.
    pub bad_request_is_auth_error: bool,
    /// A login path (ZDM) whose every error answer (4xx but 429, and 5xx) means no token:
    /// `auth_error`, never `not_found` (ZDM answers 404 for a wrong password).
    pub every_error_is_auth_error: bool,
}

/// The client one upstream uses for every request it sends.
pub struct UpstreamHttp {
    client: reqwest::Client,
    system: &'static str,
    upstream: Arc<str>,
    limits: Limits,
    telemetry: Telemetry,
    /// Why the upstream's own client could not be built: every request fails with it
    /// (never falls back to the shared client, which would skip its proxy or certificate).
    unusable: Option<Arc<str>>,
}

const MAX_ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Error bodies are read only for their message; more is not needed.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Builds the process-wide reqwest client: rustls with the ring provider, the platform's
/// trust store (so an internal CA installed on the host works). Redirects are never
/// followed: a login body, a client secret or a signed header must not go to another
/// origin, so a 3xx is an `upstream_error` that names its `Location`.
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    // Installing twice (tests build many clients) is refused and harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    builder().build()
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("backup-exporter/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(90))
        .redirect(reqwest::redirect::Policy::none())
}

/// Why an upstream's own client could not be built (its files were checked at load; this
/// is what only the TLS library can tell, e.g. a key that does not fit its certificate).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("tls_config: {0}")]
    Tls(String),
    #[error("proxy_url: {0}")]
    Proxy(String),
    #[error("{0}")]
    Build(String),
}

/// The client of one upstream: `shared` when it sets no connection keys, else a client of
/// its own (built once per configuration load) with the same user agent, pool and
/// no-redirect policy, its `tls_config` and its `proxy_url` (`NO_PROXY` honoured).
pub fn upstream_client(
    shared: &reqwest::Client,
    settings: &ClientSettings,
) -> Result<reqwest::Client, ClientError> {
    if !settings.is_custom() {
        return Ok(shared.clone());
    }
    let mut builder = builder();
    if let Some(tls) = &settings.tls {
        builder = builder.tls_backend_preconfigured(tls_config(tls)?);
    }
    if let Some(url) = &settings.proxy_url {
        let proxy = reqwest::Proxy::all(url.as_str())
            .map_err(|e| ClientError::Proxy(e.to_string()))?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| ClientError::Build(e.to_string()))
}

/// The rustls configuration of a `tls_config`: its CA (else the host's trust store, as
/// the shared client), its client certificate, the name certificates are verified against.
fn tls_config(tls: &TlsSettings) -> Result<rustls::ClientConfig, ClientError> {
    let bad = |e: &dyn std::fmt::Display| ClientError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure_skip_verify {
        Arc::new(AcceptAnyCertificate(provider.clone()))
    } else if let Some(ca) = &tls.ca {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.pem.as_bytes()) {
            roots
                .add(cert.map_err(|e| bad(&e))?)
                .map_err(|e| ClientError::Tls(format!("ca_file {}: {e}", ca.path)))?;
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| ClientError::Tls(format!("ca_file {}: {e}", ca.path)))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| ClientError::Tls(format!("the host's trust store: {e}")))?,
        )
    };
    let verifier = match &tls.server_name {
        Some(name) if !tls.insecure_skip_verify => {
            let name = ServerName::try_from(name.clone()).map_err(|e| bad(&e))?;
            Arc::new(VerifyAs {
                inner: verifier,
                name,
            })
        }
        _ => verifier,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = rustls_pemfile::certs(&mut identity.cert.pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Tls(format!("cert_file {}: {e}", identity.cert.path)))?;
            // The key's own error text could quote it: only say that it failed.
            let key = rustls_pemfile::private_key(&mut identity.key.expose().as_bytes())
                .ok()
                .flatten()
                .ok_or_else(|| ClientError::Tls("key_file: no usable private key".into()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ClientError::Tls(format!(
                    "cert_file {} and key_file: {e}",
                    identity.cert.path
                ))
            })?
        }
    };
    // reqwest is built without HTTP/2 here: offer HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies the upstream's certificate for `name` (`tls_config.server_name`) instead of the
/// URL's host. The SNI sent stays the URL's host: reqwest 0.13 has no way to change it.
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify: true`: any certificate is accepted; the handshake signatures
/// are still checked, so the peer holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl UpstreamHttp {
    pub fn new(
        client: reqwest::Client,
        system: &'static str,
        upstream: Arc<str>,
        limits: Limits,
        telemetry: Telemetry,
    ) -> Self {
        UpstreamHttp {
            client,
            system,
            upstream,
            limits,
            telemetry,
            unusable: None,
        }
    }

    /// An upstream whose client could not be built: every request is an `upstream_error`
    /// saying why.
    pub fn unusable(mut self, why: &ClientError) -> Self {
        self.unusable = Some(Arc::from(why.to_string()));
        self
    }

    /// Counts `fault`, which refused a request before it was sent (a `nextLink` to another
    /// origin), under its outcome, as if the request had been sent and failed; returns it.
    /// No duration is observed: nothing was timed.
    pub fn refused(&self, fault: Fault) -> Fault {
        self.telemetry
            .outcome(self.system, &self.upstream, fault.outcome);
        fault
    }

    /// Sends `request` (retrying 5xx and connection errors at most twice, with jittered
    /// backoff, never past `deadline`), decodes a 2xx body with `decode`, and counts every
    /// attempt under its outcome.
    pub async fn fetch<T>(
        &self,
        request: reqwest::Request,
        rules: StatusRules,
        deadline: Instant,
        decode: impl Fn(&[u8]) -> Result<T, Fault>,
    ) -> Result<T, Fault> {
        let mut attempt = 0;
        // "GET /path", only printed when a message or a trace needs it.
        let what = What(request.method(), request.url().path());
        loop {
            attempt += 1;
            let Some(this_try) = request.try_clone() else {
                return Err(Fault::new(
                    Outcome::UpstreamError,
                    "request body cannot be resent",
                ));
            };
            let started = Instant::now();
            let result = match self.send_once(this_try, &what, rules).await {
                Ok(body) => decode(&body).map_err(|f| Fault {
                    reason: format!("{what}: {}", f.reason),
                    ..f
                }),
                Err(fault) => Err(fault),
            };
            tracing::trace!(
                upstream = %self.upstream,
                request = %what,
                outcome = result.as_ref().map_or_else(|f| f.outcome, |_| Outcome::Success).as_str(),
                seconds = started.elapsed().as_secs_f64(),
                "upstream request"
            );
            let outcome = result
                .as_ref()
                .map_or_else(|f| f.outcome, |_| Outcome::Success);
            self.telemetry.request(
                self.system,
                &self.upstream,
                outcome,
                started.elapsed().as_secs_f64(),
            );
            match result {
                Err(fault) if fault.outcome.retryable() && attempt < MAX_ATTEMPTS => {
                    let backoff = jittered_backoff(attempt);
                    if Instant::now() + backoff >= deadline {
                        return Err(fault);
                    }
                    tracing::debug!(
                        upstream = %self.upstream,
                        outcome = fault.outcome.as_str(),
                        attempt,
                        backoff_ms = backoff.as_millis() as u64,
                        "retrying upstream request"
                    );
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        request: reqwest::Request,
        what: &What<'_>,
        rules: StatusRules,
    ) -> Result<Bytes, Fault> {
        match tokio::time::timeout(self.limits.timeout, self.exchange(request, what, rules)).await {
            Ok(result) => result,
            Err(_) => Err(Fault::new(
                Outcome::Timeout,
                format!(
                    "GET {}: no complete answer within {:?}",
                    what.1, self.limits.timeout
                ),
            )),
        }
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
        what: &What<'_>,
        rules: StatusRules,
    ) -> Result<Bytes, Fault> {
        if let Some(why) = &self.unusable {
            return Err(Fault::new(Outcome::UpstreamError, format!("{what}: {why}")));
        }
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| transport_fault(what, e))?;
        let status = response.status();
        if status.is_success() {
            let body = read_capped(&mut response, self.limits.max_body_bytes)
                .await
                .map_err(|f| Fault::new(f.outcome, format!("{what}: {}", f.reason)))?;
            return Ok(body);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .map(|l| loggable(&String::from_utf8_lossy(l.as_bytes()), 200))
                .unwrap_or_else(|| "(none)".to_string());
            return Err(Fault::new(
                Outcome::UpstreamError,
                format!(
                    "{what}: HTTP {}: redirect to {location} not followed",
                    status.as_u16()
                ),
            ));
        }
        let retry_after = retry_after(response.headers());
        let detail = read_capped(&mut response, ERROR_BODY_LIMIT)
            .await
            .map(|b| error_message(&b))
            .unwrap_or_default();
        let outcome = classify_status(status, rules);
        let mut reason = format!("{what}: HTTP {}", status.as_u16());
        if !detail.is_empty() {
            reason.push_str(": ");
            reason.push_str(&detail);
        }
        Err(Fault {
            outcome,
            reason,
            retry_after: if outcome == Outcome::RateLimited {
                retry_after
            } else {
                None
            },
        })
    }
}

/// A request as its messages name it: `GET /path` (no query, which could carry a secret).
struct What<'a>(&'a reqwest::Method, &'a str);

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

/// The generic status table; sources refine it with [`StatusRules`].
pub fn classify_status(status: StatusCode, rules: StatusRules) -> Outcome {
    match status.as_u16() {
        200..=299 => Outcome::Success,
        400..=428 | 430..=599 if rules.every_error_is_auth_error => Outcome::AuthError,
        400 if rules.bad_request_is_incomplete => Outcome::Incomplete,
        400 if rules.bad_request_is_auth_error => Outcome::AuthError,
        401 | 403 => Outcome::AuthError,
        404 => Outcome::NotFound,
        429 => Outcome::RateLimited,
        400..=499 => Outcome::Http4xx,
        500..=599 => Outcome::Http5xx,
        _ => Outcome::UpstreamError,
    }
}

fn transport_fault(what: &What<'_>, e: reqwest::Error) -> Fault {
    let outcome = if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connect() {
        Outcome::ConnectError
    } else {
        Outcome::UpstreamError
    };
    // The URL is left out: the path in `what` is enough and a query could carry a secret.
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        // Wrappers often repeat their cause ("tcp connect error: ... (os error 111)" over
        // "... (os error 111)"): each text once.
        let text = s.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    Fault::new(outcome, format!("{what}: {reason}"))
}

/// Reads the body, refusing it as soon as it exceeds `cap` (announced or streamed).
async fn read_capped(response: &mut reqwest::Response, cap: u64) -> Result<Bytes, Fault> {
    if let Some(len) = response.content_length() {
        if len > cap {
            return Err(Fault::new(
                Outcome::TooLarge,
                format!("body of {len} bytes exceeds the {cap}-byte limit"),
            ));
        }
    }
    // A body that arrives in one chunk (most answers) is that chunk, not a copy; a second
    // chunk starts one buffer, sized for the announced length where it is within the cap.
    // The buffer grows by doubling, never past the cap (a Vec's own growth would double past
    // it: a 16 MiB cap could hold 32 MiB).
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let cap_bytes = usize::try_from(cap).unwrap_or(usize::MAX);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
                if held as u64 + chunk.len() as u64 > cap {
                    return Err(Fault::new(
                        Outcome::TooLarge,
                        format!("body exceeds the {cap}-byte limit"),
                    ));
                }
                let earlier = first.take();
                if earlier.is_none() && buf.is_empty() {
                    first = Some(chunk);
                    continue;
                }
                let announced = usize::try_from(response.content_length().unwrap_or(0))
                    .unwrap_or(0)
                    .min(cap_bytes);
                let wanted =
                    next_capacity(buf.capacity(), held + chunk.len(), announced, cap_bytes);
                buf.reserve_exact(wanted.saturating_sub(buf.len()));
                if let Some(earlier) = earlier {
                    buf.extend_from_slice(&earlier);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(first.unwrap_or_else(|| Bytes::from(buf))),
            Err(e) => {
                let outcome = if e.is_timeout() {
                    Outcome::Timeout
                } else {
                    Outcome::UpstreamError
                };
                return Err(Fault::new(
                    outcome,
                    format!("reading body: {}", e.without_url()),
                ));
            }
        }
    }
}

/// The capacity a body buffer of `capacity` needs to hold `needed` bytes: unchanged while it
/// fits, else the announced length, else double (at least `needed`), never more than `cap`
/// (the caller has refused a body past the cap already).
fn next_capacity(capacity: usize, needed: usize, announced: usize, cap: usize) -> usize {
    if needed <= capacity {
        return capacity;
    }
    needed
        .max(announced)
        .max(capacity.saturating_mul(2))
        .min(cap.max(needed))
}

/// A short message from an error body: its `error`/`message` field, else its first line.
fn error_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => ["error", "message"]
            .iter()
            .find_map(|k| v.get(*k).and_then(|m| m.as_str()).map(str::to_string))
            .or_else(|| {
                v.pointer("/error/message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
    };
    loggable(&text, 200)
}

/// The longest `Retry-After` taken from an upstream; the poller clamps it further to the
/// target's stale window.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as seconds or an HTTP date, at most a day.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER.as_secs())));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or_default()
            .min(MAX_RETRY_AFTER),
    )
}

fn jittered_backoff(attempt: u32) -> Duration {
    let base = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let factor = rand::rng().random_range(0.5..1.5);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body buffer never grows past the cap, whatever the chunks and the announced length:
    /// a hostile answer of chunks just under the cap holds the cap, not twice it.
    #[test]
    fn the_body_buffer_never_grows_past_the_cap() {
        const MIB: usize = 1 << 20;
        let cap = 16 * MIB;
        // (capacity, needed, announced) -> capacity
        let cases = [
            ((0, 100, 0), 100),
            ((100, 100, 0), 100),
            ((100, 150, 0), 200),
            ((0, 100, 4096), 4096),
            ((8 * MIB, 8 * MIB + 1, 0), cap),
            ((12 * MIB, 12 * MIB + 1, 0), cap),
            ((cap, cap, 0), cap),
            ((0, 10, 64 * MIB), cap),
        ];
        for ((capacity, needed, announced), want) in cases {
            assert_eq!(
                next_capacity(capacity, needed, announced, cap),
                want,
                "{capacity} {needed} {announced}"
            );
        }
        // Grown chunk by chunk (64 KiB each) up to the cap: never past it.
        let mut capacity = 0;
        let mut len = 0;
        while len + 64 * 1024 <= cap {
            len += 64 * 1024;
            capacity = next_capacity(capacity, len, 0, cap);
            assert!(capacity >= len && capacity <= cap, "{capacity} for {len}");
        }
    }

    #[test]
    fn statuses_map_to_the_contract_outcomes() {
        let zdm = StatusRules {
            bad_request_is_incomplete: true,
            ..StatusRules::default()
        };
        let plain = StatusRules::default();
        let login = StatusRules {
            every_error_is_auth_error: true,
            ..StatusRules::default()
        };
        let cases = [
            (200, plain, Outcome::Success),
            (400, zdm, Outcome::Incomplete),
            (400, plain, Outcome::Http4xx),
            (401, plain, Outcome::AuthError),
            (403, plain, Outcome::AuthError),
            (404, plain, Outcome::NotFound),
            (418, plain, Outcome::Http4xx),
            (429, plain, Outcome::RateLimited),
            (404, login, Outcome::AuthError),
            (400, login, Outcome::AuthError),
            (408, login, Outcome::AuthError),
            (422, login, Outcome::AuthError),
            (500, login, Outcome::AuthError),
            (429, login, Outcome::RateLimited),
            (200, login, Outcome::Success),
            (500, plain, Outcome::Http5xx),
            (503, plain, Outcome::Http5xx),
        ];
        for (code, rules, want) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(classify_status(status, rules), want, "{code}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let future = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(future).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn error_messages_come_from_the_json_error_field() {
        let body = "{\"success\":false,\"error\":\"Name이 'x'인 작업을 찾을 수 없습니다.\"}";
        assert_eq!(
            error_message(body.as_bytes()),
            "Name이 'x'인 작업을 찾을 수 없습니다."
        );
        assert_eq!(error_message(b"plain text\nmore"), "plain text");
    }

    #[test]
    fn backoff_grows_and_stays_jittered() {
        for attempt in 1..=2 {
            let d = jittered_backoff(attempt);
            let base = BACKOFF_BASE * 2u32.pow(attempt - 1);
            assert!(d >= base.mul_f64(0.5) && d <= base.mul_f64(1.5));
        }
    }
}
