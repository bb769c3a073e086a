//! When to retry a request and how long to wait first: retriable statuses,
//! capped exponential backoff with jitter, and `Retry-After`.
//!
//! Depends on nothing else in the client: the policy and the counter of
//! retries are passed in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Whether an HTTP status is worth retrying.
pub(super) fn retriable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// First backoff delay.
    pub backoff: Duration,
    /// Largest backoff delay (and largest Retry-After honoured).
    pub max_backoff: Duration,
}

impl Policy {
    /// The wait before retry number `attempt + 1`: between half and all of
    /// the capped exponential delay, or the answer's `Retry-After` (capped)
    /// when that is longer.
    pub(super) fn delay(&self, attempt: u32, headers: &HeaderMap) -> Duration {
        let cap = self.max_backoff;
        let exp = self
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(cap);
        let d = exp.mul_f64(0.5 + 0.5 * jitter());
        match retry_after(headers) {
            Some(ra) => d.max(ra.min(cap)),
            None => d,
        }
    }

    /// Counts a retry in `retried` and waits [`Policy::delay`].
    pub(super) fn pause(&self, attempt: u32, headers: &HeaderMap, retried: &AtomicU64) {
        retried.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.delay(attempt, headers));
    }
}

/// `Retry-After` in seconds, when the answer has one.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A pseudo-random number in [0, 1) for jitter (no need for a CSPRNG).
fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    #[allow(clippy::cast_precision_loss)]
    let x = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn jitter_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn retriable_statuses() {
        for (status, want) in [
            (408, true),
            (429, true),
            (500, true),
            (503, true),
            (400, false),
            (401, false),
            (404, false),
            (416, false),
        ] {
            assert_eq!(retriable(status), want, "{status}");
        }
    }

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = Policy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        };
        let none = HeaderMap::new();
        // (attempt, Retry-After, lower bound, upper bound)
        let cases = [
            (0, None, 50, 100),
            (2, None, 200, 400),
            (10, None, 1000, 2000),
            (0, Some("1"), 1000, 1000),
            (0, Some("60"), 2000, 2000),
            (0, Some("soon"), 50, 100),
        ];
        for (attempt, ra, lo, hi) in cases {
            let mut h = none.clone();
            if let Some(v) = ra {
                h.insert(RETRY_AFTER, HeaderValue::from_static(v));
            }
            let d = p.delay(attempt, &h);
            assert!(
                d >= Duration::from_millis(lo) && d <= Duration::from_millis(hi),
                "attempt {attempt}, Retry-After {ra:?}: {d:?}"
            );
        }
    }
}
