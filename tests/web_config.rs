//! `--web.config.file`: TLS and basic auth on every endpoint, as exporter-toolkit does it.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::tls::{certs, Ca};
use crate::common::*;

fn https_client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_basic_auth_protect_every_endpoint() {
    let sim = Sim::start();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    std::fs::write(dir.path().join("tls.crt"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).unwrap();
    let hash = bcrypt::hash("scrape-pass-8d1f", 4).unwrap();
    let web = format!(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: {hash}\n"
    );
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, web).unwrap();

    let config = write_config(
        dir.path(),
        &zdm_config(&sim, "", "    backup_jobs: [daily-backup]\n"),
    );
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web_path)
        .args([
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.format",
            "json",
        ])
        .env("SIM_TOKEN", TOKEN);
    let exp = Exporter::launch(cmd, dir);
    let https = https_client(&cert_pem);
    let url = |path: &str| {
        format!(
            "https://{}{path}",
            exp.addr.replace("127.0.0.1", "localhost")
        )
    };

    for path in ["/metrics", "/", "/-/healthy", "/-/ready"] {
        let resp = https.get(url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} without credentials");
        assert!(resp.headers().contains_key("www-authenticate"));
        let resp = https
            .get(url(path))
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path} with a wrong password");
    }
    let m = wait_for(
        "authorized scrape with data",
        std::time::Duration::from_secs(20),
        || async {
            let resp = https
                .get(url("/metrics"))
                .basic_auth("prometheus", Some("scrape-pass-8d1f"))
                .send()
                .await
                .ok()?;
            let text = resp.text().await.ok()?;
            text.contains("backup_job_status{").then_some(text)
        },
    )
    .await;
    assert!(m.contains("backup_target_up{"));
    // Plain HTTP on the TLS port gets a 400 saying so (as Go's net/http), not a reset.
    let plain = client()
        .get(format!("http://{}/metrics", exp.addr))
        .basic_auth("prometheus", Some("scrape-pass-8d1f"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 400);
    assert_eq!(
        plain.text().await.unwrap(),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    let resp = https
        .get(url("/-/healthy"))
        .basic_auth("prometheus", Some("scrape-pass-8d1f"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "HTTPS still served after it");
    assert!(!exp.proc.stderr_text().contains("scrape-pass-8d1f"));
}

/// A config whose one upstream refuses connections: the exporter starts and serves at once.
const UNREACHABLE: &str = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";

/// The exporter with basic auth for `user` (bcrypt cost 10, as `htpasswd -B` makes them).
fn with_basic_auth(user: &str, password: &str) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(password, 10).unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, format!("basic_auth_users:\n  {user}: {hash}\n")).unwrap();
    let web = web_path.to_str().unwrap().to_string();
    Exporter::start_in(dir, UNREACHABLE, &["--web.config.file", &web], &[])
}

/// Status of one GET with Basic credentials.
async fn get_as(
    client: &reqwest::Client,
    exp: &Exporter,
    path: &str,
    user: &str,
    password: &str,
) -> u16 {
    let resp = client
        .get(exp.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    status
}

/// An unknown user and a wrong password get the same answer; that they cost the same (one
/// bcrypt check at the configured cost each) is counted in src/web/basic_auth.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_is_refused_as_a_wrong_password_is() {
    let exp = with_basic_auth("prometheus", "right-pass-51c2");
    let client = client();
    for _ in 0..3 {
        let unknown = client
            .get(exp.url("/-/healthy"))
            .basic_auth("nobody", Some("right-pass-51c2"))
            .send()
            .await
            .unwrap();
        let wrong = client
            .get(exp.url("/-/healthy"))
            .basic_auth("prometheus", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status().as_u16(), 401);
        assert_eq!(wrong.status().as_u16(), 401);
        assert_eq!(
            unknown.headers().get("www-authenticate"),
            wrong.headers().get("www-authenticate")
        );
        assert_eq!(unknown.text().await.unwrap(), wrong.text().await.unwrap());
    }
    let status = get_as(&client, &exp, "/-/healthy", "prometheus", "right-pass-51c2").await;
    assert_eq!(status, 200);
}

