//! The HTTP pieces every simulated system shares: the body type, JSON answers, the
//! generic fault answers (`Retry-After`, truncated, streamed), percent coding, bounded
//! request bodies and bearer tokens.
//!
//! A leaf: it imports nothing else of the simulator, so every other module may use it.

use std::convert::Infallible;
use std::fmt;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The content type of every answer, errors included.
const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

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

/// A JSON answer with `body` as is.
pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

/// A JSON answer with `value` serialized.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    full(status, serde_json::to_vec(value).unwrap_or_default())
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

/// Adds `Allow: <methods>`, for a 405 answer.
pub(crate) fn with_allow(mut response: Response<Body>, methods: &'static str) -> Response<Body> {
    response
        .headers_mut()
        .insert("allow", HeaderValue::from_static(methods));
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
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

/// The whole body of a ready-made answer (for the `truncated` fault).
pub(crate) async fn body_bytes(response: Response<Body>) -> Bytes {
    match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    }
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

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive), if any.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("db-%EC%84%9C%EB%B2%84-02").as_deref(),
            Some("db-서버-02")
        );
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%1", "%+1", "%zz", "%FF", "abc%"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }
}
