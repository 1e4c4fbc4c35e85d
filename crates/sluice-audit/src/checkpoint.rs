//! Checkpoints: a chain head signed with the audit key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::canonical::{Format, ObjectWriter, CHECKPOINT_DOMAIN};
use crate::entry::ChainHead;
use crate::time::format_timestamp;

/// A signed statement "at `at`, entry `seq` of the chain had hash `hash`".
///
/// A checkpoint vouches for every entry up to `seq` (through the hash chain) and makes
/// truncation below it detectable. It is made by [`crate::AuditSigner::sign`] and checked by
/// [`crate::AuditVerifier::verify`]; the signed bytes are described in [`crate::canonical`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    #[serde(with = "crate::time::serde_timestamp")]
    pub at: DateTime<Utc>,
    /// Lowercase hex of the first 8 bytes of SHA-256 of the raw public key.
    pub key_id: String,
    /// Standard base64 (with padding) of the 64-byte Ed25519 signature.
    pub signature: String,
}

impl Checkpoint {
    /// The chain head this checkpoint vouches for.
    #[must_use]
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }

    /// The exact bytes that are signed (domain prefix included).
    #[must_use]
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.seq, &self.hash, &self.at, &self.key_id)
    }
}

pub(crate) fn signed_bytes(seq: i64, hash: &str, at: &DateTime<Utc>, key_id: &str) -> Vec<u8> {
    let mut out = CHECKPOINT_DOMAIN.to_vec();
    // INVARIANT: keys in byte order — pinned by the `canonical` tests.
    ObjectWriter::new(&mut out, Format::V1)
        .str("at", &format_timestamp(at))
        .str("hash", hash)
        .str("key_id", key_id)
        .int("seq", seq)
        .finish();
    out
}

/// Why a checkpoint does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint is signed by key {found}, not by the trusted key {trusted}")]
    UnknownKey { found: String, trusted: String },
    #[error("checkpoint signature is not valid base64 of 64 bytes")]
    MalformedSignature,
    #[error("checkpoint signature does not verify")]
    BadSignature,
}
