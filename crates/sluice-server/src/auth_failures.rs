//! Failed authentications, counted per source address and per token prefix, slowed, then
//! refused; written to the audit trail once per key and minute.
//!
//! Within one minute (by the server's clock), a key — a source IP, or a presented token's first
//! [`PREFIX_CHARS`] characters (its kind and the first 8 characters of its secret) — may fail
//! [`SLOW_AFTER`] times at full speed; each further failure is answered after [`DELAY`]; from
//! [`REFUSE_AFTER`] failures on, every request of that source or with that prefix is refused with
//! `429 too_many_failed_authentications` and a `Retry-After` up to the end of the minute, before
//! its token is even looked up (so a right guess is not told apart from a wrong one) — unless the
//! token is one this instance verified recently and holds in its cache (see
//! [`crate::auth::authenticate_from`]). The source
//! address stops one client guessing many tokens; the prefix stops many clients guessing
//! around one token whose beginning leaked (a log line, a screenshot).
//!
//! Guessing a 256-bit secret is hopeless either way; what this bounds is the load a guesser
//! puts on the store (every unknown token is a database read) and the noise in the trail.
//! A client behind the same address as a guesser is refused with it until the minute ends,
//! unless its token is already in the cache.
//!
//! Each key's minute with failures becomes one `auth.failed` audit entry (counts, not one entry
//! per failure), written when the minute is over by the background loop ([`AuthFailures::flush`]).
//! Sign-in requests a source sent over their rate are counted here too, and written the same
//! way as one `sign_in.throttled` entry per source and minute.

use serde_json::json;
use sluice_audit::NewEntry;
use sluice_core::Clock;
use sluice_store::Store;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Failures of one key in a minute answered at full speed.
pub const SLOW_AFTER: u32 = 10;
/// Failures of one key in a minute after which its requests are refused until the minute ends.
pub const REFUSE_AFTER: u32 = 20;
/// How long each failure past [`SLOW_AFTER`] waits before it is answered.
pub const DELAY: Duration = Duration::from_millis(250);
/// Characters of a presented token that name its prefix key (`slu_api_` and 8 more).
pub const PREFIX_CHARS: usize = 16;
/// Keys tracked at once; past it, new keys are not tracked (their failures are still answered
/// 401, and their source address is still counted while it fits).
const MAX_KEYS: usize = 100_000;

/// What a failed authentication is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Source(IpAddr),
    Prefix(String),
    /// A source address whose sign-in requests were over their rate (see
    /// [`crate::auth::throttle_sign_in`]): only counted, written as `sign_in.throttled`.
    SignIn(IpAddr),
}

impl Key {
    /// The prefix key of a presented token.
    pub fn prefix(token: &str) -> Key {
        Key::Prefix(token.chars().take(PREFIX_CHARS).collect())
    }

    fn describe(&self) -> (&'static str, String) {
        match self {
            Key::Source(ip) | Key::SignIn(ip) => ("source", ip.to_string()),
            Key::Prefix(p) => ("token_prefix", p.clone()),
        }
    }
}

/// One key's counts in one minute.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    failures: u32,
    refused: u32,
}

/// A request refused because its source or token prefix failed too often this minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until the minute ends (at least 1).
    pub retry_after: u64,
}

