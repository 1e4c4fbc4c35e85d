//! No unsigned tail: a checkpoint after every committed batch, and the external witness.
//!
//! The checkpointer is one task, woken by every commit of this instance
//! ([`sluice_store::Store::committed_audit`]). It signs the newest head, so commits that land
//! while it signs are covered by its next round: checkpoints coalesce under load instead of
//! queueing, and writers never wait for them (on SQLite the checkpoint row joins the batch
//! being filled; on PostgreSQL it is one short transaction per round). A round runs at most
//! every [`AuditOptions::min_gap`].
//!
//! Each checkpoint this instance signs is also appended to the witness file (another volume,
//! which whoever holds the database cannot rewrite) and, when configured, POSTed as JSON to a
//! witness URL; `sluice audit verify --witness FILE` then finds a trail cut below the
//! witness's newest checkpoint.

use crate::app::App;
use sluice_audit::Checkpoint;
use std::path::PathBuf;
use std::time::Duration;

/// How the trail's head is kept signed and witnessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// Sign after every commit (coalescing) and once at start. Off: only the periodic
    /// `checkpoint_interval` timer and the last checkpoint at shutdown.
    pub sign_commits: bool,
    /// The least time between two checkpoints signed after commits: under load, commits
    /// within it share the next one.
    pub min_gap: Duration,
    /// `audit verify` refuses a trail whose head is unsigned while its newest signed
    /// checkpoint is older than this (`unsigned_tail`); `None`: never.
    pub unsigned_bound: Option<Duration>,
    /// Every checkpoint this instance signs is appended here (JSON Lines, fsynced).
    pub witness_file: Option<PathBuf>,
    /// Every checkpoint this instance signs is POSTed here as JSON (the newest one, when
    /// they come faster than the endpoint answers).
    pub witness_url: Option<String>,
}

/// Signs within a few milliseconds of a commit; see [`DEFAULT_UNSIGNED_BOUND`].
impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            sign_commits: true,
            min_gap: Duration::ZERO,
            unsigned_bound: Some(DEFAULT_UNSIGNED_BOUND),
            witness_file: None,
            witness_url: None,
        }
    }
}

impl AuditOptions {
    /// Nothing signed but what the periodic timer and the caller sign, and no bound: for
    /// tests that place checkpoints themselves.
    #[must_use]
    pub fn manual() -> Self {
        AuditOptions {
            sign_commits: false,
            unsigned_bound: None,
            ..AuditOptions::default()
        }
    }
}

/// The default bound on the unsigned tail's age: ten seconds. A running server signs every
/// commit within milliseconds (a second at most with `min_gap`), and after a crash signs the
/// head before it serves; ten seconds leaves room for a slow disk or a busy database while
/// keeping the window in which the newest entries can be removed unseen (without a witness)
/// short.
pub const DEFAULT_UNSIGNED_BOUND: Duration = Duration::from_secs(10);

/// The longest a witness POST may take.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks the witness file can be appended to (so a wrong path fails the start, not every
/// checkpoint after it).
pub fn check_witness_file(options: &AuditOptions) -> anyhow::Result<()> {
    if let Some(path) = &options.witness_file {
        open_witness(path)
            .map_err(|e| anyhow::anyhow!("cannot open the witness file {}: {e}", path.display()))?;
    }
    Ok(())
}

fn open_witness(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
}

/// Appends `cp` to the witness file and makes it durable; POSTing is left to
/// [`publish_http`]'s task. A failure is logged and counted, never fatal: the checkpoint is
/// in the database already, and the next one covers it.
pub(crate) async fn witness(app: &App, cp: &Checkpoint) {
    if let Some(tx) = app.witness_feed() {
        tx.send_replace(Some(cp.clone()));
    }
    let Some(path) = app.audit_options().witness_file.clone() else {
        return;
    };
    let mut line = Vec::new();
    if let Err(e) = sluice_audit::write_checkpoint_line(&mut line, cp) {
        tracing::error!(error = %e, "cannot encode the checkpoint for the witness: {e}");
        return;
    }
    let seq = cp.seq;
    let written = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut f = open_witness(&path)?;
        f.write_all(&line)?;
        f.sync_data()
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    if let Err(e) = written {
        crate::metrics::witness_failed();
        tracing::error!(seq, error = %e, "cannot append checkpoint {seq} to the witness file: {e}");
    }
}

/// POSTs the newest checkpoint to `url` whenever it changes; a failure is logged and the
/// next checkpoint tried (it covers this one).
pub(crate) async fn publish_http(
    url: String,
    mut feed: tokio::sync::watch::Receiver<Option<Checkpoint>>,
) {
    let client = match reqwest::Client::builder().timeout(WITNESS_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the witness HTTP client: {e}");
            return;
        }
    };
    while feed.changed().await.is_ok() {
        let Some(cp) = feed.borrow_and_update().clone() else {
            continue;
        };
        let sent = client.post(&url).json(&cp).send().await;
        let failed = match sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("answered {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            crate::metrics::witness_failed();
            tracing::warn!(seq = cp.seq, url = %url, "cannot publish checkpoint {} to the witness {url}: {why}", cp.seq);
        }
    }
}

/// Signs the head after commits, as described in the module documentation. Runs until
/// aborted.
pub(crate) async fn run(app: App) {
    let gap = app.audit_options().min_gap;
    let mut committed = app.store.committed_audit();
    // A failed round is retried after this, whether or not anything else commits.
    const RETRY: Duration = Duration::from_secs(1);
    let mut retry = false;
    loop {
        if retry {
            tokio::select! {
                changed = committed.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(RETRY) => {},
            }
        } else if committed.changed().await.is_err() {
            return;
        }
        let want = *committed.borrow_and_update();
        let started = tokio::time::Instant::now();
        retry = match crate::audit::checkpoint(&app).await {
            Ok(Some(_)) => false,
            // Nothing signed: the head was signed already, or another instance signed a
            // lower head between our read and our insert (then ours waits for the retry).
            Ok(None) => match app.store.latest_checkpoint().await {
                Ok(latest) => latest.map_or(0, |c| c.seq) < want,
                Err(_) => true,
            },
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint after commit failed: {e}");
                true
            }
        };
        if !gap.is_zero() {
            tokio::time::sleep_until(started + gap).await;
        }
    }
}
