//! JSON -> [`Node`]: inlines `$ref`s, checks operators, bounds depth and
//! size, resolves literal variant names in result position, and pre-parses
//! what can be pre-parsed. Every error carries the JSON path of its cause.

mod operators;

use serde_json::{Map, Value};

use super::semver::{OwnedVersion, SemOp, SemVerNode};
use super::{Affix, Node, Op, Special, MAX_RULE_DEPTH, MAX_RULE_NODES};
use crate::def::{FlagDef, FlagSetDef};
use crate::error::{DefinitionError, JsonPath};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompileOptions {
    /// Reject literal variant names in result position that the flag lacks.
    pub(crate) check_variants: bool,
}

impl CompileOptions {
    pub(crate) const STRICT: Self = Self {
        check_variants: true,
    };
    pub(crate) const LENIENT: Self = Self {
        check_variants: false,
    };
}

/// Whether a value is the rule's answer (a variant name) or an operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    Result,
    Expr,
}

pub(crate) struct Compiler<'d> {
    doc: &'d FlagSetDef,
    flag: Option<(&'d str, &'d FlagDef)>,
    opts: CompileOptions,
    /// `$ref`s being expanded, to detect cycles.
    refs: Vec<&'d str>,
    nodes: usize,
    /// The rule may read `$flagd.timestamp`: its answer can change with time alone.
    pub(crate) reads_time: bool,
    /// How this flag's `fractional` buckets users.
    pub(crate) hash_version: crate::snapshot::HashVersion,
}

/// Which `$flagd` property a static `var` path names, if any.
pub(crate) fn special_of(path: &str) -> Option<Special> {
    match path {
        "$flagd" => Some(Special::Object),
        "$flagd.flagKey" => Some(Special::FlagKey),
        "$flagd.timestamp" => Some(Special::Timestamp),
        p if p.starts_with("$flagd.") => Some(Special::Unknown),
        _ => None,
    }
}

impl<'d> Compiler<'d> {
    pub(crate) fn new(
        doc: &'d FlagSetDef,
        key: &'d str,
        flag: &'d FlagDef,
        opts: CompileOptions,
    ) -> Self {
        Self {
            doc,
            flag: Some((key, flag)),
            opts,
            refs: Vec::new(),
            nodes: 0,
            reads_time: false,
            hash_version: crate::snapshot::HashVersion::default(),
        }
    }

    /// Compiles the flag's targeting; `None` when it has none (or `{}`).
    pub(crate) fn compile_flag_rule(&mut self) -> Result<Option<Node>, DefinitionError> {
        let Some((key, flag)) = self.flag else {
            return Ok(None);
        };
        let Some(t) = &flag.targeting else {
            return Ok(None);
        };
        if t.as_object().is_some_and(Map::is_empty) {
            return Ok(None);
        }
        let path = JsonPath::root().key("flags").key(key).key("targeting");
        self.compile(t, &path, 1, Pos::Result).map(Some)
    }

    /// Checks a shared evaluator on its own (so an unused one is checked too).
    pub(crate) fn check_evaluator(
        doc: &'d FlagSetDef,
        name: &'d str,
    ) -> Result<(), DefinitionError> {
        let mut c = Self {
            doc,
            flag: None,
            opts: CompileOptions::STRICT,
            refs: vec![name],
            nodes: 0,
            reads_time: false,
            hash_version: crate::snapshot::HashVersion::default(),
        };
        let Some(body) = doc.evaluators.get(name) else {
            return Ok(());
        };
        let path = JsonPath::root().key("$evaluators").key(name);
        c.compile(body, &path, 1, Pos::Expr).map(|_| ())
    }

    /// Compiles a free-standing expression (no flag, so no variant names).
    pub(crate) fn compile_expression(
        doc: &'d FlagSetDef,
        rule: &'d Value,
    ) -> Result<Node, DefinitionError> {
        let mut c = Self {
            doc,
            flag: None,
            opts: CompileOptions::STRICT,
            refs: Vec::new(),
            nodes: 0,
            reads_time: false,
            hash_version: crate::snapshot::HashVersion::default(),
        };
        c.compile(rule, &JsonPath::root(), 1, Pos::Expr)
    }

    fn variant_index(&self, name: &str) -> Option<u32> {
        let (_, flag) = self.flag?;
        let i = flag.variants.keys().position(|k| k == name)?;
        u32::try_from(i).ok()
    }

