//! What the live scenarios of every system share: the wall clock, and stable hashes that
//! turn a name into a phase offset and a `(name, cycle)` pair into a roll of the dice.
//!
//! Live answers are pure functions of these, so nothing is stored and a restart replays
//! the same story. A leaf: it imports nothing else of the simulator.

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// FNV-1a, so phase offsets are stable across runs and platforms.
pub(crate) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64 finalizer: decorrelates `(job, cycle)` pairs.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A number in `0.0..1.0` from a hash.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}
