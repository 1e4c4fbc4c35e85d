//! The canonical encodings: the exact bytes that are hashed and signed.
//!
//! An auditor must be able to recompute every hash and check every signature without this
//! code, so the encodings are specified here completely; `docs/audit-format.md` says the same
//! for readers outside Rust.
//!
//! Each entry records which encoding its hash is over ([`Format`]): entries written before
//! format 2 existed keep format 1 and verify as they always did.
//!
//! # Format 2: RFC 8785 (JCS)
//!
//! Exactly the JSON Canonicalization Scheme of RFC 8785, so that any JCS library reproduces the
//! bytes: no whitespace; `null`, `true`, `false`; every number as ECMAScript's
//! `Number.prototype.toString` writes the IEEE 754 double it denotes (§3.2.2.3; integers
//! included, `1e+21`, `1e-7`, `0.002`, `-0` as `0`); strings escaped as in format 1 below
//! (§3.2.2.2); arrays in their order; object members **sorted by the UTF-16 code units of
//! their keys** (§3.2.3), recursively.
//!
//! A double holds every integer of magnitude up to 2⁵³ exactly, and no larger one: JCS would
//! hash `9007199254740993` as `9007199254740992`, so two different stored values would share a
//! hash. An entry whose `details` hold such an integer is therefore written in format 1, which
//! keeps integers exact, and a format-2 entry holding one does not verify.
//!
//! # Format 1 (entries written before format 2)
//!
//! A JSON value is written with no whitespace at all, and:
//!
//! - `null`, `true`, `false` as themselves;
//! - integers (numbers written without a fraction or exponent that fit in 64 bits) in plain
//!   decimal, exactly: `-12`, `0`, `18446744073709551615`;
//! - every other number as ECMAScript's `Number.prototype.toString` writes the double it parses
//!   to (RFC 8785 §3.2.2.3): the shortest digits that round-trip, plain notation for
//!   magnitudes in `[1e-6, 1e21)`, otherwise `d.ddde±x`. So `4.50` → `4.5`, `30.0` → `30`,
//!   `-0.0` → `0`, `2e-3` → `0.002`, `1e21` → `1e+21`, `1e-7` → `1e-7`;
//! - strings in double quotes, with `"` as `\"`, `\` as `\\`, U+0008 as `\b`, U+000C as `\f`,
//!   U+000A as `\n`, U+000D as `\r`, U+0009 as `\t`, every other code point below U+0020 as
//!   `\u00xx` (lowercase hex), and every other character as its raw UTF-8 bytes (no `\u`
//!   escapes, no Unicode normalisation);
//! - arrays as `[a,b,c]`, in their order;
//! - objects as `{"k1":v1,"k2":v2}` with the keys **sorted by their UTF-8 bytes** (memcmp
//!   order), recursively at every depth.
//!
//! This differs from RFC 8785 in three ways: keys sort by UTF-8 bytes rather than UTF-16 code
//! units (the two orders differ only between characters above U+FFFF and characters in
//! U+E000..=U+FFFF), integers beyond 2⁵³ stay exact instead of being rounded to a double, and
//! where two shortest digit strings are equally close to a double the digits are Rust's, not
//! necessarily the even one ([`write_f64`]).
//!
//! # An entry
//!
//! `hash = lowercase_hex(sha256(prefix ‖ canonical_json(object)))` where `prefix` is
//! `b"sluice-audit-v1\n"` for format 1 and `b"sluice-audit-v2\n"` for format 2, and `object`
//! has exactly these eight members (shown here in their canonical order, the same in both
//! formats since the keys are ASCII):
//!
//! | key | value |
//! | --- | --- |
//! | `action` | string |
//! | `actor` | string |
//! | `at` | string, RFC 3339 UTC with three fractional digits and `Z`: `2026-11-27T07:00:00.123Z` (nine digits if the timestamp is not whole milliseconds) |
//! | `details` | any JSON value (Sluice writes an object) |
//! | `prev_hash` | string, 64 lowercase hex digits; 64 zeros for `seq` 1 |
//! | `resource` | string or `null` |
//! | `seq` | integer |
//! | `subject_id` | string or `null` |
//!
//! `hash` and `format` themselves are not part of the object; the prefix binds the format.
//!
//! # A checkpoint
//!
//! `signature = base64(ed25519_sign(key, b"sluice-audit-checkpoint-v1\n" ‖ canonical_json({
//! "at": ..., "hash": ..., "key_id": ..., "seq": ...})))` with the format-1 rules (for these
//! four ASCII members and a `seq` below 2⁵³ they give the same bytes as RFC 8785), where `key_id`
//! is the lowercase hex of the first 8 bytes of `sha256(raw 32-byte Ed25519 public key)` and
//! base64 is the standard alphabet with padding.
//!
//! The domain-separation prefixes make the bytes of every format and of checkpoints disjoint.
//!
//! # Why by hand
//!
//! The encoder is about a hundred lines and has to produce exactly these bytes forever, so it
//! may not lean on anyone's formatting choices: `serde_json` is built with `preserve_order` in
//! this workspace (its maps keep insertion order, not sorted order), and its float text is not
//! stable across releases (1.0.154 prints `1e+100` where earlier releases printed `1e100`),
//! which would silently change hashes on a dependency update. A canonical-JSON crate would be
//! one more dependency whose output we would still have to pin with tests; owning a few lines,
//! pinned by golden vectors and the RFC's own examples in the tests, is cheaper. Float digits
//! come from Rust's own shortest round-trip `{:e}` formatting, which is part of the standard
//! library's contract.

