//! The job and target families kept ready for scrapes, compressed.
//!
//! Targets are laid out in store order in runs of [`TARGETS_PER_RUN`]. Each run keeps, per
//! family, one *segment*: the series of its targets back to back, as a raw deflate stream
//! compressed on its own and ended by a full flush (so it ends on a byte boundary with no
//! final block). Raw deflate segments concatenate: a gzip answer is a header, every family's
//! header segment and run segments, the telemetry compressed at scrape time, an empty final
//! block, and a trailer whose CRC-32 is combined from the segments' CRCs (`crc32_combine`),
//! so a gzip scrape copies bytes and compresses only the few kilobytes of the exporter's own
//! metrics. A plain scrape inflates the segments as the client reads (about 2 GB/s); the
//! series are held only compressed, at a thirtieth of their size.
//!
//! A target's poll hands its new chunks to [`Packed::update`]; a family whose bytes changed
//! (told by a keyed 64-bit hash of the target's chunk) marks its run's segment dirty. Once
//! every target of the run has reported, the run's dirty segments are rebuilt as plain text
//! (the old segment inflated, the new chunks spliced in), and a background task compresses
//! them ([`Packed::due`] / [`Packed::install`]), off the scrape path; a gzip scrape compresses
//! what is still stale itself ([`Packed::deflate_stale`]), so every answer is current.
//!
//! Runs of targets, not one segment per target: a deflate stream compresses series lines
//! against the similar lines before them, and a segment sees only its own. Measured on the
//! 2,000 x 5 fleet exposition (`benches/gzip-segments.py`): one segment per (family, target)
//! is 3.8 MiB, runs of 64 targets 0.92 MiB, one stream of the whole text 0.86 MiB.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::metrics::{Family, Format, FAMILY_COUNT};
use crate::model::TargetId;

/// Every family, as an `update` mask.
pub const ALL_FAMILIES: u32 = (1 << FAMILY_COUNT) - 1;

/// How long the background packer lets a run's changes wait for the rest of its targets.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Targets per run (per segment of each family); at most 64 (`Run::reported` is a u64).
pub const TARGETS_PER_RUN: usize = 64;

/// Compression level of the segments. On the 2,000 x 5 fleet's text in 60 KB pieces, zlib-rs
/// gives at level 5 the size of level 6 (0.96 MB) in two thirds of its time (60 vs 91 ms);
/// level 4 is 4 % larger, level 1 60 % larger.
const LEVEL: u32 = 5;

/// Largest piece of an answer handed to the HTTP server at a time: the server's write buffer
/// size. With a `Content-Length`, hyper drops a body (and so frees its `--web.max-requests`
/// slot) once its last bytes are buffered; pieces no larger than the buffer keep a stuck
/// client's request in flight until all but about two pieces are sent.
const PIECE: usize = 64 * 1024;

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
        out.shrink_to_fit();
        Deflated {
            crc: crc32fast::hash(plain),
            len: plain.len() as u64,
            bytes: Bytes::from(out),
        }
    }

    /// The plain bytes back, whole.
    fn inflate(&self, decompressor: &mut Decompress) -> Bytes {
        let mut inflating = Inflating::new(self.clone());
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        while let Some(piece) = inflating.next_piece(decompressor, usize::MAX) {
            out.extend_from_slice(&piece);
        }
        Bytes::from(out)
    }
}

/// A new compressor for segments (raw deflate, no zlib header).
pub fn compressor() -> Compress {
    Compress::new(Compression::new(LEVEL), false)
}

fn decompressor() -> Decompress {
    Decompress::new(false)
}

/// A segment being inflated piece by piece.
#[derive(Debug)]
struct Inflating {
    segment: Deflated,
    consumed: usize,
    produced: u64,
    started: bool,
}

impl Inflating {
    fn new(segment: Deflated) -> Self {
        Inflating {
            segment,
            consumed: 0,
            produced: 0,
            started: false,
        }
    }

