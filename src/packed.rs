//! The job and target families kept ready for scrapes, plain and pre-compressed.
//!
//! Targets are laid out in store order in runs of [`TARGETS_PER_RUN`]. Each run keeps, per
//! family, one *segment*: the plain series of its targets back to back, and the same bytes
//! as a raw deflate stream compressed on its own and ended by a full flush (so it ends on a
//! byte boundary with no final block). Raw deflate segments concatenate: a gzip answer is a
//! header, every family's header segment and run segments, the telemetry compressed at
//! scrape time, an empty final block, and a trailer whose CRC-32 is combined from the
//! segments' CRCs (`crc32_combine`), so a scrape copies bytes and compresses only the few
//! kilobytes of the exporter's own metrics.
//!
//! A target's poll hands its new chunks to [`Packed::update`]; only the families whose bytes
//! changed mark their run's segment dirty. [`Packed::refresh`] rebuilds dirty plain segments
//! (a copy), and compression happens off the scrape path ([`Packed::stale`] /
//! [`Packed::install`], run by a background task) or, for what is still stale when a gzip
//! scrape arrives, in the scrape ([`Packed::deflate_stale`]).
//!
//! Runs of targets, not one segment per target: a deflate stream compresses series lines
//! against the similar lines before them, and a segment sees only its own. Measured on the
//! 2,000 x 5 fleet exposition (`benches/gzip-segments.py`): one segment per (family, target)
//! is 3.8 MiB, runs of 64 targets 0.92 MiB, one stream of the whole text 0.86 MiB.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

use crate::metrics::{Family, Format, FAMILY_COUNT};
use crate::model::TargetId;

/// Every family, as an `update` mask.
pub const ALL_FAMILIES: u32 = (1 << FAMILY_COUNT) - 1;

/// How long the background packer lets a run's changes wait for the rest of its targets.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Targets per run (per segment of each family); at most 64 (`Run::reported` is a u64).
pub const TARGETS_PER_RUN: usize = 64;

/// Compression level of the segments (zlib's default: the ratio of level 9 at a third of its
/// time on exposition text).
const LEVEL: u32 = 6;

/// The gzip member header (RFC 1952): deflate, no flags, no time, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One target's series of every family.
pub type Chunks = [Bytes; FAMILY_COUNT];

/// Bytes as a raw deflate segment, with the CRC-32 and length of the plain bytes.
#[derive(Debug, Clone, Default)]
pub struct Deflated {
    bytes: Bytes,
    crc: u32,
    len: u64,
}

impl Deflated {
    /// Compresses `plain` on its own with `compressor` (reset first).
    pub fn of(compressor: &mut Compress, plain: &[u8]) -> Deflated {
        compressor.reset();
        // Exposition text compresses ten- to thirtyfold; start at a sixteenth and grow.
        let mut out: Vec<u8> = Vec::with_capacity(plain.len() / 16 + 64);
        let mut input = plain;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let before = compressor.total_in();
            // Compressing into a Vec's spare capacity fails only on a corrupt stream state,
            // which a freshly reset compressor does not have.
            if compressor
                .compress_vec(input, &mut out, FlushCompress::Full)
                .is_err()
            {
                break;
            }
            let used = usize::try_from(compressor.total_in() - before).unwrap_or(input.len());
            input = input.get(used..).unwrap_or_default();
            // zlib's rule: the flush is complete once all input is in and the call left
            // output space unused.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Deflated {
            crc: crc32fast::hash(plain),
            len: plain.len() as u64,
            bytes: Bytes::from(out),
        }
    }
}

/// A new compressor for segments (raw deflate, no zlib header).
pub fn compressor() -> Compress {
    Compress::new(Compression::new(LEVEL), false)
}

#[derive(Debug, Default)]
struct Segment {
    plain: Bytes,
    /// Where each slot's chunk ends in `plain`.
    ends: Vec<usize>,
    /// `None` while the compressed form lags `plain`.
    deflated: Option<Deflated>,
    /// Bumped whenever `plain` changes, so a compression of an older `plain` is not installed.
    version: u64,
}

impl Segment {
    fn chunk(&self, slot: usize) -> Bytes {
        let start = match slot.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(slot).copied().unwrap_or(start);
        self.plain.slice(start.min(end)..end)
    }
}