use serde_json::Value;
use std::io::Write as _;

/// Domain-separation prefix of a format-1 entry's hashed bytes.
pub const ENTRY_DOMAIN: &[u8] = b"sluice-audit-v1\n";
/// Domain-separation prefix of a format-2 (RFC 8785) entry's hashed bytes.
pub const ENTRY_DOMAIN_V2: &[u8] = b"sluice-audit-v2\n";

/// The largest integer magnitude a double holds exactly, and with all its neighbours: 2⁵³.
const MAX_EXACT: u64 = 1 << 53;

/// Which canonical encoding an entry's hash is over; stored with the entry (as `1` or `2`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "u8", try_from = "u8")]
pub enum Format {
    /// Sorted by UTF-8 bytes, exact integers: every entry written before format 2.
    #[default]
    V1,
    /// RFC 8785 (JCS).
    Jcs,
}

impl Format {
    /// The format of new entries whose `details` are `details`: RFC 8785 unless it would round
    /// an integer (see the module documentation).
    #[must_use]
    pub fn for_details(details: &Value) -> Self {
        if jcs_exact(details) {
            Self::Jcs
        } else {
            Self::V1
        }
    }

    /// The domain-separation prefix of an entry's hashed bytes in this format.
    #[must_use]
    pub fn entry_domain(self) -> &'static [u8] {
        match self {
            Self::V1 => ENTRY_DOMAIN,
            Self::Jcs => ENTRY_DOMAIN_V2,
        }
    }

    /// Appends the canonical JSON of `value` in this format. The formats differ in two places
    /// only: numbers (exact integers vs. RFC 8785's doubles) and the order of object keys.
    ///
    /// Recursion depth is that of `value`; values parsed by `serde_json` are at most 128 deep.
    pub fn write_value(self, out: &mut Vec<u8>, value: &Value) {
        match value {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Number(n) => match self {
                Self::V1 => {
                    if let Some(i) = n.as_i64() {
                        out.extend_from_slice(i.to_string().as_bytes());
                    } else if let Some(u) = n.as_u64() {
                        out.extend_from_slice(u.to_string().as_bytes());
                    } else if let Some(f) = n.as_f64() {
                        write_f64(out, f);
                    }
                }
                // Without `arbitrary_precision` every number has a double (integers rounded).
                Self::Jcs => {
                    if let Some(f) = n.as_f64() {
                        write_f64_jcs(out, f);
                    }
                }
            },
            Value::String(s) => write_str(out, s),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_value(out, item);
                }
                out.push(b']');
            }
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                match self {
                    // `str`'s `Ord` is byte-wise on UTF-8, which is the order format 1 names.
                    Self::V1 => members.sort_unstable_by(|a, b| a.0.cmp(b.0)),
                    // RFC 8785 §3.2.3: by UTF-16 code units, not by UTF-8 bytes.
                    Self::Jcs => {
                        members.sort_unstable_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()))
                    }
                }
                out.push(b'{');
                for (i, (key, item)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    self.write_value(out, item);
                }
                out.push(b'}');
            }
        }
    }

    /// Whether `value` can be hashed in this format without two values sharing bytes.
    #[must_use]
    pub fn holds(self, value: &Value) -> bool {
        match self {
            Self::V1 => true,
            Self::Jcs => jcs_exact(value),
        }
    }

    /// `true` for format 1 (which the export leaves out of its lines).
    #[must_use]
    pub fn is_v1(&self) -> bool {
        *self == Self::V1
    }
}

impl From<Format> for u8 {
    fn from(format: Format) -> Self {
        match format {
            Format::V1 => 1,
            Format::Jcs => 2,
        }
    }
}

impl TryFrom<u8> for Format {
    type Error = UnknownFormat;

