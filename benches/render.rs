//! Cost of the hot paths of a 2,000-server x 5-job fleet (10,000 jobs): one target's poll
//! landing in the store (the same records again: only its `backup_target_*` lines are
//! rendered), one plain scrape (`Packed::plain` cut into the server's pieces: the
//! pre-compressed segments inflated) and one gzip scrape (the segments assembled into a gzip
//! member, as `/metrics` answers `Accept-Encoding: gzip`).

// A bench set-up that fails should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use backup_exporter::exposition::codec::compressor;
use backup_exporter::exposition::gzip::Gzip;
use backup_exporter::exposition::{Answer, Packed};
use backup_exporter::metrics::{self, FamilyBuffers, Format, JobHistory};
use backup_exporter::model::{JobKey, JobRecord, PollOutput, ServerSummary, TargetId};
use backup_exporter::server::PIECE;
use backup_exporter::status::Status;
use backup_exporter::store::{PollResult, SeriesSettings, Store};
use backup_exporter::systems::zdm;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const SERVERS: usize = 2_000;
const JOBS_PER_SERVER: usize = 5;
const NOW: f64 = 1_736_910_000.0;
const VOLUMES: [&str; 5] = ["/", "/home", "/var", "/data", "/opt"];

fn target(upstream: &Arc<str>, server: usize) -> TargetId {
    TargetId {
        system: zdm::SYSTEM,
        upstream: upstream.clone(),
        kind: zdm::SERVER,
        target: Arc::from(format!("fleet-{server:05}")),
    }
}

/// A job as the ZDM source maps a system-monitoring entry: mid-run, every field present.
fn job(upstream: &Arc<str>, server: usize, job: usize) -> JobRecord {
    JobRecord {
        key: Arc::new(JobKey {
            system: zdm::SYSTEM,
            upstream: upstream.clone(),
            operation: "backup".to_string(),
            job_name: format!("fleet-{server:05}-job-{job:02}"),
            server: format!("fleet-{server:05}"),
            volume: VOLUMES[(job - 1) % VOLUMES.len()].to_string(),
        }),
        status: Status::Running,
        raw_status: "run".to_string(),
        progress: Some(0.45),
        elapsed_seconds: Some(1223.0896697),
        start_time: Some(NOW - 1223.0896697),
        end_time: None,
        message: Some("백업 진행 중".to_string()),
        info: Vec::new(),
        ended_runs: None,
        newest_success_end: None,
        failure: None,
        size_bytes: None,
    }
}

fn poll_output(upstream: &Arc<str>, server: usize) -> PollOutput {
    PollOutput {
        jobs: (1..=JOBS_PER_SERVER)
            .map(|j| job(upstream, server, j))
            .collect(),
        summaries: vec![ServerSummary {
            server: format!("fleet-{server:05}"),
            completed: Some(2),
            running: Some(2),
            failed: Some(1),
            pending: Some(0),
            total: Some(JOBS_PER_SERVER as u64),
            progress: Some(0.6),
        }],
    }
}

/// A store that has seen one successful poll of every fleet server, and the exposition it
/// writes to.
fn full_store(upstream: &Arc<str>) -> (Store, Arc<Packed>, Vec<TargetId>) {
    let packed = Arc::new(Packed::new());
    let store = Store::new(packed.clone());
    let targets: Vec<TargetId> = (1..=SERVERS).map(|s| target(upstream, s)).collect();
    let tracked: Vec<(TargetId, SeriesSettings)> = targets
        .iter()
        .map(|t| {
            (
                t.clone(),
                SeriesSettings::stale_after(Duration::from_secs(90)),
            )
        })
        .collect();
    store.track(&tracked);
    for (i, t) in targets.iter().enumerate() {
        let result = PollResult::Success(poll_output(upstream, i + 1));
        store.record_poll(t, result, Duration::from_millis(12), NOW);
    }
    (store, packed, targets)
}

/// VmRSS of this process (Linux only), to show what the store of 10,000 jobs occupies.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The plain answer of the job and target families in the pieces `/metrics` writes.
fn plain_pieces(packed: &Packed) -> Vec<Bytes> {
    let mut answer = Answer::default();
    packed.plain(Format::Text, &mut answer);
    answer.pieces(PIECE).collect()
}

/// The gzip answer of the job and target families, as `/metrics` assembles and writes it.
fn gzip(packed: &Packed) -> Vec<u8> {
    let mut gz = Gzip::new();
    packed.deflated(Format::Text, &mut gz, &[]);
    let answer = gz.finish();
    let mut out = Vec::with_capacity(usize::try_from(answer.len).unwrap_or(0));
    for piece in answer.pieces(PIECE) {
        out.extend_from_slice(&piece);
    }
    out
}

fn render(c: &mut Criterion) {
    let upstream: Arc<str> = Arc::from("zdm-bench");
    let rss_before = rss_kb();
    let (store, packed, targets) = full_store(&upstream);
    // What the background packer does after the first cycle.
    packed.pack_due(&mut compressor());
    let rss_after = rss_kb();

    let chunks = plain_pieces(&packed);
    let plain: usize = chunks.iter().map(|b| b.len()).sum();
    let lines: usize = chunks
        .iter()
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .sum();
    eprintln!(
        "exposition of {} jobs: {} pieces, {} lines, {} bytes plain, {} bytes gzip",
        SERVERS * JOBS_PER_SERVER,
        chunks.len(),
        lines,
        plain,
        gzip(&packed).len()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        eprintln!(
            "RSS growth while filling the store: {:.1} MB",
            (after - before) as f64 / 1024.0
        );
    }

    let mut g = c.benchmark_group("fleet_2000x5");
    let rss_before = rss_kb();
    let outputs: Vec<PollOutput> = (1..=SERVERS).map(|s| poll_output(&upstream, s)).collect();
    if let (Some(before), Some(after)) = (rss_before, rss_kb()) {
        eprintln!(
            "RSS of the 10,000 job records alone: {:.1} MB",
            (after - before) as f64 / 1024.0
        );
    }
    let mut next = 0;
    g.bench_function("record_poll_one_target", |b| {
        b.iter_batched(
            || {
                // Rotate over the targets so the bench is not one hot map entry.
                next = (next + 1) % SERVERS;
                (next, outputs[next].clone())
            },
            |(i, output)| {
                store.record_poll(
                    &targets[i],
                    PollResult::Success(output),
                    Duration::from_millis(12),
                    NOW,
                );
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("exposition", |b| {
        b.iter(|| black_box(plain_pieces(&packed)))
    });
    g.bench_function("exposition_gzip", |b| b.iter(|| black_box(gzip(&packed))));
    g.finish();

    let one = job(&upstream, 1, 1);
    let history = JobHistory {
        runs: [3, 1, 1, 0],
        last_success: Some(NOW - 86_400.0),
        failing_since: None,
        last_duration: Some(1_800.0),
    };
    c.bench_function("render_job", |b| {
        b.iter(|| {
            let mut out = FamilyBuffers::new();
            metrics::render_job(
                &mut out,
                black_box(&one),
                black_box(&history),
                Default::default(),
            );
            out.finish()
        })
    });
}

criterion_group!(benches, render);
criterion_main!(benches);
