//! What the simulator's tests share: the simulator on a loopback port, a minimal HTTP/1.1
//! client written here so that byte-level faults (truncation, dropped connections, chunked
//! streams) are visible, and the seed samples carried in `tests/data/seeds/`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::options::SimOptions;
use super::router::Simulator;

/// Runs an async test on a fresh runtime with a bound on its duration.
pub(crate) fn run<F: Future<Output = ()>>(test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), test).await })
        .expect("test timed out");
}

pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).expect("chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Parses a whole `Connection: close` answer; checks Content-Length against what was sent.
fn parse_reply(raw: &[u8]) -> Reply {
    let head_end = find(raw, b"\r\n\r\n").expect("end of response head");
    let head = std::str::from_utf8(&raw[..head_end]).expect("head is UTF-8");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[head_end + 4..];
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    reply.body = if reply.header("transfer-encoding") == Some("chunked") {
        dechunk(rest)
    } else {
        if let Some(length) = reply.header("content-length") {
            let length: usize = length.parse().expect("content-length");
            assert_eq!(
                length,
                rest.len(),
                "Content-Length disagrees with the body sent"
            );
        }
        rest.to_vec()
    };
    reply
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) struct TestSim {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

pub(crate) async fn start(opts: SimOptions) -> TestSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Simulator::new(opts).serve(listener, async {
        let _ = stopped.await;
    }));
    TestSim {
        addr,
        stop: Some(stop),
        task,
    }
}

impl TestSim {
    /// Sends one request and returns the raw bytes of the answer (empty if none).
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        parse_reply(&self.raw(method, path, headers, body).await)
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], b"").await
    }

    pub(crate) async fn get_with_token(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.send("GET", path, &[("Authorization", &auth)], b"")
            .await
    }

    pub(crate) async fn put(&self, path: &str, body: &str) -> Reply {
        self.send("PUT", path, &[], body.as_bytes()).await
    }

    pub(crate) async fn fault(&self, endpoint: &str, id: &str, fault: &str) {
        let reply = self
            .put(&format!("/_sim/fault/{endpoint}/{}", enc(id)), fault)
            .await;
        assert_eq!(reply.status, 200, "setting fault {fault}");
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown");
        result.expect("serve task").expect("serve result");
    }
}

/// A seed sample from `tests/data/seeds/`: the example of a seed document, byte for byte as
/// the document writes it (see the README there for which example each file is).
pub(crate) fn seed_sample(name: &str) -> String {
    // One copy of the samples at the workspace root, shared with the exporter's tests: both
    // sides must agree with the same bytes.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/seeds")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("seed sample expected at {}: {e}", path.display()))
}

/// A JSON seed sample from `tests/data/seeds/`, parsed.
pub(crate) fn seed_sample_json(name: &str) -> Value {
    serde_json::from_str(&seed_sample(name))
        .unwrap_or_else(|e| panic!("seed sample {name} is not JSON: {e}"))
}
