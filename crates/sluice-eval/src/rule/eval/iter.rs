//! Operators that run a rule over each element of an array:
//! `map`, `filter`, `all`, `none`, `some`, `reduce`.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{eval, Env, Scope};
use crate::rule::value::truthy;
use crate::rule::{Node, Op};

pub(crate) fn apply<'a>(
    op: Op,
    args: &'a [Node],
    env: &Env<'a>,
    scope: Scope<'a>,
) -> Cow<'a, Value> {
    let data = match args.first() {
        Some(n) => eval(n, env, scope),
        None => Cow::Owned(Value::Null),
    };
    let empty = Vec::new();
    let items: &Vec<Value> = match &*data {
        Value::Array(items) => items,
        _ => &empty,
    };
    let Some(logic) = args.get(1) else {
        return Cow::Owned(match op {
            Op::Map | Op::Filter => Value::Array(Vec::new()),
            Op::All | Op::Some => Value::Bool(false),
            Op::None => Value::Bool(true),
            _ => Value::Null,
        });
    };
    let test = |item: &Value| truthy(&eval(logic, env, Scope::item(item)));
    let out = match op {
        Op::Map => Value::Array(
            items
                .iter()
                .map(|item| eval(logic, env, Scope::item(item)).into_owned())
                .collect(),
        ),
        Op::Filter => Value::Array(items.iter().filter(|i| test(i)).cloned().collect()),
        Op::All => Value::Bool(!items.is_empty() && items.iter().all(test)),
        Op::None => Value::Bool(!items.iter().any(test)),
        Op::Some => Value::Bool(items.iter().any(test)),
        Op::Reduce => {
            let mut acc = match args.get(2) {
                Some(n) => eval(n, env, scope).into_owned(),
                None => Value::Null,
            };
            for item in items {
                let step = reduce_scope(item, acc);
                acc = eval(logic, env, Scope::item(&step)).into_owned();
            }
            acc
        }
        _ => Value::Null,
    };
    Cow::Owned(out)
}

/// Builds the `{"current", "accumulator"}` scope object of `reduce`.
fn reduce_scope(current: &Value, accumulator: Value) -> Value {
    let mut m = Map::new();
    m.insert("current".to_owned(), current.clone());
    m.insert("accumulator".to_owned(), accumulator);
    Value::Object(m)
}
