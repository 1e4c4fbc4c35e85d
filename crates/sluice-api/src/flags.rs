//! Flags: environments, reading and changing flags, targets, rollouts, scheduled changes, and
//! change requests ("four-eyes" flag changes, `/v1/proposals`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// One change to one flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FlagChange {
    /// Create the flag, or replace its whole definition.
    Put {
        #[schema(value_type = Object)]
        definition: Value,
    },
    /// Turn the flag on or off (the kill switch).
    SetState {
        enabled: bool,
    },
    SetDefault {
        variant: String,
    },
    /// Replace the targeting rule (`null` removes it).
    SetTargeting {
        #[schema(value_type = Object)]
        targeting: Option<Value>,
    },
    SetMetadata {
        #[schema(value_type = Object)]
        metadata: serde_json::Map<String, Value>,
    },
    Delete,
}

// No doc comment: the schema in `/openapi.json` has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeRequestStatus {
    /// Waiting for approvals.
    Pending,
    /// Approved; waiting for its `apply_at`.
    Approved,
    Applied,
    Denied,
    Cancelled,
    /// The flag changed underneath it: its base revision no longer matched.
    Stale,
    TimedOut,
    /// Could not be applied for another reason (e.g. the change is no longer valid, or the
    /// approvals no longer meet the rule when its time came).
    Refused,
}

impl ChangeRequestStatus {
    /// The wire spelling, e.g. `timed-out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Applied => "applied",
            Self::Denied => "denied",
            Self::Cancelled => "cancelled",
            Self::Stale => "stale",
            Self::TimedOut => "timed-out",
            Self::Refused => "refused",
        }
    }
}

/// One approver's vote on a change request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeVote {
    pub approver: String,
    pub approve: bool,
    pub comment: String,
    pub at: DateTime<Utc>,
}

/// A change request as shown: its status is the one at the time of asking.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeRequestView {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: FlagChange,
    pub base_revision: Option<i64>,
    pub apply_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub proposer: String,
    /// `pending`, `approved` (waiting for `apply_at`), `applied`, `denied`, `cancelled`,
    /// `stale`, `timed-out` or `refused`.
    pub status: ChangeRequestStatus,
    pub created_at: DateTime<Utc>,
    pub pending_until: DateTime<Utc>,
    pub votes: Vec<ChangeVote>,
    /// Approvals that count under the environment's current rule.
    pub approvals: usize,
    /// How many the current rule requires (`None`: the environment has no rule any more).
    pub required: Option<u32>,
    /// Who may approve under the current rule (principals and `group:` names), so a proposer
    /// learns it without reading the policy.
    #[serde(default)]
    pub approvers: Vec<String>,
    pub applied_revision: Option<i64>,
    pub result: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<String>,
}

/// A proposed flag change. It applies when the environment's approval rule is met.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    pub change: FlagChange,
    /// The flag revision this change is based on; absent only when creating the flag. If the
    /// flag has moved by the time the change would apply, the proposal becomes `stale`.
    pub base_revision: Option<i64>,
    /// Apply at this time (RFC 3339) once approved, instead of at the approval.
    pub apply_at: Option<DateTime<Utc>>,
    /// Why, for the approvers.
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VoteComment {
    #[serde(default)]
    pub comment: String,
}

/// `POST /v1/environments/{env}/flags/{key}/changes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequestBody {
    pub change: FlagChange,
    /// The flag revision this change is based on; absent only when creating the flag.
    /// A stale revision is refused with 409 so nobody overwrites a change unseen.
    pub base_revision: Option<i64>,
    /// Apply at this time (RFC 3339) instead of now: a scheduled change.
    pub at: Option<DateTime<Utc>>,
    /// Create the environment if it does not exist (administrators, changes made now;
    /// audited as `environment.created`). Otherwise an environment that the policy does not
    /// declare and that holds no flags is refused with 404 `unknown_environment`.
    #[serde(default)]
    pub create_env: bool,
}

/// The result of a flag change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlagChanged {
    pub environment: String,
    pub key: String,
    /// The flag's new revision (0: deleted).
    pub revision: i64,
    #[schema(value_type = Object)]
    pub definition: Option<Value>,
}

/// Where a scheduled change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScheduledStatus {
    Pending,
    Applied,
    Refused,
    Cancelled,
}

