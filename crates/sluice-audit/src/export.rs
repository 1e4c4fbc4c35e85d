//! The export format: JSON Lines, one entry or checkpoint per line.
//!
//! ```text
//! {"type":"entry","seq":1,"at":"2026-11-27T07:00:00.123Z","actor":"alice","action":"access.request.created","resource":"flag:production/checkout-v2","subject_id":"req_1","details":{},"prev_hash":"000…","hash":"3f2…"}
//! {"type":"checkpoint","seq":1,"hash":"3f2…","at":"2026-11-27T07:00:01.000Z","key_id":"a1b2c3d4e5f60718","signature":"base64…"}
//! ```
//!
//! [`write_export`] writes entries in the order given and each checkpoint right after the entry
//! it signs (checkpoints past the last entry at the end). An export should end with a fresh
//! checkpoint of the head, so that cutting lines off its end is detectable. [`read_export`]
//! accepts lines in any order (order is [`crate::verify()`]'s business), ignores blank lines,
//! and rejects unknown fields. The line itself is not hashed: what is hashed is the canonical
//! encoding of the entry's fields (see [`crate::canonical`]), so reformatting a line does not
//! break verification while changing a value does.

use std::borrow::Borrow;
use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::entry::AuditEntry;
use crate::report::{Problem, ProblemKind};

/// Why an export could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write the audit export: {0}")]
    Write(#[source] io::Error),
    #[error("cannot encode an audit export line: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot read line {line} of the audit export: {source}")]
    Read {
        line: usize,
        #[source]
        source: io::Error,
    },
    #[error(
        "the audit export is cut off in the middle of line {line}, its last line{}: the file \
         was truncated, so entries after it are missing; export it again",
        last_entry.map(|seq| format!(" (the last complete entry is {seq})")).unwrap_or_default()
    )]
    CutOff {
        line: usize,
        last_entry: Option<i64>,
    },
    #[error("line {line} of the audit export is not an audit entry or checkpoint: {source}")]
    Line {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LineOut<'a> {
    Entry(&'a AuditEntry),
    Checkpoint(&'a Checkpoint),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum LineIn {
    Entry(AuditEntry),
    Checkpoint(Checkpoint),
}

/// Writes `entries` (in the order given) and `checkpoints` as JSON Lines.
pub fn write_export<E: Borrow<AuditEntry>>(
    mut w: impl Write,
    entries: impl IntoIterator<Item = E>,
    checkpoints: &[Checkpoint],
) -> Result<(), ExportError> {
    let mut pending: Vec<&Checkpoint> = checkpoints.iter().collect();
    pending.sort_by_key(|c| c.seq);
    let mut pending = pending.into_iter().peekable();
    for entry in entries {
        let entry = entry.borrow();
        while let Some(checkpoint) = pending.next_if(|c| c.seq < entry.seq) {
            write_line(&mut w, &LineOut::Checkpoint(checkpoint))?;
        }
        write_line(&mut w, &LineOut::Entry(entry))?;
    }
    for checkpoint in pending {
        write_line(&mut w, &LineOut::Checkpoint(checkpoint))?;
    }
    w.flush().map_err(ExportError::Write)
}

fn write_line(w: &mut impl Write, line: &LineOut<'_>) -> Result<(), ExportError> {
    let mut bytes = serde_json::to_vec(line).map_err(ExportError::Encode)?;
    bytes.push(b'\n');
    w.write_all(&bytes).map_err(ExportError::Write)
}

/// Reads an export: the entries and the checkpoints, each in file order.
///
/// Fails on the first line that is not valid UTF-8 JSON of an entry or a checkpoint, naming
/// its (1-based) line number; a last line that ends before its JSON does is
/// [`ExportError::CutOff`] (the file was truncated mid-line).
pub fn read_export(r: impl BufRead) -> Result<(Vec<AuditEntry>, Vec<Checkpoint>), ExportError> {
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut checkpoints = Vec::new();
    let mut lines = r.lines().enumerate().peekable();
    while let Some((index, text)) = lines.next() {
        let line = index + 1;
        let text = text.map_err(|source| ExportError::Read { line, source })?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&text) {
            Ok(LineIn::Entry(entry)) => entries.push(entry),
            Ok(LineIn::Checkpoint(checkpoint)) => checkpoints.push(checkpoint),
            Err(source) if source.is_eof() && lines.peek().is_none() => {
                return Err(ExportError::CutOff {
                    line,
                    last_entry: entries.iter().map(|e| e.seq).max(),
                })
            }
            Err(source) => return Err(ExportError::Line { line, source }),
        }
    }
    Ok((entries, checkpoints))
}

/// Whether an export was cut short at its end: [`write_export`] callers end an export with a
/// checkpoint of its last entry, so an export whose last entry no checkpoint covers lost
/// lines at its end. Returns that as a [`ProblemKind::Truncated`] problem.
///
/// Cutting exactly after an earlier checkpoint line cannot be told from a shorter export
/// this way; that checkpoint's `at` still says when the export was made.
#[must_use]
pub fn export_end_problem(entries: &[AuditEntry], checkpoints: &[Checkpoint]) -> Option<Problem> {
    let last = entries.iter().map(|e| e.seq).max()?;
    let signed = checkpoints.iter().map(|c| c.seq).max();
    if signed.is_some_and(|s| s >= last) {
        return None;
    }
    let unsigned = match signed {
        Some(s) if s >= entries.iter().map(|e| e.seq).min().unwrap_or(1) => {
            format!("entries {}..={last} are covered by no checkpoint", s + 1)
        }
        _ => "no entry is covered by a checkpoint".to_owned(),
    };
    Some(Problem {
        seq: last.saturating_add(1),
        kind: ProblemKind::Truncated,
        message: format!(
            "the export ends at entry {last} without the checkpoint that closes every export: \
             lines were removed from its end ({unsigned}, and entries after {last} may be \
             missing); export it again"
        ),
    })
}
