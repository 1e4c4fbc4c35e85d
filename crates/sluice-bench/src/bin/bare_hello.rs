//! The idle-memory baseline, and the upstream of the HTTP gateway's bench: axum on the same
//! tokio runtime as `sluice serve`, one route answering `hello`.
//!
//! Run: `bare-hello 127.0.0.1:7081 [WORK_US]`. With `WORK_US`, each request first keeps the
//! processor busy for that many microseconds: a stand-in for an API whose handler does
//! something (parses, checks, queries) on the same core, which a proxy in front shares.

use axum::routing::get;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7081".into());
    let work = Duration::from_micros(args.next().map_or(Ok(0), |w| w.parse())?);
    let app = axum::Router::new().route(
        "/",
        get(move || async move {
            let start = Instant::now();
            while start.elapsed() < work {
                std::hint::spin_loop();
            }
            "hello"
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
