//! The scrape always answers (interface 6.6): each attack of issue 20 against the real
//! binary on 127.0.0.1, while a well-behaved scraper (gzip `GET /metrics`, 10 s timeout, the
//! right credentials where basic auth is on) keeps asking. Each test asserts the scraper's
//! status codes (at least 95 % answered 200) and that the attack did take hold (the
//! exporter's own count of the connections it closed to make room), never a duration.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::tls::Ca;
use crate::common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A config whose one upstream refuses connections: the exporter starts and serves at once.
const UNREACHABLE: &str = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";

/// Scrapes the scraper makes under each attack.
const SCRAPES: usize = 20;

/// The statuses of `SCRAPES` gzip scrapes by `client`, 250 ms apart (a transport error or a
/// timeout counts as 0): four times the pace of the spec's scraper (one a second), whose
/// every scrape may close an attacker's connection and hand its slots to a fresh one.
async fn scrape(client: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..SCRAPES {
        let mut req = client
            .get(url)
            .header("Accept-Encoding", "gzip")
            .timeout(Duration::from_secs(10));
        if let Some((user, password)) = auth {
            req = req.basic_auth(user, Some(password));
        }
        let status = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(_) => status,
                    Err(_) => 0,
                }
            }
            Err(e) => {
                eprintln!("scrape failed: {e:?}");
                0
            }
        };
        statuses.push(status);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    statuses
}

/// At least 95 % of `statuses` are 200.
fn assert_answered(statuses: &[u16], exp: &Exporter) {
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        ok * 100 >= statuses.len() * 95,
        "{ok} of {} scrapes answered 200: {statuses:?}\n{}",
        statuses.len(),
        tail(exp)
    );
}

fn tail(exp: &Exporter) -> String {
    let text = exp.proc.stderr_text();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The exporter's log lines (JSON) whose `msg` starts with `msg`.
fn logged(exp: &Exporter, msg: &str) -> usize {
    exp.proc
        .stderr_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with(msg)))
        .count()
}

const STALLED: &str = "request limit reached: a response stalled for over a second gave its slot";
const WRITE_TIMEOUT: &str = "responses with no progress for --web.write-timeout abandoned";
const IDLE_CLOSED: &str = "connection limit reached: the oldest idle connection was closed";

/// Attack tasks that run until `stop` is set, then are awaited.
struct Attack {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Connections the attackers opened.
    connections: Arc<AtomicUsize>,
}

impl Attack {
    fn new() -> Attack {
        Attack {
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            connections: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn end(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
        self.connections.load(Ordering::SeqCst)
    }
}

/// A client that asks for `/metrics` (plain, pipelined `requests` times) and never reads,
/// reconnecting when the server closes the connection, until `stop`.
fn non_reader(
    addr: String,
    requests: usize,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        let all: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * requests)
            .collect();
        for _ in 0..1000 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let Ok(mut stream) = socket.connect(addr.parse().unwrap()).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(&all).await;
            // Closed by the server: the next connection.
            wait_closed(&mut stream, &stop).await;
        }
    })
}

/// Waits until the server closes `stream` (read end or error) or `stop`, reading nothing
/// while the socket is open: a peek that returns 0 bytes means closed.
async fn wait_closed(stream: &mut TcpStream, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        // Without reading the answer: only a connection that ended wakes the poll below
        // once its data fills the receive buffer... so a closed socket is told by an error on
        // write instead (a reset), tried every 100 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"\r\n").await.is_err() {
            return;
        }
    }
}

