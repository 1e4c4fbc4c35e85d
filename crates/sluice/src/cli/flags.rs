//! Command-line definitions for changing flags: the kill switch, targeting, expiring targets,
//! scheduled changes and staged rollouts.

use clap::{Args, Subcommand};
use std::path::PathBuf;

const AT_HELP: &str = "Apply at this time instead of now: RFC 3339 (`2026-12-01T09:00:00Z`; \
`2026-12-01T09:00Z` is fine too) or a duration from now (`+2h`, `+1h30m`). \
List scheduled changes with `sluice flags scheduled`, cancel with `sluice flags cancel-scheduled ID`.";

const BASE_HELP: &str = "The flag revision this change is based on (see `sluice flags get`); \
if the flag has changed since, the change is refused. Default: the current revision, read just before.";

/// Where a flag change goes, when, and on top of what.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    /// The flag key, e.g. `checkout-v2`.
    pub key: String,
    /// The environment, e.g. `production`.
    #[arg(long)]
    pub env: String,
    #[arg(long, help = AT_HELP)]
    pub at: Option<String>,
    #[arg(long, help = BASE_HELP)]
    pub base_revision: Option<i64>,
    /// Propose the change instead of making it (four eyes, no grant needed): it applies once
    /// the environment's approvers agree (`sluice proposals approve ID`); with --at, at that
    /// time once approved. Needs --reason.
    #[arg(long, requires = "reason")]
    pub propose: bool,
    /// Why, for the approvers of a --propose'd change.
    #[arg(long, short = 'r', requires = "propose")]
    pub reason: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FlagChangeCommand {
    /// Turn a flag on (its targeting and default variant apply again).
    ///
    /// In a protected environment this needs an active grant allowing `toggle` on
    /// `flag:ENV/KEY`; without one the error names an entitlement to request.
    Enable(ChangeArgs),
    /// Turn a flag off — the kill switch: every evaluation gets the flag's disabled answer.
    ///
    /// In a protected environment this needs an active grant allowing `toggle` on
    /// `flag:ENV/KEY` (e.g. `sluice access request flags-prod-operator --for 30m --reason …`,
    /// or `--break-glass` in an emergency). Without a grant, `--propose --reason …` asks the
    /// environment's approvers instead.
    Disable(ChangeArgs),
    /// Set the variant served when no targeting rule matches.
    SetDefault {
        #[command(flatten)]
        change: ChangeArgs,
        /// A variant the flag defines, e.g. `off`.
        variant: String,
    },
    /// Replace a flag's targeting rule (a JsonLogic rule, as in flagd) or remove it.
    SetTargeting {
        #[command(flatten)]
        change: ChangeArgs,
        /// A JSON file holding the targeting rule (the value of `targeting` in flagd).
        #[arg(long = "file", short = 'f', required_unless_present = "clear")]
        file: Option<PathBuf>,
        /// Remove the targeting rule: everyone gets the default variant.
        #[arg(long, conflicts_with = "file")]
        clear: bool,
    },
    /// Create a flag, or replace its whole definition (validated like an import).
    Put {
        #[command(flatten)]
        change: ChangeArgs,
        /// A JSON file with one flagd flag definition (`state`, `variants`, `defaultVariant`, …).
        #[arg(long = "file", short = 'f')]
        file: PathBuf,
        /// Create the environment if it does not exist (administrators; audited).
        #[arg(long, conflicts_with = "at")]
        create_env: bool,
    },
    /// Delete a flag (needs `delete` in a protected environment).
    Delete(ChangeArgs),
    /// Pin targeting keys to a variant for a while (an expiring target).
    ///
    /// From the moment it expires no evaluation serves it. Needs `target` on `flag:ENV/KEY`
    /// in a protected environment, or `target-self` to pin only yourself (`--me`).
    Target {
        /// The flag key, e.g. `checkout-v2`.
        key: String,
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// The variant to serve them, e.g. `on`.
        #[arg(long)]
        variant: String,
        /// Targeting keys, comma-separated: `alice,bob`.
        #[arg(
            long,
            value_delimiter = ',',
            required_unless_present = "me",
            num_args = 1..
        )]
        keys: Vec<String>,
        /// Pin only yourself (your principal name as the targeting key; `target-self` suffices).
        #[arg(long, conflicts_with = "keys")]
        me: bool,
        /// A name for the group of keys, e.g. "internal testers".
        #[arg(long)]
        group: Option<String>,
        /// How long, e.g. `30m`, `2h`.
        #[arg(long = "for")]
        duration: String,
    },
    /// Expiring targets still in force on a flag, soonest to expire first.
    Targets {
        /// The flag key, e.g. `checkout-v2`.
        key: String,
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
    },
    /// Remove an expiring target before its time.
    Untarget {
        /// The flag key, e.g. `checkout-v2`.
        key: String,
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// The target id, as printed by `sluice flags target` (`tgt-…`).
        target_id: String,
    },
    /// Scheduled flag changes, soonest first (pending ones unless --all).
    Scheduled {
        /// Only this environment's.
        #[arg(long)]
        env: Option<String>,
        /// Also applied, refused and cancelled ones.
        #[arg(long)]
        all: bool,
    },
    /// Cancel a pending scheduled change (yours, or any as an administrator).
    CancelScheduled {
        /// The id printed when it was scheduled (`sch-…`).
        id: String,
    },
}

