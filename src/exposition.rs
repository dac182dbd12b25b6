//! The read-only handle the HTTP server is given: the store's ready bytes and the exporter's
//! own telemetry, nothing that reaches a poller or an upstream (kube-state-metrics hands its
//! server a `MetricsHandler` the same way).

use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::Format;
use crate::packed::{Answer, Gzip};
use crate::shard::Shard;
use crate::state::Store;
use crate::telemetry::Telemetry;

const EOF: &[u8] = b"# EOF\n";

#[derive(Clone)]
pub struct Exposition {
    store: Arc<Store>,
    telemetry: Telemetry,
    shard: Shard,
}

impl Exposition {
    pub fn new(store: Arc<Store>, telemetry: Telemetry, shard: Shard) -> Self {
        Exposition {
            store,
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
        self.store.plain(format, &mut answer);
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
        let mut gzip = Gzip::new();
        let eof: &[u8] = if format == Format::OpenMetrics {
            EOF
        } else {
            b""
        };
        self.store.deflated(format, &mut gzip, &[&own, eof]);
        gzip.finish()
    }

    /// Whether the first poll of every target has finished.
    pub fn ready(&self) -> bool {
        self.store.ready()
    }

    /// The store, read-only, for the landing page's tables.
    pub fn store(&self) -> &Store {
        &self.store
    }
}