    fn try_from(n: u8) -> Result<Self, UnknownFormat> {
        match n {
            1 => Ok(Self::V1),
            2 => Ok(Self::Jcs),
            other => Err(UnknownFormat(i64::from(other))),
        }
    }
}

impl TryFrom<i64> for Format {
    type Error = UnknownFormat;

    fn try_from(n: i64) -> Result<Self, UnknownFormat> {
        u8::try_from(n)
            .map_err(|_| UnknownFormat(n))
            .and_then(Self::try_from)
    }
}

/// An entry format this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit entry format {0} (this version knows 1 and 2)")]
pub struct UnknownFormat(pub i64);

/// Appends the RFC 8785 canonical JSON of `value` to `out`.
pub fn write_jcs(out: &mut Vec<u8>, value: &Value) {
    Format::Jcs.write_value(out, value);
}

/// RFC 8785 canonical JSON of a value, as bytes.
#[must_use]
pub fn to_jcs_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_jcs(&mut out, value);
    out
}

/// Whether every integer in `value` is one a double holds exactly (magnitude ≤ 2⁵³), so that
/// RFC 8785 gives distinct values distinct bytes.
#[must_use]
pub fn jcs_exact(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.unsigned_abs() <= MAX_EXACT
            } else if let Some(u) = n.as_u64() {
                u <= MAX_EXACT
            } else {
                true
            }
        }
        Value::Array(items) => items.iter().all(jcs_exact),
        Value::Object(map) => map.values().all(jcs_exact),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}
/// Domain-separation prefix of a checkpoint's signed bytes.
pub const CHECKPOINT_DOMAIN: &[u8] = b"sluice-audit-checkpoint-v1\n";

/// Appends the canonical JSON of `value` to `out` (format 1).
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    Format::V1.write_value(out, value);
}

/// Appends a finite double as format 1 writes it: ECMAScript's layout of Rust's shortest
/// round-trip digits. Where two shortest digit strings are equally close to the double, Rust
/// may take the other one than ECMAScript (`1424953923781206.3` for RFC 8785's
/// `1424953923781206.2`); format 1 keeps Rust's, as its entries were hashed with it.
pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    write_f64_with(out, f, false);
}

/// Appends a finite double exactly as ECMAScript's `Number.prototype.toString` would
/// (RFC 8785 §3.2.2.3), ties between equally close shortest digit strings going to the even
/// one.
pub fn write_f64_jcs(out: &mut Vec<u8>, f: f64) {
    write_f64_with(out, f, true);
}

/// The shortest round-trip digits and decimal exponent come from Rust's `{:e}` formatting
/// (`1.5e-7`, `1e100`); only their layout (and, for RFC 8785, ties) is decided here.
fn write_f64_with(out: &mut Vec<u8>, f: f64, ties_to_even: bool) {
    if f == 0.0 {
        // Both zeros, as in ECMAScript.
        out.push(b'0');
        return;
    }
    // An integer under 2⁵³ — every sequence number, count and duration an entry holds: its
    // neighbours are at most 1 away, so its shortest round-trip digits are its own, no tie
    // arises, and with at most 16 digits both layouts write it in full. Written directly:
    // the general path below formats it twice, once to 800 digits, and was an eighth of an
    // audited write's processor (BENCHMARKS.md).
    if f.fract() == 0.0 && f.abs() < TWO_POW_53 {
        // INVARIANT: exact, as |f| < 2⁵³.
        let i = f as i64;
        let _ = write!(out, "{i}");
        return;
    }
    write_f64_general(out, f, ties_to_even);
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

fn write_f64_general(out: &mut Vec<u8>, f: f64, ties_to_even: bool) {
    let sci = format!("{:e}", f.abs());
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        out.extend_from_slice(sci.as_bytes());
        return;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        out.extend_from_slice(sci.as_bytes());
        return;
    };
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if ties_to_even {
        digits = even_on_tie(f.abs(), digits, exponent);
    }
    // ECMAScript's names: the value is 0.d₁d₂…d_k × 10ⁿ.
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let n = exponent + 1;
    if f < 0.0 {
        out.push(b'-');
    }
    let text = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k).unsigned_abs() as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n.unsigned_abs() as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat(n.unsigned_abs() as usize))
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let dot = if rest.is_empty() { "" } else { "." };
        let sign = if n > 0 { '+' } else { '-' };
        format!("{first}{dot}{rest}e{sign}{}", (n - 1).unsigned_abs())
    };
    out.extend_from_slice(text.as_bytes());
}

