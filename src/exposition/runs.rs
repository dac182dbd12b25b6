//! Targets laid out in runs for the pre-compressed job and target families.
//!
//! Targets are laid out in store order in runs of [`TARGETS_PER_RUN`]. Each run keeps, per
//! family, one *segment*: the series of its targets back to back, as a raw deflate stream
//! compressed on its own (`codec.rs`). Raw deflate segments concatenate: a gzip answer is
//! every family's header segment and run segments in a gzip frame (`gzip.rs`), so a gzip
//! scrape copies bytes and compresses only the few kilobytes of the exporter's own metrics.
//! A plain scrape inflates the segments as the client reads (about 2 GB/s); the series are
//! held only compressed, at a thirtieth of their size.
//!
//! A target's poll hands its new chunks to [`Runs::update`]; a family whose bytes changed
//! (told by a keyed 64-bit hash of the target's chunk) marks its run's segment dirty. Once
//! every target of the run has reported, the run's dirty segments are rebuilt as plain text
//! (the old segment inflated, the new chunks spliced in), and a background task compresses
//! them ([`Runs::due`] / [`Runs::install`]), off the scrape path; a gzip scrape compresses
//! what is still stale itself ([`Runs::deflate_stale`]), so every answer is current.
//!
//! Runs of targets, not one segment per target: a deflate stream compresses series lines
//! against the similar lines before them, and a segment sees only its own. Measured on the
//! 2,000 x 5 fleet exposition (`benches/gzip-segments.py`): one segment per (family, target)
//! is 3.8 MiB, runs of 64 targets 0.92 MiB, one stream of the whole text 0.86 MiB.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::time::Duration;

use bytes::Bytes;
use flate2::{Compress, Decompress};
use tokio::time::Instant;

use super::answer::Answer;
use super::codec::{compressor, decompressor, Deflated};
use super::gzip::Gzip;
use crate::metrics::{Family, Format, FAMILY_COUNT};
use crate::model::TargetId;

/// Every family, as an `update` mask.
pub const ALL_FAMILIES: u32 = (1 << FAMILY_COUNT) - 1;

/// How long the background packer lets a run's changes wait for the rest of its targets.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// Targets per run (per segment of each family); at most 64 (`Run::reported` is a u64).
pub const TARGETS_PER_RUN: usize = 64;

/// One target's series of every family.
pub type Chunks = [Bytes; FAMILY_COUNT];

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
    /// The segment's plain bytes compressed with `compressor`, for [`Runs::install`].
    pub fn compress(&self, compressor: &mut Compress) -> Deflated {
        Deflated::of(compressor, &self.plain)
    }
}

/// The job and target families of every target, laid out in runs, pre-compressed.
#[derive(Debug)]
pub struct Runs {
    runs: Vec<Run>,
    index: HashMap<TargetId, (usize, usize)>,
    version: u64,
    /// Keys the change hashes (random per process: no input can be made to collide).
    hasher: std::collections::hash_map::RandomState,
    decompressor: Decompress,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            runs: Vec::new(),
            index: HashMap::new(),
            version: 0,
            hasher: Default::default(),
            decompressor: decompressor(),
        }
    }
}