    fn compile(
        &mut self,
        v: &'d Value,
        path: &JsonPath,
        depth: usize,
        pos: Pos,
    ) -> Result<Node, DefinitionError> {
        if depth > MAX_RULE_DEPTH {
            return Err(DefinitionError::new(
                path,
                format!("rule is nested deeper than {MAX_RULE_DEPTH} levels"),
            ));
        }
        self.nodes += 1;
        if self.nodes > MAX_RULE_NODES {
            return Err(DefinitionError::new(
                path,
                format!("rule has more than {MAX_RULE_NODES} nodes"),
            ));
        }
        match v {
            Value::Object(m) => self.compile_object(m, path, depth, pos),
            Value::Array(items) => {
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.compile(item, &path.index(i), depth + 1, Pos::Expr))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
                    return Ok(Node::Lit(v.clone()));
                }
                Ok(Node::Array(nodes.into()))
            }
            lit => self.literal(lit, path, pos),
        }
    }

    fn literal(&self, v: &Value, path: &JsonPath, pos: Pos) -> Result<Node, DefinitionError> {
        if pos == Pos::Result && self.flag.is_some() && !v.is_null() {
            let mut name = String::new();
            super::value::js_string(v, &mut name);
            if let Some(idx) = self.variant_index(&name) {
                return Ok(Node::Variant {
                    idx,
                    lit: v.clone(),
                });
            }
            if self.opts.check_variants && v.is_string() {
                return Err(DefinitionError::new(
                    path,
                    format!("unknown variant \"{name}\""),
                ));
            }
        }
        Ok(Node::Lit(v.clone()))
    }

    fn compile_object(
        &mut self,
        m: &'d Map<String, Value>,
        path: &JsonPath,
        depth: usize,
        pos: Pos,
    ) -> Result<Node, DefinitionError> {
        let mut entries = m.iter();
        let Some((op, raw)) = entries.next() else {
            return Ok(Node::Lit(Value::Object(Map::new())));
        };
        if m.contains_key("$ref") {
            return self.inline_ref(m, path, depth, pos);
        }
        if m.len() != 1 {
            let keys: Vec<&str> = m.keys().map(String::as_str).collect();
            return Err(DefinitionError::new(
                path,
                format!(
                    "a rule object needs exactly one operator, found {}",
                    keys.join(", ")
                ),
            ));
        }
        let opath = path.key(op);
        let (args, arg_depth): (&'d [Value], usize) = match raw {
            Value::Array(a) => (a, depth + 2),
            other => (std::slice::from_ref(other), depth + 1),
        };
        let arg_path = |i: usize| {
            if raw.is_array() {
                opath.index(i)
            } else {
                opath.clone()
            }
        };
        match op.as_str() {
            "var" => self.compile_var(args, &arg_path, arg_depth),
            "if" | "?:" => {
                let n = args.len();
                let mut nodes = Vec::with_capacity(n);
                for (i, a) in args.iter().enumerate() {
                    let branch = i % 2 == 1 || i + 1 == n;
                    let p = if branch { pos } else { Pos::Expr };
                    nodes.push(self.compile(a, &arg_path(i), arg_depth, p)?);
                }
                Ok(Node::If(nodes.into()))
            }
            "sem_ver" => {
                let nodes = self.compile_args(args, &arg_path, arg_depth)?;
                let op = match args.get(1) {
                    Some(Value::String(s)) => SemOp::parse(s),
                    _ => None,
                };
                let target = match args.get(2) {
                    Some(Value::String(s)) if args.len() == 3 => OwnedVersion::parse(s),
                    _ => None,
                };
                Ok(Node::SemVer(Box::new(SemVerNode {
                    args: nodes.into(),
                    op,
                    target,
                })))
            }
            "fractional" => self.compile_fractional(args, &arg_path, arg_depth, pos),
            "starts_with" | "ends_with" => {
                let at_end = op == "ends_with";
                let generic = if at_end { Op::EndsWith } else { Op::StartsWith };
                let nodes = self.compile_args(args, &arg_path, arg_depth)?;
                Ok(match <[Node; 2]>::try_from(nodes) {
                    Ok([subject, Node::Lit(Value::String(affix))]) => {
                        Node::Affix(Box::new(Affix {
                            subject,
                            affix: affix.into(),
                            at_end,
                        }))
                    }
                    Ok(pair) => Node::Op(generic, Box::new(pair)),
                    Err(nodes) => Node::Op(generic, nodes.into()),
                })
            }
            name => match Op::from_name(name) {
                Some(op) => Ok(Node::Op(
                    op,
                    self.compile_args(args, &arg_path, arg_depth)?.into(),
                )),
                None => Err(DefinitionError::new(
                    &opath,
                    format!("unknown operator \"{name}\""),
                )),
            },
        }
    }

    fn compile_args(
        &mut self,
        args: &'d [Value],
        arg_path: &dyn Fn(usize) -> JsonPath,
        depth: usize,
    ) -> Result<Vec<Node>, DefinitionError> {
        args.iter()
            .enumerate()
            .map(|(i, a)| self.compile(a, &arg_path(i), depth, Pos::Expr))
            .collect()
    }
}
