//! Audit entries and the chain head they hang from.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canonical::{Format, ObjectWriter};
use crate::time::{format_timestamp, truncate_to_millis};

/// `prev_hash` of entry 1 and `hash` of the empty chain: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One append-only record of something that happened.
///
/// Serialises (for the JSON Lines export) with these snake_case field names and `at` in the
/// canonical millisecond form. See [`crate::canonical`] for the hashed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1-based and gap-free.
    pub seq: i64,
    /// Truncated to milliseconds by [`ChainHead::append`].
    #[serde(with = "crate::time::serde_timestamp")]
    pub at: DateTime<Utc>,
    /// Principal name, or `system:reaper` / `system:scheduler`.
    pub actor: String,
    /// What happened, e.g. `access.request.created`, `access.approved`, `decision.deny`.
    pub action: String,
    /// What it happened to, e.g. `flag:production/checkout-v2`.
    pub resource: Option<String>,
    /// Id of the thing acted on (request id, grant id, token id).
    pub subject_id: Option<String>,
    /// Free-form; Sluice writes an object.
    pub details: serde_json::Value,
    /// Hex SHA-256 of the previous entry; [`GENESIS_HASH`] for `seq` 1.
    pub prev_hash: String,
    /// Hex SHA-256 over the canonical encoding of every field above.
    pub hash: String,
    /// Which canonical encoding `hash` is over. Absent from an export line means format 1,
    /// so exports made before format 2 still read.
    #[serde(default, skip_serializing_if = "Format::is_v1")]
    pub format: Format,
}

impl AuditEntry {
    /// The exact bytes that [`AuditEntry::compute_hash`] hashes (domain prefix included).
    #[must_use]
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = self.format.entry_domain().to_vec();
        // INVARIANT: keys in canonical order (ASCII, so the same in every format) — pinned by
        // the `canonical` tests.
        ObjectWriter::new(&mut out, self.format)
            .str("action", &self.action)
            .str("actor", &self.actor)
            .str("at", &format_timestamp(&self.at))
            .value("details", &self.details)
            .str("prev_hash", &self.prev_hash)
            .opt_str("resource", self.resource.as_deref())
            .int("seq", self.seq)
            .opt_str("subject_id", self.subject_id.as_deref())
            .finish();
        out
    }

    /// Lowercase hex SHA-256 of [`AuditEntry::canonical_bytes`]; ignores the `hash` field.
    #[must_use]
    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }

    /// Whether the stored `hash` matches the entry's content. A format-2 entry whose
    /// `details` hold an integer that RFC 8785 would round never matches (see
    /// [`crate::canonical`]): its hash could not tell that integer from its neighbour.
    #[must_use]
    pub fn hash_is_valid(&self) -> bool {
        self.format.holds(&self.details) && self.hash == self.compute_hash()
    }

    /// The chain head this entry makes, as stored (`seq`, `hash`).
    #[must_use]
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// What a caller supplies to record something; the chain supplies the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub actor: String,
    pub action: String,
    pub resource: Option<String>,
    pub subject_id: Option<String>,
    pub details: serde_json::Value,
}

impl NewEntry {
    /// An entry with no resource, no subject and empty `details` (`{}`).
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            resource: None,
            subject_id: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    #[must_use]
    pub fn subject_id(mut self, subject_id: impl Into<String>) -> Self {
        self.subject_id = Some(subject_id.into());
        self
    }

    #[must_use]
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// The last entry of a chain: its sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    /// The head of the empty chain: `seq` 0, 64 zeros.
    #[must_use]
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
        }
    }

    /// The next entry of the chain: `seq + 1`, `prev_hash` = this head's hash, `at` truncated to
    /// milliseconds, and its hash computed in RFC 8785 canonical form (format 2; format 1 when
    /// its `details` hold an integer RFC 8785 would round).
    ///
    /// The caller (the store) must persist the entry and move its head to `entry.head()` in
    /// one transaction, together with the change the entry records.
    #[must_use]
    pub fn append(&self, at: DateTime<Utc>, new: NewEntry) -> AuditEntry {
        let format = Format::for_details(&new.details);
        self.append_as(format, at, new)
    }

    /// [`ChainHead::append`] in a given format: for tests and tools that need entries as an
    /// older version wrote them. A format-2 entry with an integer beyond 2⁵³ in its `details`
    /// will not verify.
    #[must_use]
    pub fn append_as(&self, format: Format, at: DateTime<Utc>, new: NewEntry) -> AuditEntry {
        let mut entry = AuditEntry {
            seq: self.seq.saturating_add(1),
            at: truncate_to_millis(at),
            actor: new.actor,
            action: new.action,
            resource: new.resource,
            subject_id: new.subject_id,
            details: new.details,
            prev_hash: self.hash.clone(),
            hash: String::new(),
            format,
        };
        entry.hash = entry.compute_hash();
        entry
    }
}

impl AuditEntry {
    /// An entry not yet on a chain: `seq` 0 and no hashes, `at` truncated to milliseconds, in
    /// the format [`ChainHead::append`] would give it. For a writer whose entries are chained
    /// later, when the head they follow is known; it verifies as nothing until then.
    #[must_use]
    pub fn unchained(at: DateTime<Utc>, new: NewEntry) -> AuditEntry {
        AuditEntry {
            seq: 0,
            at: truncate_to_millis(at),
            format: Format::for_details(&new.details),
            actor: new.actor,
            action: new.action,
            resource: new.resource,
            subject_id: new.subject_id,
            details: new.details,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

impl Default for ChainHead {
    fn default() -> Self {
        Self::genesis()
    }
}
