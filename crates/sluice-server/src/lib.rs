//! Sluice's HTTP server: the access API, AuthZEN decisions, the audit trail, tokens and
//! policy, health, metrics and the OpenAPI document, plus the background work (reaper and
//! checkpoints).

pub mod answer;
pub mod app;
pub mod audit;
pub mod audit_options;
pub mod auth;
pub mod auth_failures;
pub mod caller;
pub mod checkpointer;
pub mod console;
pub mod cors;
pub mod dbclock;
pub mod due;
pub mod edge;
pub mod error;
pub mod evaluations;
pub mod flags;
pub mod gateway;
pub mod guards;
mod idle;
pub mod ids;
pub mod insight;
pub mod json;
pub mod keyed;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod ops;
pub mod rate_limit;
pub mod refusals;
pub mod routes;
pub mod serve;
pub mod tls;
pub mod token_cache;
pub mod witness;

pub use app::App;
pub use routes::{openapi, routed, router};

use anyhow::Context as _;
use sluice_core::token::SecretToken;
use sluice_core::Clock;
use sluice_store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Everything `sluice serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    /// The audit signing key (PEM). Created with mode 0600 if absent while the database has
    /// no checkpoint; otherwise it must be the key that signs the trail (see
    /// [`audit::load_signer`]).
    pub signing_key: PathBuf,
    /// Taken as the first administrator's token on first start.
    pub admin_token: Option<SecretToken>,
    /// How often expiries and time-outs are recorded.
    pub reaper_interval: Duration,
    /// How often the chain head is signed (when it moved).
    pub checkpoint_interval: Duration,
    /// How often to check whether another instance changed grants, policy or flags.
    pub sync_interval: Duration,
    /// When set, the server's clock is the database's (re-calibrated in the background).
    pub db_clock: Option<Arc<dbclock::DbClock>>,
    /// OFREP requests per second allowed per client key (then 429 with `Retry-After`); `None`:
    /// unlimited.
    pub client_rate_limit: Option<u32>,
    /// The URL clients reach this server at (behind a proxy, the proxy's), advertised in
    /// AuthZEN metadata and OFREP `eventStreams`; `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    /// Web pages on these origins may call OFREP (see [`cors`]).
    pub cors_origins: cors::BrowserOrigins,
}

