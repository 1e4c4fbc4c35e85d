//! Signed checkpoints of the chain head, the signing-key check, live verification and export.

use crate::app::App;
use crate::error::ApiError;
use crate::routes::audit::VerifyView;
use chrono::{DateTime, Utc};
use sluice_audit::rotation::ROTATION_ACTION;
use sluice_audit::{AuditSigner, Checkpoint, ExpectedKey, KeyError};
use sluice_store::{AuditQuery, Store, StoreError};
use std::path::{Path, PathBuf};

/// Why the server may not sign this database's audit trail with the key it was given.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error(
        "there is no audit signing key at {path}, and the audit trail in this database is \
         already signed by key {expected}: refusing to start with a new key, which would leave \
         a trail that no longer verifies. {HOW_TO_PASS}",
        path = path.display(),
        expected = describe(expected)
    )]
    Missing {
        path: PathBuf,
        expected: ExpectedKey,
    },
    #[error(
        "the audit trail in this database is signed by key {expected}, but the signing key \
         {path} is key {found}: refusing to start, since checkpoints signed with it would not \
         verify. {HOW_TO_PASS}",
        path = path.display(),
        expected = describe(expected)
    )]
    Mismatch {
        path: PathBuf,
        expected: ExpectedKey,
        found: String,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read the audit trail to check the signing key: {0}")]
    Store(#[from] StoreError),
}

const HOW_TO_PASS: &str = "Start with the key that signs this trail: --signing-key FILE, \
     SLUICE_SIGNING_KEY=FILE or `signing_key: FILE` in the config file (every instance on \
     one database must use the same key; `sluice audit public-key --signing-key FILE` prints \
     a key's id). To change keys, use `sluice audit rotate-key`.";

fn describe(expected: &ExpectedKey) -> String {
    match &expected.public_key {
        Some(public) => format!("{} (public key {public})", expected.key_id),
        None => expected.key_id.clone(),
    }
}

/// The key that must sign this database's next checkpoint; `None` while there is none yet.
/// See [`sluice_audit::expected_signer`].
pub async fn expected_key(store: &Store) -> Result<Option<ExpectedKey>, StoreError> {
    let latest = store.latest_checkpoint().await?;
    if latest.is_none() {
        return Ok(None);
    }
    let rotation = store
        .audit_entries(&AuditQuery {
            action: Some(ROTATION_ACTION.to_owned()),
            limit: 1,
            newest: true,
            ..AuditQuery::default()
        })
        .await?
        .pop();
    let at_rotation = match &rotation {
        Some(r) => store.checkpoint_at(r.seq).await?,
        None => None,
    };
    Ok(sluice_audit::expected_signer(
        latest.as_ref(),
        rotation.as_ref(),
        at_rotation.as_ref(),
    ))
}

/// Loads the signing key at `path` and checks that it is the one this database's trail
/// expects. Only a database with no checkpoint yet may have a key made for it (when `path`
/// does not exist).
pub async fn load_signer(store: &Store, path: &Path) -> Result<AuditSigner, SigningKeyError> {
    let expected = expected_key(store).await?;
    let signer = match (AuditSigner::load_existing(path)?, &expected) {
        (Some(signer), _) => signer,
        (None, None) => AuditSigner::create(path)?,
        (None, Some(expected)) => {
            return Err(SigningKeyError::Missing {
                path: path.to_owned(),
                expected: expected.clone(),
            })
        }
    };
    if let Some(expected) = expected {
        let found = signer.verifying_key().key_id().to_owned();
        if expected.key_id != found {
            return Err(SigningKeyError::Mismatch {
                path: path.to_owned(),
                expected,
                found,
            });
        }
    }
    Ok(signer)
}

/// Signs the current chain head if it moved since the last checkpoint. Returns the new
/// checkpoint's sequence number, if one was written.
///
/// Refuses (and logs an error) when the trail expects another key: instances that share a
/// database must sign with one key, and a checkpoint by another would not verify.
pub async fn checkpoint(app: &App) -> Result<Option<i64>, ApiError> {
    let head = app.store.audit_head().await?;
    if head.seq == 0 {
        return Ok(None);
    }
    let latest: Option<Checkpoint> = app.store.latest_checkpoint().await?;
    let latest_seq = latest.as_ref().map_or(0, |c| c.seq);
    if latest_seq >= head.seq {
        return Ok(None);
    }
    let mine = app.signer.verifying_key();
    if let Some(expected) = expected_key(&app.store).await? {
        if expected.key_id != mine.key_id() {
            let message = format!(
                "refusing to sign the audit trail: its checkpoints are signed by key {}, and \
                 this instance holds key {}. Every instance on one database must use the same \
                 signing key; restart this one with the right --signing-key.",
                describe(&expected),
                mine.key_id()
            );
            tracing::error!(expected = %expected.key_id, found = %mine.key_id(), "{message}");
            return Err(ApiError::Conflict {
                code: "signing_key_mismatch",
                message,
            });
        }
    }
    let cp = app.signer.sign(&head, app.now());
    if !app.store.insert_checkpoint_after(&cp, latest_seq).await? {
        // Another instance signed meanwhile; the next round checks its key again.
        return Ok(None);
    }
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
            .map(|p| sluice_api::audit::ProblemView {
                seq: p.seq,
                kind: p.kind.into(),
                message: p.message.clone(),
            })
            .collect(),
    })
}

