//! ZDM authorization: a static bearer token, or a login (`POST` of the email and password
//! to the token issuing path) whose token is cached, and issued again a minute before it
//! expires or when the API answers 401. Every error answer of the login path is
//! `auth_error`: ZDM answers 404 for an unknown user or a wrong password (1.0.3 .. 2.0.1),
//! 400/422 for a bad body, 408 (1.x) or 500 (2.0) when the user lookup times out.

use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, Url};
use serde_json::Value;

use super::config::{ZdmAuth, ZdmConfig};
use crate::config::checks::Secret;
use crate::http::{StatusRules, UpstreamHttp};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{bearer, set_bearer, IssuedToken, TokenCache, MAX_TOKEN_LIFETIME};

/// The login path's answers: anything but a 2xx (or a 429, which keeps its Retry-After) is
/// `auth_error`, so a wrong password never reads as deleted jobs (`not_found`) and the
/// targets keep their series until `stale_after`. A 500 too: 2.0 answers it where 1.x
/// answered 408 (the user lookup timed out), and either way no token was issued.
const LOGIN_RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: false,
    bad_request_is_auth_error: true,
    every_error_is_auth_error: true,
};

/// Authorizes one upstream's requests.
pub(super) struct Authorizer {
    /// The base URL the login path is appended to.
    url: String,
    /// Where an `expiresAt` without an offset is read (the upstream's `timezone`).
    timezone: chrono_tz::Tz,
    auth: ZdmAuth,
    /// The token from login and when to re-issue it.
    issued: TokenCache,
    /// `Authorization` of a static `token`, built once; `None` with login, or when the
    /// token cannot be a header value (then every request says so).
    bearer: Option<HeaderValue>,
}

impl Authorizer {
    pub(super) fn new(config: &ZdmConfig, timezone: chrono_tz::Tz) -> Self {
        let bearer = match &config.auth {
            ZdmAuth::Token(token) => bearer(token).ok(),
            ZdmAuth::Login { .. } => None,
        };
        Authorizer {
            url: config.url.clone(),
            timezone,
            auth: config.auth.clone(),
            issued: TokenCache::default(),
            bearer,
        }
    }

    /// True with login: a 401 is answered by issuing a new token and trying once more.
    pub(super) fn renews(&self) -> bool {
        matches!(self.auth, ZdmAuth::Login { .. })
    }

    /// The configured login path, `None` with a token or when the version decides it.
    pub(super) fn login_path(&self) -> Option<&str> {
        match &self.auth {
            ZdmAuth::Login { path, .. } => path.as_deref(),
            ZdmAuth::Token(_) => None,
        }
    }

    /// Sets `Authorization: Bearer` on `request`: the static token, or the login's (issued
    /// at `login_path`), issued first when there is none yet, it is due, or `renew` is set.
    pub(super) async fn authorize(
        &self,
        request: &mut reqwest::Request,
        http: &UpstreamHttp,
        deadline: Instant,
        renew: bool,
        login_path: &str,
    ) -> Result<(), Fault> {
        match &self.bearer {
            Some(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
                Ok(())
            }
            None => set_bearer(
                request,
                &self.token(http, deadline, renew, login_path).await?,
            ),
        }
    }

    /// Issues a token at `login_path` now (replacing any cached one): how `auto` learns
    /// which login path the server has.
    pub(super) async fn issue_at(
        &self,
        http: &UpstreamHttp,
        deadline: Instant,
        login_path: &str,
    ) -> Result<(), Fault> {
        self.token(http, deadline, true, login_path).await.map(drop)
    }

    async fn token(
        &self,
        http: &UpstreamHttp,
        deadline: Instant,
        renew: bool,
        path: &str,
    ) -> Result<Secret, Fault> {
        let (email, password) = match &self.auth {
            ZdmAuth::Token(token) => return Ok(token.clone()),
            ZdmAuth::Login {
                email, password, ..
            } => (email, password),
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
                http.fetch(request, LOGIN_RULES, deadline, |body| {
                    parse_login(body, self.timezone)
                })
                .await
            })
            .await
    }
}

/// Reads `data.token` (or `token`) and `data.expiresAt` of a login answer; an `expiresAt`
/// without an offset (`2026-01-17 16:14:09`, 1.0.3 on) is read in `timezone`.
pub(super) fn parse_login(body: &[u8], timezone: chrono_tz::Tz) -> Result<IssuedToken, Fault> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| Fault::decode(format!("login answer: {e}")))?;
    let token = v
        .pointer("/data/token")
        .or_else(|| v.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::new(Outcome::AuthError, "login answer has no token"))?;
    let expires_at = expires_at(&v, timezone);
    Ok(IssuedToken {
        token: Secret::new(token.to_string()),
        renew_at: renew_at(Instant::now(), SystemTime::now(), expires_at),
    })
}

/// `data.expiresAt` (or `expiresAt`): RFC 3339, or naive in `timezone`; `None` when absent
/// or unreadable (then the token is used for a day or until a 401).
pub(super) fn expires_at(answer: &Value, timezone: chrono_tz::Tz) -> Option<SystemTime> {
    let raw = answer
        .pointer("/data/expiresAt")
        .or_else(|| answer.get("expiresAt"))
        .and_then(Value::as_str)?;
    let unix = crate::parse::parse_time(raw, timezone).ok().flatten()?;
    let since_epoch = Duration::try_from_secs_f64(unix.max(0.0)).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(since_epoch)
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
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(a.token.expose(), "abc");
        let b = parse_login(br#"{"token":"xyz"}"#, chrono_tz::UTC).unwrap();
        assert_eq!(b.token.expose(), "xyz");
        let missing = parse_login(br#"{"success":true,"data":{}}"#, chrono_tz::UTC).err().unwrap();
        assert_eq!(missing.outcome, Outcome::AuthError);
        let garbage = parse_login(b"<html>", chrono_tz::UTC).err().unwrap();
        assert_eq!(garbage.outcome, Outcome::DecodeError);
    }

    /// `expiresAt` as each version writes it: RFC 3339 with `Z` (0.2.0), naive (1.0.3 on,
    /// no zone documented) read in the upstream's `timezone`, UTC when none is configured.
    #[test]
    fn expires_at_reads_every_versions_form() {
        let at = |body: &str, tz| {
            let v: Value = serde_json::from_str(body).unwrap();
            expires_at(&v, tz).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs())
        };
        let naive = r#"{"data":{"expiresAt":"2026-01-17 16:14:09"}}"#;
        assert_eq!(at(naive, chrono_tz::UTC), Some(1_768_666_449));
        assert_eq!(at(naive, chrono_tz::Asia::Seoul), Some(1_768_666_449 - 9 * 3600));
        let zulu = r#"{"data":{"expiresAt":"2025-01-16T10:30:00Z"}}"#;
        assert_eq!(at(zulu, chrono_tz::Asia::Seoul), Some(1_737_023_400));
        for none in [r#"{"data":{}}"#, r#"{"data":{"expiresAt":"-"}}"#, r#"{"data":{"expiresAt":"soon"}}"#, r#"{"data":{"expiresAt":"1000-01-01 00:00:00"}}"#] {
            let got = at(none, chrono_tz::UTC);
            assert!(got.is_none() || got == Some(0), "{none}: {got:?}");
        }
    }
}
