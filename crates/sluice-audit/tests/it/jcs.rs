//! Format 2 is RFC 8785 (JCS): the RFC's own examples, with the expected bytes written down
//! from the RFC text, and the entry format built on it.

use serde_json::{json, Value};
use sluice_audit::canonical;
use sluice_audit::{verify, ChainHead, Format, NewEntry, GENESIS_HASH};

use crate::{at, t0};

fn jcs(value: &Value) -> String {
    String::from_utf8(canonical::to_jcs_vec(value)).unwrap()
}

/// RFC 8785 §3.2.2: the sample input and its canonical form (§3.2.3 lists the same result,
/// §3.2.4 its UTF-8 bytes).
#[test]
fn rfc_8785_sample_object() {
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
    assert_eq!(jcs(&value), expected);
    // §3.2.4 gives the same as hex bytes; its first and last few.
    let bytes = canonical::to_jcs_vec(&value);
    assert_eq!(&bytes[..6], &[0x7b, 0x22, 0x6c, 0x69, 0x74, 0x65]);
    assert_eq!(&bytes[bytes.len() - 3..], &[0x2f, 0x22, 0x7d]);
    // The euro sign is its raw UTF-8 bytes, not an escape.
    assert!(bytes.windows(3).any(|w| w == [0xe2, 0x82, 0xac]));
}

/// RFC 8785 §3.2.3: property sorting by UTF-16 code units. The emoji (U+1F600, surrogates
/// D83D DE00) sorts before U+FB33, the reverse of their UTF-8 byte order.
#[test]
fn rfc_8785_sorting_example() {
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let value: Value = serde_json::from_str(input).unwrap();
    let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
        \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
        \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(jcs(&value), expected);
    // Format 1 sorts by UTF-8 bytes and puts U+FB33 first: the two formats really differ.
    let v1 = String::from_utf8(canonical::to_vec(&value)).unwrap();
    assert!(v1.find('\u{fb33}') < v1.find('\u{1f600}'));
}