impl ScheduledStatus {
    /// The wire spelling, e.g. `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Refused => "refused",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a scheduled change will do, and the revision it was based on.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduledFlagChange {
    pub change: FlagChange,
    pub base_revision: Option<i64>,
}

/// A flag change to apply at a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScheduledView {
    pub id: String,
    pub environment: String,
    pub key: String,
    pub change: ScheduledFlagChange,
    pub apply_at: DateTime<Utc>,
    pub created_by: String,
    /// `pending`, `applied`, `refused` or `cancelled`.
    pub status: ScheduledStatus,
    pub result: Option<String>,
}

/// `POST /v1/environments/{env}/flags/{key}/targets`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTarget {
    pub variant: String,
    /// Targeting keys to pin (your own only, with `target-self`).
    pub keys: Vec<String>,
    /// A name for the group of keys, e.g. `internal testers`.
    pub group: Option<String>,
    /// How long, e.g. `2h`; the server computes the expiry.
    #[serde(rename = "for")]
    pub duration: String,
}

/// An expiring target: keys pinned to a variant until a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetView {
    pub id: String,
    pub variant: String,
    pub keys: Vec<String>,
    pub group: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
}

/// A rollout step as people write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// Share of users, in percent (0–100, two decimals).
    pub percent: f64,
    /// How long to hold this step, e.g. `30m` (ignored for the last step).
    pub hold: String,
}

/// `PUT /v1/environments/{env}/flags/{key}/rollout`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRollout {
    pub variant: String,
    pub steps: Vec<StepInput>,
    /// Guards: each step after the first starts only once every guard passes on a fresh
    /// reading of the server's Prometheus; a breach pauses or rolls back by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<GuardInput>,
}

/// What a guard does on a breach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnBreach {
    #[default]
    Pause,
    Rollback,
}

impl OnBreach {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Rollback => "rollback",
        }
    }
}

/// A guard on a rollout, as people write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardInput {
    /// `QUERY OP NUMBER` that must hold, OP one of `<`, `<=`, `>`, `>=`, e.g.
    /// `sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m])) < 0.01`.
    pub condition: String,
    /// `QUERY OP NUMBER` that must hold for a reading to count, e.g.
    /// `sum(increase(http_requests_total[1m])) >= 100`; until it does, the rollout holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sample: Option<String>,
    /// `pause` (the default) or `rollback`.
    #[serde(default)]
    pub on_breach: OnBreach,
}

/// How a guard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GuardState {
    /// Not read yet by this server.
    Unread,
    Passing,
    Breached,
    /// Could not be evaluated (see `reason`): the rollout holds its step.
    Unknown,
}

impl GuardState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unread => "unread",
            Self::Passing => "passing",
            Self::Breached => "breached",
            Self::Unknown => "unknown",
        }
    }
}

/// A guard and its last reading.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GuardStatus {
    /// The query that is compared.
    pub query: String,
    /// `<`, `<=`, `>` or `>=`.
    pub comparison: String,
    pub threshold: f64,
    /// The minimum sample, as written (`QUERY >= N`).
    pub min_sample: Option<String>,
    pub on_breach: OnBreach,
    pub state: GuardState,
    /// The query's value at the last reading, when it gave one number.
    pub value: Option<f64>,
    /// The sample query's value at the last reading.
    pub sample: Option<f64>,
    /// Why the guard could not be evaluated (state `unknown`).
    pub reason: Option<String>,
    /// When this server last read it.
    pub read_at: Option<DateTime<Utc>>,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutState {
    Running,
    Paused,
    RolledBack,
    /// Reached 100%: the flag's definition serves the variant now.
    Completed,
}

impl RolloutState {
    /// The wire spelling, e.g. `rolled-back`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::RolledBack => "rolled-back",
            Self::Completed => "completed",
        }
    }
}

