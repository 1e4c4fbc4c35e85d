//! Reading a flagd document: shape checks here, targeting rules by the rule compiler
//! (`FlagSetDef::validate`). Depends on the types in `def` and on `rule`; neither depends on it.

use serde_json::{Map, Value};

use crate::def::{DefaultVariant, FlagDef, FlagSetDef, FlagState};
use crate::error::{DefinitionError, JsonPath};
use crate::rule::{CompileOptions, Compiler};

impl FlagSetDef {
    /// Parses and fully validates a document (shape, variants, targeting, `$ref`s).
    pub fn from_json(json: &str) -> Result<Self, DefinitionError> {
        let value: Value = serde_json::from_str(json).map_err(|e| DefinitionError {
            path: "$".to_owned(),
            reason: format!("invalid JSON: {e}"),
        })?;
        Self::from_value(value)
    }

    /// Like [`FlagSetDef::from_json`], from an already parsed value.
    pub fn from_value(value: Value) -> Result<Self, DefinitionError> {
        let def = Self::from_value_lenient(value)?;
        def.validate()?;
        Ok(def)
    }

    /// Checks the document's shape only; targeting rules are checked when a
    /// snapshot is compiled. flagd loads files this way: a broken rule makes
    /// only its own flag fail (with `PARSE_ERROR`).
    pub fn from_value_lenient(value: Value) -> Result<Self, DefinitionError> {
        parse_document(value)
    }

    /// Validates every targeting rule as [`crate::Snapshot::compile`] would.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        self.check_evaluators()?;
        for (key, flag) in &self.flags {
            self.check_flag(key, flag)?;
        }
        Ok(())
    }

    /// The set-level parts every flag may use (`$evaluators`), strictly.
    pub(crate) fn check_evaluators(&self) -> Result<(), DefinitionError> {
        for name in self.evaluators.keys() {
            Compiler::check_evaluator(self, name)?;
        }
        Ok(())
    }

    /// One flag of this set, strictly: its variants agree in type and its targeting compiles.
    pub(crate) fn check_flag(&self, key: &str, flag: &FlagDef) -> Result<(), DefinitionError> {
        check_variant_kinds(
            &flag.variants,
            &JsonPath::root().key("flags").key(key).key("variants"),
        )?;
        Compiler::new(self, key, flag, CompileOptions::STRICT).compile_flag_rule()?;
        Ok(())
    }
}

pub(crate) fn parse_document(value: Value) -> Result<FlagSetDef, DefinitionError> {
    let root = JsonPath::root();
    let Value::Object(mut doc) = value else {
        return Err(DefinitionError::new(
            &root,
            "a flag document must be a JSON object",
        ));
    };
    let schema = doc.shift_remove("$schema");
    let flags_path = root.key("flags");
    let flags = match doc.shift_remove("flags") {
        Some(Value::Object(flags)) => flags,
        Some(_) => return Err(DefinitionError::new(&flags_path, "must be an object")),
        None => return Err(DefinitionError::new(&flags_path, "is required")),
    };
    let evaluators = match doc.shift_remove("$evaluators") {
        None => Map::new(),
        Some(Value::Object(e)) => e,
        Some(_) => {
            return Err(DefinitionError::new(
                &root.key("$evaluators"),
                "must be an object",
            ));
        }
    };
    let metadata = match doc.shift_remove("metadata") {
        None => Map::new(),
        Some(v) => parse_metadata(v, &root.key("metadata"))?,
    };
    let mut parsed = Vec::with_capacity(flags.len());
    for (key, flag) in flags {
        let path = flags_path.key(&key);
        if key.is_empty() {
            return Err(DefinitionError::new(&path, "a flag key must not be empty"));
        }
        parsed.push((key, parse_flag(flag, &path)?));
    }
    Ok(FlagSetDef {
        schema,
        flags: parsed,
        evaluators,
        metadata,
        extra: unless_empty(doc),
    })
}

