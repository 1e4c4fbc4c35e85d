//! The body of every error answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable error code.
    pub code: String,
    /// What went wrong and what to do next.
    pub message: String,
}
