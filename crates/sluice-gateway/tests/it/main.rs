//! The gateway's integration suite: a real Sluice server and gateway on 127.0.0.1:0 over a
//! real SQLite file, a real PostgreSQL upstream (`SLUICE_TEST_DATABASE_URL`) with SCRAM
//! roles, and real clients (`tokio-postgres`, `psql`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod admission;
mod audit;
mod declare;
mod expiry;
mod harness;
mod passwords;
mod protocol;
