//! The web config file: its YAML keys (exporter-toolkit's, unknown keys refused) and
//! [`WebConfig`], one loaded file with what the server asks of it. Relative file names in the
//! file are resolved against the file's own folder, as exporter-toolkit's `SetDirectory`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::basic_auth::{Auth, BasicAuth, BcryptSlots};
use super::headers::extra_headers;
use super::rate_limit::RateLimit;
use super::tls::{build_tls, ResolvedTls};

/// Why a web config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    /// The file could not be read.
    #[error("cannot read web config {path}: {source}")]
    Read {
        /// The web config file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The file was read but is not a web config the exporter can honour.
    #[error("web config {path}: {message}")]
    Invalid {
        /// The web config file.
        path: PathBuf,
        /// What is wrong, starting with the key it is about.
        message: String,
    },
}

/// The top level of exporter-toolkit's `web-config.yml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    /// TLS for the listener; absent (or with no certificate, key, client CA or client auth
    /// type): plain HTTP.
    tls_server_config: Option<RawTls>,
    /// HTTP/2 and extra response headers.
    http_server_config: Option<RawHttp>,
    /// A limit on requests from all clients together, checked before authentication.
    rate_limit: Option<RawRateLimit>,
    /// user name -> bcrypt hash; none: no authentication.
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

/// exporter-toolkit's `tls_server_config`, key for key; empty strings count as unset, as in Go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    /// The server certificate chain, PEM inline (instead of `cert_file`).
    cert: Option<String>,
    /// The server's private key, PEM inline (instead of `key_file`).
    key: Option<String>,
    /// The CAs that sign client certificates, PEM inline (instead of `client_ca_file`).
    client_ca: Option<String>,
    /// The server certificate chain, a PEM file.
    cert_file: Option<PathBuf>,
    /// The server's private key, a PEM file.
    key_file: Option<PathBuf>,
    /// Go's `tls.ClientAuthType` name: `NoClientCert` (default), `RequestClientCert`,
    /// `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`.
    client_auth_type: Option<String>,
    /// The CAs that sign client certificates, a PEM file.
    client_ca_file: Option<PathBuf>,
    /// Go's names of the TLS 1.2 suites offered, in order; unset: rustls' defaults. The TLS
    /// 1.3 suites are always on, as in Go.
    cipher_suites: Option<Vec<String>>,
    /// Go's names of the key exchange groups offered, in order; unset: rustls' defaults.
    curve_preferences: Option<Vec<String>>,
    /// Lowest TLS version accepted: `TLS12` (default) or `TLS13`.
    min_version: Option<String>,
    /// Highest TLS version accepted: `TLS13` (default) or `TLS12`.
    max_version: Option<String>,
    /// Whether the server's order of cipher suites wins over the client's (default true).
    prefer_server_cipher_suites: Option<bool>,
    /// A client certificate must carry one of these SANs (DNS, e-mail, IP or URI).
    client_allowed_sans: Option<Vec<String>>,
}

/// exporter-toolkit's `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// Whether HTTP/2 is offered over TLS (default true); plain HTTP is HTTP/1.1 only.
    http2: Option<bool>,
    /// Header name -> value, added to every response; only the headers exporter-toolkit
    /// allows.
    #[serde(default)]
    headers: HashMap<String, String>,
}

/// exporter-toolkit's `rate_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// A Go duration (`1s`, `100ms`); 0 or absent turns the limiter off.
    interval: Option<String>,
    /// Requests allowed at once; one more is allowed per `interval`.
    burst: Option<u32>,
}

/// One loaded web config file: what the server asks of it for each connection and request.
pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// HTTP/2 offered over TLS (ALPN `h2`); never on plain HTTP, as in Go.
    http2: bool,
    /// `http_server_config.headers`, added to every response.
    headers: Vec<(HeaderName, HeaderValue)>,
    rate_limit: Option<RateLimit>,
    basic_auth: BasicAuth,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("users", &self.basic_auth.users().collect::<Vec<_>>())
            .finish()
    }
}

/// A load attempt: the files it named (to watch them), and what came of it.
pub(super) struct Attempt {
    /// The web config file, then the certificate, key and client CA files it names.
    pub(super) files: Vec<PathBuf>,
    pub(super) result: Result<WebConfig, WebConfigError>,
}

