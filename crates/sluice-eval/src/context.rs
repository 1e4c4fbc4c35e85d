//! The evaluation context: a JSON object built once per request, laid out
//! for lookups on the hot path (see [`Context`]).

use std::hash::Hasher;
use std::sync::OnceLock;

use rustc_hash::FxHasher;
use serde_json::{Map, Value};

use crate::error::{ErrorCode, EvalError};

/// What a lookup compares of a top-level attribute name before (or instead of) its bytes, as
/// compiled `var` paths precompute it: its hash, and its first eight bytes, zero-padded. Two
/// names of the same length up to eight bytes are equal exactly when their `head`s are, so
/// most lookups never read `Context::names` (nor call `memcmp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyId {
    hash: u64,
    head: u64,
}

/// Bytes of a name that `KeyId::head` holds.
const HEAD: usize = 8;

impl KeyId {
    pub(crate) fn of(key: &str) -> Self {
        let mut h = FxHasher::default();
        h.write(key.as_bytes());
        let mut head = [0u8; HEAD];
        for (d, b) in head.iter_mut().zip(key.as_bytes()) {
            *d = *b;
        }
        Self {
            hash: h.finish(),
            head: u64::from_le_bytes(head),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    id: KeyId,
    start: u32,
    len: u32,
}

/// An evaluation context (OpenFeature's): `targetingKey` plus attributes.
///
/// Top-level attributes are kept in three contiguous arrays (slots with each
/// name's [`KeyId`], names, values) so that a `var` lookup touches few cache lines and hashes nothing
/// at evaluation time: compiled rules carry the [`KeyId`] of the name they read.
///
/// INVARIANT: `slots[i]` describes `values[i]`; its name is
/// `names[start..start + len]`; names are unique.
#[derive(Debug, Clone, Default)]
pub struct Context {
    names: String,
    // Vectors, not boxed slices: a context lives for one request, and shrinking its arrays
    // to fit cost two reallocations per request (~900 instructions of a single-flag OFREP
    // request, callgrind).
    slots: Vec<Slot>,
    values: Vec<Value>,
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
            _ => Err(not_an_object()),
        }
    }

    /// Reads an OFREP evaluation request body, `{"context": {...}}`, straight into the
    /// engine's layout: no intermediate `serde_json::Map`, attribute names copied once into
    /// `names` (borrowed from the body when they hold no escapes). An empty body, a missing
    /// `context` and `"context": null` are the empty context. As `serde_json` reads an object
    /// (and [`Context::from_value`] therefore did), a name given twice keeps its last value.
    pub fn from_request_body(body: &[u8]) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::empty());
        }
        let req: wire::Request =
            serde_json::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
        match req.context {
            None | Some(wire::Field::Null) => Ok(Self::empty()),
            Some(wire::Field::NotObject) => Err(RequestError::Context(not_an_object())),
            Some(wire::Field::Object(b)) => b.finish().map_err(RequestError::Context),
        }
    }

    /// This context with `fixed`'s attributes set over its own (a name in both takes
    /// `fixed`'s value).
    pub fn overlay(self, fixed: &Map<String, Value>) -> Result<Self, EvalError> {
        if fixed.is_empty() {
            return Ok(self);
        }
        let mut b = Builder {
            names: self.names,
            slots: self.slots,
            values: self.values,
        };
        for (name, value) in fixed {
            b.push(name, value.clone());
        }
        b.finish()
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
                id: KeyId::of(&name),
                start,
                len,
            });
            values.push(value);
        }
        Ok(Self {
            names,
            slots,
            values,
            targeting_key,
            whole: OnceLock::new(),
        })
    }

    pub fn targeting_key(&self) -> Option<&str> {
        self.values.get(self.targeting_key? as usize)?.as_str()
    }

    /// A top-level attribute.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.get_by_id(KeyId::of(key), key)
    }

    /// A top-level attribute named `key`, whose [`KeyId`] is `id`.
    pub(crate) fn get_by_id(&self, id: KeyId, key: &str) -> Option<&Value> {
        let key = key.as_bytes();
        let i = self.slots.iter().position(|s| {
            s.id == id
                && s.len as usize == key.len()
                && (key.len() <= HEAD || self.name_bytes(s).get(HEAD..) == key.get(HEAD..))
        })?;
        self.values.get(i)
    }

    /// A slot's name. Bytes, not a `str` slice: `names` is only cut at the boundaries
    /// `slots` record, so the check that a cut falls on a character boundary is not needed.
    fn name_bytes(&self, s: &Slot) -> &[u8] {
        self.names
            .as_bytes()
            .get(s.start as usize..(s.start as usize).saturating_add(s.len as usize))
            .unwrap_or_default()
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

fn not_an_object() -> EvalError {
    EvalError::new(
        ErrorCode::InvalidContext,
        "the evaluation context must be a JSON object",
    )
}

/// Why a request body gave no context.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestError {
    /// Not `{"context": …}` JSON at all (OFREP: the request is malformed).
    Malformed(String),
    /// A context that is not an object, or a `targetingKey` that is not a string.
    Context(EvalError),
}

