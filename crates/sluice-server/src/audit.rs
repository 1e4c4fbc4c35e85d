//! Signed checkpoints of the chain head, the signing-key check, live verification and export.

use crate::app::App;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use sluice_audit::rotation::ROTATION_ACTION;
use sluice_audit::{
    AuditEntry, AuditSigner, ChainVerifier, Checkpoint, ExpectedKey, KeyError, Problem,
    ProblemKind, VerifyReport,
};
use sluice_store::{AuditQuery, Store, StoreError};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Rows per read when verifying or exporting the trail: memory holds a page, whatever the
/// length of the trail.
const PAGE: i64 = 1_000;

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
    expected_key_after(store, latest.as_ref()).await
}

/// [`expected_key`] given the latest checkpoint: two reads by primary key at most, whatever
/// the length of the trail.
async fn expected_key_after(
    store: &Store,
    latest: Option<&Checkpoint>,
) -> Result<Option<ExpectedKey>, StoreError> {
    let Some(latest) = latest else {
        return Ok(None);
    };
    // INVARIANT: signing passes to a new key only through `rotate`, which checkpoints the
    // rotation entry with the old key and then the next entry with the new key, and no
    // instance signs with any key but the expected one (`checkpoint` refuses). So the latest
    // checkpoint is by the expected key, except when it is the one at a rotation entry (a
    // rotation stopped half-way): only then does the rotation entry decide.
    let rotation = store
        .audit_entry_at(latest.seq)
        .await?
        .filter(|e| e.action == ROTATION_ACTION);
    let at_rotation = rotation.as_ref().map(|_| latest);
    Ok(sluice_audit::expected_signer(
        Some(latest),
        rotation.as_ref(),
        at_rotation,
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
    if let Some(expected) = expected_key_after(&app.store, latest.as_ref()).await? {
        if expected.key_id != mine.key_id() {
            let message = format!(
                "refusing to sign the audit trail: its checkpoints are signed by key {}, and \
                 this instance holds key {}. Every instance on one database must use the same \
                 signing key; restart this one with the right --signing-key.",
                describe(&expected),
                mine.key_id()
            );
            tracing::error!(expected = %expected.key_id, found = %mine.key_id(), "{message}");
            return Err(ApiError::SigningKeyMismatch(message));
        }
    }
    let cp = app.signer.sign(&head, app.now());
    if !app.store.insert_checkpoint_after(&cp, latest_seq).await? {
        // Another instance signed meanwhile; the next round checks its key again.
        return Ok(None);
    }
    crate::metrics::checkpoint();
    tracing::debug!(seq = head.seq, "checkpoint at seq {}", head.seq);
    crate::witness::witness(app, &cp).await;
    app.note_signed(head.seq);
    Ok(Some(head.seq))
}

/// Verifies the whole live chain against the stored head and the signed checkpoints, and
/// the statement log of every gateway session it records as ended. Reads the chain a page at a
/// time: memory does not grow with the trail (the checkpoints, one per checkpoint interval
/// at most, are read whole).
///
/// With an unsigned-tail bound configured ([`crate::audit_options::AuditOptions`]), a head not
/// covered by a signed checkpoint while the newest one is older than the bound is a problem
/// (see [`VerifyReport::refuse_stale_tail`]); the age is taken at the start.
pub async fn verify_live(app: &App) -> Result<VerifyReport, ApiError> {
    let now = app.now();
    let head = app.store.audit_head().await?;
    // Read before the entries, so that every checkpoint read lies within the entries read.
    let checkpoints = app.store.checkpoints().await?;
    let verifier = app.signer.verifying_key();
    let mut chain = ChainVerifier::new(&checkpoints, Some(&verifier), Some(&head));
    let mut session_problems = Vec::new();
    let mut after = 0;
    loop {
        let page = app.store.audit_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            // INVARIANT: pages are read by primary key, in strictly increasing `seq`.
            chain
                .push(entry)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(problem) = verify_session_log(app, entry).await? {
                session_problems.push(problem);
            }
            if let Some(problem) = verify_call_batch(app, entry).await? {
                session_problems.push(problem);
            }
        }
    }
    for batch in app.store.unsealed_http_call_batches(10).await? {
        session_problems.push(Problem {
            seq: batch,
            kind: ProblemKind::CallLogMismatch,
            message: format!(
                "http call records name batch {batch}, which no http.calls.recorded entry seals"
            ),
        });
    }
    let mut report = chain.finish();
    report.problems.extend(session_problems);
    report.problems.sort_by_key(|p| p.seq);
    if let Some(bound) = app.audit_options().unsigned_bound {
        let bound = chrono::TimeDelta::from_std(bound).unwrap_or(chrono::TimeDelta::MAX);
        report.refuse_stale_tail(now, bound);
    }
    if !report.ok() {
        announce_failure(app, &report, now).await;
    }
    Ok(report)
}

/// Tells the notification sinks that the trail failed verification (once per head and
/// problem set: the id is derived from them, so verifying again writes nothing new).
async fn announce_failure(app: &App, report: &VerifyReport, now: chrono::DateTime<chrono::Utc>) {
    let Some(router) = app.notify_router.get() else {
        return;
    };
    let problems: Vec<serde_json::Value> = report
        .problems
        .iter()
        .take(20)
        .map(|p| serde_json::json!({"seq": p.seq, "message": p.message}))
        .collect();
    let digest = {
        use sha2::Digest as _;
        hex::encode(&sha2::Sha256::digest(serde_json::to_vec(&problems).unwrap_or_default())[..8])
    };
    let key = format!(
        "verify_{}_{digest}",
        report.last.as_ref().map_or(0, |h| h.seq)
    );
    let data = serde_json::json!({
        "head_seq": report.last.as_ref().map(|h| h.seq),
        "unsigned_tail": report.unsigned_tail,
        "problems": problems,
    });
    let messages = router.messages("audit.verify_failed", now, None, data, Some(&key));
    if let Err(e) = app.store.enqueue(now, &messages).await {
        tracing::warn!(error = %e, "could not write the verification failure's notification: {e}");
    }
}

/// The body of an export: JSON Lines, in chunks of a page.
pub type ExportBody = tokio_stream::wrappers::ReceiverStream<Result<Vec<u8>, std::io::Error>>;

/// JSON Lines export ending with a fresh signed checkpoint of its last entry: entries
/// written after that checkpoint are left for the next export, so that an export whose last
/// line is not a checkpoint of its last entry is known to be cut short.
///
/// The checkpoint is made before the body starts (a refusal is an error response); the body
/// then streams a page at a time. If reading fails half-way the body ends with an error, so
/// the client sees a broken transfer rather than a short export.
///
/// With `until`, the export stops at the first signed checkpoint at or after the last entry
/// written before `until` (a checkpoint follows every committed batch, so at most a batch's
/// later entries come with it): an export that ends anywhere else could not be verified.
pub async fn export(
    app: &App,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<ExportBody, ApiError> {
    let signed = match until {
        Some(until) => signed_through(app, until).await?,
        None => None,
    };
    let signed = match signed {
        Some(seq) => seq,
        None => {
            checkpoint(app).await?;
            app.store.latest_checkpoint().await?.map_or(0, |c| c.seq)
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let store = app.store.clone();
    tokio::spawn(async move {
        if let Err(e) = export_pages(&store, signed, since, &tx).await {
            tracing::error!(error = %e, "audit export failed half-way: {e}");
            // The client may be gone already; nothing more to do then.
            let _ = tx.send(Err(std::io::Error::other(e))).await;
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The first checkpoint that signs the last entry before `until`: `Some(0)` when there is no
/// such entry (an empty export), `None` when no checkpoint signs it yet (make one).
async fn signed_through(app: &App, until: DateTime<Utc>) -> Result<Option<i64>, ApiError> {
    let last = app
        .store
        .audit_entries(&AuditQuery {
            until: Some(until),
            limit: 1,
            newest: true,
            ..AuditQuery::default()
        })
        .await?;
    let Some(last) = last.first() else {
        return Ok(Some(0));
    };
    let next = app.store.checkpoints_page(last.seq - 1, 1).await?;
    Ok(next.first().map(|c| c.seq))
}

/// Writes the entries up to `signed` (at or after `since`) and the checkpoints from the first
/// of them up to `signed`, each checkpoint right after the entry it signs.
async fn export_pages(
    store: &Store,
    signed: i64,
    since: Option<DateTime<Utc>>,
    tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> Result<(), String> {
    let mut checkpoints: Option<CheckpointPages> = None;
    let mut after = 0;
    while after < signed {
        let page = store
            .audit_page(after, PAGE.min(signed - after))
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let mut chunk = Vec::new();
        for entry in page
            .iter()
            .filter(|e| e.seq <= signed && since.is_none_or(|since| e.at >= since))
        {
            let pending = match &mut checkpoints {
                Some(pending) => pending,
                None => checkpoints.insert(CheckpointPages::from(entry.seq, signed)),
            };
            pending.write_before(store, entry.seq, &mut chunk).await?;
            sluice_audit::write_entry_line(&mut chunk, entry).map_err(|e| e.to_string())?;
            if entry.action == ROTATION_ACTION {
                pending.rotations.push(entry.seq);
            }
        }
        if !chunk.is_empty() && tx.send(Ok(chunk)).await.is_err() {
            return Ok(());
        }
    }
    if let Some(mut pending) = checkpoints {
        let mut chunk = Vec::new();
        pending.write_before(store, i64::MAX, &mut chunk).await?;
        if !chunk.is_empty() {
            // A client that left is no failure.
            let _ = tx.send(Ok(chunk)).await;
        }
    }
    Ok(())
}

/// The checkpoints of an export, read a page at a time: of those from its first entry to the
/// signed head, the ones a verifier needs — the closing one (of the signed head) and those at
/// key rotations (at a rotation entry and the entry after it, which hand signing over).
///
/// Not the others: with a checkpoint after every commit, nearly every entry line would be
/// followed by a checkpoint line, and an export cut after any of them would look whole. With
/// only the closing checkpoint, lines cut off the end leave entries no checkpoint covers.
struct CheckpointPages {
    after: i64,
    until: i64,
    buffered: VecDeque<Checkpoint>,
    done: bool,
    /// Rotation entries written so far.
    rotations: Vec<i64>,
}

impl CheckpointPages {
    fn needed(&self, c: &Checkpoint) -> bool {
        c.seq == self.until
            || self
                .rotations
                .iter()
                .any(|&r| c.seq == r || c.seq == r.saturating_add(1))
    }
}

impl CheckpointPages {
    fn from(first: i64, until: i64) -> Self {
        Self {
            after: first.saturating_sub(1),
            until,
            buffered: VecDeque::new(),
            done: false,
            rotations: Vec::new(),
        }
    }

    /// Writes every checkpoint with `seq < before`.
    async fn write_before(
        &mut self,
        store: &Store,
        before: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        loop {
            if self.buffered.is_empty() && !self.done {
                let page = store
                    .checkpoints_page(self.after, PAGE)
                    .await
                    .map_err(|e| e.to_string())?;
                self.done = (page.len() as i64) < PAGE;
                if let Some(last) = page.last() {
                    self.after = last.seq;
                }
                self.buffered
                    .extend(page.into_iter().filter(|c| c.seq <= self.until));
                if self.after >= self.until {
                    self.done = true;
                }
                continue;
            }
            match self.buffered.front() {
                Some(c) if c.seq < before => {
                    if self.needed(c) {
                        sluice_audit::write_checkpoint_line(out, c).map_err(|e| e.to_string())?;
                    }
                    self.buffered.pop_front();
                }
                _ => return Ok(()),
            }
        }
    }
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
    tx.audit(now, entry).await?;
    // The entry as stored: a batch chains it at its commit (PostgreSQL), so only the commit
    // says where it is.
    let written = tx
        .commit()
        .await?
        .pop()
        .ok_or_else(|| StoreError::Database("a commit returned no entry".into()))?;
    let cp = signer.sign(&written.head(), now);
    if !store.insert_checkpoint_after(&cp, latest).await? {
        return Err(RotateError::Raced);
    }
    Ok(written.seq)
}

/// Sends every entry matching `query` after `query.after`, in order, as it commits, until the
/// receiver is dropped. Wakes when this instance commits, when another instance's commit is
/// heard (PostgreSQL `LISTEN`), and at least once a second (the backstop).
pub fn follow(
    app: App,
    mut query: AuditQuery,
) -> tokio::sync::mpsc::Receiver<sluice_audit::AuditEntry> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let mut committed = app.store.committed_audit();
    let mut elsewhere = app.store.audited_elsewhere();
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
                // Another instance's entries (PostgreSQL `LISTEN`); the sleep is the backstop.
                _ = elsewhere.changed() => {},
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {},
            }
        }
    });
    rx
}

/// For a `gateway.session.ended` entry: recomputes the session's log hash from its stored
/// statements (a page at a time) and compares it with the hash the entry holds, so that an
/// edited, added or removed statement shows as a problem at that entry.
async fn verify_session_log(app: &App, e: &AuditEntry) -> Result<Option<Problem>, ApiError> {
    if e.action != "gateway.session.ended" {
        return Ok(None);
    }
    let (Some(session), Some(want)) = (
        e.details["session"].as_str(),
        e.details["log_hash"].as_str(),
    ) else {
        return Ok(None);
    };
    let mut got = sluice_audit::session_log::LOG_GENESIS.to_owned();
    let mut stored = 0usize;
    let mut after = i64::MIN;
    loop {
        let rows = app
            .store
            .gateway_statements_page(session, after, PAGE)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        stored += rows.len();
        got = continue_log_hash(got, &rows);
    }
    if got == want {
        return Ok(None);
    }
    Ok(Some(Problem {
        seq: e.seq,
        kind: ProblemKind::SessionLogMismatch,
        message: format!(
            "the statement log of gateway session {session} ({stored} statements stored) does not match the hash recorded when it ended"
        ),
    }))
}

/// For an `http.calls.recorded` entry: recomputes the hash of the HTTP call records it seals
/// from the stored rows and compares it (and their number) with what the entry holds.
async fn verify_call_batch(app: &App, e: &AuditEntry) -> Result<Option<Problem>, ApiError> {
    if e.action != "http.calls.recorded" {
        return Ok(None);
    }
    let (Some(want), Some(records)) = (e.details["hash"].as_str(), e.details["records"].as_u64())
    else {
        return Ok(None);
    };
    let rows = app.store.http_call_batch(e.seq).await?;
    let got = sluice_store::http_call_batch_hash(&rows);
    if got == want && rows.len() as u64 == records {
        return Ok(None);
    }
    Ok(Some(Problem {
        seq: e.seq,
        kind: ProblemKind::CallLogMismatch,
        message: format!(
            "the {} http call records stored for this batch do not match the {records} and the hash its entry recorded",
            rows.len()
        ),
    }))
}

/// The running hash of a stored session log, as its session-end entry records it.
pub fn session_log_hash(rows: &[sluice_store::LoggedStatement]) -> String {
    continue_log_hash(sluice_audit::session_log::LOG_GENESIS.to_owned(), rows)
}

/// The running hash after `rows`, given the hash before them.
fn continue_log_hash(prev: String, rows: &[sluice_store::LoggedStatement]) -> String {
    use sluice_audit::session_log::{next_log_hash, LogRecord};
    rows.iter().fold(prev, |h, r| {
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
