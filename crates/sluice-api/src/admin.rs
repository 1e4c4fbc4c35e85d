//! `/v1/whoami` and `/v1/tokens`.

use chrono::{DateTime, Utc};
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

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// The whole API, as its principal.
    Api,
    /// Evaluates the flags of one environment only.
    Client,
    /// A short-lived gateway connection password (`sluice db connect`).
    Db,
    /// A signed-in person's short-lived session, issued by a sign-in through the identity
    /// provider (the console's, or `sluice login`).
    Session,
    /// Held by an edge (`sluice edge`): syncs the flags of its environments, nothing else.
    Edge,
}

impl TokenKind {
    /// The wire spelling, e.g. `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Client => "client",
            Self::Db => "db",
            Self::Session => "session",
            Self::Edge => "edge",
        }
    }
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub principal: String,
    pub kind: TokenKind,
    pub environment: Option<String>,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Whose token; default the caller. Administrators only for others.
    pub principal: Option<String>,
    pub name: String,
    /// `api` (default), `client` (evaluates flags of one environment only) or `edge` (an
    /// edge's key: syncs the flags of its environments, nothing else). A string, not
    /// [`TokenKind`]: an unknown kind is answered with its own error (`invalid_kind`).
    pub kind: Option<String>,
    /// For client keys: the environment they are bound to; for edge keys: their environments,
    /// separated by commas (`production,staging`).
    pub environment: Option<String>,
    /// E.g. `90d`; default: does not expire.
    pub expires_in: Option<String>,
    /// For client keys: static evaluation context merged into every evaluation made with the
    /// key, over the request's and the environment's values.
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A token just created, with its secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    /// The secret, shown only this once.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}
