//! The edge (`sluice edge`): a read-only evaluation replica near the applications. It holds
//! the compiled flags of its edge key's environments, answers OFREP (single, bulk with
//! `ETag`/`304`, SSE) through the same code as the central server ([`crate::answer`]), follows
//! the central server's change stream ([`upstream`]), keeps its last snapshot on disk, sealed
//! ([`disk`]), and reports evaluation counts back in batches.
//!
//! Nothing is pushed at a moment of expiry: expiring targets and rollout steps are compiled
//! into the snapshot and evaluated against the edge's own clock, as the central server does.

pub mod disk;
pub mod serve;
pub mod upstream;

use crate::flags::{EnvFlags, FlagEvent};
use crate::insight::Insight;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sluice_api::edge::{EdgeEnvironment, EdgeSnapshot};
use sluice_core::token::SecretToken;
use sluice_core::Clock;
use sluice_store::{StoredFlag, StoredFlagSet};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Everything `sluice edge` needs.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// The central server, e.g. `https://sluice.internal`.
    pub upstream: String,
    /// The edge key (`sluice tokens create --kind edge --env …`).
    pub key: SecretToken,
    /// Where the last snapshot is kept.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The URL clients reach this edge at, advertised in OFREP `eventStreams`; `None`:
    /// `http://<bound address>`.
    pub public_url: Option<String>,
    /// How often evaluation counts are reported.
    pub report_interval: Duration,
    /// How often the whole snapshot is fetched again even without a change event (client keys
    /// and the policy's static context change without one).
    pub resync_interval: Duration,
    /// Web pages on these origins may call this edge's OFREP (see [`crate::cors`]).
    pub cors_origins: crate::cors::BrowserOrigins,
}

impl EdgeConfig {
    pub fn new(upstream: String, key: SecretToken, data_dir: PathBuf, listen: SocketAddr) -> Self {
        EdgeConfig {
            upstream,
            key,
            data_dir,
            listen,
            public_url: None,
            report_interval: Duration::from_secs(10),
            resync_interval: Duration::from_secs(30),
            cors_origins: crate::cors::BrowserOrigins::None,
        }
    }
}

/// A client key as the edge checks it.
#[derive(Debug)]
pub struct EdgeClient {
    pub id: String,
    pub environment: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub context: Option<Map<String, Value>>,
}

/// One environment as the edge answers it.
#[derive(Debug)]
pub struct EdgeEnv {
    pub flags: Option<Arc<EnvFlags>>,
    pub context: Option<Map<String, Value>>,
    pub context_from_headers: BTreeMap<String, String>,
}

/// What the edge answers from, swapped whole.
#[derive(Debug, Default)]
pub struct Held {
    pub envs: rustc_hash::FxHashMap<String, EdgeEnv>,
    /// Client keys by the hex SHA-256 of their secret.
    pub keys: rustc_hash::FxHashMap<String, Arc<EdgeClient>>,
}

/// The edge's state, shared by its HTTP handlers and its upstream tasks.
#[derive(Clone)]
pub struct Replica(Arc<Inner>);

pub struct Inner {
    pub clock: Arc<dyn Clock>,
    pub held: ArcSwap<Held>,
    /// Whether some snapshot (synced or from disk) is installed.
    pub ready: std::sync::atomic::AtomicBool,
    pub flag_events: broadcast::Sender<FlagEvent>,
    pub insight: Insight,
    /// Where clients reach this edge (set once, at start).
    pub public_url: std::sync::OnceLock<String>,
    /// The snapshot last installed, as received: what is written to disk.
    last: Mutex<Option<EdgeSnapshot>>,
}

