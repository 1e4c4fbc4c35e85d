//! What an operation refuses, as values. `ops` says *what* went wrong (and, in its message,
//! in words for people); only [`crate::error`] decides the HTTP status and the stable code
//! each one is answered with.

use sluice_core::access::AccessError;
use sluice_core::change_request::ChangeRequestError;
use sluice_core::policy::PolicyError;
use sluice_eval::layers::RolloutError;
use sluice_store::StoreError;

/// A refusal by an operation's rules, or a failure below them.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    ChangeRequest(#[from] ChangeRequestError),
    /// A policy file that does not load.
    #[error(transparent)]
    Policy(PolicyError),
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
    /// What the operation names does not exist.
    #[error(transparent)]
    NotFound(#[from] Missing),
    /// A flag write named an environment that neither the policy declares nor holds flags;
    /// `known` lists those that exist, in words.
    #[error(
        "no environment `{env}`: {known}. Check the name; to start a new one, declare it \
         under `environments:` in the policy, or (administrators) pass --create-env \
         (`create_env=true`)"
    )]
    UnknownEnvironment { env: String, known: String },
    /// The caller may not do this; the message says what would allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Part of the input is not acceptable: which part, and why in words.
    #[error("{reason}")]
    Invalid { input: Input, reason: String },
    /// The operation collides with the state of what it names.
    #[error(transparent)]
    Conflict(#[from] Clash),
    /// A sign-in, refresh or sign-out through the identity provider did not happen.
    #[error(transparent)]
    SignIn(#[from] crate::oidc::SignInError),
    /// The store failed (unavailable, or a write collided with another).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that cannot happen with a sound store did: the detail is for the log.
    #[error("internal error; the server log has details")]
    Internal(String),
}

impl OpError {
    /// Bad `input`, `reason` in words.
    pub fn invalid(input: Input, reason: impl Into<String>) -> Self {
        OpError::Invalid {
            input,
            reason: reason.into(),
        }
    }

    /// A failure of the server or its store rather than a refusal of the operation (a write
    /// that collided is a refusal: trying again may succeed). Background work returns these
    /// instead of recording them as an operation's outcome.
    pub fn is_failure(&self) -> bool {
        match self {
            OpError::Internal(_) => true,
            OpError::Store(e) => !matches!(e, StoreError::Conflict(_) | StoreError::Stale(_)),
            _ => false,
        }
    }
}

/// Things an operation looks up, by what names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("no grant {0}")]
    Grant(String),
    #[error("no request {0}")]
    Request(String),
    #[error("no token {0}")]
    Token(String),
    #[error("no change request {0}; `GET /v1/proposals` lists them")]
    ChangeRequest(String),
    #[error("no principal `{0}`; declare it in the policy file")]
    Principal(String),
    /// A flag a change needs to exist (any change but a whole definition).
    #[error("no flag `{0}`; create it with a full definition")]
    FlagToChange(String),
    #[error("no environment `{0}`")]
    Environment(String),
    #[error("no flag `{key}` in `{env}`")]
    Flag { env: String, key: String },
    #[error("no target {id} on `{key}`")]
    Target { id: String, key: String },
    /// The rollout of a flag, named by its key alone.
    #[error("flag `{0}` has no rollout")]
    Rollout(String),
    #[error("flag `{key}` in `{env}` has no rollout")]
    RolloutIn { env: String, key: String },
    /// A gateway session that is not (or no longer) running anywhere.
    #[error("no live gateway session {0}")]
    LiveSession(String),
    #[error("no gateway database {0} declared through the API")]
    ApiDatabase(String),
    #[error("no HTTP service {0} declared through the API")]
    ApiService(String),
    /// A call through the HTTP gateway that is not (or no longer) in progress here.
    #[error(
        "no call {0} in progress on this instance; `sluice gateway sessions` lists those that are"
    )]
    LiveCall(String),
    #[error("no notification {0}; `sluice notifications list` lists them")]
    Notification(String),
}

/// What an operation collides with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Clash {
    /// A scheduled change that is gone or already settled.
    #[error("scheduled change {0} does not exist or is no longer pending")]
    NotPending(String),
    /// The policy in force is no longer the one a diff was shown against.
    #[error(
        "the policy in force changed since the diff you saw (sha256 {base}, now {now}); run apply again"
    )]
    PolicyChanged { base: String, now: String },
    #[error("token {0} is already revoked")]
    AlreadyRevoked(String),
    /// A gateway database of this instance's config file, which the API neither replaces
    /// nor removes.
    #[error(
        "db:{name} is declared in this instance's config file; {} it there",
        if *removing { "remove" } else { "change" }
    )]
    DeclaredInConfig { name: String, removing: bool },
    /// An HTTP service of this instance's config file, which the API neither replaces nor
    /// removes.
    #[error(
        "http:{name} is declared in this instance's config file; {} it there",
        if *removing { "remove" } else { "change" }
    )]
    ServiceInConfig { name: String, removing: bool },
}

/// Which part of a request's input is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The first administrator's token given at start.
    AdminToken,
    /// A stored scheduled change that does not read as a change any more.
    Change,
    /// The request body could not be read.
    Body,
    /// A batch (e.g. of AuthZEN evaluations) with more items than allowed.
    BatchSize,
    /// A gateway database declaration.
    Database,
    /// A duration, e.g. longer than allowed.
    Duration,
    /// A client key's evaluation context.
    Context,
    /// JSON nested deeper than the server reads.
    Depth,
    /// A JSON array with more items than the server reads.
    ListLength,
    /// An environment name.
    Environment,
    /// A flag definition, after a change.
    Flag,
    /// A whole flagd document to import.
    Flags,
    /// An import mode other than strict or lenient.
    ImportMode,
    /// A body that is not JSON, or not of the expected shape.
    Json,
    /// Targeting keys (too few or too many).
    Keys,
    /// An environment a client key must be bound to.
    MissingEnvironment,
    /// A NUL character (U+0000) in any string.
    Nul,
    /// A change operation's name.
    Op,
    /// A query string that does not read as the route's parameters.
    Query,
    /// The request as a whole, or a part without a code of its own.
    Request,
    /// A scope pattern.
    Scope,
    /// An HTTP gateway service declaration.
    Service,
    /// A status to filter by.
    Status,
    /// A JSON string longer than the server reads.
    StringLength,
    /// A subject, action or resource name longer than names may be.
    NameLength,
    /// A search's page token that this server did not give, or gave for another search.
    PageToken,
    /// A target asked for longer than the grant that allows it has left.
    TargetOutlivesGrant,
    /// A time, e.g. one that should be in the future.
    Time,
    /// A token kind.
    TokenKind,
    /// A field the request type does not have.
    UnknownField,
    /// A variant the flag does not define.
    Variant,
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
