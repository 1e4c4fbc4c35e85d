//! The parts of the rule compiler with the most structure: `$ref` inlining, `var` paths and
//! `fractional` buckets (a child of `compile`, so it shares the compiler's private state).

use serde_json::{Map, Value};

use super::{special_of, Compiler, Pos};
use crate::error::{DefinitionError, JsonPath};
use crate::rule::fractional::{weight_of, Bucket, FractionalNode, Weight, MAX_TOTAL_WEIGHT};
use crate::rule::{Node, Segment, Special, Var, VarPath};

impl<'d> Compiler<'d> {
    pub(super) fn inline_ref(
        &mut self,
        m: &'d Map<String, Value>,
        path: &JsonPath,
        depth: usize,
        pos: Pos,
    ) -> Result<Node, DefinitionError> {
        if m.len() != 1 {
            return Err(DefinitionError::new(
                path,
                "\"$ref\" must be the only key of its object",
            ));
        }
        let rpath = path.key("$ref");
        let Some(Value::String(name)) = m.get("$ref") else {
            return Err(DefinitionError::new(
                &rpath,
                "must be the name of an evaluator",
            ));
        };
        if self.refs.contains(&name.as_str()) {
            return Err(DefinitionError::new(
                &rpath,
                format!("cyclic \"$ref\" to \"{name}\""),
            ));
        }
        let Some(body) = self.doc.evaluators.get(name) else {
            return Err(DefinitionError::new(
                &rpath,
                format!("unknown evaluator \"{name}\""),
            ));
        };
        self.refs.push(name);
        let epath = JsonPath::root().key("$evaluators").key(name);
        let node = self.compile(body, &epath, depth + 1, pos);
        self.refs.pop();
        node
    }

    pub(super) fn compile_var(
        &mut self,
        args: &'d [Value],
        arg_path: &dyn Fn(usize) -> JsonPath,
        depth: usize,
    ) -> Result<Node, DefinitionError> {
        let static_path = |text: &str| {
            if text.is_empty() {
                return VarPath::Whole;
            }
            let segments = text
                .split('.')
                .map(|k| Segment {
                    id: crate::context::KeyId::of(k),
                    key: k.into(),
                    index: k.parse().ok(),
                })
                .collect();
            VarPath::Static {
                segments,
                special: special_of(text),
            }
        };
        let path = match args.first() {
            None | Some(Value::Null) => VarPath::Whole,
            Some(Value::String(s)) => static_path(s),
            Some(Value::Number(n)) => static_path(&n.to_string()),
            Some(other) => {
                // A computed path may name `$flagd.timestamp` at evaluation.
                self.reads_time = true;
                VarPath::Dynamic(self.compile(other, &arg_path(0), depth, Pos::Expr)?)
            }
        };
        if let VarPath::Static {
            special: Some(Special::Timestamp | Special::Object),
            ..
        } = &path
        {
            self.reads_time = true;
        }
        let default = match args.get(1) {
            Some(d) => Some(self.compile(d, &arg_path(1), depth, Pos::Expr)?),
            None => None,
        };
        Ok(Node::Var(Box::new(Var { path, default })))
    }

    pub(super) fn compile_fractional(
        &mut self,
        args: &'d [Value],
        arg_path: &dyn Fn(usize) -> JsonPath,
        depth: usize,
        pos: Pos,
    ) -> Result<Node, DefinitionError> {
        let (bucket_by, first_bucket) = match args.first() {
            Some(Value::Array(_)) => (None, 0),
            Some(expr) => (Some(self.compile(expr, &arg_path(0), depth, Pos::Expr)?), 1),
            None => (None, 0),
        };
        let mut buckets = Vec::new();
        for (i, raw) in args.iter().enumerate().skip(first_bucket) {
            let bpath = arg_path(i);
            let Value::Array(parts) = raw else {
                return Err(DefinitionError::new(
                    &bpath,
                    "a fractional bucket must be [variant, weight]",
                ));
            };
            let Some(variant) = parts.first() else {
                return Err(DefinitionError::new(
                    &bpath,
                    "a fractional bucket needs a variant",
                ));
            };
            let variant = self.compile(variant, &bpath.index(0), depth + 1, pos)?;
            let weight = match parts.get(1) {
                None => Weight::Fixed(1),
                Some(w @ (Value::Object(_) | Value::Array(_))) => {
                    Weight::Dynamic(self.compile(w, &bpath.index(1), depth + 1, Pos::Expr)?)
                }
                Some(w) => Weight::Fixed(weight_of(w).ok_or_else(|| {
                    DefinitionError::new(
                        &bpath.index(1),
                        format!(
                            "a fractional weight must be a whole number up to {MAX_TOTAL_WEIGHT}"
                        ),
                    )
                })?),
            };
            buckets.push(Bucket { variant, weight });
        }
        if buckets.is_empty() {
            return Err(DefinitionError::new(
                &arg_path(0),
                "fractional needs at least one bucket",
            ));
        }
        let fixed_total = buckets
            .iter()
            .map(|b| match b.weight {
                Weight::Fixed(w) => Some(w),
                Weight::Dynamic(_) => None,
            })
            .sum::<Option<u64>>();
        if fixed_total.is_some_and(|t| t > MAX_TOTAL_WEIGHT) {
            return Err(DefinitionError::new(
                &arg_path(0),
                format!("fractional weights add up to more than {MAX_TOTAL_WEIGHT}"),
            ));
        }
        Ok(Node::Fractional(Box::new(FractionalNode {
            bucket_by,
            buckets: buckets.into(),
            fixed_total,
            version: self.hash_version,
        })))
    }
}
