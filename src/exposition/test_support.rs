//! Helpers the unit tests of the exposition's files share: targets, chunks, the answer a
//! layout must give, and gzip decoding.

use std::collections::HashMap;
use std::io::Read as _;

use bytes::Bytes;

use super::answer::Answer;
use super::codec::compressor;
use super::gzip::Gzip;
use super::runs::{Chunks, Runs};
use crate::metrics::{Family, Format};
use crate::model::TargetId;
use crate::systems::zdm;

/// A piece size as the HTTP server asks for (its write buffer).
pub const PIECE: usize = 64 * 1024;

pub fn target(i: usize) -> TargetId {
    TargetId {
        system: zdm::SYSTEM,
        upstream: "u".into(),
        kind: zdm::SERVER,
        target: format!("t{i:04}").into(),
    }
}

pub fn chunks(seed: u64, families: u32) -> Chunks {
    Family::ALL.map(|f| {
        if families & (1 << f as usize) == 0 {
            return Bytes::new();
        }
        // Lines that compress but differ per seed and family.
        let lines: String = (0..(seed % 7 + 1))
            .map(|i| format!("{}{{seed=\"{seed}\",i=\"{i}\"}} {}\n", f.name(), seed ^ i))
            .collect();
        Bytes::from(lines)
    })
}

/// What the answer must be: every family's header, then every target's chunk of it in
/// layout order, for families some target has.
pub fn model(format: Format, order: &[TargetId], held: &HashMap<TargetId, Chunks>) -> Vec<u8> {
    let mut out = Vec::new();
    for family in Family::ALL {
        let chunks: Vec<&Bytes> = order
            .iter()
            .filter_map(|t| held.get(t))
            .map(|c| &c[family as usize])
            .filter(|c| !c.is_empty())
            .collect();
        if chunks.is_empty() {
            continue;
        }
        out.extend_from_slice(family.header(format).as_bytes());
        for c in chunks {
            out.extend_from_slice(c);
        }
    }
    out
}

/// The whole answer, checked against its announced length.
pub fn concat(answer: Answer) -> Vec<u8> {
    let len = answer.len;
    let bytes = answer.to_vec();
    assert_eq!(bytes.len() as u64, len);
    bytes
}

pub fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("a valid gzip member");
    out
}

/// The plain and the gzip answer of `runs` with `tail` after the families.
pub fn answers(runs: &mut Runs, format: Format, tail: &[u8]) -> (Vec<u8>, Vec<u8>) {
    runs.refresh();
    let mut plain = Answer::default();
    runs.plain(format, &mut plain);
    let mut plain = concat(plain);
    plain.extend_from_slice(tail);
    let mut c = compressor();
    let mut gzip = Gzip::new();
    runs.deflated(format, &mut c, &mut gzip);
    gzip.push_plain(&mut c, tail);
    (plain, concat(gzip.finish()))
}
