//! `/v1/http`: the HTTP gateway's services, its calls as its call log records them, and the calls in
//! progress.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use utoipa::ToSchema;

/// One call through the HTTP gateway, or one it refused: its `ended` or `refused` record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallView {
    /// The call id (`htc-…`).
    pub id: String,
    /// The sequence number of the `http.calls.recorded` audit entry sealing its record.
    pub seq: i64,
    /// When the result was recorded (the response's end, or the refusal).
    pub at: DateTime<Utc>,
    /// Refused by the gateway itself (no grant, an ambiguous path, a body over the limit…):
    /// never forwarded; `outcome` says why.
    #[serde(default)]
    pub refused: bool,
    pub principal: String,
    pub service: String,
    /// Empty for a refused call.
    pub grant_id: String,
    pub method: String,
    /// The path within the service (after `/<service>`), without the query: as decided and
    /// forwarded (canonical, decoded), or for a call refused before its decision as sent (it
    /// may have no canonical form). Records written before 2026-12-05 hold a refusal's whole
    /// path, service name first.
    pub path: String,
    /// The status the caller got (502/504 when the upstream failed).
    pub status: u16,
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// `completed`, `cut: grant expired`, `client went away`, `upstream unavailable: …`,
    /// `refused: …`.
    pub outcome: String,
    /// `before` (admitted in the trail before it was forwarded) or `after`; empty if refused.
    pub audit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CallList {
    /// Oldest first.
    pub calls: Vec<CallView>,
}

/// One service fronted by the HTTP gateway, reached as `/<name>/…` and decided as the
/// resource `http:<name>`. Declared in the config file's `http_services:` or through the API
/// (`PUT /v1/http/services/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// Base URL of the upstream (`http://10.0.0.7:8080`, or with a path prefix).
    pub upstream: String,
    /// The credential Sluice adds upstream; callers never hold it.
    #[serde(default)]
    pub credential: Option<CredentialConfig>,
    /// `before` (default): a call is forwarded only once its `admitted` record is committed
    /// in the audit trail. `after`: one `ended` record once the response is over, best effort.
    #[serde(default)]
    pub audit: AuditMode,
    /// Longest wait for the upstream's response headers (`30s` by default).
    #[serde(default = "default_timeout")]
    #[schema(value_type = String, example = "30s")]
    pub timeout: sluice_core::duration::Duration,
    /// Largest request body forwarded, in bytes (1 MiB by default).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: u64,
}

fn default_timeout() -> sluice_core::duration::Duration {
    sluice_core::duration::Duration::from_secs(30)
}

fn default_max_body() -> u64 {
    1024 * 1024
}

/// A header whose whole value (`Bearer …`, `Basic …`, an API key) is read from an
/// environment variable or a file at each call, never stored nor shown: only its source is
/// named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// The header the upstream reads (`authorization` by default).
    #[serde(default = "default_header")]
    pub header: String,
    /// The environment variable holding the header's value (through the API: one starting
    /// with `SLUICE_HTTP_`).
    #[serde(default)]
    pub value_env: Option<String>,
    /// The file holding the header's value (through the API: a file name in the gateway's
    /// `http_credentials_dir`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub value_file: Option<PathBuf>,
}

fn default_header() -> String {
    "authorization".into()
}

/// When a call is recorded in the audit trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// Before it is forwarded (fail-closed).
    #[default]
    Before,
    /// After its response, best effort.
    After,
}

impl AuditMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditMode::Before => "before",
            AuditMode::After => "after",
        }
    }
}

/// An HTTP service and where it was declared.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    #[serde(flatten)]
    pub spec: ServiceConfig,
    pub declared_in: crate::gateway::DeclaredIn,
    pub declared_at: Option<DateTime<Utc>>,
    pub declared_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceList {
    /// The config file's first, then the API's, each by name.
    pub services: Vec<ServiceView>,
}

/// A call in progress through the HTTP gateway on this instance (a response still being
/// relayed, or a WebSocket still open): a session of the HTTP gateway.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveCallView {
    /// The call id (`htc-…`), as its records in the call log name it.
    pub id: String,
    pub principal: String,
    pub grant_id: String,
    pub service: String,
    pub method: String,
    /// The path as decided and forwarded (canonical, decoded).
    pub path: String,
    pub client_addr: String,
    pub started_at: DateTime<Utc>,
    /// The grant's end: the call is cut then.
    pub expires_at: DateTime<Utc>,
    /// Whole seconds until `expires_at` (0 once it is past).
    pub seconds_left: i64,
    /// An upgraded connection (WebSocket) rather than a response.
    pub websocket: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LiveCallList {
    /// Oldest first.
    pub calls: Vec<LiveCallView>,
}
