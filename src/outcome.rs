//! Why a request or a poll ended: the `outcome` label and the fault carried up from the HTTP
//! client through sources and pollers to the store. A leaf: imports only `text`.

use std::time::Duration;

/// The `outcome` label of `backup_upstream_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    NotFound,
    Incomplete,
    AuthError,
    RateLimited,
    Http4xx,
    Http5xx,
    Timeout,
    ConnectError,
    DecodeError,
    TooLarge,
    UpstreamError,
}

impl Outcome {
    pub const ALL: [Outcome; 12] = [
        Outcome::Success,
        Outcome::NotFound,
        Outcome::Incomplete,
        Outcome::AuthError,
        Outcome::RateLimited,
        Outcome::Http4xx,
        Outcome::Http5xx,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::DecodeError,
        Outcome::TooLarge,
        Outcome::UpstreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::NotFound => "not_found",
            Outcome::Incomplete => "incomplete",
            Outcome::AuthError => "auth_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::Http4xx => "http_4xx",
            Outcome::Http5xx => "http_5xx",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::DecodeError => "decode_error",
            Outcome::TooLarge => "too_large",
            Outcome::UpstreamError => "upstream_error",
        }
    }

    /// 5xx answers and connection failures may be transient; everything else is not retried.
    pub fn retryable(self) -> bool {
        matches!(self, Outcome::Http5xx | Outcome::ConnectError)
    }
}

/// Why a request or a poll failed. `reason` is safe to log: it never holds a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {reason}", outcome.as_str())]
pub struct Fault {
    pub outcome: Outcome,
    pub reason: String,
    /// From a 429's `Retry-After`: no request to the target before this has passed.
    pub retry_after: Option<Duration>,
}

impl Fault {
    /// A fault with `reason` made safe to log: it may quote upstream text (an error body,
    /// a status word, a decoder's message about the body), so control characters are escaped.
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Self {
        Fault {
            outcome,
            reason: crate::text::escape_control(&reason.into()),
            retry_after: None,
        }
    }

    pub fn decode(reason: impl std::fmt::Display) -> Self {
        Fault::new(Outcome::DecodeError, reason.to_string())
    }
}