#[derive(Debug)]
struct Run {
    targets: Vec<TargetId>,
    /// New chunks of a slot not yet copied into the segments.
    pending: Vec<Option<Chunks>>,
    segments: [Segment; FAMILY_COUNT],
    /// Bit `f` set: the plain segment of family `f` must be rebuilt from `pending`.
    dirty: u32,
    /// Bit `s` set: slot `s` reported a poll since the background packer last packed the
    /// run (runs hold at most 64 targets).
    reported: u64,
    /// Since when the run has had work for the background packer.
    waiting_since: Option<Instant>,
}

impl Run {
    /// Changed series not yet in the plain segments, or plain segments not yet compressed.
    fn has_work(&self) -> bool {
        self.dirty != 0
            || self
                .segments
                .iter()
                .any(|s| s.deflated.is_none() && !s.plain.is_empty())
    }

    /// Whether the background packer should pack the run now: every target has reported
    /// since its last pack (polls of one run finish close together, so it is packed once per
    /// cycle, not once per poll), or its work has waited [`MAX_WAIT`].
    fn due(&self, now: Instant) -> bool {
        self.has_work()
            && (self.complete()
                || self
                    .waiting_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= MAX_WAIT))
    }

    /// Whether every target has reported since the run's last pack.
    fn complete(&self) -> bool {
        let all = match self.targets.len() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        };
        self.reported & all == all
    }

    /// Rebuilds the plain segments of dirty families (a copy); their compressed forms go
    /// stale.
    fn refresh(&mut self, version: &mut u64) {
        if self.dirty == 0 {
            return;
        }
        for family in Family::ALL {
            let f = family as usize;
            if self.dirty & (1 << f) == 0 {
                continue;
            }
            let len: usize = (0..self.targets.len())
                .map(|s| self.chunk(s, family).len())
                .sum();
            let mut plain = Vec::with_capacity(len);
            let mut ends = Vec::with_capacity(self.targets.len());
            for s in 0..self.targets.len() {
                plain.extend_from_slice(&self.chunk(s, family));
                ends.push(plain.len());
            }
            *version += 1;
            let segment = &mut self.segments[f];
            segment.plain = Bytes::from(plain);
            segment.ends = ends;
            segment.deflated = None;
            segment.version = *version;
        }
        self.dirty = 0;
        self.pending.iter_mut().for_each(|p| *p = None);
    }

    fn chunk(&self, slot: usize, family: Family) -> Bytes {
        let f = family as usize;
        match self.pending.get(slot) {
            Some(Some(chunks)) => chunks[f].clone(),
            _ => self.segments[f].chunk(slot),
        }
    }

    fn chunks(&self, slot: usize) -> Chunks {
        Family::ALL.map(|family| self.chunk(slot, family))
    }
}

/// A segment waiting to be compressed: where it is, which version, and its bytes.
#[derive(Debug)]
pub struct Stale {
    run: usize,
    family: usize,
    version: u64,
    plain: Bytes,
}

impl Stale {
    pub fn compress(&self, compressor: &mut Compress) -> Deflated {
        Deflated::of(compressor, &self.plain)
    }
}

/// The pre-rendered, pre-compressed job and target families of every target.
#[derive(Debug, Default)]
pub struct Packed {
    runs: Vec<Run>,
    index: HashMap<TargetId, (usize, usize)>,
    version: u64,
}

/// A whole answer in pieces: what to write, in order, and its length.
#[derive(Debug, Default)]
pub struct Answer {
    pub parts: Vec<Bytes>,
    pub len: u64,
}

impl Answer {
    fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len() as u64;
            self.parts.push(bytes);
        }
    }
}

