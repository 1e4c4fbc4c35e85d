//! The HTTP gateway's call log: each call's records (admitted, ended, refused) are rows, not
//! chained entries; a batch of rows is sealed by one chained audit entry carrying the batch's
//! hash. One entry per call would bound the gateway by the chain; one per batch costs the
//! chain once per commit. Recomputing a batch's hash from its stored rows and comparing it
//! with the sealing entry detects any edit, insertion or deletion of a row.

use crate::canonical::{Format, ObjectWriter};
use sha2::{Digest, Sha256};

const BATCH_DOMAIN: &[u8] = b"sluice.http-call-batch.v1\n";

/// One call record as it is hashed (and stored).
#[derive(Debug, Clone, Copy)]
pub struct CallRecord<'a> {
    /// Its place in the batch, from 0.
    pub pos: i64,
    pub call: &'a str,
    /// `admitted`, `ended` or `refused`.
    pub event: &'a str,
    /// Milliseconds since the epoch.
    pub at: i64,
    pub principal: &'a str,
    pub resource: &'a str,
    /// The record's details, as stored (JSON text).
    pub details: &'a str,
}

/// The hash of a batch of records, in `pos` order: SHA-256 over a domain prefix and one
/// canonical JSON object per record, each on its own line.
#[must_use]
pub fn batch_hash<'a>(records: impl IntoIterator<Item = CallRecord<'a>>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(BATCH_DOMAIN);
    let mut out = Vec::with_capacity(512);
    for r in records {
        out.clear();
        // INVARIANT: keys in byte order, as in the audit entry encoding.
        ObjectWriter::new(&mut out, Format::V1)
            .int("at", r.at)
            .str("call", r.call)
            .str("details", r.details)
            .str("event", r.event)
            .int("pos", r.pos)
            .str("principal", r.principal)
            .str("resource", r.resource)
            .finish();
        out.push(b'\n');
        hasher.update(&out);
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_field_order_or_count_change_changes_the_hash() {
        let r = CallRecord {
            pos: 0,
            call: "htc-1",
            event: "ended",
            at: 1_700_000_000_000,
            principal: "ci-bot",
            resource: "http:payments-admin",
            details: r#"{"status":200}"#,
        };
        let s = CallRecord {
            pos: 1,
            call: "htc-2",
            ..r
        };
        let h = batch_hash([r, s]);
        assert_eq!(h, batch_hash([r, s]));
        assert_ne!(h, batch_hash([s, r]));
        assert_ne!(h, batch_hash([r]));
        assert_ne!(h, batch_hash([r, s, s]));
        for other in [
            CallRecord { pos: 5, ..r },
            CallRecord { call: "htc-9", ..r },
            CallRecord {
                event: "admitted",
                ..r
            },
            CallRecord { at: 1, ..r },
            CallRecord {
                principal: "alice",
                ..r
            },
            CallRecord {
                resource: "http:x",
                ..r
            },
            CallRecord {
                details: r#"{"status":500}"#,
                ..r
            },
        ] {
            assert_ne!(h, batch_hash([other, s]));
        }
    }
}
