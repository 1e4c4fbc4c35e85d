//! The flagd document as submitted, writable back without loss (key order is kept; unknown
//! fields are carried along). Only the types: parsing and validation are in `def_parse`,
//! which depends on these and on the rule compiler; neither depends back on it.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
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

    /// The flags, in document order.
    pub fn flags(&self) -> &[(String, FlagDef)] {
        &self.flags
    }

    /// The document as flagd reads it. Field order is canonical
    /// (`$schema`, `flags`, `$evaluators`, `metadata`, then unknown fields),
    /// so `to_value -> from_value -> to_value` is the identity. The same as serialising the
    /// definition, which writes it without building this value.
    pub fn to_value(&self) -> Value {
        to_value(self)
    }

    /// The set-level parts alone (everything but `flags`), in the same order.
    pub fn set_parts(&self) -> Value {
        to_value(&Document {
            def: self,
            with_flags: false,
        })
    }

    /// [`FlagSetDef::to_value`], pretty-printed.
    pub fn to_json_pretty(&self) -> String {
        // Serialising a definition cannot fail: its map keys are strings.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Serialising a definition cannot fail: its map keys are strings.
fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// A document, whole or without its flags.
struct Document<'a> {
    def: &'a FlagSetDef,
    with_flags: bool,
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Flags<'a>(&'a [(String, FlagDef)]);
        impl Serialize for Flags<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, f)| (k, f)))
            }
        }
        let def = self.def;
        let mut m = s.serialize_map(None)?;
        if let Some(schema) = &def.schema {
            m.serialize_entry("$schema", schema)?;
        }
        if self.with_flags {
            m.serialize_entry("flags", &Flags(&def.flags))?;
        }
        if !def.evaluators.is_empty() {
            m.serialize_entry("$evaluators", &def.evaluators)?;
        }
        if !def.metadata.is_empty() {
            m.serialize_entry("metadata", &def.metadata)?;
        }
        for (k, v) in &def.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// As [`FlagSetDef::to_value`]: serialising writes the document without building it as a
/// [`Value`] first.
impl Serialize for FlagSetDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Document {
            def: self,
            with_flags: true,
        }
        .serialize(s)
    }
}

/// As [`FlagDef::to_value`].
impl Serialize for FlagDef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("state", self.state.as_str())?;
        m.serialize_entry("variants", &self.variants)?;
        match &self.default_variant {
            DefaultVariant::Absent => {}
            DefaultVariant::Null => m.serialize_entry("defaultVariant", &())?,
            DefaultVariant::Named(n) => m.serialize_entry("defaultVariant", n)?,
        }
        if let Some(t) = &self.targeting {
            m.serialize_entry("targeting", t)?;
        }
        if let Some(md) = &self.metadata {
            m.serialize_entry("metadata", md)?;
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl FlagDef {
    /// The flag as written: `state`, `variants`, `defaultVariant`, `targeting`, `metadata`,
    /// then unknown fields.
    pub fn to_value(&self) -> Value {
        to_value(self)
    }
}
