//! Conditions: a CEL expression that narrows a standing permission or an entitlement's scope.
//!
//! A condition is compiled once, when the policy is parsed; a decision evaluates it only after
//! the names matched (so a condition can narrow a scope, never widen it). It reads:
//!
//! | variable | what | trusted? |
//! | --- | --- | --- |
//! | `subject` | the question's subject: its `properties`, then `id` and `type` | properties come from the caller |
//! | `resource` | the resource's `properties`, then `type` and `id` (`flag:production/x` → `flag`, `production/x`) | properties come from the caller |
//! | `action` | the action's `properties`, then `name` | properties come from the caller |
//! | `context` | the question's `context` object | from the caller |
//! | `principal` | the policy's word on the principal: its declared `attributes`, then `id`, `kind` (`user`/`service`) and `groups` | yes |
//! | `now` | the decision's time, a CEL timestamp | yes |
//!
//! An expression that is not valid CEL, names another variable, or is longer than
//! [`MAX_CONDITION_BYTES`] is refused at parse time. At decision time a condition that does not
//! yield `true` does not allow; one that fails (a missing key, a type mismatch, not a bool)
//! denies, and the decision says why.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

/// The variables a condition may read.
pub const VARIABLES: [&str; 6] = [
    "subject",
    "resource",
    "action",
    "context",
    "principal",
    "now",
];

/// Longest condition accepted, in bytes: conditions are bounded like every other rule.
pub const MAX_CONDITION_BYTES: usize = 2048;

/// How a refused condition's message starts, wherever it is reported.
pub const REFUSED: &str = "invalid condition";

/// Deepest nesting of brackets accepted (the parser recurses on each).
const MAX_NESTING: usize = 32;

/// A compiled condition. Two conditions are equal when their sources are.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<Program>,
    uses: Uses,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Uses {
    subject: bool,
    resource: bool,
    action: bool,
    context: bool,
    principal: bool,
    now: bool,
}

/// Why a condition was refused at parse time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(pub String);

/// What a decision knows, as a condition reads it. Properties are JSON objects (anything else
/// counts as none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// Compare the subject id exactly (AuthZEN): it must be a principal's name as declared, or
    /// one of the policy's `subject_ids`; never case-folded, so two distinct external ids can
    /// never reach one principal.
    pub exact_subject: bool,
    pub subject_type: Option<&'a str>,
    pub subject_properties: Option<&'a serde_json::Value>,
    pub resource_properties: Option<&'a serde_json::Value>,
    pub action_properties: Option<&'a serde_json::Value>,
    pub context: Option<&'a serde_json::Value>,
}

/// The principal as the policy declares it.
#[derive(Debug, Clone, Copy)]
pub struct PrincipalFacts<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub groups: &'a [String],
    pub attributes: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// One question's names, normalised, as a condition reads them.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub subject: &'a str,
    pub action: &'a str,
    pub resource: &'a str,
    pub now: DateTime<Utc>,
}

fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

