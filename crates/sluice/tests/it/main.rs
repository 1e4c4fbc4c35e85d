//! The `sluice` binary end to end: a real `sluice serve` process on a free loopback port with a
//! temporary data directory, driven by the real CLI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod answers;
mod console;
mod copy;
mod crash;
mod deliver;
mod disk_full;
mod edge;
mod gateway;
mod guards;
mod harness;
mod http_gateway;
mod hygiene;
mod insight;
mod instances;
mod keys;
mod listen;
mod notify;
mod oidc;
mod outage;
mod policy;
mod private;
mod sdk;
mod search;
mod shutdown;
mod start;
mod story;
mod tables;
mod tail;
mod tls;
mod witness;