impl WebConfig {
    /// Reads the web config file at `path` and the files it names, and checks every key.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        Self::attempt(path, BcryptSlots::new()).result
    }

    /// Loads `path` with bcrypt checks sharing `bcrypt_slots` (kept across reloads).
    pub(super) fn attempt(path: &Path, bcrypt_slots: BcryptSlots) -> Attempt {
        let mut files = vec![path.to_path_buf()];
        let result = Self::parse(path, bcrypt_slots, &mut files);
        Attempt { files, result }
    }

    fn parse(
        path: &Path,
        bcrypt_slots: BcryptSlots,
        files: &mut Vec<PathBuf>,
    ) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let at = e.path().to_string();
                invalid(format!("{at}: {}", e.into_inner()))
            })?
        };
        let basic_auth = BasicAuth::new(raw.basic_auth_users, bcrypt_slots).map_err(invalid)?;
        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let headers = extra_headers(&http.headers).map_err(invalid)?;
        let rate_limit = match raw.rate_limit {
            Some(r) => RateLimit::new(r.interval.as_deref(), r.burst).map_err(invalid)?,
            None => None,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(tls) if tls.enabled() => {
                let tls = tls.resolved(base);
                files.extend(
                    [&tls.cert_file, &tls.key_file, &tls.client_ca_file]
                        .into_iter()
                        .flatten()
                        .cloned(),
                );
                Some(build_tls(&tls, http2).map_err(invalid)?)
            }
            _ => None,
        };
        Ok(WebConfig {
            tls,
            http2,
            headers,
            rate_limit,
            basic_auth,
        })
    }

    /// The TLS acceptor for a new connection; `None`: plain HTTP.
    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// Whether HTTP/2 is offered to TLS clients (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// `http_server_config.headers`, for every response.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// False when `rate_limit` has no token left for this request (answered 429).
    pub fn allow_request(&self) -> bool {
        self.rate_limit
            .as_ref()
            .is_none_or(|r| r.allow(Instant::now()))
    }

    /// Whether no users are configured or the Basic credentials match a bcrypt hash.
    ///
    /// An unknown user is checked against a dummy hash of the same cost, so the answer takes
    /// as long as for a wrong password and does not tell which users exist. bcrypt runs on the
    /// blocking pool, two checks at most at once with eight more waiting at most (past that:
    /// [`Auth::Busy`]); a pair that passed is remembered until unused for a minute, so that a
    /// scrape every few seconds pays for bcrypt once and waits behind no other check.
    pub async fn authorized(&self, header: Option<&HeaderValue>) -> Auth {
        self.basic_auth.authorized(header).await
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// A file name from the web config: unset when empty, joined to `base` (the web config file's
/// folder) when relative.
fn non_empty_path(p: &Option<PathBuf>, base: &Path) -> Option<PathBuf> {
    p.as_ref().filter(|p| !p.as_os_str().is_empty()).map(|p| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    })
}

impl RawTls {
    /// exporter-toolkit's `IsEnabled`: TLS is on when a certificate, key, client CA or client
    /// auth type is set; a section with only versions or suites leaves plain HTTP.
    fn enabled(&self) -> bool {
        [
            &self.cert,
            &self.key,
            &self.client_ca,
            &self.client_auth_type,
        ]
        .iter()
        .any(|s| non_empty(s).is_some())
            || [&self.cert_file, &self.key_file, &self.client_ca_file]
                .iter()
                .any(|p| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty()))
    }

    /// The section with empty strings dropped, Go's defaults filled in and file names
    /// resolved against `base`.
    fn resolved(&self, base: &Path) -> ResolvedTls {
        ResolvedTls {
            cert: non_empty(&self.cert),
            key: non_empty(&self.key),
            client_ca: non_empty(&self.client_ca),
            cert_file: non_empty_path(&self.cert_file, base),
            key_file: non_empty_path(&self.key_file, base),
            client_ca_file: non_empty_path(&self.client_ca_file, base),
            client_auth_type: non_empty(&self.client_auth_type)
                .unwrap_or_else(|| "NoClientCert".into()),
            cipher_suites: self.cipher_suites.clone().unwrap_or_default(),
            curve_preferences: self.curve_preferences.clone().unwrap_or_default(),
            min_version: non_empty(&self.min_version).unwrap_or_else(|| "TLS12".into()),
            max_version: non_empty(&self.max_version).unwrap_or_else(|| "TLS13".into()),
            prefer_server_cipher_suites: self.prefer_server_cipher_suites.unwrap_or(true),
            client_allowed_sans: self.client_allowed_sans.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users:\n  a: plain\n").unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("basic_auth_users.a: not a bcrypt hash"), "{e}");
        assert!(!e.contains("plain"), "the hash is not echoed: {e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suite: []\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cipher_suite"), "{e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: k\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cert_file: cannot read"), "{e}");
    }

    #[test]
    fn an_empty_file_serves_plain_http_to_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "\n").unwrap();
        let web = WebConfig::load(&path).unwrap();
        assert!(web.tls_acceptor().is_none());
        assert!(web.http2());
        assert!(web.headers().is_empty());
        assert!(web.allow_request());
    }

    #[test]
    fn an_unreadable_file_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = WebConfig::load(&dir.path().join("absent.yml")).unwrap_err();
        assert!(matches!(e, WebConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn tls_is_on_only_with_a_certificate_key_client_ca_or_auth_type() {
        let raw = |yaml: &str| -> RawTls { serde_yaml_ng::from_str(yaml).unwrap() };
        assert!(!raw("min_version: TLS13\ncipher_suites: []\n").enabled());
        assert!(!raw("cert_file: ''\ncert: ''\n").enabled());
        for on in [
            "cert_file: a.crt",
            "key_file: a.key",
            "client_ca_file: ca.crt",
            "cert: x",
            "key: x",
            "client_ca: x",
            "client_auth_type: RequestClientCert",
        ] {
            assert!(raw(on).enabled(), "{on}");
        }
    }

    #[test]
    fn relative_files_are_beside_the_web_config_and_empty_strings_unset() {
        let raw: RawTls = serde_yaml_ng::from_str(
            "cert_file: tls/a.crt\nkey_file: /etc/a.key\nclient_ca_file: ''\nmin_version: ''\n",
        )
        .unwrap();
        let tls = raw.resolved(Path::new("/srv/web"));
        assert_eq!(tls.cert_file, Some(PathBuf::from("/srv/web/tls/a.crt")));
        assert_eq!(tls.key_file, Some(PathBuf::from("/etc/a.key")));
        assert_eq!(tls.client_ca_file, None);
        assert_eq!(tls.min_version, "TLS12");
        assert_eq!(tls.max_version, "TLS13");
        assert_eq!(tls.client_auth_type, "NoClientCert");
        assert!(tls.prefer_server_cipher_suites);
    }
}
