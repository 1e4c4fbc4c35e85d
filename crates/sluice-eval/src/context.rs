//! The evaluation context: a JSON object built once per request, laid out
//! for lookups on the hot path (see [`Context`]).

use std::hash::Hasher;
use std::sync::OnceLock;

use rustc_hash::FxHasher;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, EvalError};

/// Hash of a top-level attribute name, as compiled `var` paths precompute it.
pub(crate) fn key_hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(key.as_bytes());
    h.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    hash: u64,
    start: u32,
    len: u32,
}

/// An evaluation context (OpenFeature's): `targetingKey` plus attributes.
///
/// Top-level attributes are kept in three contiguous arrays (hashes, names,
/// values) so that a `var` lookup touches few cache lines and hashes nothing
/// at evaluation time: compiled rules carry the hash of the name they read.
///
/// INVARIANT: `slots[i]` describes `values[i]`; its name is
/// `names[start..start + len]`; names are unique.
#[derive(Debug, Clone, Default)]
pub struct Context {
    names: String,
    slots: Box<[Slot]>,
    values: Box<[Value]>,
    targeting_key: Option<u32>,
    /// The whole object, rebuilt on first use (`{"var": ""}` and friends).
    whole: OnceLock<Value>,
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.as_value() == other.as_value()
    }
}

impl Context {
    /// A context without attributes.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a context from a JSON value (`null` is the empty context).
    /// Anything but an object, or a `targetingKey` that is not a string, is
    /// `INVALID_CONTEXT`.
    pub fn from_value(value: Value) -> Result<Self, EvalError> {
        match value {
            Value::Object(map) => Self::from_map(map),
            Value::Null => Ok(Self::empty()),
            _ => Err(EvalError::new(
                ErrorCode::InvalidContext,
                "the evaluation context must be a JSON object",
            )),
        }
    }

    /// Builds a context from a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, EvalError> {
        let too_big = || {
            EvalError::new(
                ErrorCode::InvalidContext,
                "the evaluation context is too large",
            )
        };
        let mut names = String::new();
        let mut slots = Vec::with_capacity(map.len());
        let mut values = Vec::with_capacity(map.len());
        let mut targeting_key = None;
        for (name, value) in map {
            if name == "targetingKey" {
                match value {
                    Value::String(_) => {
                        targeting_key = Some(u32::try_from(values.len()).map_err(|_| too_big())?)
                    }
                    Value::Null => {}
                    _ => {
                        return Err(EvalError::new(
                            ErrorCode::InvalidContext,
                            "targetingKey must be a string",
                        ))
                    }
                }
            }
            let start = u32::try_from(names.len()).map_err(|_| too_big())?;
            let len = u32::try_from(name.len()).map_err(|_| too_big())?;
            names.push_str(&name);
            slots.push(Slot {
                hash: key_hash(&name),
                start,
                len,
            });
            values.push(value);
        }
        Ok(Self {
            names,
            slots: slots.into(),
            values: values.into(),
            targeting_key,
            whole: OnceLock::new(),
        })
    }

    pub fn targeting_key(&self) -> Option<&str> {
        self.values.get(self.targeting_key? as usize)?.as_str()
    }

    /// A top-level attribute.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_hashed(key_hash(key), key)
    }

    /// A top-level attribute whose name hashes to `hash` (see [`key_hash`]).
    pub(crate) fn get_hashed(&self, hash: u64, key: &str) -> Option<&Value> {
        let i = self.slots.iter().position(|s| {
            s.hash == hash
                && self
                    .names
                    .get(s.start as usize..(s.start + s.len) as usize)
                    .is_some_and(|n| n == key)
        })?;
        self.values.get(i)
    }

    /// Every top-level attribute, in the order given.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slots.iter().zip(self.values.iter()).map(|(s, v)| {
            let name = self
                .names
                .get(s.start as usize..(s.start + s.len) as usize)
                .unwrap_or_default();
            (name, v)
        })
    }

    /// The whole context as a JSON object.
    pub fn as_value(&self) -> &Value {
        self.whole.get_or_init(|| {
            let mut m = Map::new();
            for (s, v) in self.slots.iter().zip(self.values.iter()) {
                let name = self
                    .names
                    .get(s.start as usize..(s.start + s.len) as usize)
                    .unwrap_or_default();
                m.insert(name.to_owned(), v.clone());
            }
            Value::Object(m)
        })
    }
}
