//! The ready bytes of `/metrics` and the read-only handle the HTTP server is given.
//!
//! The store renders each target's series when its poll changes them and writes them here
//! ([`Packed`]); they are kept in runs of targets per family (`runs.rs`) as raw deflate
//! segments (`codec.rs`), compressed by a background task (`packer.rs`), and answered as
//! ready parts (`answer.rs`), plain or in a gzip frame (`gzip.rs`). The server gets an
//! [`Exposition`]: the answers, readiness, the landing page's views and the shard, nothing
//! that reaches a poller, a source or the store's write side (kube-state-metrics hands its
//! server a `MetricsHandler` the same way).

pub mod answer;
pub mod codec;
pub mod gzip;
pub mod packed;
pub mod packer;
pub mod runs;
pub mod views;

#[cfg(test)]
mod test_support;

use std::sync::Arc;

use bytes::Bytes;

use crate::inventory::Summary;
use crate::metrics::Format;
use crate::shard::Shard;
use crate::telemetry::Telemetry;

pub use answer::{Answer, Pieces};
pub use packed::{Packed, Update};
pub use runs::{Chunks, ALL_FAMILIES};
pub use views::{JobView, TargetView, Views};

const EOF: &[u8] = b"# EOF\n";

/// The read-only handle for the HTTP server: the ready answers, readiness and the landing
/// page's views.
#[derive(Clone)]
pub struct Exposition {
    packed: Arc<Packed>,
    views: Arc<dyn Views>,
    telemetry: Telemetry,
    shard: Shard,
}

impl Exposition {
    /// A handle on `packed` (the job and target families), `views` (the store's read
    /// side) and `telemetry` (the exporter's own metrics) for the replica of `shard`.
    pub fn new(
        packed: Arc<Packed>,
        views: Arc<dyn Views>,
        telemetry: Telemetry,
        shard: Shard,
    ) -> Self {
        Exposition {
            packed,
            views,
            telemetry,
            shard,
        }
    }

    /// The shard this replica polls.
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// The whole exposition in `format`: job and target families, then the exporter's own
    /// (and `# EOF` for OpenMetrics), as references to ready bytes.
    pub fn plain(&self, format: Format) -> Answer {
        let own = Bytes::from(self.telemetry.encode(format));
        let mut answer = Answer::default();
        self.packed.plain(format, &mut answer);
        answer.push(own);
        if format == Format::OpenMetrics {
            answer.push(Bytes::from_static(EOF));
        }
        answer
    }

    /// [`Exposition::plain`] as one gzip member assembled from pre-compressed segments;
    /// only the exporter's own metrics are compressed now.
    pub fn gzip(&self, format: Format) -> Answer {
        let own = self.telemetry.encode(format);
        let mut gzip = gzip::Gzip::new();
        let eof: &[u8] = if format == Format::OpenMetrics {
            EOF
        } else {
            b""
        };
        self.packed.deflated(format, &mut gzip, &[&own, eof]);
        gzip.finish()
    }

    /// Whether the first poll of every target has finished.
    pub fn ready(&self) -> bool {
        self.views.ready()
    }

    /// Every job that has series, sorted by identity, for the landing page.
    pub fn jobs(&self) -> Vec<JobView> {
        self.views.jobs()
    }

    /// Every target, for the landing page.
    pub fn targets(&self) -> Vec<TargetView> {
        self.views.targets()
    }

    /// What every discovering upstream's last listing says (servers without a backup job,
    /// disconnected agents, repositories, licences), for the landing page.
    pub fn inventory(&self) -> Vec<Arc<Summary>> {
        self.telemetry.inventory().summaries()
    }
}
