//! The `notifications:` section of the config file: sinks (signed webhooks and Slack-style
//! chat), what each hears about, retry limits and reminders. Secrets (webhook signing keys,
//! chat URLs, which are secrets too) come from the environment or a file, never from the file
//! itself, and never reach the audit trail.

use serde::Deserialize;
use std::time::Duration;

/// Every event type a sink may ask for.
pub const ALL: &[&str] = &[
    "request.opened",
    "request.approved",
    "request.denied",
    "request.pending",
    "grant.started",
    "grant.expiring",
    "grant.expired",
    "grant.revoked",
    "break_glass.used",
    "break_glass.awaiting_review",
    "change_request.opened",
    "change_request.applied",
    "rollout.step",
    "rollout.paused",
    "rollout.rolled_back",
    "audit.verify_failed",
];

/// Is `pattern` an event type, or a prefix pattern (`request.*`, `*`) matching one?
pub fn known(pattern: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => ALL.iter().any(|e| e.starts_with(prefix)),
        None => ALL.contains(&pattern),
    }
}

/// `notifications:` as written in `sluice.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    #[serde(default)]
    pub sinks: Vec<SinkFile>,
    /// Attempts before a notification is dead-lettered (default 12).
    pub max_attempts: Option<u32>,
    /// The wait before the first retry, doubled at each (default 1s).
    pub backoff: Option<String>,
    /// The longest wait between two retries (default 10m).
    pub backoff_cap: Option<String>,
    /// How long a claimed notification is one instance's before another may take it over
    /// (default 30s; longer than a delivery may take, which is at most 10s).
    pub lease: Option<String>,
    #[serde(default)]
    pub reminders: RemindersFile,
    /// Principal name → chat user id (e.g. `alice@example.com: U024BE7LH`): a chat message
    /// @-mentions those among them it concerns (who must approve, review or extend).
    #[serde(default)]
    pub chat_users: std::collections::BTreeMap<String, String>,
}

/// One sink as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    pub name: String,
    pub kind: SinkKind,
    /// The URL, when it is no secret (a Standard Webhooks receiver of one's own).
    pub url: Option<String>,
    /// Or the environment variable / file holding it (a Slack incoming-webhook URL is a secret).
    pub url_env: Option<String>,
    pub url_file: Option<std::path::PathBuf>,
    /// `webhook` only: the signing secret `whsec_<base64>`, from an environment variable or file.
    pub secret_env: Option<String>,
    pub secret_file: Option<std::path::PathBuf>,
    /// Event types this sink hears (`*` suffix matches a prefix); default: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only access events of these entitlements (`*` suffix matches a prefix); default: all.
    #[serde(default)]
    pub entitlements: Vec<String>,
    /// Only flag events of these environments (`*` suffix matches a prefix); default: all.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Only events that concern one of these principals (a person's own sink): their own
    /// requests and grants, and requests and break-glass uses they may approve or review.
    /// Default: everything the filters above let through.
    #[serde(default)]
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Signed per the Standard Webhooks specification.
    Webhook,
    /// A Slack-compatible incoming webhook (blocks with links to the console).
    Slack,
}

/// `reminders:`: each off unless given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindersFile {
    /// Remind the holder this long before a grant expires (e.g. `10m`).
    pub expiring_before: Option<String>,
    /// Remind approvers of a request pending longer than this.
    pub pending_after: Option<String>,
    /// Remind reviewers of a break-glass grant unreviewed for longer than this.
    pub unreviewed_after: Option<String>,
}

/// A sink ready to deliver to.
#[derive(Clone)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// The HMAC key (the secret's bytes after `whsec_`), for `webhook`.
    pub key: Option<Vec<u8>>,
    pub events: Vec<String>,
    pub entitlements: Vec<String>,
    pub environments: Vec<String>,
    /// Only what concerns one of these principals; empty: no such filter.
    pub recipients: Vec<String>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"[redacted]")
            .field("events", &self.events)
            .field("recipients", &self.recipients)
            .finish_non_exhaustive()
    }
}

/// Reminder thresholds; `None`: that reminder is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reminders {
    pub expiring_before: Option<Duration>,
    pub pending_after: Option<Duration>,
    pub unreviewed_after: Option<Duration>,
}

