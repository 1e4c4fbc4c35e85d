//! Every principal's entry of an [`AccessSnapshot`](super::AccessSnapshot), in shards.
//!
//! A change (a grant given or ended) makes a new snapshot that shares everything it does not
//! touch. With one map of every principal, each change copied the whole map — one pointer and
//! one name per principal: with 10,000 principals that was most of an audited write's
//! processor (BENCHMARKS.md, "An organisation of 10,000"). In shards of about
//! [`PER_SHARD`] principals, a change copies the list of shards and the one shard it touches.

use super::PrincipalAccess;
use std::collections::HashMap;
use std::sync::Arc;

/// About how many principals share a shard.
const PER_SHARD: usize = 64;
/// At most this many shards (past it, shards grow instead).
const MOST_SHARDS: usize = 1024;

type Shard = HashMap<Arc<str>, Arc<PrincipalAccess>>;

#[derive(Debug, Clone)]
pub(super) struct Principals {
    /// A power of two long.
    shards: Vec<Arc<Shard>>,
}

impl Principals {
    pub(super) fn new(entries: HashMap<String, PrincipalAccess>) -> Principals {
        let n = (entries.len() / PER_SHARD)
            .next_power_of_two()
            .min(MOST_SHARDS);
        let mut shards: Vec<Shard> = vec![HashMap::new(); n];
        for (name, access) in entries {
            let i = shard_of(&name, n);
            shards[i].insert(Arc::from(name), Arc::new(access));
        }
        Principals {
            shards: shards.into_iter().map(Arc::new).collect(),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&Arc<PrincipalAccess>> {
        self.shards[shard_of(name, self.shards.len())].get(name)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Arc<PrincipalAccess>> {
        self.shards.iter().flat_map(|s| s.values())
    }

    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Arc<PrincipalAccess>)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, v)| (&**k, v)))
    }

    #[cfg(test)]
    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The entry of `name`, to change. Its shard is copied the first time this snapshot
    /// changes it (the snapshot in force shares it), then changed in place: ask only for an
    /// entry that is there and will change.
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Arc<PrincipalAccess>> {
        let i = shard_of(name, self.shards.len());
        Arc::make_mut(&mut self.shards[i]).get_mut(name)
    }
}

/// Which of `n` shards (a power of two) holds `name`. FNV-1a: the decision path computes it
/// for every question, and std's SipHash costs several times more on a short name; neither
/// the shard nor the map's own hashing is exposed to a name an attacker could tune against
/// (a shard is a small map with std's randomly keyed hasher).
fn shard_of(name: &str, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // INVARIANT: `n` is a power of two, so the mask keeps every shard reachable.
    (h as usize) & (n - 1)
}
