//! Where the exporter listens: repeatable `--web.listen-address` in every form Prometheus'
//! tools accept, and `--web.systemd-socket` with a socket handed down as systemd does.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// A config whose one upstream refuses connections: the exporter starts and serves at once.
const UNREACHABLE: &str = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";

/// The exporter with these flags (JSON logs), and every address it logged as listening on,
/// once start-up has logged them all.
async fn start(args: &[&str]) -> (Exporter, Vec<SocketAddr>) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), UNREACHABLE);
    let mut cmd = Command::new(exporter_bin());
    cmd.arg("--config")
        .arg(&config)
        .args(["--log.format", "json"])
        .args(args)
        .env("SIM_TOKEN", TOKEN);
    let exp = Exporter::launch(cmd, dir);
    let addresses = listening(&exp).await;
    (exp, addresses)
}

async fn listening(exp: &Exporter) -> Vec<SocketAddr> {
    wait_for("polling started", Duration::from_secs(10), || {
        let logs = exp.proc.stderr_text();
        async move { logs.contains("\"polling started\"").then_some(()) }
    })
    .await;
    exp.proc
        .stderr_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == "backup-exporter listening")
        .map(|v| v["address"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn healthy(addr: SocketAddr) -> u16 {
    client()
        .get(format!("http://{addr}/-/healthy"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("GET http://{addr}/-/healthy: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listen_address_is_served_ipv4_ipv6_and_every_address_of_a_host_name() {
    let mut localhost: Vec<SocketAddr> = tokio::net::lookup_host("localhost:0")
        .await
        .unwrap()
        .collect();
    localhost.dedup();
    let (exp, addresses) = start(&[
        "--web.listen-address",
        "127.0.0.1:0",
        "--web.listen-address",
        "[::1]:0",
        "--web.listen-address",
        "localhost:0",
    ])
    .await;
    assert_eq!(
        addresses.len(),
        2 + localhost.len(),
        "one listening line per socket: {addresses:?}\n{}",
        exp.proc.stderr_text()
    );
    assert!(addresses[0].ip().is_ipv4() && addresses[0].ip().is_loopback());
    assert_eq!(
        addresses[1].ip(),
        "::1".parse::<std::net::IpAddr>().unwrap()
    );
    let by_name = &addresses[2..];
    for (got, want) in by_name.iter().zip(&localhost) {
        assert_eq!(
            got.ip(),
            want.ip(),
            "localhost binds each address it resolves to"
        );
        assert_eq!(got.port(), by_name[0].port(), "one port for a host name");
    }
    for addr in &addresses {
        assert_eq!(healthy(*addr).await, 200, "{addr}");
    }
    let url = exp
        .proc
        .stderr_text()
        .lines()
        .find(|l| l.contains("[::1]"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(url.contains("\"url\":\"http://[::1]:"), "{url}");
}

/// `:PORT` is every interface: one dual-stack `[::]` socket that IPv4 and IPv6 clients reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_port_serves_ipv4_and_ipv6_clients() {
    let (_exp, addresses) = start(&["--web.listen-address", ":0"]).await;
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    assert!(addresses[0].ip().is_unspecified(), "{addresses:?}");
    let port = addresses[0].port();
    assert_eq!(healthy(SocketAddr::from(([127, 0, 0, 1], port))).await, 200);
    assert_eq!(healthy(format!("[::1]:{port}").parse().unwrap()).await, 200);
}

#[test]
fn a_listen_address_that_cannot_be_used_is_named() {
    for (address, needle) in [
        ("10095", "expected HOST:PORT"),
        ("::1:10095", "needs brackets"),
        (
            "no_such_host.invalid:0",
            "cannot resolve no_such_host.invalid",
        ),
    ] {
        let out = Command::new(exporter_bin())
            .args(["--config", "tests/data/valid-zdm.yaml"])
            .args(["--web.listen-address", address])
            .env("ZDM_TOKEN", "t")
            .env("ZDM_EMAIL", "e@example.com")
            .env("ZDM_PASSWORD", "p")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{address}: {err}");
        assert!(err.contains(needle), "{address}: {err}");
    }
}

/// systemd's protocol: the listening socket is fd 3, `LISTEN_FDS=1`, `LISTEN_PID` the
/// exporter's own pid (`$$` of a shell that then `exec`s it, as systemd sets it for the
/// process it starts). The test binds the socket, so it knows the address before the exporter
/// runs, and the exporter binds nothing. The socket goes down as the shell's standard input,
/// which the shell moves to fd 3: no descriptor of the test process loses its close-on-exec
/// flag, so the children other tests spawn meanwhile inherit nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_socket_activation_serves_on_the_passed_socket() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), UNREACHABLE);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec 3<&0 0</dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; exec \"$0\" \"$@\"")
        .arg(exporter_bin())
        .arg("--config")
        .arg(&config)
        .args(["--web.systemd-socket", "--log.format", "json"])
        .env("SIM_TOKEN", TOKEN);
    let stdin = Stdio::from(OwnedFd::from(socket));
    let exp = Exporter::launch_with_stdin(cmd, dir, stdin);
    let addresses = listening(&exp).await;
    assert_eq!(addresses, vec![address], "{}", exp.proc.stderr_text());
    assert_eq!(healthy(address).await, 200);
    let metrics = client()
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(exp.proc.stderr_text().contains("\"systemd_socket\":true"));
}

#[test]
fn systemd_socket_without_sockets_is_a_clear_error() {
    let out = Command::new(exporter_bin())
        .args([
            "--config",
            "tests/data/valid-zdm.yaml",
            "--web.systemd-socket",
        ])
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env("ZDM_TOKEN", "t")
        .env("ZDM_EMAIL", "e@example.com")
        .env("ZDM_PASSWORD", "p")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--web.systemd-socket: no sockets were passed"),
        "{err}"
    );
    // Another process's sockets are not taken.
    let out = Command::new(exporter_bin())
        .args([
            "--config",
            "tests/data/valid-zdm.yaml",
            "--web.systemd-socket",
        ])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("ZDM_TOKEN", "t")
        .env("ZDM_EMAIL", "e@example.com")
        .env("ZDM_PASSWORD", "p")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("LISTEN_PID names another process"), "{err}");
}
