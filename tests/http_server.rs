//! The exporter's own HTTP server against hostile or careless clients: slow and oversized
//! headers, connection and request floods, cross-origin reloads, wrong methods.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A config whose one upstream refuses connections: the exporter starts and serves at once.
const UNREACHABLE: &str = "upstreams:\n  - name: z\n    type: zdm\n    url: http://127.0.0.1:9\n    token_env: SIM_TOKEN\n    servers: [a]\n";

/// Sends `request` on a new connection and reads until the server closes it (at most 10 s).
async fn raw(addr: &str, request: &[u8]) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: exporter\r\nConnection: close\r\n\r\n").into_bytes()
}

fn status(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A client that sends a request line and then one header line every 200 ms, never ending
/// its headers, until the server closes the connection.
struct SlowHeaders {
    /// Time from connecting to the server closing the connection.
    closed_after: Arc<Mutex<Option<Duration>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowHeaders {
    async fn open(addr: &str) -> SlowHeaders {
        let stream = TcpStream::connect(addr).await.unwrap();
        let start = Instant::now();
        let closed_after = Arc::new(Mutex::new(None));
        let closed = closed_after.clone();
        let task = tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            let _ = wr.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = rd.read(&mut buf) => match read {
                        Ok(n) if n > 0 => continue,
                        _ => break,
                    },
                    _ = tick.tick() => {
                        if wr.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            break;
                        }
                    }
                }
            }
            *closed.lock().unwrap() = Some(start.elapsed());
        });
        SlowHeaders { closed_after, task }
    }

    fn closed_after(&self) -> Option<Duration> {
        *self.closed_after.lock().unwrap()
    }
}

impl Drop for SlowHeaders {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_hold_at_most_max_connections_and_time_out() {
    let sim = Sim::start();
    let yaml = zdm_config(&sim, "", "    backup_jobs: [daily-backup]\n");
    let exp = Exporter::start_with(
        &yaml,
        &[
            "--web.max-connections",
            "8",
            "--web.read-header-timeout",
            "6s",
        ],
        &[],
    );
    exp.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the readiness probe's connection ends

