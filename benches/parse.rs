//! Cost of normalizing the loosely formatted fields of one upstream job: every job of every
//! poll goes through these, so a fleet of 10,000 jobs calls each about 10,000 times a cycle.

// A bench set-up that fails should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use backup_exporter::parse::{parse_duration, parse_percent, parse_time};
use backup_exporter::status::{parse_status, Status, StatusMap};
use criterion::{criterion_group, criterion_main, Criterion};

fn percent(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_percent");
    for input in ["45%", "45.5 %", "-"] {
        g.bench_function(input, |b| b.iter(|| parse_percent(black_box(input))));
    }
    g.finish();
}

fn duration(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_duration");
    for input in ["00:20:23.0896697", "27:03:10", "1.02:03:04.5", "PT12.42S"] {
        g.bench_function(input, |b| b.iter(|| parse_duration(black_box(input))));
    }
    g.finish();
}

fn time(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_time");
    let seoul = chrono_tz::Asia::Seoul;
    for input in ["2018-05-21T08:35:40.9488967Z", "2025-01-15 02:00:00", "-"] {
        g.bench_function(input, |b| {
            b.iter(|| parse_time(black_box(input), black_box(seoul)))
        });
    }
    g.finish();
}

fn status(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_status");
    let empty = StatusMap::new();
    let mut custom = StatusMap::new();
    custom.insert("Verifying", Status::Running);
    for input in ["run", "Completed With Warnings", "no-such-status"] {
        g.bench_function(input, |b| b.iter(|| parse_status(black_box(input), &empty)));
    }
    g.bench_function("Verifying (status_map)", |b| {
        b.iter(|| parse_status(black_box("Verifying"), &custom))
    });
    g.finish();
}

criterion_group!(benches, percent, duration, time, status);
criterion_main!(benches);
