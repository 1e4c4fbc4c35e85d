//! The Sluice flag engine: flagd flag definitions -> compiled, immutable
//! [`Snapshot`]s -> evaluations. Pure: no I/O, no clock (`now` is a
//! parameter), no store.
//!
//! ```
//! use sluice_eval::{Context, FlagSetDef, Reason, Snapshot};
//!
//! let def = FlagSetDef::from_json(r#"{"flags": {"new-search": {
//!     "state": "ENABLED", "variants": {"on": true, "off": false},
//!     "defaultVariant": "off",
//!     "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]}
//! }}}"#)?;
//! let snapshot = Snapshot::compile(&def, 1)?;
//! let ctx = Context::from_value(serde_json::json!({"email": "ann@example.com"}))?;
//! let e = snapshot.evaluate("new-search", &ctx, 1_700_000_000);
//! assert_eq!(e.value, Some(&serde_json::Value::Bool(true)));
//! assert_eq!(e.reason, Reason::TargetingMatch);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod context;
mod def;
mod def_parse;
mod error;
mod evaluation;
pub mod layers;
pub mod ofrep;
mod rule;
mod snapshot;
pub mod stored;

pub use context::{Context, RequestError};
pub use def::{DefaultVariant, FlagDef, FlagSetDef, FlagState};
pub use error::{DefinitionError, ErrorCode, EvalError};
pub use evaluation::{Evaluation, FlagType, Reason};
pub use rule::{MAX_RULE_DEPTH, MAX_RULE_NODES};
pub use snapshot::{HashVersion, Located, Snapshot};

/// Evaluates a free-standing JsonLogic expression (with flagd's operators and
/// the `$evaluators` of `defs`) against a context: a playground for rules,
/// and the way tests reach single operators. `flag_key` feeds `$flagd.flagKey`
/// and `fractional`.
pub fn evaluate_expression(
    defs: &FlagSetDef,
    rule: &serde_json::Value,
    ctx: &Context,
    flag_key: &str,
    now_unix: i64,
) -> Result<serde_json::Value, DefinitionError> {
    let node = rule::Compiler::compile_expression(defs, rule)?;
    let key_value = serde_json::Value::String(flag_key.to_owned());
    let env = rule::Env {
        ctx,
        flag_key,
        flag_key_value: &key_value,
        now_unix,
    };
    Ok(rule::eval(&node, &env, rule::Scope::root(ctx)).into_owned())
}

/// The bucketing primitives of `fractional` (hash version 2), exposed for
/// tests and tools that must predict a user's bucket.
pub mod bucketing {
    /// MurmurHash3 x86 32-bit with seed 0.
    pub fn murmur3_32(bytes: &[u8]) -> u32 {
        crate::rule::murmur3_32(bytes)
    }
    pub use crate::rule::bucket_index;
}
