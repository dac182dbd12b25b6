//! How the exporter connects to one upstream, Prometheus' client conventions: `tls_config`
//! (a private CA, a client certificate, the name to verify, or no verification) and
//! `proxy_url`. Every type takes these keys; an upstream that sets none uses the shared
//! client. Files are read (with a cap) and their PEM checked when the config is loaded, so
//! a changed certificate changes the config and a reload restarts that upstream.

use std::fmt;

use serde::Deserialize;

use super::checks::{join, read_capped, Cx, Secret};

/// The keys of [`RawClient`]: split off an upstream's map before its type's own keys are
/// read, like the poll settings keys.
pub const KEYS: &[&str] = &["tls_config", "proxy_url"];

/// The largest certificate or key file read (a CA bundle of a few hundred certificates).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;

/// An upstream's connection keys as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// TLS towards the upstream (https URLs).
    pub tls_config: Option<RawTls>,
    /// An http or https forward proxy, e.g. `http://proxy.internal:3128`. Hosts listed in
    /// `NO_PROXY` (or `no_proxy`) are reached directly. Credentials in the URL are refused:
    /// secrets never go into the config file.
    pub proxy_url: Option<String>,
}

/// `tls_config` as written (Prometheus' `tls_config` keys).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the CA certificates that sign the upstream's certificate; replaces the
    /// host's trust store for this upstream. Relative to the config file's directory.
    pub ca_file: Option<String>,
    /// PEM file of the client certificate (chain) sent to the upstream; needs `key_file`.
    pub cert_file: Option<String>,
    /// PEM file of the client certificate's private key; needs `cert_file`.
    pub key_file: Option<String>,
    /// The name the upstream's certificate is verified against, instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any certificate. Only for tests: anyone on the path can read the requests.
    pub insecure_skip_verify: Option<bool>,
}

/// How the exporter connects to one upstream. `Default`: the shared client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientSettings {
    /// TLS settings; `None` uses the host's trust store and no client certificate.
    pub tls: Option<TlsSettings>,
    /// The forward proxy (no trailing slash); `None` connects directly.
    pub proxy_url: Option<String>,
}

/// A validated `tls_config`; the files' contents, so a changed file changes the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsSettings {
    /// CA certificates (PEM) that replace the host's trust store.
    pub ca: Option<PemFile>,
    /// The client certificate and its key.
    pub identity: Option<ClientIdentity>,
    /// The name the upstream's certificate is verified against.
    pub server_name: Option<String>,
    /// No verification of the upstream's certificate.
    pub insecure_skip_verify: bool,
}

/// A PEM file's path (for messages) and content.
#[derive(Clone, PartialEq)]
pub struct PemFile {
    /// As configured, resolved against the config file's directory.
    pub path: String,
    /// The PEM text.
    pub pem: String,
}

impl fmt::Debug for PemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemFile").field("path", &self.path).finish()
    }
}

/// A client certificate chain and its private key (never printed).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientIdentity {
    /// The certificate chain, PEM.
    pub cert: PemFile,
    /// The private key, PEM.
    pub key: Secret,
}

impl ClientSettings {
    /// True when the upstream needs a client of its own.
    pub fn is_custom(&self) -> bool {
        self.tls.is_some() || self.proxy_url.is_some()
    }

    /// `, tls_config, proxy http://proxy:3128` for `--check-config`; empty for none.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        if let Some(tls) = &self.tls {
            let mut parts = Vec::new();
            if tls.ca.is_some() {
                parts.push("ca_file".to_owned());
            }
            if tls.identity.is_some() {
                parts.push("client certificate".to_owned());
            }
            if let Some(name) = &tls.server_name {
                parts.push(format!("server_name {name}"));
            }
            if tls.insecure_skip_verify {
                parts.push("insecure_skip_verify".to_owned());
            }
            out.push_str(&format!(", tls ({})", parts.join(", ")));
        }
        if let Some(proxy) = &self.proxy_url {
            out.push_str(&format!(", proxy {proxy}"));
        }
        out
    }
}

