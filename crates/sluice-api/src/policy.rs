//! `/v1/policy`: the policy in force, and applying a new one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/policy`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicy {
    /// The policy file (YAML).
    pub source: String,
    /// Validate and show the diff without applying.
    #[serde(default)]
    pub dry_run: bool,
    /// sha256 of the policy the caller saw the diff against (`hash` of `GET /v1/policy` or of
    /// a dry run's `base_hash`); if the policy in force has changed since, 409 `policy_changed`.
    pub base_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyApplied {
    /// The new version, absent for a dry run.
    pub version: Option<i64>,
    /// sha256 of the source.
    pub hash: String,
    pub diff: Vec<String>,
    /// The changes that take something away (principals, entitlements, environments or their
    /// protection); a client should confirm these with a person before applying.
    pub removals: Vec<String>,
    /// sha256 of the policy the diff was computed against.
    pub base_hash: String,
    pub applied: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CurrentPolicy {
    pub version: Option<i64>,
    pub hash: String,
    pub source: Option<String>,
}