    /// The next piece of at most `max` plain bytes, or `None` when the segment is done. A
    /// segment this process compressed always inflates to its length; were it ever not to,
    /// the answer ends short (and the client sees a length mismatch) instead of looping.
    fn next_piece(&mut self, d: &mut Decompress, max: usize) -> Option<Bytes> {
        let left = self.segment.len.saturating_sub(self.produced);
        if left == 0 {
            return None;
        }
        if !self.started {
            d.reset(false);
            self.started = true;
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(max);
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let input = self.segment.bytes.get(self.consumed..).unwrap_or_default();
            let (in_before, out_before) = (d.total_in(), out.len());
            if d.decompress_vec(input, &mut out, FlushDecompress::Sync)
                .is_err()
            {
                break;
            }
            self.consumed += usize::try_from(d.total_in() - in_before).unwrap_or(input.len());
            if out.len() == out_before && d.total_in() == in_before {
                break;
            }
        }
        if out.is_empty() {
            self.produced = self.segment.len;
            tracing::error!("a pre-compressed segment did not inflate to its length");
            return None;
        }
        self.produced += out.len() as u64;
        Some(Bytes::from(out))
    }
}

#[derive(Debug, Default)]
struct Segment {
    /// The plain bytes, kept only until the compressed form is installed.
    plain: Option<Bytes>,
    deflated: Option<Deflated>,
    /// Where each slot's chunk ends in the plain bytes.
    ends: Vec<usize>,
    /// Bumped whenever the plain bytes change, so a compression of older bytes is not
    /// installed.
    version: u64,
}

impl Segment {
    fn is_empty(&self) -> bool {
        self.ends.last().is_none_or(|&end| end == 0)
    }

    fn is_stale(&self) -> bool {
        self.deflated.is_none() && !self.is_empty()
    }

    fn plain(&self, decompressor: &mut Decompress) -> Bytes {
        match (&self.plain, &self.deflated) {
            (Some(plain), _) => plain.clone(),
            (None, Some(deflated)) => deflated.inflate(decompressor),
            (None, None) => Bytes::new(),
        }
    }

    fn chunk(&self, plain: &Bytes, slot: usize) -> Bytes {
        let start = match slot.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(slot).copied().unwrap_or(start);
        plain
            .get(start.min(end)..end)
            .map_or_else(Bytes::new, |_| plain.slice(start.min(end)..end))
    }
}

#[derive(Debug)]
struct Run {
    targets: Vec<TargetId>,
    /// New chunks not yet in the segments: `(slot, family, bytes)`, newest last.
    pending: Vec<(usize, usize, Bytes)>,
    /// Keyed hash of each slot's current chunk of each family (0 for none), to tell a
    /// change without the old bytes.
    hashes: Vec<[u64; FAMILY_COUNT]>,
    segments: [Segment; FAMILY_COUNT],
    /// Bit `f` set: the segment of family `f` must be rebuilt with `pending`.
    dirty: u32,
    /// Bit `s` set: slot `s` reported a poll since the run's work began.
    reported: u64,
    /// Since when the run has had work for the background packer.
    waiting_since: Option<Instant>,
}

impl Run {
    /// Changed series not yet in the segments, or segments not yet compressed.
    fn has_work(&self) -> bool {
        self.dirty != 0 || self.segments.iter().any(Segment::is_stale)
    }

    /// Whether every target has reported since the run's work began.
    fn complete(&self) -> bool {
        let all = match self.targets.len() {
            64.. => u64::MAX,
            n => (1u64 << n) - 1,
        };
        self.reported & all == all
    }

