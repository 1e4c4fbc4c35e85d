//! The flagd document as submitted, writable back without loss (key order is kept; unknown
//! fields are carried along). Only the types: parsing and validation are in `def_parse`,
//! which depends on these and on the rule compiler; neither depends back on it.

use serde_json::{Map, Value};

use crate::error::{DefinitionError, JsonPath};

/// `ENABLED` or `DISABLED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagState {
    Enabled,
    Disabled,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }
}

/// `defaultVariant` as written: a name, an explicit `null`, or absent.
/// Kept apart so that a document is written back exactly as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultVariant {
    Absent,
    Null,
    Named(String),
}

impl DefaultVariant {
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Named(n) => Some(n),
            Self::Absent | Self::Null => None,
        }
    }
}

/// One flag of a flagd document.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagDef {
    pub state: FlagState,
    pub variants: Map<String, Value>,
    pub default_variant: DefaultVariant,
    /// JsonLogic, exactly as written (with `$ref`s not yet inlined).
    pub targeting: Option<Value>,
    pub metadata: Option<Map<String, Value>>,
    /// Fields this engine does not interpret (e.g. `description`), kept for write-back.
    pub extra: Map<String, Value>,
}

/// A parsed flagd document. Build with [`FlagSetDef::from_json`] (validated)
/// or [`FlagSetDef::from_value_lenient`] (shape only, as flagd loads files).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlagSetDef {
    pub(crate) schema: Option<Value>,
    pub(crate) flags: Vec<(String, FlagDef)>,
    pub(crate) evaluators: Map<String, Value>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) extra: Map<String, Value>,
}

impl FlagSetDef {
    /// Flag keys in document order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|(k, _)| k.as_str())
    }

    pub fn flag(&self, key: &str) -> Option<&FlagDef> {
        self.flags.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    /// Removes a flag, returning it.
    pub fn remove_flag(&mut self, key: &str) -> Option<FlagDef> {
        let i = self.flags.iter().position(|(k, _)| k == key)?;
        Some(self.flags.remove(i).1)
    }

    /// Flag-set metadata (`$.metadata`).
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// Shared rules (`$.$evaluators`).
    pub fn evaluators(&self) -> &Map<String, Value> {
        &self.evaluators
    }

    /// Combines another document into this one, as when several files are
    /// served together. A flag key, evaluator name or flag-set metadata key
    /// defined differently in both is an error and leaves `self` unchanged.
    pub fn merge(&mut self, other: FlagSetDef) -> Result<(), DefinitionError> {
        let root = JsonPath::root();
        for (key, _) in &other.flags {
            if self.flag(key).is_some() {
                let path = root.key("flags").key(key);
                return Err(DefinitionError::new(&path, "flag is defined twice"));
            }
        }
        for (name, rule) in &other.evaluators {
            if self.evaluators.get(name).is_some_and(|mine| mine != rule) {
                let path = root.key("$evaluators").key(name);
                return Err(DefinitionError::new(
                    &path,
                    "evaluator is defined differently twice",
                ));
            }
        }
        for (name, value) in &other.metadata {
            if self.metadata.get(name).is_some_and(|mine| mine != value) {
                let path = root.key("metadata").key(name);
                return Err(DefinitionError::new(
                    &path,
                    "flag-set metadata differs between documents",
                ));
            }
        }
        if self.schema.is_none() {
            self.schema = other.schema;
        }
        self.flags.extend(other.flags);
        self.evaluators.extend(other.evaluators);
        self.metadata.extend(other.metadata);
        for (k, v) in other.extra {
            self.extra.entry(k).or_insert(v);
        }
        Ok(())
    }

    /// The document as flagd reads it. Field order is canonical
    /// (`$schema`, `flags`, `$evaluators`, `metadata`, then unknown fields),
    /// so `to_value -> from_value -> to_value` is the identity.
    pub fn to_value(&self) -> Value {
        let mut root = Map::new();
        if let Some(schema) = &self.schema {
            root.insert("$schema".to_owned(), schema.clone());
        }
        let mut flags = Map::new();
        for (key, flag) in &self.flags {
            flags.insert(key.clone(), flag.to_value());
        }
        root.insert("flags".to_owned(), Value::Object(flags));
        if !self.evaluators.is_empty() {
            root.insert(
                "$evaluators".to_owned(),
                Value::Object(self.evaluators.clone()),
            );
        }
        if !self.metadata.is_empty() {
            root.insert("metadata".to_owned(), Value::Object(self.metadata.clone()));
        }
        for (k, v) in &self.extra {
            root.insert(k.clone(), v.clone());
        }
        Value::Object(root)
    }

    /// [`FlagSetDef::to_value`], pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        // Serialising a `Value` cannot fail: its map keys are strings.
        serde_json::to_string_pretty(&self.to_value()).unwrap_or_default()
    }
}

impl FlagDef {
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "state".to_owned(),
            Value::String(self.state.as_str().to_owned()),
        );
        m.insert("variants".to_owned(), Value::Object(self.variants.clone()));
        match &self.default_variant {
            DefaultVariant::Absent => {}
            DefaultVariant::Null => {
                m.insert("defaultVariant".to_owned(), Value::Null);
            }
            DefaultVariant::Named(n) => {
                m.insert("defaultVariant".to_owned(), Value::String(n.clone()));
            }
        }
        if let Some(t) = &self.targeting {
            m.insert("targeting".to_owned(), t.clone());
        }
        if let Some(md) = &self.metadata {
            m.insert("metadata".to_owned(), Value::Object(md.clone()));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}
