//! The two ways to get an Azure token, and the bearer check of the management endpoints:
//! - `POST /{tenant}/oauth2/v2.0/token`: Azure AD client credentials (form body), checked
//!   against [`AzureSim`]: a `client_secret`, or (workload identity) a `client_assertion` of
//!   type jwt-bearer, any non-empty one, each distinct assertion remembered for the stats;
//! - `GET /metadata/identity/oauth2/token`: managed identity (IMDS), needs `Metadata: true`;
//!   `expires_in` is a string, as the real IMDS sends it.
//!
//! Tokens from either endpoint live for the configured lifetime; an expired one is
//! remembered a while so that it is told apart from an unknown one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::wire::{aad_error, arm_unauthorized, imds_error};
use crate::faults::{self, Action, Faults, Target};
use crate::http::{
    bearer_token, body_bytes, form_pairs, json_response, percent_decode, read_body, reason,
    streamed, truncated, with_retry_after, Body, DropConnection,
};

/// The fault target of the client-credentials token endpoint, by tenant.
pub(super) const TOKEN: Target = Target::new("token");
/// The fault target of the managed-identity token endpoint (one id: `default`).
pub(super) const IMDS: Target = Target::new("imds");

/// Largest token request body accepted.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;
/// How long an expired token is remembered, to answer `ExpiredAuthenticationToken`.
const EXPIRED_MEMORY: Duration = Duration::from_secs(3600);
/// The `client_assertion_type` of a federated (workload identity) token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Distinct client assertions remembered for the stats.
const MAX_ASSERTIONS: usize = 64;
/// `client_id` that IMDS reports for the managed identity.
const IMDS_CLIENT_ID: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

/// Client credentials accepted by the simulated Azure AD token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureSim {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// The application accepted by the token endpoint and the tokens issued so far.
pub(crate) struct Auth {
    /// `None` rejects every client-credentials request; IMDS always issues tokens.
    app: Option<AzureSim>,
    lifetime: Duration,
    /// Tokens with their expiry.
    tokens: Mutex<HashMap<String, Instant>>,
    /// Distinct jwt-bearer client assertions accepted, in the order first seen.
    assertions: Mutex<Vec<String>>,
}