/// Validates an upstream's connection keys at `path`.
pub fn validate(cx: &mut Cx<'_>, path: &str, raw: &RawClient) -> Option<ClientSettings> {
    let errors_before = cx.errors.len();
    let tls = raw
        .tls_config
        .as_ref()
        .and_then(|t| tls(cx, &join(path, "tls_config"), t));
    let proxy_url = raw
        .proxy_url
        .as_deref()
        .and_then(|u| proxy_url(cx, &join(path, "proxy_url"), u));
    if cx.errors.len() > errors_before {
        return None;
    }
    Some(ClientSettings { tls, proxy_url })
}

fn tls(cx: &mut Cx<'_>, path: &str, raw: &RawTls) -> Option<TlsSettings> {
    let p = |key: &str| join(path, key);
    let ca = raw.ca_file.as_deref().and_then(|file| {
        let pem = pem_file(cx, &p("ca_file"), file)?;
        certificates(cx, &p("ca_file"), &pem)?;
        Some(pem)
    });
    let identity = match (&raw.cert_file, &raw.key_file) {
        (None, None) => None,
        (Some(_), None) => {
            cx.error(p("key_file"), "required with cert_file");
            None
        }
        (None, Some(_)) => {
            cx.error(p("cert_file"), "required with key_file");
            None
        }
        (Some(cert_file), Some(key_file)) => {
            let cert = pem_file(cx, &p("cert_file"), cert_file).and_then(|pem| {
                certificates(cx, &p("cert_file"), &pem)?;
                Some(pem)
            });
            let key = pem_file(cx, &p("key_file"), key_file).and_then(|pem| {
                private_key(cx, &p("key_file"), &pem)?;
                Some(Secret::new(pem.pem))
            });
            cert.zip(key)
                .map(|(cert, key)| ClientIdentity { cert, key })
        }
    };
    let server_name = match raw.server_name.as_deref().map(str::trim) {
        None => None,
        Some(name) => {
            let plain = name.parse::<std::net::IpAddr>().is_ok()
                || name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
            if name.is_empty() || !plain || rustls::pki_types::ServerName::try_from(name).is_err() {
                cx.error(
                    p("server_name"),
                    format!("invalid server name `{name}`, expected a DNS name or an IP address"),
                );
            }
            Some(name.to_owned())
        }
    };
    Some(TlsSettings {
        ca,
        identity,
        server_name,
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
    })
}

/// A file's text, relative to the config file's directory, at most [`MAX_PEM_FILE_BYTES`].
fn pem_file(cx: &mut Cx<'_>, path: &str, file: &str) -> Option<PemFile> {
    let full = cx.base_dir.join(file.trim());
    match read_capped(&full, MAX_PEM_FILE_BYTES) {
        Ok(pem) => Some(PemFile {
            path: full.display().to_string(),
            pem,
        }),
        Err(e) => {
            cx.error(path, format!("cannot read {}: {e}", full.display()));
            None
        }
    }
}

/// At least one certificate, and every PEM section of the file readable.
fn certificates(cx: &mut Cx<'_>, path: &str, file: &PemFile) -> Option<()> {
    let mut found = 0;
    for item in rustls_pemfile::certs(&mut file.pem.as_bytes()) {
        match item {
            Ok(_) => found += 1,
            Err(e) => {
                cx.error(path, format!("{}: invalid PEM certificate: {e}", file.path));
                return None;
            }
        }
    }
    if found == 0 {
        cx.error(
            path,
            format!(
                "{}: no PEM certificate (BEGIN CERTIFICATE) found",
                file.path
            ),
        );
        return None;
    }
    Some(())
}

/// Exactly one private key (PKCS#8, PKCS#1 or SEC1). The key itself is never shown.
fn private_key(cx: &mut Cx<'_>, path: &str, file: &PemFile) -> Option<()> {
    let mut keys = 0;
    for item in rustls_pemfile::read_all(&mut file.pem.as_bytes()) {
        match item {
            Ok(
                rustls_pemfile::Item::Pkcs1Key(_)
                | rustls_pemfile::Item::Pkcs8Key(_)
                | rustls_pemfile::Item::Sec1Key(_),
            ) => keys += 1,
            Ok(_) => {}
            Err(_) => {
                cx.error(path, format!("{}: invalid PEM", file.path));
                return None;
            }
        }
    }
    match keys {
        1 => Some(()),
        0 => {
            cx.error(
                path,
                format!(
                    "{}: no PEM private key (BEGIN PRIVATE KEY) found",
                    file.path
                ),
            );
            None
        }
        n => {
            cx.error(
                path,
                format!("{}: {n} private keys, expected one", file.path),
            );
            None
        }
    }
}

