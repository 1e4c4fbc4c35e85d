//! The AuthZEN Authorization API's answers: evaluations (`/access/v1/evaluation(s)`) and searches
//! (`/access/v1/search/{subject,resource,action}`).

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

/// A resource found by `/access/v1/search/resource`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchResource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

/// An action found by `/access/v1/search/action`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchAction {
    pub name: String,
}

/// The pagination of a search answer: `next_token` is empty on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    pub next_token: String,
    /// How many results this page holds.
    pub count: usize,
}

/// The answer of a subject search (`page` first, as the standard recommends).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubjectSearchResponse {
    pub page: SearchPage,
    pub results: Vec<SearchSubject>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceSearchResponse {
    pub page: SearchPage,
    pub results: Vec<SearchResource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActionSearchResponse {
    pub page: SearchPage,
    pub results: Vec<SearchAction>,
}