impl std::ops::Deref for Replica {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Replica {
    pub fn new(clock: Arc<dyn Clock>) -> Replica {
        Replica(Arc::new(Inner {
            clock,
            held: ArcSwap::default(),
            ready: std::sync::atomic::AtomicBool::new(false),
            flag_events: broadcast::channel(1024).0,
            insight: Insight::default(),
            public_url: std::sync::OnceLock::new(),
            last: Mutex::new(None),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The compiled flags of one environment.
    pub fn env_flags(&self, environment: &str) -> Option<Arc<EnvFlags>> {
        self.held
            .load()
            .envs
            .get(environment)
            .and_then(|e| e.flags.clone())
    }

    /// The revision held of each environment.
    pub fn revisions(&self) -> BTreeMap<String, i64> {
        self.held
            .load()
            .envs
            .iter()
            .map(|(e, f)| (e.clone(), f.flags.as_ref().map_or(0, |f| f.revision)))
            .collect()
    }

    /// Installs a snapshot: environments whose revision moved are compiled (as the central
    /// server compiles them) and their subscribers told; the others keep their compiled
    /// flags, caches and counters. Returns whether it differs from what was held.
    pub fn install(&self, snapshot: EdgeSnapshot) -> bool {
        let old = self.held.load_full();
        let mut held = Held::default();
        let mut events = Vec::new();
        for env in &snapshot.environments {
            for c in &env.clients {
                held.keys.insert(
                    c.hash.clone(),
                    Arc::new(EdgeClient {
                        id: c.id.clone(),
                        environment: env.environment.clone(),
                        expires_at: c.expires_at,
                        context: c.context.clone(),
                    }),
                );
            }
            let kept = old
                .envs
                .get(&env.environment)
                .and_then(|o| o.flags.clone())
                .filter(|o| Some(o.revision) == env.flags.as_ref().map(|f| f.revision));
            let flags = match kept {
                Some(f) => Some(f),
                None => {
                    let compiled = compile(env).map(Arc::new);
                    if let Some(f) = &compiled {
                        self.insight.watch(f.tally.clone());
                        events.push(FlagEvent {
                            environment: f.environment.clone(),
                            revision: f.revision,
                            updated_at: f.updated_at,
                        });
                    }
                    compiled
                }
            };
            held.envs.insert(
                env.environment.clone(),
                EdgeEnv {
                    flags,
                    context: (!env.context.is_empty()).then(|| env.context.clone()),
                    context_from_headers: env.context_from_headers.clone(),
                },
            );
        }
        self.held.store(Arc::new(held));
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let changed = last
            .as_ref()
            .is_none_or(|l| serde_json::to_value(l).ok() != serde_json::to_value(&snapshot).ok());
        *last = Some(snapshot);
        drop(last);
        for ev in events {
            tracing::info!(environment = %ev.environment, revision = ev.revision,
                "edge holds {} at revision {}", ev.environment, ev.revision);
            let _ = self.flag_events.send(ev);
        }
        changed
    }

    /// The snapshot last installed.
    pub fn last(&self) -> Option<EdgeSnapshot> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The client key behind a presented secret, live at `now`.
    pub fn client(&self, token: &SecretToken) -> Option<Arc<EdgeClient>> {
        self.held.load().keys.get(&token.hash()).cloned()
    }
}

/// One environment's compiled flags, from what the central server sent.
fn compile(env: &EdgeEnvironment) -> Option<EnvFlags> {
    let set = env.flags.as_ref()?;
    let stored = StoredFlagSet {
        environment: env.environment.clone(),
        revision: set.revision,
        document: set.document.clone(),
        flags: set
            .flags
            .iter()
            .map(|f| StoredFlag {
                key: f.key.clone(),
                revision: f.revision,
                definition: f.definition.clone(),
            })
            .collect(),
        updated_at: set.updated_at,
        updated_by: set.updated_by.clone(),
    };
    let layers: Vec<(String, String, Value)> = env
        .layers
        .iter()
        .map(|(k, v)| (env.environment.clone(), k.clone(), v.clone()))
        .collect();
    Some(crate::flags::compile(stored, &layers))
}

/// Runs an edge until `shutdown` resolves: loads the sealed snapshot from disk (refusing a
/// tampered one, loudly), serves OFREP on `config.listen`, follows the upstream and reports
/// counts. The last counts are reported at shutdown.
pub async fn run(
    config: EdgeConfig,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let replica = Replica::new(clock);
    let addr = listener.local_addr()?;
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let _ = replica.public_url.set(public);
    let file = disk::SnapshotFile::new(&config.data_dir, &config.key);
    match file.load() {
        Ok(Some(s)) => {
            replica.install(s);
            tracing::info!(path = %file.path().display(), "serving the snapshot saved in {} until the upstream answers", file.path().display());
        }
        Ok(None) => {}
        Err(e @ disk::DiskError::Tampered { .. }) => {
            tracing::error!(path = %file.path().display(), error = %e, "refusing the saved snapshot: {e}; nothing is served until the upstream answers");
        }
        Err(e) => {
            tracing::error!(path = %file.path().display(), error = %e, "cannot use the saved snapshot: {e}; nothing is served until the upstream answers");
        }
    }
    let follower = upstream::Follower::new(&config, replica.clone(), file)?;
    let tasks = follower.spawn();
    let app = serve::router(replica.clone(), &config.cors_origins);
    crate::serve::serve(
        listener,
        app,
        crate::serve::HttpOptions::default(),
        None,
        shutdown,
    )
    .await;
    for t in tasks {
        t.abort();
    }
    follower.report().await;
    Ok(())
}
