//! Identifiers of stored things (requests, tokens, sessions, ...).

/// A fresh identifier with a readable prefix and 64 random bits.
pub fn new_id(prefix: &str) -> String {
    use rand::RngCore;
    format!("{prefix}-{:016x}", rand::rngs::OsRng.next_u64())
}
