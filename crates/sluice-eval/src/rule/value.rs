//! JavaScript-flavoured value semantics, as JsonLogic defines them:
//! truthiness, number coercion, loose and strict equality, ordering, and
//! string conversion.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::{Number, Value};

/// JsonLogic truthiness: `0`, `""`, `[]`, `null`, `false` (and NaN) are false.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// JavaScript `ToNumber`, returning `None` for NaN.
pub(crate) fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(0.0),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                Some(0.0)
            } else {
                t.parse::<f64>().ok().filter(|f| !f.is_nan())
            }
        }
        Value::Array(a) => match a.as_slice() {
            [] => Some(0.0),
            [one] => to_number(one),
            _ => None,
        },
        Value::Object(_) => None,
    }
}

/// A JSON number for `f`: integral values within 2^53 become integers (so they
/// print as `3`, as JavaScript and Go print them); NaN and infinities become null.
pub(crate) fn number_value(f: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() < EXACT {
        // INVARIANT: integral and below 2^53, so the cast is exact.
        let i = f as i64;
        return Value::Number(Number::from(i));
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// JavaScript `==` restricted to JSON values.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(_), Value::Number(_)) => num_eq(a, b),
        (Value::Object(_), _) | (_, Value::Object(_)) => false,
        (Value::Array(_), Value::Array(_)) => false,
        (Value::Array(_), _) | (_, Value::Array(_)) => {
            let (mut x, mut y) = (String::new(), String::new());
            js_string(a, &mut x);
            js_string(b, &mut y);
            match (a, b) {
                (Value::String(_), _) | (_, Value::String(_)) => x == y,
                _ => matches!((to_number(a), to_number(b)), (Some(p), Some(q)) if p == q),
            }
        }
        _ => matches!((to_number(a), to_number(b)), (Some(p), Some(q)) if p == q),
    }
}

fn num_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
                return p == q;
            }
            x.as_f64() == y.as_f64()
        }
        _ => false,
    }
}

/// JavaScript `===` restricted to JSON values (arrays and objects compare by
/// identity in JavaScript, so two of them are never strictly equal).
pub(crate) fn strict_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(_), Value::Number(_)) => num_eq(a, b),
        _ => false,
    }
}

/// JavaScript relational comparison: strings compare as strings when both
/// sides are strings, otherwise as numbers. `None` when incomparable (NaN).
pub(crate) fn js_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Value::String(x), Value::String(y)) = (a, b) {
        return Some(x.as_str().cmp(y.as_str()));
    }
    if let (Value::Number(x), Value::Number(y)) = (a, b) {
        if let (Some(p), Some(q)) = (x.as_i64(), y.as_i64()) {
            return Some(p.cmp(&q));
        }
    }
    to_number(a)?.partial_cmp(&to_number(b)?)
}

/// JavaScript `String(v)` (arrays join with `,`; `null` inside arrays is empty).
pub(crate) fn js_string(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => js_number(n, out),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !item.is_null() {
                    js_string(item, out);
                }
            }
        }
        Value::Object(_) => out.push_str("[object Object]"),
    }
}

fn js_number(n: &Number, out: &mut String) {
    if n.is_i64() || n.is_u64() {
        let _ = write!(out, "{n}");
        return;
    }
    match number_value(n.as_f64().unwrap_or(f64::NAN)) {
        Value::Number(m) if m.is_i64() => {
            let _ = write!(out, "{m}");
        }
        _ => {
            let _ = write!(out, "{}", n.as_f64().unwrap_or(f64::NAN));
        }
    }
}

/// The string a `cat` sees for an argument (`null` is empty, as in `Array.join`).
pub(crate) fn cat_piece(v: &Value, out: &mut String) {
    if !v.is_null() {
        js_string(v, out);
    }
}
