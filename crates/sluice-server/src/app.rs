//! The application: the store, the clock, the live snapshots and the audit signer, and the
//! operations handlers call. Each operation loads, asks the domain (`sluice-core`), and saves
//! the change with its audit entry in one transaction.

use arc_swap::ArcSwap;
use sluice_audit::AuditSigner;
use sluice_core::decision::AccessSnapshot;
use sluice_core::policy::Policy;
use sluice_core::Clock;
use sluice_store::{Store, StoreError};
use std::sync::Arc;

use crate::error::ApiError;

/// Shared state of a running server. Cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub signer: AuditSigner,
    /// Policy and live grants, swapped whole after every change; readers never wait.
    pub access: ArcSwap<AccessSnapshot>,
}

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    pub async fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        signer: AuditSigner,
    ) -> Result<App, StoreError> {
        let snapshot = load_snapshot(&store).await?;
        Ok(App(Arc::new(Inner {
            store,
            clock,
            signer,
            access: ArcSwap::from_pointee(snapshot),
        })))
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.access.load().policy().clone()
    }

    /// Rebuilds the access snapshot from the store.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let snap = load_snapshot(&self.store).await?;
        self.access.store(Arc::new(snap));
        Ok(())
    }
}

async fn load_snapshot(store: &Store) -> Result<AccessSnapshot, StoreError> {
    let policy = match store.current_policy().await? {
        Some((_, source)) => Policy::from_yaml(&source)
            .map_err(|e| StoreError::Corrupt(format!("stored policy: {e}")))?,
        None => Policy::empty(),
    };
    let principals = store.principals().await?;
    let active = store.active_requests().await?;
    Ok(AccessSnapshot::build(
        Arc::new(policy),
        principals.iter().map(|p| p.name.as_str()),
        active.iter(),
    ))
}

/// A fresh identifier with a readable prefix and 64 random bits.
pub fn new_id(prefix: &str) -> String {
    use rand::RngCore;
    format!("{prefix}-{:016x}", rand::rngs::OsRng.next_u64())
}
