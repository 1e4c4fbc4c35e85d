//! `/v1/sign-in/…`: signing in through the identity provider from the command line (the
//! device-authorization grant, RFC 8628), refreshing the session and signing out.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A device sign-in started: what to show the person, and what to poll with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceSignIn {
    /// Poll `POST /v1/sign-in/device/token` with it (it is useless without this server's
    /// client secret, which never leaves the server).
    pub device_code: String,
    /// The code the person types at the verification URL.
    pub user_code: String,
    pub verification_uri: String,
    /// The verification URL with the code filled in, when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Seconds until the device code expires.
    pub expires_in: u64,
    /// Seconds to wait between two polls.
    pub interval: u64,
}

/// One poll of a device sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevicePoll {
    pub device_code: String,
}

/// A Sluice session token, issued by a sign-in or a refresh. Shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionIssued {
    /// The session token (`slu_ses_…`), used as a bearer token on the whole API.
    pub token: String,
    pub token_id: String,
    pub principal: String,
    pub expires_at: DateTime<Utc>,
    /// The Sluice groups the identity provider's groups map to.
    pub groups: Vec<String>,
}

/// A session ended by signing out.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedOut {
    pub principal: String,
    /// The session token revoked.
    pub token_id: String,
}
