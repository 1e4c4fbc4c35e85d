//! Holes found by probing from outside: a principal removed from the policy, and names built to
//! make the pattern matcher work for a long time.

use crate::harness::{ADMIN_TOKEN, POLICY};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::json;

/// The test policy without erin (she was a user and an engineer).
fn policy_without_erin() -> String {
    let p = POLICY.replace("erin, ", "");
    assert!(!p.contains("erin"), "erin is gone from the policy");
    p
}

async fn a_principal_removed_from_the_policy_loses_grants_and_tokens(b: crate::harness::Backend) {
    let s = server!(b);
    let erin = s.token("erin").await;
    let (st, v) = s
        .post(
            &erin,
            "/v1/requests",
            json!({"entitlement": "flags-prod-operator", "duration": "1h", "reason": "INC-9", "break_glass": true}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let grant = v["id"].as_str().unwrap().to_owned();
    // A pending request too: it must not survive either.
    let (st, v) = s.request(&erin, "orders-db-read", "1h", "look").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let pending = v["id"].as_str().unwrap().to_owned();
    assert!(
        s.allowed("erin", "toggle", "flag", "production/checkout-v2")
            .await
    );

    // The dry run says what will happen to her.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/policy",
            json!({"source": policy_without_erin(), "dry_run": true}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.to_string().contains("erin is not declared"), "{v}");

    s.apply(&policy_without_erin()).await;
    assert!(
        !s.allowed("erin", "toggle", "flag", "production/checkout-v2")
            .await,
        "default deny for a principal the policy does not declare"
    );
    let (st, _) = s.get(&erin, "/v1/whoami").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Recorded, in the audit trail, as ended by the policy change.
    let revoked = s.audit_actions("access.revoked").await;
    assert!(
        revoked.iter().any(|e| e["subject_id"] == json!(grant)
            && e["details"]["end_reason"]
                .as_str()
                .is_some_and(|r| r.contains("no longer declared"))),
        "{revoked:?}"
    );
    let cancelled = s.audit_actions("access.cancelled").await;
    assert!(
        cancelled.iter().any(|e| e["subject_id"] == json!(pending)),
        "{cancelled:?}"
    );
    let (_, req) = s.get(ADMIN_TOKEN, &format!("/v1/requests/{grant}")).await;
    assert_eq!(req["status"], "revoked", "{req}");

    // Across a restart, and when she is declared again: the old token and grant stay dead.
    let s = s.restart().await;
    assert!(
        !s.allowed("erin", "toggle", "flag", "production/checkout-v2")
            .await
    );
    s.apply(POLICY).await;
    assert!(
        !s.allowed("erin", "toggle", "flag", "production/checkout-v2")
            .await
    );
    let (st, _) = s.get(&erin, "/v1/whoami").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "her old token was revoked");
    assert_eq!(s.verify().await["ok"], json!(true));
}

async fn a_name_longer_than_the_limit_is_refused_clearly(b: crate::harness::Backend) {
    let s = server!(b);
    // Over the 1024-byte name limit, under the 64 KiB string limit of every JSON body.
    let long = "/checkout-".repeat(200);
    let body = json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "toggle"},
        "resource": {"type": "flag", "id": long}});
    let (st, v) = s.post(ADMIN_TOKEN, "/access/v1/evaluation", body).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["code"], "name_too_long", "{v}");
    assert!(v["message"].as_str().unwrap().contains("1024"), "{v}");
}

async fn refused_attempts_are_audited_and_a_flood_is_counted(b: crate::harness::Backend) {
    let s = server!(b);
    // A protected environment refuses a whole-set import without a grant, administrators too.
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            "/v1/environments/production/flags",
            Some(json!({"flags": {}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let refused = s.audit_actions("refused").await;
    let import = refused
        .iter()
        .find(|e| e["resource"] == "flag:production/*")
        .unwrap_or_else(|| panic!("the refused import is recorded: {refused:?}"));
    assert_eq!(import["actor"], "admin", "{import}");
    assert_eq!(import["details"]["code"], "forbidden", "{import}");

    // A refused access request: too long.
    let alice = s.token("alice").await;
    let (st, v) = s.request(&alice, "flags-prod-operator", "3h", "x").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let refused = s.audit_actions("refused").await;
    assert!(
        refused
            .iter()
            .any(|e| e["actor"] == "alice" && e["details"]["code"] == "duration_over_cap"),
        "{refused:?}"
    );

    // A flood: the first PER_MINUTE of a minute are recorded, the rest counted once. Start
    // close to the end of a minute so the count is written soon.
    let now = s.clock_now();
    let to_minute_end = 60_000 - now.timestamp_millis().rem_euclid(60_000) - 1_500;
    s.advance(chrono::TimeDelta::milliseconds(to_minute_end));
    let bob = s.token("bob").await;
    let per_minute = sluice_server::refusals::PER_MINUTE as usize;
    for _ in 0..per_minute + 5 {
        let (st, _) = s.request(&bob, "flags-prod-operator", "10m", "x").await;
        assert_eq!(st, StatusCode::FORBIDDEN);
    }
    let bobs = |es: &[serde_json::Value]| es.iter().filter(|e| e["actor"] == "bob").count();
    assert_eq!(bobs(&s.audit_actions("refused").await), per_minute);
    s.advance(chrono::TimeDelta::milliseconds(1_500));
    let mut summary = Vec::new();
    for _ in 0..100 {
        summary = s.audit_actions("refused.suppressed").await;
        if !summary.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(summary[0]["actor"], "bob");
    assert_eq!(summary[0]["details"]["count"], 5, "{summary:?}");
    assert_eq!(s.verify().await["ok"], json!(true));
}

async fn an_expired_token_says_so_and_an_unknown_one_does_not(b: crate::harness::Backend) {
    let s = server!(b);
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "short", "expires_in": "1h"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let (st, _) = s.get(&token, "/v1/whoami").await;
    assert_eq!(st, StatusCode::OK);

    s.advance(chrono::TimeDelta::hours(1));
    let (st, v) = s.get(&token, "/v1/whoami").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["code"], "token_expired", "{v}");
    assert!(v["message"].as_str().unwrap().contains("expired"), "{v}");

    // A well-formed token nobody issued learns nothing about expiry.
    let unknown = format!("slu_api_{}", "0".repeat(64));
    let (st, v) = s.get(&unknown, "/v1/whoami").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["code"], "unauthenticated", "{v}");
    // Nor does a revoked one, expired or not.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"principal": "dave", "name": "gone", "expires_in": "1h"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (gone, id) = (
        v["token"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    );
    let (st, v) = s
        .send(
            reqwest::Method::DELETE,
            ADMIN_TOKEN,
            &format!("/v1/tokens/{id}"),
            None,
        )
        .await;
    assert!(st.is_success(), "revoke: {st} {v}");
    s.advance(chrono::TimeDelta::hours(2));
    let (st, v) = s.get(&gone, "/v1/whoami").await;
    assert_eq!(
        (st, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
        "{v}"
    );
}

backend_tests!(
    an_expired_token_says_so_and_an_unknown_one_does_not,
    refused_attempts_are_audited_and_a_flood_is_counted,
    a_principal_removed_from_the_policy_loses_grants_and_tokens,
    a_name_longer_than_the_limit_is_refused_clearly,
);
