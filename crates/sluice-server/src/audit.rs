//! Signed checkpoints of the chain head, live verification and export.

use crate::app::App;
use crate::error::ApiError;
use crate::routes::audit::VerifyView;
use chrono::{DateTime, Utc};

/// Signs the current chain head if it moved since the last checkpoint. Returns the new
/// checkpoint's sequence number, if one was written.
pub async fn checkpoint(app: &App) -> Result<Option<i64>, ApiError> {
    let head = app.store.audit_head().await?;
    if head.seq == 0 {
        return Ok(None);
    }
    let last = app.store.checkpoints().await?.last().map(|c| c.seq);
    if last == Some(head.seq) {
        return Ok(None);
    }
    let cp = app.signer.sign(&head, app.now());
    app.store.insert_checkpoint(&cp).await?;
    crate::metrics::checkpoint();
    tracing::debug!(seq = head.seq, "checkpoint at seq {}", head.seq);
    Ok(Some(head.seq))
}

/// Verifies the whole live chain against the stored head and the signed checkpoints.
pub async fn verify_live(app: &App) -> Result<VerifyView, ApiError> {
    let head = app.store.audit_head().await?;
    let entries = app.store.audit_all().await?;
    let checkpoints = app.store.checkpoints().await?;
    let verifier = app.signer.verifying_key();
    let mut r = sluice_audit::verify(&entries, &checkpoints, Some(&verifier), Some(&head));
    r.problems.extend(verify_session_logs(app, &entries).await?);
    r.problems.sort_by_key(|p| p.seq);
    Ok(VerifyView {
        ok: r.ok(),
        entries: r.entries,
        checkpoints_verified: r.checkpoints_verified,
        head_seq: r.last.map(|h| h.seq),
        problems: r
            .problems
            .iter()
            .map(|p| serde_json::json!({"seq": p.seq, "kind": p.kind, "message": p.message}))
            .collect(),
    })
}

/// JSON Lines export ending with a fresh signed checkpoint of the head.
pub async fn export(app: &App, since: Option<DateTime<Utc>>) -> Result<String, ApiError> {
    checkpoint(app).await?;
    let mut entries = app.store.audit_all().await?;
    if let Some(since) = since {
        entries.retain(|e| e.at >= since);
    }
    let first = entries.first().map_or(i64::MAX, |e| e.seq);
    let mut checkpoints = app.store.checkpoints().await?;
    checkpoints.retain(|c| c.seq >= first);
    let mut out = Vec::new();
    sluice_audit::write_export(&mut out, &entries, &checkpoints)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Recomputes the log hash of every gateway session the chain records as ended and compares
/// it with the hash its `gateway.session.ended` entry holds: an edited, added or removed
/// statement shows as a problem at that entry.
async fn verify_session_logs(
    app: &App,
    entries: &[sluice_audit::AuditEntry],
) -> Result<Vec<sluice_audit::Problem>, ApiError> {
    use sluice_audit::session_log::{next_log_hash, LogRecord, LOG_GENESIS};
    let mut problems = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.action == "gateway.session.ended")
    {
        let (Some(session), Some(want)) = (
            e.details["session"].as_str(),
            e.details["log_hash"].as_str(),
        ) else {
            continue;
        };
        let rows = app.store.gateway_statements(session).await?;
        let got = rows.iter().fold(LOG_GENESIS.to_owned(), |h, r| {
            next_log_hash(
                &h,
                &LogRecord {
                    seq: r.seq,
                    at: r.at,
                    kind: &r.kind,
                    text: &r.text,
                    params: r.params.as_deref(),
                },
            )
        });
        if got != want {
            problems.push(sluice_audit::Problem {
                seq: e.seq,
                kind: sluice_audit::ProblemKind::SessionLogMismatch,
                message: format!(
                    "the statement log of gateway session {session} ({} statements stored) does not match the hash recorded when it ended",
                    rows.len()
                ),
            });
        }
    }
    Ok(problems)
}
