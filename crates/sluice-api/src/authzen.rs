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
