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
/// its (1-based) line number.
pub fn read_export(r: impl BufRead) -> Result<(Vec<AuditEntry>, Vec<Checkpoint>), ExportError> {
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    for (index, text) in r.lines().enumerate() {
        let line = index + 1;
        let text = text.map_err(|source| ExportError::Read { line, source })?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&text).map_err(|source| ExportError::Line { line, source })? {
            LineIn::Entry(entry) => entries.push(entry),
            LineIn::Checkpoint(checkpoint) => checkpoints.push(checkpoint),
        }
    }
    Ok((entries, checkpoints))
}
