//! Key rotation: how signing passes from one key to the next without breaking verification.
//!
//! A rotation is two audit entries and two checkpoints, written together by
//! `sluice audit rotate-key`:
//!
//! 1. entry `s`, action [`ROTATION_ACTION`], whose `details` are a [`KeyRotation`] naming both
//!    public keys, and a checkpoint at `s` signed by the **old** key: the old key vouches for
//!    the new one (a verifier that trusts the old key learns the new one);
//! 2. entry `s + 1`, action [`ACTIVATION_ACTION`], and a checkpoint at `s + 1` signed by the
//!    **new** key: the new key vouches, through the hash chain, for entry `s` and so for the
//!    old key (a verifier that trusts only the new key learns the old one).
//!
//! The old key signs checkpoints up to `s`, the new key from `s + 1` on. [`crate::verify()`]
//! follows the chain of keys in both directions from whichever key it is given.
//! [`expected_signer`] says which key must sign the next checkpoint; the server refuses to
//! start, or to write a checkpoint, with any other.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::entry::{AuditEntry, NewEntry};
use crate::keys::{AuditVerifier, KeyError};

/// The action of the entry that hands signing to a new key.
pub const ROTATION_ACTION: &str = "audit.key.rotated";
/// The action of the entry right after it, the first one the new key signs.
pub const ACTIVATION_ACTION: &str = "audit.key.activated";
/// The actor of both entries.
pub const ROTATION_ACTOR: &str = "system:key-rotation";

/// The `details` of a [`ROTATION_ACTION`] entry. Keys are the raw 32-byte Ed25519 public keys
/// in standard base64; ids as in [`AuditVerifier::key_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub from_key_id: String,
    pub from_public_key: String,
    pub to_key_id: String,
    pub to_public_key: String,
}

impl KeyRotation {
    #[must_use]
    pub fn new(from: &AuditVerifier, to: &AuditVerifier) -> Self {
        Self {
            from_key_id: from.key_id().to_owned(),
            from_public_key: from.to_base64(),
            to_key_id: to.key_id().to_owned(),
            to_public_key: to.to_base64(),
        }
    }

    /// The entry to append (step 1 of a rotation).
    #[must_use]
    pub fn entry(&self) -> NewEntry {
        NewEntry::new(ROTATION_ACTOR, ROTATION_ACTION)
            .subject_id(self.to_key_id.clone())
            .details(serde_json::json!(self))
    }

    /// The entry that follows it (step 2 of a rotation).
    #[must_use]
    pub fn activation_entry(&self) -> NewEntry {
        NewEntry::new(ROTATION_ACTOR, ACTIVATION_ACTION)
            .subject_id(self.to_key_id.clone())
            .details(serde_json::json!({"key_id": self.to_key_id}))
    }

    /// The rotation an entry records; `None` for any other entry or one whose keys do not
    /// parse or do not match their ids (such an entry hands nothing over).
    #[must_use]
    pub fn of_entry(entry: &AuditEntry) -> Option<(Self, AuditVerifier, AuditVerifier)> {
        if entry.action != ROTATION_ACTION {
            return None;
        }
        let r: Self = serde_json::from_value(entry.details.clone()).ok()?;
        let (from, to) = r.keys().ok()?;
        (from.key_id() == r.from_key_id && to.key_id() == r.to_key_id).then_some((r, from, to))
    }

    /// Both public keys, parsed.
    pub fn keys(&self) -> Result<(AuditVerifier, AuditVerifier), KeyError> {
        Ok((
            AuditVerifier::from_base64(&self.from_public_key)?,
            AuditVerifier::from_base64(&self.to_public_key)?,
        ))
    }
}

/// The key that must sign the next checkpoint of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedKey {
    pub key_id: String,
    /// Base64 of the public key, when the trail names it (a rotation does).
    pub public_key: Option<String>,
}

/// Which key must sign the next checkpoint, given the latest checkpoint, the latest rotation
/// entry and the checkpoint at that entry's `seq`; `None` when there is no checkpoint yet (any
/// key may start the chain).
///
/// The rule is the one [`crate::verify()`] applies: a rotation counts once the old key has
/// signed a checkpoint at the rotation entry itself; from then on only the new key signs.
#[must_use]
pub fn expected_signer(
    latest: Option<&Checkpoint>,
    rotation: Option<&AuditEntry>,
    at_rotation: Option<&Checkpoint>,
) -> Option<ExpectedKey> {
    let latest = latest?;
    let handed_over = rotation.and_then(|entry| {
        let (r, from, _) = KeyRotation::of_entry(entry)?;
        let cp = at_rotation.filter(|c| c.seq == entry.seq && c.hash == entry.hash)?;
        from.verify(cp).ok()?;
        Some(r)
    });
    Some(match handed_over {
        Some(r) if latest.seq >= at_rotation.map_or(i64::MAX, |c| c.seq) => ExpectedKey {
            key_id: r.to_key_id,
            public_key: Some(r.to_public_key),
        },
        _ => ExpectedKey {
            key_id: latest.key_id.clone(),
            public_key: None,
        },
    })
}
