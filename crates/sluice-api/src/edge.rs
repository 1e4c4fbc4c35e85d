//! What an edge (`sluice edge`) and the central server say to each other: the snapshot of the
//! edge key's environments, their change events, and the evaluation counts the edge reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `GET /v1/edge/snapshot`: everything an edge needs to answer OFREP for its environments as
/// the central server answers — the stored flags and layers (the edge compiles them as the
/// central server does), the environments' static context, and the client keys that may
/// evaluate there (by hash only).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeSnapshot {
    pub environments: Vec<EdgeEnvironment>,
}

/// One environment, as an edge holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeEnvironment {
    pub environment: String,
    /// The stored flag set; `None` while the environment has no flags.
    pub flags: Option<EdgeFlagSet>,
    /// Expiring targets and staged rollouts, by flag key (the stored layer documents).
    #[schema(value_type = Object)]
    pub layers: BTreeMap<String, Value>,
    /// The policy's static context of the environment.
    #[schema(value_type = Object)]
    pub context: Map<String, Value>,
    /// Request headers copied into the context (header name in lower case → context key).
    pub context_from_headers: BTreeMap<String, String>,
    /// The client keys of the environment that are live now.
    pub clients: Vec<EdgeClientKey>,
}

/// A stored flag set, as imported.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFlagSet {
    pub revision: i64,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    /// `$schema`, `metadata`, `$evaluators`: everything but `flags`.
    #[schema(value_type = Object)]
    pub document: Value,
    pub flags: Vec<EdgeFlag>,
}

/// One stored flag definition.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFlag {
    pub key: String,
    pub revision: i64,
    #[schema(value_type = Object)]
    pub definition: Value,
}

/// A client key as an edge checks it: the SHA-256 of its secret, never the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeClientKey {
    pub id: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's own static context.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
}

/// One event of `GET /v1/edge/events`: an environment moved to a revision (`environment`
/// absent: something may have been missed; fetch every environment again).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeChange {
    pub environment: Option<String>,
    pub revision: i64,
}

/// `POST /v1/edge/evaluations`: counts an edge took since its last report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeEvaluations {
    pub flags: Vec<EdgeFlagCount>,
    pub clients: Vec<EdgeClientCount>,
}

/// Evaluations of one flag with one variant for one reason on one day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeFlagCount {
    pub environment: String,
    pub flag: String,
    /// Empty when the answer named no variant.
    pub variant: String,
    pub reason: String,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}

/// Evaluations by one client key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeClientCount {
    pub token_id: String,
    pub environment: String,
    pub count: i64,
    pub last_at: DateTime<Utc>,
}
