//! ZDM authorization: a static bearer token, or a login (`POST` of the email and password
//! to the token issuing path) whose token is cached, and issued again a minute before it
//! expires or when the API answers 401.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use serde_json::Value;

use super::config::{ZdmAuth, ZdmConfig};
use crate::config::checks::Secret;
use crate::http::{StatusRules, UpstreamHttp};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{bearer, set_bearer, IssuedToken, TokenCache, MAX_TOKEN_LIFETIME};

/// Authorizes one upstream's requests.
pub(super) struct Authorizer {
    /// The base URL the login path is appended to.
    url: String,
    auth: ZdmAuth,
    /// The token from login and when to re-issue it.
    issued: TokenCache,
    /// `Authorization` of a static `token`, built once; `None` with login, or when the
    /// token cannot be a header value (then every request says so).
    bearer: Option<HeaderValue>,
}

impl Authorizer {
    pub(super) fn new(config: &ZdmConfig) -> Self {
        let bearer = match &config.auth {
            ZdmAuth::Token(token) => bearer(token).ok(),
            ZdmAuth::Login { .. } => None,
        };
        Authorizer {
            url: config.url.clone(),
            auth: config.auth.clone(),
            issued: TokenCache::default(),
            bearer,
        }
    }

    /// True with login: a 401 is answered by issuing a new token and trying once more.
    pub(super) fn renews(&self) -> bool {
        matches!(self.auth, ZdmAuth::Login { .. })
    }

    /// Sets `Authorization: Bearer` on `request`: the static token, or the login's, issued
    /// first when there is none yet, it is due, or `renew` is set.
    pub(super) async fn authorize(
        &self,
        request: &mut reqwest::Request,
        http: &UpstreamHttp,
        deadline: Instant,
        renew: bool,
    ) -> Result<(), Fault> {
        match &self.bearer {
            Some(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
                Ok(())
            }
            None => set_bearer(request, &self.token(http, deadline, renew).await?),
        }
    }

    async fn token(
        &self,
        http: &UpstreamHttp,
        deadline: Instant,
        renew: bool,
    ) -> Result<Secret, Fault> {
        let (path, email, password) = match &self.auth {
            ZdmAuth::Token(token) => return Ok(token.clone()),
            ZdmAuth::Login {
                path,
                email,
                password,
            } => (path, email, password),
        };
        self.issued
            .get(renew, || async {
                let url = Url::parse(&format!("{}{}", self.url, path)).map_err(|e| {
                    Fault::new(Outcome::UpstreamError, format!("bad login URL: {e}"))
                })?;
                let mut request = reqwest::Request::new(Method::POST, url);
                let body =
                    serde_json::json!({ "email": email.expose(), "password": password.expose() });
                *request.body_mut() = Some(body.to_string().into());
                request.headers_mut().insert(
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                http.fetch(request, StatusRules::default(), deadline, parse_login)
                    .await
            })
            .await
    }
}

/// Reads `data.token` (or `token`) and `data.expiresAt` of a login answer.
pub(super) fn parse_login(body: &[u8]) -> Result<IssuedToken, Fault> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Fault::decode(format!("login answer: {e}")))?;
    let token = v
        .pointer("/data/token")
        .or_else(|| v.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::new(Outcome::AuthError, "login answer has no token"))?;
    let expires_at = v
        .pointer("/data/expiresAt")
        .or_else(|| v.get("expiresAt"))
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64));
    Ok(IssuedToken {
        token: Secret::new(token.to_string()),
        renew_at: renew_at(Instant::now(), SystemTime::now(), expires_at),
    })
}

/// A token is used until one minute before it expires, or for half its life when that is
/// under two minutes; never longer than a day (re-issued daily without an expiry, or at once
/// when the upstream answers 401).
pub(super) fn renew_at(
    now: Instant,
    now_wall: SystemTime,
    expires_at: Option<SystemTime>,
) -> Instant {
    let Some(expires_at) = expires_at else {
        return now + MAX_TOKEN_LIFETIME;
    };
    let lifetime = expires_at.duration_since(now_wall).unwrap_or_default();
    let usable = if lifetime < Duration::from_secs(120) {
        lifetime / 2
    } else {
        lifetime - Duration::from_secs(60)
    };
    now + usable.min(MAX_TOKEN_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_tokens_renew_a_minute_early_or_at_half_a_short_life() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let hour = renew_at(now, wall, Some(wall + Duration::from_secs(3600)));
        assert_eq!(hour - now, Duration::from_secs(3540));
        let short = renew_at(now, wall, Some(wall + Duration::from_secs(90)));
        assert_eq!(short - now, Duration::from_secs(45));
        let past = renew_at(now, wall, Some(wall - Duration::from_secs(5)));
        assert_eq!(past, now);
    }

    #[test]
    fn login_answer_reads_data_token_or_token() {
        let a = parse_login(
            br#"{"success":true,"data":{"token":"abc","expiresAt":"2999-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(a.token.expose(), "abc");
        let b = parse_login(br#"{"token":"xyz"}"#).unwrap();
        assert_eq!(b.token.expose(), "xyz");
        let missing = parse_login(br#"{"success":true,"data":{}}"#).err().unwrap();
        assert_eq!(missing.outcome, Outcome::AuthError);
        let garbage = parse_login(b"<html>").err().unwrap();
        assert_eq!(garbage.outcome, Outcome::DecodeError);
    }
}