/// The counts, shared by every clone.
#[derive(Clone)]
pub struct AuthFailures {
    store: Store,
    clock: Arc<dyn Clock>,
    /// Keyed by key and minute: a minute stays until [`AuthFailures::flush`] writes it.
    windows: Arc<Mutex<HashMap<(Key, i64), Window>>>,
    /// The end (ms) of the latest minute in which some key reached [`REFUSE_AFTER`]: before it,
    /// requests are checked against the counts; after it, nothing is refused and the check costs
    /// one atomic load.
    refusing_until_ms: Arc<AtomicI64>,
    /// Serialises flushes, so a flush that returns has written what it took.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

fn minute_of(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

impl AuthFailures {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        AuthFailures {
            store,
            clock,
            windows: Arc::default(),
            refusing_until_ms: Arc::new(AtomicI64::new(i64::MIN)),
            flushing: Arc::default(),
        }
    }

    /// Refuses a request whose source or token prefix reached [`REFUSE_AFTER`] failures this
    /// minute (and counts the refusal).
    pub fn check(&self, keys: &[Key]) -> Result<(), Throttled> {
        let now = self.clock.now().timestamp_millis();
        if now >= self.refusing_until_ms.load(Ordering::Relaxed) {
            return Ok(());
        }
        let minute = minute_of(now);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut throttled = false;
        for key in keys {
            if let Some(w) = windows.get_mut(&(key.clone(), minute)) {
                if w.failures >= REFUSE_AFTER {
                    w.refused += 1;
                    throttled = true;
                }
            }
        }
        if throttled {
            let end = (minute + 1) * 60_000;
            let secs = (end - now + 999) / 1000;
            Err(Throttled {
                retry_after: u64::try_from(secs.max(1)).unwrap_or(1),
            })
        } else {
            Ok(())
        }
    }

    /// Counts one failed authentication against each key; returns how long to wait before
    /// answering it.
    pub fn fail(&self, keys: &[Key]) -> Duration {
        let now = self.clock.now().timestamp_millis();
        let minute = minute_of(now);
        let mut worst = 0;
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            let at = (key.clone(), minute);
            if !windows.contains_key(&at) && windows.len() >= MAX_KEYS {
                continue;
            }
            let w = windows.entry(at).or_default();
            w.failures += 1;
            worst = worst.max(w.failures);
        }
        drop(windows);
        crate::metrics::auth_failed();
        if worst >= REFUSE_AFTER {
            self.refusing_until_ms
                .fetch_max((minute + 1) * 60_000, Ordering::Relaxed);
        }
        if worst > SLOW_AFTER {
            DELAY
        } else {
            Duration::ZERO
        }
    }

    /// Counts one sign-in request of `key` refused for its rate this minute (nothing else is
    /// decided here: the rate limiter refused it).
    pub fn throttled(&self, key: Key) {
        let minute = minute_of(self.clock.now().timestamp_millis());
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let at = (key, minute);
        if !windows.contains_key(&at) && windows.len() >= MAX_KEYS {
            return;
        }
        windows.entry(at).or_default().refused += 1;
    }

    /// Writes one `auth.failed` entry for each key whose minute with failures is over (one
    /// `sign_in.throttled` entry for a source whose sign-in requests were refused), and
    /// forgets it. Cheap when nothing failed. Best effort: a count that cannot be written is
    /// logged and dropped (the failures changed nothing).
    pub async fn flush(&self) {
        let _one = self.flushing.lock().await;
        let now = self.clock.now();
        let minute = minute_of(now.timestamp_millis());
        let ended: Vec<((Key, i64), Window)> = {
            let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            if windows.is_empty() {
                return;
            }
            let keys: Vec<(Key, i64)> = windows
                .keys()
                .filter(|(_, m)| *m < minute)
                .cloned()
                .collect();
            let mut ended: Vec<((Key, i64), Window)> = keys
                .into_iter()
                .filter_map(|k| windows.remove(&k).map(|w| (k, w)))
                .collect();
            ended.sort_by(|a, b| (a.0 .1, &a.0 .0).cmp(&(b.0 .1, &b.0 .0)));
            ended
        };
        if ended.is_empty() {
            return;
        }
        let result = async {
            let mut tx = self.store.begin().await?;
            for ((key, m), w) in &ended {
                let (kind, value) = key.describe();
                let from = chrono::DateTime::from_timestamp(m * 60, 0).map(|t| t.to_rfc3339());
                let action = match key {
                    Key::SignIn(_) => "sign_in.throttled",
                    Key::Source(_) | Key::Prefix(_) => "auth.failed",
                };
                let entry = NewEntry::new("anonymous", action).details(json!({
                    kind: value,
                    "failures": w.failures,
                    "refused": w.refused,
                    "minute_from": from,
                }));
                tx.audit(now, entry).await?;
            }
            tx.commit().await.map(|_| ())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, keys = ended.len(), "recording failed authentications failed: {e}");
        }
    }
}