/// Clients that send `GET /metrics` and never read an answer larger than the socket buffers,
/// more of them than `--web.max-requests` (12 for 10 here, to keep the test light; the bench,
/// benches/attacks.sh, runs 40 against the default 40): each holds a slot, yet a scraper is
/// answered because a new request takes the slot of a response stalled for over a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_do_not_keep_the_scraper_out() {
    let sim = Sim::start_with(&["--token", TOKEN, "--fleet", "600x5"]);
    let servers: Vec<String> = (1..=600).map(|i| format!("fleet-{i:05}")).collect();
    let yaml = zdm_config(
        &sim,
        "",
        &format!("    servers: [{}]\n", servers.join(", ")),
    );
    let exp = Exporter::start_with(
        &yaml,
        &["--log.level", "debug", "--web.max-requests", "10"],
        &[],
    );
    exp.wait_ready().await;
    let size = exp.metrics().await.len();
    let send_buffer_max: usize = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|v| v.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 << 20);
    assert!(
        size > send_buffer_max + (1 << 20),
        "an exposition larger than the socket's largest send buffer ({send_buffer_max}): {size}"
    );

    let mut attack = Attack::new();
    for _ in 0..12 {
        attack.tasks.push(non_reader(
            exp.addr.clone(),
            4,
            attack.stop.clone(),
            attack.connections.clone(),
        ));
    }
    // The attack has taken every slot once a request has had to take a stalled one.
    let scraper = client();
    let url = exp.url("/metrics");
    wait_for(
        "every slot taken by the non-readers",
        Duration::from_secs(30),
        || async {
            let _ = scraper
                .get(&url)
                .header("Accept-Encoding", "gzip")
                .send()
                .await;
            (logged(&exp, STALLED) > 0).then_some(())
        },
    )
    .await;
    let statuses = scrape(&scraper, &url, None).await;
    let connections = attack.end().await;
    assert_answered(&statuses, &exp);
    assert!(connections >= 12, "{connections}");
}

