//! Evaluating one compiled flag: state, layers, then targeting, mapped to an [`Evaluation`].

use std::borrow::Cow;

use serde_json::Value;

use super::{CompiledFlag, Rule};
use crate::context::Context;
use crate::def::FlagState;
use crate::def_parse::same_kind;
use crate::error::ErrorCode;
use crate::evaluation::{Evaluation, Reason};
use crate::rule::{eval_result, js_string, Env, Outcome};

impl CompiledFlag {
    fn answer(&self, idx: u32, reason: Reason) -> Evaluation<'_> {
        match self.variants.get(idx as usize) {
            Some((name, value)) => Evaluation {
                key: &self.key,
                value: Some(value),
                variant: Some(name),
                reason,
                metadata: &self.metadata,
                error: None,
            },
            None => Evaluation::failed(
                &self.key,
                &self.metadata,
                ErrorCode::General,
                "bad variant index",
            ),
        }
    }

    fn no_value(&self, reason: Reason) -> Evaluation<'_> {
        Evaluation {
            key: &self.key,
            value: None,
            variant: None,
            reason,
            metadata: &self.metadata,
            error: None,
        }
    }

    fn fall_through(&self) -> Evaluation<'_> {
        match self.default_variant {
            Some(i) => self.answer(i, Reason::Default),
            None => self.no_value(Reason::Default),
        }
    }

    /// Turns `e` into `GENERAL` if its value has another type than the default variant's
    /// (see [`super::Snapshot::evaluate_all`]). Only for flags with `mixed_kinds`: without
    /// variants of mixed types the check cannot fail. In place and out of line, so that bulk
    /// evaluation moves each answer once, straight into its vector.
    #[cold]
    #[inline(never)]
    pub(super) fn as_default_type<'a>(&'a self, e: &mut Evaluation<'a>) {
        let default = self
            .default_variant
            .and_then(|i| self.variants.get(i as usize));
        if let (Some(v), Some((name, d))) = (e.value, default) {
            if !same_kind(v, d) {
                *e = Evaluation::failed(
                    &self.key,
                    &self.metadata,
                    ErrorCode::General,
                    Cow::Owned(format!(
                        "variant \"{}\" has another type than the default variant \"{name}\"",
                        e.variant.unwrap_or_default()
                    )),
                );
            }
        }
    }

    pub(super) fn evaluate<'a>(&'a self, ctx: &Context, now_unix: i64) -> Evaluation<'a> {
        if self.state == FlagState::Disabled {
            return self.no_value(Reason::Disabled);
        }
        // Layers come here, before targeting, once they exist.
        if let Some(layer) = self.layers.first() {
            match *layer {}
        }
        let node = match &self.rule {
            Rule::Static => {
                return match self.default_variant {
                    Some(i) => self.answer(i, Reason::Static),
                    None => self.no_value(Reason::Default),
                };
            }
            Rule::Broken(why) => {
                return Evaluation::failed(
                    &self.key,
                    &self.metadata,
                    ErrorCode::ParseError,
                    Cow::Borrowed(why.as_str()),
                );
            }
            Rule::Targeting(node) => node,
        };
        let env = Env {
            ctx,
            flag_key: &self.key,
            flag_key_value: &self.key_value,
            now_unix,
        };
        let (outcome, split) = eval_result(node, &env);
        let reason = if split {
            Reason::Split
        } else {
            Reason::TargetingMatch
        };
        let value = match outcome {
            Outcome::Variant(i) => return self.answer(i, reason),
            Outcome::Value(v) => v,
        };
        let name: Cow<'_, str> = match &*value {
            Value::Null => return self.fall_through(),
            Value::String(s) => Cow::Borrowed(s.as_str()),
            // JavaScript's `String(b)`, without building it.
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Number(_) => {
                let mut s = String::new();
                js_string(&value, &mut s);
                Cow::Owned(s)
            }
            Value::Array(_) | Value::Object(_) => {
                return Evaluation::failed(
                    &self.key,
                    &self.metadata,
                    ErrorCode::ParseError,
                    "targeting returned an object or array, not a variant name",
                );
            }
        };
        match self.variants.iter().position(|(n, _)| **n == *name) {
            Some(i) => self.answer(i as u32, reason),
            None => Evaluation::failed(
                &self.key,
                &self.metadata,
                ErrorCode::ParseError,
                // Joined, not `format!`: one allocation of the right size, no formatter.
                Cow::Owned(["targeting returned \"", &name, "\", which is not a variant"].concat()),
            ),
        }
    }
}
