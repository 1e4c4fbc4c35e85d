//! `/v1/whoami`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who the presented token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub admin: bool,
    pub groups: Vec<String>,
    pub token_id: String,
}
