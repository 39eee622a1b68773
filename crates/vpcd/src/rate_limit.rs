//! The per-account request rate limit (issue 11, finding 8): a token
//! bucket per account, refilled at `rate` requests per second up to `burst`.
//!
//! Only requests whose signature verified are counted, so a caller spends
//! its own account's tokens and never another's; the refusal is the
//! documented "too many requests" answer of each protocol
//! ([`ErrorCode::RequestLimitExceeded`]). The buckets live in this process:
//! several vpcd processes on one database each allow the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vpcd_types::AccountId;

use crate::error::{ApiError, ErrorCode, Why};

/// The limit: `per_second` requests per second on average, `burst` at once.
/// `per_second == 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 40,
        }
    }
}

/// Buckets are forgotten once full and this many exist, so the map holds
/// the recently active accounts only.
const TIDY_ABOVE: usize = 4096;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every account seen.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<AccountId, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token of `account`'s bucket, or refuse the request.
    pub(crate) fn admit(&self, account: AccountId) -> Result<(), ApiError> {
        self.admit_at(account, Instant::now())
    }

    fn admit_at(&self, account: AccountId, now: Instant) -> Result<(), ApiError> {
        let RateLimit { per_second, burst } = self.limit;
        if per_second <= 0.0 {
            return Ok(());
        }
        let burst = f64::from(burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > TIDY_ABOVE {
            buckets.retain(|_, b| refilled(b, now, per_second, burst) < burst);
        }
        let bucket = buckets.entry(account).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = refilled(bucket, now, per_second, burst);
        bucket.at = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            return Ok(());
        }
        bucket.tokens = tokens;
        let wait = Duration::from_secs_f64((1.0 - tokens) / per_second);
        Err(ApiError {
            code: ErrorCode::RequestLimitExceeded,
            param: None,
            why: Why::text(format!(
                "the account sent more than {per_second} requests per second (bursts up to {burst}); \
                 retry in {} ms",
                wait.as_millis().max(1)
            )),
        })
    }
}

/// The bucket's tokens at `now`.
fn refilled(b: &Bucket, now: Instant, per_second: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    (b.tokens + elapsed * per_second).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimit { per_second, burst })
    }

    #[test]
    fn a_burst_passes_then_the_rate_refills_it() {
        let l = limiter(2.0, 3);
        let a = AccountId::new(1);
        let t0 = Instant::now();
        for _ in 0..3 {
            l.admit_at(a, t0).unwrap();
        }
        let e = l.admit_at(a, t0).unwrap_err();
        assert_eq!(e.code, ErrorCode::RequestLimitExceeded);
        assert!(
            e.v2_message().contains("retry in 500 ms"),
            "{}",
            e.v2_message()
        );
        // Half a second brings one token back, not two.
        let t1 = t0 + Duration::from_millis(500);
        l.admit_at(a, t1).unwrap();
        assert!(l.admit_at(a, t1).is_err());
    }

    #[test]
    fn accounts_have_their_own_buckets() {
        let l = limiter(1.0, 1);
        let t0 = Instant::now();
        l.admit_at(AccountId::new(1), t0).unwrap();
        assert!(l.admit_at(AccountId::new(1), t0).is_err());
        l.admit_at(AccountId::new(2), t0).unwrap();
    }

    #[test]
    fn zero_rate_is_no_limit() {
        let l = limiter(0.0, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            l.admit_at(AccountId::new(1), t0).unwrap();
        }
    }

    #[test]
    fn full_buckets_are_forgotten_when_many_accounts_were_seen() {
        let l = limiter(1000.0, 1);
        let t0 = Instant::now();
        for i in 0..=(TIDY_ABOVE as i64) {
            l.admit_at(AccountId::new(i + 1), t0).unwrap();
        }
        l.admit_at(AccountId::new(-1), t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
    }
}
