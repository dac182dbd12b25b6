//! The exporter's own HTTP server against hostile or careless clients: slow and oversized
//! headers, connection and request floods, cross-origin reloads, wrong methods.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowHeaders {
    async fn open(addr: &str) -> SlowHeaders {
        let stream = TcpStream::connect(addr).await.unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let done = closed.clone();
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
            done.store(true, Ordering::SeqCst);
        });
        SlowHeaders { closed, task }
    }

    /// The server has closed the connection.
    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for SlowHeaders {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many connections the exporter logged as cut off by `--web.read-header-timeout`
/// (hyper's "read header from client timeout", logged at debug).
fn header_timeouts(exp: &Exporter) -> usize {
    exp.proc
        .stderr_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["msg"] == "connection ended with an error"
                && v["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("read header from client timeout"))
        })
        .count()
}

/// What happens is shown by what holds a slot at each step, not by timing it: the slow
/// clients within the limit are still connected when the eighth connection is served; the
/// ones past the limit close the oldest (so those were closed by the limit, not a timeout),
/// and the exporter logs each slow client it cuts off by the header timeout.
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
            "--log.level",
            "debug",
        ],
        &[],
    );
    exp.wait_ready().await;

    let mut first = Vec::new();
    for _ in 0..7 {
        first.push(SlowHeaders::open(&exp.addr).await);
    }
    // Seven slow clients do not keep a scrape from being answered on the eighth connection
    // (tried again while the readiness probe's connection may still hold a slot).
    let answer = wait_for(
        "a scrape beside seven slow clients",
        Duration::from_secs(10),
        || async {
            let answer = raw(&exp.addr, &get("/metrics")).await.ok()?;
            (status(&answer) == Some(200)).then_some(answer)
        },
    )
    .await;
    assert!(answer.contains("backup_target_up{"));
    assert!(
        first.iter().all(|c| !c.closed()),
        "the seven slow clients held their slots meanwhile"
    );

    // Past the limit, each new connection closes an idle one (a connection still sending its
    // headers has no request in flight): at most eight stay open, the newest among them,
    // before any header timeout.
    let mut extra = Vec::new();
    for _ in 0..8 {
        extra.push(SlowHeaders::open(&exp.addr).await);
    }
    wait_for(
        "idle connections closed to admit the new ones",
        Duration::from_secs(10),
        || async {
            let open = first.iter().chain(&extra).filter(|c| !c.closed()).count();
            (open <= 8).then_some(())
        },
    )
    .await;
    assert!(
        extra.last().is_some_and(|c| !c.closed()),
        "the newest is admitted"
    );
    assert!(exp.proc.stderr_text().contains(
        "connection limit reached: the oldest idle connection was closed to admit a new one"
    ));

    // The header timeout ends every slow client (the exporter says so for each it cut off),
    // and their slots serve scrapes again.
    let open = first.iter().chain(&extra).filter(|c| !c.closed()).count();
    wait_for(
        "slow clients cut off by --web.read-header-timeout",
        Duration::from_secs(20),
        || async { first.iter().chain(&extra).all(|c| c.closed()).then_some(()) },
    )
    .await;
    wait_for(
        "a header timeout logged for each of those still open",
        Duration::from_secs(10),
        || async { (header_timeouts(&exp) >= open).then_some(()) },
    )
    .await;
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
