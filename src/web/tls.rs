//! `tls_server_config` -> a rustls acceptor, with exporter-toolkit's names and defaults
//! (`tls_config.go`): TLS versions, cipher suites and curves by their Go names, PEM inline or
//! from files, client certificates as `client_auth_type` asks, and `client_allowed_sans`.

use std::path::PathBuf;
use std::sync::Arc;

/// `tls_server_config` with empty strings dropped, Go's defaults filled in and relative paths
/// joined to the web config file's folder (as exporter-toolkit's `SetDirectory`).
pub(super) struct ResolvedTls {
    /// The server certificate chain, PEM inline.
    pub(super) cert: Option<String>,
    /// The server's private key, PEM inline.
    pub(super) key: Option<String>,
    /// The client CAs, PEM inline.
    pub(super) client_ca: Option<String>,
    /// The server certificate chain, a PEM file.
    pub(super) cert_file: Option<PathBuf>,
    /// The server's private key, a PEM file.
    pub(super) key_file: Option<PathBuf>,
    /// The client CAs, a PEM file.
    pub(super) client_ca_file: Option<PathBuf>,
    /// Go's `tls.ClientAuthType` name.
    pub(super) client_auth_type: String,
    /// Go's names of the TLS 1.2 suites, in order; empty: rustls' defaults.
    pub(super) cipher_suites: Vec<String>,
    /// Go's names of the key exchange groups, in order; empty: rustls' defaults.
    pub(super) curve_preferences: Vec<String>,
    /// `TLS12` or `TLS13`.
    pub(super) min_version: String,
    /// `TLS12` or `TLS13`.
    pub(super) max_version: String,
    /// Whether the server's order of suites wins.
    pub(super) prefer_server_cipher_suites: bool,
    /// A client certificate must carry one of these SANs.
    pub(super) client_allowed_sans: Option<Vec<String>>,
}

/// Go's `tls.VersionTLS1x` names, in order; rustls speaks 1.2 and 1.3 only.
fn tls_version(key: &str, name: &str) -> Result<u8, String> {
    match name {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {name} is not supported (rustls speaks TLS12 and TLS13 only)"
        )),
        other => Err(format!(
            "tls_server_config.{key}: unknown TLS version: {other} (TLS12 or TLS13)"
        )),
    }
}

/// Go's names of the TLS 1.0-1.2 suites (`tls.CipherSuites()`) that rustls implements.
fn cipher_suite(name: &str) -> Result<Option<rustls::SupportedCipherSuite>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        // TLS 1.3 suites are not configurable in Go either: accepted, and all three stay on.
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Ok(None)
        }
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => {
            return Err(format!(
                "tls_server_config.cipher_suites: {name} is not supported (rustls has no RSA key exchange and no CBC suites; use the ECDHE GCM or CHACHA20 suites)"
            ))
        }
        other => return Err(format!("tls_server_config.cipher_suites: unknown cipher: {other}")),
    }))
}

/// Go's curve names; rustls' ring provider has no P-521.
fn curve(name: &str) -> Result<&'static dyn rustls::crypto::SupportedKxGroup, String> {
    use rustls::crypto::ring::kx_group;
    match name {
        "X25519" => Ok(kx_group::X25519),
        "CurveP256" => Ok(kx_group::SECP256R1),
        "CurveP384" => Ok(kx_group::SECP384R1),
        "CurveP521" => Err(
            "tls_server_config.curve_preferences: CurveP521 is not supported (rustls' ring provider has X25519, CurveP256 and CurveP384)"
                .into(),
        ),
        other => Err(format!(
            "tls_server_config.curve_preferences: unknown curve: {other}"
        )),
    }
}

/// PEM text from `<key>` inline or `<key>_file`, exactly one of them.
fn pem_source(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    key: &str,
    required: bool,
) -> Result<Option<Vec<u8>>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: set {key} or {key}_file, not both"
        )),
        (Some(text), None) => Ok(Some(text.clone().into_bytes())),
        (None, Some(path)) => std::fs::read(path).map(Some).map_err(|e| {
            format!(
                "tls_server_config.{key}_file: cannot read {}: {e}",
                path.display()
            )
        }),
        (None, None) if required => Err(format!(
            "tls_server_config: missing one of {key} or {key}_file"
        )),
        (None, None) => Ok(None),
    }
}

