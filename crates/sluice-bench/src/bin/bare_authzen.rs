//! The HTTP ceiling for decisions: parses the same AuthZEN evaluation body `sluice serve`
//! takes and answers a constant `{"decision":true}`. No auth, no snapshot, no audit.
//!
//! Run: `bare-authzen 127.0.0.1:7082`

use axum::routing::post;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[allow(dead_code, reason = "parsed like the real body, then ignored")]
struct Entity {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    #[serde(default)]
    properties: Value,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "parsed like the real body, then ignored")]
struct ActionRef {
    name: Option<String>,
    #[serde(default)]
    properties: Value,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "parsed like the real body, then ignored")]
struct EvaluationRequest {
    subject: Option<Entity>,
    action: Option<ActionRef>,
    resource: Option<Entity>,
    #[serde(default)]
    context: Value,
}

async fn evaluation(Json(body): Json<EvaluationRequest>) -> Json<Value> {
    std::hint::black_box(&body);
    Json(json!({"decision": true}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7082".into());
    let app = axum::Router::new().route("/access/v1/evaluation", post(evaluation));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
