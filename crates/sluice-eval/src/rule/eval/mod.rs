//! Evaluation of compiled rules. Values are `Cow`s: literals and context
//! attributes are borrowed, so the common operators allocate nothing.
//! Operators given bad input yield `null` (JsonLogic's and flagd's behaviour),
//! never an error: a rule that compiled always evaluates.

mod iter;
mod ops;

use std::borrow::Cow;

use serde_json::{Number, Value};

use super::{Node, Segment, Special, Var, VarPath};
use crate::context::Context;

/// What a rule is evaluated with.
pub(crate) struct Env<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) flag_key: &'a str,
    /// `flag_key` as a JSON string, so `$flagd.flagKey` borrows.
    pub(crate) flag_key_value: &'a Value,
    pub(crate) now_unix: i64,
}

/// The data `var` reads: the context, or an element inside `map`/`filter`/...
#[derive(Clone, Copy)]
pub(crate) enum Scope<'a> {
    Root(&'a Context),
    Item(&'a Value),
}

impl<'a> Scope<'a> {
    pub(crate) fn root(ctx: &'a Context) -> Self {
        Self::Root(ctx)
    }

    pub(crate) fn item(data: &'a Value) -> Self {
        Self::Item(data)
    }

    fn is_root(self) -> bool {
        matches!(self, Self::Root(_))
    }

    /// All the data (builds the context object on first use).
    fn whole(self) -> &'a Value {
        match self {
            Self::Root(ctx) => ctx.as_value(),
            Self::Item(v) => v,
        }
    }
}

/// The result of a rule in result position.
pub(crate) enum Outcome<'a> {
    /// A variant pre-resolved at compile time (index into the flag's variants).
    Variant(u32),
    /// A computed value, to be read as a variant name.
    Value(Cow<'a, Value>),
}

/// Evaluates a rule in result position; the flag says whether a `fractional`
/// chose the result.
pub(crate) fn eval_result<'a>(node: &'a Node, env: &Env<'a>) -> (Outcome<'a>, bool) {
    let scope = Scope::root(env.ctx);
    let mut node = node;
    let mut split = false;
    loop {
        match node {
            Node::Variant { idx, .. } => return (Outcome::Variant(*idx), split),
            Node::If(args) => match choose_if(args, env, scope) {
                Some(next) => node = next,
                None => return (Outcome::Value(Cow::Owned(Value::Null)), split),
            },
            Node::Fractional(f) => match f.pick(env, scope) {
                Some(next) => {
                    split = true;
                    node = next;
                }
                None => return (Outcome::Value(Cow::Owned(Value::Null)), split),
            },
            // Not `eval`: inlined, its dispatch merged into this loop's and cost the flags
            // that loop through `if` or `fractional` a jump table per step.
            other => return (Outcome::Value(eval_compound(other, env, scope)), split),
        }
    }
}

/// `if` / `?:`: the branch to take, `None` when no branch applies. Kept out of line: inlined
/// into [`eval_result`], it made every flag without a condition (a `fractional`, a literal)
/// save and restore its registers too.
#[inline(never)]
fn choose_if<'a>(args: &'a [Node], env: &Env<'a>, scope: Scope<'a>) -> Option<&'a Node> {
    let mut i = 0;
    while i + 1 < args.len() {
        if truthy_of(&args[i], env, scope) {
            return args.get(i + 1);
        }
        i += 2;
    }
    args.get(i)
}

/// `truthy(&eval(node))`, without the JSON value for the operators that answer a boolean
/// (`null` is false).
fn truthy_of<'a>(node: &'a Node, env: &Env<'a>, scope: Scope<'a>) -> bool {
    let test = match node {
        Node::Affix(a) => return ops::affix_test(a, env, scope).unwrap_or(false),
        Node::SemVer(n) => return ops::sem_ver_test(n, env, scope).unwrap_or(false),
        // `None`: not an operator that answers a boolean.
        Node::Op(op, args) => ops::test(*op, args, env, scope),
        _ => None,
    };
    match test {
        Some(b) => b,
        None => super::value::truthy(&eval(node, env, scope)),
    }
}

/// Evaluates `node`. Literals and context attributes, most of what operators read, are
/// answered without entering [`eval_compound`], whose frame (saved registers, a large stack
/// area for the operators inlined into it) cost more than such an operand itself.
#[inline]
pub(crate) fn eval<'a>(node: &'a Node, env: &Env<'a>, scope: Scope<'a>) -> Cow<'a, Value> {
    match node {
        Node::Lit(v) | Node::Variant { lit: v, .. } => Cow::Borrowed(v),
        Node::Var(var) => eval_var(var, env, scope),
        _ => eval_compound(node, env, scope),
    }
}