/// A rollout and where it stands now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutStatus {
    pub environment: String,
    pub key: String,
    pub variant: String,
    /// `running`, `paused`, `rolled-back` or `completed` (reached 100%: the flag's definition
    /// serves the variant now).
    pub state: RolloutState,
    pub steps: Vec<f64>,
    /// 0-based index into `steps` of the current step (the CLI and the audit trail number
    /// steps from 1), if the rollout is in force (for a completed one, the step
    /// at 100% it completed at).
    pub current_step: Option<usize>,
    pub current_percent: f64,
    pub next_change_at: Option<DateTime<Utc>>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The flag's revision that serves the variant as its default (completed rollouts).
    pub completed_revision: Option<i64>,
    /// Why completing failed: the rollout keeps serving 100% until someone changes the flag
    /// or starts again.
    pub completion_error: Option<String>,
    /// The rollout's guards with their last readings (none: the clock alone advances it).
    #[serde(default)]
    pub guards: Vec<GuardStatus>,
    /// Why a running guarded rollout holds its step past the scheduled change (a guard
    /// cannot be evaluated), if it does.
    #[serde(default)]
    pub held: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentView {
    pub name: String,
    /// Moves on every change to the environment's flags.
    pub revision: i64,
    pub flags: usize,
    /// Changing a flag here needs an active grant.
    pub protected: bool,
}

/// How an import treats flags that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// All or nothing: the first invalid thing rejects the document, naming its JSON path.
    #[default]
    Strict,
    /// As flagd loads files: the document is stored whole, and each flag that fails strict
    /// validation is reported and answers `PARSE_ERROR` wherever its fault is reached.
    Lenient,
}

/// A flag that does not pass strict validation, in a lenient import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BrokenFlag {
    /// The flag's key; `None` when the fault is in set-level parts (`$evaluators`).
    pub key: Option<String>,
    /// JSON path of the fault in the submitted document.
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub environment: String,
    pub revision: i64,
    pub flags: usize,
    /// `strict` or `lenient`.
    pub mode: ImportMode,
    /// Lenient imports: the flags that fail strict validation (they answer `PARSE_ERROR`
    /// where their fault is reached). Always empty for a strict import.
    pub broken: Vec<BrokenFlag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlagView {
    pub environment: String,
    pub key: String,
    pub revision: i64,
    /// The flagd definition.
    #[schema(value_type = Object)]
    pub definition: Value,
    /// Expiring targets still in force, soonest to expire first.
    pub targets: Vec<TargetView>,
}

/// How an environment's flags were evaluated over OFREP (`GET /v1/environments/{env}/evaluations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsView {
    pub environment: String,
    /// Counted from this day on (UTC midnight), or from the start when absent.
    pub since: Option<DateTime<Utc>>,
    /// Every flag the environment defines, by key, evaluated or not.
    pub flags: Vec<FlagEvaluations>,
    /// The client keys that evaluated in the environment, most recent first (administrators
    /// and auditors only; empty for others).
    pub clients: Vec<ClientKeyEvaluations>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FlagEvaluations {
    pub key: String,
    pub evaluations: i64,
    /// `null` when the flag was never evaluated (in the range).
    pub last_evaluated_at: Option<DateTime<Utc>>,
    /// By variant and reason, most evaluated first.
    pub answers: Vec<AnswerCount>,
}

/// Evaluations of one flag answered with one variant for one reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnswerCount {
    /// `null` when the answer named no variant (disabled, an error, no default).
    pub variant: Option<String>,
    /// The OpenFeature reason (`STATIC`, `TARGETING_MATCH`, `SPLIT`, `DISABLED`, `DEFAULT`, `ERROR`).
    pub reason: String,
    pub count: i64,
    pub last_evaluated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClientKeyEvaluations {
    /// The client key's token id (as `sluice tokens list` shows it).
    pub token_id: String,
    pub evaluations: i64,
    pub last_evaluated_at: DateTime<Utc>,
}

/// Flags that look finished (`GET /v1/environments/{env}/stale`), each with what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StaleView {
    pub environment: String,
    /// How far back it looked.
    pub days: u32,
    /// One row per finding, by flag key (a flag can have several).
    pub flags: Vec<StaleFlag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StaleFlag {
    pub key: String,
    /// `not-evaluated`, `one-variant`, `past-removal-date` or `bad-removal-date`.
    pub kind: String,
    /// When the flag was last evaluated, if ever.
    pub last_evaluated_at: Option<DateTime<Utc>>,
    /// `one-variant`: the variant everyone got (`null`: none, the flag was off).
    pub variant: Option<String>,
    /// `past-removal-date`: when it was due (its metadata's `expectedRemoval`).
    pub due: Option<DateTime<Utc>>,
    /// What to do about it.
    pub suggestion: String,
}