impl Condition {
    /// Compiles `source`, refusing what could never be evaluated as written.
    pub fn compile(source: &str) -> Result<Condition, ConditionError> {
        if source.trim().is_empty() {
            return Err(ConditionError("the condition is empty".into()));
        }
        if source.len() > MAX_CONDITION_BYTES {
            return Err(ConditionError(format!(
                "the condition is {} bytes long; at most {MAX_CONDITION_BYTES}",
                source.len()
            )));
        }
        check_nesting(source)?;
        let program = env().compile(source).map_err(|e| {
            // The parser's message starts with "ERROR: <input>:" and carries a caret line.
            ConditionError(format!(
                "not a valid CEL expression: {}",
                e.to_string().replace("ERROR: <input>:", "at ")
            ))
        })?;
        let mut idents = BTreeSet::new();
        let mut bound = BTreeSet::new();
        walk(program.expression(), &mut idents, &mut bound);
        let unknown: Vec<&str> = idents
            .iter()
            .map(String::as_str)
            .filter(|v| !VARIABLES.contains(v) && !bound.contains(*v))
            .collect();
        if let Some(first) = unknown.first() {
            return Err(ConditionError(format!(
                "unknown variable `{first}`; a condition reads {}",
                VARIABLES.join(", ")
            )));
        }
        let has = |v: &str| idents.contains(v) && !bound.contains(v);
        let uses = Uses {
            subject: has("subject"),
            resource: has("resource"),
            action: has("action"),
            context: has("context"),
            principal: has("principal"),
            now: has("now"),
        };
        Ok(Condition {
            source: source.to_owned(),
            program: Arc::new(program),
            uses,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Does the condition hold? `Err` says why it could not be decided (the decision denies).
    pub fn evaluate(
        &self,
        names: &Names<'_>,
        facts: &Facts<'_>,
        principal: &PrincipalFacts<'_>,
    ) -> Result<bool, String> {
        // Values borrow the question's JSON and the policy's attributes: nothing is copied.
        let mut ctx = Context::with_env(env().clone());
        if self.uses.subject {
            let mut m = object(facts.subject_properties);
            m.insert("id".into(), Box::new(CelString::from(names.subject)));
            if let Some(t) = facts.subject_type {
                m.insert("type".into(), Box::new(CelString::from(t)));
            }
            ctx.add_variable_as_val("subject", Box::new(CelMap::from(m)));
        }
        if self.uses.resource {
            let mut m = object(facts.resource_properties);
            let (kind, id) = names
                .resource
                .split_once(':')
                .unwrap_or(("", names.resource));
            m.insert("type".into(), Box::new(CelString::from(kind)));
            m.insert("id".into(), Box::new(CelString::from(id)));
            ctx.add_variable_as_val("resource", Box::new(CelMap::from(m)));
        }
        if self.uses.action {
            let mut m = object(facts.action_properties);
            m.insert("name".into(), Box::new(CelString::from(names.action)));
            ctx.add_variable_as_val("action", Box::new(CelMap::from(m)));
        }
        if self.uses.context {
            ctx.add_variable_as_val("context", Box::new(CelMap::from(object(facts.context))));
        }
        if self.uses.principal {
            let mut m: Props<'_> = principal
                .attributes
                .map(|a| a.iter().map(|(k, v)| (k.as_str().into(), val(v))).collect())
                .unwrap_or_default();
            m.insert("id".into(), Box::new(CelString::from(principal.id)));
            m.insert("kind".into(), Box::new(CelString::from(principal.kind)));
            let groups: Vec<Box<dyn Val + '_>> = principal
                .groups
                .iter()
                .map(|g| Box::new(CelString::from(g.as_str())) as Box<dyn Val>)
                .collect();
            m.insert("groups".into(), Box::new(CelList::from(groups)));
            ctx.add_variable_as_val("principal", Box::new(CelMap::from(m)));
        }
        if self.uses.now {
            ctx.add_variable_as_val(
                "now",
                Box::new(CelTimestamp::from(names.now.fixed_offset())),
            );
        }
        match self.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "the condition yields {:?}, not a bool",
                other.type_of()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

type Props<'a> = HashMap<CelMapKey<'a>, Box<dyn Val + 'a>>;

/// A JSON value as CEL reads it, borrowed: integers are `int` (or `uint` above `i64`), other
/// numbers `double`, so `subject.level + 1` works on a JSON `3`.
fn val(v: &serde_json::Value) -> Box<dyn Val + '_> {
    use serde_json::Value as J;
    match v {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(a) => Box::new(CelList::from(a.iter().map(val).collect::<Vec<_>>())),
        J::Object(o) => Box::new(CelMap::from(
            o.iter()
                .map(|(k, v)| (k.as_str().into(), val(v)))
                .collect::<Props<'_>>(),
        )),
    }
}

/// A properties object as a CEL map (empty when absent or not an object).
fn object(v: Option<&serde_json::Value>) -> Props<'_> {
    match v.and_then(serde_json::Value::as_object) {
        Some(o) => {
            let mut m = HashMap::with_capacity(o.len() + 2);
            m.extend(o.iter().map(|(k, v)| (k.as_str().into(), val(v))));
            m
        }
        None => HashMap::with_capacity(2),
    }
}

fn check_nesting(source: &str) -> Result<(), ConditionError> {
    let mut depth = 0usize;
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ConditionError(format!(
                        "the condition nests brackets more than {MAX_NESTING} deep"
                    )));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Collects the identifiers an expression reads and the names its macros bind.
fn walk(e: &IdedExpr, idents: &mut BTreeSet<String>, bound: &mut BTreeSet<String>) {
    match &e.expr {
        Expr::Ident(name) if !name.starts_with('@') => {
            idents.insert(name.clone());
        }
        Expr::Call(call) => {
            if let Some(t) = &call.target {
                walk(t, idents, bound);
            }
            for a in &call.args {
                walk(a, idents, bound);
            }
        }
        Expr::Comprehension(c) => {
            bound.insert(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.insert(c.accu_var.clone());
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                walk(x, idents, bound);
            }
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, idents, bound);
            }
        }
        Expr::Map(m) => walk_entries(m.entries.iter().map(|e| &e.expr), idents, bound),
        Expr::Struct(s) => walk_entries(s.entries.iter().map(|e| &e.expr), idents, bound),
        Expr::Select(s) => walk(&s.operand, idents, bound),
        _ => {}
    }
}

fn walk_entries<'a>(
    entries: impl Iterator<Item = &'a EntryExpr>,
    idents: &mut BTreeSet<String>,
    bound: &mut BTreeSet<String>,
) {
    for e in entries {
        match e {
            EntryExpr::StructField(f) => walk(&f.value, idents, bound),
            EntryExpr::MapEntry(m) => {
                walk(&m.key, idents, bound);
                walk(&m.value, idents, bound);
            }
        }
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Condition {}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        Condition::compile(&source).map_err(|e| serde::de::Error::custom(format!("{REFUSED}: {e}")))
    }
}

#[cfg(test)]
mod tests;
