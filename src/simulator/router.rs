//! Request dispatch: the ZDM, SCP and Azure endpoints and the admin API, and the helpers
//! they share (bodies, query strings, fault answers).

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};

use super::faults::{self, Action, Fault, Target};
use super::zdm::{self, ApiVersion, Endpoint};
use super::{admin, azure, fixtures, scenario, scp, Simulator};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Returned by the service to make hyper drop the connection without writing an answer
/// (the `connection_close` fault).
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by the connection_close fault")
    }
}

impl std::error::Error for DropConnection {}

/// Largest login body accepted.
const LOGIN_BODY_LIMIT: usize = 64 * 1024;

pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A ZDM-style error answer (`requestID`, `success: false`, `error`, `timestamp`).
pub(crate) fn error(version: ApiVersion, status: StatusCode, message: &str) -> Response<Body> {
    full(status, zdm::error_body(version, message))
}

fn unauthorized(version: ApiVersion) -> Response<Body> {
    let mut response = error(version, StatusCode::UNAUTHORIZED, "Unauthorized");
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    response
}

/// The status's reason phrase, for generic error messages.
pub(crate) fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

pub(crate) fn with_retry_after(mut response: Response<Body>, secs: u64) -> Response<Body> {
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// The `truncated` fault: 200 with the first half of the normal body.
pub(crate) fn truncated(body: Bytes) -> Response<Body> {
    full(StatusCode::OK, body.slice(..body.len() / 2))
}

/// The `oversized` fault: 200 streaming `parts` as one chunked JSON body.
pub(crate) fn streamed(parts: impl Iterator<Item = Bytes> + Send + 'static) -> Response<Body> {
    let stream = futures_util::stream::iter(parts.map(|b| Ok(Frame::data(b))));
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn method_not_allowed(version: ApiVersion, allow: &'static str) -> Response<Body> {
    let mut response = error(
        version,
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
    );
    response
        .headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    response
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The pairs of a query string or form body, decoded (`+` is a space); `None` when an
/// escape is malformed. A key without `=` gets an empty value.
pub(crate) fn form_pairs(s: &str) -> Option<Vec<(String, String)>> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode(&s.replace('+', " "));
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, StatusCode> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

pub(crate) async fn handle(
    sim: Arc<Simulator>,
    req: Request<Incoming>,
) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let response = match segments.as_slice() {
        ["_sim", rest @ ..] => admin::handle(&sim, req, rest).await,
        ["api", "v1", rest @ ..] => api(&sim, req, ApiVersion::V1, rest).await?,
        ["api", rest @ ..] => api(&sim, req, ApiVersion::Legacy, rest).await?,
        ["v1", "backups", id, "restore-histories"] => scp::restore_histories(&sim, req, id).await?,
        ["metadata", "identity", "oauth2", "token"] => azure::imds(&sim, req).await?,
        [tenant, "oauth2", "v2.0", "token"] => azure::token(&sim, req, tenant).await?,
        [first, rest @ ..] if first.eq_ignore_ascii_case("subscriptions") => {
            azure::management(&sim, req, rest).await?
        }
        _ => error(ApiVersion::V1, StatusCode::NOT_FOUND, "Not Found"),
    };
    tracing::debug!(status = %response.status(), path, "simulator: answered");
    Ok(response)
}

async fn api(
    sim: &Simulator,
    req: Request<Incoming>,
    version: ApiVersion,
    rest: &[&str],
) -> Result<Response<Body>, DropConnection> {
    let (endpoint, raw_id) = match rest {
        ["backups", "monitoring", "system", id] => (Endpoint::System, *id),
        ["backups", "monitoring", "job", id] => (Endpoint::BackupJob, *id),
        ["recoveries", "monitoring", "job", id] => (Endpoint::RecoveryJob, *id),
        ["auth", "issue"] | ["token", "issue"] => return Ok(login(sim, req, version).await),
        _ => return Ok(error(version, StatusCode::NOT_FOUND, "Not Found")),
    };
    let Some(id) = percent_decode(raw_id).filter(|id| !id.is_empty()) else {
        return Ok(error(
            version,
            StatusCode::BAD_REQUEST,
            "invalid identifier in path",
        ));
    };
    if req.method() != Method::GET {
        return Ok(method_not_allowed(version, "GET"));
    }
    sim.count(endpoint.into(), &id);
    if !sim.authorized(req.headers()) {
        return Ok(unauthorized(version));
    }
    let response = match faults::action(sim.take_fault(endpoint.into(), &id)).await? {
        Action::Answer => sim.render(version, endpoint, &id),
        Action::Error(StatusCode::NOT_FOUND) => error(
            version,
            StatusCode::NOT_FOUND,
            &endpoint.not_found_error(&id),
        ),
        Action::Error(StatusCode::BAD_REQUEST) => error(
            version,
            StatusCode::BAD_REQUEST,
            endpoint.incomplete_error(),
        ),
        Action::Error(StatusCode::UNAUTHORIZED) => unauthorized(version),
        Action::Error(status) => error(version, status, reason(status)),
        Action::RateLimited(secs) => with_retry_after(
            error(version, StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
            secs,
        ),
        Action::Truncate => {
            let (_, body) = sim.render_body(version, endpoint, &id);
            truncated(body)
        }
        Action::Oversize => streamed(faults::oversized_parts(endpoint, &id, &version.now())),
    };
    Ok(response)
}

#[derive(serde::Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IssuedToken<'a> {
    token: &'a str,
    expires_at: &'a str,
}

async fn login(sim: &Simulator, req: Request<Incoming>, version: ApiVersion) -> Response<Body> {
    sim.lock().logins += 1;
    if req.method() != Method::POST {
        return method_not_allowed(version, "POST");
    }
    let body = match read_body(req.into_body(), LOGIN_BODY_LIMIT).await {
        Ok(body) => body,
        Err(status) => return error(version, status, "cannot read the request body"),
    };
    let Ok(credentials) = serde_json::from_slice::<LoginRequest>(&body) else {
        return error(
            version,
            StatusCode::BAD_REQUEST,
            "request body must be JSON {\"email\", \"password\"}",
        );
    };
    let accepted = sim.opts.login.as_ref().is_some_and(|(email, password)| {
        *email == credentials.email && *password == credentials.password
    });
    if !accepted {
        return error(
            version,
            StatusCode::UNAUTHORIZED,
            "Invalid email or password",
        );
    }
    let token = format!("{:032x}", rand::random::<u128>());
    let lifetime = sim.opts.token_lifetime;
    let expires_at = chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|d| Utc::now().checked_add_signed(d))
        .map_or_else(
            || "9999-12-31T23:59:59Z".to_string(),
            |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
        );
    sim.issue(&token, lifetime);
    let data = IssuedToken {
        token: &token,
        expires_at: &expires_at,
    };
    let body = zdm::Envelope {
        success: true,
        request_id: &zdm::request_id(),
        data,
        message: "Token issued",
        timestamp: &version.now(),
    };
    full(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

impl Simulator {
    pub(crate) fn count(&self, target: Target, id: &str) {
        let mut state = self.lock();
        let counts = &mut state.requests[target.index()];
        match counts.get_mut(id) {
            Some(n) => *n += 1,
            None => {
                counts.insert(id.to_string(), 1);
            }
        }
    }

    /// Whether the request carries the static token or a live issued one. With neither a
    /// token nor a login configured, everything is allowed.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.opts.token.is_none() && self.opts.login.is_none() {
            return true;
        }
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let token = token.trim();
        if self.opts.token.as_deref() == Some(token) {
            return true;
        }
        self.lock()
            .tokens
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    fn issue(&self, token: &str, lifetime: Duration) {
        let now = Instant::now();
        // A lifetime too long to represent never expires in practice.
        let expiry = now
            .checked_add(lifetime)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        let mut state = self.lock();
        state.tokens.retain(|_, e| *e > now);
        state.tokens.insert(token.to_string(), expiry);
    }

    /// The fault set for `(target, id)`; a one-shot fault is consumed.
    pub(crate) fn take_fault(&self, target: Target, id: &str) -> Option<Fault> {
        let mut state = self.lock();
        let faults = &mut state.faults[target.index()];
        match faults.get(id)? {
            Fault::Error500Once => faults.remove(id),
            fault => Some(fault.clone()),
        }
    }

    fn render(&self, version: ApiVersion, endpoint: Endpoint, id: &str) -> Response<Body> {
        let (status, body) = self.render_body(version, endpoint, id);
        full(status, body)
    }

    /// The normal answer: a pinned fixture, else a seed fixture, else the live scenario,
    /// else the seed's 404.
    fn render_body(
        &self,
        version: ApiVersion,
        endpoint: Endpoint,
        id: &str,
    ) -> (StatusCode, Bytes) {
        if let Some(body) = self.lock().fixtures[endpoint.index()].get(id) {
            return (StatusCode::OK, body.clone());
        }
        if let Some((status, body)) = fixtures::lookup(endpoint, id) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return (status, Bytes::from_static(body.as_bytes()));
        }
        let now_ms = Utc::now().timestamp_millis();
        if let Some(body) =
            scenario::render(version, endpoint, id, now_ms, self.cycle_ms, self.fleet)
        {
            return (StatusCode::OK, Bytes::from(body));
        }
        let body = zdm::error_body(version, &endpoint.not_found_error(id));
        (StatusCode::NOT_FOUND, Bytes::from(body))
    }
}
