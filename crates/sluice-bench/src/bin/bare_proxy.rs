//! The HTTP gateway's ceiling: a reverse proxy on the same stack (axum server, reqwest client
//! with the gateway's settings) that forwards every request to one upstream and does nothing
//! else — no token, no decision, no record. What the gateway adds is measured against it.
//!
//! Run: `bare-proxy 127.0.0.1:7192 http://127.0.0.1:7191`

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let sent = up
        .client
        .request(parts.method, format!("{}{path}", up.base))
        .body(body)
        .send()
        .await;
    let Ok(resp) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let Ok(bytes) = resp.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7192".into());
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7191".into());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(Upstream { base, client });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
