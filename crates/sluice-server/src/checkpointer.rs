//! No unsigned tail: a checkpoint after every committed batch, and the external witness.
//!
//! The checkpointer is one task, woken by every commit of this instance
//! ([`sluice_store::Store::committed_audit`]). It signs the newest head, so commits that land
//! while it signs are covered by its next round: checkpoints coalesce under load instead of
//! queueing, and writers never wait for them (on SQLite the checkpoint row joins the batch
//! being filled; on PostgreSQL a batch signs the head inside its own commit, and a round is
//! one short transaction only for writes outside the batches). A round runs at most every
//! [`AuditOptions::min_gap`]; with a gap, PostgreSQL's batches leave signing to the rounds.
//!
//! Each checkpoint this instance signs is also appended to the witness file (another volume,
//! which whoever holds the database cannot rewrite) and, when configured, POSTed as JSON to a
//! witness URL; `sluice audit verify --witness FILE` then finds a trail cut below the
//! witness's newest checkpoint.

use crate::app::App;
pub use crate::audit_options::{AuditOptions, DEFAULT_UNSIGNED_BOUND};
use std::time::Duration;

/// Signs the head after commits, as described in the module documentation. Runs until
/// aborted.
pub(crate) async fn run(app: App) {
    let gap = app.audit_options().min_gap;
    let mut committed = app.store.committed_audit();
    let signed_in_commit = app.store.signed_in_commit();
    let mut witnessed = 0;
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
        // Signed in the commit already (PostgreSQL batches, see
        // `Store::sign_commits_with`): only the witness and the count are left.
        let in_commit = signed_in_commit.borrow().clone();
        if let Some(cp) = in_commit.filter(|cp| cp.seq >= want) {
            if cp.seq > witnessed {
                witnessed = cp.seq;
                crate::metrics::checkpoint();
                crate::witness::witness(&app, &cp).await;
                app.note_signed(cp.seq);
            }
            retry = false;
            continue;
        }
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
