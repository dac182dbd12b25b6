//! `rate_limit`: exporter-toolkit's token bucket over every request, checked before
//! authentication so that a flood of requests cannot queue bcrypt checks.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `burst` requests at once, one more every `every`.
#[derive(Debug)]
pub(super) struct RateLimit {
    every: Duration,
    burst: u32,
    /// Tokens left, and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// The limiter `rate_limit.interval` and `rate_limit.burst` ask for; `None` when the
    /// interval is absent or zero (no limit).
    pub(super) fn new(interval: Option<&str>, burst: Option<u32>) -> Result<Option<Self>, String> {
        let every = match interval.map(str::trim) {
            None | Some("") | Some("0") => return Ok(None),
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| format!("rate_limit.interval: {text:?}: {e}"))?,
        };
        if every.is_zero() {
            return Ok(None);
        }
        let burst = burst.unwrap_or(0);
        if burst == 0 {
            return Err(
                "rate_limit.burst: must be at least 1 when an interval is set (0 would refuse every request)"
                    .into(),
            );
        }
        Ok(Some(RateLimit {
            every,
            burst,
            bucket: Mutex::new((f64::from(burst), Instant::now())),
        }))
    }

    /// Takes a token if one is left at `now`.
    pub(super) fn allow(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = *bucket;
        let refill = now.saturating_duration_since(at).as_secs_f64() / self.every.as_secs_f64();
        let tokens = (tokens + refill).min(f64::from(self.burst));
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_interval_or_a_zero_one_is_no_limit() {
        for interval in [None, Some(""), Some(" "), Some("0"), Some("0s")] {
            assert!(
                RateLimit::new(interval, Some(1)).unwrap().is_none(),
                "{interval:?}"
            );
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let e = RateLimit::new(Some("soon"), Some(1)).unwrap_err();
        assert!(e.starts_with("rate_limit.interval: \"soon\": "), "{e}");
        for burst in [None, Some(0)] {
            let e = RateLimit::new(Some("1s"), burst).unwrap_err();
            assert!(e.starts_with("rate_limit.burst: must be at least 1"), "{e}");
        }
    }

    #[test]
    fn a_burst_then_one_request_per_interval() {
        let limit = RateLimit::new(Some("1s"), Some(2)).unwrap().unwrap();
        let t0 = Instant::now();
        assert!(limit.allow(t0));
        assert!(limit.allow(t0));
        assert!(!limit.allow(t0), "the burst is spent");
        assert!(
            !limit.allow(t0 + Duration::from_millis(500)),
            "half a token"
        );
        assert!(limit.allow(t0 + Duration::from_secs(1)), "a whole token");
        assert!(!limit.allow(t0 + Duration::from_secs(1)));
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(3600);
        assert!(limit.allow(later));
        assert!(limit.allow(later));
        assert!(!limit.allow(later));
    }
}
