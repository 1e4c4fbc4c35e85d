//! Timestamps: millisecond truncation and the one textual form used in hashes, signatures and
//! exports.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

/// Drops everything below the millisecond, so that a timestamp survives a round trip through
/// any store that keeps milliseconds.
#[must_use]
pub fn truncate_to_millis(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    // `with_nanosecond` only fails for values ≥ 2·10⁹; `nanos - nanos % 10⁶` is ≤ `nanos`.
    at.with_nanosecond(nanos - nanos % 1_000_000).unwrap_or(at)
}

/// The canonical text of a timestamp: RFC 3339 in UTC with a `Z` suffix and exactly three
/// fractional digits (`2026-11-27T07:00:00.123Z`).
///
/// Entries made by [`crate::ChainHead::append`] are always millisecond-truncated. A timestamp
/// that is not (which only an edited export can contain) is written with nine fractional
/// digits instead, so that the extra precision is covered by the hash rather than silently
/// ignored.
#[must_use]
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    let precision = if at.nanosecond() % 1_000_000 == 0 {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Nanos
    };
    at.to_rfc3339_opts(precision, true)
}

/// `#[serde(with = "crate::time::serde_timestamp")]`: [`format_timestamp`] out, any RFC 3339
/// timestamp in (converted to UTC, precision kept).
pub(crate) mod serde_timestamp {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_timestamp(at))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}: {e}"))
            })
    }
}