/// JSON Lines export ending with a fresh signed checkpoint of its last entry: entries
/// written after that checkpoint are left for the next export, so that an export whose last
/// line is not a checkpoint of its last entry is known to be cut short.
pub async fn export(app: &App, since: Option<DateTime<Utc>>) -> Result<String, ApiError> {
    checkpoint(app).await?;
    let signed = app.store.latest_checkpoint().await?.map_or(0, |c| c.seq);
    let mut entries = app.store.audit_all().await?;
    entries.retain(|e| e.seq <= signed && since.is_none_or(|since| e.at >= since));
    let first = entries.first().map_or(i64::MAX, |e| e.seq);
    let mut checkpoints = app.store.checkpoints().await?;
    checkpoints.retain(|c| c.seq >= first);
    let mut out = Vec::new();
    sluice_audit::write_export(&mut out, &entries, &checkpoints)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    String::from_utf8(out).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Why a rotation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the new key is the key that signs the trail already ({0}); pass a different key")]
    SameKey(String),
    #[error(transparent)]
    Key(#[from] SigningKeyError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "another checkpoint was written during the rotation: is a server still running on \
         this database? Stop every instance and run the rotation again"
    )]
    Raced,
}

/// What a rotation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The entry naming the new key, signed (in a checkpoint) by the old one.
    pub rotation_seq: i64,
    /// The entry after it, the first checkpoint signed by the new key.
    pub activation_seq: i64,
}

/// Hands the signing of `store`'s trail from `old` (which must be the key the trail expects)
/// to `new`, as described in [`sluice_audit::rotation`]. Run with every server stopped.
pub async fn rotate(
    store: &Store,
    old: &AuditSigner,
    new: &AuditSigner,
    now: DateTime<Utc>,
) -> Result<Rotated, RotateError> {
    let (old_key, new_key) = (old.verifying_key(), new.verifying_key());
    if old_key.key_id() == new_key.key_id() {
        return Err(RotateError::SameKey(old_key.key_id().to_owned()));
    }
    if let Some(expected) = expected_key(store).await.map_err(SigningKeyError::from)? {
        if expected.key_id != old_key.key_id() {
            return Err(SigningKeyError::Mismatch {
                path: PathBuf::from("(--signing-key)"),
                expected,
                found: old_key.key_id().to_owned(),
            }
            .into());
        }
    }
    let rotation = sluice_audit::KeyRotation::new(&old_key, &new_key);
    let rotation_seq = append_signed(store, old, rotation.entry(), now).await?;
    let activation_seq = append_signed(store, new, rotation.activation_entry(), now).await?;
    tracing::info!(
        from = %old_key.key_id(),
        to = %new_key.key_id(),
        "audit signing key rotated from {} to {} at seq {rotation_seq}",
        old_key.key_id(),
        new_key.key_id()
    );
    Ok(Rotated {
        rotation_seq,
        activation_seq,
    })
}

/// Appends `entry` and a checkpoint of it signed by `signer`.
async fn append_signed(
    store: &Store,
    signer: &AuditSigner,
    entry: sluice_audit::NewEntry,
    now: DateTime<Utc>,
) -> Result<i64, RotateError> {
    let latest = store.latest_checkpoint().await?.map_or(0, |c| c.seq);
    let mut tx = store.begin().await?;
    let written = tx.audit(now, entry).await?;
    tx.commit().await?;
    let cp = signer.sign(&written.head(), now);
    if !store.insert_checkpoint_after(&cp, latest).await? {
        return Err(RotateError::Raced);
    }
    Ok(written.seq)
}

/// Sends every entry matching `query` after `query.after`, in order, as it commits, until the
/// receiver is dropped. Wakes when this instance commits and at least once a second (for
/// entries other instances commit).
pub fn follow(
    app: App,
    mut query: AuditQuery,
) -> tokio::sync::mpsc::Receiver<sluice_audit::AuditEntry> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let mut committed = app.store.committed_audit();
    tokio::spawn(async move {
        loop {
            let entries = match app.store.audit_entries(&query).await {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(error = %e, "audit stream: reading entries failed: {e}");
                    Vec::new()
                }
            };
            let full = entries.len() as i64 == query.limit;
            for entry in entries {
                query.after = Some(entry.seq);
                if tx.send(entry).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                () = tx.closed() => return,
                _ = committed.changed() => {},
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {},
            }
        }
    });
    rx
}

/// Recomputes the log hash of every gateway session the chain records as ended and compares
/// it with the hash its `gateway.session.ended` entry holds: an edited, added or removed
/// statement shows as a problem at that entry.
async fn verify_session_logs(
    app: &App,
    entries: &[sluice_audit::AuditEntry],
) -> Result<Vec<sluice_audit::Problem>, ApiError> {
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
        let got = session_log_hash(&rows);
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

/// The running hash of a stored session log, as its session-end entry records it.
pub fn session_log_hash(rows: &[sluice_store::LoggedStatement]) -> String {
    use sluice_audit::session_log::{next_log_hash, LogRecord, LOG_GENESIS};
    rows.iter().fold(LOG_GENESIS.to_owned(), |h, r| {
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
    })
}
