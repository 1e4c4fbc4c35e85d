//! A 128-bit keyed hash for in-memory cache keys derived from secrets or from bytes a client
//! chooses: SipHash-1-3 with 128-bit output under a random key drawn at start, so nobody
//! outside the process can aim one input at another's entry, at a fraction of SHA-256's cost.
//! One pass over the input (two 64-bit hashes under two keys cost twice that on every
//! authenticated request).

use siphasher::sip128::SipHasher13;

#[derive(Debug)]
pub struct KeyedHash(SipHasher13);

impl Default for KeyedHash {
    fn default() -> Self {
        use rand::RngCore as _;
        let mut rng = rand::rngs::OsRng;
        KeyedHash(SipHasher13::new_with_keys(rng.next_u64(), rng.next_u64()))
    }
}

impl KeyedHash {
    pub fn of(&self, bytes: &[u8]) -> u128 {
        self.0.hash(bytes).as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyedHash;

    #[test]
    fn same_bytes_same_key_and_two_instances_disagree() {
        let a = KeyedHash::default();
        let b = KeyedHash::default();
        assert_eq!(a.of(b"slu_cli_abc"), a.of(b"slu_cli_abc"));
        assert_ne!(a.of(b"slu_cli_abc"), a.of(b"slu_cli_abd"));
        // Keys are drawn per instance: another process (or cache) maps the input elsewhere.
        assert_ne!(a.of(b"slu_cli_abc"), b.of(b"slu_cli_abc"));
    }
}
