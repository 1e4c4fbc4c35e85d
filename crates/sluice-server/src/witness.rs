//! The external witness: every checkpoint this instance signs appended to a file on another
//! volume and, when configured, POSTed to a URL (see [`crate::checkpointer`]).

use crate::app::App;
use crate::audit_options::AuditOptions;
use sluice_audit::Checkpoint;
use std::time::Duration;

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