/// Attributes gathered in the engine's layout, names possibly repeated until [`Builder::finish`].
struct Builder {
    names: String,
    slots: Vec<Slot>,
    values: Vec<Value>,
}

/// Up to this many attributes, repeated names are found pairwise; above, by sorting.
const PAIRWISE: usize = 16;

impl Builder {
    fn with_capacity(n: usize) -> Self {
        Self {
            names: String::with_capacity(n * 12),
            slots: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, name: &str, value: Value) {
        // Offsets past u32 are caught in `finish` (the context is then too large).
        let start = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        self.names.push_str(name);
        self.slots.push(Slot {
            id: KeyId::of(name),
            start,
            len,
        });
        self.values.push(value);
    }

    fn name(&self, i: usize) -> &str {
        let s = self.slots[i];
        self.names
            .get(s.start as usize..(s.start as usize).saturating_add(s.len as usize))
            .unwrap_or_default()
    }

    /// Keeps the last value of each name (in the first one's place), checks `targetingKey`.
    fn finish(mut self) -> Result<Context, EvalError> {
        if u32::try_from(self.names.len()).is_err() || u32::try_from(self.values.len()).is_err() {
            return Err(EvalError::new(
                ErrorCode::InvalidContext,
                "the evaluation context is too large",
            ));
        }
        let n = self.slots.len();
        // `dropped[i]`: a repeat, whose value moved into its name's first slot. On the stack
        // for the common small context: no allocation per request.
        let (mut small, mut large) = ([false; PAIRWISE], Vec::new());
        let dropped: &mut [bool] = if n <= PAIRWISE {
            &mut small[..n]
        } else {
            large.resize(n, false);
            &mut large
        };
        let mut any = false;
        if n <= PAIRWISE {
            for j in 1..n {
                for i in 0..j {
                    if !dropped[i]
                        && self.slots[i].id == self.slots[j].id
                        && self.name(i) == self.name(j)
                    {
                        self.values.swap(i, j);
                        dropped[j] = true;
                        any = true;
                        break;
                    }
                }
            }
        } else {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| self.name(a).cmp(self.name(b)).then(a.cmp(&b)));
            let mut moves = Vec::new();
            for run in order.chunk_by(|&a, &b| self.name(a) == self.name(b)) {
                if let (Some(&first), Some(&last)) = (run.first(), run.last()) {
                    if first != last {
                        moves.push((first, last));
                        for &k in &run[1..] {
                            dropped[k] = true;
                        }
                    }
                }
            }
            any = !moves.is_empty();
            for (first, last) in moves {
                self.values.swap(first, last);
            }
        }
        if any {
            let mut b = Builder::with_capacity(n);
            let values = std::mem::take(&mut self.values);
            for (i, value) in values.into_iter().enumerate() {
                if !dropped[i] {
                    let name = self.name(i).to_owned();
                    b.push(&name, value);
                }
            }
            self = b;
        }
        let mut targeting_key = None;
        for i in 0..self.slots.len() {
            if self.name(i) == "targetingKey" {
                match self.values[i] {
                    Value::String(_) => targeting_key = u32::try_from(i).ok(),
                    Value::Null => {}
                    _ => {
                        return Err(EvalError::new(
                            ErrorCode::InvalidContext,
                            "targetingKey must be a string",
                        ))
                    }
                }
            }
        }
        Ok(Context {
            names: self.names,
            slots: self.slots,
            values: self.values,
            targeting_key,
            whole: OnceLock::new(),
        })
    }
}

/// The body of an OFREP evaluation request, read by hand-written visitors so the context's
/// attributes go straight into a [`Builder`].
mod wire {
    use super::Builder;
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use serde_json::Value;
    use std::borrow::Cow;
    use std::fmt;

    #[derive(Deserialize)]
    pub(super) struct Request {
        #[serde(default)]
        pub(super) context: Option<Field>,
    }

    /// What `context` held.
    pub(super) enum Field {
        Null,
        NotObject,
        Object(Builder),
    }

    /// An attribute name, borrowed from the body unless it had escapes.
    struct Name<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for Name<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string")
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                    Ok(Name(Cow::Borrowed(v)))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(v.to_owned())))
                }
                fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(v)))
                }
            }
            d.deserialize_str(V)
        }
    }

    impl<'de> Deserialize<'de> for Field {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(FieldVisitor)
        }
    }

    struct FieldVisitor;

    impl<'de> Visitor<'de> for FieldVisitor {
        type Value = Field;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
            Ok(Field::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Field, E> {
            Ok(Field::Null)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
            Ok(Field::NotObject)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field, E> {
            Ok(Field::NotObject)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field, E> {
            Ok(Field::NotObject)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field, E> {
            Ok(Field::NotObject)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Field, E> {
            Ok(Field::NotObject)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Field::NotObject)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
            let mut b = Builder::with_capacity(map.size_hint().unwrap_or(4));
            while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                let value: Value = map.next_value()?;
                b.push(&name, value);
            }
            Ok(Field::Object(b))
        }
    }
}
