//! Azure AD tokens for the ARM API: client credentials, the managed identity (IMDS) or
//! workload identity (a federated token exchanged as a client assertion), cached until
//! five minutes before they expire.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, Url};
use serde_json::Value;

use super::config::{AzureAuth, AzureConfig};
use super::wire::TokenAnswer;
use crate::config::checks::{
    read_capped, read_off_runtime, Secret, FILE_READ_TIMEOUT, MAX_SECRET_FILE_BYTES,
};
use crate::http::{StatusRules, UpstreamHttp};
use crate::outcome::{Fault, Outcome};
use crate::sources::source::{endpoint, IssuedToken, TokenCache, MAX_TOKEN_LIFETIME};

/// The ARM resource tokens are requested for (the contract's fixed scope).
const RESOURCE: &str = "https://management.azure.com/";
const SCOPE: &str = "https://management.azure.com/.default";
const IMDS_API_VERSION: &str = "2018-02-01";
/// The `client_assertion_type` of a federated (workload identity) token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Tokens are renewed this long before they expire.
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The token endpoints answer 400 for a bad client id and 401 for a bad secret.
const TOKEN_RULES: StatusRules = StatusRules {
    bad_request_is_incomplete: false,
    bad_request_is_auth_error: true,
    every_error_is_auth_error: false,
};

/// The cached token of `config`, or a new one when none is cached, it is due, or `renew`
/// is set (after the API answered 401).
pub(super) async fn token(
    cache: &TokenCache,
    config: &AzureConfig,
    http: &UpstreamHttp,
    deadline: Instant,
    renew: bool,
) -> Result<Secret, Fault> {
    cache
        .get(renew, || async {
            let request = match &config.auth {
                // The federated token file is read off the runtime's worker threads, within
                // a time limit: a FIFO or a hung mount is an auth_error, not a stall.
                AzureAuth::WorkloadIdentity { .. } => {
                    let config = config.clone();
                    read_off_runtime(FILE_READ_TIMEOUT, move || token_request(&config))
                        .await
                        .map_err(|why| {
                            Fault::new(
                                Outcome::AuthError,
                                format!("reading the federated token file: {why}"),
                            )
                        })??
                }
                _ => token_request(config)?,
            };
            http.fetch(request, TOKEN_RULES, deadline, parse_token)
                .await
        })
        .await
}

/// The request for a new token, by the configured method.
pub(super) fn token_request(config: &AzureConfig) -> Result<reqwest::Request, Fault> {
    match &config.auth {
        AzureAuth::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => {
            let url = endpoint(
                &config.authority_url,
                &[tenant_id, "oauth2", "v2.0", "token"],
            )?;
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", client_id)
                .append_pair("client_secret", secret.expose())
                .append_pair("scope", SCOPE)
                .finish();
            Ok(form_request(url, body))
        }
        AzureAuth::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            let assertion = federated_token(token_file)?;
            let url = endpoint(
                &config.authority_url,
                &[tenant_id, "oauth2", "v2.0", "token"],
            )?;
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", client_id)
                .append_pair("scope", SCOPE)
                .append_pair("client_assertion_type", JWT_BEARER)
                .append_pair("client_assertion", assertion.expose())
                .finish();
            Ok(form_request(url, body))
        }
        AzureAuth::ManagedIdentity { client_id } => {
            let mut url = endpoint(
                &config.authority_url,
                &["metadata", "identity", "oauth2", "token"],
            )?;
            url.query_pairs_mut()
                .append_pair("api-version", IMDS_API_VERSION)
                .append_pair("resource", RESOURCE);
            if let Some(id) = client_id {
                url.query_pairs_mut().append_pair("client_id", id);
            }
            let mut request = reqwest::Request::new(Method::GET, url);
            request
                .headers_mut()
                .insert("Metadata", HeaderValue::from_static("true"));
            Ok(request)
        }
    }
}

/// A form POST to a token endpoint.
pub(super) fn form_request(url: Url, body: String) -> reqwest::Request {
    let mut request = reqwest::Request::new(Method::POST, url);
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    *request.body_mut() = Some(body.into());
    request
}

/// The federated token, read again for every token request (the kubelet rotates the file),
/// with the cap of secret files. Its content never goes into a message.
pub(super) fn federated_token(file: &std::path::Path) -> Result<Secret, Fault> {
    let text = read_capped(file, MAX_SECRET_FILE_BYTES).map_err(|e| {
        Fault::new(
            Outcome::AuthError,
            format!("cannot read federated token file {}: {e}", file.display()),
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Fault::new(
            Outcome::AuthError,
            format!("federated token file {} is empty", file.display()),
        ));
    }
    Ok(Secret::new(token.to_owned()))
}

/// Reads `access_token` and `expires_in` (a number from Azure AD, a string from IMDS).
pub(super) fn parse_token(body: &[u8]) -> Result<IssuedToken, Fault> {
    let answer: TokenAnswer =
        serde_json::from_slice(body).map_err(|e| Fault::decode(format!("token answer: {e}")))?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Fault::new(Outcome::AuthError, "token answer has no access_token"))?;
    let expires_in = match answer.expires_in {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .unwrap_or(3600);
    let lifetime = Duration::from_secs(expires_in).min(MAX_TOKEN_LIFETIME);
    Ok(IssuedToken::renewed_after(
        Secret::new(token),
        renew_after(lifetime),
    ))
}

/// Cached until five minutes before expiry; a short-lived token for half its life.
pub(super) fn renew_after(lifetime: Duration) -> Duration {
    if lifetime > RENEW_BEFORE * 2 {
        lifetime - RENEW_BEFORE
    } else {
        lifetime / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_renew_five_minutes_early_or_at_half_a_short_life() {
        assert_eq!(
            renew_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            renew_after(Duration::from_secs(300)),
            Duration::from_secs(150)
        );
    }

    #[test]
    fn token_answers_from_azure_ad_and_imds() {
        let ad = parse_token(br#"{"token_type":"Bearer","expires_in":3599,"access_token":"abc"}"#)
            .unwrap();
        assert_eq!(ad.token.expose(), "abc");
        let imds =
            parse_token(br#"{"access_token":"xyz","expires_in":"3599","token_type":"Bearer"}"#)
                .unwrap();
        assert_eq!(imds.token.expose(), "xyz");
        let none = parse_token(br#"{"token_type":"Bearer"}"#).err().unwrap();
        assert_eq!(none.outcome, Outcome::AuthError);
        assert_eq!(
            parse_token(b"<html>").err().unwrap().outcome,
            Outcome::DecodeError
        );
    }
}
