//! The gzip `/metrics` answer (src/exposition/) decoded by the readers scrapers use besides
//! flate2 (tests/gzip_answers.rs): curl `--compressed` (zlib), Python's `gzip`, and curl piped
//! into `promtool check metrics`. Decoded, it is byte for byte the plain answer, but for the
//! `process_*` values that change between any two scrapes.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::gzip::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_decode_to_the_plain_answer_with_every_reader() {
    let (curl, promtool) = (tool("curl"), tool("promtool"));
    // 300 servers: five runs of targets, so many segments per family.
    let (_sim, exp) = fleet(300, 4, "1h").await;

    for accept in [None, Some(OPEN_METRICS)] {
        let (status, _, _, plain) = scrape(&exp, accept, false).await;
        assert_eq!(status, 200);
        let want = comparable(&plain);
        let (status, encoding, _, gz) = scrape(&exp, accept, true).await;
        assert_eq!((status, encoding.as_str()), (200, "gzip"));

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
