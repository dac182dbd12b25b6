//! SCP signature v2: with keys configured, every request must carry `Scp-Accesskey`,
//! `Scp-Timestamp`, `Scp-ClientType`, `Scp-Api-Version` and a matching `Scp-Signature`.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use sha2::Sha256;

use crate::clock;

/// Largest allowed distance between `Scp-Timestamp` and the clock.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// The keys requests must be signed with; without them nothing is checked.
pub(crate) struct Auth {
    /// `(access_key, secret_key)`.
    keys: Option<(String, String)>,
}

impl Auth {
    pub(crate) fn new(keys: Option<(String, String)>) -> Auth {
        Auth { keys }
    }

    /// Checks SCP signature v2 when keys are configured: `Scp-Signature` must be
    /// `base64(HMAC-SHA256(secret, METHOD + URL + Scp-Timestamp + access key + account id +
    /// "Openapi"))`, the timestamp within five minutes of the clock. The error never
    /// reveals the expected signature.
    pub(crate) fn check_signature(
        &self,
        req: &Request<Incoming>,
    ) -> Result<(), (StatusCode, &'static str)> {
        let Some((access_key, secret_key)) = &self.keys else {
            return Ok(());
        };
        let unauthorized = |message| Err((StatusCode::UNAUTHORIZED, message));
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let (Some(key), Some(signature), Some(timestamp), Some(client_type), Some(version)) = (
            header("scp-accesskey"),
            header("scp-signature"),
            header("scp-timestamp"),
            header("scp-clienttype"),
            header("scp-api-version"),
        ) else {
            return unauthorized(
                "Scp-Accesskey, Scp-Signature, Scp-Timestamp, Scp-ClientType and Scp-Api-Version are required",
            );
        };
        if client_type != "Openapi" {
            return unauthorized("Scp-ClientType must be Openapi");
        }
        // The versions Samsung still supports: 1.2 (CURRENT) and 1.1 (SUPPORTED); 1.0 is
        // deprecated and past its date.
        if !matches!(version.trim(), "backup 1.2" | "backup 1.1") {
            return Err((
                StatusCode::BAD_REQUEST,
                "unsupported Scp-Api-Version: expected backup 1.2 or backup 1.1",
            ));
        }
        if key != access_key {
            return unauthorized("unknown access key");
        }
        let Ok(sent_ms) = timestamp.parse::<i64>() else {
            return unauthorized("Scp-Timestamp must be Unix milliseconds");
        };
        if clock::now_ms().abs_diff(sent_ms) > MAX_SKEW_MS.unsigned_abs() {
            return unauthorized("Scp-Timestamp is more than 5 minutes from the server clock");
        }
        let account = header("scp-accountid").unwrap_or("");
        let message = format!(
            "{}{}{timestamp}{key}{account}Openapi",
            req.method(),
            request_url(req)
        );
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()) else {
            return unauthorized("signature does not match");
        };
        mac.update(message.as_bytes());
        let sent = base64::engine::general_purpose::STANDARD.decode(signature.trim());
        match sent {
            Ok(sent) if mac.verify_slice(&sent).is_ok() => Ok(()),
            _ => unauthorized("signature does not match"),
        }
    }
}

/// `http://{Host}{request-target}`: the URL the client requested, which it signed.
fn request_url(req: &Request<Incoming>) -> String {
    let uri = req.uri();
    if uri.scheme().is_some() {
        return uri.to_string();
    }
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("http://{host}{target}")
}
