//! The background packer: compresses what polls changed, run by run, off the scrape path.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::codec::compressor;
use super::packed::Packed;

/// How often the packer looks for runs due while some have work waiting.
const PACK_TICK: Duration = Duration::from_millis(100);

/// Compresses what polls changed, run by run, once the run's polls are in (see
/// [`Packed::pack_due`]); checks every `PACK_TICK` (100 ms) while runs have work waiting, and
/// sleeps until the next change otherwise. Returns when `cancel` fires.
pub async fn run(packed: Arc<Packed>, cancel: CancellationToken) {
    let mut spare = Some(compressor());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = packed.changed() => {}
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(PACK_TICK) => {}
            }
            let mut c = spare.take().unwrap_or_else(compressor);
            let p = packed.clone();
            // Compression is CPU work: off the async workers.
            let waiting = match tokio::task::spawn_blocking(move || {
                let (n, waiting) = p.pack_due(&mut c);
                (n, waiting, c)
            })
            .await
            {
                Ok((n, waiting, c)) => {
                    spare = Some(c);
                    if n > 0 {
                        tracing::trace!(segments = n, "segments compressed");
                    }
                    waiting
                }
                Err(_) => true,
            };
            if !waiting {
                break;
            }
        }
    }
}