    /// Whether the background packer should pack the run now: every target has reported
    /// (polls of one run finish close together, so it is packed once per cycle, not once
    /// per poll), or its work has waited [`MAX_WAIT`].
    fn due(&self, now: Instant) -> bool {
        self.has_work()
            && (self.complete()
                || self
                    .waiting_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= MAX_WAIT))
    }

    /// Rebuilds the segments of dirty families as plain bytes: the old segment (inflated
    /// if need be) with the pending chunks spliced in. Their compressed forms go stale.
    fn refresh(&mut self, version: &mut u64, decompressor: &mut Decompress) {
        if self.dirty == 0 {
            return;
        }
        for f in 0..FAMILY_COUNT {
            if self.dirty & (1 << f) == 0 {
                continue;
            }
            let mut newest: Vec<Option<&Bytes>> = vec![None; self.targets.len()];
            for (slot, family, bytes) in &self.pending {
                if *family == f {
                    if let Some(n) = newest.get_mut(*slot) {
                        *n = Some(bytes);
                    }
                }
            }
            let segment = &self.segments[f];
            let old = segment.plain(decompressor);
            let chunks: Vec<Bytes> = newest
                .iter()
                .enumerate()
                .map(|(s, new)| match new {
                    Some(bytes) => (*bytes).clone(),
                    None => segment.chunk(&old, s),
                })
                .collect();
            let mut plain = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            let mut ends = Vec::with_capacity(chunks.len());
            for chunk in &chunks {
                plain.extend_from_slice(chunk);
                ends.push(plain.len());
            }
            *version += 1;
            let segment = &mut self.segments[f];
            segment.plain = Some(Bytes::from(plain));
            segment.ends = ends;
            segment.deflated = None;
            segment.version = *version;
        }
        self.dirty = 0;
        self.pending = Vec::new();
    }

    /// Every family's plain bytes (inflated where the segment holds only its compressed
    /// form), for [`Run::slot_chunks`].
    fn plains(&self, decompressor: &mut Decompress) -> Vec<Bytes> {
        self.segments
            .iter()
            .map(|s| s.plain(decompressor))
            .collect()
    }

    /// One slot's chunks, from `plains` and what is pending.
    fn slot_chunks(&self, slot: usize, plains: &[Bytes]) -> Chunks {
        let mut chunks: Chunks = std::array::from_fn(|f| {
            plains
                .get(f)
                .map_or_else(Bytes::new, |p| self.segments[f].chunk(p, slot))
        });
        for (s, family, bytes) in &self.pending {
            if *s == slot {
                chunks[*family] = bytes.clone();
            }
        }
        chunks
    }

    /// Compresses every stale segment now and lets its plain bytes go.
    fn compress_now(&mut self, compressor: &mut Compress) {
        for segment in &mut self.segments {
            if let (None, Some(plain)) = (&segment.deflated, &segment.plain) {
                segment.deflated = Some(Deflated::of(compressor, plain));
                segment.plain = None;
            }
        }
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

/// The pre-compressed job and target families of every target.
#[derive(Debug)]
pub struct Packed {
    runs: Vec<Run>,
    index: HashMap<TargetId, (usize, usize)>,
    version: u64,
    /// Keys the change hashes (random per process: no input can be made to collide).
    hasher: std::collections::hash_map::RandomState,
    decompressor: Decompress,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            runs: Vec::new(),
            index: HashMap::new(),
            version: 0,
            hasher: Default::default(),
            decompressor: decompressor(),
        }
    }
}

/// One part of an answer: bytes ready to write, or a segment to inflate as it is written.
#[derive(Debug)]
pub enum Part {
    Ready(Bytes),
    Deflated(Deflated),
}

/// A whole answer in parts, and its length.
#[derive(Debug, Default)]
pub struct Answer {
    pub parts: Vec<Part>,
    pub len: u64,
}

impl Answer {
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len() as u64;
            self.parts.push(Part::Ready(bytes));
        }
    }

    fn push_deflated(&mut self, segment: &Deflated) {
        if segment.len > 0 {
            self.len += segment.len;
            self.parts.push(Part::Deflated(segment.clone()));
        }
    }

    /// The answer's bytes in pieces of at most [`PIECE`] bytes: small parts gathered, large
    /// ones sliced, segments inflated as the pieces are taken.
    pub fn pieces(self) -> Pieces {
        Pieces {
            parts: self.parts.into_iter().peekable(),
            rest: None,
            inflating: None,
            decompressor: None,
        }
    }

    /// The whole answer in one buffer.
    pub fn to_vec(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        for piece in self.pieces() {
            out.extend_from_slice(&piece);
        }
        out
    }
}

/// An answer's bytes, piece by piece.
pub struct Pieces {
    parts: std::iter::Peekable<std::vec::IntoIter<Part>>,
    /// What is left of a ready part larger than [`PIECE`].
    rest: Option<Bytes>,
    inflating: Option<Inflating>,
    decompressor: Option<Decompress>,
}

