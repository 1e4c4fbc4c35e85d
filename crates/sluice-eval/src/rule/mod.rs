//! JsonLogic targeting rules, compiled once into a tree of [`Node`]s and
//! evaluated against a [`crate::Context`] without touching JSON text again.
//!
//! Why not a general JsonLogic library: evaluation is the hot path and must
//! run in tens of nanoseconds; a compiled tree lets the engine pre-resolve
//! variant names, split `var` paths once, pre-parse `sem_ver` targets and
//! fractional weights, and return borrowed values (no allocation) for the
//! common operators. flagd's custom operators also need the flag key and
//! evaluation time, which the compiled form carries explicitly.

mod compile;
mod eval;
mod fractional;
mod murmur3;
mod semver;
mod value;

use serde_json::Value;

pub(crate) use compile::{CompileOptions, Compiler};
pub(crate) use eval::{eval, eval_result, Env, Outcome, Scope};
pub use fractional::bucket_index;
pub(crate) use murmur3::{murmur3_32, murmur3_32_concat};
pub(crate) use value::js_string;

/// Deepest nesting of arrays and objects a rule may have, after `$ref`s are inlined.
pub const MAX_RULE_DEPTH: usize = 64;
/// Most nodes one flag's rule may compile to, after `$ref`s are inlined.
pub const MAX_RULE_NODES: usize = 10_000;

/// A compiled JsonLogic expression.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Value),
    /// A literal in result position that names a variant of the flag.
    /// INVARIANT: `idx` indexes the owning flag's variant table.
    Variant {
        idx: u32,
        lit: Value,
    },
    /// An array whose elements are expressions.
    Array(Box<[Node]>),
    Var(Box<Var>),
    If(Box<[Node]>),
    Op(Op, Box<[Node]>),
    SemVer(Box<semver::SemVerNode>),
    Fractional(Box<fractional::FractionalNode>),
    /// `starts_with` / `ends_with` against a literal string, the form flagd rules use:
    /// the generic operator evaluated the literal and matched both arguments' types on
    /// every call.
    Affix(Box<Affix>),
}

#[derive(Debug)]
pub(crate) struct Affix {
    pub(crate) subject: Node,
    pub(crate) affix: Box<str>,
    /// `ends_with` (else `starts_with`).
    pub(crate) at_end: bool,
}

#[derive(Debug)]
pub(crate) struct Var {
    pub(crate) path: VarPath,
    pub(crate) default: Option<Node>,
}

#[derive(Debug)]
pub(crate) enum VarPath {
    /// `""` or `null`: the whole data of the current scope.
    Whole,
    /// A dotted path split at compile time.
    Static {
        segments: Box<[Segment]>,
        special: Option<Special>,
    },
    /// A path computed by an expression.
    Dynamic(Node),
}

#[derive(Debug)]
pub(crate) struct Segment {
    /// `crate::context::KeyId::of(key)`, for top-level context lookups.
    pub(crate) id: crate::context::KeyId,
    pub(crate) key: Box<str>,
    pub(crate) index: Option<usize>,
}

/// Properties flagd injects under `$flagd` (only in the root scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    FlagKey,
    Timestamp,
    Object,
    Unknown,
}

/// Operators evaluated generically over their argument list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Missing,
    MissingSome,
    LooseEq,
    StrictEq,
    LooseNe,
    StrictNe,
    Not,
    Truthy,
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Max,
    Min,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    In,
    Cat,
    Substr,
    Merge,
    Map,
    Filter,
    Reduce,
    All,
    None,
    Some,
    StartsWith,
    EndsWith,
}

impl Op {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "missing" => Self::Missing,
            "missing_some" => Self::MissingSome,
            "==" => Self::LooseEq,
            "===" => Self::StrictEq,
            "!=" => Self::LooseNe,
            "!==" => Self::StrictNe,
            "!" => Self::Not,
            "!!" => Self::Truthy,
            "or" => Self::Or,
            "and" => Self::And,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "max" => Self::Max,
            "min" => Self::Min,
            "+" => Self::Add,
            "-" => Self::Sub,
            "*" => Self::Mul,
            "/" => Self::Div,
            "%" => Self::Rem,
            "in" => Self::In,
            "cat" => Self::Cat,
            "substr" => Self::Substr,
            "merge" => Self::Merge,
            "map" => Self::Map,
            "filter" => Self::Filter,
            "reduce" => Self::Reduce,
            "all" => Self::All,
            "none" => Self::None,
            "some" => Self::Some,
            "starts_with" => Self::StartsWith,
            "ends_with" => Self::EndsWith,
            _ => return None,
        })
    }
}
