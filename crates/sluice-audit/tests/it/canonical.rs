use serde_json::{json, Map, Value};
use sluice_audit::canonical;
use sluice_audit::{format_timestamp, ChainHead, Format, NewEntry, GENESIS_HASH};

use crate::{at, t0};

fn text(value: &Value) -> String {
    String::from_utf8(canonical::to_vec(value)).unwrap()
}

#[test]
fn object_keys_are_sorted_recursively_whatever_the_insertion_order() {
    let mut inner_ab = Map::new();
    inner_ab.insert("a".into(), json!(1));
    inner_ab.insert("b".into(), json!([{"y": 1, "x": 2}]));
    let mut inner_ba = Map::new();
    inner_ba.insert("b".into(), json!([{"x": 2, "y": 1}]));
    inner_ba.insert("a".into(), json!(1));
    let mut first = Map::new();
    first.insert("z".into(), Value::Object(inner_ab));
    first.insert("m".into(), json!(null));
    let mut second = Map::new();
    second.insert("m".into(), json!(null));
    second.insert("z".into(), Value::Object(inner_ba));
    let (first, second) = (Value::Object(first), Value::Object(second));
    // serde_json keeps insertion order in this workspace, so its own output differs…
    assert_ne!(first.to_string(), second.to_string());
    // …but the canonical encoding does not.
    assert_eq!(
        text(&first),
        r#"{"m":null,"z":{"a":1,"b":[{"x":2,"y":1}]}}"#
    );
    assert_eq!(text(&first), text(&second));

    let entry =
        |details| ChainHead::genesis().append(t0(), NewEntry::new("a", "b").details(details));
    assert_eq!(entry(first).hash, entry(second).hash);
}

#[test]
fn keys_sort_by_utf8_bytes() {
    let value = json!({"b": 0, "B": 0, "é": 0, "a": 0, "aa": 0, "": 0});
    assert_eq!(text(&value), r#"{"":0,"B":0,"a":0,"aa":0,"b":0,"é":0}"#);
}

#[test]
fn strings_escape_only_quote_backslash_and_controls() {
    let value = json!("q\" b\\ \u{8}\u{c}\n\r\t \u{1} \u{1f} \u{7f} é \u{2028} 😀 /");
    assert_eq!(
        text(&value),
        "\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0001 \\u001f \u{7f} é \u{2028} 😀 /\""
    );
}

#[test]
fn integers_stay_exact_and_literals_are_themselves() {
    let value = json!([0, -12, i64::MIN, 18446744073709551615u64, true, false, null]);
    assert_eq!(
        text(&value),
        "[0,-12,-9223372036854775808,18446744073709551615,true,false,null]"
    );
}

/// Floats are written as ECMAScript / RFC 8785 write them, not as serde_json happens to.
/// Vectors from RFC 8785 §3.2.2.3 and Appendix B.
#[test]
fn floats_follow_ecmascript_number_to_string() {
    let cases = [
        ("0.0", "0"),
        ("-0.0", "0"),
        ("1.0", "1"),
        ("30.0", "30"),
        ("4.50", "4.5"),
        ("0.1", "0.1"),
        ("-1.5", "-1.5"),
        ("2e-3", "0.002"),
        ("1e-6", "0.000001"),
        ("1e-7", "1e-7"),
        ("1.5e-7", "1.5e-7"),
        ("0.000000000000000000000000001", "1e-27"),
        ("333333333.33333329", "333333333.3333333"),
        ("1e20", "100000000000000000000"),
        ("1e21", "1e+21"),
        ("1E30", "1e+30"),
        ("-1.25e100", "-1.25e+100"),
        ("123456789.0e3", "123456789000"),
        ("5e-324", "5e-324"),
        ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ("295147905179352830000.0", "295147905179352830000"),
        ("9007199254740993.0", "9007199254740992"),
    ];
    for (input, expected) in cases {
        let value: Value = serde_json::from_str(input).unwrap();
        assert!(value.is_f64(), "{input}");
        assert_eq!(text(&value), expected, "{input}");
    }
}

#[test]
fn timestamps_have_exactly_three_fractional_digits() {
    assert_eq!(format_timestamp(&t0()), "2026-11-27T07:00:00.000Z");
    assert_eq!(format_timestamp(&at(123)), "2026-11-27T07:00:00.123Z");
    let sub_ms = at(123) + chrono::Duration::microseconds(4);
    assert_eq!(format_timestamp(&sub_ms), "2026-11-27T07:00:00.123004000Z");
    let entry = ChainHead::genesis().append(sub_ms, NewEntry::new("a", "b"));
    assert_eq!(entry.at, at(123), "append truncates to milliseconds");
}

/// A golden vector: an auditor reimplementing the encoding can check against these bytes and
/// this hash. If this test fails, the format changed and every stored chain breaks.
#[test]
fn golden_entry_bytes_and_hash() {
    // Format 1: how every entry before format 2 was written, and must still verify.
    let entry = ChainHead::genesis().append_as(
        Format::V1,
        at(123),
        NewEntry::new("alice", "access.request.created")
            .resource("flag:production/checkout-v2")
            .subject_id("req_1")
            .details(json!({"reason": "INC-4411", "minutes": 30})),
    );
    let expected = format!(
        "sluice-audit-v1\n{{\"action\":\"access.request.created\",\"actor\":\"alice\",\
         \"at\":\"2026-11-27T07:00:00.123Z\",\"details\":{{\"minutes\":30,\"reason\":\"INC-4411\"}},\
         \"prev_hash\":\"{GENESIS_HASH}\",\"resource\":\"flag:production/checkout-v2\",\"seq\":1,\
         \"subject_id\":\"req_1\"}}"
    );
    assert_eq!(
        String::from_utf8(entry.canonical_bytes()).unwrap(),
        expected
    );
    assert_eq!(entry.hash, sha256_hex(expected.as_bytes()));
    assert_eq!(entry.hash, GOLDEN_HASH);

    let bare = ChainHead::genesis().append_as(
        Format::V1,
        t0(),
        NewEntry::new("system:reaper", "access.expired"),
    );
    let bytes = String::from_utf8(bare.canonical_bytes()).unwrap();
    assert!(bytes.contains(r#""resource":null"#) && bytes.contains(r#""subject_id":null"#));
    assert!(bytes.contains(r#""details":{}"#));
}

const GOLDEN_HASH: &str = "cb5a4d0cd4ed84e9d2c456674c0d3616e7bab3fe3c21ea9e09846fd06455a068";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
