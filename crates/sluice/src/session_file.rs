//! The session `sluice login` keeps: where it lives and how it is read (by every command,
//! through `client::client`). Written by [`crate::login`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::Clock as _;
use std::path::PathBuf;

/// The session file's contents.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSession {
    /// The server it was issued by (as `--addr` named it).
    pub addr: String,
    pub token: String,
    pub token_id: String,
    pub principal: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The directory the session file lives in.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("sluice"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config").join("sluice"))
}

pub fn session_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("session.json"))
}

/// The stored session for `addr`, if there is one and it has not expired.
pub fn load(addr: &str) -> Option<StoredSession> {
    let text = std::fs::read_to_string(session_path()?).ok()?;
    let s: StoredSession = serde_json::from_str(&text).ok()?;
    (s.addr == addr && s.expires_at > sluice_core::SystemClock.now()).then_some(s)
}
