use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum NotificationCommand {
    /// The outbox: each notification's sink, event, state and attempts, with totals.
    List {
        /// Only pending, delivered or dead ones.
        #[arg(long)]
        state: Option<String>,
        /// At most this many (default 100).
        #[arg(long)]
        limit: Option<i64>,
        /// Only ids after this one (the previous page's last).
        #[arg(long)]
        after: Option<String>,
    },
    /// One notification and every delivery attempt.
    Show {
        /// The notification id (`msg_…`).
        id: String,
    },
    /// Deliver a dead notification again, now.
    Retry {
        /// The notification id (`msg_…`).
        id: String,
    },
}