/// A flag and its environment.
#[derive(Debug, Clone, Args)]
pub struct FlagRef {
    /// The flag key, e.g. `new-search`.
    pub key: String,
    /// The environment, e.g. `production`.
    #[arg(long)]
    pub env: String,
}

/// What a guard's breach does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BreachArg {
    Pause,
    Rollback,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a staged rollout of a variant: a growing share of users, each step held for a while.
    ///
    /// Sluice advances the steps by itself. Buckets are sticky: a user in at 10% stays in at 50%.
    /// Needs `edit-rollout` on `flag:ENV/KEY` in a protected environment. Replaces any earlier
    /// rollout of the flag.
    ///
    /// Examples:
    ///   sluice rollout start new-search --env production --variant on --steps 1,10,50,100 --every 30m
    ///   sluice rollout start new-search --env production --variant on --step 5:1h --step 25:2h --step 100
    ///   sluice rollout start new-search --env production --variant on --steps 1,10,50,100 --every 30m \
    ///     --guard 'sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m])) < 0.01' \
    ///     --min-sample 'sum(increase(http_requests_total[1m])) >= 100' --on-breach rollback
    #[command(verbatim_doc_comment)]
    Start {
        #[command(flatten)]
        flag: FlagRef,
        /// The variant rolled out, e.g. `on`.
        #[arg(long)]
        variant: String,
        /// Percentages, comma-separated, each held for --every (e.g. `1,10,50,100`);
        /// `PERCENT:HOLD` gives one step its own hold (`1:15m,10,50,100`).
        #[arg(long, value_delimiter = ',', conflicts_with = "step")]
        steps: Vec<String>,
        /// One step as `PERCENT:HOLD` (e.g. `10:30m`), repeatable, in order; the last step needs
        /// no hold.
        #[arg(long)]
        step: Vec<String>,
        /// How long each step is held unless it says otherwise, e.g. `30m`.
        #[arg(long)]
        every: Option<String>,
        /// A guard, `QUERY OP NUMBER` (OP one of <, <=, >, >=), a PromQL condition that must
        /// hold on the server's Prometheus (sluice serve --prometheus-url); repeatable. Each
        /// next step starts only when every guard passes; a breach pauses or rolls back.
        #[arg(long)]
        guard: Vec<String>,
        /// What a breach does, `pause` or `rollback`: once for every guard, or once per guard
        /// in order. Default pause.
        #[arg(long, value_enum)]
        on_breach: Vec<BreachArg>,
        /// The least sample for a guard's reading to count, `QUERY OP NUMBER` (e.g.
        /// `sum(increase(http_requests_total[1m])) >= 100`): once for every guard, or once per
        /// guard in order (`-` for none). Until it holds, the rollout holds its step.
        #[arg(long)]
        min_sample: Vec<String>,
    },
    /// Where a rollout stands: state, current step and share, the next change and when.
    Status(FlagRef),
    /// Hold the rollout at its current step (the paused time shifts the rest of the schedule).
    Pause(FlagRef),
    /// Continue a paused rollout.
    Resume(FlagRef),
    /// Stop the rollout: nobody gets its variant from it any more (targeting applies again).
    Rollback(FlagRef),
}
