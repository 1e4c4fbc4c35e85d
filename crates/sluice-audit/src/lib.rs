//! The Sluice audit trail: entry format, hash chain, signed checkpoints and verification.
//!
//! This crate is the whole of invariant 4 ("the audit trail is tamper-evident") that can be
//! stated without a database:
//!
//! - [`AuditEntry`] — one append-only record. Entries carry gap-free sequence numbers starting
//!   at 1, and each one holds the hash of its predecessor ([`AuditEntry::prev_hash`]) and its
//!   own hash over a canonical encoding of every other field (see [`canonical`] for the exact
//!   bytes, so that an auditor can reimplement it).
//! - [`ChainHead`] — the `(seq, hash)` of the last entry; [`ChainHead::append`] is the only way
//!   the store makes a new entry.
//! - [`Checkpoint`] — an Ed25519 signature over a chain head, made by an [`AuditSigner`] whose
//!   key lives in a file, not in the database; [`AuditVerifier`] is the public half.
//! - [`rotation`] — how signing passes to a new key: an entry naming it, vouched for by a
//!   checkpoint of the old key, so that verification follows the chain of keys.
//! - [`verify()`] — one function that checks a sequence of entries and checkpoints, used for the
//!   live store and for offline exports alike, and *locates* the first bad sequence number;
//!   [`ChainVerifier`] is the same check fed one entry at a time in `seq` order, in constant
//!   memory, and [`verify_export`] uses it on an export file.
//! - [`write_export`] / [`read_export`] — the JSON Lines export format.
//!
//! The crate does no I/O except the key-file helpers ([`AuditSigner::load_or_create`]) and the
//! export helpers, which take a caller-supplied reader or writer. It never reads the wall
//! clock: every timestamp is a parameter.

pub mod call_log;
pub mod canonical;
mod checkpoint;
mod entry;
mod export;
mod keys;
mod report;
pub mod rotation;
pub mod session_log;
mod time;
mod verify;

pub use canonical::Format;
pub use checkpoint::{Checkpoint, CheckpointError};
pub use entry::{AuditEntry, ChainHead, NewEntry, GENESIS_HASH};
pub use export::{
    export_end_problem, read_export, read_witness, verify_export, verify_export_against,
    write_checkpoint_line, write_entry_line, write_export, ExportError,
};
pub use keys::{AuditSigner, AuditVerifier, KeyError};
pub use report::{Problem, ProblemKind, SignedHead, VerifyReport};
pub use rotation::{expected_signer, ExpectedKey, KeyRotation};
pub use time::{format_timestamp, truncate_to_millis};
pub use verify::{verify, ChainVerifier, NotInOrder};
