//! The generic JsonLogic operators and flagd's string and `sem_ver` operators.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use super::{eval, lookup_dynamic, Env, Scope};
use crate::rule::semver::{version_of, SemOp, SemVerNode};
use crate::rule::value::{cat_piece, js_cmp, loose_eq, number_value, strict_eq, to_number, truthy};
use crate::rule::{Affix, Node, Op};

type V<'a> = Cow<'a, Value>;

fn null<'a>() -> V<'a> {
    Cow::Owned(Value::Null)
}

fn boolean<'a>(b: bool) -> V<'a> {
    Cow::Owned(Value::Bool(b))
}

pub(crate) fn apply<'a>(op: Op, args: &'a [Node], env: &Env<'a>, scope: Scope<'a>) -> V<'a> {
    let arg = |i: usize| -> V<'a> {
        match args.get(i) {
            Some(n) => eval(n, env, scope),
            None => null(),
        }
    };
    match op {
        Op::LooseEq
        | Op::LooseNe
        | Op::StrictEq
        | Op::StrictNe
        | Op::Not
        | Op::Truthy
        | Op::Lt
        | Op::Le
        | Op::Gt
        | Op::Ge
        | Op::In => boolean(test(op, args, env, scope).unwrap_or(false)),
        Op::Or | Op::And => {
            let mut last = null();
            for n in args {
                last = eval(n, env, scope);
                if truthy(&last) == (op == Op::Or) {
                    return last;
                }
            }
            last
        }
        Op::Max | Op::Min => fold_numbers(args, env, scope, |a, b| {
            if op == Op::Max {
                a.max(b)
            } else {
                a.min(b)
            }
        }),
        Op::Add => fold_numbers(args, env, scope, |a, b| a + b),
        Op::Mul => fold_numbers(args, env, scope, |a, b| a * b),
        Op::Sub => match (args.len(), to_number(&arg(0))) {
            (1, Some(a)) => Cow::Owned(number_value(-a)),
            (_, Some(a)) => binary(a, &arg(1), |a, b| a - b),
            _ => null(),
        },
        Op::Div => match to_number(&arg(0)) {
            Some(a) => binary(a, &arg(1), |a, b| a / b),
            None => null(),
        },
        Op::Rem => match to_number(&arg(0)) {
            Some(a) => binary(a, &arg(1), |a, b| a % b),
            None => null(),
        },
        Op::Cat => {
            let mut out = String::new();
            for n in args {
                cat_piece(&eval(n, env, scope), &mut out);
            }
            Cow::Owned(Value::String(out))
        }
        Op::Substr => substr(&arg(0), &arg(1), args.get(2).map(|_| arg(2))),
        Op::Merge => {
            let mut out = Vec::new();
            for n in args {
                match eval(n, env, scope).into_owned() {
                    Value::Array(items) => out.extend(items),
                    other => out.push(other),
                }
            }
            Cow::Owned(Value::Array(out))
        }
        Op::StartsWith | Op::EndsWith => {
            if args.len() != 2 {
                return null();
            }
            match (&*arg(0), &*arg(1)) {
                (Value::String(s), Value::String(affix)) => boolean(if op == Op::StartsWith {
                    s.starts_with(affix.as_str())
                } else {
                    s.ends_with(affix.as_str())
                }),
                _ => null(),
            }
        }
        Op::Missing => missing(args, env, scope),
        Op::MissingSome => missing_some(args, env, scope),
        Op::Map | Op::Filter | Op::All | Op::None | Op::Some | Op::Reduce => {
            super::iter::apply(op, args, env, scope)
        }
    }
}

/// The operators that always answer a boolean, answered as one (`None` for any other
/// operator): an `if` condition tests them without building and dropping a JSON value.
pub(crate) fn test<'a>(op: Op, args: &'a [Node], env: &Env<'a>, scope: Scope<'a>) -> Option<bool> {
    let arg = |i: usize| -> V<'a> {
        match args.get(i) {
            Some(n) => eval(n, env, scope),
            None => null(),
        }
    };
    Some(match op {
        Op::LooseEq => loose_eq(&arg(0), &arg(1)),
        Op::LooseNe => !loose_eq(&arg(0), &arg(1)),
        Op::StrictEq => strict_eq(&arg(0), &arg(1)),
        Op::StrictNe => !strict_eq(&arg(0), &arg(1)),
        Op::Not => !truthy(&arg(0)),
        Op::Truthy => truthy(&arg(0)),
        Op::Lt | Op::Le => {
            let strict = op == Op::Lt;
            let ok = |o: Option<Ordering>| match o {
                Some(Ordering::Less) => true,
                Some(Ordering::Equal) => !strict,
                _ => false,
            };
            let (a, b) = (arg(0), arg(1));
            if args.len() >= 3 {
                let c = arg(2);
                ok(js_cmp(&a, &b)) && ok(js_cmp(&b, &c))
            } else {
                ok(js_cmp(&a, &b))
            }
        }
        Op::Gt => js_cmp(&arg(0), &arg(1)) == Some(Ordering::Greater),
        Op::Ge => matches!(
            js_cmp(&arg(0), &arg(1)),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::In => match (&*arg(0), &*arg(1)) {
            (Value::String(needle), Value::String(hay)) => hay.contains(needle.as_str()),
            (needle, Value::Array(items)) => items.iter().any(|i| strict_eq(needle, i)),
            _ => false,
        },
        _ => return None,
    })
}

