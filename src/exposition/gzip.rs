//! Gzip framing around pre-compressed segments (RFC 1952): the member header, the raw
//! deflate segments back to back, an empty final block, and a trailer whose CRC-32 is
//! combined from the segments' CRCs (`crc32_combine`), so a gzip answer copies compressed
//! bytes instead of compressing the exposition again.

use bytes::Bytes;
use flate2::Compress;

use super::answer::Answer;
use super::codec::Deflated;

/// The gzip member header (RFC 1952): deflate, no flags, no time, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// A gzip answer being assembled from deflate segments.
#[derive(Debug)]
pub struct Gzip {
    answer: Answer,
    crc: crc32fast::Hasher,
    /// Length of the plain bytes.
    size: u64,
}

impl Default for Gzip {
    fn default() -> Self {
        Self::new()
    }
}

impl Gzip {
    /// A member with its header written and no segment yet.
    pub fn new() -> Self {
        let mut answer = Answer::default();
        answer.push(Bytes::from_static(&GZIP_HEADER));
        Gzip {
            answer,
            crc: crc32fast::Hasher::new(),
            size: 0,
        }
    }

    /// Appends one segment.
    pub fn push(&mut self, segment: &Deflated) {
        if segment.plain_len() == 0 {
            return;
        }
        self.answer.push(segment.bytes().clone());
        self.size += segment.plain_len();
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            segment.crc(),
            segment.plain_len(),
        ));
    }

    /// Appends `plain`, compressed now.
    pub fn push_plain(&mut self, compressor: &mut Compress, plain: &[u8]) {
        if !plain.is_empty() {
            self.push(&Deflated::of(compressor, plain));
        }
    }

    /// The final block and the trailer (CRC-32 and length modulo 2^32, little-endian).
    pub fn finish(mut self) -> Answer {
        let size = self.size;
        let crc = self.crc.finalize();
        let mut tail = Vec::with_capacity(10);
        tail.extend_from_slice(&FINAL_BLOCK);
        tail.extend_from_slice(&crc.to_le_bytes());
        // ISIZE is the length modulo 2^32 by definition (RFC 1952).
        tail.extend_from_slice(&((size & 0xffff_ffff) as u32).to_le_bytes());
        self.answer.push(Bytes::from(tail));
        self.answer
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::exposition::runs::{Runs, ALL_FAMILIES};
    use crate::exposition::test_support::{answers, chunks, gunzip, model, target};
    use crate::metrics::Format;
    use crate::model::TargetId;

    #[test]
    fn gzip_answer_is_the_plain_answer_compressed() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..150).map(target).collect();
        runs.layout(order.iter());
        let mut held = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            let c = chunks(i as u64, 0xffff);
            held.insert(t.clone(), c.clone());
            runs.update(t, c, ALL_FAMILIES);
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let (plain, gz) = answers(&mut runs, format, b"own_metric 1\n");
            let mut want = model(format, &order, &held);
            want.extend_from_slice(b"own_metric 1\n");
            assert_eq!(plain, want);
            assert_eq!(gunzip(&gz), want);
            assert!(gz.len() * 5 < want.len(), "{} of {}", gz.len(), want.len());
        }
    }
}
