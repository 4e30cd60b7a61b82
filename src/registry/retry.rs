//! The retry policy and the one retry loop: transient failures (connection
//! errors and resets, 408, 429, 500, 502, 503, 504, content that failed
//! verification) are retried with exponential backoff and full jitter, or
//! after the registry's `Retry-After` (RFC 9110 §10.2.3), up to the attempt
//! limit. Each operation runs under exactly one loop, never nested.

use super::stats::Accounting;
use super::RegistryError;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::hash::{BuildHasher, Hasher as _};
use std::time::Duration;

/// The retry policy: which failures are retried is fixed (connection errors and
/// resets, 408, 429, 500, 502, 503, 504, content that failed verification);
/// how often and how long to wait is configured here.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; it doubles with each attempt, with full jitter.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

/// Default number of attempts for one operation.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// How long to wait before attempt `attempt + 1`: the registry's
    /// `Retry-After` (capped), else the doubled backoff with full jitter.
    fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_retry_after),
            None => jitter(
                self.base_delay
                    .saturating_mul(1 << attempt.min(16))
                    .min(self.max_delay),
            ),
        }
    }
}

/// Runs `op` under `policy`, counting retries and rate-limit waits for
/// `registry` in `stats`. The error returned records how many attempts were
/// made.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    stats: &Accounting,
    registry: &str,
    mut op: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, RegistryError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match e.retry_hint() {
                Some(hint) if attempt < policy.max_attempts => {
                    let after = hint.retry_after;
                    let wait = policy.wait(attempt, after);
                    stats.count(registry, |s| {
                        s.retries += 1;
                        if after.is_some() {
                            s.rate_limit_wait += wait;
                        }
                    });
                    tracing::info!(registry, attempt, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), error = %e, "retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(e.with_attempts(attempt)),
            },
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date (RFC 9110 §10.2.3); a date in
/// the past is zero, anything else unreadable is `None`.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A random duration in `[0, max)` (zero for zero).
fn jitter(max: Duration) -> Duration {
    // Each RandomState is seeded afresh, which is all the randomness jitter needs.
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(if nanos == 0 { 0 } else { r % nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let future = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(future)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn jitter_stays_below_its_bound() {
        for _ in 0..100 {
            assert!(jitter(Duration::from_millis(50)) < Duration::from_millis(50));
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn waits_honour_retry_after_and_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.wait(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(p.wait(1, Some(Duration::from_secs(600))), p.max_retry_after);
        for attempt in 1..40 {
            assert!(p.wait(attempt, None) < p.max_delay);
        }
    }
}