/// The acceptor for `raw`, offering HTTP/2 by ALPN when `http2`; the error names the key.
pub(super) fn build_tls(
    raw: &ResolvedTls,
    http2: bool,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let cert_pem = pem_source(&raw.cert, &raw.cert_file, "cert", true)?.unwrap_or_default();
    let key_pem = pem_source(&raw.key, &raw.key_file, "key", true)?.unwrap_or_default();
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls_server_config.cert_file: {e}"))?;
    if certs.is_empty() {
        return Err("tls_server_config.cert_file: no certificate found".into());
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("tls_server_config.key_file: {e}"))?
        .ok_or("tls_server_config.key_file: no private key found")?;

    let min = tls_version("min_version", &raw.min_version)?;
    let max = tls_version("max_version", &raw.max_version)?;
    if min > max {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| (min..=max).contains(rank))
            .map(|(_, v)| v)
            .collect();

    let mut provider = rustls::crypto::ring::default_provider();
    if !raw.cipher_suites.is_empty() {
        let mut suites = Vec::new();
        for name in &raw.cipher_suites {
            if let Some(suite) = cipher_suite(name)? {
                if !suites.contains(&suite) {
                    suites.push(suite);
                }
            }
        }
        suites.extend(
            provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied(),
        );
        provider.cipher_suites = suites;
    }
    if !raw.curve_preferences.is_empty() {
        let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> = Vec::new();
        for name in &raw.curve_preferences {
            let group = curve(name)?;
            if !groups.iter().any(|g| g.name() == group.name()) {
                groups.push(group);
            }
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    let client_ca = pem_source(&raw.client_ca, &raw.client_ca_file, "client_ca", false)?;
    let sans = raw.client_allowed_sans.clone();
    let (ask, mandatory, verify) = match raw.client_auth_type.as_str() {
        "NoClientCert" => (false, false, false),
        "RequestClientCert" => (true, false, false),
        "RequireAnyClientCert" | "RequireClientCert" => (true, true, false),
        "VerifyClientCertIfGiven" => (true, false, true),
        "RequireAndVerifyClientCert" => (true, true, true),
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: invalid ClientAuth: {other} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    if !ask && client_ca.is_some() {
        return Err(
            "tls_server_config: client CA's have been configured without a Client Auth Policy (client_auth_type)"
                .into(),
        );
    }
    if !ask && sans.is_some() {
        return Err(
            "tls_server_config.client_allowed_sans: needs a client_auth_type that asks for client certificates"
                .into(),
        );
    }
    let builder = if !ask {
        builder.with_no_client_auth()
    } else {
        let inner = if verify {
            let ca_pem = client_ca.ok_or(
                "tls_server_config.client_ca_file: required by client_auth_type (there is no system pool to fall back on)",
            )?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("tls_server_config.client_ca_file: no certificate found".into());
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            Some(verifier)
        } else {
            None
        };
        builder.with_client_cert_verifier(Arc::new(ClientCerts {
            inner,
            // exporter-toolkit drops a connection without a certificate once SANs are
            // configured (its check indexes the first certificate): so does this.
            mandatory: mandatory || sans.is_some(),
            allowed_sans: sans,
            provider: provider.clone(),
        }))
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not match: {e}"))?;
    config.ignore_client_order = raw.prefer_server_cipher_suites;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Client certificates as `client_auth_type` and `client_allowed_sans` ask: verified against
/// the client CAs (or any accepted for `RequestClientCert`/`RequireAnyClientCert`), then
/// required to carry one of the allowed SANs.
#[derive(Debug)]
struct ClientCerts {
    inner: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    mandatory: bool,
    allowed_sans: Option<Vec<String>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for ClientCerts {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner
            .as_ref()
            .map(|v| v.root_hint_subjects())
            .unwrap_or(&[])
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if let Some(inner) = &self.inner {
            inner.verify_client_cert(end_entity, intermediates, now)?;
        }
        if let Some(allowed) = &self.allowed_sans {
            let sans = certificate_sans(end_entity).ok_or(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ))?;
            if !sans.iter().any(|san| allowed.contains(san)) {
                tracing::debug!(?sans, "client certificate has none of client_allowed_sans");
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SAN values of a certificate as Go lists them for exporter-toolkit's check: DNS names,
/// e-mail addresses, IP addresses (Go's text form) and URIs. `None`: not a certificate.
fn certificate_sans(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    out.push((*s).to_string())
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings with Go's defaults and a fresh self-signed certificate for localhost, inline.
    fn settings() -> ResolvedTls {
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .unwrap();
        ResolvedTls {
            cert: Some(cert.cert.pem()),
            key: Some(cert.signing_key.serialize_pem()),
            client_ca: None,
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_auth_type: "NoClientCert".into(),
            cipher_suites: Vec::new(),
            curve_preferences: Vec::new(),
            min_version: "TLS12".into(),
            max_version: "TLS13".into(),
            prefer_server_cipher_suites: true,
            client_allowed_sans: None,
        }
    }

    #[test]
    fn versions_by_their_go_names() {
        assert_eq!(tls_version("min_version", "TLS12"), Ok(2));
        assert_eq!(tls_version("max_version", "TLS13"), Ok(3));
        let e = tls_version("min_version", "TLS10").unwrap_err();
        assert!(e.contains("min_version: TLS10 is not supported"), "{e}");
        let e = tls_version("max_version", "1.3").unwrap_err();
        assert!(e.contains("max_version: unknown TLS version: 1.3"), "{e}");
    }

    #[test]
    fn suites_and_curves_by_their_go_names() {
        assert!(cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            .unwrap()
            .is_some());
        assert!(cipher_suite("TLS_AES_128_GCM_SHA256").unwrap().is_none());
        let e = cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA").unwrap_err();
        assert!(e.contains("is not supported"), "{e}");
        let e = cipher_suite("TLS_NULL").unwrap_err();
        assert!(e.contains("unknown cipher: TLS_NULL"), "{e}");
        assert!(curve("X25519").is_ok());
        let e = curve("CurveP521").err().unwrap();
        assert!(e.contains("CurveP521 is not supported"), "{e}");
        let e = curve("P256").err().unwrap();
        assert!(e.contains("unknown curve: P256"), "{e}");
    }

    #[test]
    fn pem_comes_from_one_source_exactly() {
        let text = Some("PEM".to_string());
        let file = Some(PathBuf::from("/nonexistent/x.pem"));
        let e = pem_source(&text, &file, "cert", true).unwrap_err();
        assert_eq!(e, "tls_server_config: set cert or cert_file, not both");
        assert_eq!(
            pem_source(&text, &None, "cert", true),
            Ok(Some(b"PEM".to_vec()))
        );
        let e = pem_source(&None, &None, "key", true).unwrap_err();
        assert_eq!(e, "tls_server_config: missing one of key or key_file");
        assert_eq!(pem_source(&None, &None, "client_ca", false), Ok(None));
        let e = pem_source(&None, &file, "client_ca", false).unwrap_err();
        assert!(
            e.starts_with("tls_server_config.client_ca_file: cannot read /nonexistent/x.pem"),
            "{e}"
        );
    }

    #[test]
    fn the_acceptor_offers_what_was_configured() {
        let acceptor = build_tls(&settings(), true).unwrap();
        let config = acceptor.config();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(config.ignore_client_order);

        let mut raw = settings();
        raw.cipher_suites = vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()];
        raw.curve_preferences = vec!["CurveP384".into(), "X25519".into(), "CurveP384".into()];
        raw.prefer_server_cipher_suites = false;
        let acceptor = build_tls(&raw, false).unwrap();
        let config = acceptor.config();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(!config.ignore_client_order);
        let provider = config.crypto_provider();
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(
            suites.first(),
            Some(&rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        );
        assert!(
            provider
                .cipher_suites
                .iter()
                .skip(1)
                .all(|s| s.version() == &rustls::version::TLS13),
            "only the TLS 1.3 suites follow: {suites:?}"
        );
        let groups: Vec<_> = provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(
            groups,
            [rustls::NamedGroup::secp384r1, rustls::NamedGroup::X25519]
        );
    }

    #[test]
    fn settings_that_contradict_each_other_are_refused() {
        let mut raw = settings();
        raw.min_version = "TLS13".into();
        raw.max_version = "TLS12".into();
        let e = build_tls(&raw, true).err().unwrap();
        assert_eq!(e, "tls_server_config: min_version is above max_version");

        let mut raw = settings();
        raw.client_ca = raw.cert.clone();
        let e = build_tls(&raw, true).err().unwrap();
        assert!(e.contains("without a Client Auth Policy"), "{e}");

        let mut raw = settings();
        raw.client_allowed_sans = Some(vec!["client".into()]);
        let e = build_tls(&raw, true).err().unwrap();
        assert!(
            e.starts_with("tls_server_config.client_allowed_sans: needs"),
            "{e}"
        );

        let mut raw = settings();
        raw.client_auth_type = "RequireAndVerifyClientCert".into();
        let e = build_tls(&raw, true).err().unwrap();
        assert!(
            e.starts_with("tls_server_config.client_ca_file: required"),
            "{e}"
        );

        let mut raw = settings();
        raw.client_auth_type = "Always".into();
        let e = build_tls(&raw, true).err().unwrap();
        assert!(e.contains("invalid ClientAuth: Always"), "{e}");

        let mut raw = settings();
        raw.key = Some(settings().key.unwrap());
        let e = build_tls(&raw, true).err().unwrap();
        assert!(e.contains("certificate and key do not match"), "{e}");
    }

    #[test]
    fn sans_are_listed_as_go_writes_them() {
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "::1".to_string(),
            "10.0.0.1".to_string(),
        ])
        .unwrap();
        assert_eq!(
            certificate_sans(cert.cert.der()),
            Some(vec![
                "localhost".to_string(),
                "::1".to_string(),
                "10.0.0.1".to_string()
            ])
        );
        assert_eq!(certificate_sans(b"not a certificate"), None);
    }
}