/// Notifications as the server runs them.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub sinks: Vec<Sink>,
    pub max_attempts: u32,
    pub backoff: Duration,
    pub backoff_cap: Duration,
    pub reminders: Reminders,
    /// How long a claimed notification is this instance's; one whose instance died is claimed
    /// again after it.
    pub lease: Duration,
    /// The longest one delivery may take.
    pub timeout: Duration,
    /// How often reminders are looked for.
    pub remind_every: Duration,
    /// Principal name → chat user id, for @-mentions.
    pub chat_users: std::collections::BTreeMap<String, String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            sinks: Vec::new(),
            max_attempts: 12,
            backoff: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            reminders: Reminders::default(),
            lease: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            remind_every: Duration::from_secs(5),
            chat_users: std::collections::BTreeMap::new(),
        }
    }
}

impl Sink {
    /// Does this sink hear `event` about `entitlement` / `environment`?
    pub fn hears(&self, event: &str, entitlement: Option<&str>, environment: Option<&str>) -> bool {
        let any = |patterns: &[String], value: Option<&str>| {
            patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| matches(p, v)))
        };
        any(&self.events, Some(event))
            && (entitlement.is_none() || any(&self.entitlements, entitlement))
            && (environment.is_none() || any(&self.environments, environment))
    }
}

/// `p` is `v`, or `p` ends with `*` and `v` starts with what precedes it.
fn matches(p: &str, v: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => v.starts_with(prefix),
        None => p == v,
    }
}

fn duration(what: &str, raw: &Option<String>) -> Result<Option<Duration>, String> {
    raw.as_deref()
        .map(|s| {
            humantime::parse_duration(s)
                .map_err(|e| format!("notifications: {what} `{s}` is not a duration like 10m: {e}"))
        })
        .transpose()
}

/// Reads a secret from the environment variable or the file named (trailing newline trimmed).
fn secret(
    sink: &str,
    what: &str,
    env: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<Option<String>, String> {
    match (env, file) {
        (Some(_), Some(_)) => Err(format!(
            "notifications: sink `{sink}`: give {what}_env or {what}_file, not both"
        )),
        (Some(var), None) => std::env::var(var).map(Some).map_err(|_| {
            format!(
                "notifications: sink `{sink}`: the environment variable {var} ({what}) is not set"
            )
        }),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end().to_owned()))
            .map_err(|e| {
                format!(
                    "notifications: sink `{sink}`: cannot read {what} from {}: {e}",
                    path.display()
                )
            }),
        (None, None) => Ok(None),
    }
}

/// The HMAC key of a Standard Webhooks secret `whsec_<base64>`.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("a webhook secret starts with `whsec_`")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("a webhook secret is `whsec_` and base64: {e}"))?;
    if key.len() < 24 {
        return Err("a webhook secret holds at least 24 bytes (192 bits)".into());
    }
    Ok(key)
}

impl NotifyFile {
    /// Checks the section and reads its secrets; every problem names the sink and the field.
    pub fn resolve(&self) -> Result<NotifyConfig, String> {
        let defaults = NotifyConfig::default();
        let mut sinks: Vec<Sink> = Vec::new();
        for s in &self.sinks {
            sluice_core::policy::check_name("notifications.sinks[].name", &s.name)
                .map_err(|e| format!("notifications: {e}"))?;
            if sinks.iter().any(|o| o.name == s.name) {
                return Err(format!("notifications: two sinks are named `{}`", s.name));
            }
            let url = match (&s.url, secret(&s.name, "url", &s.url_env, &s.url_file)?) {
                (Some(u), None) => u.clone(),
                (None, Some(u)) => u,
                _ => {
                    return Err(format!(
                        "notifications: sink `{}`: give exactly one of url, url_env, url_file",
                        s.name
                    ))
                }
            };
            let parsed = url::Url::parse(&url).map_err(|e| {
                format!(
                    "notifications: sink `{}`: the URL is not absolute: {e}",
                    s.name
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "notifications: sink `{}`: the URL must be http:// or https://",
                    s.name
                ));
            }
            let key = match (
                s.kind,
                secret(&s.name, "secret", &s.secret_env, &s.secret_file)?,
            ) {
                (SinkKind::Webhook, Some(secret)) => Some(
                    webhook_key(&secret)
                        .map_err(|e| format!("notifications: sink `{}`: {e}", s.name))?,
                ),
                (SinkKind::Webhook, None) => {
                    return Err(format!(
                        "notifications: sink `{}`: a webhook needs secret_env or secret_file (whsec_<base64>)",
                        s.name
                    ))
                }
                (SinkKind::Slack, Some(_)) => {
                    return Err(format!(
                        "notifications: sink `{}`: a slack sink takes no secret (its URL is the secret)",
                        s.name
                    ))
                }
                (SinkKind::Slack, None) => None,
            };
            for e in &s.events {
                if !known(e) {
                    return Err(format!(
                        "notifications: sink `{}`: unknown event `{e}` (known: {})",
                        s.name,
                        ALL.join(", ")
                    ));
                }
            }
            sinks.push(Sink {
                name: s.name.clone(),
                kind: s.kind,
                url,
                key,
                events: s.events.clone(),
                entitlements: s.entitlements.clone(),
                environments: s.environments.clone(),
                recipients: s.recipients.clone(),
            });
        }
        for (principal, id) in &self.chat_users {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "notifications: chat_users: `{principal}` maps to `{id}`, not a chat user id (letters and digits, e.g. U024BE7LH)"
                ));
            }
        }
        let max_attempts = self.max_attempts.unwrap_or(defaults.max_attempts);
        if max_attempts == 0 {
            return Err("notifications: max_attempts is at least 1".into());
        }
        Ok(NotifyConfig {
            sinks,
            max_attempts,
            backoff: duration("backoff", &self.backoff)?.unwrap_or(defaults.backoff),
            backoff_cap: duration("backoff_cap", &self.backoff_cap)?
                .unwrap_or(defaults.backoff_cap),
            lease: duration("lease", &self.lease)?.unwrap_or(defaults.lease),
            reminders: Reminders {
                expiring_before: duration(
                    "reminders.expiring_before",
                    &self.reminders.expiring_before,
                )?,
                pending_after: duration("reminders.pending_after", &self.reminders.pending_after)?,
                unreviewed_after: duration(
                    "reminders.unreviewed_after",
                    &self.reminders.unreviewed_after,
                )?,
            },
            chat_users: self.chat_users.clone(),
            ..defaults
        })
    }
}

