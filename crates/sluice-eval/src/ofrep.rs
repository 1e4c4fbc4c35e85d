//! OpenFeature Remote Evaluation Protocol (OFREP) wire types, and the mapping
//! from an [`Evaluation`] to them. Numbers keep their JSON kind: a float
//! variant `0.0` is written `0.0`, an integer `0` is written `0`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ErrorCode;
use crate::evaluation::{Evaluation, Reason};

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
