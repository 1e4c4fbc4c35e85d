//! The JSON bodies of errors as a client receives them, pinned with `insta`: a changed code,
//! message or field shows up in review. Both backends compare against the same snapshots, so
//! the wire format cannot differ by store either.

use crate::harness::Backend;
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::json;

async fn error_bodies_keep_their_shape(b: Backend) {
    let s = server!(b);
    let (dave, bob, bot) = (
        s.token("dave").await,
        s.token("bob").await,
        s.token("ci-bot").await,
    );

    // 400: a duration that does not parse.
    let (st, e) = s.request(&dave, "orders-db-read", "soon", "x").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    insta::assert_json_snapshot!("400_invalid_duration", e);

    // 403: a principal the entitlement does not let ask.
    let (st, e) = s.request(&bot, "orders-db-read", "1h", "").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{e}");
    insta::assert_json_snapshot!("403_not_eligible", e);

    // 409: the same approver twice. The request id is random: redacted.
    let (st, v) = s.request(&dave, "orders-db-read", "1h", "").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/requests/{id}/approve");
    let (st, one) = s.post(&bob, &path, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{one}");
    let (st, e) = s.post(&bob, &path, json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    let e = serde_json::from_str::<serde_json::Value>(&e.to_string().replace(&id, "[id]"))
        .expect("json");
    insta::assert_json_snapshot!("409_already_voted", e);
}

backend_tests!(error_bodies_keep_their_shape);