/// Checks a configured public URL: absolute `http` or `https`, with a host, without query or
/// fragment. Returns it without a trailing `/`, ready to have paths appended.
pub fn public_url(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw)
        .map_err(|e| anyhow::anyhow!("public URL `{raw}` is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.has_host()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        anyhow::bail!(
            "public URL `{raw}` must be http:// or https:// with a host and no query or fragment, e.g. https://sluice.example.com"
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A server bound to its address, ready to run.
pub struct Server {
    pub app: App,
    pub listener: TcpListener,
    /// The generated first administrator token, if this start created one.
    pub bootstrap_token: Option<SecretToken>,
    /// Header and drain timeouts and the connection limit; set before [`Server::run`].
    pub http: serve::HttpOptions,
    /// Checkpoints after commits, the unsigned-tail bound and the witness; set before
    /// [`Server::run`].
    pub audit: checkpointer::AuditOptions,
    /// Tasks that stop on the same signal and drain on their own (the gateways'): the
    /// server waits for them after its own drain, before the last checkpoint, so their last
    /// records (calls, session ends) are in the trail it signs. Set before [`Server::run`].
    pub companions: Vec<tokio::task::JoinHandle<()>>,
    /// TLS on the listener (see [`tls`]); plain HTTP when `None`. Set before [`Server::run`].
    pub tls: Option<Arc<tls::ReloadingTls>>,
    /// Notification sinks, retries and reminders (see [`notify`]); none when `None`. Set
    /// before [`Server::run`].
    pub notify: Option<notify::NotifyConfig>,
    /// The Prometheus that rollout guards read (see [`guards`]); guarded rollouts are refused
    /// when `None`. Set before [`Server::run`].
    pub guards: Option<guards::GuardConfig>,
    /// On PostgreSQL, hear other instances' commits at once (`LISTEN`/`NOTIFY`, see
    /// `sluice_store::Store::listen`) rather than only at the next sync; default on. Off only
    /// to measure what it brings. Set before [`Server::run`].
    pub follow_changes: bool,
    /// The identity provider people sign in through (see [`oidc`]); none when `None`. Set
    /// before [`Server::run`].
    pub oidc: Option<oidc::config::OidcConfig>,
    config: ServerConfig,
}

impl Server {
    /// Opens the store (running migrations), loads the signing key, bootstraps the first
    /// administrator, and binds the listener.
    pub async fn build(config: ServerConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
        Self::build_with(config, sluice_store::StoreOptions::default(), clock).await
    }

    /// [`Server::build`] with the store's timeouts given.
    pub async fn build_with(
        config: ServerConfig,
        store: sluice_store::StoreOptions,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Server> {
        metrics::install();
        // Bound first: an address in use is found before anything is written (a first start
        // that failed later would have created an administrator whose token nobody saw).
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let store = Store::open_with(&config.database_url, store).await?;
        if let Some(c) = &config.db_clock {
            let offset = c.calibrate(&store).await?;
            tracing::info!(
                offset_ms = offset,
                "using the database clock (offset {offset} ms)"
            );
        }
        let signer = audit::load_signer(&store, &config.signing_key).await?;
        let app =
            App::with_client_rate_limit(store, clock, signer, config.client_rate_limit).await?;
        let bootstrap_token = app
            .bootstrap(config.admin_token.clone())
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))?;
        let public = match &config.public_url {
            Some(raw) => public_url(raw)?,
            None => String::new(),
        };
        app.set_public_url(if public.is_empty() {
            format!("http://{}", listener.local_addr()?)
        } else {
            public
        });
        Ok(Server {
            app,
            listener,
            bootstrap_token,
            http: serve::HttpOptions::default(),
            audit: checkpointer::AuditOptions::default(),
            tls: None,
            notify: None,
            guards: None,
            follow_changes: true,
            oidc: None,
            companions: Vec::new(),
            config,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, running the background work alongside; then lets
    /// requests in flight finish for at most `http.drain_timeout`, cuts the rest, waits for
    /// the [`Server::companions`], and signs the chain head.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        witness::check_witness_file(&self.audit)?;
        if let Some(c) = self.oidc.clone() {
            tracing::info!(issuer = %c.issuer, "sign-in through the identity provider at {}", c.issuer);
            self.app
                .set_oidc(Arc::new(oidc::Oidc::new(c).map_err(anyhow::Error::msg)?));
        }
        let sign_commits = self.audit.sign_commits;
        let publisher = match (
            self.app.set_audit_options(self.audit.clone()),
            &self.audit.witness_url,
        ) {
            (Some(feed), Some(url)) => Some(tokio::spawn(witness::publish_http(url.clone(), feed))),
            _ => None,
        };
        let signer = if sign_commits {
            // After a crash the head may be unsigned: sign it before serving, so that crash
            // and restart loops leave no unsigned tail behind.
            match audit::checkpoint(&self.app).await {
                Ok(Some(seq)) => tracing::info!(seq, "signed the head at start (seq {seq})"),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "checkpoint at start failed: {e}"),
            }
            if self.audit.min_gap.is_zero() {
                // PostgreSQL's batches sign the head inside their commit.
                let (signer, clock) = (self.app.signer.clone(), self.app.clock.clone());
                self.app
                    .store
                    .sign_commits_with(move |head| signer.sign(head, clock.now()));
            }
            Some(tokio::spawn(checkpointer::run(self.app.clone())))
        } else {
            None
        };
        let notifier = match self.notify.clone().filter(|n| !n.sinks.is_empty()) {
            Some(config) => {
                let n = Arc::new(notify::dispatch::Notifier::new(config)?);
                // From here on every committed audit entry that notifies writes its outbox
                // rows in its own transaction.
                let router = Arc::new(n.router(&self.app));
                self.app.store.set_outbox_router(router.clone());
                let _ = self.app.notify_router.set(router);
                Some(tokio::spawn(notify::dispatch::run(self.app.clone(), n)))
            }
            None => None,
        };
        let guard_task = self.guards.clone().map(|g| {
            // Configured before serving: a rollout started at once may carry guards.
            self.app.guards.configure(g.clone());
            tokio::spawn(ops::guards::run(self.app.clone(), g))
        });
        let listener = if self.follow_changes {
            self.app.store.listen()
        } else {
            None
        };
        let bg = tokio::spawn(background(self.app.clone(), self.config.clone()));
        serve::serve(
            self.listener,
            router(self.app.clone(), &self.config.cors_origins),
            self.http,
            self.tls.clone(),
            shutdown,
        )
        .await;
        // The background work (syncs, kills asked on other instances, expiries) runs on
        // while the gateways drain.
        for task in self.companions {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a gateway ended abnormally while draining: {e}");
            }
        }
        bg.abort();
        if let Some(g) = guard_task {
            g.abort();
        }
        if let Some(listener) = listener {
            listener.abort();
        }
        // The evaluation counts still in memory (waiting for a flush the timer started, if
        // one is running: flushes take turns).
        if let Err(e) = self.app.insight.flush(&self.app.store).await {
            tracing::warn!(error = %e, "storing the last evaluation counts failed: {e}");
        }
        if let Some(notifier) = notifier {
            notifier.abort();
        }
        if let Some(signer) = signer {
            signer.abort();
        }
        // A last checkpoint so a clean stop leaves the head signed.
        match audit::checkpoint(&self.app).await {
            Ok(_) => tracing::info!("signed the last checkpoint"),
            Err(e) => tracing::warn!(error = %e, "the last checkpoint failed: {e}"),
        }
        if let Some(publisher) = publisher {
            publisher.abort();
        }
        Ok(())
    }
}

/// The longest the background loop goes between two passes of due work, whatever it knows: a
/// safety net for work it learns of late (another instance's schedule between two syncs, a
/// clock that jumped). Everything it knows of it wakes for at the moment it is due.
const SAFETY_POLL: Duration = Duration::from_secs(1);

/// How often the evaluation counts kept in memory are added to the store (see [`insight`]).
const INSIGHT_FLUSH: Duration = Duration::from_secs(10);

/// How often the records of what access revisions moved are pruned (see
/// [`sluice_store::Store::prune_access_changes`]).
const PRUNE_ACCESS_CHANGES: Duration = Duration::from_secs(60);

/// Background work. It only *records*: decisions never depend on it having run.
///
/// Due work — scheduled changes, change requests' apply times and time-outs, target expiries,
/// rollout steps and completions — runs at the moment it is due: one deadline, kept across
/// loop turns (the other timers firing do not restart it), set to the earliest of what the
/// flags know (layer boundaries), what the store knows (read with every sync, so other
/// instances' schedules count) and what this instance just scheduled (which wakes the loop at
/// once), and never later than [`SAFETY_POLL`] after the last pass.
async fn background(app: App, config: ServerConfig) {
    use tokio::time::Instant;
    let start = Instant::now();
    let mut reap = tokio::time::interval_at(start + config.reaper_interval, config.reaper_interval);
    let mut sign = tokio::time::interval_at(
        start + config.checkpoint_interval,
        config.checkpoint_interval,
    );
    let mut sync = tokio::time::interval_at(start + config.sync_interval, config.sync_interval);
    let mut counts = tokio::time::interval_at(start + INSIGHT_FLUSH, INSIGHT_FLUSH);
    counts.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval_at(start + PRUNE_ACCESS_CHANGES, PRUNE_ACCESS_CHANGES);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first pass runs at once: it catches up on whatever fell due while no instance ran.
    let due = tokio::time::sleep_until(start);
    tokio::pin!(due);
    let mut last_pass = start;
    let mut moved_elsewhere = app.store.moved_elsewhere();
    // A heard change is synced at once, but no sooner than `listen_gap` after the last such
    // sync: under a stream of other instances' writes, each sync reloads the access snapshot,
    // and back to back they would take the CPU from the requests.
    let heard = tokio::time::sleep_until(start);
    tokio::pin!(heard);
    let mut heard_pending = false;
    let mut next_heard = start;
    // After a failed pass, the next waits a while rather than hammering a sick store.
    let mut not_before = start;
    loop {
        tokio::select! {
            () = &mut due => {
                let ok = run_due(&app).await;
                last_pass = Instant::now();
                not_before = if ok { last_pass } else { last_pass + SAFETY_POLL };
                due.as_mut().reset(next_pass(&app, last_pass, not_before));
            },
            () = app.due.changed() => due.as_mut().reset(next_pass(&app, last_pass, not_before)),
            _ = reap.tick() => match app.reap().await {
                Ok(n) => metrics::reaped(n),
                Err(e) => tracing::warn!(error = %e, "reaper pass failed: {e}"),
            },
            // In a task of its own: stopping this loop must not cut a flush in half (the batch
            // it took would be lost); the flush at shutdown waits for it.
            _ = counts.tick() => {
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(e) = app.insight.flush(&app.store).await {
                        tracing::warn!(error = %e, "storing evaluation counts failed: {e}");
                    }
                });
            },
            _ = prune.tick() => if let Err(e) = app.store.prune_access_changes().await {
                tracing::warn!(error = %e, "pruning the record of access changes failed: {e}");
            },
            _ = sign.tick() => if let Err(e) = audit::checkpoint(&app).await {
                tracing::warn!(error = %e, "checkpoint failed: {e}");
            },
            // Another instance's change, heard at once (PostgreSQL `LISTEN`): the sync the
            // poll below would run, without waiting for it. Changes heard while a sync runs
            // are taken by one more sync after it.
            Ok(()) = moved_elsewhere.changed(), if !heard_pending => {
                heard_pending = true;
                heard.as_mut().reset(next_heard.max(Instant::now()));
            },
            () = &mut heard, if heard_pending => {
                heard_pending = false;
                let began = Instant::now();
                if let Err(e) = app.sync().await {
                    tracing::warn!(error = %e, "sync with the store failed: {e}");
                }
                next_heard = Instant::now() + listen_gap(began.elapsed());
                due.as_mut().reset(next_pass(&app, last_pass, not_before));
            },
            _ = sync.tick() => {
                if let Err(e) = app.sync().await {
                    tracing::warn!(error = %e, "sync with the store failed: {e}");
                }
                // Minutes of failed authentications that are over, one entry per key.
                app.auth_failures.flush().await;
                if let Some(c) = &config.db_clock {
                    if let Err(e) = c.calibrate(&app.store).await {
                        tracing::warn!(error = %e, "clock calibration failed: {e}");
                    }
                }
                // The sync may have brought another instance's schedule, or flags whose
                // layers change sooner.
                due.as_mut().reset(next_pass(&app, last_pass, not_before));
            },
        }
    }
}

