//! ZDM authentication: a static bearer token and/or login
//! (`POST {prefix}/auth/issue`, `POST {prefix}/token/issue`) issuing expiring tokens.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};

use super::wire::{self, error, method_not_allowed, ApiVersion, Envelope};
use crate::http::{bearer_token, json_response, read_body, Body};

/// Largest login body accepted.
const LOGIN_BODY_LIMIT: usize = 64 * 1024;

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

/// The accepted credentials, the tokens issued so far and the number of login attempts.
pub(crate) struct Auth {
    /// Static bearer token accepted on the monitoring endpoints.
    token: Option<String>,
    /// `(email, password)` accepted by login; `None` rejects every login.
    login: Option<(String, String)>,
    /// Lifetime of tokens issued by login.
    lifetime: Duration,
    state: Mutex<Issued>,
}

#[derive(Default)]
struct Issued {
    tokens: HashMap<String, Instant>,
    logins: u64,
}

impl Auth {
    pub(crate) fn new(
        token: Option<String>,
        login: Option<(String, String)>,
        lifetime: Duration,
    ) -> Auth {
        Auth {
            token,
            login,
            lifetime,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Issued> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the request carries the static token or a live issued one. With neither a
    /// token nor a login configured, everything is allowed.
    pub(crate) fn authorized(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() && self.login.is_none() {
            return true;
        }
        let Some(token) = bearer_token(headers) else {
            return false;
        };
        if self.token.as_deref() == Some(token) {
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

    /// Login attempts since the start or the last reset.
    pub(crate) fn logins(&self) -> u64 {
        self.lock().logins
    }

    pub(crate) fn reset_logins(&self) {
        self.lock().logins = 0;
    }

    /// `POST {prefix}/auth/issue` and `POST {prefix}/token/issue`.
    pub(crate) async fn login(
        &self,
        req: Request<Incoming>,
        version: ApiVersion,
    ) -> Response<Body> {
        self.lock().logins += 1;
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
        let accepted = self.login.as_ref().is_some_and(|(email, password)| {
            *email == credentials.email && *password == credentials.password
        });
        if !accepted {
            // As ZDM answers an unknown user or a wrong password (1.0.3 .. 2.0.1).
            return error(
                version,
                StatusCode::NOT_FOUND,
                "등록되지 않은 사용자이거나 비밀번호가 일치하지 않습니다.",
            );
        }
        let token = format!("{:032x}", rand::random::<u128>());
        let lifetime = self.lifetime;
        let expires_at = chrono::Duration::from_std(lifetime)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d))
            .map_or_else(
                || "9999-12-31T23:59:59Z".to_string(),
                |t| t.to_rfc3339_opts(SecondsFormat::Millis, true),
            );
        self.issue(&token, lifetime);
        let data = IssuedToken {
            token: &token,
            expires_at: &expires_at,
        };
        let body = Envelope {
            success: true,
            request_id: &wire::request_id(),
            data,
            message: "Token issued",
            timestamp: &version.now(),
        };
        json_response(StatusCode::OK, &body)
    }
}
