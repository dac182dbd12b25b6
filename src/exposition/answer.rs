//! An answer as ready parts (bytes to write as they are, segments to inflate as they are
//! written) with its exact length, cut into pieces of a size the caller gives (the HTTP
//! server's write buffer).

use bytes::Bytes;
use flate2::Decompress;

use super::codec::{decompressor, Deflated, Inflating};

/// One part of an answer: bytes ready to write, or a segment to inflate as it is written.
#[derive(Debug)]
pub enum Part {
    /// Written as they are.
    Ready(Bytes),
    /// Inflated as it is written.
    Deflated(Deflated),
}

/// A whole answer in parts, and its length.
#[derive(Debug, Default)]
pub struct Answer {
    /// The parts in the order they are written.
    pub parts: Vec<Part>,
    /// The length of the answer as written (segments counted inflated).
    pub len: u64,
}

/// Ready parts smaller than this are copied together into pieces of about the piece size: a
/// gzip answer is mostly segments of a few kilobytes, and a write per segment would cost a
/// system call per few kilobytes.
const SMALL: usize = 16 * 1024;

impl Answer {
    /// Appends ready bytes (nothing if empty).
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len() as u64;
            self.parts.push(Part::Ready(bytes));
        }
    }

    /// Appends a segment, inflated when the answer is written (nothing if empty).
    pub fn push_deflated(&mut self, segment: &Deflated) {
        if segment.plain_len() > 0 {
            self.len += segment.plain_len();
            self.parts.push(Part::Deflated(segment.clone()));
        }
    }

    /// The answer's bytes in pieces of at most `max` bytes (a write buffer's size, tens of
    /// kilobytes: a piece gathering small parts is allocated at that size): small parts
    /// gathered, large ones sliced, segments inflated as the pieces are taken.
    pub fn pieces(self, max: usize) -> Pieces {
        Pieces {
            parts: self.parts.into_iter().peekable(),
            rest: None,
            inflating: None,
            decompressor: None,
            max: max.max(1),
        }
    }

    /// The whole answer in one buffer.
    pub fn to_vec(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        let mut inflater: Option<Decompress> = None;
        for part in self.parts {
            match part {
                Part::Ready(bytes) => out.extend_from_slice(&bytes),
                Part::Deflated(segment) => {
                    let d = inflater.get_or_insert_with(decompressor);
                    let mut inflating = Inflating::new(segment);
                    while let Some(piece) = inflating.next_piece(d, usize::MAX) {
                        out.extend_from_slice(&piece);
                    }
                }
            }
        }
        out
    }
}

/// An answer's bytes, piece by piece.
pub struct Pieces {
    parts: std::iter::Peekable<std::vec::IntoIter<Part>>,
    /// What is left of a ready part larger than a piece.
    rest: Option<Bytes>,
    inflating: Option<Inflating>,
    decompressor: Option<Decompress>,
    /// The largest piece.
    max: usize,
}

impl Pieces {
    /// `first` and the small ready parts after it, in one buffer of at most a piece.
    fn gather(&mut self, first: Bytes) -> Bytes {
        let max = self.max;
        let mut next_small = |len: usize| {
            self.parts
                .next_if(|p| matches!(p, Part::Ready(b) if b.len() < SMALL && len + b.len() <= max))
        };
        let Some(Part::Ready(second)) = next_small(first.len()) else {
            return first;
        };
        let mut out = Vec::with_capacity(max);
        out.extend_from_slice(&first);
        out.extend_from_slice(&second);
        while let Some(Part::Ready(more)) = next_small(out.len()) {
            out.extend_from_slice(&more);
        }
        Bytes::from(out)
    }
}

impl Iterator for Pieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(inflating) = &mut self.inflating {
                let d = self.decompressor.get_or_insert_with(decompressor);
                match inflating.next_piece(d, self.max) {
                    Some(piece) => return Some(piece),
                    None => self.inflating = None,
                }
            }
            if let Some(mut rest) = self.rest.take() {
                if rest.len() > self.max {
                    let piece = rest.split_to(self.max);
                    self.rest = Some(rest);
                    return Some(piece);
                }
                return Some(rest);
            }
            match self.parts.next()? {
                Part::Ready(bytes) if bytes.len() < SMALL => return Some(self.gather(bytes)),
                Part::Ready(bytes) => self.rest = Some(bytes),
                Part::Deflated(segment) => self.inflating = Some(Inflating::new(segment)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::exposition::codec::compressor;
    use crate::exposition::gzip::Gzip;
    use crate::exposition::runs::{Runs, ALL_FAMILIES};
    use crate::exposition::test_support::{chunks, target, PIECE};
    use crate::metrics::Format;
    use crate::model::TargetId;

    #[test]
    fn small_segments_go_out_gathered_in_pieces_no_larger_than_asked() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..150).map(target).collect();
        runs.layout(order.iter());
        for (i, t) in order.iter().enumerate() {
            runs.update(t, chunks(i as u64, 0xffff), ALL_FAMILIES);
        }
        // Fewer pieces than parts, none above the piece size.
        let mut gzip = Gzip::new();
        runs.deflated(Format::Text, &mut compressor(), &mut gzip);
        let answer = gzip.finish();
        let parts = answer.parts.len();
        let pieces: Vec<Bytes> = answer.pieces(PIECE).collect();
        assert!(
            pieces.len() * 4 < parts,
            "{} pieces of {parts} parts",
            pieces.len()
        );
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
    }

    #[test]
    fn a_plain_answer_inflates_large_segments_in_pieces() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..2).map(target).collect();
        runs.layout(order.iter());
        let big: String = (0..20_000)
            .map(|i| {
                format!(
                    "backup_job_status{{i=\"{i}\",x=\"{}\"}} 1\n",
                    i * 7919 % 10007
                )
            })
            .collect();
        let mut ch = chunks(0, 0);
        ch[0] = Bytes::from(big.clone());
        runs.update(&order[0], ch, ALL_FAMILIES);
        runs.update(&order[1], chunks(3, 0b11), ALL_FAMILIES);
        runs.refresh();
        // Not compressed yet: the plain segment goes out sliced.
        let mut ready = Answer::default();
        runs.plain(Format::Text, &mut ready);
        assert!(ready.parts.iter().all(|p| matches!(p, Part::Ready(_))));
        let pieces: Vec<Bytes> = ready.pieces(PIECE).collect();
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        let sliced = pieces.concat();
        runs.deflate_stale(&mut compressor());
        assert!(!runs.behind());
        let mut answer = Answer::default();
        runs.plain(Format::Text, &mut answer);
        assert!(answer.parts.iter().any(|p| matches!(p, Part::Deflated(_))));
        let len = answer.len;
        let pieces: Vec<Bytes> = answer.pieces(PIECE).collect();
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        let text: Vec<u8> = pieces.concat();
        assert_eq!(text.len() as u64, len);
        assert!(big.len() > 2 * PIECE);
        assert_eq!(text, sliced);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(&big), "the big chunk, whole and in order");
    }
}
