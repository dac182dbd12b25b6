//! Wall-clock time as exported: Unix seconds. A leaf: imports nothing of the crate.

use std::time::SystemTime;

/// Now, as Unix seconds with a fraction (0 if the clock is before 1970).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}
