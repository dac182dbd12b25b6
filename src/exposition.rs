//! The read-only handle the HTTP server is given: the store's ready bytes and the exporter's
//! own telemetry, nothing that reaches a poller or an upstream (kube-state-metrics hands its
//! server a `MetricsHandler` the same way).

use std::sync::Arc;

use bytes::Bytes;

use crate::metrics::Format;
use crate::shard::Shard;
use crate::state::Store;
use crate::telemetry::Telemetry;

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
    /// (and `# EOF` for OpenMetrics).
    pub fn chunks(&self, format: Format) -> impl Iterator<Item = Bytes> + Send {
        let own = Bytes::from(self.telemetry.encode(format));
        let end = (format == Format::OpenMetrics).then(|| Bytes::from_static(b"# EOF\n"));
        self.store
            .snapshot()
            .chunks(format)
            .chain(std::iter::once(own))
            .chain(end)
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
