//! The live sessions of the PostgreSQL gateway (`sluice-gateway`), held here so the API can
//! list and end them, and what both gateways share: the [`Hold`] a session or a streaming
//! HTTP response has on its grant, and the [`watch`] that ends it with the grant. The
//! PostgreSQL gateway registers each admitted session and removes it at its end; the stored
//! record and the session log are in the store. The HTTP gateway's services and calls in
//! progress are in [`http_live`], its services' rules in [`http_spec`].

pub mod http_live;
pub mod http_spec;
pub mod spec;
mod watch;

pub use watch::{stamp, watch, Hold, TICK};

use chrono::{DateTime, Utc};
use sluice_store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

/// One admitted session, while it runs. Its id, principal, grant, end and kill switch are
/// its [`Hold`] (reached through `Deref`), which the expiry [`watch`] reads.
#[derive(Debug)]
pub struct LiveSession {
    pub hold: Hold,
    pub database: String,
    pub action: String,
    pub role: String,
    pub client_addr: String,
    pub started_at: DateTime<Utc>,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub statements: AtomicU64,
}

impl std::ops::Deref for LiveSession {
    type Target = Hold;
    fn deref(&self) -> &Hold {
        &self.hold
    }
}

impl LiveSession {
    #[expect(
        clippy::too_many_arguments,
        reason = "one field each, named at the call"
    )]
    pub fn new(
        id: String,
        principal: String,
        database: String,
        action: String,
        role: String,
        grant_id: String,
        client_addr: String,
        started_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Self {
        LiveSession {
            hold: Hold::new(id, principal, grant_id, expires_at),
            database,
            action,
            role,
            client_addr,
            started_at,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            statements: AtomicU64::new(0),
        }
    }
}

/// The sessions running on this instance.
#[derive(Debug, Default)]
pub struct LiveSessions {
    map: Mutex<HashMap<String, Arc<LiveSession>>>,
    listening: Mutex<Option<Listening>>,
    /// The databases this instance's config file declares (empty without a gateway).
    configured: Mutex<Vec<spec::DatabaseConfig>>,
    /// This process's gateway instance id (sessions record it; its heartbeat keeps them).
    instance: std::sync::OnceLock<String>,
}

/// Where this instance's gateway accepts clients, once it does.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Listening {
    /// The address it listens on (`--pg-listen`).
    pub address: String,
    /// SHA-256 of its TLS certificate (hex), to pin with `sslmode=verify-full` tooling.
    pub certificate_sha256: String,
}

impl LiveSessions {
    /// This process's gateway instance id, made on first use.
    pub fn instance_id(&self) -> &str {
        self.instance.get_or_init(|| crate::ids::new_id("gwi"))
    }

    /// Records that the gateway listens (called once it is bound).
    pub fn publish(&self, l: Listening) {
        *self.listening.lock().unwrap_or_else(|e| e.into_inner()) = Some(l);
    }

    /// Records the databases the config file declares (called when the gateway binds).
    pub fn publish_databases(&self, dbs: Vec<spec::DatabaseConfig>) {
        *self.configured.lock().unwrap_or_else(|e| e.into_inner()) = dbs;
    }

    /// The databases this instance's config file declares.
    pub fn configured(&self) -> Vec<spec::DatabaseConfig> {
        self.configured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Where this instance's gateway listens; `None` when it runs none.
    pub fn listening(&self) -> Option<Listening> {
        self.listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn insert(&self, s: Arc<LiveSession>) {
        self.lock().insert(s.id.clone(), s);
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        self.lock().get(id).cloned()
    }

    /// Ends the live sessions of this instance that someone asked, on any instance, to end.
    /// Runs after every reload of the access snapshot.
    pub async fn end_requested(&self, store: &Store) -> Result<(), StoreError> {
        if self.all().is_empty() {
            return Ok(());
        }
        for (id, by) in store.session_kill_requests().await? {
            if let Some(l) = self.get(&id) {
                l.kill(&by);
            }
        }
        Ok(())
    }

    pub fn all(&self) -> Vec<Arc<LiveSession>> {
        let mut v: Vec<_> = self.lock().values().cloned().collect();
        v.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveSession>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
