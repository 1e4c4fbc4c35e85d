//! The application: the store, the clock, the live snapshots and the audit signer, and the
//! operations handlers call. Each operation loads, asks the domain (`sluice-core`), and saves
//! the change with its audit entry in one transaction.

use arc_swap::ArcSwap;
use sluice_audit::AuditSigner;
use sluice_core::access::AccessRequest;
use sluice_core::decision::AccessSnapshot;
use sluice_core::policy::Policy;
use sluice_core::Clock;
use sluice_store::{Store, StoreError};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::flags::{FlagEvent, FlagSnapshots};
use crate::ops::OpError;
use crate::refusals::RefusalLog;
use crate::token_cache::TokenCache;
use tokio::sync::broadcast;

/// Shared state of a running server. Cheap to clone.
#[derive(Clone)]
pub struct App(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub signer: Arc<AuditSigner>,
    /// Policy and live grants, swapped whole after every change; readers never wait.
    pub access: ArcSwap<AccessSnapshot>,
    /// The store's access revision the current snapshot was loaded at.
    access_rev: AtomicI64,
    /// Serialises reloads with local updates, so a reload that began before a local change
    /// can never overwrite it. Holds the local changes applied past a gap in the revisions
    /// (a change committed earlier whose writer has not applied it yet), by revision.
    refresh_lock: tokio::sync::Mutex<std::collections::BTreeMap<i64, Vec<Arc<AccessRequest>>>>,
    /// Other instances' access changes taken by this one: by their grants alone, and by a
    /// whole reload (see [`App::sync`]).
    access_syncs: [std::sync::atomic::AtomicU64; 2],
    /// What the cached tokens' callers were made of at the last full reload (see
    /// [`CallersBasis`]).
    callers_basis: std::sync::Mutex<Option<CallersBasis>>,
    /// Compiled flags per environment, swapped whole on change; evaluation never waits.
    pub flags: ArcSwap<FlagSnapshots>,
    flags_rev: AtomicI64,
    /// Held by a reload: a second reload of the same change (a writer's and the sync loop's)
    /// waits, then finds it installed instead of compiling it again beside the first.
    flags_lock: tokio::sync::Mutex<()>,
    /// Environments an import of this instance stored and is about to install, at that
    /// revision: a reload leaves them to it rather than compiling the same revision again.
    pending_installs: std::sync::Mutex<Vec<(String, i64)>>,
    /// Flag changes, for SSE subscribers.
    pub flag_events: broadcast::Sender<FlagEvent>,
    /// Evaluation counts (see [`crate::insight`]).
    pub insight: crate::insight::Insight,
    /// Authenticated tokens (see [`TokenCache`]).
    pub tokens: TokenCache,
    /// Per-client-key request limit on the evaluation endpoints.
    pub limiter: crate::rate_limit::RateLimiter,
    /// Refusals recorded this minute, per principal (bounds what a flood writes).
    pub refusals: RefusalLog,
    /// Failed authentications per source and token prefix (see [`crate::auth_failures`]).
    pub auth_failures: crate::auth_failures::AuthFailures,
    /// When the background loop must next wake for scheduled work.
    pub due: crate::due::Due,
    /// Where clients reach this server (no trailing `/`), set once the listener is bound;
    /// advertised in AuthZEN metadata and OFREP `eventStreams`. Never taken from a request.
    public_url: std::sync::OnceLock<String>,
    /// Sessions of the PostgreSQL gateway running on this instance.
    pub gateway: crate::gateway::LiveSessions,
    /// The HTTP gateway's services and calls in progress on this instance.
    pub http_gateway: crate::gateway::http_live::HttpGatewayState,
    /// How the head is kept signed and witnessed; set once when the server runs.
    audit_options: std::sync::OnceLock<crate::audit_options::AuditOptions>,
    /// The newest checkpoint this instance signed, for the witness URL's publisher.
    witness_feed: std::sync::OnceLock<tokio::sync::watch::Sender<Option<sluice_audit::Checkpoint>>>,
    /// The highest `seq` this instance signed a checkpoint of.
    signed: tokio::sync::watch::Sender<i64>,
    /// Where notifications that no audit entry carries (a failed verification) are routed;
    /// set once when the server runs with notification sinks.
    pub notify_router: std::sync::OnceLock<Arc<crate::notify::events::Router>>,
    /// Rollout guards: the Prometheus they read and their last readings (see
    /// [`crate::guards`]).
    pub guards: crate::guards::Guards,
    /// The identity provider people sign in through; set once when the server runs with one.
    oidc: std::sync::OnceLock<Arc<crate::oidc::Oidc>>,
    /// Sign-in requests per source address (see [`App::sign_in_limiter`]); set with the
    /// identity provider.
    sign_in_limiter: std::sync::OnceLock<crate::rate_limit::RateLimiter>,
}

