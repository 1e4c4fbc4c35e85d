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
use std::io::{self, BufRead, Seek, Write};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::entry::{AuditEntry, ChainHead};
use crate::keys::AuditVerifier;
use crate::report::{Problem, ProblemKind, VerifyReport};
use crate::verify::{verify, ChainVerifier};

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
    #[error("cannot go back to the start of the audit export to read it again: {0}")]
    Rewind(#[source] io::Error),
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

/// Writes one entry line (for callers that stream an export page by page).
pub fn write_entry_line(w: &mut impl Write, entry: &AuditEntry) -> Result<(), ExportError> {
    write_line(w, &LineOut::Entry(entry))
}

/// Writes one checkpoint line (for callers that stream an export page by page).
pub fn write_checkpoint_line(
    w: &mut impl Write,
    checkpoint: &Checkpoint,
) -> Result<(), ExportError> {
    write_line(w, &LineOut::Checkpoint(checkpoint))
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
    for_each_line(r, |line| match line {
        LineIn::Entry(entry) => entries.push(entry),
        LineIn::Checkpoint(checkpoint) => checkpoints.push(checkpoint),
    })?;
    Ok((entries, checkpoints))
}

/// Calls `f` with each line of an export, in file order; errors as [`read_export`].
fn for_each_line(r: impl BufRead, mut f: impl FnMut(LineIn)) -> Result<(), ExportError> {
    let mut last_entry: Option<i64> = None;
    let mut lines = r.lines().enumerate().peekable();
    while let Some((index, text)) = lines.next() {
        let line = index + 1;
        let text = text.map_err(|source| ExportError::Read { line, source })?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&text) {
            Ok(parsed) => {
                if let LineIn::Entry(entry) = &parsed {
                    last_entry = last_entry.max(Some(entry.seq));
                }
                f(parsed);
            }
            Err(source) if source.is_eof() && lines.peek().is_none() => {
                return Err(ExportError::CutOff { line, last_entry })
            }
            Err(source) => return Err(ExportError::Line { line, source }),
        }
    }
    Ok(())
}

/// Verifies an export, as [`verify()`] of what [`read_export`] reads (with the trusted
/// `verifier`, no expected head) plus [`export_end_problem`], in memory that does not grow
/// with the export: it reads the export twice, first for its checkpoints, then feeding the
/// entries one by one to a [`ChainVerifier`]. Only an export whose entries are not in `seq`
/// order (so already tampered with) is read a third time and verified as a whole.
///
/// # Errors
///
/// As [`read_export`]; [`ExportError::Rewind`] if the reader cannot go back to its start.
pub fn verify_export<R: BufRead + Seek>(
    r: R,
    verifier: Option<&AuditVerifier>,
) -> Result<VerifyReport, ExportError> {
    verify_export_against(r, verifier, None)
}

/// [`verify_export`], with the newest checkpoint of a witness (see [`read_witness`]) as a
/// head the export must reach: an export that ends before it is [`ProblemKind::Truncated`],
/// one whose entry at its `seq` has another hash is [`ProblemKind::CheckpointMismatch`].
///
/// # Errors
///
/// As [`verify_export`].
pub fn verify_export_against<R: BufRead + Seek>(
    mut r: R,
    verifier: Option<&AuditVerifier>,
    witness: Option<&ChainHead>,
) -> Result<VerifyReport, ExportError> {
    let start = r.stream_position().map_err(ExportError::Rewind)?;
    let mut checkpoints = Vec::new();
    for_each_line(&mut r, |line| {
        if let LineIn::Checkpoint(checkpoint) = line {
            checkpoints.push(checkpoint);
        }
    })?;

    r.seek(io::SeekFrom::Start(start))
        .map_err(ExportError::Rewind)?;
    let mut chain =
        ChainVerifier::new(&checkpoints, verifier, witness).with_head_label(WITNESS_LABEL);
    let (mut first, mut last, mut in_order) = (None::<i64>, None::<i64>, true);
    for_each_line(&mut r, |line| {
        if let LineIn::Entry(entry) = line {
            first = Some(first.map_or(entry.seq, |f| f.min(entry.seq)));
            last = last.max(Some(entry.seq));
            in_order = in_order && chain.push(&entry).is_ok();
        }
    })?;
    let mut report = if in_order {
        chain.finish()
    } else {
        r.seek(io::SeekFrom::Start(start))
            .map_err(ExportError::Rewind)?;
        let (entries, checkpoints) = read_export(&mut r)?;
        verify(&entries, &checkpoints, verifier, witness)
    };
    if let Some(cut) = end_problem(first, last, &checkpoints) {
        report.problems.push(cut);
        report.problems.sort_by_key(|p| p.seq);
    }
    Ok(report)
}

/// How problems name the witness's newest checkpoint.
const WITNESS_LABEL: &str = "witness's newest checkpoint at";

/// Reads a witness file — the checkpoint lines a server appends with `--witness-file`, in
/// the export's line format — and returns its newest checkpoint (highest `seq`), if any.
/// Entry lines are refused: a witness holds checkpoints only.
///
/// One checkpoint is enough: the hash chain vouches for every entry before it, so a trail
/// that holds the witness's newest head holds everything the witness saw.
///
/// # Errors
///
/// As [`read_export`], and [`ExportError::Line`] for an entry line.
pub fn read_witness(r: impl BufRead) -> Result<Option<Checkpoint>, ExportError> {
    let mut newest: Option<Checkpoint> = None;
    let mut entry_line = None;
    let mut line = 0usize;
    for_each_line(r, |parsed| {
        line += 1;
        match parsed {
            LineIn::Checkpoint(c) => {
                if newest.as_ref().is_none_or(|n| c.seq > n.seq) {
                    newest = Some(c);
                }
            }
            LineIn::Entry(_) => {
                entry_line.get_or_insert(line);
            }
        }
    })?;
    if let Some(line) = entry_line {
        return Err(ExportError::Line {
            line,
            source: serde::de::Error::custom(
                "a witness file holds checkpoint lines only; this is an audit entry (an export?)",
            ),
        });
    }
    Ok(newest)
}

/// Whether an export was cut short at its end: [`write_export`] callers end an export with a
/// checkpoint of its last entry, so an export whose last entry no checkpoint covers lost
/// lines at its end. Returns that as a [`ProblemKind::Truncated`] problem.
///
/// Cutting exactly after an earlier checkpoint line cannot be told from a shorter export
/// this way; that checkpoint's `at` still says when the export was made.
#[must_use]
pub fn export_end_problem(entries: &[AuditEntry], checkpoints: &[Checkpoint]) -> Option<Problem> {
    end_problem(
        entries.iter().map(|e| e.seq).min(),
        entries.iter().map(|e| e.seq).max(),
        checkpoints,
    )
}

/// [`export_end_problem`] from the lowest and highest entry `seq`.
fn end_problem(
    first: Option<i64>,
    last: Option<i64>,
    checkpoints: &[Checkpoint],
) -> Option<Problem> {
    let last = last?;
    let signed = checkpoints.iter().map(|c| c.seq).max();
    if signed.is_some_and(|s| s >= last) {
        return None;
    }
    let unsigned = match signed {
        Some(s) if s >= first.unwrap_or(1) => {
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