fn parse_flag(value: Value, path: &JsonPath) -> Result<FlagDef, DefinitionError> {
    let Value::Object(mut obj) = value else {
        return Err(DefinitionError::new(path, "a flag must be an object"));
    };
    let state_path = path.key("state");
    let state = match obj.shift_remove("state") {
        Some(Value::String(s)) if s == "ENABLED" => FlagState::Enabled,
        Some(Value::String(s)) if s == "DISABLED" => FlagState::Disabled,
        Some(other) => {
            return Err(DefinitionError::new(
                &state_path,
                format!("must be \"ENABLED\" or \"DISABLED\", found {other}"),
            ));
        }
        None => return Err(DefinitionError::new(&state_path, "is required")),
    };
    let variants_path = path.key("variants");
    let variants = match obj.shift_remove("variants") {
        Some(Value::Object(v)) => v,
        Some(_) => return Err(DefinitionError::new(&variants_path, "must be an object")),
        None => return Err(DefinitionError::new(&variants_path, "is required")),
    };
    check_variants(&variants, &variants_path)?;
    let dv_path = path.key("defaultVariant");
    let default_variant = match obj.shift_remove("defaultVariant") {
        None => DefaultVariant::Absent,
        Some(Value::Null) => DefaultVariant::Null,
        Some(Value::String(name)) => {
            if !variants.contains_key(&name) {
                return Err(DefinitionError::new(
                    &dv_path,
                    format!("unknown variant \"{name}\""),
                ));
            }
            DefaultVariant::Named(name)
        }
        Some(_) => {
            return Err(DefinitionError::new(
                &dv_path,
                "must be a variant name or null",
            ))
        }
    };
    let targeting = match obj.shift_remove("targeting") {
        None => None,
        Some(t @ Value::Object(_)) => Some(t),
        Some(_) => {
            return Err(DefinitionError::new(
                &path.key("targeting"),
                "must be an object",
            ));
        }
    };
    let metadata = match obj.shift_remove("metadata") {
        None => None,
        Some(v) => Some(parse_metadata(v, &path.key("metadata"))?),
    };
    Ok(FlagDef {
        state,
        variants,
        default_variant,
        targeting,
        metadata,
        extra: unless_empty(obj),
    })
}

/// The fields left over once the known ones are taken out: usually none, and then not the
/// emptied map, which would keep the allocation of the whole object (most of a parsed flag's
/// size, for every flag of a large document).
fn unless_empty(rest: Map<String, Value>) -> Map<String, Value> {
    if rest.is_empty() {
        Map::new()
    } else {
        rest
    }
}

/// The kind a variant value has; all variants of a flag share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    String,
    Number,
    Object,
    Array,
}

impl Kind {
    fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Null => None,
            Value::Bool(_) => Some(Self::Bool),
            Value::String(_) => Some(Self::String),
            Value::Number(_) => Some(Self::Number),
            Value::Object(_) => Some(Self::Object),
            Value::Array(_) => Some(Self::Array),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bool => "boolean",
            Self::String => "string",
            Self::Number => "number",
            Self::Object => "object",
            Self::Array => "array",
        }
    }
}

fn check_variants(variants: &Map<String, Value>, path: &JsonPath) -> Result<(), DefinitionError> {
    if variants.is_empty() {
        return Err(DefinitionError::new(
            path,
            "a flag needs at least one variant",
        ));
    }
    for (name, value) in variants {
        if Kind::of(value).is_none() {
            return Err(DefinitionError::new(
                &path.key(name),
                "a variant value must not be null",
            ));
        }
    }
    Ok(())
}

/// All variants of a flag share one type. Strict validation only: flagd loads a flag with
/// mixed types (its schema check just logs), so lenient loading keeps it, and evaluation
/// deals with it as flagd does (see `Snapshot::evaluate_all`).
pub(crate) fn check_variant_kinds(
    variants: &Map<String, Value>,
    path: &JsonPath,
) -> Result<(), DefinitionError> {
    let mut first: Option<(Kind, &str)> = None;
    for (name, value) in variants {
        let Some(kind) = Kind::of(value) else {
            continue;
        };
        match first {
            None => first = Some((kind, name)),
            Some((k, first_name)) if k != kind => {
                return Err(DefinitionError::new(
                    &path.key(name),
                    format!(
                        "mixed variant types: {} here, {} in variant \"{first_name}\"",
                        kind.name(),
                        k.name()
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Whether two variant values have the same type, as flagd's bulk evaluation compares them
/// (every JSON number is one type there).
pub(crate) fn same_kind(a: &Value, b: &Value) -> bool {
    Kind::of(a) == Kind::of(b)
}

fn parse_metadata(value: Value, path: &JsonPath) -> Result<Map<String, Value>, DefinitionError> {
    let Value::Object(m) = value else {
        return Err(DefinitionError::new(path, "must be an object"));
    };
    for (k, v) in &m {
        if !matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_)) {
            return Err(DefinitionError::new(
                &path.key(k),
                "metadata values must be strings, numbers or booleans",
            ));
        }
    }
    Ok(m)
}
