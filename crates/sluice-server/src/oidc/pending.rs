//! Console sign-ins in progress: between the redirect to the identity provider and its
//! answer, what only this server may know — the PKCE verifier and the nonce — kept under the
//! `state` sent along, and bound to the browser that started it (a cookie whose hash is kept).
//! In this instance's memory, for ten minutes at most.

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::{Nonce, PkceCodeVerifier};
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a sign-in may take at the identity provider.
const LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Sign-ins in progress at once; beyond it the oldest is dropped.
const MAX: usize = 10_000;

pub struct PendingLogin {
    pub nonce: Nonce,
    pub verifier: PkceCodeVerifier,
    /// SHA-256 (hex) of the browser cookie that started it.
    pub browser: String,
    pub started: DateTime<Utc>,
}

#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, PendingLogin>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PendingLogin>> {
        // Nothing panics while holding it: a poisoned map is still sound.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps a sign-in under its `state`.
    pub fn put(&self, state: String, login: PendingLogin, now: DateTime<Utc>) {
        let mut map = self.lock();
        map.retain(|_, p| p.started + LIFETIME > now);
        if map.len() >= MAX {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(state, login);
    }

    /// Takes the sign-in under `state` (once: a replayed answer finds nothing), if it is
    /// still young enough.
    pub fn take(&self, state: &str, now: DateTime<Utc>) -> Option<PendingLogin> {
        self.lock()
            .remove(state)
            .filter(|p| p.started + LIFETIME > now)
    }
}