/// A fresh opaque access token.
fn new_token() -> String {
    format!(
        "sim-azure.{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    )
}

impl Auth {
    pub(crate) fn new(app: Option<AzureSim>, lifetime: Duration) -> Auth {
        Auth {
            app,
            lifetime,
            tokens: Mutex::default(),
            assertions: Mutex::default(),
        }
    }

    /// The distinct client assertions accepted so far, in the order first seen.
    pub(crate) fn assertions(&self) -> Vec<String> {
        self.assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn forget_assertions(&self) {
        self.assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn saw_assertion(&self, assertion: &str) {
        let mut seen = self
            .assertions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.len() < MAX_ASSERTIONS && !seen.iter().any(|a| a == assertion) {
            seen.push(assertion.to_string());
        }
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a token living for the configured lifetime.
    fn issue(&self) -> String {
        let token = new_token();
        let now = Instant::now();
        let lifetime = self.lifetime;
        let expiry = now
            .checked_add(lifetime)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400));
        let mut tokens = self.tokens();
        tokens.retain(|_, e| e.checked_add(EXPIRED_MEMORY).is_none_or(|e| e > now));
        tokens.insert(token.clone(), expiry);
        token
    }

    /// `Authorization: Bearer` with a live token, else the ARM 401 answer.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check_bearer(&self, headers: &HeaderMap) -> Result<(), Response<Body>> {
        let Some(token) = bearer_token(headers) else {
            return Err(arm_unauthorized(
                "InvalidAuthenticationToken",
                "The access token is missing or malformed.",
            ));
        };
        let expiry = self.tokens().get(token).copied();
        match expiry {
            Some(expiry) if Instant::now() < expiry => Ok(()),
            Some(_) => Err(arm_unauthorized(
                "ExpiredAuthenticationToken",
                "The access token has expired.",
            )),
            None => Err(arm_unauthorized(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            )),
        }
    }

    fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs()
    }

    /// `POST /{tenant}/oauth2/v2.0/token`: client credentials.
    pub(crate) async fn token(
        &self,
        faults: &Faults,
        req: Request<Incoming>,
        raw_tenant: &str,
    ) -> Result<Response<Body>, DropConnection> {
        let Some(tenant) = percent_decode(raw_tenant).filter(|t| !t.is_empty()) else {
            return Ok(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS90002: Tenant '' not found.",
            ));
        };
        faults.count(TOKEN, &tenant);
        if req.method() != Method::POST {
            return Ok(aad_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "AADSTS900561: The endpoint only accepts POST requests.",
            ));
        }
        let body = match read_body(req.into_body(), TOKEN_BODY_LIMIT).await {
            Ok(body) => body,
            Err(status) => {
                return Ok(aad_error(
                    status,
                    "invalid_request",
                    "AADSTS900144: The request body could not be read.",
                ))
            }
        };
        let response = match faults::action(faults.take(TOKEN, &tenant)).await? {
        Action::Answer => self.client_credentials(&tenant, &body),
        Action::Error(StatusCode::UNAUTHORIZED) => aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        ),
        Action::Error(StatusCode::NOT_FOUND) => aad_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        ),
        Action::Error(StatusCode::BAD_REQUEST) => aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        ),
        Action::Error(status) => aad_error(
            status,
            "server_error",
            "AADSTS50000: There was an error issuing a token.",
        ),
        Action::RateLimited(secs) => with_retry_after(
            aad_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
            ),
            secs,
        ),
        Action::Truncate => {
            truncated(body_bytes(self.client_credentials(&tenant, &body)).await)
        }
        Action::Oversize => streamed(faults::padded_parts(
            r#"{"token_type":"Bearer","padding":["#.to_string(),
            r#""end"]}"#.to_string(),
        )),
    };
        Ok(response)
    }

    fn client_credentials(&self, tenant: &str, body: &[u8]) -> Response<Body> {
        let missing = |name: &str| {
            aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!(
                "AADSTS900144: The request body must contain the following parameter: '{name}'."
            ),
            )
        };
        let Some(pairs) = std::str::from_utf8(body).ok().and_then(form_pairs) else {
            return missing("grant_type");
        };
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let Some(grant_type) = field("grant_type") else {
            return missing("grant_type");
        };
        if grant_type != "client_credentials" {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS70003: The app requested an unsupported grant type.",
            );
        }
        // Workload identity sends a federated token instead of a secret.
        let federated = field("client_assertion_type").is_some();
        let credential = if federated {
            "client_assertion"
        } else {
            "client_secret"
        };
        let (Some(client_id), Some(presented), Some(scope)) =
            (field("client_id"), field(credential), field("scope"))
        else {
            let name = ["client_id", credential, "scope"]
                .into_iter()
                .find(|n| field(n).is_none())
                .unwrap_or("scope");
            return missing(name);
        };
        if federated && field("client_assertion_type") != Some(JWT_BEARER) {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS70011: The provided value for the input parameter 'client_assertion_type' is not valid.",
            );
        }
        let Some(app) = self
            .app
            .as_ref()
            .filter(|a| a.tenant_id.eq_ignore_ascii_case(tenant))
        else {
            return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."),
        );
        };
        if !scope.split(' ').all(|s| s.ends_with("/.default")) {
            return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
        }
        if !app.client_id.eq_ignore_ascii_case(client_id) {
            return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
        }
        if federated {
            self.saw_assertion(presented);
        } else if app.client_secret != presented {
            return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
        );
        }
        let lifetime = self.lifetime_secs();
        let body = json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.issue(),
        });
        json_response(StatusCode::OK, &body)
    }

    /// `GET /metadata/identity/oauth2/token`: managed identity.
    pub(crate) async fn imds(
        &self,
        faults: &Faults,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, DropConnection> {
        faults.count(IMDS, "default");
        if req.method() != Method::GET {
            return Ok(imds_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET is supported",
            ));
        }
        let metadata = req
            .headers()
            .get("metadata")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !metadata {
            return Ok(imds_error(
                StatusCode::BAD_REQUEST,
                "Required metadata header not specified",
            ));
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let response = match faults::action(faults.take(IMDS, "default")).await? {
            Action::Answer => self.managed_identity(&query),
            Action::Error(status) => imds_error(status, reason(status)),
            Action::RateLimited(secs) => with_retry_after(
                imds_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
                secs,
            ),
            Action::Truncate => truncated(body_bytes(self.managed_identity(&query)).await),
            Action::Oversize => streamed(faults::padded_parts(
                r#"{"token_type":"Bearer","padding":["#.to_string(),
                r#""end"]}"#.to_string(),
            )),
        };
        Ok(response)
    }

    fn managed_identity(&self, query: &str) -> Response<Body> {
        let Some(pairs) = form_pairs(query) else {
            return imds_error(StatusCode::BAD_REQUEST, "Malformed query string");
        };
        let param = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        if param("api-version").is_none() {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "Required query variable 'api-version' is missing",
            );
        }
        let Some(resource) = param("resource") else {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "Required audience parameter not specified",
            );
        };
        let lifetime = self.lifetime_secs();
        let now = Utc::now().timestamp();
        let expires_on = now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
        let body = json!({
            "access_token": self.issue(),
            "client_id": IMDS_CLIENT_ID,
            "expires_in": lifetime.to_string(),
            "expires_on": expires_on.to_string(),
            "ext_expires_in": lifetime.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        });
        json_response(StatusCode::OK, &body)
    }
}
