//! The gzip `/metrics` answer is assembled from segments compressed when polls finish
//! (src/exposition/): a gzip header, raw deflate segments, an empty final block and a trailer
//! whose CRC-32 is combined from the segments' CRCs. These tests decode it with Rust's flate2
//! (zlib-rs), from the real binary polling the simulator; the end-to-end tier decodes it with
//! curl, Python and promtool too (tests/e2e/gzip_answers.rs), and a real Prometheus (Go's
//! `compress/gzip`) scrapes it in tests/e2e/alerts_and_dashboards.rs. Decoded, it is byte for
//! byte the plain answer, but for the `process_*` values that change between any two scrapes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::gzip::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_decode_to_the_plain_answer() {
    // 300 servers: five runs of targets, so many segments per family.
    let (_sim, exp) = fleet(300, 4, "1h").await;
    for accept in [None, Some(OPEN_METRICS)] {
        let (status, encoding, length, plain) = scrape(&exp, accept, false).await;
        assert_eq!((status, encoding.as_str()), (200, ""));
        assert_eq!(length, plain.len() as u64);
        assert!(
            plain.len() > 1_000_000,
            "a large exposition: {}",
            plain.len()
        );
        let (status, encoding, length, gz) = scrape(&exp, accept, true).await;
        assert_eq!((status, encoding.as_str()), (200, "gzip"));
        assert_eq!(length, gz.len() as u64);
        assert!(
            gz.len() * 10 < plain.len(),
            "{} of {}",
            gz.len(),
            plain.len()
        );
        assert_eq!(comparable(&gunzip(&gz)), comparable(&plain), "flate2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_answers_follow_polls_that_change_series() {
    // A 1 s interval: segments are replaced between scrapes, and every answer still decodes
    // whole with a matching CRC (flate2 checks it).
    let (_sim, exp) = fleet(100, 3, "1s").await;
    // Scrapes go on until three different answers were seen (poll durations and last-success
    // times move with every poll); each one is checked whole.
    let mut texts = HashSet::new();
    let mut scrapes = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while texts.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "answers did not change between polls: {} different in {scrapes} scrapes",
            texts.len()
        );
        let (status, encoding, length, gz) = scrape(&exp, None, true).await;
        assert_eq!(
            (status, encoding.as_str(), length),
            (200, "gzip", gz.len() as u64)
        );
        let text = String::from_utf8(gunzip(&gz)).unwrap();
        assert_eq!(
            text.matches("backup_target_up{").count(),
            100,
            "every target in every answer"
        );
        texts.insert(text);
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