#[inline(never)]
fn eval_compound<'a>(node: &'a Node, env: &Env<'a>, scope: Scope<'a>) -> Cow<'a, Value> {
    match node {
        Node::Lit(v) | Node::Variant { lit: v, .. } => Cow::Borrowed(v),
        Node::Var(var) => eval_var(var, env, scope),
        Node::If(args) => match choose_if(args, env, scope) {
            Some(n) => eval(n, env, scope),
            None => Cow::Owned(Value::Null),
        },
        Node::Array(items) => Cow::Owned(Value::Array(
            items
                .iter()
                .map(|n| eval(n, env, scope).into_owned())
                .collect(),
        )),
        Node::Op(op, args) => ops::apply(*op, args, env, scope),
        Node::SemVer(node) => ops::sem_ver(node, env, scope),
        Node::Affix(a) => ops::affix(a, env, scope),
        Node::Fractional(f) => match f.pick(env, scope) {
            Some(n) => eval(n, env, scope),
            None => Cow::Owned(Value::Null),
        },
    }
}

/// `var`. The common form, a dotted path read from the context, is looked up here and its
/// value borrowed straight into the answer; the others (the whole data, `$flagd`, an item of
/// `map`/`filter`/..., a computed path) are found by [`find_var`].
#[inline(never)]
fn eval_var<'a>(var: &'a Var, env: &Env<'a>, scope: Scope<'a>) -> Cow<'a, Value> {
    let found = match (&var.path, scope) {
        (
            VarPath::Static {
                segments,
                special: None,
            },
            Scope::Root(ctx),
        ) => match attribute(ctx, segments) {
            Some(v) if !v.is_null() => return Cow::Borrowed(v),
            _ => None,
        },
        _ => find_var(var, env, scope),
    };
    match found {
        Some(v) if !v.is_null() => v,
        _ => match &var.default {
            Some(d) => eval(d, env, scope),
            None => Cow::Owned(Value::Null),
        },
    }
}

/// A dotted path read from the context.
#[inline(always)]
fn attribute<'a>(ctx: &'a Context, segments: &'a [Segment]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    let top = ctx.get_by_id(first.id, &first.key)?;
    if rest.is_empty() {
        return Some(top);
    }
    walk(top, rest.iter().map(|s| (&*s.key, s.index)))
}

/// `var` in the forms [`eval_var`] does not look up itself.
#[inline(never)]
fn find_var<'a>(var: &'a Var, env: &Env<'a>, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
    match &var.path {
        VarPath::Whole => Some(Cow::Borrowed(scope.whole())),
        VarPath::Static { segments, special } => match (special, scope) {
            (Some(s), Scope::Root(_)) => special_value(*s, env),
            (None, Scope::Root(ctx)) => attribute(ctx, segments).map(Cow::Borrowed),
            (_, Scope::Item(data)) => {
                walk(data, segments.iter().map(|s| (&*s.key, s.index))).map(Cow::Borrowed)
            }
        },
        VarPath::Dynamic(expr) => {
            let path = eval(expr, env, scope);
            lookup_dynamic(&path, env, scope)
        }
    }
}

fn special_value<'a>(s: Special, env: &Env<'a>) -> Option<Cow<'a, Value>> {
    match s {
        Special::FlagKey => Some(Cow::Borrowed(env.flag_key_value)),
        Special::Timestamp => Some(Cow::Owned(Value::Number(Number::from(env.now_unix)))),
        Special::Object => {
            let mut m = serde_json::Map::new();
            m.insert("flagKey".to_owned(), env.flag_key_value.clone());
            m.insert(
                "timestamp".to_owned(),
                Value::Number(Number::from(env.now_unix)),
            );
            Some(Cow::Owned(Value::Object(m)))
        }
        Special::Unknown => None,
    }
}

/// Follows path segments through objects and arrays.
pub(crate) fn walk<'a, 'k>(
    mut cur: &'a Value,
    segments: impl Iterator<Item = (&'k str, Option<usize>)>,
) -> Option<&'a Value> {
    for (key, index) in segments {
        cur = match cur {
            Value::Object(m) => m.get(key)?,
            Value::Array(items) => items.get(index?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `var` / `missing` with a path known only at run time.
pub(crate) fn lookup_dynamic<'a>(
    path: &Value,
    env: &Env<'a>,
    scope: Scope<'a>,
) -> Option<Cow<'a, Value>> {
    let text: Cow<'_, str> = match path {
        Value::Null => return Some(Cow::Borrowed(scope.whole())),
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Number(n) => Cow::Owned(n.to_string()),
        _ => return None,
    };
    if text.is_empty() {
        return Some(Cow::Borrowed(scope.whole()));
    }
    if scope.is_root() {
        if let Some(s) = super::compile::special_of(&text) {
            return special_value(s, env);
        }
    }
    let mut parts = text.split('.').map(|k| (k, k.parse::<usize>().ok()));
    let start = match scope {
        Scope::Root(ctx) => ctx.get(parts.next()?.0)?,
        Scope::Item(data) => data,
    };
    walk(start, parts).map(Cow::Borrowed)
}
