//! The HTTP ceiling for OFREP: parses the same evaluation body `sluice serve` takes
//! (`{"context": {...}}`) and answers constants — a single-flag OFREP answer, a bulk answer
//! (the bytes of a file, e.g. Sluice's own bulk answer for the same flags), and 304 when
//! `If-None-Match` is sent. No auth, no snapshot, no evaluation.
//!
//! Run: `bare-ofrep 127.0.0.1:7083 [BULK_BODY_FILE [SINGLE_BODY_FILE]]`

use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[allow(dead_code, reason = "parsed like the real body, then ignored")]
struct EvaluationRequest {
    #[serde(default)]
    context: Option<Value>,
}

const SINGLE: &[u8] =
    br#"{"key":"targeted","value":true,"reason":"TARGETING_MATCH","variant":"on","metadata":{}}"#;

fn parse(body: &[u8]) -> Option<EvaluationRequest> {
    serde_json::from_slice(body).ok()
}

fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7083".into());
    let bulk = match args.next() {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from_static(br#"{"flags":[]}"#),
    };
    let single = match args.next() {
        Some(path) => Bytes::from(std::fs::read(path)?),
        None => Bytes::from_static(SINGLE),
    };
    let app = axum::Router::new()
        .route(
            "/ofrep/v1/evaluate/flags/{key}",
            post(move |body: Bytes| async move {
                match parse(&body) {
                    Some(req) => {
                        std::hint::black_box(&req);
                        json(single)
                    }
                    None => StatusCode::BAD_REQUEST.into_response(),
                }
            }),
        )
        .route(
            "/ofrep/v1/evaluate/flags",
            post(move |headers: HeaderMap, body: Bytes| async move {
                match parse(&body) {
                    Some(req) => {
                        std::hint::black_box(&req);
                        if headers.contains_key(header::IF_NONE_MATCH) {
                            (StatusCode::NOT_MODIFIED, [(header::ETAG, "\"1-bare\"")])
                                .into_response()
                        } else {
                            let mut r = json(bulk);
                            r.headers_mut().insert(
                                header::ETAG,
                                header::HeaderValue::from_static("\"1-bare\""),
                            );
                            r
                        }
                    }
                    None => StatusCode::BAD_REQUEST.into_response(),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
