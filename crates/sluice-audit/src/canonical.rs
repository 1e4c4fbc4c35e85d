//! The canonical encoding: the exact bytes that are hashed and signed.
//!
//! An auditor must be able to recompute every hash and check every signature without this
//! code, so the encoding is specified here completely.
//!
//! # Canonical JSON
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
//! This is RFC 8785 (JCS) with two differences: keys sort by UTF-8 bytes rather than UTF-16
//! code units (the two orders differ only between characters above U+FFFF and characters in
//! U+E000..=U+FFFF; every key Sluice itself writes is ASCII), and integers beyond 2⁵³ stay
//! exact instead of being rounded to a double. For everything Sluice writes, a JCS library
//! gives the same bytes.
//!
//! # An entry
//!
//! `hash = lowercase_hex(sha256(b"sluice-audit-v1\n" ‖ canonical_json(object)))` where
//! `object` has exactly these eight members (shown here in their canonical order):
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
//! `hash` itself is not part of the object.
//!
//! # A checkpoint
//!
//! `signature = base64(ed25519_sign(key, b"sluice-audit-checkpoint-v1\n" ‖ canonical_json({
//! "at": ..., "hash": ..., "key_id": ..., "seq": ...})))` with the same rules, where `key_id`
//! is the lowercase hex of the first 8 bytes of `sha256(raw 32-byte Ed25519 public key)` and
//! base64 is the standard alphabet with padding.
//!
//! The two domain-separation prefixes make an entry's bytes and a checkpoint's bytes disjoint,
//! and leave room for a `v2` that could never be confused with `v1`.
//!
//! # Why by hand
//!
//! The encoder is about a hundred lines and has to produce exactly these bytes forever, so it
//! may not lean on anyone's formatting choices: `serde_json` is built with `preserve_order` in
//! this workspace (its maps keep insertion order, not sorted order), and its float text is not
//! stable across releases (1.0.154 prints `1e+100` where earlier releases printed `1e100`),
//! which would silently change hashes on a dependency update. A canonical-JSON crate would be
//! one more dependency whose output we would still have to pin with tests; owning a few lines,
//! pinned by golden vectors in the tests, is cheaper. Float digits come from Rust's own
//! shortest round-trip `{:e}` formatting, which is part of the standard library's contract.

use serde_json::Value;

/// Domain-separation prefix of an entry's hashed bytes.
pub const ENTRY_DOMAIN: &[u8] = b"sluice-audit-v1\n";
/// Domain-separation prefix of a checkpoint's signed bytes.
pub const CHECKPOINT_DOMAIN: &[u8] = b"sluice-audit-checkpoint-v1\n";

/// Appends the canonical JSON of `value` to `out`.
///
/// Recursion depth is that of `value`; values parsed by `serde_json` are at most 128 deep.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(f) = n.as_f64() {
                write_f64(out, f);
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // `str`'s `Ord` is byte-wise on UTF-8, which is the order the spec names.
            members.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// Appends a finite double as ECMAScript's `Number.prototype.toString` would (RFC 8785).
///
/// The shortest round-trip digits and decimal exponent come from Rust's `{:e}` formatting
/// (`1.5e-7`, `1e100`); only their layout is decided here.
pub fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f == 0.0 {
        // Both zeros, as in ECMAScript.
        out.push(b'0');
        return;
    }
    let sci = format!("{:e}", f.abs());
    let Some((mantissa, exponent)) = sci.split_once('e') else {
        out.extend_from_slice(sci.as_bytes());
        return;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        out.extend_from_slice(sci.as_bytes());
        return;
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
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

/// Appends a canonical JSON string (quoted and escaped) to `out`.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
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
}

impl<'a> ObjectWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
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
        self.out.extend_from_slice(value.to_string().as_bytes());
        self
    }

    pub(crate) fn value(&mut self, key: &str, value: &Value) -> &mut Self {
        self.key(key);
        write_value(self.out, value);
        self
    }

    pub(crate) fn finish(&mut self) {
        self.out.push(b'}');
    }
}
