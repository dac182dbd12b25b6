//! The exporter's own metrics: upstream requests, parse errors, build and reload info, process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::inventory::InventoryBook;
use crate::metrics::Format;
use crate::model::ParseField;
use crate::outcome::Outcome;
use crate::shard::Shard;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("BACKUP_EXPORTER_REVISION");
pub const BRANCH: &str = env!("BACKUP_EXPORTER_BRANCH");
/// `YYYYMMDD-HH:MM:SS` UTC (or `SOURCE_DATE_EPOCH`), Prometheus' layout.
pub const BUILD_DATE: &str = env!("BACKUP_EXPORTER_BUILD_DATE");
pub const RUSTC_VERSION: &str = env!("BACKUP_EXPORTER_RUSTC_VERSION");

/// `--version`, as Prometheus' tools print it.
pub fn version_text() -> String {
    format!(
        "backup-exporter, version {VERSION} (branch: {BRANCH}, revision: {REVISION})\n  build date:       {BUILD_DATE}\n  rust version:     {RUSTC_VERSION}\n  platform:         {}/{}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Request latency buckets: upstream monitoring APIs answer in milliseconds to seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct Telemetry {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    parse_errors: IntCounterVec,
    reload_successful: IntGauge,
    reload_success_time: Gauge,
    shard_info: IntGaugeVec,
    upstream_info: IntGaugeVec,
    /// The `api_version` each upstream's `backup_upstream_info` carries, so a new one
    /// replaces it and a removed upstream's is found.
    upstream_versions: Arc<Mutex<HashMap<(String, String), String>>>,
    /// What discovery listed besides jobs, rendered per upstream.
    inventory: InventoryBook,
}

impl Telemetry {
    /// The exporter's own metric families, registered once. Their names, help texts and
    /// labels are constants of this file, so an error here is a programming error that the
    /// first test run shows, not something a config or an upstream can cause.
    #[allow(
        clippy::expect_used,
        reason = "static metric definitions: valid or the first test fails"
    )]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "backup_upstream_requests_total",
                "Requests sent to upstream APIs, by outcome.",
            ),
            &["system", "upstream", "outcome"],
        )
        .expect("static metric definition");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "backup_upstream_request_duration_seconds",
                "Duration of requests to upstream APIs, body included.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["system", "upstream"],
        )
        .expect("static metric definition");
        let parse_errors = IntCounterVec::new(
            Opts::new(
                "backup_parse_errors_total",
                "Upstream fields that could not be parsed; the rest of the job is still exported.",
            ),
            &["system", "upstream", "field"],
        )
        .expect("static metric definition");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "backup_exporter_build_info",
                "Version and revision of the running exporter; the value is always 1.",
            ),
            &["version", "revision"],
        )
        .expect("static metric definition");
        build_info.with_label_values(&[VERSION, REVISION]).set(1);
        let reload_successful = IntGauge::new(
            "backup_exporter_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
        )
        .expect("static metric definition");
        let reload_success_time = Gauge::new(
            "backup_exporter_config_last_reload_success_time_seconds",
            "Time of the last successful configuration load as a Unix timestamp.",
        )
        .expect("static metric definition");

        let shard_info = IntGaugeVec::new(
            Opts::new(
                "backup_exporter_shard_info",
                "This replica's shard and the number of shards; the value is always 1.",
            ),
            &["shard", "total_shards"],
        )
        .expect("static metric definition");

        let upstream_info = IntGaugeVec::new(
            Opts::new(
                "backup_upstream_info",
                "The API version the exporter settled for the upstream; the value is always 1.",
            ),
            &["system", "upstream", "api_version"],
        )
        .expect("static metric definition");

        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(parse_errors.clone()),
            Box::new(build_info),
            Box::new(reload_successful.clone()),
            Box::new(reload_success_time.clone()),
            Box::new(shard_info.clone()),
            Box::new(upstream_info.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric names");

        Telemetry {
            registry,
            requests,
            request_duration,
            parse_errors,
            reload_successful,
            reload_success_time,
            shard_info,
            upstream_info,
            upstream_versions: Arc::default(),
            inventory: InventoryBook::default(),
        }
    }

    /// `backup_upstream_info{system, upstream, api_version} 1` for the version a source
    /// settled (replacing the one it had); `None` removes the series (not settled).
    pub fn upstream_info(&self, system: &str, upstream: &str, api_version: Option<&str>) {
        let mut versions = self
            .upstream_versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (system.to_owned(), upstream.to_owned());
        if let Some(old) = versions.remove(&key) {
            let _ = self
                .upstream_info
                .remove_label_values(&[system, upstream, &old]);
        }
        if let Some(version) = api_version {
            self.upstream_info
                .with_label_values(&[system, upstream, version])
                .set(1);
            versions.insert(key, version.to_owned());
        }
    }

    /// `backup_exporter_shard_info{shard, total_shards} 1` (shard 0 of 1 without sharding).
    pub fn set_shard(&self, shard: Shard) {
        self.shard_info.reset();
        self.shard_info
            .with_label_values(&[&shard.index.to_string(), &shard.total.to_string()])
            .set(1);
    }

    /// Creates the per-upstream series at 0 so `rate()` works from the first scrape.
    pub fn register_upstream(&self, system: &str, upstream: &str) {
        for outcome in Outcome::ALL {
            self.requests
                .with_label_values(&[system, upstream, outcome.as_str()]);
        }
        self.request_duration.with_label_values(&[system, upstream]);
        // Every field's series exists from the start, so a dashboard shows 0, not "no data",
        // and `increase()` sees the first error.
        for field in ParseField::ALL {
            self.parse_errors
                .with_label_values(&[system, upstream, field.as_str()]);
        }
    }

    /// Forgets the series of upstreams no longer configured.
    pub fn forget_upstream(&self, system: &str, upstream: &str) {
        for outcome in Outcome::ALL {
            let _ = self
                .requests
                .remove_label_values(&[system, upstream, outcome.as_str()]);
        }
        let _ = self
            .request_duration
            .remove_label_values(&[system, upstream]);
        for field in ParseField::ALL {
            let _ = self
                .parse_errors
                .remove_label_values(&[system, upstream, field.as_str()]);
        }
        self.upstream_info(system, upstream, None);
        self.inventory.forget(system, upstream);
    }

    /// The inventory series discovery writes (`backup_server_protected`, repositories,
    /// licences, `backup_discovery_targets`).
    pub fn inventory(&self) -> &InventoryBook {
        &self.inventory
    }

    /// Counts an outcome that ended a listing without a request of its own failing (a
    /// listing past its bounds: `too_large`), or a request refused before it was sent (a
    /// `nextLink` to another origin: `upstream_error`).
    pub fn outcome(&self, system: &str, upstream: &str, outcome: Outcome) {
        self.requests
            .with_label_values(&[system, upstream, outcome.as_str()])
            .inc();
    }

    pub fn request(&self, system: &str, upstream: &str, outcome: Outcome, seconds: f64) {
        self.requests
            .with_label_values(&[system, upstream, outcome.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[system, upstream])
            .observe(seconds);
    }

    pub fn parse_error(&self, system: &str, upstream: &str, field: ParseField) {
        self.parse_errors
            .with_label_values(&[system, upstream, field.as_str()])
            .inc();
    }

    pub fn parse_error_count(&self, system: &str, upstream: &str, field: &str) -> u64 {
        self.parse_errors
            .with_label_values(&[system, upstream, ParseField::of(field).as_str()])
            .get()
    }

    pub fn config_loaded(&self, ok: bool, now_unix: f64) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.reload_success_time.set(now_unix);
        }
    }

    /// The self-telemetry families in text format.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        // Encoding only fails on an invalid family, which the static definitions rule out.
        if let Err(e) = TextEncoder::new().encode(&families, &mut buf) {
            tracing::error!(error = %e, "encoding self-telemetry failed");
        }
        let mut out = match format {
            Format::Text => buf,
            Format::OpenMetrics => {
                open_metrics_headers(&String::from_utf8_lossy(&buf)).into_bytes()
            }
        };
        self.inventory.encode(format, &mut out);
        out
    }
}

