//! The gzip `/metrics` answer is assembled from segments compressed when polls finish
//! (src/exposition/): a gzip header, raw deflate segments, an empty final block and a trailer
//! whose CRC-32 is combined from the segments' CRCs. These tests decode it, from the real
//! binary polling the simulator, with the readers scrapers use: Rust's flate2 (zlib-rs),
//! curl `--compressed` (zlib), Python's `gzip`, and curl piped into `promtool check metrics`
//! (a real Prometheus, Go's `compress/gzip`, scrapes it in tests/e2e_prometheus.rs).
//! Decoded, it is byte for byte the plain answer, but for the `process_*` values that change
//! between any two scrapes.

mod common;

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};

use common::*;

const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0";

/// Debian's packages the test uses, as the failure message says.
const INSTALL: &str = "apt-get install -y --no-install-recommends curl prometheus";

fn tool(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{name}` is not installed; install it with: {INSTALL}"))
}

/// The exposition with the values of `process_*` samples blanked out.
fn comparable(text: &[u8]) -> String {
    let text = String::from_utf8(text.to_vec()).expect("UTF-8 exposition");
    text.lines()
        .map(|line| match line.strip_prefix("process_") {
            Some(_) => line.rsplit_once(' ').map_or(line, |(series, _)| series),
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("flate2 decodes the answer");
    out
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `(status, content-encoding, content-length, body)` of one scrape, body undecoded.
async fn scrape(exp: &Exporter, accept: Option<&str>, gzip: bool) -> (u16, String, u64, Vec<u8>) {
    let mut req = client().get(exp.url("/metrics"));
    if let Some(accept) = accept {
        req = req.header("Accept", accept);
    }
    if gzip {
        req = req.header("Accept-Encoding", "gzip");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let encoding = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let length = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("a Content-Length");
    (
        status,
        encoding,
        length,
        resp.bytes().await.unwrap().to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_decode_to_the_plain_answer_with_every_reader() {
    let (curl, promtool) = (tool("curl"), tool("promtool"));
    // 300 servers: five runs of targets, so many segments per family.
    let sim = Sim::start_with(&["--token", TOKEN, "--fleet", "300x4"]);
    let servers: Vec<String> = (1..=300).map(|i| format!("fleet-{i:05}")).collect();
    let yaml = format!(
        "defaults:\n  interval: 1h\n{}",
        zdm_config(
            &sim,
            "",
            &format!("    servers: [{}]\n", servers.join(", "))
        )
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;

    for accept in [None, Some(OPEN_METRICS)] {
        let (status, encoding, length, plain) = scrape(&exp, accept, false).await;
        assert_eq!((status, encoding.as_str()), (200, ""));
        assert_eq!(length, plain.len() as u64);
        assert!(
            plain.len() > 1_000_000,
            "a large exposition: {}",
            plain.len()
        );
        let want = comparable(&plain);

        let (status, encoding, length, gz) = scrape(&exp, accept, true).await;
        assert_eq!((status, encoding.as_str()), (200, "gzip"));
        assert_eq!(length, gz.len() as u64);
        assert!(
            gz.len() * 10 < plain.len(),
            "{} of {}",
            gz.len(),
            plain.len()
        );

        let decoded = gunzip(&gz);
        assert_eq!(comparable(&decoded), want, "flate2");
        let python = run(
            Command::new("python3").args([
                "-c",
                "import gzip, sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
            ]),
            &gz,
        );
        assert_eq!(comparable(&python), want, "Python gzip");
        let mut curl_cmd = Command::new(&curl);
        curl_cmd.args(["-sf", "--compressed", "--max-time", "10"]);
        if let Some(accept) = accept {
            curl_cmd.args(["-H", &format!("Accept: {accept}")]);
        }
        curl_cmd.arg(exp.url("/metrics"));
        let via_curl = run(&mut curl_cmd, b"");
        assert_eq!(comparable(&via_curl), want, "curl --compressed");

        if accept.is_none() {
            // What promtool reads is what curl decoded from the gzip answer.
            let script = format!(
                "set -o pipefail; {} -sf --compressed --max-time 10 {} | {} check metrics",
                curl.display(),
                exp.url("/metrics"),
                promtool.display()
            );
            let out = Command::new("bash").args(["-c", &script]).output().unwrap();
            let said = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "promtool check metrics: {said}");
            // Cardinality hints at most, never a format problem.
            for line in said.lines().filter(|l| !l.trim().is_empty()) {
                assert!(line.contains("cardinality"), "promtool: {line}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_follow_polls_that_change_series() {
    // A 1 s interval: segments are replaced between scrapes, and every answer still decodes
    // whole with a matching CRC (flate2 checks it).
    let sim = Sim::start_with(&["--token", TOKEN, "--fleet", "100x3"]);
    let servers: Vec<String> = (1..=100).map(|i| format!("fleet-{i:05}")).collect();
    let yaml = format!(
        "defaults:\n  interval: 1s\n{}",
        zdm_config(
            &sim,
            "",
            &format!("    servers: [{}]\n", servers.join(", "))
        )
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    let mut texts = std::collections::HashSet::new();
    for _ in 0..6 {
        let (status, encoding, length, gz) = scrape(&exp, None, true).await;
        assert_eq!(
            (status, encoding.as_str(), length),
            (200, "gzip", gz.len() as u64)
        );
        let text = String::from_utf8(gunzip(&gz)).unwrap();
        assert_eq!(
            text.matches("backup_target_up{").count(),
            100,
            "every target in every answer"
        );
        texts.insert(text);
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    // Poll durations and last-success times move with every poll.
    assert!(
        texts.len() >= 3,
        "answers changed between polls: {}",
        texts.len()
    );
}
