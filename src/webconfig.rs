//! `--web.config.file`: the exporter-toolkit web configuration (TLS and basic auth), so the
//! endpoints can be protected exactly like the official exporters'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// bcrypt checks that may run at once, on tokio's blocking pool: a flood of wrong passwords
/// queues here instead of taking every core or any of the runtime's worker threads.
const BCRYPT_SLOTS: usize = 2;
/// How long a (user, password) pair that passed bcrypt is accepted without bcrypt again.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Pairs remembered at most; the oldest goes first.
const VERIFIED_MAX: usize = 256;
/// Salt and checksum of a well-formed bcrypt hash (exporter-toolkit's dummy): an unknown user
/// is checked against it, at the configured cost, so that it takes as long as a wrong password.
const DUMMY_SALT_AND_CHECKSUM: &str = "QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

pub struct WebConfig {
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: HashMap<String, String>,
    /// No password matches it; its cost is the highest of the configured hashes.
    dummy_hash: String,
    bcrypt_slots: Arc<tokio::sync::Semaphore>,
    verified: Mutex<Verified>,
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
        let mut users: Vec<(&String, &String)> = raw.basic_auth_users.iter().collect();
        users.sort();
        let mut cost = 0;
        for (user, hash) in users {
            let this = bcrypt_cost(hash).map_err(|reason| {
                invalid(format!(
                    "basic_auth_users.{user}: not a bcrypt hash ({reason}; expected 60 characters like $2y$10$...)"
                ))
            })?;
            cost = cost.max(this);
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = match raw.tls_server_config {
            Some(tls) => Some(build_tls(&tls, base).map_err(invalid)?),
            None => None,
        };
        Ok(WebConfig::new(tls, raw.basic_auth_users, cost))
    }

    fn new(
        tls: Option<tokio_rustls::TlsAcceptor>,
        users: HashMap<String, String>,
        cost: u32,
    ) -> Self {
        WebConfig {
            tls,
            users,
            dummy_hash: format!("$2y${cost:02}${DUMMY_SALT_AND_CHECKSUM}"),
            bcrypt_slots: Arc::new(tokio::sync::Semaphore::new(BCRYPT_SLOTS)),
            verified: Mutex::new(Verified::default()),
        }
    }

    pub fn tls_acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.clone()
    }

    /// True when no users are configured, or the Basic credentials match a bcrypt hash.
    ///
    /// An unknown user is checked against a dummy hash of the same cost, so the answer takes
    /// as long as for a wrong password and does not tell which users exist. bcrypt runs on the
    /// blocking pool, at most `BCRYPT_SLOTS` at once; a pair that passed is remembered for
    /// `VERIFIED_FOR` so that a scrape every few seconds does not pay for bcrypt each time.
    pub async fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(basic_credentials) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if known && self.verified().contains(&digest, Instant::now()) {
            return true;
        }
        let Ok(slot) = self.bcrypt_slots.clone().acquire_owned().await else {
            return false;
        };
        // The slot moves into the blocking task: a client that hangs up mid-check does not
        // free it before bcrypt has finished.
        let matched = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = matched && known;
        if ok {
            self.verified().insert(digest, Instant::now());
        }
        ok
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The cost of a well-formed bcrypt hash, or why it is not one.
fn bcrypt_cost(hash: &str) -> Result<u32, String> {
    let parts: bcrypt::HashParts = hash.parse().map_err(|e: bcrypt::BcryptError| {
        let reason = e.to_string();
        reason
            .strip_prefix("Invalid hash: ")
            .unwrap_or(&reason)
            .to_string()
    })?;
    let cost = parts.get_cost();
    if !(4..=31).contains(&cost) {
        return Err(format!("cost {cost} is outside 04..31"));
    }
    Ok(cost)
}

/// Digests of (user, password, hash) that passed bcrypt, with when they did.
#[derive(Default)]
struct Verified {
    at: HashMap<[u8; 32], Instant>,
}