/// The text encoding of the self-telemetry turned into OpenMetrics: samples stay as they
/// are; a counter's family loses its `_total` in `# HELP`/`# TYPE`, and the build and
/// upstream info gauges become `info` families. (A hundred lines per scrape: the job series, which are most of
/// the exposition, are never reformatted.)
/// The gauges OpenMetrics types as `info` (family name without `_info`).
const INFO_GAUGES: [&str; 2] = ["backup_exporter_build_info", "backup_upstream_info"];

fn open_metrics_headers(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut renamed: Option<(String, String)> = None;
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            let kind = lines
                .get(i + 1)
                .and_then(|l| l.strip_prefix("# TYPE "))
                .and_then(|l| l.split_once(' '))
                .filter(|(n, _)| *n == name)
                .map_or("", |(_, k)| k);
            renamed = match (kind, name) {
                ("counter", n) if n.ends_with("_total") => {
                    Some((n.to_string(), n.trim_end_matches("_total").to_string()))
                }
                ("gauge", n) if INFO_GAUGES.contains(&n) => {
                    Some((n.to_string(), n.trim_end_matches("_info").to_string()))
                }
                _ => None,
            };
        }
        match (&renamed, line.strip_prefix('#')) {
            (Some((from, to)), Some(_)) if line.starts_with(&format!("# HELP {from} ")) => {
                out.push_str(&line.replacen(from.as_str(), to, 1));
            }
            (Some((from, to)), Some(_)) if line.starts_with(&format!("# TYPE {from} ")) => {
                let kind = if INFO_GAUGES.contains(&from.as_str()) {
                    "info"
                } else {
                    "counter"
                };
                out.push_str(&format!("# TYPE {to} {kind}"));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the parse-error series of an upstream removed by a reload stayed forever.
    #[test]
    fn forgetting_an_upstream_removes_its_parse_error_series() {
        let t = Telemetry::new();
        t.register_upstream("zdm", "old");
        t.register_upstream("zdm", "kept");
        t.parse_error("zdm", "old", ParseField::Percent);
        t.parse_error("zdm", "old", ParseField::Status);
        t.parse_error("zdm", "kept", ParseField::Percent);
        t.forget_upstream("zdm", "old");
        let text = String::from_utf8(t.encode(Format::Text)).unwrap();
        assert!(!text.contains("upstream=\"old\""), "{text}");
        assert!(text.contains(
            "backup_parse_errors_total{field=\"percent\",system=\"zdm\",upstream=\"kept\"} 1"
        ));
        for field in ParseField::ALL {
            let series = format!(
                "backup_parse_errors_total{{field=\"{}\",system=\"zdm\",upstream=\"kept\"}}",
                field.as_str()
            );
            assert!(text.contains(&series), "{series} exists from the start");
        }
    }

    /// One `backup_upstream_info` per upstream: a new version replaces the old, `None`
    /// and forgetting the upstream remove it; OpenMetrics types it `info`.
    #[test]
    fn upstream_info_holds_one_version_per_upstream() {
        let t = Telemetry::new();
        t.register_upstream("zdm", "a");
        t.register_upstream("zdm", "b");
        t.upstream_info("zdm", "a", Some("1.3"));
        t.upstream_info("zdm", "a", Some("2.0"));
        t.upstream_info("zdm", "b", Some("0.2"));
        let text = String::from_utf8(t.encode(Format::Text)).unwrap();
        assert!(text
            .contains("backup_upstream_info{api_version=\"2.0\",system=\"zdm\",upstream=\"a\"} 1"));
        assert!(!text.contains("api_version=\"1.3\""), "{text}");
        let open = String::from_utf8(t.encode(Format::OpenMetrics)).unwrap();
        assert!(open.contains("# TYPE backup_upstream info\n"), "{open}");
        t.upstream_info("zdm", "a", None);
        t.forget_upstream("zdm", "b");
        let text = String::from_utf8(t.encode(Format::Text)).unwrap();
        assert!(!text.contains("backup_upstream_info{"), "{text}");
    }
}
