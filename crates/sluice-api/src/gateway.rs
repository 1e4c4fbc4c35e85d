//! `/v1/db`: the PostgreSQL gateway's sessions and connection passwords.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub principal: String,
    pub database: String,
    pub action: String,
    pub role: String,
    pub grant_id: String,
    pub client_addr: String,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// True while the session runs on this instance.
    pub live: bool,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub statements: i64,
    /// The session log's running hash, as its session-end audit entry records it.
    pub log_hash: Option<String>,
}

/// Which protocol message a logged statement came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatementKind {
    Query,
    Parse,
    Bind,
    Execute,
}

impl StatementKind {
    /// The wire spelling, e.g. `execute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Parse => "parse",
            Self::Bind => "bind",
            Self::Execute => "execute",
        }
    }

    /// From the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Self::Query),
            "parse" => Some(Self::Parse),
            "bind" => Some(Self::Bind),
            "execute" => Some(Self::Execute),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatementView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: StatementKind,
    pub text: String,
    #[schema(value_type = Option<Vec<Object>>)]
    pub params: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionDetail {
    pub session: SessionView,
    pub statements: Vec<StatementView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// Where this instance's gateway accepts clients, once it does.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Listening {
    /// The address it listens on (`--pg-listen`).
    pub address: String,
    /// SHA-256 of its TLS certificate (hex), to pin with `sslmode=verify-full` tooling.
    pub certificate_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordIssued {
    /// The connection password, shown once: `PGPASSWORD` for `psql` through the gateway.
    pub password: String,
    /// The PostgreSQL user to connect as: the caller's principal.
    pub user: String,
    pub database: String,
    pub token_id: String,
    /// After this, the password opens no new session.
    pub expires_at: DateTime<Utc>,
    /// The grant it was issued under.
    pub grant_id: String,
    /// Where this instance's gateway listens, if it runs one.
    pub gateway: Option<Listening>,
}
