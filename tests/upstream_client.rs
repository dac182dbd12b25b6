//! Per-upstream client settings against the real binary on loopback: `tls_config` (a CA
//! made here, `server_name`, a client certificate, `insecure_skip_verify`) with the
//! simulator behind a TLS front run by the test, and `proxy_url` through a counting
//! forward proxy, bypassed by `NO_PROXY`.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::tls::{certs, Ca};
use crate::common::*;
use rustls::pki_types::PrivateKeyDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn key(pem: &str) -> PrivateKeyDer<'static> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap()
}

/// Terminates TLS with `cert`/`key` (requiring a client certificate signed by `client_ca`
/// when given) and relays the plain bytes to the simulator at `sim`.
async fn tls_front(sim: &str, cert: &str, key_pem: &str, client_ca: Option<&str>) -> SocketAddr {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca) {
                roots.add(c).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs(cert), key(key_pem)).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = sim.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let sim = sim.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(&sim).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    addr
}

/// A plain-HTTP forward proxy: reads the absolute-form request line of each connection,
/// counts it, connects to its host and relays both ways.
async fn counting_proxy() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relayed = Arc::new(AtomicU64::new(0));
    let count = relayed.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n") && head.len() < 8192 {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let line = String::from_utf8_lossy(&head).to_string();
                let Some(target) = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|u| u.strip_prefix("http://"))
                    .and_then(|rest| rest.split('/').next())
                else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(target).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if upstream.write_all(&head).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (addr, relayed)
}

fn zdm_upstream(name: &str, url: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: zdm\n    url: {url}\n    token_env: SIM_TOKEN\n    servers: [server-01]\n{extra}"
    )
}

const DEFAULTS: &str = "defaults: { interval: 300ms, timeout: 2s }\nupstreams:\n";

fn up(upstream: &str) -> String {
    format!("backup_target_up{{system=\"zdm\",upstream=\"{upstream}\",kind=\"server\",target=\"server-01\"}}")
}