/// An http(s) proxy URL without credentials, path, query or fragment.
fn proxy_url(cx: &mut Cx<'_>, path: &str, raw: &str) -> Option<String> {
    let raw = raw.trim();
    let shown = if raw.contains('@') { "(hidden)" } else { raw };
    let parsed = match reqwest::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            cx.error(
                path,
                format!(
                    "invalid proxy url `{shown}`: {e} (expected e.g. http://proxy.internal:3128)"
                ),
            );
            return None;
        }
    };
    let problem = if !matches!(parsed.scheme(), "http" | "https") {
        Some("the scheme must be http or https")
    } else if !parsed.has_host() {
        Some("a host is required")
    } else if !parsed.username().is_empty() || parsed.password().is_some() {
        Some("credentials must not be in the config file")
    } else if !matches!(parsed.path(), "" | "/")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        Some("a path, query or fragment is not allowed")
    } else {
        None
    };
    match problem {
        Some(problem) => {
            cx.error(path, format!("invalid proxy url `{shown}`: {problem}"));
            None
        }
        None => Some(parsed.as_str().trim_end_matches('/').to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn cx<'a>(base: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> Cx<'a> {
        Cx {
            errors: Vec::new(),
            base_dir: base,
            env,
            skip_secrets: false,
        }
    }

    fn messages(cx: &Cx<'_>) -> Vec<String> {
        cx.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn proxy_urls() {
        let env = |_: &str| None;
        let mut cx = cx(Path::new("."), &env);
        assert_eq!(
            proxy_url(&mut cx, "p", "http://proxy:3128/"),
            Some("http://proxy:3128".into())
        );
        assert_eq!(proxy_url(&mut cx, "p", "http://user:pw@proxy:3128"), None);
        assert_eq!(proxy_url(&mut cx, "p", "socks5://proxy:1080"), None);
        assert_eq!(proxy_url(&mut cx, "p", "http://proxy/x"), None);
        let shown = messages(&cx);
        assert_eq!(
            shown,
            [
                "p: invalid proxy url `(hidden)`: credentials must not be in the config file",
                "p: invalid proxy url `socks5://proxy:1080`: the scheme must be http or https",
                "p: invalid proxy url `http://proxy/x`: a path, query or fragment is not allowed",
            ]
        );
    }

    #[test]
    fn pem_files_are_checked_and_keys_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["zdm.internal".to_string()]).unwrap();
        let key_pem = cert.signing_key.serialize_pem();
        std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let env = |_: &str| None;
        let mut cx = cx(dir.path(), &env);
        let raw = RawTls {
            ca_file: Some("ca.pem".into()),
            cert_file: Some("ca.pem".into()),
            key_file: Some("key.pem".into()),
            server_name: Some("zdm.internal".into()),
            insecure_skip_verify: None,
        };
        let settings = tls(&mut cx, "t", &raw).unwrap();
        assert!(cx.errors.is_empty(), "{:?}", messages(&cx));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(!shown.contains("CERTIFICATE"), "{shown}");

        let raw = RawTls {
            ca_file: Some("key.pem".into()),
            cert_file: Some("ca.pem".into()),
            key_file: Some("empty.pem".into()),
            server_name: Some("a b".into()),
            ..RawTls::default()
        };
        tls(&mut cx, "t", &raw);
        let shown = messages(&cx);
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(shown[0].starts_with("t.ca_file: "), "{shown:?}");
        assert!(shown[0].ends_with("no PEM certificate (BEGIN CERTIFICATE) found"));
        assert!(shown[1].starts_with("t.key_file: "), "{shown:?}");
        assert!(shown[2].starts_with("t.server_name: invalid server name `a b`"));
        assert!(!shown.join("\n").contains(key_pem.trim()), "{shown:?}");
    }
}
