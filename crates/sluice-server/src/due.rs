//! When the background loop must next wake: the earliest moment something waits for the
//! clock — a scheduled change, a change request's apply time or time-out — as far as this
//! instance knows. Kept in memory: lowered at once when this instance schedules something,
//! replaced from the store on every sync (which is how other instances' schedules arrive), and
//! after each pass of due work. Layer boundaries (target expiries, rollout steps) are not kept
//! here: the compiled flags already know them (`App::next_layer_boundary`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::sync::Notify;

/// No known due time.
const NONE: i64 = i64::MAX;

#[derive(Debug)]
pub struct Due {
    /// Milliseconds since the epoch; [`NONE`] when nothing is known to be due.
    next_ms: AtomicI64,
    /// Bumped by every [`note`](Self::note), so a store read that began before a local
    /// schedule cannot overwrite it (see [`replace`](Self::replace)).
    generation: AtomicU64,
    wake: Notify,
}

impl Default for Due {
    fn default() -> Self {
        Due {
            next_ms: AtomicI64::new(NONE),
            generation: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }
}

impl Due {
    /// Something committed on this instance is due at `at_ms`: lower the next due time and
    /// wake the loop so it sleeps until then rather than until the old time.
    pub fn note(&self, at_ms: i64) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let before = self.next_ms.fetch_min(at_ms, Ordering::AcqRel);
        if at_ms < before {
            self.wake.notify_one();
        }
    }

    /// Wakes the loop to look again (e.g. the flags changed, so layer boundaries may have).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// The generation to pass to [`replace`](Self::replace) with a store read begun now.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Takes `next_ms` as read from the store by a read begun at `generation`. If something
    /// was noted since, the read may predate its commit, so the earlier of the two is kept.
    pub fn replace(&self, next_ms: Option<i64>, generation: u64) {
        let read = next_ms.unwrap_or(NONE);
        let _ = self
            .next_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                if self.generation.load(Ordering::Acquire) == generation {
                    Some(read)
                } else {
                    Some(read.min(cur))
                }
            });
    }

    /// The earliest known due time, in milliseconds since the epoch.
    pub fn next(&self) -> Option<i64> {
        let n = self.next_ms.load(Ordering::Acquire);
        (n != NONE).then_some(n)
    }

    /// Resolves when [`note`](Self::note) lowered the due time or [`poke`](Self::poke) was
    /// called (a wake-up that came while nobody waited is kept for the next wait).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_lowers_and_a_stale_store_read_does_not_lose_it() {
        let d = Due::default();
        assert_eq!(d.next(), None);
        d.replace(Some(5_000), d.generation());
        assert_eq!(d.next(), Some(5_000));
        // A read begins, a change is scheduled and noted, the read ends without it.
        let g = d.generation();
        d.note(2_000);
        d.replace(Some(5_000), g);
        assert_eq!(
            d.next(),
            Some(2_000),
            "the noted time survives the older read"
        );
        // A read begun after the note is the truth (the change may have applied since).
        d.replace(None, d.generation());
        assert_eq!(d.next(), None);
        d.note(7_000);
        d.note(9_000);
        assert_eq!(d.next(), Some(7_000), "a later note does not raise it");
    }
}
