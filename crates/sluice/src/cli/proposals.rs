//! `sluice proposals …`: four-eyes change requests.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ProposalCommand {
    /// Change requests, newest first, with the time they have left.
    List {
        /// Only this environment's.
        #[arg(long)]
        env: Option<String>,
        /// pending, approved, applied, denied, cancelled, stale, timed-out or refused.
        #[arg(long)]
        status: Option<String>,
    },
    /// One change request: the change, its votes and its outcome.
    Show {
        /// The proposal id (`cr-…`).
        id: String,
    },
    /// Approve someone else's proposal; the approval that meets the rule applies it.
    Approve {
        /// The proposal id (`cr-…`).
        id: String,
        /// A comment recorded with your vote.
        #[arg(long, short = 'c', default_value = "")]
        comment: String,
    },
    /// Deny a proposal (one deny ends it).
    Deny {
        /// The proposal id (`cr-…`).
        id: String,
        /// A comment recorded with your vote.
        #[arg(long, short = 'c', default_value = "")]
        comment: String,
    },
    /// Withdraw your own proposal before it applies.
    Cancel {
        /// The proposal id (`cr-…`).
        id: String,
    },
}
