//! What an operation refuses, as values. `ops` says *what* went wrong; only
//! [`crate::error`] decides the HTTP status and the stable code each one is answered with.

use sluice_core::access::AccessError;
use sluice_core::change_request::ChangeRequestError;
use sluice_eval::layers::RolloutError;

/// A refusal by an operation's rules.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    ChangeRequest(#[from] ChangeRequestError),
    /// A rollout transition was refused on flag `key` of `environment`.
    #[error("{}", rollout_message(environment, key, error))]
    Rollout {
        environment: String,
        key: String,
        error: RolloutError,
    },
    /// The flag is not at the revision the change was based on.
    #[error("{}", stale_message(environment, key, *current, *base, *proposal))]
    StaleRevision {
        environment: String,
        key: String,
        current: Option<i64>,
        base: Option<i64>,
        /// A change request (which is proposed again) rather than a direct change (retried).
        proposal: bool,
    },
}

fn rollout_message(env: &str, key: &str, e: &RolloutError) -> String {
    match e {
        RolloutError::Completed { variant } => format!(
            "the rollout of `{variant}` completed: it is the flag's default variant now; \
             change the flag itself to undo it (e.g. sluice flags set-default {key} \
             VARIANT --env {env})"
        ),
        e => e.to_string(),
    }
}

fn stale_message(
    env: &str,
    key: &str,
    current: Option<i64>,
    base: Option<i64>,
    proposal: bool,
) -> String {
    let again = if proposal { "propose again" } else { "retry" };
    match (current, base) {
        (Some(c), Some(b)) => {
            format!(
                "flag `{key}` is at revision {c}, not {b}: someone changed it; reload and {again}"
            )
        }
        (Some(c), None) => format!(
            "flag `{key}` already exists (revision {c}); pass its base revision to change it"
        ),
        (None, _) => format!("flag `{key}` does not exist in `{env}`"),
    }
}