/// RFC 8785 Appendix B: IEEE 754 doubles (as bit patterns) and their canonical text.
#[test]
fn rfc_8785_appendix_b_numbers() {
    let table: [(u64, &str); 24] = [
        (0x0000000000000000, "0"),
        (0x8000000000000000, "0"),
        (0x0000000000000001, "5e-324"),
        (0x8000000000000001, "-5e-324"),
        (0x7fefffffffffffff, "1.7976931348623157e+308"),
        (0xffefffffffffffff, "-1.7976931348623157e+308"),
        (0x4340000000000000, "9007199254740992"),
        (0xc340000000000000, "-9007199254740992"),
        (0x4430000000000000, "295147905179352830000"),
        (0x44b52d02c7e14af5, "9.999999999999997e+22"),
        (0x44b52d02c7e14af6, "1e+23"),
        (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
        (0x444b1ae4d6e2ef4e, "999999999999999700000"),
        (0x444b1ae4d6e2ef4f, "999999999999999900000"),
        (0x444b1ae4d6e2ef50, "1e+21"),
        (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
        (0x3eb0c6f7a0b5ed8d, "0.000001"),
        (0x41b3de4355555553, "333333333.3333332"),
        (0x41b3de4355555554, "333333333.33333325"),
        (0x41b3de4355555555, "333333333.3333333"),
        (0x41b3de4355555556, "333333333.3333334"),
        (0x41b3de4355555557, "333333333.33333343"),
        (0xbecbf647612f3696, "-0.0000033333333333333333"),
        (0x43143ff3c1cb0959, "1424953923781206.2"),
    ];
    // The last row is the RFC's "round to even" case: two 17-digit strings are equally
    // close; format 1 kept Rust's choice, format 2 takes the even one.
    let tie = json!(f64::from_bits(0x43143ff3c1cb0959));
    assert_eq!(
        String::from_utf8(canonical::to_vec(&tie)).unwrap(),
        "1424953923781206.3"
    );
    for (bits, expected) in table {
        let value = json!(f64::from_bits(bits));
        assert_eq!(jcs(&value), expected, "{bits:016x}");
        // The same double written as JSON text and parsed again gives the same bytes.
        let reparsed: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(jcs(&reparsed), expected, "{expected}");
    }
}

/// Integers are numbers like any other in JCS: written as the double they denote.
#[test]
fn integers_are_doubles_in_jcs() {
    assert_eq!(jcs(&json!([0, -12, 30, 1_000_000])), "[0,-12,30,1000000]");
    // u64::MAX is the double 18446744073709551616, written by ECMAScript's rules.
    assert_eq!(jcs(&json!(u64::MAX)), "18446744073709552000");
    assert!(canonical::jcs_exact(
        &json!({"a": [9_007_199_254_740_992u64, -9_007_199_254_740_992i64]})
    ));
    assert!(!canonical::jcs_exact(
        &json!({"a": [9_007_199_254_740_993u64]})
    ));
    assert!(!canonical::jcs_exact(&json!([i64::MIN])));
}

/// A golden format-2 entry: the exact hashed bytes an outside tool must produce
/// (docs/audit-format.md).
#[test]
fn golden_format_2_entry() {
    let entry = ChainHead::genesis().append(
        at(123),
        NewEntry::new("alice", "flag.updated")
            .resource("flag:production/checkout-v2")
            .subject_id("req_1")
            .details(json!({"\u{fb33}": 1, "\u{1f600}": 2.50, "n": 30})),
    );
    assert_eq!(entry.format, Format::Jcs);
    let expected = format!(
        "sluice-audit-v2\n{{\"action\":\"flag.updated\",\"actor\":\"alice\",\
         \"at\":\"2026-11-27T07:00:00.123Z\",\"details\":{{\"n\":30,\"\u{1f600}\":2.5,\"\u{fb33}\":1}},\
         \"prev_hash\":\"{GENESIS_HASH}\",\"resource\":\"flag:production/checkout-v2\",\"seq\":1,\
         \"subject_id\":\"req_1\"}}"
    );
    assert_eq!(
        String::from_utf8(entry.canonical_bytes()).unwrap(),
        expected
    );
    use sha2::Digest as _;
    assert_eq!(
        entry.hash,
        hex::encode(sha2::Sha256::digest(expected.as_bytes()))
    );
    assert_eq!(
        entry.hash,
        "76d320aa623bebde2d262e0e9bdba87b9b7d5b46b05b105a90b818678d84d91d"
    );
    // The export line names the format; format 1 lines leave it out.
    let line = serde_json::to_value(&entry).unwrap();
    assert_eq!(line["format"], 2);
}

/// A chain written partly before format 2 (format 1) and partly after verifies as one; an
/// entry's format cannot be switched without its hash showing it.
#[test]
fn old_and_new_entries_verify_in_one_chain() {
    let mut head = ChainHead::genesis();
    let mut entries = Vec::new();
    for i in 0..6 {
        let format = if i < 3 { Format::V1 } else { Format::Jcs };
        let e = head.append_as(
            format,
            at(i * 1000),
            NewEntry::new("alice", "flag.updated").details(json!({"\u{fb33}": 1, "\u{1f600}": i})),
        );
        head = e.head();
        entries.push(e);
    }
    assert_eq!(entries[0].format, Format::V1);
    assert_eq!(entries[5].format, Format::Jcs);
    assert!(verify(&entries, &[], None, Some(&head)).ok());

    let mut switched = entries.clone();
    switched[4].format = Format::V1;
    let report = verify(&switched, &[], None, Some(&head));
    assert_eq!(report.first_problem().unwrap().seq, 5, "{report:?}");
}

/// An integer a double cannot hold keeps the entry in format 1 (exact); a format-2 entry
/// holding one never verifies, so two integers can never share a hash.
#[test]
fn integers_beyond_2_pow_53_stay_exact() {
    let big = json!({"limit": 9_007_199_254_740_993u64});
    let entry = ChainHead::genesis().append(t0(), NewEntry::new("a", "b").details(big.clone()));
    assert_eq!(entry.format, Format::V1);
    assert!(entry.hash_is_valid());

    let forced =
        ChainHead::genesis().append_as(Format::Jcs, t0(), NewEntry::new("a", "b").details(big));
    assert!(!forced.hash_is_valid());
    let neighbour = ChainHead::genesis().append_as(
        Format::Jcs,
        t0(),
        NewEntry::new("a", "b").details(json!({"limit": 9_007_199_254_740_992u64})),
    );
    assert_eq!(
        forced.hash, neighbour.hash,
        "JCS rounds: why format 2 refuses such values"
    );
    assert!(neighbour.hash_is_valid());
}