/// With a short `--web.write-timeout`, a response that makes no progress is abandoned even
/// when no other request needs its slot: an HTTP/2 connection whose streams never open their
/// window is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_no_progress_is_abandoned_at_the_write_timeout() {
    let ca = Ca::new("write timeout test CA");
    let exp = tls_exporter(&ca, &["--web.write-timeout", "1s"]);
    let sender = zero_window_connection(&exp.addr, &ca.pem).await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut sender = sender.clone();
        streams.push(tokio::spawn(async move {
            let req = hyper::Request::get("https://localhost/metrics")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            let resp = sender.send_request(req).await;
            // Held, never read: the window stays shut.
            std::future::pending::<()>().await;
            drop(resp);
        }));
    }
    wait_for(
        "the connection closed by the write timeout",
        Duration::from_secs(20),
        || async { sender.is_closed().then_some(()) },
    )
    .await;
    for s in streams {
        s.abort();
    }
    wait_for(
        "the write timeout logged",
        Duration::from_secs(10),
        || async { (logged(&exp, WRITE_TIMEOUT) == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        logged(&exp, STALLED),
        0,
        "two of 40 slots: no request needed them"
    );
}

/// The exporter with TLS (a certificate signed by `ca` for 127.0.0.1), logging at debug.
fn tls_exporter(ca: &Ca, args: &[&str]) -> Exporter {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.path().join("server.crt"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(
        &web_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let web = web_path.to_str().unwrap().to_string();
    let mut all = vec!["--web.config.file", web.as_str(), "--log.level", "debug"];
    all.extend_from_slice(args);
    Exporter::start_in(dir, UNREACHABLE, &all, &[])
}

/// Idle connections, reconnected as soon as they are closed, twice as many as
/// `--web.max-connections`: a new connection closes the oldest idle one, so the scraper's
/// connections are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_flood_does_not_keep_the_scraper_out() {
    let exp = Exporter::start_with(
        UNREACHABLE,
        &["--log.level", "debug", "--web.max-connections", "32"],
        &[],
    );
    let mut attack = Attack::new();
    let opened = Arc::new(AtomicUsize::new(0));
    for _ in 0..64 {
        let (addr, stop, connections, opened) = (
            exp.addr.clone(),
            attack.stop.clone(),
            attack.connections.clone(),
            opened.clone(),
        );
        attack.tasks.push(tokio::spawn(async move {
            for _ in 0..1000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                opened.fetch_add(1, Ordering::SeqCst);
                // Idle until the server closes it.
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => match read {
                            Ok(n) if n > 0 => continue,
                            _ => break,
                        },
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    wait_for(
        "the connection limit reached by idle connections",
        Duration::from_secs(20),
        || async { (logged(&exp, IDLE_CLOSED) > 0).then_some(()) },
    )
    .await;
    // A new connection for each scrape, as after a scraper's restart: each must be admitted.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scraper = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let statuses = scrape(&scraper, &exp.url("/metrics"), None).await;
    let connections = attack.end().await;
    assert_answered(&statuses, &exp);
    assert!(
        connections > 64,
        "the idle connections were closed and reopened: {connections}"
    );
}

/// Clients guessing passwords as fast as they can (more than the bcrypt queue holds): the
/// guesses past the bound are answered 429 at once, and the scraper, its password remembered
/// after its first scrape, is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_does_not_keep_the_right_password_out() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right-pass-51c2", 10).unwrap();
    let web_path = dir.path().join("web.yml");
    std::fs::write(
        &web_path,
        format!("basic_auth_users:\n  prometheus: {hash}\n"),
    )
    .unwrap();
    let web = web_path.to_str().unwrap().to_string();
    let exp = Arc::new(Exporter::start_in(
        dir,
        UNREACHABLE,
        &["--web.config.file", &web],
        &[],
    ));
    let scraper = client();
    let right = Some(("prometheus", "right-pass-51c2"));
    // The scraper's first scrape passes bcrypt before the flood, as Prometheus' does.
    assert_eq!(
        scrape_once(&scraper, &exp.url("/metrics"), right).await,
        200
    );

    let mut attack = Attack::new();
    let busy = Arc::new(AtomicUsize::new(0));
    let denied = Arc::new(AtomicUsize::new(0));
    for i in 0..32 {
        let (exp, stop, busy, denied) = (
            exp.clone(),
            attack.stop.clone(),
            busy.clone(),
            denied.clone(),
        );
        attack.tasks.push(tokio::spawn(async move {
            let client = client();
            for _ in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let resp = client
                    .get(exp.url("/metrics"))
                    .basic_auth("prometheus", Some(format!("guess-{i}")))
                    .send()
                    .await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(429) => {
                        busy.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(401) => {
                        denied.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
            }
        }));
    }
    wait_for(
        "the flood past the bcrypt queue",
        Duration::from_secs(20),
        || async {
            (busy.load(Ordering::SeqCst) > 0 && denied.load(Ordering::SeqCst) > 0).then_some(())
        },
    )
    .await;
    let statuses = scrape(&scraper, &exp.url("/metrics"), right).await;
    attack.end().await;
    assert_answered(&statuses, &exp);
    assert!(!exp.proc.stderr_text().contains("right-pass-51c2"));
}

async fn scrape_once(client: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> u16 {
    let mut req = client.get(url).header("Accept-Encoding", "gzip");
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// HTTP/2 clients over TLS that announce a zero stream window (SETTINGS_INITIAL_WINDOW_SIZE
/// = 0), open 20 `GET /metrics` streams each and never open the window: a connection gets at
/// most four streams (so twelve are needed to fill the 40 slots), and the scraper is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_that_never_open_their_window_do_not_keep_the_scraper_out() {
    let ca = Ca::new("attack test CA");
    let exp = tls_exporter(&ca, &[]);

    let mut attack = Attack::new();
    let answered = Arc::new(AtomicUsize::new(0));
    let most_on_one = Arc::new(AtomicUsize::new(0));
    for _ in 0..12 {
        let (addr, ca_pem, stop, connections, answered, most_on_one) = (
            exp.addr.clone(),
            ca.pem.clone(),
            attack.stop.clone(),
            attack.connections.clone(),
            answered.clone(),
            most_on_one.clone(),
        );
        attack.tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(sender) = zero_window_connection(&addr, &ca_pem).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let on_this = Arc::new(AtomicUsize::new(0));
                let mut streams = Vec::new();
                for _ in 0..20 {
                    let mut sender = sender.clone();
                    let (answered, on_this, most_on_one) =
                        (answered.clone(), on_this.clone(), most_on_one.clone());
                    streams.push(tokio::spawn(async move {
                        let req = hyper::Request::get("https://localhost/metrics")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap();
                        if let Ok(resp) = sender.send_request(req).await {
                            if resp.status() == 200 {
                                answered.fetch_add(1, Ordering::SeqCst);
                                let n = on_this.fetch_add(1, Ordering::SeqCst) + 1;
                                most_on_one.fetch_max(n, Ordering::SeqCst);
                            }
                            // Held, never read: the window stays shut.
                            let _body = resp;
                            std::future::pending::<()>().await;
                        }
                    }));
                }
                // Until the server closes the connection.
                let mut sender = sender;
                while !stop.load(Ordering::SeqCst) && !sender.is_closed() {
                    let _ = sender.ready().await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                for s in streams {
                    s.abort();
                }
            }
        }));
    }
    wait_for(
        "every slot taken by zero-window streams",
        Duration::from_secs(30),
        || async { (answered.load(Ordering::SeqCst) >= 40).then_some(()) },
    )
    .await;
    let scraper = https_client(&ca.pem);
    let url = format!("https://{}/metrics", exp.addr);
    // The slots are taken from the attack's first second on: a scrape then is 503 until the
    // streams holding them have made no progress for over a second (STALLED).
    wait_for(
        "a slot yielded by a stalled stream",
        Duration::from_secs(10),
        || async { (scrape_once(&scraper, &url, None).await == 200).then_some(()) },
    )
    .await;
    let statuses = scrape(&scraper, &url, None).await;
    attack.end().await;
    assert_answered(&statuses, &exp);
    assert!(logged(&exp, STALLED) > 0, "the scrapes took stalled slots");
    let most = most_on_one.load(Ordering::SeqCst);
    assert!(
        most <= backup_exporter::server::PER_CONNECTION,
        "{most} streams answered on one connection"
    );
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .no_proxy()
        .build()
        .unwrap()
}

/// An HTTP/2 connection over TLS whose streams start with a zero window and whose body
/// data is never asked for.
async fn zero_window_connection(
    addr: &str,
    ca_pem: &str,
) -> Option<hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::common::tls::certs(ca_pem) {
        roots.add(cert).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.ok()?;
    let tls = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .ok()?;
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(0)
            .adaptive_window(false)
            .handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// A FIFO at `path` (`mkfifo`): opening it for reading blocks until a writer comes, as a hung
/// network or FUSE mount would.
fn fifo(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `/-/healthy` and `/metrics` answered 200 `n` times in a row, each within the client's
/// 10 s timeout.
async fn still_answering(exp: &Exporter, n: usize) {
    for _ in 0..n {
        assert_eq!(exp.get("/-/healthy").await.0, 200);
        assert_eq!(exp.get("/metrics").await.0, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM ends the process, with exit code 0, within a bounded wait (the exporter's own
/// bound is 10 s; the test allows 20 on a loaded machine).
fn terminates(exp: &mut Exporter) {
    exp.proc.signal("TERM");
    let code = exp.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{}", tail(exp));
}

/// The config file swapped for a FIFO, then SIGHUP: the reload fails (the read gives up after
/// its time limit) and the running config stays; scrapes and health checks are answered
/// meanwhile, and SIGTERM still ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_that_blocks_fails_the_reload_and_stalls_nothing() {
    let mut exp = Exporter::start(UNREACHABLE);
    let config = exp.dir.path().join("config.yaml");
    fifo(&config);
    exp.proc.signal("HUP");
    still_answering(&exp, 10).await;
    wait_for("the reload rejected", Duration::from_secs(20), || async {
        (logged(&exp, "configuration rejected, keeping the running one") > 0).then_some(())
    })
    .await;
    assert!(exp.proc.stderr_text().contains("did not finish within"));
    still_answering(&exp, 3).await;
    // A second SIGHUP while the first read is still blocked fails too, and stalls nothing.
    exp.proc.signal("HUP");
    still_answering(&exp, 3).await;
    terminates(&mut exp);
}

/// Workload identity whose federated token file is swapped for one that blocks: the token
/// renewals fail (auth_error), scrapes and health checks are answered meanwhile, and SIGTERM
/// still ends the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_that_blocks_stalls_neither_scrapes_nor_shutdown() {
    // Two-second tokens: renewed after one second, each time from the file as it is then.
    let sim = Sim::start_with(&[
        "--azure-client",
        "tenant-1234:client-5678:s",
        "--token-lifetime",
        "2s",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-assertion-A\n").unwrap();
    let yaml = format!(
        "upstreams:\n  - name: azure\n    type: azure\n    workload_identity: true\n    subscription_id: 11111111-2222-3333-4444-555555555555\n    management_url: {url}\n    authority_url: {url}\n    interval: 300ms\n    vaults: [{{ resource_group: rg-backup, name: vault-01 }}]\n",
        url = sim.url()
    );
    let file = token_file.display().to_string();
    let mut exp = Exporter::start_in(
        dir,
        &yaml,
        &[],
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", file.as_str()),
            ("AZURE_CLIENT_ID", "client-5678"),
            ("AZURE_TENANT_ID", "tenant-1234"),
        ],
    );
    let target = crate::common::series::up("azure", "azure", "vault", "rg-backup/vault-01");
    exp.wait_metrics("a poll with the federated token", |m| {
        value(m, &target) == Some(1.0)
    })
    .await;
    fifo(&token_file);
    still_answering(&exp, 10).await;
    exp.wait_metrics("the target down", |m| value(m, &target) == Some(0.0))
        .await;
    wait_for(
        "the failed renewal logged",
        Duration::from_secs(20),
        || async {
            let logs = exp.proc.stderr_text();
            logs.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| {
                    v["outcome"] == "auth_error"
                        && v["reason"].as_str().is_some_and(|r| {
                            r.starts_with(
                            "reading the federated token file: the file read did not finish within",
                        )
                        })
                })
                .then_some(())
        },
    )
    .await;
    still_answering(&exp, 3).await;
    terminates(&mut exp);
}

/// A reload storm: SIGHUPs every 50 ms for two seconds, the config flipping between two
/// versions. Reloads are coalesced to at most one a second (the bound is taken from the
/// storm's own measured length, so a slow machine only loosens it), and the last config wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_storm_reloads_at_most_once_a_second() {
    let exp = Exporter::start(UNREACHABLE);
    let other = UNREACHABLE.replace("servers: [a]", "servers: [b]");
    let started = std::time::Instant::now();
    for i in 0..40 {
        write_config(
            exp.dir.path(),
            if i % 2 == 0 { &other } else { UNREACHABLE },
        );
        exp.proc.signal("HUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storm = started.elapsed().as_secs_f64();
    // The last SIGHUP's reload, at most a second after the one before.
    let last = crate::common::series::up("zdm", "z", "server", "a");
    exp.wait_metrics("the last config in force", |m| {
        value(m, &last).is_some() && !m.contains("target=\"b\"")
    })
    .await;
    let reloads = logged(&exp, "SIGHUP: reloading configuration");
    let bound = storm.ceil() as usize + 2;
    assert!(
        (1..=bound).contains(&reloads),
        "{reloads} reloads for 40 SIGHUPs over {storm:.1} s"
    );
}

/// A reload storm that changes an upstream each time (its targets flip) costs at most one
/// login per reload that took effect, and the reloads are coalesced: before, 20 SIGHUPs a
/// second for 30 s raised the upstream's logins from 1 to 561. The bound is taken from the
/// storm's measured length and the reloads the exporter logged, never from a clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_storm_costs_at_most_one_login_a_reload() {
    let sim = Sim::start_with(&["--token", TOKEN, "--login", &format!("{EMAIL}:{PASSWORD}")]);
    let config = |server: &str| {
        format!(
            "upstreams:\n  - name: zdm\n    type: zdm\n    url: {}\n    api_version: \"1.3\"\n    login: {{ email_env: SIM_EMAIL, password_env: SIM_PASSWORD }}\n    servers: [{server}]\n",
            sim.url()
        )
    };
    let exp = Exporter::start(&config("web-01"));
    exp.wait_ready().await;
    let started = std::time::Instant::now();
    for i in 0..40 {
        write_config(
            exp.dir.path(),
            &config(if i % 2 == 0 { "db-02" } else { "web-01" }),
        );
        exp.proc.signal("HUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storm = started.elapsed().as_secs_f64();
    let last = crate::common::series::up("zdm", "zdm", "server", "web-01");
    exp.wait_metrics("the last config in force", |m| {
        value(m, &last) == Some(1.0) && !m.contains("target=\"db-02\"")
    })
    .await;
    let reloads = logged(&exp, "SIGHUP: reloading configuration");
    let logins = sim.stats().await["login"].as_u64().unwrap_or(0) as usize;
    assert!(
        (1..=storm.ceil() as usize + 2).contains(&reloads),
        "{reloads} reloads for 40 SIGHUPs over {storm:.1} s"
    );
    // The first login, then at most one for each reload that changed the upstream.
    assert!(
        (2..=reloads + 1).contains(&logins),
        "{logins} logins for {reloads} reloads"
    );
}
