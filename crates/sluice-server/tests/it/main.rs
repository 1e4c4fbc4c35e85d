//! The server's integration suite: a real server on 127.0.0.1:0, a real SQLite file or
//! PostgreSQL schema, a real HTTP client, an injected clock. Every test runs on both backends.

mod harness;
mod lifecycle;
