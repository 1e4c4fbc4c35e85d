//! The pending requests a PostgreSQL store handle wrote last, so that a vote on one need not
//! read it under the batch's lock (see [`crate::WriteTx::vote_on_seen`]).

use sluice_core::access::AccessRequest;

/// A pending request as this store handle last wrote it: what a vote may start from without
/// reading it under the batch's lock (see [`crate::WriteTx::vote_on_seen`]).
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub request: AccessRequest,
    /// Its stored text, which the vote's write is guarded on.
    stored: std::sync::Arc<str>,
}

/// How many pending requests a store handle remembers (the oldest are forgotten first).
const SEEN_REQUESTS: usize = 4096;

/// PostgreSQL batch: the pending requests this handle wrote last, by id.
///
/// A hint, never the truth: a vote started from one writes with a guard on the stored text,
/// so a request changed since (by another instance, a sweep, or a writer before it in the
/// batch) fails that writer alone with [`crate::StoreError::Stale`], and the vote is made
/// again from a locked read. What this saves is the locked read itself: a round trip made
/// while every other writer of the instance waits for the batch.
#[derive(Debug)]
pub(crate) struct SeenRequests(std::sync::Mutex<hashlink::LruCache<String, SeenRequest>>);

impl Default for SeenRequests {
    fn default() -> Self {
        SeenRequests(std::sync::Mutex::new(hashlink::LruCache::new(
            SEEN_REQUESTS,
        )))
    }
}

impl SeenRequest {
    pub(crate) fn new(request: AccessRequest, stored: &str) -> SeenRequest {
        SeenRequest {
            request,
            stored: stored.into(),
        }
    }

    pub(crate) fn stored(&self) -> &str {
        &self.stored
    }
}

impl SeenRequests {
    pub(crate) fn get(&self, id: &str) -> Option<SeenRequest> {
        self.0.lock().ok()?.get(id).cloned()
    }

    /// What a committed writer left: each request still pending as stored, the others
    /// forgotten.
    pub(crate) fn learn(&self, wrote: Vec<(String, Option<SeenRequest>)>) {
        let Ok(mut seen) = self.0.lock() else {
            return;
        };
        for (id, now) in wrote {
            match now {
                Some(r) => {
                    seen.insert(id, r);
                }
                None => {
                    seen.remove(&id);
                }
            }
        }
    }
}
