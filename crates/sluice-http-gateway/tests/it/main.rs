//! The HTTP gateway's integration suite: a real Sluice server and HTTP gateway on
//! 127.0.0.1:0 over a real SQLite file, a real upstream (an axum app on 127.0.0.1:0 that
//! records every request it receives), and a real client (reqwest).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod bounds;
mod brute;
mod calllog;
mod calls;
mod curl;
mod declare;
mod expiry;
mod failclosed;
mod harness;
mod headers;
mod live;
mod refunds;
mod websocket;