/// Ready parts smaller than this are copied together into pieces of about [`PIECE`]: a gzip
/// answer is mostly segments of a few kilobytes, and a write per segment would cost a
/// system call per few kilobytes.
const SMALL: usize = 16 * 1024;

impl Pieces {
    /// `first` and the small ready parts after it, in one buffer of at most [`PIECE`].
    fn gather(&mut self, first: Bytes) -> Bytes {
        let mut next_small = |len: usize| {
            self.parts.next_if(
                |p| matches!(p, Part::Ready(b) if b.len() < SMALL && len + b.len() <= PIECE),
            )
        };
        let Some(Part::Ready(second)) = next_small(first.len()) else {
            return first;
        };
        let mut out = Vec::with_capacity(PIECE);
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
                match inflating.next_piece(d, PIECE) {
                    Some(piece) => return Some(piece),
                    None => self.inflating = None,
                }
            }
            if let Some(mut rest) = self.rest.take() {
                if rest.len() > PIECE {
                    let piece = rest.split_to(PIECE);
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

impl Packed {
    pub fn new() -> Self {
        Self::default()
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        if bytes.is_empty() {
            0
        } else {
            self.hasher.hash_one(bytes) | 1
        }
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
        // Run by run, each compressed before the next is built: a relayout (a reload that
        // adds or drops targets) holds one run's plain text at a time, not the whole
        // exposition. Both layouts are in store order, so the old runs are read in order
        // and one inflated old run at a time is enough.
        let old_runs = std::mem::take(&mut self.runs);
        let old_index = std::mem::take(&mut self.index);
        let mut inflated: Option<(usize, Vec<Bytes>)> = None;
        let mut compressor = (!old_runs.is_empty()).then(compressor);
        let mut runs = Vec::with_capacity(order.len().div_ceil(TARGETS_PER_RUN));
        let mut index = HashMap::with_capacity(order.len());
        for (r, group) in order.chunks(TARGETS_PER_RUN).enumerate() {
            let mut run = Run {
                targets: Vec::with_capacity(group.len()),
                pending: Vec::new(),
                hashes: Vec::with_capacity(group.len()),
                segments: Default::default(),
                dirty: ALL_FAMILIES,
                reported: 0,
                waiting_since: None,
            };
            for (s, target) in group.iter().enumerate() {
                let mut hashes = [0u64; FAMILY_COUNT];
                if let Some(&(or, os)) = old_index.get(*target) {
                    if let Some(old) = old_runs.get(or) {
                        if inflated.as_ref().map(|(i, _)| *i) != Some(or) {
                            inflated = Some((or, old.plains(&mut self.decompressor)));
                        }
                        let plains = inflated.as_ref().map_or(&[][..], |(_, p)| &p[..]);
                        for (f, chunk) in old.slot_chunks(os, plains).into_iter().enumerate() {
                            if !chunk.is_empty() {
                                run.pending.push((s, f, chunk));
                            }
                        }
                        hashes = old.hashes.get(os).copied().unwrap_or(hashes);
                    }
                }
                run.targets.push((*target).clone());
                run.hashes.push(hashes);
                index.insert((*target).clone(), (r, s));
            }
            run.refresh(&mut self.version, &mut self.decompressor);
            if let Some(c) = &mut compressor {
                run.compress_now(c);
            }
            runs.push(run);
        }
        self.runs = runs;
        self.index = index;
    }

    /// The target's series after a poll, for the families in `families` (bit `f` for
    /// family `f`; the others keep theirs). Families whose bytes changed mark their segment.
    /// Returns whether anything changed.
    pub fn update(&mut self, target: &TargetId, chunks: Chunks, families: u32) -> bool {
        let Some(&(r, s)) = self.index.get(target) else {
            return false;
        };
        let hashes: Vec<(usize, u64)> = (0..FAMILY_COUNT)
            .filter(|f| families & (1 << f) != 0)
            .map(|f| (f, self.hash(&chunks[f])))
            .collect();
        let Some(run) = self.runs.get_mut(r) else {
            return false;
        };
        let had_work = run.has_work();
        let mut changed = 0u32;
        if let Some(slot) = run.hashes.get_mut(s) {
            for (f, hash) in hashes {
                if slot[f] != hash {
                    slot[f] = hash;
                    changed |= 1 << f;
                }
            }
        }
        if changed != 0 {
            for (f, chunk) in chunks.into_iter().enumerate() {
                if changed & (1 << f) != 0 {
                    run.pending.push((s, f, chunk));
                }
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
            // The run's last poll is in: splice its changes into the segments now (well
            // under a millisecond), so the targets' new series are not held twice until the
            // packer's next look.
            run.refresh(&mut self.version, &mut self.decompressor);
        }
        changed != 0
    }

    /// Rebuilds every dirty segment (plain); their compressed forms become stale.
    pub fn refresh(&mut self) {
        for run in &mut self.runs {
            run.refresh(&mut self.version, &mut self.decompressor);
        }
    }

    /// Whether a poll changed anything not yet in the segments, or a segment lacks its
    /// compressed form.
    pub fn behind(&self) -> bool {
        self.runs.iter().any(Run::has_work)
    }

    /// The segments whose compressed form is stale (call [`Packed::refresh`] first).
    pub fn stale(&self) -> Vec<Stale> {
        let mut out = Vec::new();
        for (r, run) in self.runs.iter().enumerate() {
            collect_stale(r, run, &mut out);
        }
        out
    }

    /// For the background packer: refreshes the runs that are due (see `Run::due`), up to
    /// about `bytes` of plain text to compress, and returns their stale segments.
    pub fn due(&mut self, now: Instant, bytes: usize) -> Vec<Stale> {
        let mut out = Vec::new();
        let mut taken = 0;
        for (r, run) in self.runs.iter_mut().enumerate() {
            if taken >= bytes {
                break;
            }
            if !run.due(now) {
                continue;
            }
            run.refresh(&mut self.version, &mut self.decompressor);
            run.reported = 0;
            run.waiting_since = None;
            taken += collect_stale(r, run, &mut out);
        }
        out
    }

    /// Installs a compressed segment unless its plain bytes changed since it was taken;
    /// the plain bytes are then let go.
    pub fn install(&mut self, stale: &Stale, deflated: Deflated) {
        let segment = self
            .runs
            .get_mut(stale.run)
            .and_then(|run| run.segments.get_mut(stale.family));
        if let Some(segment) = segment {
            if segment.version == stale.version {
                segment.deflated = Some(deflated);
                segment.plain = None;
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
            .any(|run| !run.segments[family as usize].is_empty())
    }

    /// The job and target families, plain: each family's header once, then every run's
    /// segment of it (inflated as the answer is written), with every poll so far in.
    pub fn plain(&mut self, format: Format, out: &mut Answer) {
        self.refresh();
        let headers = headers(format);
        for family in Family::ALL {
            if !self.present(family) {
                continue;
            }
            out.push(headers[family as usize].plain.clone());
            for run in &self.runs {
                let segment = &run.segments[family as usize];
                match (&segment.plain, &segment.deflated) {
                    (Some(plain), _) => out.push(plain.clone()),
                    (None, Some(deflated)) => out.push_deflated(deflated),
                    (None, None) => {}
                }
            }
        }
    }

    /// [`Packed::plain`] as raw deflate segments; what the background packer has not
    /// compressed yet is compressed here with `compressor`.
    pub fn deflated(&mut self, format: Format, compressor: &mut Compress, out: &mut Gzip) {
        self.refresh();
        self.deflate_stale(compressor);
        let headers = headers(format);
        for family in Family::ALL {
            if !self.present(family) {
                continue;
            }
            out.push(&headers[family as usize].deflated);
            for run in &self.runs {
                if let Some(d) = &run.segments[family as usize].deflated {
                    out.push(d);
                }
            }
        }
    }
}

/// Appends the run's stale segments to `out`; returns their plain bytes.
fn collect_stale(r: usize, run: &Run, out: &mut Vec<Stale>) -> usize {
    let mut bytes = 0;
    for (f, segment) in run.segments.iter().enumerate() {
        if let (None, Some(plain)) = (&segment.deflated, &segment.plain) {
            if !plain.is_empty() {
                bytes += plain.len();
                out.push(Stale {
                    run: r,
                    family: f,
                    version: segment.version,
                    plain: plain.clone(),
                });
            }
        }
    }
    bytes
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
    use crate::systems::zdm;

    fn target(i: usize) -> TargetId {
        TargetId {
            system: zdm::SYSTEM,
            upstream: "u".into(),
            kind: zdm::SERVER,
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

    fn concat(answer: Answer) -> Vec<u8> {
        let len = answer.len;
        let bytes = answer.to_vec();
        assert_eq!(bytes.len() as u64, len);
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
        let mut plain = concat(plain);
        plain.extend_from_slice(tail);
        let mut c = compressor();
        let mut gzip = Gzip::new();
        packed.deflated(format, &mut c, &mut gzip);
        gzip.push_plain(&mut c, tail);
        (plain, concat(gzip.finish()))
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
        // Small segments go out gathered: fewer pieces than parts, none above PIECE.
        let mut gzip = Gzip::new();
        packed.deflated(Format::Text, &mut compressor(), &mut gzip);
        let answer = gzip.finish();
        let parts = answer.parts.len();
        let pieces: Vec<Bytes> = answer.pieces().collect();
        assert!(
            pieces.len() * 4 < parts,
            "{} pieces of {parts} parts",
            pieces.len()
        );
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
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
        let gz = concat(gzip.finish());
        let mut want = noise.clone();
        want.extend_from_slice(b"after\n");
        assert_eq!(gunzip(&gz), want);
    }

    #[test]
    fn a_plain_answer_inflates_large_segments_in_pieces() {
        let mut packed = Packed::new();
        let order: Vec<TargetId> = (0..2).map(target).collect();
        packed.set_targets(order.iter());
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
        packed.update(&order[0], ch, ALL_FAMILIES);
        packed.update(&order[1], chunks(3, 0b11), ALL_FAMILIES);
        packed.refresh();
        // Not compressed yet: the plain segment goes out sliced.
        let mut ready = Answer::default();
        packed.plain(Format::Text, &mut ready);
        assert!(ready.parts.iter().all(|p| matches!(p, Part::Ready(_))));
        let pieces: Vec<Bytes> = ready.pieces().collect();
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        let sliced = pieces.concat();
        packed.deflate_stale(&mut compressor());
        assert!(!packed.behind());
        let mut answer = Answer::default();
        packed.plain(Format::Text, &mut answer);
        assert!(answer.parts.iter().any(|p| matches!(p, Part::Deflated(_))));
        let len = answer.len;
        let pieces: Vec<Bytes> = answer.pieces().collect();
        assert!(pieces.iter().all(|p| p.len() <= PIECE));
        let text: Vec<u8> = pieces.concat();
        assert_eq!(text.len() as u64, len);
        assert!(big.len() > 2 * PIECE);
        assert_eq!(text, sliced);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(&big), "the big chunk, whole and in order");
    }

    #[test]
    fn a_relayout_keeps_series_and_holds_them_compressed() {
        let mut packed = Packed::new();
        let mut order: Vec<TargetId> = (0..200).map(target).collect();
        packed.set_targets(order.iter());
        let mut held = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            let c = chunks(i as u64, 0b1011);
            held.insert(t.clone(), c.clone());
            packed.update(t, c, ALL_FAMILIES);
        }
        packed.refresh();
        packed.deflate_stale(&mut compressor());
        // A reload drops every third target and adds some: every run shifts.
        order.retain(|t| !t.target.ends_with('3'));
        order.extend((500..530).map(target));
        order.sort();
        held.retain(|t, _| order.contains(t));
        packed.set_targets(order.iter());
        assert!(
            !packed.behind(),
            "nothing left to compress after a relayout"
        );
        assert!(packed
            .runs
            .iter()
            .all(|r| r.segments.iter().all(|s| s.plain.is_none())));
        let (plain, gz) = answers(&mut packed, Format::Text, b"");
        assert_eq!(plain, model(Format::Text, &order, &held));
        assert_eq!(gunzip(&gz), plain);
        // An unchanged poll after the relayout is still told unchanged.
        let (t, c) = held
            .iter()
            .next()
            .map(|(t, c)| (t.clone(), c.clone()))
            .unwrap();
        assert!(!packed.update(&t, c, ALL_FAMILIES));
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
