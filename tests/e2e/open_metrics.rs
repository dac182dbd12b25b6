//! `/metrics` in OpenMetrics 1.0 by content negotiation, checked by a strict parser (Python
//! `prometheus_client.openmetrics.parser`), against the demo (all three systems).

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::common::*;

const OPEN_METRICS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Parses `body` with the strict OpenMetrics parser; returns "name type" per family.
fn strict_parse(body: &str) -> Vec<String> {
    let script = r#"
import sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is not installed; install it with: pip install prometheus_client")
for family in text_string_to_metric_families(sys.stdin.read()):
    print(family.name, family.type)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the strict OpenMetrics parser refused the exposition: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        body.lines().take(40).collect::<Vec<_>>().join("\n")
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_metrics_is_negotiated_and_valid_under_a_strict_parser() {
    let mut cmd = Command::new(exporter_bin());
    cmd.args([
        "--demo",
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]);
    let exp = Exporter::launch(cmd, tempfile::tempdir().unwrap());
    exp.wait_ready().await;

    for gzip in [false, true] {
        let resp = client()
            .get(exp.url("/metrics"))
            .header("Accept", OPEN_METRICS_ACCEPT)
            .header("Accept-Encoding", if gzip { "gzip" } else { "identity" })
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(resp.headers().contains_key("content-encoding"), gzip);
        let raw = resp.bytes().await.unwrap();
        let body = if gzip {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut text)
                .unwrap();
            text
        } else {
            String::from_utf8(raw.to_vec()).unwrap()
        };
        assert!(body.ends_with("# EOF\n"), "# EOF last");
        let families = strict_parse(&body);
        for want in [
            "backup_job info",
            "backup_job_runs counter",
            "backup_job_status gauge",
            "backup_exporter_build info",
            "backup_upstream_requests counter",
            "backup_parse_errors counter",
            "backup_upstream_request_duration_seconds histogram",
        ] {
            assert!(families.iter().any(|f| f == want), "{want} in {families:?}");
        }
        // Stored series are the same in both formats: the status state set stays a gauge
        // with its `status` label.
        assert!(body.contains("backup_job_status{"));
        assert!(body.contains(",status=\"failed\"}"));
    }

    // Without the Accept header: the text format, unchanged.
    let text = exp.metrics().await;
    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE backup_job_runs_total counter"));
    assert!(text.contains("# TYPE backup_job_info gauge"));
}