/// Scrapes are answered while eight clients guess passwords as fast as they can: the first
/// one after bcrypt (queued behind the guesses for a slot), later ones remembered (that a
/// remembered pair needs no bcrypt slot is a test in src/web/basic_auth.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_floods_leave_scrapes_answered() {
    let exp = Arc::new(with_basic_auth("prometheus", "right-pass-51c2"));
    let scraper = client();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for i in 0..8 {
        let (exp, stop, attempts) = (exp.clone(), stop.clone(), attempts.clone());
        flood.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .get(exp.url("/metrics"))
                    .basic_auth("prometheus", Some(format!("guess-{i}")))
                    .send()
                    .await;
                if let Ok(resp) = resp {
                    assert_eq!(resp.status().as_u16(), 401);
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    wait_for("the flood under way", Duration::from_secs(10), || async {
        (attempts.load(Ordering::Relaxed) >= 16).then_some(())
    })
    .await;
    let before = attempts.load(Ordering::Relaxed);
    for _ in 0..6 {
        let status = get_as(&scraper, &exp, "/metrics", "prometheus", "right-pass-51c2").await;
        assert_eq!(status, 200);
    }
    let during = attempts.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    assert!(
        during > before,
        "guesses were answered while the scrapes were ({before} before, {during} after)"
    );
}

#[test]
fn malformed_bcrypt_hashes_stop_start_up_naming_the_user() {
    let good = bcrypt::hash("x", 4).unwrap();
    let cases = [
        ("short-prefix", "$2".to_string()),
        ("cost-99", format!("$2b$99${}", &good[7..])),
        ("truncated", good[..40].to_string()),
        ("not-bcrypt", "$apr1$abc$defghijklmnop".to_string()),
        ("plain", "hunter2".to_string()),
    ];
    for (user, hash) in cases {
        let dir = tempfile::tempdir().unwrap();
        let web_path = dir.path().join("web.yml");
        std::fs::write(
            &web_path,
            format!("basic_auth_users:\n  ok-user: {good}\n  {user}: '{hash}'\n"),
        )
        .unwrap();
        let config = write_config(dir.path(), UNREACHABLE);
        let out = Command::new(exporter_bin())
            .arg("--config")
            .arg(&config)
            .arg("--web.config.file")
            .arg(&web_path)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env("SIM_TOKEN", "x")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{user}: {err}");
        assert!(
            err.contains(&format!("basic_auth_users.{user}: not a bcrypt hash")),
            "{user}: {err}"
        );
        assert!(!err.contains("ok-user"), "only the bad one is named: {err}");
    }
}

#[test]
fn a_bad_web_config_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let config = write_config(
        dir.path(),
        "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n",
    );
    let out = Command::new(exporter_bin())
        .arg("--config")
        .arg(&config)
        .arg("--web.config.file")
        .arg(&web_path)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("SIM_TOKEN", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("basic_auth_users.prometheus: not a bcrypt hash"),
        "{err}"
    );
}

// ---- The whole exporter-toolkit schema, each setting against a real TLS client ----

use rustls::pki_types::ServerName;

/// The exporter with `web` as its web config, `server.crt`/`server.key` signed by `ca` for
/// localhost beside it, plus any `files`.
fn tls_exporter(ca: &Ca, web: &str, files: &[(&str, &str)]) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.path().join("server.crt"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let web_path = dir.path().join("web.yml");
    std::fs::write(&web_path, web).unwrap();
    let web = web_path.to_str().unwrap().to_string();
    Exporter::start_in(dir, UNREACHABLE, &["--web.config.file", &web], &[])
}

/// What a client chooses to offer.
#[derive(Default)]
struct Offer {
    suites: Option<Vec<rustls::SupportedCipherSuite>>,
    groups: Option<Vec<&'static dyn rustls::crypto::SupportedKxGroup>>,
    tls12_only: bool,
    client_cert: Option<(String, String)>,
    alpn: Vec<Vec<u8>>,
}

