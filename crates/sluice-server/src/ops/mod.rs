//! Operations: what the handlers call. Load, decide in the domain, save with the audit entry.

pub mod access;
pub mod admin;
pub mod change_requests;
pub mod decide;
pub mod edge;
pub mod environments;
pub mod error;
pub mod flag_changes;
pub mod flags;
pub mod gateway;
pub mod guards;
pub mod http_gateway;
pub mod insight;
pub mod layers;
pub mod notifications;
pub mod readers;
pub mod schedule;
pub mod search;
pub mod sign_in;

pub use error::{Clash, Input, Missing, OpError};
