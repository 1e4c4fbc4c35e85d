//! Request rate limits: `governor`'s GCRA, one state per key — the OFREP client key, or the
//! source address of a sign-in request (see [`crate::oidc`]).
//!
//! A key may spend its whole quota at once and then one more request every `period / quota`;
//! there is no window edge at which twice the limit can pass. A refused request is told when
//! the next one would pass (`Retry-After`, whole seconds rounded up). The state lives in this
//! process, so the limit holds per instance: with several instances a key gets the quota on
//! each.

use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
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

    /// At most `per_minute` requests per key at once, then one more every `60 / per_minute`
    /// seconds; `None` (or zero) means unlimited.
    pub fn per_minute(per_minute: Option<u32>) -> Self {
        let limiter = per_minute
            .and_then(NonZeroU32::new)
            .map(|n| governor::RateLimiter::keyed(Quota::per_minute(n)));
        Self { limiter }
    }

    /// Counts one request of `key`; `RateLimited` when the key is over its rate.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::RateLimited {
                retry_after: secs.max(1),
            }
        })
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
        assert!(matches!(
            l.check("a"),
            Err(ApiError::RateLimited { retry_after: 1 })
        ));
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn a_per_minute_key_is_told_when_the_next_request_passes() {
        let l = RateLimiter::per_minute(Some(2));
        assert!(l.check("10.0.0.1").is_ok());
        assert!(l.check("10.0.0.1").is_ok());
        match l.check("10.0.0.1") {
            Err(ApiError::RateLimited { retry_after }) => {
                assert!((29..=30).contains(&retry_after), "{retry_after}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_limit_never_refuses() {
        let l = RateLimiter::new(None);
        assert!((0..1000).all(|_| l.check("a").is_ok()));
    }
}