impl NotifyConfig {
    /// The wait after the `attempts`-th failed attempt: `backoff` doubled per attempt, capped.
    pub fn backoff_after(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        self.backoff.saturating_mul(factor).min(self.backoff_cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_pattern_is_checked() {
        assert!(known("request.*"));
        assert!(known("*"));
        assert!(known("grant.expiring"));
        assert!(!known("grant.exploded"));
        assert!(!known("nothing.*"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = NotifyConfig {
            backoff: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            ..NotifyConfig::default()
        };
        let waits: Vec<u64> = (1..=9).map(|a| c.backoff_after(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(c.backoff_after(200), Duration::from_secs(60));
    }

    #[test]
    fn sinks_hear_by_event_entitlement_and_environment() {
        let s = Sink {
            name: "s".into(),
            kind: SinkKind::Webhook,
            url: "http://x".into(),
            key: None,
            events: vec!["request.*".into(), "grant.expired".into()],
            entitlements: vec!["prod-*".into()],
            environments: vec!["production".into()],
            recipients: Vec::new(),
        };
        assert!(s.hears("request.opened", Some("prod-db"), None));
        assert!(!s.hears("request.opened", Some("staging-db"), None));
        assert!(!s.hears("grant.revoked", Some("prod-db"), None));
        assert!(s.hears("grant.expired", Some("prod-x"), None));
        assert!(!s.hears("rollout.step", None, Some("staging")));
    }

    #[test]
    fn recipients_and_chat_users_are_read_and_chat_ids_checked() {
        let file = |chat_id: &str| -> NotifyFile {
            serde_json::from_value(serde_json::json!({
                "sinks": [{
                    "name": "dave-dm",
                    "kind": "slack",
                    "url": "http://chat.example.com/hooks/dave",
                    "recipients": ["dave@example.com"],
                }],
                "chat_users": {"dave@example.com": chat_id},
            }))
            .unwrap()
        };
        let c = file("U024BE7LH").resolve().unwrap();
        assert_eq!(c.sinks[0].recipients, ["dave@example.com"]);
        assert_eq!(c.chat_users["dave@example.com"], "U024BE7LH");
        for bad in ["<!channel>", "", "U1 U2"] {
            assert!(
                file(bad)
                    .resolve()
                    .unwrap_err()
                    .contains("not a chat user id"),
                "{bad}"
            );
        }
    }

    #[test]
    fn webhook_secrets_are_whsec_base64_of_enough_bytes() {
        assert!(webhook_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(webhook_key("whsec_c2hvcnQ=").is_err());
        assert!(webhook_key("whsec_!!").is_err());
        assert_eq!(
            webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Ok(24)
        );
    }
}
