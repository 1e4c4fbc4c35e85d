//! A flag's OFREP answer in pieces, written once when the snapshot is compiled.
//!
//! A bulk answer with a new context evaluates every flag and writes every answer; most of
//! that writing used to be escaping the same keys, variant names, values and metadata again
//! for every request (over half the instructions of such a request). The pieces are the
//! exact bytes `serde_json` writes for [`crate::ofrep::Wire`], so a bulk answer written from
//! them is the same, byte for byte (tested against the serialiser in `ofrep.rs`).

use serde_json::{Map, Value};

use super::{CompiledFlag, Snapshot};
use crate::evaluation::Evaluation;

/// The fixed parts of one flag's answer.
#[derive(Debug)]
pub(super) struct FlagWire {
    /// `{"key":"…"`
    head: Box<str>,
    /// Per variant, in definition order: `,"value":…` and `,"variant":"…"`.
    variants: Box<[(Box<str>, Box<str>)]>,
    /// `,"metadata":{…}}`
    tail: Box<str>,
}

impl FlagWire {
    pub(super) fn new(
        key: &str,
        variants: &[(Box<str>, Value)],
        metadata: &Map<String, Value>,
    ) -> Self {
        FlagWire {
            head: format!("{{\"key\":{}", json(key)).into(),
            variants: variants
                .iter()
                .map(|(name, value)| {
                    (
                        format!(",\"value\":{}", json(value)).into(),
                        format!(",\"variant\":{}", json(&**name)).into(),
                    )
                })
                .collect(),
            tail: format!(",\"metadata\":{}}}", json(metadata)).into(),
        }
    }
}

/// The JSON `serde_json` writes for `v` (none of these types can fail to serialise).
fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Where an evaluation of [`Snapshot::evaluate_all`] stands in its snapshot.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    /// The flag's position, as [`Snapshot::flag_index`] gives it for the flag's key.
    pub flag: u32,
    /// The variant's position among the flag's, if the answer has one.
    pub variant: Option<u16>,
}

impl Snapshot {
    /// Where `e`, the evaluation of the flag at position `at` (as [`Snapshot::evaluate_all`]
    /// returns them), stands: the positions [`Snapshot::flag_index`] and
    /// [`Snapshot::variant_index`] give, found without a lookup by name. `None` for an error,
    /// for a flag whose key a later flag took, or for an evaluation that is not one of this
    /// flag's answers as evaluated (a value replaced by a type check, say).
    pub fn locate(&self, at: usize, e: &Evaluation<'_>) -> Option<Located> {
        let (_, variant) = self.own_answer(at, e)?;
        located(at, variant)
    }

    /// The flag at `at` and the position of `e`'s variant, if `e` is one of that flag's own
    /// answers (see [`Snapshot::locate`]).
    fn own_answer(&self, at: usize, e: &Evaluation<'_>) -> Option<(&CompiledFlag, Option<usize>)> {
        let flag = self.flags.get(at)?;
        if e.error.is_some()
            || flag.shadowed
            || !std::ptr::eq(e.key, &*flag.key)
            || !std::ptr::eq(e.metadata, &flag.metadata)
        {
            return None;
        }
        let variant = match (e.variant, e.value) {
            (None, None) => None,
            (Some(name), Some(value)) => Some(
                flag.variants
                    .iter()
                    .position(|(n, v)| std::ptr::eq(&**n, name) && std::ptr::eq(v, value))?,
            ),
            _ => return None,
        };
        Some((flag, variant))
    }

    /// Writes `e`, the answer of a single-flag evaluation (as [`Snapshot::evaluate`] gives
    /// it), from the pieces compiled with its flag: the bytes `serde_json` writes for
    /// [`crate::ofrep::Wire`]`(e)`. Returns where the answer stands (see [`Snapshot::locate`]),
    /// for the evaluation counters; `None`, writing nothing, when `e` is not one of its flag's
    /// own answers (an error, or a value a layer or type check put there).
    pub fn write_single(&self, e: &Evaluation<'_>, out: &mut Vec<u8>) -> Option<Located> {
        let at = usize::try_from(self.flag_index(e.key)?).ok()?;
        self.write_answer(at, e, out)
    }

    /// Writes the evaluation `e` of the flag at `at` (see [`Snapshot::locate`]) from the
    /// pieces compiled with the flag and returns where it stands; `None`, writing nothing,
    /// when `e` is not one of them.
    pub(crate) fn write_answer(
        &self,
        at: usize,
        e: &Evaluation<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Located> {
        let (flag, index) = self.own_answer(at, e)?;
        let place = located(at, index)?;
        let pieces = &flag.wire;
        let variant = match index {
            Some(i) => Some(pieces.variants.get(i)?),
            None => None,
        };
        out.extend_from_slice(pieces.head.as_bytes());
        if let Some((value, _)) = variant {
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(b",\"reason\":\"");
        out.extend_from_slice(e.reason.as_str().as_bytes());
        out.push(b'"');
        if let Some((_, name)) = variant {
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(pieces.tail.as_bytes());
        Some(place)
    }
}

/// The positions of [`Located`], when they fit.
fn located(at: usize, variant: Option<usize>) -> Option<Located> {
    Some(Located {
        flag: u32::try_from(at).ok()?,
        variant: variant.map(u16::try_from).transpose().ok()?,
    })
}
