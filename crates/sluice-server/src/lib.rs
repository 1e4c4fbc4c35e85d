//! Sluice's HTTP server: the access API, AuthZEN decisions, the audit trail, tokens and
//! policy, health, metrics and the OpenAPI document, plus the background work (reaper and
//! checkpoints).

pub mod app;
pub mod audit;
pub mod auth;
pub mod dbclock;
pub mod error;
pub mod flags;
pub mod gateway;
pub mod json;
pub mod keyed;
pub mod metrics;
pub mod ops;
pub mod routes;

pub use app::App;
pub use routes::{router, ApiDoc};

use sluice_audit::AuditSigner;
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
    /// The audit signing key (PEM); created with mode 0600 if absent.
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
}

/// A server bound to its address, ready to run.
pub struct Server {
    pub app: App,
    pub listener: TcpListener,
    /// The generated first administrator token, if this start created one.
    pub bootstrap_token: Option<SecretToken>,
    config: ServerConfig,
}

impl Server {
    /// Opens the store (running migrations), loads the signing key, bootstraps the first
    /// administrator, and binds the listener.
    pub async fn build(config: ServerConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
        metrics::install();
        let store = Store::open(&config.database_url).await?;
        if let Some(c) = &config.db_clock {
            let offset = c.calibrate(&store).await?;
            tracing::info!(
                offset_ms = offset,
                "using the database clock (offset {offset} ms)"
            );
        }
        let signer = AuditSigner::load_or_create(&config.signing_key)?;
        let app =
            App::with_client_rate_limit(store, clock, signer, config.client_rate_limit).await?;
        let bootstrap_token = app
            .bootstrap(config.admin_token.clone())
            .await
            .map_err(|e| anyhow::anyhow!("bootstrap failed: {e}"))?;
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server {
            app,
            listener,
            bootstrap_token,
            config,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, running the background work alongside.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let bg = tokio::spawn(background(self.app.clone(), self.config.clone()));
        let result = axum::serve(self.listener, router(self.app.clone()))
            .with_graceful_shutdown(shutdown)
            .await;
        bg.abort();
        // A last checkpoint so a clean stop leaves the head signed.
        let _ = audit::checkpoint(&self.app).await;
        result.map_err(Into::into)
    }
}

/// Background work. It only *records*: decisions never depend on it having run.
async fn background(app: App, config: ServerConfig) {
    let start = tokio::time::Instant::now();
    let mut reap = tokio::time::interval_at(start + config.reaper_interval, config.reaper_interval);
    let mut sign = tokio::time::interval_at(
        start + config.checkpoint_interval,
        config.checkpoint_interval,
    );
    let mut sync = tokio::time::interval_at(start + config.sync_interval, config.sync_interval);
    sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Wake at the next moment a target expires or a rollout steps, so subscribers hear of
        // it then; at least once a second for scheduled changes.
        let wait = app
            .next_layer_boundary()
            .map(|b| b - app.now().timestamp_millis())
            .unwrap_or(1000)
            .clamp(0, 1000);
        let layers = tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
        tokio::select! {
            _ = layers => {
                if let Err(e) = app.tick_layers().await {
                    tracing::warn!(error = %e, "recording target expiries and rollout steps failed: {e}");
                }
                if let Err(e) = app.apply_due_changes().await {
                    tracing::warn!(error = %e, "applying scheduled changes failed: {e}");
                }
                if let Err(e) = app.tick_change_requests().await {
                    tracing::warn!(error = %e, "settling change requests failed: {e}");
                }
            },
            _ = reap.tick() => match app.reap().await {
                Ok(n) => metrics::reaped(n),
                Err(e) => tracing::warn!(error = %e, "reaper pass failed: {e}"),
            },
            _ = sign.tick() => if let Err(e) = audit::checkpoint(&app).await {
                tracing::warn!(error = %e, "checkpoint failed: {e}");
            },
            _ = sync.tick() => {
                if let Err(e) = app.sync().await {
                    tracing::warn!(error = %e, "sync with the store failed: {e}");
                }
                if let Some(c) = &config.db_clock {
                    if let Err(e) = c.calibrate(&app.store).await {
                        tracing::warn!(error = %e, "clock calibration failed: {e}");
                    }
                }
            },
        }
    }
}
