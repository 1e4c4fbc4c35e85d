//! The OFREP client-key rate limit: `governor`'s GCRA, one state per client key.
//!
//! A key may spend `per_second` requests at once and then one more every `1/per_second`
//! seconds; there is no window edge at which twice the limit can pass. The state lives in
//! this process, so the limit holds per instance: with several instances a key gets up to
//! `per_second` on each.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// At most `per_second` OFREP requests per second per client key, then 429.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl RateLimiter {
    /// `None` (or zero) means unlimited.
    pub fn new(per_second: Option<u32>) -> Self {
        let limiter = per_second
            .and_then(NonZeroU32::new)
            .map(|n| governor::RateLimiter::keyed(Quota::per_second(n)));
        Self { limiter }
    }

    /// Counts one request of `key`; `RateLimited` when the key is over its rate.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key.to_owned())
            .map_err(|_| ApiError::RateLimited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_is_refused_and_others_are_not_slowed() {
        let l = RateLimiter::new(Some(3));
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        assert!(matches!(l.check("a"), Err(ApiError::RateLimited)));
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn no_limit_never_refuses() {
        let l = RateLimiter::new(None);
        assert!((0..1000).all(|_| l.check("a").is_ok()));
    }
}
