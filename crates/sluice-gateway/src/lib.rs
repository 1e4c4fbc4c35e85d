//! Sluice's PostgreSQL gateway: clients connect with any PostgreSQL client, their Sluice
//! token as the password; the principal's live grant on `db:<name>` picks the upstream role
//! (PostgreSQL's own privileges enforce it); statements are logged; the session is cut when
//! the grant ends.
//!
//! It runs beside the HTTP server over the same [`sluice_server::App`]: the same decision
//! snapshot, token cache, clock and audit store.

pub mod config;
mod log;
mod scan;
mod session;
mod stream;
pub mod tls;
mod upstream;
mod wire;

pub use config::{DatabaseConfig, GatewayConfig, LogMode, RoleConfig, TlsSource, UpstreamConfig};

use config::{DatabaseConfigExt, RoleConfigExt};
use sluice_server::App;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Where a client's cancellation key leads: the upstream backend of its session.
#[derive(Debug, Clone)]
struct CancelTarget {
    host: String,
    port: u16,
    pid: i32,
    secret: i32,
}

struct Shared {
    app: App,
    config: GatewayConfig,
    tls: tokio_rustls::TlsAcceptor,
    log: log::LogSink,
    /// The keys handed to clients (`BackendKeyData`) → the upstream's.
    cancel_keys: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

/// A gateway bound to its address.
pub struct Gateway {
    shared: Arc<Shared>,
    listener: TcpListener,
    /// SHA-256 fingerprint of the client-side certificate.
    pub fingerprint: String,
    /// True when this start generated a self-signed certificate.
    pub generated_certificate: bool,
}

impl Gateway {
    /// Loads (or generates) the certificate and binds the listener.
    pub async fn bind(app: App, config: GatewayConfig) -> anyhow::Result<Gateway> {
        for db in &config.databases {
            db.validate().map_err(anyhow::Error::msg)?;
            // Credentials are read at each connection (so they can be rotated in place); one
            // that cannot be read now is said at once, not at the first refused session.
            for role in &db.roles {
                if let Err(e) = role.password() {
                    tracing::warn!(database = %db.name, role = %role.user,
                        "db:{}: the credential of role {} ({} sessions) cannot be read: {e}; those sessions are refused until it can",
                        db.name, role.user, role.action);
                }
            }
        }
        let tls = tls::load(&config.tls)?;
        let listener = TcpListener::bind(config.listen).await?;
        app.gateway.publish_databases(config.databases.clone());
        app.gateway.publish(sluice_server::gateway::Listening {
            address: listener.local_addr()?.to_string(),
            certificate_sha256: tls.fingerprint.clone(),
        });
        let log = log::LogSink::start(app.clone());
        Ok(Gateway {
            shared: Arc::new(Shared {
                app,
                config,
                tls: tls.acceptor,
                log,
                cancel_keys: Mutex::new(HashMap::new()),
            }),
            listener,
            fingerprint: tls.fingerprint,
            generated_certificate: tls.generated,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` resolves; each runs in a task of its own, on
    /// the gateway's relay threads (see [`Relays`]). Then stops accepting, lets open sessions
    /// run for at most `drain`, and cuts the rest (see [`drain`]); returns once every session
    /// has recorded its end.
    pub async fn run(
        self,
        drain: std::time::Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let Gateway {
            shared, listener, ..
        } = self;
        let relays = match Relays::start(relay_threads()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the gateway could not start its relay threads: {e}");
                return;
            }
        };
        // Alive, before the first session: sessions of a stopped instance (this process's
        // predecessor after a crash, say) are ended by whoever still runs. It beats on while
        // the sessions drain.
        let app = shared.app.clone();
        let heartbeat = tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                if let Err(e) = app.gateway_heartbeat(STALE).await {
                    tracing::warn!(error = %e, "gateway heartbeat failed: {e}");
                }
            }
        });
        let _stop_heartbeat = AbortOnDrop(heartbeat);
        let mut sessions = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        let shared = shared.clone();
                        relays.spawn(&mut sessions, tcp, move |tcp| async move {
                            if let Err(e) = session::handle(shared, tcp, peer).await {
                                tracing::debug!(%peer, error = %e, "gateway connection from {peer} ended: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "gateway accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        self::drain(&shared.app, sessions, drain).await;
    }
}

/// Who ends the sessions still open when a drain is over (the reason recorded is "killed by
/// …"; the client gets FATAL 57P01, `admin_shutdown`, as from a PostgreSQL server stopping).
const SHUTDOWN: &str = "a shutdown of the Sluice server";

/// How long cut sessions have to record their end before the gateway stops waiting (the
/// records of those still unwritten are then made by the next instance, as after a crash).
const RECORD_ENDS: std::time::Duration = std::time::Duration::from_secs(5);

/// At shutdown: lets the open sessions end by themselves for at most `drain`, then cuts the
/// rest, and waits (at most [`RECORD_ENDS`]) for each to record its end. A session still
/// being admitted when the cut starts is cut once admitted.
async fn drain(app: &App, mut sessions: tokio::task::JoinSet<()>, drain: std::time::Duration) {
    if sessions.is_empty() {
        return;
    }
    tracing::info!(
        "PostgreSQL gateway: letting {} open sessions finish for up to {drain:?}",
        sessions.len()
    );
    let by_themselves = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(drain, by_themselves).await.is_ok() {
        return;
    }
    tracing::info!(
        "PostgreSQL gateway: cutting {} sessions still open",
        sessions.len()
    );
    let cut = async {
        loop {
            for s in app.gateway.all() {
                s.kill(SHUTDOWN);
            }
            let next = tokio::time::timeout(sluice_server::gateway::TICK, sessions.join_next());
            if let Ok(None) = next.await {
                return;
            }
        }
    };
    if tokio::time::timeout(RECORD_ENDS, cut).await.is_err() {
        tracing::warn!(
            "PostgreSQL gateway: {} sessions did not record their end in time; the next instance to run records them as ended",
            sessions.len()
        );
    }
}

/// How often a running gateway says it is alive, and how long after its last word its
/// sessions are taken for ended.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);
const STALE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many relay threads: `SLUICE_PG_THREADS`, else one per two cores (at least one).
fn relay_threads() -> usize {
    std::env::var("SLUICE_PG_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)))
}

/// The threads sessions relay on: each a single-threaded runtime of its own, sessions
/// handed out in turn. A relay is a tight loop of small reads and writes; on the shared
/// multi-threaded runtime every wake-up could also wake an idle worker to steal it, and those
/// thread switches cost more than the relaying (see BENCHMARKS.md, gateway). Sessions still
/// share everything else (snapshot, store, audit) with the server.
struct Relays {
    handles: Vec<tokio::runtime::Handle>,
    next: std::sync::atomic::AtomicUsize,
    /// Dropping these stops the threads.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Relays {
    fn start(n: usize) -> std::io::Result<Relays> {
        let mut handles = Vec::with_capacity(n);
        let mut stop = Vec::with_capacity(n);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("sluice-pg-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = rx.await;
                    });
                })?;
        }
        Ok(Relays {
            handles,
            next: std::sync::atomic::AtomicUsize::new(0),
            _stop: stop,
        })
    }

    /// Moves an accepted connection to the next relay thread and runs `session` on it there,
    /// as a task of `sessions`.
    fn spawn<F, Fut>(
        &self,
        sessions: &mut tokio::task::JoinSet<()>,
        tcp: tokio::net::TcpStream,
        session: F,
    ) where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let std = match tcp.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "handing a gateway connection to a relay thread failed: {e}");
                return;
            }
        };
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.handles.len();
        sessions.spawn_on(
            async move {
            // Registered with this thread's own reactor.
            match tokio::net::TcpStream::from_std(std) {
                Ok(tcp) => session(tcp).await,
                Err(e) => {
                    tracing::warn!(error = %e, "a gateway connection could not be registered: {e}")
                }
            }
            },
            &self.handles[i],
        );
    }
}
