//! The gateway's session log: each statement a session sent, chained by a running SHA-256
//! whose final value goes into the session-end audit entry. The log itself is not in the
//! chain (one entry per statement would cost too much); recomputing the running hash from
//! the stored rows and comparing it with the signed chain detects any edit, insertion or
//! deletion of a logged statement.

use crate::canonical::{Format, ObjectWriter};
use crate::time::format_timestamp;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const LOG_DOMAIN: &[u8] = b"sluice.session-log.v1\n";

/// The running hash of a session whose log is empty.
pub const LOG_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One logged statement as it is hashed.
#[derive(Debug, Clone, Copy)]
pub struct LogRecord<'a> {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: &'a str,
    pub text: &'a str,
    /// Parameters as stored (JSON text), if any.
    pub params: Option<&'a str>,
}

/// The running hash after `record`, given the hash before it.
#[must_use]
pub fn next_log_hash(prev: &str, record: &LogRecord<'_>) -> String {
    let mut hash = prev.to_owned();
    LogHasher::default().advance(&mut hash, record);
    hash
}

/// Advances running hashes with one reusable buffer: the gateway hashes every statement on
/// the relay's path, so it reuses one buffer for the hash input.
#[derive(Debug, Default)]
pub struct LogHasher {
    buf: Vec<u8>,
}

impl LogHasher {
    /// Replaces `hash` (the hex running hash before `record`) with the one after it.
    pub fn advance(&mut self, hash: &mut String, record: &LogRecord<'_>) {
        let out = &mut self.buf;
        out.clear();
        out.extend_from_slice(LOG_DOMAIN);
        out.extend_from_slice(hash.as_bytes());
        out.push(b'\n');
        // INVARIANT: keys in byte order, as in the audit entry encoding.
        ObjectWriter::new(out, Format::V1)
            .str("at", &format_timestamp(&record.at))
            .str("kind", record.kind)
            .opt_str("params", record.params)
            .int("seq", record.seq)
            .str("text", record.text)
            .finish();
        *hash = hex::encode(Sha256::digest(&*out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_changes_the_hash() {
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
        let r = LogRecord {
            seq: 1,
            at,
            kind: "query",
            text: "SELECT 1",
            params: None,
        };
        let h = next_log_hash(LOG_GENESIS, &r);
        assert_eq!(h, next_log_hash(LOG_GENESIS, &r));
        for other in [
            LogRecord { seq: 2, ..r },
            LogRecord { kind: "parse", ..r },
            LogRecord {
                text: "SELECT 2",
                ..r
            },
            LogRecord {
                params: Some("[]"),
                ..r
            },
        ] {
            assert_ne!(h, next_log_hash(LOG_GENESIS, &other));
        }
        assert_ne!(h, next_log_hash(&h, &r));
    }

    #[test]
    fn a_reused_hasher_gives_the_same_chain() {
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap_or_default();
        let texts = [
            "SELECT 1",
            "a longer statement than the first, to grow the buffer",
            "x",
        ];
        let mut hasher = LogHasher::default();
        let mut running = LOG_GENESIS.to_owned();
        let mut fresh = LOG_GENESIS.to_owned();
        for (i, text) in texts.into_iter().enumerate() {
            let r = LogRecord {
                seq: i as i64 + 1,
                at,
                kind: "query",
                text,
                params: None,
            };
            hasher.advance(&mut running, &r);
            fresh = next_log_hash(&fresh, &r);
            assert_eq!(running, fresh);
        }
    }
}
