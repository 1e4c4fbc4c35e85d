//! How the audit trail's head is kept signed and witnessed: options that the
//! [`App`](crate::app::App) holds and [`crate::checkpointer`] acts on, kept apart from both so
//! neither imports the other for them.

use std::path::PathBuf;
use std::time::Duration;

/// How the trail's head is kept signed and witnessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOptions {
    /// Sign after every commit (coalescing) and once at start. Off: only the periodic
    /// `checkpoint_interval` timer and the last checkpoint at shutdown.
    pub sign_commits: bool,
    /// The least time between two checkpoints signed after commits: under load, commits
    /// within it share the next one.
    pub min_gap: Duration,
    /// `audit verify` refuses a trail whose head is unsigned while its newest signed
    /// checkpoint is older than this (`unsigned_tail`); `None`: never.
    pub unsigned_bound: Option<Duration>,
    /// Every checkpoint this instance signs is appended here (JSON Lines, fsynced).
    pub witness_file: Option<PathBuf>,
    /// Every checkpoint this instance signs is POSTed here as JSON (the newest one, when
    /// they come faster than the endpoint answers).
    pub witness_url: Option<String>,
}

/// Signs within a few milliseconds of a commit; see [`DEFAULT_UNSIGNED_BOUND`].
impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            sign_commits: true,
            min_gap: Duration::ZERO,
            unsigned_bound: Some(DEFAULT_UNSIGNED_BOUND),
            witness_file: None,
            witness_url: None,
        }
    }
}

impl AuditOptions {
    /// Nothing signed but what the periodic timer and the caller sign, and no bound: for
    /// tests that place checkpoints themselves.
    #[must_use]
    pub fn manual() -> Self {
        AuditOptions {
            sign_commits: false,
            unsigned_bound: None,
            ..AuditOptions::default()
        }
    }
}

/// The default bound on the unsigned tail's age: ten seconds. A running server signs every
/// commit within milliseconds (a second at most with `min_gap`), and after a crash signs the
/// head before it serves; ten seconds leaves room for a slow disk or a busy database while
/// keeping the window in which the newest entries can be removed unseen (without a witness)
/// short.
pub const DEFAULT_UNSIGNED_BOUND: Duration = Duration::from_secs(10);
