//! The edge's side of the central server: it follows `/v1/edge/events` (reconnecting with
//! backoff), fetches `/v1/edge/snapshot` when told of a change, on every (re)connection — which
//! catches up on whatever was missed while away — and every `resync_interval`; saves each new
//! snapshot to disk; and reports evaluation counts to `/v1/edge/evaluations`.
//!
//! When the upstream is unreachable the edge keeps answering from what it holds: nothing here
//! ever empties the replica.

use super::disk::SnapshotFile;
use super::{EdgeConfig, Replica};
use crate::insight::Batch;
use sluice_api::edge::{EdgeClientCount, EdgeEvaluations, EdgeFlagCount, EdgeSnapshot};
use sluice_core::token::SecretToken;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Follows the upstream for one replica.
#[derive(Clone)]
pub struct Follower(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    base: String,
    key: SecretToken,
    replica: Replica,
    file: SnapshotFile,
    /// Rung when a sync is due.
    wake: Notify,
    report_every: Duration,
    resync_every: Duration,
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the upstream is unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    #[error("the upstream answered {status}: {body}")]
    Refused {
        status: reqwest::StatusCode,
        body: String,
    },
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Follower {
    pub fn new(config: &EdgeConfig, replica: Replica, file: SnapshotFile) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()?;
        Ok(Follower(Arc::new(Inner {
            http,
            base: config.upstream.trim_end_matches('/').to_owned(),
            key: config.key.clone(),
            replica,
            file,
            wake: Notify::new(),
            report_every: config.report_interval,
            resync_every: config.resync_interval,
        })))
    }

    /// Starts following, syncing and reporting.
    pub fn spawn(&self) -> Vec<JoinHandle<()>> {
        let (a, b, c) = (self.clone(), self.clone(), self.clone());
        vec![
            tokio::spawn(async move { a.follow().await }),
            tokio::spawn(async move { b.sync_loop().await }),
            tokio::spawn(async move { c.report_loop().await }),
        ]
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.0.base)
    }

    /// Holds the change stream open; each event, and each (re)connection, wakes a sync.
    async fn follow(&self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let sent = self
                .0
                .http
                .get(self.url("/v1/edge/events"))
                .bearer_auth(self.0.key.expose())
                .send()
                .await;
            match sent {
                Ok(mut resp) if resp.status().is_success() => {
                    backoff = FIRST_BACKOFF;
                    tracing::info!(upstream = %self.0.base, "following the changes of {}", self.0.base);
                    // Opened before fetching, so no change between the two is lost.
                    self.0.wake.notify_one();
                    let mut buf = Vec::new();
                    loop {
                        match resp.chunk().await {
                            Ok(Some(bytes)) => {
                                buf.extend_from_slice(&bytes);
                                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                                    if buf.starts_with(b"data:") {
                                        self.0.wake.notify_one();
                                    }
                                    buf.drain(..=i);
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(upstream = %self.0.base, error = %e, "the change stream of {} broke: {e}", self.0.base);
                                break;
                            }
                        }
                    }
                    tracing::warn!(upstream = %self.0.base, "the change stream of {} ended; serving what is held and reconnecting", self.0.base);
                }
                Ok(resp) => {
                    let status = resp.status();
                    let body = resp.text().await.unwrap_or_default();
                    tracing::error!(upstream = %self.0.base, %status, "the upstream refused the edge key ({status}): {body}");
                    backoff = MAX_BACKOFF;
                }
                Err(e) => {
                    tracing::warn!(upstream = %self.0.base, error = %e, "the upstream {} is unreachable ({e}); serving what is held", self.0.base);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Syncs when woken, and every `resync_every` regardless.
    async fn sync_loop(&self) {
        loop {
            let _ = tokio::time::timeout(self.0.resync_every, self.0.wake.notified()).await;
            if let Err(e) = self.sync_once().await {
                tracing::warn!(upstream = %self.0.base, error = %e, "cannot sync: {e}; serving what is held");
            }
        }
    }

    /// Fetches the snapshot, installs it and, when it changed, saves it.
    pub async fn sync_once(&self) -> Result<(), SyncError> {
        let resp = self
            .0
            .http
            .get(self.url("/v1/edge/snapshot"))
            .bearer_auth(self.0.key.expose())
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(SyncError::Refused {
                status,
                body: resp.text().await.unwrap_or_default(),
            });
        }
        let snapshot: EdgeSnapshot = resp.json().await?;
        let replica = self.0.replica.clone();
        let file = self.0.file.clone();
        // Compiling and writing the file are blocking work.
        let saved = tokio::task::spawn_blocking(move || {
            let changed = replica.install(snapshot);
            match replica.last() {
                Some(s) if changed => file.save(&s).map(|()| true),
                _ => Ok(false),
            }
        })
        .await;
        match saved {
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot save the snapshot: {e}; a restart without the upstream will have none")
            }
            Err(e) => tracing::error!(error = %e, "installing a snapshot failed: {e}"),
            Ok(Ok(_)) => {}
        }
        Ok(())
    }

    async fn report_loop(&self) {
        let mut tick = tokio::time::interval(self.0.report_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.report().await;
        }
    }

    /// Sends the counts taken since the last report; kept for the next one when the upstream
    /// is unreachable, dropped (loudly) when it refuses them.
    pub async fn report(&self) {
        let sent = self
            .0
            .replica
            .insight
            .flush_with(|batch: Batch| async move {
                let body = wire(&batch);
                let resp = self
                    .0
                    .http
                    .post(self.url("/v1/edge/evaluations"))
                    .bearer_auth(self.0.key.expose())
                    .timeout(Duration::from_secs(30))
                    .json(&body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        // A refused batch would be refused again: not kept.
                        tracing::error!(%status, "the upstream refused {} evaluation counts ({status}): {text}", body.flags.len());
                        Ok(())
                    }
                    Err(e) => Err((e, batch)),
                }
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot report evaluation counts ({e}); kept for the next report");
        }
    }
}

/// A batch as the central server takes it.
fn wire(batch: &Batch) -> EdgeEvaluations {
    EdgeEvaluations {
        flags: batch
            .0
            .iter()
            .map(|c| EdgeFlagCount {
                environment: c.environment.clone(),
                flag: c.flag_key.clone(),
                variant: c.variant.clone(),
                reason: c.reason.clone(),
                day: c.day,
                count: c.count,
                last_at: c.last_at,
            })
            .collect(),
        clients: batch
            .1
            .iter()
            .map(|c| EdgeClientCount {
                token_id: c.token_id.clone(),
                environment: c.environment.clone(),
                count: c.count,
                last_at: c.last_at,
            })
            .collect(),
    }
}
