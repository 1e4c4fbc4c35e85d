//! OpenFeature Remote Evaluation Protocol (OFREP) wire types, and the mapping
//! from an [`Evaluation`] to them. Numbers keep their JSON kind: a float
//! variant `0.0` is written `0.0`, an integer `0` is written `0`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ErrorCode;
use crate::evaluation::{Evaluation, Reason};
use crate::Snapshot;

/// Body of `POST /ofrep/v1/evaluate/flags/{key}` and `.../flags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// A successful single-flag answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSuccess {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    pub reason: Reason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// A failed single-flag answer (also an element of a bulk answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationFailure {
    pub key: String,
    pub error_code: ErrorCode,
    pub error_details: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// Either answer; serialises as the bare object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvaluationResponse {
    Failure(EvaluationFailure),
    Success(EvaluationSuccess),
}

/// Body of a bulk answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BulkEvaluationResponse {
    pub flags: Vec<EvaluationResponse>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// The OFREP form of an evaluation.
pub fn to_response(e: &Evaluation<'_>) -> EvaluationResponse {
    match &e.error {
        Some((code, details)) => EvaluationResponse::Failure(EvaluationFailure {
            key: e.key.to_owned(),
            error_code: *code,
            error_details: details.to_string(),
            metadata: e.metadata.clone(),
        }),
        None => EvaluationResponse::Success(EvaluationSuccess {
            key: e.key.to_owned(),
            value: e.value.cloned(),
            reason: e.reason,
            variant: e.variant.map(str::to_owned),
            metadata: e.metadata.clone(),
        }),
    }
}

/// The OFREP bulk form of a set of evaluations.
pub fn to_bulk_response(
    evals: &[Evaluation<'_>],
    metadata: &Map<String, Value>,
) -> BulkEvaluationResponse {
    BulkEvaluationResponse {
        flags: evals.iter().map(to_response).collect(),
        metadata: metadata.clone(),
    }
}

/// The HTTP status of a single-flag failure: 404 for an unknown flag, else 400.
pub fn http_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::FlagNotFound => 404,
        ErrorCode::ParseError
        | ErrorCode::TargetingKeyMissing
        | ErrorCode::InvalidContext
        | ErrorCode::TypeMismatch
        | ErrorCode::General => 400,
    }
}

/// Serialises an evaluation as its OFREP answer without copying anything: the same JSON as
/// [`to_response`], for the server's hot path.
pub struct Wire<'e, 'a>(pub &'e Evaluation<'a>);

impl Serialize for Wire<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let e = self.0;
        match &e.error {
            Some((code, details)) => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("key", e.key)?;
                m.serialize_entry("errorCode", code)?;
                m.serialize_entry("errorDetails", details.as_ref())?;
                if !e.metadata.is_empty() {
                    m.serialize_entry("metadata", e.metadata)?;
                }
                m.end()
            }
            None => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("key", e.key)?;
                if let Some(v) = e.value {
                    m.serialize_entry("value", v)?;
                }
                m.serialize_entry("reason", &e.reason)?;
                if let Some(v) = e.variant {
                    m.serialize_entry("variant", v)?;
                }
                m.serialize_entry("metadata", e.metadata)?;
                m.end()
            }
        }
    }
}

/// Serialises a bulk answer without copying: the same JSON as [`to_bulk_response`], plus
/// `extra` members (e.g. `eventStreams`) at the end.
pub struct BulkWire<'e, 'a> {
    pub evaluations: &'e [Evaluation<'a>],
    pub metadata: &'e Map<String, Value>,
    pub extra: &'e [(&'static str, Value)],
}

impl Serialize for BulkWire<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Flags<'e, 'a>(&'e [Evaluation<'a>]);
        impl Serialize for Flags<'_, '_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(Wire))
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("flags", &Flags(self.evaluations))?;
        if !self.metadata.is_empty() {
            m.serialize_entry("metadata", self.metadata)?;
        }
        for (k, v) in self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl BulkWire<'_, '_> {
    /// The same bytes as `serde_json::to_writer(out, self)`, faster when `evaluations` are
    /// `snapshot`'s, in the order [`Snapshot::evaluate_all`] gives them: each answer that is
    /// one of its flag's compiled answers is copied from pieces written at compile time,
    /// instead of escaping its key, variant, value and metadata again.
    pub fn write(&self, snapshot: Option<&Snapshot>, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"flags\":[");
        for (at, e) in self.evaluations.iter().enumerate() {
            if at > 0 {
                out.push(b',');
            }
            if snapshot.is_none_or(|s| s.write_answer(at, e, out).is_none()) {
                serde_json::to_writer(&mut *out, &Wire(e))?;
            }
        }
        out.push(b']');
        if !self.metadata.is_empty() {
            out.extend_from_slice(b",\"metadata\":");
            serde_json::to_writer(&mut *out, self.metadata)?;
        }
        for (k, v) in self.extra {
            out.push(b',');
            serde_json::to_writer(&mut *out, k)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, v)?;
        }
        out.push(b'}');
        Ok(())
    }
}