impl Packed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lays the targets out in `order`; a target already known keeps its series, a new one
    /// has none until its poll reports. Does nothing when the order is unchanged.
    pub fn set_targets<'a>(&mut self, order: impl ExactSizeIterator<Item = &'a TargetId>) {
        let order: Vec<&TargetId> = order.collect();
        let unchanged = order.len() == self.index.len()
            && order.iter().enumerate().all(|(i, t)| {
                self.index.get(*t) == Some(&(i / TARGETS_PER_RUN, i % TARGETS_PER_RUN))
            });
        if unchanged {
            return;
        }
        let mut runs = Vec::with_capacity(order.len().div_ceil(TARGETS_PER_RUN));
        let mut index = HashMap::with_capacity(order.len());
        for (r, group) in order.chunks(TARGETS_PER_RUN).enumerate() {
            let mut run = Run {
                targets: Vec::with_capacity(group.len()),
                pending: Vec::with_capacity(group.len()),
                segments: Default::default(),
                dirty: u32::MAX,
                reported: 0,
                waiting_since: Some(Instant::now()),
            };
            for (s, target) in group.iter().enumerate() {
                let kept = self
                    .index
                    .get(*target)
                    .and_then(|&(r, s)| self.runs.get(r).map(|run| run.chunks(s)));
                run.targets.push((*target).clone());
                run.pending.push(Some(kept.unwrap_or_default()));
                index.insert((*target).clone(), (r, s));
            }
            runs.push(run);
        }
        self.runs = runs;
        self.index = index;
        self.version += 1;
        for run in &mut self.runs {
            for segment in &mut run.segments {
                segment.version = self.version;
            }
        }
    }

    /// The target's series after a poll, for the families in `families` (bit `f` for
    /// family `f`; the others keep theirs). Families whose bytes changed mark their segment.
    /// Returns whether anything changed.
    pub fn update(&mut self, target: &TargetId, mut chunks: Chunks, families: u32) -> bool {
        let Some(&(r, s)) = self.index.get(target) else {
            return false;
        };
        let Some(run) = self.runs.get_mut(r) else {
            return false;
        };
        let had_work = run.has_work();
        let mut changed = 0u32;
        for family in Family::ALL {
            let f = family as usize;
            let current = run.chunk(s, family);
            if families & (1 << f) == 0 {
                chunks[f] = current;
            } else if current != chunks[f] {
                changed |= 1 << f;
            }
        }
        if changed != 0 {
            if let Some(slot) = run.pending.get_mut(s) {
                *slot = Some(chunks);
            }
            run.dirty |= changed;
            if !had_work {
                // The run's wait starts with its first change: polls before it changed
                // nothing to pack.
                run.reported = 0;
                run.waiting_since = Some(Instant::now());
            }
        }
        run.reported |= 1u64.checked_shl(s as u32).unwrap_or(0);
        if run.complete() {
            // The run's last poll is in: copy its changes into the segments now (well under
            // a millisecond), so the targets' new series are not held twice until the
            // packer's next look.
            run.refresh(&mut self.version);
        }
        changed != 0
    }

    /// Rebuilds the plain segments that updates made dirty (copies, no compression); their
    /// compressed forms become stale.
    pub fn refresh(&mut self) {
        for run in &mut self.runs {
            run.refresh(&mut self.version);
        }
    }

    /// Whether a poll changed anything not yet in the segments, or a segment lacks its
    /// compressed form.
    pub fn behind(&self) -> bool {
        self.runs.iter().any(Run::has_work)
    }

    /// For the background packer: refreshes the runs that are due (see `Run::due`), up to
    /// about `bytes` of plain text to compress, and returns their stale segments.
    pub fn due(&mut self, now: Instant, bytes: usize) -> Vec<Stale> {
        let mut out = Vec::new();
        let mut taken = 0usize;
        for (r, run) in self.runs.iter_mut().enumerate() {
            if taken >= bytes {
                break;
            }
            if !run.due(now) {
                continue;
            }
            run.refresh(&mut self.version);
            run.reported = 0;
            run.waiting_since = None;
            for (f, segment) in run.segments.iter().enumerate() {
                if segment.deflated.is_none() && !segment.plain.is_empty() {
                    taken = taken.saturating_add(segment.plain.len());
                    out.push(Stale {
                        run: r,
                        family: f,
                        version: segment.version,
                        plain: segment.plain.clone(),
                    });
                }
            }
        }
        out
    }

    /// The segments whose compressed form is stale (call [`Packed::refresh`] first), to be
    /// compressed without holding the store.
    pub fn stale(&self) -> Vec<Stale> {
        self.stale_batch(usize::MAX)
    }

    /// [`Packed::stale`], up to about `bytes` of plain text (at least one segment).
    pub fn stale_batch(&self, bytes: usize) -> Vec<Stale> {
        let mut out = Vec::new();
        let mut taken = 0usize;
        for (r, run) in self.runs.iter().enumerate() {
            for (f, segment) in run.segments.iter().enumerate() {
                if taken >= bytes {
                    return out;
                }
                if segment.deflated.is_none() && !segment.plain.is_empty() {
                    taken = taken.saturating_add(segment.plain.len());
                    out.push(Stale {
                        run: r,
                        family: f,
                        version: segment.version,
                        plain: segment.plain.clone(),
                    });
                }
            }
        }
        out
    }

    /// Installs a compressed segment unless its plain bytes changed since it was taken.
    pub fn install(&mut self, stale: &Stale, deflated: Deflated) {
        let segment = self
            .runs
            .get_mut(stale.run)
            .and_then(|run| run.segments.get_mut(stale.family));
        if let Some(segment) = segment {
            if segment.version == stale.version {
                segment.deflated = Some(deflated);
            }
        }
    }

    /// Compresses whatever is still stale, here and now.
    pub fn deflate_stale(&mut self, compressor: &mut Compress) {
        for stale in self.stale() {
            let deflated = stale.compress(compressor);
            self.install(&stale, deflated);
        }
    }

    fn present(&self, family: Family) -> bool {
        self.runs
            .iter()
            .any(|run| !run.segments[family as usize].plain.is_empty())
    }

    /// The plain job and target families: each family's header once, then every run's
    /// segment of it. Call [`Packed::refresh`] first.
    pub fn plain(&self, format: Format, out: &mut Answer) {
        let headers = headers(format);
        for family in Family::ALL {
            if !self.present(family) {
                continue;
            }
            out.push(headers[family as usize].plain.clone());
            for run in &self.runs {
                out.push(run.segments[family as usize].plain.clone());
            }
        }
    }

    /// [`Packed::plain`] as raw deflate segments, with the CRC-32 of the plain bytes. Call
    /// [`Packed::refresh`] and [`Packed::deflate_stale`] first; a segment still without its
    /// compressed form is compressed with `compressor`.
    pub fn deflated(&self, format: Format, compressor: &mut Compress, out: &mut Gzip) {
        let headers = headers(format);
        for family in Family::ALL {
            if !self.present(family) {
                continue;
            }
            out.push(&headers[family as usize].deflated);
            for run in &self.runs {
                let segment = &run.segments[family as usize];
                if segment.plain.is_empty() {
                    continue;
                }
                match &segment.deflated {
                    Some(d) => out.push(d),
                    None => out.push(&Deflated::of(compressor, &segment.plain)),
                }
            }
        }
    }
}

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
        if segment.len == 0 {
            return;
        }
        self.answer.push(segment.bytes.clone());
        self.size += segment.len;
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            segment.crc,
            segment.len,
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