    let mut first = Vec::new();
    for _ in 0..7 {
        first.push(SlowHeaders::open(&exp.addr).await);
    }
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Seven slow clients do not keep a scrape from being answered on the eighth connection.
    let started = Instant::now();
    let answer = raw(&exp.addr, &get("/metrics")).await.unwrap();
    assert_eq!(status(&answer), Some(200), "{answer}");
    assert!(answer.contains("backup_target_up{"));
    assert!(started.elapsed() < Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Past the limit, connections are closed as soon as they are accepted.
    let mut extra = Vec::new();
    for _ in 0..8 {
        extra.push(SlowHeaders::open(&exp.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let closed: Vec<Duration> = extra.iter().filter_map(|c| c.closed_after()).collect();
    assert!(
        closed.len() >= 7,
        "7 or 8 of 8 connections past the limit are closed, {} were",
        closed.len()
    );
    assert!(
        closed.iter().all(|d| *d < Duration::from_secs(1)),
        "closed at once: {closed:?}"
    );
    if opened.elapsed() < Duration::from_secs(5) {
        assert!(
            first.iter().all(|c| c.closed_after().is_none()),
            "the connections within the limit stay until their header timeout"
        );
    }

    // The header timeout ends every slow client, and their slots serve scrapes again.
    wait_for(
        "slow clients cut off by --web.read-header-timeout",
        Duration::from_secs(12),
        || async {
            first
                .iter()
                .chain(&extra)
                .all(|c| c.closed_after().is_some())
                .then_some(())
        },
    )
    .await;
    for c in &first {
        let after = c.closed_after().unwrap();
        assert!(
            after >= Duration::from_secs(5) && after < Duration::from_secs(10),
            "cut off after about 6 s: {after:?}"
        );
    }
    let answer = raw(&exp.addr, &get("/metrics")).await.unwrap();
    assert_eq!(status(&answer), Some(200), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_over_64_kib_are_refused() {
    let exp = Exporter::start_with(UNREACHABLE, &[], &[]);
    let with_header = |bytes: usize| {
        format!(
            "GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(bytes)
        )
        .into_bytes()
    };

    let answer = raw(&exp.addr, &with_header(32 * 1024)).await.unwrap();
    assert_eq!(status(&answer), Some(200), "32 KiB of headers are fine");

    // Written from another task: the server may stop reading before the end.
    let mut stream = TcpStream::connect(&exp.addr).await.unwrap();
    let (mut rd, mut wr) = stream.split();
    let big = with_header(128 * 1024);
    let write = async {
        let _ = wr.write_all(&big).await;
    };
    let read = async {
        let mut answer = Vec::new();
        let result =
            tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut answer)).await;
        (result, String::from_utf8_lossy(&answer).into_owned())
    };
    let ((), (result, answer)) = tokio::join!(write, read);
    assert!(
        result.is_ok(),
        "the connection is answered or closed, not left open"
    );
    assert!(
        answer.is_empty() || status(&answer) == Some(431),
        "431 or closed, got: {}",
        answer.lines().next().unwrap_or("")
    );

    let answer = raw(&exp.addr, &get("/-/healthy")).await.unwrap();
    assert_eq!(status(&answer), Some(200), "{answer}");
}

/// A connection that asks for `/metrics` again and again (pipelined) and reads nothing: its
/// first answer, larger than the socket buffers, stays in flight.
async fn stuck_scraper(addr: &str, requests: usize) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    tokio::spawn(async move {
        let mut stream = stream;
        let one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        let all: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * requests)
            .collect();
        let _ = stream.write_all(&all).await;
        // Hold the connection, unread, until the test aborts this task.
        std::future::pending::<()>().await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_requests_get_503_at_once() {
    // An exposition larger than the kernel's largest send buffer plus hyper's: a client that
    // reads nothing keeps its first answer in flight, and its slot taken, for good. (Answers
    // have a Content-Length, so hyper lets go of a body, and its slot, once the last piece
    // is in its write buffer; a smaller answer could be wholly buffered.)
    let sim = Sim::start_with(&["--token", TOKEN, "--fleet", "600x5"]);
    let servers: Vec<String> = (1..=600).map(|i| format!("fleet-{i:05}")).collect();
    let yaml = zdm_config(
        &sim,
        "",
        &format!("    servers: [{}]\n", servers.join(", ")),
    );
    let exp = Exporter::start_with(&yaml, &["--web.max-requests", "2"], &[]);
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
    // Enough to fill any loopback socket buffers several times over.
    let pipelined = (64 * 1024 * 1024 / size).max(4);

    let stuck = [
        stuck_scraper(&exp.addr, pipelined).await,
        stuck_scraper(&exp.addr, pipelined).await,
    ];
    let refused = wait_for(
        "a 503 while two scrapes are stuck",
        Duration::from_secs(15),
        || async {
            let answer = raw(&exp.addr, &get("/-/healthy")).await.ok()?;
            (status(&answer) == Some(503)).then_some(answer)
        },
    )
    .await;
    assert!(
        refused.contains("Limit of concurrent requests reached (2), try again later."),
        "{refused}"
    );

    let mut more = Vec::new();
    for path in ["/metrics", "/", "/-/ready", "/-/healthy"] {
        let addr = exp.addr.clone();
        more.push(tokio::spawn(async move {
            let start = Instant::now();
            let answer = raw(&addr, &get(path)).await.unwrap();
            (path, status(&answer), start.elapsed())
        }));
    }
    for handle in more {
        let (path, code, took) = handle.await.unwrap();
        assert_eq!(code, Some(503), "{path}");
        assert!(
            took < Duration::from_secs(2),
            "{path} answered at once: {took:?}"
        );
    }

    for task in stuck {
        task.abort();
        let _ = task.await;
    }
    wait_for(
        "slots freed when the stuck clients leave",
        Duration::from_secs(10),
        || async {
            let answer = raw(&exp.addr, &get("/metrics")).await.ok()?;
            (status(&answer) == Some(200)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_over_http_is_off_by_default_and_sighup_always_reloads() {
    let sim = Sim::start();
    let exp = Exporter::start(&zdm_config(&sim, "", "    backup_jobs: [daily-backup]\n"));
    exp.wait_ready().await;
    for method in [reqwest::Method::POST, reqwest::Method::PUT] {
        let resp = client()
            .request(method.clone(), exp.url("/-/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{method}");
        assert_eq!(
            resp.text().await.unwrap(),
            "Lifecycle API is not enabled.\n"
        );
    }
    write_config(
        exp.dir.path(),
        &zdm_config(
            &sim,
            "",
            "    backup_jobs: [daily-backup, daily-backup-win]\n",
        ),
    );
    exp.proc.signal("HUP");
    exp.wait_metrics("the target added by SIGHUP", |m| {
        value(m, &target_up("zdm", "backup_job", "daily-backup-win")).is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_over_http_refuses_cross_origin_requests() {
    let exp = Exporter::start_with(UNREACHABLE, &["--web.enable-lifecycle"], &[]);
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = client().post(exp.url("/-/reload"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move {
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            (code, resp.text().await.unwrap())
        }
    };
    for headers in [
        &[("Origin", "http://evil.example")][..],
        &[("Origin", "null")][..],
        &[("Sec-Fetch-Site", "cross-site")][..],
    ] {
        let (code, body) = post(headers).await;
        assert_eq!(code, 403, "{headers:?}: {body}");
    }
    let (code, body) = post(&[]).await;
    assert_eq!(code, 200, "no Origin (curl): {body}");
    let same_origin = format!("http://{}", exp.addr);
    let resp = client()
        .post(exp.url("/-/reload"))
        .header("Origin", &same_origin)
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "same origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_lists_the_allowed_methods() {
    let exp = Exporter::start_with(UNREACHABLE, &["--web.enable-lifecycle"], &[]);
    let cases = [
        (reqwest::Method::POST, "/metrics", "GET, HEAD"),
        (reqwest::Method::DELETE, "/", "GET, HEAD"),
        (reqwest::Method::PUT, "/-/healthy", "GET, HEAD"),
        (reqwest::Method::OPTIONS, "/-/ready", "GET, HEAD"),
        (reqwest::Method::GET, "/-/reload", "POST, PUT"),
    ];
    for (method, path, allow) in cases {
        let resp = client()
            .request(method.clone(), exp.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            resp.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
    }
    let resp = client().get(exp.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert!(!resp.headers().contains_key("allow"));
}