/// [`App::audit_options`] before [`App::set_audit_options`]: nothing signed after commits,
/// no witness, no bound.
static AUDIT_UNSET: crate::audit_options::AuditOptions = crate::audit_options::AuditOptions {
    sign_commits: false,
    min_gap: std::time::Duration::ZERO,
    unsigned_bound: None,
    witness_file: None,
    witness_url: None,
};

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
        Self::with_client_rate_limit(store, clock, signer, None).await
    }

    /// [`App::new`] with at most `client_rate_limit` OFREP requests per second per client key.
    pub async fn with_client_rate_limit(
        store: Store,
        clock: Arc<dyn Clock>,
        signer: AuditSigner,
        client_rate_limit: Option<u32>,
    ) -> Result<App, StoreError> {
        let state = store.access_state().await?;
        let revs = state.revs;
        let snapshot = build_snapshot(&state)?;
        let flags = crate::flags::load(&store).await?;
        let (flag_events, _) = broadcast::channel(1024);
        let insight = crate::insight::Insight::default();
        for f in flags.envs.values() {
            insight.watch(f.tally.clone());
        }
        let refusals = RefusalLog::new(store.clone(), clock.clone());
        let auth_failures = crate::auth_failures::AuthFailures::new(store.clone(), clock.clone());
        Ok(App(Arc::new(Inner {
            store,
            clock,
            signer: Arc::new(signer),
            access: ArcSwap::from_pointee(snapshot),
            access_rev: AtomicI64::new(revs.access),
            refresh_lock: tokio::sync::Mutex::new(std::collections::BTreeMap::new()),
            access_syncs: Default::default(),
            callers_basis: std::sync::Mutex::new(None),
            flags: ArcSwap::from_pointee(flags),
            flags_rev: AtomicI64::new(revs.flags),
            flags_lock: tokio::sync::Mutex::new(()),
            pending_installs: std::sync::Mutex::new(Vec::new()),
            flag_events,
            insight,
            tokens: TokenCache::default(),
            limiter: crate::rate_limit::RateLimiter::new(client_rate_limit),
            refusals,
            auth_failures,
            due: crate::due::Due::default(),
            public_url: std::sync::OnceLock::new(),
            gateway: crate::gateway::LiveSessions::default(),
            http_gateway: Default::default(),
            audit_options: std::sync::OnceLock::new(),
            witness_feed: std::sync::OnceLock::new(),
            signed: tokio::sync::watch::Sender::new(0),
            notify_router: std::sync::OnceLock::new(),
            guards: crate::guards::Guards::default(),
            oidc: std::sync::OnceLock::new(),
            sign_in_limiter: std::sync::OnceLock::new(),
        })))
    }

    /// How the head is kept signed and witnessed (see [`crate::checkpointer`]).
    pub fn audit_options(&self) -> &crate::audit_options::AuditOptions {
        self.audit_options.get().unwrap_or(&AUDIT_UNSET)
    }

    /// Sets [`App::audit_options`]; only the first call counts. With a witness URL, returns
    /// the feed its publisher follows.
    pub fn set_audit_options(
        &self,
        options: crate::audit_options::AuditOptions,
    ) -> Option<tokio::sync::watch::Receiver<Option<sluice_audit::Checkpoint>>> {
        let url = options.witness_url.is_some();
        if self.audit_options.set(options).is_err() || !url {
            return None;
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        let _ = self.witness_feed.set(tx);
        Some(rx)
    }

    /// Changes whenever this instance stores a checkpoint: holds the highest `seq` it signed.
    pub fn signed_audit(&self) -> tokio::sync::watch::Receiver<i64> {
        self.signed.subscribe()
    }

    pub(crate) fn note_signed(&self, seq: i64) {
        self.signed.send_if_modified(|last| {
            let moved = seq > *last;
            *last = (*last).max(seq);
            moved
        });
    }

    pub(crate) fn witness_feed(
        &self,
    ) -> Option<&tokio::sync::watch::Sender<Option<sluice_audit::Checkpoint>>> {
        self.witness_feed.get()
    }

    /// The URL clients reach this server at, as configured (see [`crate::public_url`]).
    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map_or("http://127.0.0.1:7070", String::as_str)
    }

    /// Sets [`App::public_url`]; only the first call counts.
    pub fn set_public_url(&self, url: String) {
        let _ = self.public_url.set(url);
    }

    /// Sets the identity provider (see [`crate::oidc`]); only the first call counts.
    pub fn set_oidc(&self, oidc: Arc<crate::oidc::Oidc>) {
        let per_minute = oidc.config.sign_in_per_minute;
        if self.oidc.set(oidc).is_ok() {
            let _ = self
                .sign_in_limiter
                .set(crate::rate_limit::RateLimiter::per_minute(Some(per_minute)));
        }
    }

    /// The limit on sign-in requests per source address (unlimited without an identity
    /// provider: every sign-in route then answers `sign_in_not_configured` at once).
    pub fn sign_in_limiter(&self) -> &crate::rate_limit::RateLimiter {
        static NONE: std::sync::OnceLock<crate::rate_limit::RateLimiter> =
            std::sync::OnceLock::new();
        self.sign_in_limiter
            .get()
            .unwrap_or_else(|| NONE.get_or_init(|| crate::rate_limit::RateLimiter::new(None)))
    }

    /// The identity provider, when one is configured.
    pub fn oidc_slot(&self) -> Option<&Arc<crate::oidc::Oidc>> {
        self.oidc.get()
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.access.load().policy().clone()
    }

    /// The policy in force, read when called, through a weak handle: for what the server holds
    /// itself (the notification router), which must not keep it alive.
    pub fn policy_reader(&self) -> Arc<dyn Fn() -> Option<Arc<Policy>> + Send + Sync> {
        let weak = Arc::downgrade(&self.0);
        Arc::new(move || {
            weak.upgrade()
                .map(|inner| inner.access.load().policy().clone())
        })
    }

    /// Applies this instance's own committed change to the snapshot without a reload.
    /// `rev` is the access revision the change's transaction produced. Writers committed
    /// together (one SQLite batch) or in quick succession may get here in any order, so the
    /// change is applied and every later change already applied is applied again after it:
    /// the snapshot always ends as the changes in revision order, and an older state of a
    /// request arriving late never overwrites a newer one (a revocation stays revoked). When
    /// the revisions applied run without a gap from the one this snapshot was loaded at, the
    /// snapshot is current again; otherwise the next sync reloads.
    pub async fn apply_local(&self, reqs: &[&AccessRequest], rev: i64) {
        let mut ahead = self.refresh_lock.lock().await;
        let base = self.access_rev.load(Ordering::Acquire);
        if rev <= base {
            // A reload after this change already holds it, or something newer.
            return;
        }
        ahead.insert(rev, reqs.iter().map(|r| Arc::new((*r).clone())).collect());
        self.access
            .rcu(|s| s.with_requests(ahead.range(rev..).flat_map(|(_, reqs)| reqs)));
        let mut current = base;
        while ahead.contains_key(&(current + 1)) {
            current += 1;
        }
        *ahead = ahead.split_off(&(current + 1));
        self.access_rev.store(current, Ordering::Release);
    }

    /// Rebuilds the access snapshot from the store.
    pub async fn refresh(&self) -> Result<(), OpError> {
        let mut ahead = self.refresh_lock.lock().await;
        // One consistent read: the snapshot is exactly at `state.revs.access`. Every change
        // applied locally before this point was committed before the read, so it is in it;
        // those committed after it have a higher revision and are applied when they arrive.
        let state = self.store.access_state().await?;
        let snap = build_snapshot(&state)?;
        self.access.store(Arc::new(snap));
        // Authenticated tokens stay cached unless what they stand on moved: with several
        // instances a reload follows every grant another one writes, and emptying the cache
        // each time sent nearly every request to the store (BENCHMARKS.md).
        let callers = CallersBasis::of(&state);
        let mut basis = self.callers_basis.lock().unwrap_or_else(|e| e.into_inner());
        if basis.as_ref() != Some(&callers) {
            self.tokens.clear();
            *basis = Some(callers);
        }
        drop(basis);
        self.access_rev.store(state.revs.access, Ordering::Release);
        ahead.clear();
        Ok(())
    }

    /// Applies the grants other instances changed since this instance's revision, read
    /// alone (see [`sluice_store::Store::access_changes_since`]), the way
    /// [`App::apply_local`] applies its own. Returns false, having changed nothing, when
    /// something else moved too or the record is incomplete: then the caller reloads whole.
    async fn catch_up(&self) -> Result<bool, OpError> {
        let mut ahead = self.refresh_lock.lock().await;
        let base = self.access_rev.load(Ordering::Acquire);
        let Some(changes) = self.store.access_changes_since(base).await? else {
            return Ok(false);
        };
        // As in `refresh`: every change applied locally before the lock was committed before
        // the read, so the view holds it, at a revision no later than `changes.rev`.
        self.access.rcu(|s| s.with_requests(&changes.requests));
        self.access_rev.store(changes.rev, Ordering::Release);
        ahead.clear();
        Ok(true)
    }

    /// Reloads whatever another instance changed since this one last loaded it, and learns
    /// when the next scheduled work is due (whoever scheduled it). Cheap when nothing changed:
    /// one single-row read; when only grants moved, only those are read.
    pub async fn sync(&self) -> Result<bool, OpError> {
        let generation = self.due.generation();
        let (revs, next_due) = self.store.state_and_next_due().await?;
        self.due.replace(next_due, generation);
        let mut moved = false;
        if revs.access != self.access_rev.load(Ordering::Acquire) {
            moved = true;
            let grants = self.catch_up().await?;
            self.access_syncs[usize::from(!grants)].fetch_add(1, Ordering::Relaxed);
            crate::metrics::access_synced(grants);
            if !grants {
                self.refresh().await?;
                // A gateway session held here may have been killed on another instance.
                self.gateway.end_requested(&self.store).await?;
                // An HTTP service may have been declared or removed on another instance.
                if self.http_gateway.services.followed() {
                    self.http_gateway.services.reload(&self.store).await?;
                }
            }
        }
        if revs.flags != self.flags_rev.load(Ordering::Acquire) {
            self.refresh_flags().await?;
            moved = true;
        }
        Ok(moved)
    }

    /// How many times this instance took other instances' access changes by reading only the
    /// grants that moved, and by reloading whole.
    pub fn access_syncs(&self) -> (u64, u64) {
        let [grants, whole] = &self.access_syncs;
        (
            grants.load(Ordering::Relaxed),
            whole.load(Ordering::Relaxed),
        )
    }

    /// Recompiles the environments whose flags moved — only those — and tells their SSE
    /// subscribers.
    pub async fn refresh_flags(&self) -> Result<(), OpError> {
        let _compiling = self.flags_lock.lock().await;
        let revs = self.store.state_revs().await?;
        let left_to_writer = std::sync::atomic::AtomicBool::new(false);
        let fresh = crate::flags::changed(&self.store, |env, revision| {
            // INVARIANT: asked after the revision was read. An import marks its revision
            // before committing it and unmarks it after installing it, so a committed
            // revision is either marked or already installed here.
            let installed = self.flags.load().envs.get(env).map(|e| e.revision);
            if installed == Some(revision) {
                return true;
            }
            let pending = self
                .pending_installs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(e, r)| e == env && *r == revision);
            if pending {
                left_to_writer.store(true, Ordering::Relaxed);
            }
            pending
        })
        .await?;
        self.install_flags(&fresh);
        // What was left to a writer is looked at again by the next sync, in case the writer
        // went away (its request dropped) before installing it.
        if !left_to_writer.load(Ordering::Relaxed) {
            self.flags_rev.fetch_max(revs.flags, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Swaps in freshly compiled environments, each only over an older revision of itself,
    /// and tells the subscribers of those it installed.
    pub(crate) fn install_flags(&self, fresh: &[Arc<crate::flags::EnvFlags>]) {
        if fresh.is_empty() {
            return;
        }
        let prev = self.flags.rcu(|cur| cur.with(fresh));
        // Layer boundaries may have moved: the background loop looks again.
        self.due.poke();
        // Only what this swap installed: a refresh racing this one (a writer's and the sync
        // loop's) that loaded the same revision tells nobody twice.
        let installed = fresh.iter().filter(|f| {
            prev.envs
                .get(&f.environment)
                .is_none_or(|p| p.revision < f.revision)
        });
        for f in installed {
            self.insight.watch(f.tally.clone());
            let _ = self.flag_events.send(FlagEvent {
                environment: f.environment.clone(),
                revision: f.revision,
                updated_at: f.updated_at,
            });
        }
    }

    /// Marks `environment` as about to be installed at `revision` by this writer, until the
    /// returned guard is dropped (see [`App::refresh_flags`]).
    pub(crate) fn installing(&self, environment: &str, revision: i64) -> Installing<'_> {
        self.pending_installs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((environment.to_owned(), revision));
        Installing {
            app: self,
            environment: environment.to_owned(),
            revision,
        }
    }

    /// The compiled flags of one environment.
    pub fn env_flags(&self, environment: &str) -> Option<Arc<crate::flags::EnvFlags>> {
        self.flags.load().envs.get(environment).cloned()
    }
}

