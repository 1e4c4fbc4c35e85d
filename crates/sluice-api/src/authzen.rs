//! `/access/v1/evaluation(s)`: the AuthZEN Access Evaluation API's answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationResponse {
    pub decision: bool,
    /// Free-form by the AuthZEN specification; Sluice's decisions carry
    /// `{"reason_admin": {"en": …}, "sluice": …}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub context: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<EvaluationResponse>,
}

/// A subject found by `/access/v1/search/subject`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchSubject {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// The pagination of a search answer: `next_token` is empty on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub next_token: String,
    /// How many results this page holds.
    pub count: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectSearchResponse {
    pub results: Vec<SearchSubject>,
    pub page: SearchPage,
}