/// ECMAScript (ECMA-262 Number::toString, step 5): of the shortest digit strings, the one
/// closest to the value, and on a tie the even one. Rust's shortest digits are closest; a tie
/// is a value whose exact decimal expansion is those `k` digits and a final 5 — then both
/// neighbours are equally close, and the even one is taken.
fn even_on_tie(abs: f64, digits: String, exponent: i32) -> String {
    let k = digits.len();
    // Every finite double has an exact decimal expansion of at most 767 significant digits.
    let exact = format!("{abs:.800e}");
    let Some((mantissa, exact_exponent)) = exact.split_once('e') else {
        return digits;
    };
    if exact_exponent.parse::<i32>().ok() != Some(exponent) {
        return digits;
    }
    let exact_digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exact_digits = exact_digits.trim_end_matches('0');
    let (Some(low), Some(b'5')) = (
        exact_digits.get(..k),
        exact_digits.as_bytes().get(k).copied(),
    ) else {
        return digits;
    };
    if exact_digits.len() != k + 1 {
        return digits;
    }
    match low.as_bytes().last() {
        Some(d) if (d - b'0') % 2 == 0 => low.to_owned(),
        // Odd and below 9: the upper neighbour ends in the next, even digit.
        Some(&d) if d < b'9' => format!("{}{}", &low[..k - 1], char::from(d + 1)),
        _ => digits,
    }
}

/// Appends a canonical JSON string (quoted and escaped) to `out`.
///
/// Copies runs of bytes that need no escape in one go: only ASCII bytes (`"`, `\\`, controls)
/// are escaped, and no byte of a multi-byte UTF-8 sequence is ASCII, so working on bytes keeps
/// every other character as it is. The gateway hashes every relayed statement through here.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Canonical JSON of a value, as bytes.
#[must_use]
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value);
    out
}

/// Writes a canonical object whose members the caller supplies **already sorted by key**.
///
/// Used for the fixed-shape entry and checkpoint objects, so that an entry's `details` need not
/// be cloned into a temporary `Value` just to be hashed.
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    format: Format,
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>, format: Format) -> Self {
        out.push(b'{');
        Self {
            out,
            first: true,
            format,
        }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(b':');
    }

    pub(crate) fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_str(self.out, value);
        self
    }

    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        self.key(key);
        match value {
            Some(v) => write_str(self.out, v),
            None => self.out.extend_from_slice(b"null"),
        }
        self
    }

    pub(crate) fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key);
        match self.format {
            Format::V1 => self.out.extend_from_slice(value.to_string().as_bytes()),
            // A JCS number is a double; sequence numbers stay far below 2⁵³.
            Format::Jcs => write_f64_jcs(self.out, value as f64),
        }
        self
    }

    pub(crate) fn value(&mut self, key: &str, value: &Value) -> &mut Self {
        self.key(key);
        self.format.write_value(self.out, value);
        self
    }

    pub(crate) fn finish(&mut self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::{write_f64_general, write_f64_with};
    use proptest::prelude::*;

    fn both(f: f64, ties_to_even: bool) -> (String, String) {
        let (mut fast, mut general) = (Vec::new(), Vec::new());
        write_f64_with(&mut fast, f, ties_to_even);
        write_f64_general(&mut general, f, ties_to_even);
        (
            String::from_utf8_lossy(&fast).into_owned(),
            String::from_utf8_lossy(&general).into_owned(),
        )
    }

    #[test]
    fn integers_at_the_edges_are_written_as_the_general_path_writes_them() {
        let edges = [
            1.0,
            -1.0,
            10.0,
            1e15,
            1e16 - 2.0,
            9_007_199_254_740_991.0,
            -9_007_199_254_740_991.0,
            4_503_599_627_370_496.0,
            123_456_789_012_345.0,
        ];
        for f in edges {
            for ties in [true, false] {
                let (fast, general) = both(f, ties);
                assert_eq!(fast, general, "{f}");
            }
        }
        // At 2⁵³ and past it the general path is taken.
        assert_eq!(both(9_007_199_254_740_992.0, true).0, "9007199254740992");
        assert_eq!(both(1e21, true).0, "1e+21");
        // 2⁶⁰ in full would be 1152921504606846976: ECMAScript writes its shortest digits.
        assert_eq!(both(2f64.powi(60), true).0, "1152921504606847000");
    }

    proptest! {
        #[test]
        fn every_integer_under_2_pow_53_is_written_as_the_general_path_writes_it(
            i in -9_007_199_254_740_991i64..=9_007_199_254_740_991i64,
            ties in any::<bool>(),
        ) {
            let f = i as f64;
            let (fast, general) = both(f, ties);
            prop_assert_eq!(&fast, &general);
            prop_assert_eq!(fast, i.to_string());
        }
    }
}
