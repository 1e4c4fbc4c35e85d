//! The idle-memory baseline: axum on the same tokio runtime as `sluice serve`, one route.
//!
//! Run: `bare-hello 127.0.0.1:7081`

use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7081".into());
    let app = axum::Router::new().route("/", get(|| async { "hello" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
