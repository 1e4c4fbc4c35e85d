//! Benchmark harnesses for `BENCHMARKS.md`. Nothing here is part of the product.
//!
//! - `bench-writes`: audited writes (request + approve) through the real server and store.
//! - `bare-authzen`: an axum handler that parses an AuthZEN evaluation body and answers
//!   `{"decision":true}` — the HTTP ceiling `sluice serve` is compared with.
//! - `bare-hello`: an axum "hello" binary — the idle-memory baseline.
//! - `wrk/evaluation.lua`, `run-http.sh`: the loopback HTTP and memory measurements.
