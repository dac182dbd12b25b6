//! One `/metrics` scrape as it came (status, headers, body not decoded), gunzipped with
//! flate2, and compared without the `process_*` values that change between any two scrapes.
//! Used by tests/gzip_answers.rs and tests/e2e/gzip_answers.rs.

use std::io::Read as _;

use super::{client, zdm_config, Exporter, Sim, TOKEN};

/// The OpenMetrics content type a scraper asks for.
pub const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0";

/// The simulator's fleet of `servers` servers with `jobs` jobs each, polled every `interval`
/// by an exporter (ready when returned): many runs of targets, so many segments per family.
pub async fn fleet(servers: usize, jobs: usize, interval: &str) -> (Sim, Exporter) {
    let sim = Sim::start_with(&["--token", TOKEN, "--fleet", &format!("{servers}x{jobs}")]);
    let names: Vec<String> = (1..=servers).map(|i| format!("fleet-{i:05}")).collect();
    let yaml = format!(
        "defaults:\n  interval: {interval}\n{}",
        zdm_config(&sim, "", &format!("    servers: [{}]\n", names.join(", ")))
    );
    let exp = Exporter::start(&yaml);
    exp.wait_ready().await;
    (sim, exp)
}

/// The exposition with the values of `process_*` samples blanked out.
pub fn comparable(text: &[u8]) -> String {
    let text = String::from_utf8(text.to_vec()).expect("UTF-8 exposition");
    text.lines()
        .map(|line| match line.strip_prefix("process_") {
            Some(_) => line.rsplit_once(' ').map_or(line, |(series, _)| series),
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The gzip body decoded by flate2 (zlib-rs), its CRC checked.
pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("flate2 decodes the answer");
    out
}

/// `(status, content-encoding, content-length, body)` of one scrape, body undecoded.
pub async fn scrape(
    exp: &Exporter,
    accept: Option<&str>,
    gzip: bool,
) -> (u16, String, u64, Vec<u8>) {
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
