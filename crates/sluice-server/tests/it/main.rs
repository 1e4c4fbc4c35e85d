//! The server's integration suite: a real server on 127.0.0.1:0, a real SQLite file or
//! PostgreSQL schema, a real HTTP client, an injected clock. Every test runs on both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod authzen;
mod badinput;
mod deliver;
mod environments;
mod failclosed;
mod flags;
mod harness;
mod lifecycle;
mod ofrep;
mod proposals;
mod race;
mod sql;
mod tamper;
