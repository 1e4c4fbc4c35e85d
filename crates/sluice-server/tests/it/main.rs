//! The server's integration suite: a real server on 127.0.0.1:0, a real SQLite file or
//! PostgreSQL schema, a real HTTP client, an injected clock. Every test runs on both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod authzen;
mod authzen_explain;
mod authzen_search;
mod authzen_todo;
mod badinput;
mod bounds;
mod broken_flags;
mod brute;
mod deliver;
mod edge;
mod environments;
mod error_bodies;
mod failclosed;
mod flags;
mod guards;
mod harness;
mod insight;
mod instances;
mod keys;
mod lifecycle;
mod modules;
mod notify;
mod nul;
mod ofrep;
mod openapi;
mod outage;
mod privilege;
mod proposals;
mod race;
mod schemathesis;
mod security;
mod slow;
mod spans;
mod sql;
mod standards;
mod static_context;
mod tamper;
mod timing;
mod unsigned_tail;