/// What came of a handshake and one `GET /-/healthy` on it.
#[derive(Debug)]
struct Session {
    status_line: String,
    suite: Option<rustls::CipherSuite>,
    group: Option<rustls::NamedGroup>,
    server_cert: Option<Vec<u8>>,
}

async fn tls_get(addr: &str, roots_pem: &[&str], offer: Offer) -> Result<Session, String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = offer.suites {
        provider.cipher_suites = suites;
    }
    if let Some(groups) = offer.groups {
        provider.kx_groups = groups;
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if offer.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for cert in certs(pem) {
            roots.add(cert).unwrap();
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match offer.client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                certs(&cert),
                rustls_pemfile::private_key(&mut key.as_bytes())
                    .unwrap()
                    .unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = offer.alpn;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let run = async {
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (_, conn) = tls.get_ref();
        let suite = conn.negotiated_cipher_suite().map(|s| s.suite());
        let group = conn.negotiated_key_exchange_group().map(|g| g.name());
        let server_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        tls.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        tls.read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer);
        let status_line = text.lines().next().unwrap_or("").to_string();
        if status_line.is_empty() {
            return Err("no answer".to_string());
        }
        Ok(Session {
            status_line,
            suite,
            group,
            server_cert,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| "timed out".to_string())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipher_suites_and_curves_are_those_configured() {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    let ca = Ca::new("ca-suites");
    let exp = tls_exporter(
        &ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP384]\n  prefer_server_cipher_suites: true\n",
        &[],
    );
    let refused = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            suites: Some(vec![cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]),
            tls12_only: true,
            ..Offer::default()
        },
    )
    .await;
    assert!(
        refused.is_err(),
        "an unconfigured TLS 1.2 suite: {refused:?}"
    );
    let ok = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            suites: Some(vec![
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ]),
            tls12_only: true,
            ..Offer::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(ok.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        ok.suite,
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
    assert_eq!(ok.group, Some(rustls::NamedGroup::secp384r1));
    // Curves: a client offering only X25519 finds no common group.
    let refused = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            groups: Some(vec![kx_group::X25519]),
            ..Offer::default()
        },
    )
    .await;
    assert!(refused.is_err(), "X25519 is not configured: {refused:?}");
    // TLS 1.3 suites are not configurable (as in Go): every one stays on.
    let tls13 = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            suites: Some(vec![cs::TLS13_CHACHA20_POLY1305_SHA256]),
            groups: Some(vec![kx_group::SECP384R1]),
            ..Offer::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        tls13.suite,
        Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_need_an_allowed_san() {
    let ca = Ca::new("ca-clients");
    let clients = Ca::new("ca-client-issuer");
    let exp = tls_exporter(
        &ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n  client_allowed_sans: [prometheus.example, spiffe://cluster/ns/monitoring/sa/prometheus, 10.0.0.7]\n",
        &[("clients.crt", &clients.pem)],
    );
    for sans in [
        vec!["prometheus.example"],
        vec![
            "other.example",
            "spiffe://cluster/ns/monitoring/sa/prometheus",
        ],
        vec!["10.0.0.7"],
    ] {
        let session = tls_get(
            &exp.addr,
            &[&ca.pem],
            Offer {
                client_cert: Some(clients.sign(&sans)),
                ..Offer::default()
            },
        )
        .await;
        assert_eq!(
            session.map(|s| s.status_line),
            Ok("HTTP/1.1 200 OK".to_string()),
            "{sans:?}"
        );
    }
    let strangers = Ca::new("ca-strangers");
    for (what, cert) in [
        (
            "a SAN not in the list",
            Some(clients.sign(&["grafana.example"])),
        ),
        ("no certificate", None),
        (
            "an allowed SAN from another CA",
            Some(strangers.sign(&["prometheus.example"])),
        ),
    ] {
        let session = tls_get(
            &exp.addr,
            &[&ca.pem],
            Offer {
                client_cert: cert,
                ..Offer::default()
            },
        )
        .await;
        assert!(session.is_err(), "{what}: {session:?}");
    }
}

/// `GET path` over TLS (trusting `ca_pem`, as `localhost`), offering `alpn`, with hyper's
/// client speaking what the handshake chose: HTTP/2 for `h2`, else HTTP/1.1. The response
/// with its whole body.
async fn h2_get(
    addr: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
    path: &str,
) -> hyper::Response<bytes::Bytes> {
    use http_body_util::BodyExt as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem) {
        roots.add(cert).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = hyper_util::rt::TokioIo::new(tls);
    let request = hyper::Request::get(format!("https://localhost{path}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the whole body within 10 s")
        .unwrap()
        .to_bytes();
    hyper::Response::from_parts(parts, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_headers_and_rate_limit_as_configured() {
    let ca = Ca::new("ca-http");
    let exp = tls_exporter(
        &ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n    Content-Security-Policy: default-src 'self'\n",
        &[],
    );
    let h2 = h2_get(&exp.addr, &ca.pem, &[b"h2", b"http/1.1"], "/metrics").await;
    assert_eq!(
        h2.version(),
        hyper::Version::HTTP_2,
        "HTTP/2 negotiated by ALPN"
    );
    assert_eq!(h2.status(), 200);
    for (name, value) in [
        ("x-frame-options", "deny"),
        ("strict-transport-security", "max-age=31536000"),
        ("content-security-policy", "default-src 'self'"),
    ] {
        assert_eq!(
            h2.headers().get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{name} in {:?}",
            h2.headers()
        );
    }
    let content_type = h2.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(h2.body());
    assert!(body.contains("backup_exporter_build_info"), "{body}");
    let h1 = h2_get(&exp.addr, &ca.pem, &[b"http/1.1"], "/metrics").await;
    assert_eq!(h1.version(), hyper::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    assert_eq!(h1.headers()["x-frame-options"], "deny");

    // http2: false -> HTTP/1.1 only; rate_limit: the third request within the minute is 429.
    let exp = tls_exporter(
        &ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  http2: false\nrate_limit:\n  interval: 1m\n  burst: 2\n",
        &[],
    );
    let session = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            ..Offer::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(session.status_line, "HTTP/1.1 200 OK");
    let session = tls_get(&exp.addr, &[&ca.pem], Offer::default())
        .await
        .unwrap();
    assert_eq!(session.status_line, "HTTP/1.1 200 OK");
    let session = tls_get(&exp.addr, &[&ca.pem], Offer::default())
        .await
        .unwrap();
    assert_eq!(session.status_line, "HTTP/1.1 429 Too Many Requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_presented_without_a_restart() {
    let old_ca = Ca::new("ca-old");
    let new_ca = Ca::new("ca-new");
    let exp = tls_exporter(
        &old_ca,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        &[],
    );
    let roots = [old_ca.pem.as_str(), new_ca.pem.as_str()];
    let first = tls_get(&exp.addr, &roots, Offer::default()).await.unwrap();
    let (cert, key) = new_ca.sign(&["localhost"]);
    let new_der = certs(&cert)[0].to_vec();
    assert_ne!(first.server_cert.as_deref(), Some(&new_der[..]));
    std::fs::write(exp.dir.path().join("server.key"), key).unwrap();
    std::fs::write(exp.dir.path().join("server.crt"), cert).unwrap();
    wait_for("the new certificate", Duration::from_secs(10), || async {
        let s = tls_get(&exp.addr, &roots, Offer::default()).await.ok()?;
        (s.server_cert.as_deref() == Some(&new_der[..])).then_some(())
    })
    .await;
    assert!(exp.proc.stderr_text().contains("web config reloaded"));

    // A broken certificate keeps the running one, with an error logged.
    std::fs::write(exp.dir.path().join("server.crt"), "not a certificate").unwrap();
    wait_for(
        "the error about the broken file",
        Duration::from_secs(10),
        || async {
            // Files are checked on connections: each try is one.
            let _ = tls_get(&exp.addr, &roots, Offer::default()).await;
            exp.proc
                .stderr_text()
                .contains("web config changed but does not load")
                .then_some(())
        },
    )
    .await;
    let s = tls_get(&exp.addr, &roots, Offer::default()).await.unwrap();
    assert_eq!(s.server_cert.as_deref(), Some(&new_der[..]));
    assert_eq!(s.status_line, "HTTP/1.1 200 OK");
}

/// node_exporter's example web config (exporter-toolkit's docs/web-config.yml), copied as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_exporter_web_config_is_accepted_as_is() {
    let web = r#"# TLS and basic authentication configuration example.
#
# Additionally, a certificate and a key file are needed.
tls_server_config:
  cert_file: server.crt
  key_file: server.key

# Usernames and passwords required to connect.
# Passwords are hashed with bcrypt: https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md#about-bcrypt.
basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m

# Rate limiting requests on the endpoint using a token bucket
rate_limit:
  interval: "1s" # time interval between two requests, set to 0 to disable rate limiter
  burst: 20 # and permits a burst of up to 20 requests.
"#;
    let ca = Ca::new("ca-node");
    let exp = tls_exporter(&ca, web, &[]);
    let session = tls_get(&exp.addr, &[&ca.pem], Offer::default())
        .await
        .unwrap();
    assert_eq!(session.status_line, "HTTP/1.1 401 Unauthorized");
    let listening = exp.proc.stderr_text();
    assert!(listening.contains("\"tls\":true"), "{listening}");
}

/// Values rustls or exporter-toolkit cannot honour stop start-up naming them.
#[test]
fn settings_that_cannot_be_honoured_are_named() {
    let ca = Ca::new("ca-errors");
    let (cert, key) = ca.sign(&["localhost"]);
    let tls = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    for (extra, needle) in [
        (
            "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
            "TLS_RSA_WITH_AES_128_CBC_SHA is not supported",
        ),
        ("  cipher_suites: [TLS_NOPE]\n", "unknown cipher: TLS_NOPE"),
        (
            "  curve_preferences: [CurveP521]\n",
            "CurveP521 is not supported",
        ),
        (
            "  curve_preferences: [Curve25519x]\n",
            "unknown curve: Curve25519x",
        ),
        (
            "  min_version: TLS10\n",
            "min_version: TLS10 is not supported",
        ),
        (
            "  client_auth_type: Sometimes\n",
            "invalid ClientAuth: Sometimes",
        ),
        (
            "  client_ca_file: server.crt\n",
            "without a Client Auth Policy",
        ),
        (
            "  client_allowed_sans: [a]\n",
            "client_allowed_sans: needs a client_auth_type",
        ),
        ("  cert: inline\n", "set cert or cert_file, not both"),
        (
            "http_server_config:\n  headers:\n    Authorization: x\n",
            "can not be configured (allowed: Strict-Transport-Security",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "is not one of [\\\"deny\\\", \\\"sameorigin\\\"]",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 0\n",
            "rate_limit.burst",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.crt"), &cert).unwrap();
        std::fs::write(dir.path().join("server.key"), &key).unwrap();
        let web_path = dir.path().join("web.yml");
        std::fs::write(&web_path, format!("{tls}{extra}")).unwrap();
        let config = write_config(dir.path(), UNREACHABLE);
        let out = Command::new(exporter_bin())
            .arg("--config")
            .arg(&config)
            .arg("--web.config.file")
            .arg(&web_path)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .env("SIM_TOKEN", "x")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra}: {err}");
        assert!(err.contains(needle), "{extra}: {err}");
    }
}

/// `cert`, `key` and `client_ca` inline, as exporter-toolkit allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_certificate_key_and_client_ca_are_accepted() {
    let ca = Ca::new("ca-inline");
    let clients = Ca::new("ca-inline-clients");
    let (cert, key) = ca.sign(&["localhost"]);
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let web = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireAndVerifyClientCert\n",
        indent(&cert),
        indent(&key),
        indent(&clients.pem)
    );
    let exp = tls_exporter(&ca, &web, &[]);
    let session = tls_get(
        &exp.addr,
        &[&ca.pem],
        Offer {
            client_cert: Some(clients.sign(&["anyone"])),
            ..Offer::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(session.status_line, "HTTP/1.1 200 OK");
    assert!(tls_get(&exp.addr, &[&ca.pem], Offer::default())
        .await
        .is_err());
}