/// An environment marked as about to be installed; unmarked when dropped.
pub(crate) struct Installing<'a> {
    app: &'a App,
    environment: String,
    revision: i64,
}

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        let mut marked = self
            .app
            .pending_installs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(i) = marked
            .iter()
            .position(|(e, r)| *e == self.environment && *r == self.revision)
        {
            marked.swap_remove(i);
        }
    }
}

/// What an authenticated token's caller (see `auth::identify`) is made of, besides the token
/// row itself: the policy (which principals exist, who is an administrator), the principals,
/// the identity provider's groups, and revocations.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CallersBasis {
    policy: Option<i64>,
    principals: Vec<sluice_store::PrincipalRow>,
    idp_members: Vec<(String, Vec<String>)>,
    revoked_tokens: i64,
}

impl CallersBasis {
    fn of(state: &sluice_store::AccessState) -> Self {
        CallersBasis {
            policy: state.policy.as_ref().map(|(v, _)| *v),
            principals: state.principals.clone(),
            idp_members: state.idp_members.clone(),
            revoked_tokens: state.revoked_tokens,
        }
    }
}

fn build_snapshot(state: &sluice_store::AccessState) -> Result<AccessSnapshot, StoreError> {
    let policy = match &state.policy {
        Some((_, source)) => Policy::from_yaml(source)
            .map_err(|e| StoreError::Corrupt(format!("stored policy: {e}")))?,
        None => Policy::empty(),
    };
    // Who the identity provider put in which group, at their last sign-in or refresh.
    let policy = policy.with_idp_members(
        state
            .idp_members
            .iter()
            .map(|(name, groups)| (name.as_str(), groups.as_slice())),
    );
    Ok(AccessSnapshot::build(
        Arc::new(policy),
        // Principals the policy declares come from the policy itself; of the rest only the
        // first administrator and those who signed in through the identity provider exist.
        // One removed from the policy is unknown: default deny.
        state
            .principals
            .iter()
            .filter(|p| p.source == "bootstrap" || p.source == "oidc")
            .map(|p| p.name.as_str()),
        state.active.iter().cloned(),
    ))
}
