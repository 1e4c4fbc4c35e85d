//! `/v1/db`: the PostgreSQL gateway's databases, sessions and connection passwords.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
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

/// One database served through the gateway, as `db:<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The name clients connect to (`dbname=orders`) and the resource (`db:orders`).
    pub name: String,
    pub upstream: UpstreamConfig,
    /// The upstream role for each action, from the weakest to the strongest: a session gets
    /// the last one its grant allows.
    pub roles: Vec<RoleConfig>,
    /// `session-log` (default): statements go to the session log, hashed into the
    /// session-end audit entry. `strict`: each statement is an audit entry, written before
    /// it is forwarded.
    #[serde(default)]
    pub log: LogMode,
    /// Statements and parameters are recorded up to this many bytes.
    #[serde(default = "default_max_statement_bytes")]
    pub max_statement_bytes: usize,
}

fn default_max_statement_bytes() -> usize {
    4096
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub dbname: String,
}

fn default_port() -> u16 {
    5432
}

/// An upstream role and where its password is read from (at each connection, so a rotated
/// password is picked up; it is never stored in Sluice's database nor shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub action: String,
    pub user: String,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogMode {
    #[default]
    SessionLog,
    Strict,
}

impl LogMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LogMode::SessionLog => "session-log",
            LogMode::Strict => "strict",
        }
    }
}

/// Where a gateway database was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeclaredIn {
    /// This instance's config file (read-only through the API).
    Config,
    /// The API: stored, so every instance's gateway serves it.
    Api,
}

impl DeclaredIn {
    /// The wire spelling, e.g. `config`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }
}

/// A gateway database and where it was declared.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseView {
    #[serde(flatten)]
    pub spec: DatabaseConfig,
    pub declared_in: DeclaredIn,
    pub declared_at: Option<DateTime<Utc>>,
    pub declared_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseList {
    pub databases: Vec<DatabaseView>,
}

/// `PUT /v1/db/databases/{name}`: the database declared, and whether it is new.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Declared {
    pub declared: String,
    /// False when it replaced an earlier declaration.
    pub created: bool,
}

/// `DELETE /v1/db/databases/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    pub removed: String,
}

/// `POST /v1/db/sessions/{id}/kill`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Killed {
    pub killed: String,
}
