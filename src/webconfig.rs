//! `--web.config.file`: the exporter-toolkit web configuration (TLS and basic auth), so the
//! endpoints can be protected exactly like the official exporters'.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::HeaderValue;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read web config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("web config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    /// user name -> bcrypt hash
    #[serde(default)]
    basic_auth_users: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: HashMap<String, String>,
    /// Digests of credentials that passed bcrypt, so each scrape does not pay for bcrypt.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| WebConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig {
                tls_server_config: None,
                basic_auth_users: HashMap::new(),
            }
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let at = e.path().to_string();
                invalid(format!("{at}: {}", e.into_inner()))
            })?
        };
        for (user, hash) in &raw.basic_auth_users {
            if !hash.starts_with("$2") {
                return Err(invalid(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (expected $2a$, $2b$ or $2y$...)"
                )));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(tls) => Some(build_tls(&tls, base).map_err(invalid)?),
            None => None,
        };
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// True when no users are configured, or the Basic credentials match a bcrypt hash.
    pub fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.contains(&digest) {
            return true;
        }
        drop(verified);
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() < 1024 {
                verified.insert(digest);
            }
        }
        ok
    }
}

fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn tls_version(name: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match name {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        other => Err(format!(
            "tls_server_config: version {other} is not supported (TLS12 or TLS13)"
        )),
    }
}

fn build_tls(raw: &RawTls, base: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let cert_path = resolve(&raw.cert_file);
    let key_path = resolve(&raw.key_file);
    let cert_pem = std::fs::read(&cert_path).map_err(|e| {
        format!(
            "tls_server_config.cert_file: cannot read {}: {e}",
            cert_path.display()
        )
    })?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("tls_server_config.cert_file: no certificate found".into());
    }
    let key_pem = std::fs::read(&key_path).map_err(|e| {
        format!(
            "tls_server_config.key_file: cannot read {}: {e}",
            key_path.display()
        )
    })?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?
        .ok_or("tls_server_config.key_file: no private key found")?;

    let min = tls_version(raw.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = tls_version(raw.max_version.as_deref().unwrap_or("TLS13"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let rank = |x: &rustls::SupportedProtocolVersion| {
                    if x.version == rustls::ProtocolVersion::TLSv1_2 {
                        0
                    } else {
                        1
                    }
                };
                rank(v) >= rank(min) && rank(v) <= rank(max)
            })
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth_type = raw.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_path = raw
                .client_ca_file
                .as_ref()
                .map(|p| resolve(p))
                .ok_or("tls_server_config.client_ca_file: required by client_auth_type")?;
            let ca_pem = std::fs::read(&ca_path)
                .map_err(|e| format!("tls_server_config.client_ca_file: cannot read {}: {e}", ca_path.display()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth_type == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_user(user: &str, password: &str) -> WebConfig {
        let hash = bcrypt::hash(password, 4).unwrap();
        WebConfig {
            tls: None,
            users: HashMap::from([(user.to_string(), hash)]),
            verified: Mutex::new(HashSet::new()),
        }
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[test]
    fn basic_auth_accepts_only_the_right_password() {
        let web = config_with_user("prometheus", "s3cret");
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))));
        // Second time from the cache.
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))));
        assert!(!web.authorized(Some(&basic("prometheus", "wrong"))));
        assert!(!web.authorized(Some(&basic("other", "s3cret"))));
        assert!(!web.authorized(None));
        assert!(!web.authorized(Some(&HeaderValue::from_static("Bearer x"))));
        assert!(!web.authorized(Some(&HeaderValue::from_static("Basic !!!"))));
    }

    #[test]
    fn unknown_keys_and_bad_hashes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users:\n  a: plain\n").unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("basic_auth_users.a: not a bcrypt hash"), "{e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: []\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cipher_suites"), "{e}");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: k\n",
        )
        .unwrap();
        let e = WebConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("cert_file: cannot read"), "{e}");
    }
}