impl Runs {
    /// No target laid out yet.
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
    pub fn layout<'a>(&mut self, order: impl IntoIterator<Item = &'a TargetId>) {
        let order: Vec<&TargetId> = order.into_iter().collect();
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
        let mut compressor = (!old_runs.is_empty()).then(compressor);
        let mut runs = Vec::with_capacity(order.len().div_ceil(TARGETS_PER_RUN));
        let mut index = HashMap::with_capacity(order.len());
        // The leading runs whose targets stay in the same places stay as they are (no
        // inflating, no compressing): targets added at the end (discovery hands them over
        // page by page) rebuild only the last run and the new ones.
        let same = old_runs
            .iter()
            .zip(order.chunks(TARGETS_PER_RUN))
            .take_while(|(run, group)| {
                run.targets.len() == group.len()
                    && run.targets.iter().zip(group.iter()).all(|(a, b)| a == *b)
            })
            .count();
        let mut old_runs: Vec<Option<Run>> = old_runs.into_iter().map(Some).collect();
        for (r, slot) in old_runs.iter_mut().take(same).enumerate() {
            if let Some(run) = slot.take() {
                for (s, target) in run.targets.iter().enumerate() {
                    index.insert(target.clone(), (r, s));
                }
                runs.push(run);
            }
        }
        let mut inflated: Option<(usize, Vec<Bytes>)> = None;
        for (r, group) in order.chunks(TARGETS_PER_RUN).enumerate().skip(same) {
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
                    if let Some(old) = old_runs.get(or).and_then(Option::as_ref) {
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

    /// The segments whose compressed form is stale (call [`Runs::refresh`] first).
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

    /// [`Runs::plain`] as raw deflate segments; what the background packer has not
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
    use proptest::prelude::*;

    use super::*;
    use crate::exposition::test_support::{answers, chunks, gunzip, model, target};

    #[test]
    fn a_relayout_keeps_series_and_holds_them_compressed() {
        let mut runs = Runs::new();
        let mut order: Vec<TargetId> = (0..200).map(target).collect();
        runs.layout(order.iter());
        let mut held = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            let c = chunks(i as u64, 0b1011);
            held.insert(t.clone(), c.clone());
            runs.update(t, c, ALL_FAMILIES);
        }
        runs.refresh();
        runs.deflate_stale(&mut compressor());
        // A reload drops every third target and adds some: every run shifts.
        order.retain(|t| !t.target.ends_with('3'));
        order.extend((500..530).map(target));
        order.sort();
        held.retain(|t, _| order.contains(t));
        runs.layout(order.iter());
        assert!(!runs.behind(), "nothing left to compress after a relayout");
        assert!(runs
            .runs
            .iter()
            .all(|r| r.segments.iter().all(|s| s.plain.is_none())));
        let (plain, gz) = answers(&mut runs, Format::Text, b"");
        assert_eq!(plain, model(Format::Text, &order, &held));
        assert_eq!(gunzip(&gz), plain);
        // An unchanged poll after the relayout is still told unchanged.
        let (t, c) = held
            .iter()
            .next()
            .map(|(t, c)| (t.clone(), c.clone()))
            .unwrap();
        assert!(!runs.update(&t, c, ALL_FAMILIES));
    }

    /// Targets added at the end leave the full runs before them as they were (same
    /// segments, nothing inflated or compressed again); the answers hold every series.
    #[test]
    fn targets_added_at_the_end_keep_the_runs_before_them() {
        let mut runs = Runs::new();
        let mut order: Vec<TargetId> = (0..130).map(target).collect();
        runs.layout(order.iter());
        let mut held = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            let c = chunks(i as u64, ALL_FAMILIES);
            held.insert(t.clone(), c.clone());
            runs.update(t, c, ALL_FAMILIES);
        }
        runs.refresh();
        runs.deflate_stale(&mut compressor());
        let versions = |runs: &Runs, r: usize| -> Vec<u64> {
            runs.runs[r].segments.iter().map(|s| s.version).collect()
        };
        let before = [versions(&runs, 0), versions(&runs, 1), versions(&runs, 2)];
        // Ten more at the end: runs 0 and 1 (64 targets each) stay, run 2 is rebuilt.
        order.extend((900..910).map(target));
        runs.layout(order.iter());
        assert_eq!(versions(&runs, 0), before[0]);
        assert_eq!(versions(&runs, 1), before[1]);
        assert_ne!(versions(&runs, 2), before[2]);
        assert_eq!(runs.runs[2].targets.len(), 12);
        let (plain, gz) = answers(&mut runs, Format::Text, b"");
        assert_eq!(plain, model(Format::Text, &order, &held));
        assert_eq!(gunzip(&gz), plain);
        // A target in a kept run is still found where it was.
        let (t, c) = (order[3].clone(), held[&order[3]].clone());
        assert!(!runs.update(&t, c, ALL_FAMILIES), "unchanged");
    }

    #[test]
    fn a_compression_of_replaced_bytes_is_not_installed() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..3).map(target).collect();
        runs.layout(order.iter());
        runs.update(&order[0], chunks(1, 1), ALL_FAMILIES);
        runs.refresh();
        let stale = runs.stale();
        assert_eq!(stale.len(), 1);
        let mut c = compressor();
        let old = stale[0].compress(&mut c);
        // The target changes before the old compression lands.
        runs.update(&order[0], chunks(2, 1), ALL_FAMILIES);
        runs.refresh();
        runs.install(&stale[0], old);
        assert!(
            runs.behind(),
            "the segment of the newer bytes is still to compress"
        );
        let (plain, gz) = answers(&mut runs, Format::Text, b"");
        assert_eq!(gunzip(&gz), plain);
        assert!(plain.ends_with(&chunks(2, 1)[0]));
    }

    #[test]
    fn unchanged_series_leave_segments_alone() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..3).map(target).collect();
        runs.layout(order.iter());
        assert!(runs.update(&order[1], chunks(5, 0b101), ALL_FAMILIES));
        let mut c = compressor();
        runs.refresh();
        runs.deflate_stale(&mut c);
        assert!(!runs.behind());
        assert!(!runs.update(&order[1], chunks(5, 0b101), ALL_FAMILIES));
        // Only family 1 considered: what changed elsewhere is not taken.
        assert!(!runs.update(&order[1], chunks(6, 0b101), 0b10));
        assert!(!runs.behind());
        assert!(
            !runs.update(&target(99), chunks(1, 1), ALL_FAMILIES),
            "unknown target"
        );
    }

    /// On tokio's paused clock: the run's wait starts when its target reports (`update` reads
    /// the clock), and only `advance` moves time, so "after the wait" is exact however slowly
    /// the test runs.
    #[tokio::test(start_paused = true)]
    async fn a_run_is_due_once_all_its_targets_reported_or_after_the_wait() {
        let mut runs = Runs::new();
        let order: Vec<TargetId> = (0..TARGETS_PER_RUN + 2).map(target).collect();
        runs.layout(order.iter());
        let now = Instant::now();
        // After a relayout every run waits for its targets.
        assert!(runs.due(now, usize::MAX).is_empty());
        for t in &order[..TARGETS_PER_RUN] {
            runs.update(t, chunks(1, 1), ALL_FAMILIES);
        }
        let first = runs.due(now, usize::MAX);
        assert!(
            !first.is_empty() && first.iter().all(|s| s.run == 0),
            "{first:?}"
        );
        let mut c = compressor();
        for s in &first {
            let d = s.compress(&mut c);
            runs.install(s, d);
        }
        // The second run has one of two targets in: due only after the wait.
        runs.update(&order[TARGETS_PER_RUN], chunks(2, 1), ALL_FAMILIES);
        tokio::time::advance(MAX_WAIT - Duration::from_millis(1)).await;
        assert!(runs.due(Instant::now(), usize::MAX).is_empty());
        tokio::time::advance(Duration::from_millis(1)).await;
        let later = runs.due(Instant::now(), usize::MAX);
        assert!(
            !later.is_empty() && later.iter().all(|s| s.run == 1),
            "{later:?}"
        );
        // A target of the packed first run changes: the run waits for the others again,
        // though they all reported before.
        runs.update(&order[0], chunks(3, 1), ALL_FAMILIES);
        assert!(runs.due(now, usize::MAX).iter().all(|s| s.run != 0));
        for t in &order[1..TARGETS_PER_RUN] {
            runs.update(t, chunks(1, 1), ALL_FAMILIES);
        }
        assert!(runs.due(now, usize::MAX).iter().any(|s| s.run == 0));
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
        /// Targets added at the end, the others kept in place (discovery's batches).
        Append {
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
            1 => (0usize..150).prop_map(|add| Step::Append { add }),
            2 => Just(Step::Pack),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// After any sequence of polls, relayouts and background packs, the plain answer is
        /// the model's and the gzip answer decodes to the same bytes.
        #[test]
        fn answers_follow_any_sequence_of_updates(steps in proptest::collection::vec(step(), 1..40)) {
            let mut runs = Runs::new();
            let mut order: Vec<TargetId> = (0..100).map(target).collect();
            let mut next = 100;
            runs.layout(order.iter());
            let mut held: HashMap<TargetId, Chunks> = HashMap::new();
            let mut c = compressor();
            for step in steps {
                match step {
                    Step::Update { target, seed, families, mask } => {
                        if let Some(t) = order.get(target % order.len().max(1)).cloned() {
                            let ch = chunks(seed, families);
                            runs.update(&t, ch.clone(), mask);
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
                        runs.layout(order.iter());
                    }
                    Step::Append { add } => {
                        order.extend((next..next + add).map(target));
                        next += add;
                        runs.layout(order.iter());
                    }
                    Step::Pack => {
                        runs.refresh();
                        let stale = runs.stale();
                        for s in &stale {
                            let d = s.compress(&mut c);
                            runs.install(s, d);
                        }
                    }
                }
            }
            let (plain, gz) = answers(&mut runs, Format::Text, b"tail 1\n");
            let mut want = model(Format::Text, &order, &held);
            want.extend_from_slice(b"tail 1\n");
            prop_assert_eq!(&plain, &want);
            prop_assert_eq!(gunzip(&gz), want);
        }
    }
}