fn fold_numbers<'a>(
    args: &'a [Node],
    env: &Env<'a>,
    scope: Scope<'a>,
    f: impl Fn(f64, f64) -> f64,
) -> V<'a> {
    let mut acc: Option<f64> = None;
    for n in args {
        let Some(x) = to_number(&eval(n, env, scope)) else {
            return null();
        };
        acc = Some(match acc {
            None => x,
            Some(a) => f(a, x),
        });
    }
    acc.map_or_else(null, |a| Cow::Owned(number_value(a)))
}

fn binary<'a>(a: f64, b: &Value, f: impl Fn(f64, f64) -> f64) -> V<'a> {
    match to_number(b) {
        Some(b) => Cow::Owned(number_value(f(a, b))),
        None => null(),
    }
}

fn substr<'a>(s: &Value, start: &Value, len: Option<V<'_>>) -> V<'a> {
    let mut text = String::new();
    crate::rule::value::js_string(s, &mut text);
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len() as i64;
    let start = to_number(start).unwrap_or(0.0) as i64;
    let from = if start < 0 {
        (n + start).max(0)
    } else {
        start.min(n)
    };
    let to = match len.as_deref().and_then(to_number) {
        None => n,
        Some(l) if l < 0.0 => (n + l as i64).max(from),
        Some(l) => (from + l as i64).min(n),
    };
    let (from, to) = (from as usize, to.max(from) as usize);
    Cow::Owned(Value::String(chars[from..to].iter().collect()))
}

/// Keys (first argument may be an array of keys) whose value is `null`, absent or `""`.
fn missing_keys<'a>(keys: &[Value], env: &Env<'a>, scope: Scope<'a>) -> Vec<Value> {
    keys.iter()
        .filter(|k| {
            lookup_dynamic(k, env, scope).is_none_or(|v| v.is_null() || v.as_str() == Some(""))
        })
        .cloned()
        .collect()
}

fn missing<'a>(args: &'a [Node], env: &Env<'a>, scope: Scope<'a>) -> V<'a> {
    let mut keys: Vec<Value> = Vec::with_capacity(args.len());
    for (i, n) in args.iter().enumerate() {
        match eval(n, env, scope).into_owned() {
            Value::Array(items) if i == 0 => {
                keys = items;
                break;
            }
            other => keys.push(other),
        }
    }
    Cow::Owned(Value::Array(missing_keys(&keys, env, scope)))
}

fn missing_some<'a>(args: &'a [Node], env: &Env<'a>, scope: Scope<'a>) -> V<'a> {
    let need = args
        .first()
        .map(|n| to_number(&eval(n, env, scope)).unwrap_or(0.0));
    let keys = match args.get(1).map(|n| eval(n, env, scope).into_owned()) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    let absent = missing_keys(&keys, env, scope);
    let found = (keys.len() - absent.len()) as f64;
    if found >= need.unwrap_or(0.0) {
        Cow::Owned(Value::Array(Vec::new()))
    } else {
        Cow::Owned(Value::Array(absent))
    }
}

/// `starts_with` / `ends_with` with a literal affix: `null` unless the subject is a string.
pub(crate) fn affix<'a>(node: &'a Affix, env: &Env<'a>, scope: Scope<'a>) -> V<'a> {
    match affix_test(node, env, scope) {
        Some(b) => boolean(b),
        None => null(),
    }
}

/// [`affix`] as a boolean, `None` for its `null`.
pub(crate) fn affix_test<'a>(node: &'a Affix, env: &Env<'a>, scope: Scope<'a>) -> Option<bool> {
    match &*eval(&node.subject, env, scope) {
        Value::String(s) => Some(if node.at_end {
            s.ends_with(&*node.affix)
        } else {
            s.starts_with(&*node.affix)
        }),
        _ => None,
    }
}

pub(crate) fn sem_ver<'a>(node: &'a SemVerNode, env: &Env<'a>, scope: Scope<'a>) -> V<'a> {
    match sem_ver_test(node, env, scope) {
        Some(b) => boolean(b),
        None => null(),
    }
}

/// [`sem_ver`] as a boolean, `None` for its `null`.
pub(crate) fn sem_ver_test<'a>(
    node: &'a SemVerNode,
    env: &Env<'a>,
    scope: Scope<'a>,
) -> Option<bool> {
    let [a, o, b] = &*node.args else {
        return None;
    };
    let op = match node.op {
        Some(op) => op,
        None => match &*eval(o, env, scope) {
            Value::String(s) => SemOp::parse(s)?,
            _ => return None,
        },
    };
    let left = eval(a, env, scope);
    let mut scratch_l = String::new();
    let lv = version_of(&left, &mut scratch_l)?;
    if let Some(t) = &node.target {
        return Some(op.apply(&lv, &t.view()));
    }
    let right = eval(b, env, scope);
    let mut scratch_r = String::new();
    let rv = version_of(&right, &mut scratch_r)?;
    Some(op.apply(&lv, &rv))
}