impl Verified {
    fn contains(&mut self, digest: &[u8; 32], now: Instant) -> bool {
        match self.at.get(digest) {
            Some(at) if now.saturating_duration_since(*at) < VERIFIED_FOR => true,
            Some(_) => {
                self.at.remove(digest);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, digest: [u8; 32], now: Instant) {
        if self.at.len() >= VERIFIED_MAX && !self.at.contains_key(&digest) {
            self.at
                .retain(|_, at| now.saturating_duration_since(*at) < VERIFIED_FOR);
            if self.at.len() >= VERIFIED_MAX {
                let oldest = self.at.iter().min_by_key(|(_, at)| **at).map(|(d, _)| *d);
                if let Some(oldest) = oldest {
                    self.at.remove(&oldest);
                }
            }
        }
        self.at.insert(digest, now);
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
        WebConfig::new(None, HashMap::from([(user.to_string(), hash)]), 4)
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {token}")).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_accepts_only_the_right_password() {
        let web = config_with_user("prometheus", "s3cret");
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))).await);
        // Second time from the cache.
        assert!(web.authorized(Some(&basic("prometheus", "s3cret"))).await);
        assert!(!web.authorized(Some(&basic("prometheus", "wrong"))).await);
        assert!(!web.authorized(Some(&basic("other", "s3cret"))).await);
        assert!(!web.authorized(None).await);
        assert!(
            !web.authorized(Some(&HeaderValue::from_static("Bearer x")))
                .await
        );
        assert!(
            !web.authorized(Some(&HeaderValue::from_static("Basic !!!")))
                .await
        );
    }

    #[test]
    fn the_dummy_hash_is_well_formed_at_every_cost_and_matches_nothing() {
        for cost in [4, 10, 31] {
            let web = WebConfig::new(None, HashMap::new(), cost);
            assert_eq!(bcrypt_cost(&web.dummy_hash), Ok(cost), "{}", web.dummy_hash);
        }
        let web = WebConfig::new(None, HashMap::new(), 4);
        for password in ["", "password", "prometheus"] {
            assert_eq!(bcrypt::verify(password, &web.dummy_hash).ok(), Some(false));
        }
    }

    #[test]
    fn malformed_hashes_are_named() {
        let good = bcrypt::hash("x", 4).unwrap();
        assert_eq!(bcrypt_cost(&good), Ok(4));
        let cost_99 = format!("$2b$99${}", &good[7..]);
        let cost_03 = format!("$2b$03${}", &good[7..]);
        let not_2 = format!("$3b$10${}", &good[7..]);
        for bad in [
            "",
            "$2",
            "plain",
            cost_99.as_str(),
            cost_03.as_str(),
            not_2.as_str(),
            &good[..59],
            "$2y$10$ééééééééééééééééééééééééééé",
        ] {
            assert!(bcrypt_cost(bad).is_err(), "{bad:?} passed");
        }
        assert_eq!(
            bcrypt_cost(&cost_99).unwrap_err(),
            "cost 99 is outside 04..31"
        );
    }

    #[test]
    fn verified_pairs_expire_and_the_oldest_goes_first() {
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        let mut v = Verified::default();
        let t0 = Instant::now();
        v.insert(key(1), t0);
        assert!(v.contains(&key(1), t0 + Duration::from_secs(59)));
        assert!(!v.contains(&key(1), t0 + VERIFIED_FOR));
        assert!(v.at.is_empty(), "an expired pair is dropped when seen");
        for i in 0..VERIFIED_MAX {
            v.insert(key(i), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(v.at.len(), VERIFIED_MAX);
        let later = t0 + Duration::from_secs(1);
        let new = key(VERIFIED_MAX);
        v.insert(new, later);
        assert_eq!(v.at.len(), VERIFIED_MAX);
        assert!(!v.contains(&key(0), later), "the oldest went");
        assert!(v.contains(&new, later));
        assert!(v.contains(&key(1), later));
        // Everything expired: room is made by dropping the expired ones.
        v.insert(key(VERIFIED_MAX + 1), later + VERIFIED_FOR);
        assert_eq!(v.at.len(), 1);
    }

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
