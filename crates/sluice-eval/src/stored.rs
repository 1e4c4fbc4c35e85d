//! Flag sets as Sluice stores them: a flagd document whose flags are kept one per row, with a
//! set-level marker for sets imported leniently. This module compiles a stored document the
//! way it was imported and lists, as values, the faults a lenient import let through.

use crate::{DefinitionError, FlagSetDef, Snapshot};
use serde_json::Value;

/// Set-level member of a stored document that marks a set imported leniently. Never exported:
/// [`strip_marker`] removes it, so an export is a plain flagd file.
pub const LENIENT_MARKER: &str = "x-sluice-lenient";

/// One strict-validation fault of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The flag at fault; `None` when the fault is in set-level parts (`$evaluators`).
    pub key: Option<String>,
    /// JSON path of the fault in the document.
    pub path: String,
    pub reason: String,
}

impl Fault {
    fn new(key: Option<&str>, e: DefinitionError) -> Self {
        Fault {
            key: key.map(str::to_owned),
            path: e.path,
            reason: e.reason,
        }
    }
}

/// Every strict-validation fault of a document, flag by flag, in document order. A fault in
/// the set-level parts (which every flag may use) is the only one reported.
pub fn strict_faults(def: &FlagSetDef) -> Vec<Fault> {
    if let Err(e) = def.check_evaluators() {
        return vec![Fault::new(None, e)];
    }
    def.flags
        .iter()
        .filter_map(|(key, flag)| {
            def.check_flag(key, flag)
                .err()
                .map(|e| Fault::new(Some(key), e))
        })
        .collect()
}

/// A stored document without Sluice's marker, and whether it was imported leniently.
pub fn strip_marker(mut doc: Value) -> (Value, bool) {
    let lenient = doc
        .as_object_mut()
        .and_then(|m| m.remove(LENIENT_MARKER))
        .is_some_and(|v| v == Value::Bool(true));
    (doc, lenient)
}

/// Marks a set-level document as imported leniently.
pub fn mark_lenient(set_doc: &mut Value) {
    if let Some(m) = set_doc.as_object_mut() {
        m.insert(LENIENT_MARKER.into(), Value::Bool(true));
    }
}

/// A stored document, compiled.
#[derive(Debug)]
pub struct CompiledStored {
    pub snapshot: Snapshot,
    /// Why it was not compiled as imported: a lenient set that no longer parses (served
    /// empty), or a strict one that no longer compiles (served leniently). Worth a loud log.
    pub fallback: Option<DefinitionError>,
    /// Whether it was imported leniently.
    pub lenient: bool,
}

/// Compiles a stored document (marker included), consuming it: leniently if it was imported
/// so, else strictly — falling back to lenient if a strictly imported set no longer compiles.
/// The document is read once, by the lenient parser, whose result both compilations take:
/// strict compilation validates what lenient parsing does not. No copy of the definitions is
/// made, and a copy of every definition is what a large import's memory is made of.
pub fn compile_stored(document: Value, revision: u64) -> CompiledStored {
    let (doc, lenient) = strip_marker(document);
    let (def, unparsed) = match FlagSetDef::from_value_lenient(doc) {
        Ok(d) => (d, None),
        Err(e) => (FlagSetDef::default(), Some(e)),
    };
    let (snapshot, fallback) = if lenient || unparsed.is_some() {
        (Snapshot::compile_lenient(&def, revision), unparsed)
    } else {
        match Snapshot::compile(&def, revision) {
            Ok(snapshot) => (snapshot, None),
            Err(e) => (Snapshot::compile_lenient(&def, revision), Some(e)),
        }
    };
    CompiledStored {
        snapshot,
        fallback,
        lenient,
    }
}

#[cfg(test)]
mod tests;