/// A family's header in plain and compressed form.
#[derive(Debug)]
struct Header {
    plain: Bytes,
    deflated: Deflated,
}

fn headers(format: Format) -> &'static [Header; FAMILY_COUNT] {
    type Headers = [Header; FAMILY_COUNT];
    static TEXT: std::sync::OnceLock<Headers> = std::sync::OnceLock::new();
    static OPEN_METRICS: std::sync::OnceLock<Headers> = std::sync::OnceLock::new();
    let cell = match format {
        Format::Text => &TEXT,
        Format::OpenMetrics => &OPEN_METRICS,
    };
    cell.get_or_init(|| {
        let mut c = compressor();
        Family::ALL.map(|family| {
            let plain = Bytes::from(family.header(format));
            let deflated = Deflated::of(&mut c, &plain);
            Header { plain, deflated }
        })
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use proptest::prelude::*;

    use super::*;
    use crate::model::{System, TargetKind};

    fn target(i: usize) -> TargetId {
        TargetId {
            system: System::Zdm,
            upstream: "u".into(),
            kind: TargetKind::Server,
            target: format!("t{i:04}").into(),
        }
    }

    fn chunks(seed: u64, families: u32) -> Chunks {
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
    fn model(format: Format, order: &[TargetId], held: &HashMap<TargetId, Chunks>) -> Vec<u8> {
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

    fn concat(answer: &Answer) -> Vec<u8> {
        let bytes: Vec<u8> = answer.parts.iter().flat_map(|p| p.to_vec()).collect();
        assert_eq!(bytes.len() as u64, answer.len);
        bytes
    }

    fn gunzip(gz: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut out)
            .expect("a valid gzip member");
        out
    }

    fn answers(packed: &mut Packed, format: Format, tail: &[u8]) -> (Vec<u8>, Vec<u8>) {
        packed.refresh();
        let mut plain = Answer::default();
        packed.plain(format, &mut plain);
        let mut plain = concat(&plain);
        plain.extend_from_slice(tail);
        let mut c = compressor();
        let mut gzip = Gzip::new();
        packed.deflated(format, &mut c, &mut gzip);
        gzip.push_plain(&mut c, tail);
        (plain, concat(&gzip.finish()))
    }

    #[test]
    fn gzip_answer_is_the_plain_answer_compressed() {
        let mut packed = Packed::new();
        let order: Vec<TargetId> = (0..150).map(target).collect();
        packed.set_targets(order.iter());
        let mut held = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            let c = chunks(i as u64, 0xffff);
            held.insert(t.clone(), c.clone());
            packed.update(t, c, ALL_FAMILIES);
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let (plain, gz) = answers(&mut packed, format, b"own_metric 1\n");
            let mut want = model(format, &order, &held);
            want.extend_from_slice(b"own_metric 1\n");
            assert_eq!(plain, want);
            assert_eq!(gunzip(&gz), want);
            assert!(gz.len() * 5 < want.len(), "{} of {}", gz.len(), want.len());
        }
    }

    #[test]
    fn a_segment_larger_than_the_compressor_output_buffer_round_trips() {
        // Incompressible bytes: the compressor's output outgrows its first buffer.
        let mut x: u64 = 1;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let mut c = compressor();
        let d = Deflated::of(&mut c, &noise);
        let mut gzip = Gzip::new();
        gzip.push(&d);
        gzip.push(&Deflated::of(&mut c, b"after\n"));
        let gz = concat(&gzip.finish());
        let mut want = noise.clone();
        want.extend_from_slice(b"after\n");
        assert_eq!(gunzip(&gz), want);
    }

    #[test]
    fn a_compression_of_replaced_bytes_is_not_installed() {
        let mut packed = Packed::new();
        let order: Vec<TargetId> = (0..3).map(target).collect();
        packed.set_targets(order.iter());
        packed.update(&order[0], chunks(1, 1), ALL_FAMILIES);
        packed.refresh();
        let stale = packed.stale();
        assert_eq!(stale.len(), 1);
        let mut c = compressor();
        let old = stale[0].compress(&mut c);
        // The target changes before the old compression lands.
        packed.update(&order[0], chunks(2, 1), ALL_FAMILIES);
        packed.refresh();
        packed.install(&stale[0], old);
        assert!(
            packed.behind(),
            "the segment of the newer bytes is still to compress"
        );
        let (plain, gz) = answers(&mut packed, Format::Text, b"");
        assert_eq!(gunzip(&gz), plain);
        assert!(plain.ends_with(&chunks(2, 1)[0]));
    }

    #[test]
    fn unchanged_series_leave_segments_alone() {
        let mut packed = Packed::new();
        let order: Vec<TargetId> = (0..3).map(target).collect();
        packed.set_targets(order.iter());
        assert!(packed.update(&order[1], chunks(5, 0b101), ALL_FAMILIES));
        let mut c = compressor();
        packed.refresh();
        packed.deflate_stale(&mut c);
        assert!(!packed.behind());
        assert!(!packed.update(&order[1], chunks(5, 0b101), ALL_FAMILIES));
        // Only family 1 considered: what changed elsewhere is not taken.
        assert!(!packed.update(&order[1], chunks(6, 0b101), 0b10));
        assert!(!packed.behind());
        assert!(
            !packed.update(&target(99), chunks(1, 1), ALL_FAMILIES),
            "unknown target"
        );
    }

    #[test]
    fn a_run_is_due_once_all_its_targets_reported_or_after_the_wait() {
        let mut packed = Packed::new();
        let order: Vec<TargetId> = (0..TARGETS_PER_RUN + 2).map(target).collect();
        packed.set_targets(order.iter());
        let now = Instant::now();
        // After a relayout every run waits for its targets.
        assert!(packed.due(now, usize::MAX).is_empty());
        for t in &order[..TARGETS_PER_RUN] {
            packed.update(t, chunks(1, 1), ALL_FAMILIES);
        }
        let first = packed.due(now, usize::MAX);
        assert!(
            !first.is_empty() && first.iter().all(|s| s.run == 0),
            "{first:?}"
        );
        let mut c = compressor();
        for s in &first {
            let d = s.compress(&mut c);
            packed.install(s, d);
        }
        // The second run has one of two targets in: due only after the wait.
        packed.update(&order[TARGETS_PER_RUN], chunks(2, 1), ALL_FAMILIES);
        assert!(packed.due(now, usize::MAX).is_empty());
        let later = packed.due(now + MAX_WAIT + Duration::from_millis(1), usize::MAX);
        assert!(
            !later.is_empty() && later.iter().all(|s| s.run == 1),
            "{later:?}"
        );
        // A target of the packed first run changes: the run waits for the others again,
        // though they all reported before.
        packed.update(&order[0], chunks(3, 1), ALL_FAMILIES);
        assert!(packed.due(now, usize::MAX).iter().all(|s| s.run != 0));
        for t in &order[1..TARGETS_PER_RUN] {
            packed.update(t, chunks(1, 1), ALL_FAMILIES);
        }
        assert!(packed.due(now, usize::MAX).iter().any(|s| s.run == 0));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Update {
            target: usize,
            seed: u64,
            families: u32,
            mask: u32,
        },
        Layout {
            keep: Vec<bool>,
            add: usize,
        },
        Pack,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0usize..200, any::<u64>(), any::<u32>(), prop_oneof![Just(ALL_FAMILIES), any::<u32>()])
                .prop_map(|(target, seed, families, mask)| Step::Update {
                    target,
                    seed,
                    families: families & ALL_FAMILIES,
                    mask: mask & ALL_FAMILIES,
                }),
            1 => (proptest::collection::vec(any::<bool>(), 200), 0usize..80)
                .prop_map(|(keep, add)| Step::Layout { keep, add }),
            2 => Just(Step::Pack),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// After any sequence of polls, relayouts and background packs, the plain answer is
        /// the model's and the gzip answer decodes to the same bytes.
        #[test]
        fn answers_follow_any_sequence_of_updates(steps in proptest::collection::vec(step(), 1..40)) {
            let mut packed = Packed::new();
            let mut order: Vec<TargetId> = (0..100).map(target).collect();
            let mut next = 100;
            packed.set_targets(order.iter());
            let mut held: HashMap<TargetId, Chunks> = HashMap::new();
            let mut c = compressor();
            for step in steps {
                match step {
                    Step::Update { target, seed, families, mask } => {
                        if let Some(t) = order.get(target % order.len().max(1)).cloned() {
                            let ch = chunks(seed, families);
                            packed.update(&t, ch.clone(), mask);
                            let entry = held.entry(t).or_default();
                            for f in 0..FAMILY_COUNT {
                                if mask & (1 << f) != 0 {
                                    entry[f] = ch[f].clone();
                                }
                            }
                        }
                    }
                    Step::Layout { keep, add } => {
                        order = order
                            .iter()
                            .zip(keep.iter().cycle())
                            .filter(|(_, k)| **k)
                            .map(|(t, _)| t.clone())
                            .collect();
                        held.retain(|t, _| order.contains(t));
                        order.extend((next..next + add).map(target));
                        next += add;
                        order.sort();
                        packed.set_targets(order.iter());
                    }
                    Step::Pack => {
                        packed.refresh();
                        let stale = packed.stale();
                        for s in &stale {
                            let d = s.compress(&mut c);
                            packed.install(s, d);
                        }
                    }
                }
            }
            let (plain, gz) = answers(&mut packed, Format::Text, b"tail 1\n");
            let mut want = model(Format::Text, &order, &held);
            want.extend_from_slice(b"tail 1\n");
            prop_assert_eq!(&plain, &want);
            prop_assert_eq!(gunzip(&gz), want);
        }
    }
}
