//! Sluice's domain: principals, scopes, entitlements, the access-request state machine and
//! decisions.
//!
//! This crate does no I/O and never reads the wall clock: every function that depends on time
//! takes `now` (see [`clock`]). The store persists what these functions decide; the server
//! calls them.

pub mod access;
pub mod approvals;
pub mod change_request;
pub mod clock;
pub mod condition;
pub mod decision;
pub mod duration;
pub mod explain;
pub mod policy;
pub mod scope;
pub mod search;
pub mod stale;
pub mod token;

pub use clock::{Clock, ManualClock, SystemClock};
