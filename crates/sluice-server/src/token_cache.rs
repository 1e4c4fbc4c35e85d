//! Authenticated tokens kept in memory (see [`crate::auth`], which fills and reads it).

use crate::caller::Caller;
use crate::keyed::KeyedHash;
use sluice_core::token::SecretToken;
use std::sync::Arc;

type Expiry = Option<chrono::DateTime<chrono::Utc>>;

/// Authenticated tokens, so the hot paths (decisions, flag evaluation) do not read the store
/// per request. Emptied whenever tokens, principals or policy change (here or, through the
/// change counter, on another instance); an entry is never used at or after its token's expiry.
///
/// Keyed by a 128-bit keyed hash of the presented token ([`KeyedHash`]): a fraction of the cost of the SHA-256 the store is looked up by, and neither the
/// token nor its stored hash is kept in memory. A hit needs a token whose keyed hash equals
/// that of one the store verified: with unknown keys, a 2^-128 chance per guess.
#[derive(Debug, Default)]
pub struct TokenCache {
    keys: KeyedHash,
    /// Keys are already keyed hashes: a fast hash of them is safe.
    map: std::sync::RwLock<rustc_hash::FxHashMap<u128, (Arc<Caller>, Expiry)>>,
}

impl TokenCache {
    pub fn key(&self, token: &SecretToken) -> u128 {
        self.key_of(token.expose())
    }

    /// The key of a token's text (as presented, trimmed).
    pub fn key_of(&self, token: &str) -> u128 {
        self.keys.of(token.as_bytes())
    }

    pub fn get(&self, key: u128, now: chrono::DateTime<chrono::Utc>) -> Option<Arc<Caller>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let (caller, expires) = map.get(&key)?;
        if expires.is_some_and(|e| now >= e) {
            return None;
        }
        Some(caller.clone())
    }

    pub fn put(&self, key: u128, caller: Arc<Caller>, expires: Expiry) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(key, (caller, expires));
    }

    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
