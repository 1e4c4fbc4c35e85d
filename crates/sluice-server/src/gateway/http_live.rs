//! The HTTP gateway's state that the API reads and changes while it runs: the services it
//! serves (the config file's and those declared through the API, handed to the gateway as
//! they change) and the calls in progress (listed, and killed, like the PostgreSQL
//! gateway's sessions).

use super::http_spec::ServiceConfig;
use super::Hold;
use chrono::{DateTime, Utc};
use sluice_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Both halves, one field of the App.
#[derive(Debug, Default)]
pub struct HttpGatewayState {
    pub services: HttpServices,
    pub calls: LiveCalls,
}

/// A service declared through the API, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredService {
    pub spec: ServiceConfig,
    pub declared_at: DateTime<Utc>,
    pub declared_by: String,
}

/// The services: this instance's config file's (published when the gateway binds) and the
/// API's, reloaded from the store when one is declared or removed here, or when another
/// instance's change moves the access revision, and numbered by generation.
#[derive(Debug)]
pub struct HttpServices {
    configured: Mutex<Vec<ServiceConfig>>,
    declared: watch::Sender<Arc<Vec<DeclaredService>>>,
    /// Held from the read to the publication, so a reload that read earlier never publishes
    /// over one that read later.
    reloading: tokio::sync::Mutex<()>,
    /// Moved (inside the publication) by every change: a gateway compares it per call, one
    /// atomic load, and rebuilds its map when it moved — so a change is served as soon as
    /// `reload` returns.
    generation: AtomicU64,
    /// A gateway on this instance serves these services.
    followed: AtomicBool,
}

impl Default for HttpServices {
    fn default() -> Self {
        HttpServices {
            configured: Mutex::new(Vec::new()),
            declared: watch::channel(Arc::new(Vec::new())).0,
            reloading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            followed: AtomicBool::new(false),
        }
    }
}

impl HttpServices {
    /// Records the services the config file declares (called when the gateway binds, which
    /// then follows the API's).
    pub fn publish_configured(&self, services: Vec<ServiceConfig>) {
        *self.configured.lock().unwrap_or_else(|e| e.into_inner()) = services;
        self.followed.store(true, Ordering::Release);
    }

    /// The services this instance's config file declares.
    pub fn configured(&self) -> Vec<ServiceConfig> {
        self.configured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Which publication of the API's services is the newest.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The API's services as last loaded, with their generation (read first: a newer list
    /// under an older number only makes the gateway rebuild once more).
    pub fn declared(&self) -> (u64, Arc<Vec<DeclaredService>>) {
        let generation = self.generation();
        (generation, self.declared.borrow().clone())
    }

    /// Whether a gateway on this instance follows the API's services.
    pub fn followed(&self) -> bool {
        self.followed.load(Ordering::Acquire)
    }

    /// Reads the API's services from the store and hands them on if they changed. A stored
    /// declaration that no longer reads is left out and said in the log.
    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut loaded = Vec::new();
        for d in store.http_services().await? {
            match serde_json::from_str::<ServiceConfig>(&d.spec) {
                Ok(spec) => loaded.push(DeclaredService {
                    spec,
                    declared_at: d.declared_at,
                    declared_by: d.declared_by,
                }),
                Err(e) => {
                    tracing::error!(service = %d.name, "the stored declaration of http:{} does not read ({e}); it is not served", d.name);
                }
            }
        }
        self.declared.send_if_modified(|current| {
            if **current == loaded {
                return false;
            }
            *current = Arc::new(loaded);
            // INVARIANT: moved while the new list is held under the channel's lock, so whoever
            // reads the new number then the list gets the new list.
            self.generation.fetch_add(1, Ordering::AcqRel);
            true
        });
        Ok(())
    }
}

/// One call in progress. Its id, principal, grant, end and kill switch are its [`Hold`]
/// (reached through `Deref`), which the expiry [`super::watch`] reads.
#[derive(Debug)]
pub struct LiveCall {
    pub hold: Hold,
    pub service: String,
    pub method: String,
    pub path: String,
    pub client_addr: String,
    pub started_at: DateTime<Utc>,
    /// Upgraded to a WebSocket (or another protocol) by the upstream's `101`.
    pub websocket: AtomicBool,
    /// Counted as they pass (shared with the relay that counts them).
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
}

impl std::ops::Deref for LiveCall {
    type Target = Hold;
    fn deref(&self) -> &Hold {
        &self.hold
    }
}

/// The calls in progress through this instance's HTTP gateway.
#[derive(Debug, Default)]
pub struct LiveCalls {
    map: Mutex<HashMap<String, Arc<LiveCall>>>,
}

impl LiveCalls {
    pub fn insert(&self, c: Arc<LiveCall>) {
        self.lock().insert(c.id.clone(), c);
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveCall>> {
        self.lock().get(id).cloned()
    }

    /// Oldest first.
    pub fn all(&self) -> Vec<Arc<LiveCall>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveCall>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
