//! Notifications: signed webhooks and chat messages for what the audit trail records, and
//! reminders. Delivery goes through the transactional outbox: the rows are written with the
//! audit entries ([`events::Router`], called by `WriteTx::commit`), and [`dispatch::run`]
//! delivers them with retries, a lease per claim, and dead-lettering after a limit.

pub mod config;
pub mod dispatch;
pub mod events;
pub mod remind;
pub mod sign;
pub mod slack;

pub use config::{NotifyConfig, NotifyFile, Sink, SinkKind};