/// The least time between two syncs woken by other instances' changes, after one that took
/// `took`: 10 ms, or four times as long as the last took, so that reloading what other
/// instances write keeps to about a fifth of the time however fast they write.
fn listen_gap(took: Duration) -> Duration {
    (took * 4).max(Duration::from_millis(10))
}

/// One pass of due work; `false` if some part failed (it is retried on the next pass).
async fn run_due(app: &App) -> bool {
    let mut ok = true;
    if let Err(e) = app.tick_layers().await {
        tracing::warn!(error = %e, "recording target expiries and rollout steps failed: {e}");
        ok = false;
    }
    if let Err(e) = app.apply_due_changes().await {
        tracing::warn!(error = %e, "applying scheduled changes failed: {e}");
        ok = false;
    }
    if let Err(e) = app.tick_change_requests().await {
        tracing::warn!(error = %e, "settling change requests failed: {e}");
        ok = false;
    }
    // What is due next, now that this pass settled what was due (and whatever else moved).
    if let Err(e) = app.sync().await {
        tracing::warn!(error = %e, "sync with the store failed: {e}");
        ok = false;
    }
    ok
}

/// When the next pass of due work runs: at the earliest due moment known, at the latest
/// [`SAFETY_POLL`] after the last pass, never before `not_before`.
fn next_pass(
    app: &App,
    last_pass: tokio::time::Instant,
    not_before: tokio::time::Instant,
) -> tokio::time::Instant {
    let poll = last_pass + SAFETY_POLL;
    let next = [app.due.next(), app.next_layer_boundary()]
        .into_iter()
        .flatten()
        .min();
    let at = match next {
        Some(ms) => {
            let cap = i64::try_from(SAFETY_POLL.as_millis()).unwrap_or(i64::MAX);
            let wait = ms
                .saturating_sub(app.now().timestamp_millis())
                .clamp(0, cap);
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            (tokio::time::Instant::now() + wait).min(poll)
        }
        None => poll,
    };
    at.max(not_before)
}
