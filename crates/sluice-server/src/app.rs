//! The application: the store, the clock, the live snapshots and the audit signer, and the
//! operations handlers call. Each operation loads, asks the domain (`sluice-core`), and saves
//! the change with its audit entry in one transaction.

use arc_swap::ArcSwap;
use sluice_audit::AuditSigner;
use sluice_core::decision::AccessSnapshot;
use sluice_core::policy::Policy;
use sluice_core::Clock;
use sluice_store::{Store, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};
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
    /// The store's access revision the current snapshot was loaded at.
    access_rev: AtomicI64,
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
        let revs = store.state_revs().await?;
        let snapshot = load_snapshot(&store).await?;
        Ok(App(Arc::new(Inner {
            store,
            clock,
            signer,
            access: ArcSwap::from_pointee(snapshot),
            access_rev: AtomicI64::new(revs.access),
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
        // Read the revision first: a write landing during the load bumps it again, so the
        // next sync reloads rather than missing it.
        let revs = self.store.state_revs().await?;
        let snap = load_snapshot(&self.store).await?;
        self.access.store(Arc::new(snap));
        self.access_rev.store(revs.access, Ordering::Release);
        Ok(())
    }

    /// Reloads whatever another instance changed since this one last loaded it. Cheap when
    /// nothing changed: one single-row read.
    pub async fn sync(&self) -> Result<bool, ApiError> {
        let revs = self.store.state_revs().await?;
        if revs.access != self.access_rev.load(Ordering::Acquire) {
            self.refresh().await?;
            return Ok(true);
        }
        Ok(false)
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
