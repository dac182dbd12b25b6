//! The ready job and target families, shared: the store writes what it rendered
//! ([`Packed::write`]), scrapes read the answers ([`Packed::plain`], [`Packed::deflated`]),
//! and the background packer compresses what changed ([`Packed::pack_due`]). The runs sit
//! behind one lock, held for bookkeeping and copying references: the packer compresses
//! without it; only a gzip scrape that finds segments the packer has not reached yet, and
//! a relayout (run by run), compress under it. kube-state-metrics' metrics store and its
//! writer are the model: the store writes, the handler only reads.

use std::sync::{Mutex, MutexGuard};

use flate2::Compress;
use tokio::time::Instant;

use super::answer::Answer;
use super::codec::compressor;
use super::gzip::Gzip;
use super::runs::{Chunks, Runs};
use crate::metrics::Format;
use crate::model::TargetId;

/// Plain bytes [`Packed::pack_due`] compresses between two looks at what polls changed (a
/// few milliseconds of compression): what polls hand over meanwhile is held twice only
/// briefly.
const PACK_BATCH: usize = 1 << 20;

/// One target's newly rendered series, as the store hands them over.
#[derive(Debug)]
pub struct Update {
    /// The target the series are of.
    pub target: TargetId,
    /// The target's series of every family; only those in `families` are taken.
    pub chunks: Chunks,
    /// Bit `f` set: family `f` was rendered (the others keep their bytes).
    pub families: u32,
}

/// The runs and a compressor for what a gzip scrape finds still uncompressed.
struct Packing {
    runs: Runs,
    compressor: Option<Compress>,
}

/// The job and target families of every target, ready for scrapes.
pub struct Packed {
    packing: Mutex<Packing>,
    /// Woken when a write changed series that are not compressed yet.
    changed: tokio::sync::Notify,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            packing: Mutex::new(Packing {
                runs: Runs::new(),
                compressor: None,
            }),
            changed: tokio::sync::Notify::new(),
        }
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packed").finish_non_exhaustive()
    }
}

impl Packed {
    /// Nothing written yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Packing> {
        // A panic while holding the lock leaves at worst a run to rebuild; serving the
        // rest beats losing every series.
        self.packing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over what the store rendered, laying the targets out in `order` first when
    /// the set of targets changed (`None`: the layout stays). Wakes the packer when
    /// anything changed.
    pub fn write(&self, order: Option<Vec<&TargetId>>, updates: impl IntoIterator<Item = Update>) {
        let mut packing = self.lock();
        let mut changed = order.is_some();
        if let Some(order) = order {
            packing.runs.layout(order);
        }
        for Update {
            target,
            chunks,
            families,
        } in updates
        {
            changed |= packing.runs.update(&target, chunks, families);
        }
        drop(packing);
        if changed {
            self.changed.notify_one();
        }
    }

    /// The job and target families in `format`, plain: the ready segments, inflated as
    /// the answer is written.
    pub fn plain(&self, format: Format, out: &mut Answer) {
        self.lock().runs.plain(format, out);
    }

    /// The job and target families in `format` as deflate segments, then `tail` (the
    /// exporter's own metrics) compressed now. What the background packer has not yet
    /// compressed is compressed here.
    pub fn deflated(&self, format: Format, out: &mut Gzip, tail: &[&[u8]]) {
        let mut packing = self.lock();
        let packing = &mut *packing;
        let compressor = packing.compressor.get_or_insert_with(compressor);
        packing.runs.deflated(format, compressor, out);
        for plain in tail {
            out.push_plain(compressor, plain);
        }
    }

    /// The background packer's step: packs the runs that are due (every target of the run
    /// has reported since its last pack, or its changes waited [`super::runs::MAX_WAIT`]),
    /// compressing without holding the lock, in batches of about `PACK_BATCH` (1 MiB).
    /// Returns how many segments it compressed and whether runs still have work.
    pub fn pack_due(&self, compressor: &mut Compress) -> (usize, bool) {
        let mut total = 0;
        loop {
            let stale = self.lock().runs.due(Instant::now(), PACK_BATCH);
            if stale.is_empty() {
                return (total, self.lock().runs.behind());
            }
            let done: Vec<_> = stale.iter().map(|s| s.compress(compressor)).collect();
            let mut packing = self.lock();
            for (s, deflated) in stale.iter().zip(done) {
                packing.runs.install(s, deflated);
            }
            total += stale.len();
        }
    }

    /// Woken when writes changed series that [`Packed::pack_due`] has not compressed yet.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}
