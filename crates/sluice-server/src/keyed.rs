//! A 128-bit keyed hash for in-memory cache keys derived from secrets or from bytes a client
//! chooses: SipHash under two random keys drawn at start, so nobody outside the process can
//! aim one input at another's entry, at a fraction of SHA-256's cost.

use std::hash::{BuildHasher as _, RandomState};

#[derive(Debug, Default)]
pub struct KeyedHash(RandomState, RandomState);

impl KeyedHash {
    pub fn of(&self, bytes: &[u8]) -> u128 {
        (u128::from(self.0.hash_one(bytes)) << 64) | u128::from(self.1.hash_one(bytes))
    }
}