fn failures(upstream: &str, outcome: &str) -> String {
    format!("backup_upstream_requests_total{{outcome=\"{outcome}\",system=\"zdm\",upstream=\"{upstream}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_and_server_name_verify_the_upstream() {
    let sim = Sim::start();
    let ca = Ca::new("test CA");
    let (ip_cert, ip_key) = ca.sign(&["127.0.0.1"]);
    let (named_cert, named_key) = ca.sign(&["zdm.internal"]);
    let by_ip = tls_front(&sim.addr, &ip_cert, &ip_key, None).await;
    let by_name = tls_front(&sim.addr, &named_cert, &named_key, None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
    let with_ca = "    tls_config: { ca_file: ca.pem }\n";
    let yaml = [
        DEFAULTS.to_string(),
        zdm_upstream("no-ca", &format!("https://{by_ip}"), ""),
        zdm_upstream("with-ca", &format!("https://{by_ip}"), with_ca),
        zdm_upstream("wrong-name", &format!("https://{by_name}"), with_ca),
        zdm_upstream(
            "server-name",
            &format!("https://{by_name}"),
            "    tls_config: { ca_file: ca.pem, server_name: zdm.internal }\n",
        ),
    ]
    .concat();
    let exporter = Exporter::start_in(dir, &yaml, &[], &[]);
    let m = exporter
        .wait_metrics("every upstream polled", |m| {
            ["no-ca", "with-ca", "wrong-name", "server-name"]
                .iter()
                .all(|u| value(m, &up(u)).is_some())
                && value(m, &failures("no-ca", "connect_error")).unwrap_or(0.0) > 0.0
                && value(m, &failures("wrong-name", "connect_error")).unwrap_or(0.0) > 0.0
                && value(m, &up("with-ca")) == Some(1.0)
                && value(m, &up("server-name")) == Some(1.0)
        })
        .await;
    // Without the CA the host's trust store does not know the test CA; with it but
    // without `server_name`, a certificate for zdm.internal does not fit 127.0.0.1.
    assert_eq!(value(&m, &up("no-ca")), Some(0.0));
    assert_eq!(value(&m, &up("wrong-name")), Some(0.0));
    let logs = exporter.proc.stderr_text();
    assert!(!logs.contains("BEGIN"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_sent_when_configured() {
    let sim = Sim::start();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let (cert, key) = server_ca.sign(&["127.0.0.1"]);
    let (client_cert, client_key) = client_ca.sign(&["backup-exporter"]);
    let front = tls_front(&sim.addr, &cert, &key, Some(&client_ca.pem)).await;
    let url = format!("https://{front}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &server_ca.pem).unwrap();
    std::fs::write(dir.path().join("client.crt"), &client_cert).unwrap();
    std::fs::write(dir.path().join("client.key"), &client_key).unwrap();
    let yaml = [
        DEFAULTS.to_string(),
        zdm_upstream("no-cert", &url, "    tls_config: { ca_file: ca.pem }\n"),
        zdm_upstream(
            "with-cert",
            &url,
            "    tls_config: { ca_file: ca.pem, cert_file: client.crt, key_file: client.key }\n",
        ),
        zdm_upstream(
            "insecure",
            &url,
            "    tls_config: { insecure_skip_verify: true, cert_file: client.crt, key_file: client.key }\n",
        ),
    ]
    .concat();
    let exporter = Exporter::start_in(dir, &yaml, &[], &[]);
    let m = exporter
        .wait_metrics("the client-certificate upstreams polled", |m| {
            value(m, &up("with-cert")) == Some(1.0)
                && value(m, &up("insecure")) == Some(1.0)
                && value(m, &up("no-cert")) == Some(0.0)
        })
        .await;
    assert!(
        value(&m, &failures("with-cert", "success")).unwrap_or(0.0) > 0.0,
        "{m}"
    );
    let logs = exporter.proc.stderr_text();
    assert!(
        logs.lines().any(|l| l.contains("\"level\":\"warn\"")
            && l.contains("insecure: tls_config.insecure_skip_verify is true")),
        "no start-up warning:\n{logs}"
    );
    assert!(!logs.contains(client_key.trim()), "key leaked:\n{logs}");

    // --check-config says the same, and shows no file content.
    let config = exporter.dir.path().join("config.yaml");
    let out = Command::new(exporter_bin())
        .arg("--check-config")
        .arg("--config")
        .arg(&config)
        .env("SIM_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("warning: insecure: tls_config.insecure_skip_verify is true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("with-cert: zdm https://127.0.0.1:")
            && stdout.contains(", tls (ca_file, client certificate)"),
        "{stdout}"
    );
    assert!(!stdout.contains("BEGIN"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_url_relays_polls_unless_no_proxy_names_the_host() {
    let sim = Sim::start();
    let (proxy, relayed) = counting_proxy().await;
    let yaml = [
        DEFAULTS.to_string(),
        zdm_upstream(
            "proxied",
            &sim.url(),
            &format!("    proxy_url: http://{proxy}\n"),
        ),
    ]
    .concat();

    let exporter = Exporter::start_with(&yaml, &[], &[("NO_PROXY", ""), ("no_proxy", "")]);
    exporter
        .wait_metrics("a poll through the proxy", |m| {
            value(m, &up("proxied")) == Some(1.0)
        })
        .await;
    assert!(relayed.load(Ordering::SeqCst) > 0);
    drop(exporter);

    relayed.store(0, Ordering::SeqCst);
    let exporter = Exporter::start_with(&yaml, &[], &[("NO_PROXY", "127.0.0.1"), ("no_proxy", "")]);
    let m = exporter
        .wait_metrics("two direct polls", |m| {
            value(m, &failures("proxied", "success")).unwrap_or(0.0) >= 2.0
        })
        .await;
    assert_eq!(value(&m, &up("proxied")), Some(1.0));
    assert_eq!(
        relayed.load(Ordering::SeqCst),
        0,
        "NO_PROXY was not honoured"
    );
}
