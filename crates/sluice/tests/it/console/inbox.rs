//! The inbox and my access: a request approved live, break-glass grants reviewed, and forms
//! forced without a session, a CSRF token or the right refused.

use super::*;
use crate::harness::get_json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_approves_from_the_inbox_and_the_first_sees_the_grant_count_down() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;

    // Bob, a lead, has his inbox open: nothing waits yet.
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    assert_eq!(text(&bob, "[data-count]").await, "0");
    mark(&bob).await;

    // Alice asks for access in her browser and sees it pending.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice.goto(&s.url("/ui/access")).await.unwrap();
    choose(&alice, "#entitlement", "orders-db-read").await;
    choose(&alice, "#duration", "1h").await;
    type_into(&alice, "#reason", "INC-4411 check the stuck orders").await;
    click(&alice, ".request-form button[type=submit]").await;
    let pending = wait_for(&alice, "li.pending").await;
    let got = pending.text().await.unwrap();
    assert!(
        got.contains("orders-db-read") && got.contains("1h"),
        "{got}"
    );
    let id = pending.attr("data-request").await.unwrap().expect("id");
    assert_eq!(count(&alice, "li.grant").await, 0);
    // The page listens for changes; mark it, to prove later that it was never reloaded.
    mark(&alice).await;
    screenshot(&alice, "access-pending.png").await;

    // It arrives in Bob's open inbox without a reload; he approves it with a comment.
    let card_css = format!("li.request[data-request='{id}']");
    let card = wait_for(&bob, &card_css).await;
    not_reloaded(&bob).await;
    assert_eq!(text(&bob, "[data-count]").await, "1");
    let got = card.text().await.unwrap();
    for want in [
        "alice",
        "orders-db-read",
        "read on db:orders",
        "1h",
        "INC-4411",
        "0 of 1",
    ] {
        assert!(got.contains(want), "{want} in {got}");
    }
    screenshot(&bob, "inbox.png").await;
    type_into(&bob, &format!("{card_css} input[name=comment]"), "go ahead").await;
    click(&bob, &format!("{card_css} button.approve")).await;
    assert_eq!(text(&bob, ".notice").await, "Approved.");
    assert_eq!(count(&bob, &format!("[data-request='{id}']")).await, 0);

    // Alice's page shows the grant, counting down, without a reload.
    let countdown_css = format!("li.grant[data-request='{id}'] time.countdown");
    let first = text(&alice, &countdown_css).await;
    not_reloaded(&alice).await;
    assert!(
        first.starts_with("in 59m") || first.starts_with("in 1h"),
        "{first}"
    );
    // It ticks: the text changes on its own.
    ticks(&alice, &first).await;
    assert_eq!(count(&alice, "li.pending").await, 0);
    screenshot(&alice, "access-grant.png").await;

    // The same grant, through the API.
    let (status, grants) = get_json(&http, &s.url("/v1/grants?principal=me"), &alice_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grants[0]["id"], json!(id), "{grants}");
    assert_eq!(
        grants[0]["votes"][0]["comment"],
        json!("go ahead"),
        "{grants}"
    );

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_glass_grant_arrives_for_review_and_is_marked_reviewed_from_the_inbox() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    mark(&bob).await;

    // Alice breaks the glass: active at once, and waiting for someone else's review.
    let body = json!({"entitlement": "orders-db-read", "duration": "20m",
                      "reason": "INC-9 orders stuck, nobody answers", "break_glass": true});
    let id = ask(&s, &http, &alice_token, body).await;
    let card_css = format!("li.review[data-review='{id}']");
    wait_for(&bob, &card_css).await;
    not_reloaded(&bob).await;
    let got = text(&bob, &card_css).await;
    for want in [
        "alice broke the glass for orders-db-read",
        "ACTIVE",
        "INC-9",
        "20m",
        "in 19m",
    ] {
        assert!(
            got.to_uppercase().contains(&want.to_uppercase()),
            "{want} in {got}"
        );
    }
    screenshot(&bob, "inbox-break-glass.png").await;

    // Alice herself is not offered the review, and a forced one is refused by the operation.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    assert_eq!(count(&alice, &card_css).await, 0);
    let (cookie, csrf) = http_session(&s, &http, &alice_token).await;
    let r = http
        .post(s.url(&format!("/ui/requests/{id}/review")))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    alice.close().await.unwrap();

    // Bob reviews it: gone from his inbox, recorded on the request and in the audit trail.
    click(&bob, &format!("{card_css} button")).await;
    assert_eq!(text(&bob, ".notice").await, "Marked as reviewed.");
    assert_eq!(count(&bob, &card_css).await, 0);
    let (_, v) = get_json(&http, &s.url(&format!("/v1/requests/{id}")), &bob_token).await;
    assert_eq!(
        (&v["needs_review"], &v["reviewed_by"]),
        (&json!(false), &json!("bob")),
        "{v}"
    );
    let reviewed = s.audit_entries(&http, Some("access.reviewed")).await;
    assert_eq!(reviewed.len(), 1, "{reviewed:?}");
    assert_eq!(
        (&reviewed[0]["actor"], &reviewed[0]["subject_id"]),
        (&json!("bob"), &json!(id))
    );
    bob.close().await.unwrap();
}

/// A console session opened with a plain HTTP client: (cookie, CSRF token).
pub async fn http_session(s: &Serve, http: &reqwest::Client, token: &str) -> (String, String) {
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirect
        .post(s.url("/ui/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = http
        .get(s.url("/ui/inbox"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_owned();
    assert_eq!(csrf.len(), 64);
    (cookie, csrf)
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_forms_without_session_csrf_or_right_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _, alice_token, bob_token) = setup(dir.path()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let own = open_request(&s, &http, &bob_token).await;
    let other = open_request(&s, &http, &alice_token).await;
    let (cookie, csrf) = http_session(&s, &http, &bob_token).await;
    let post = |path: String, cookie: Option<&str>, form: Vec<(&'static str, String)>| {
        let mut r = http.post(s.url(&path)).form(&form);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };

    // Self-approval: not offered, and refused by the operation when the form is forced.
    let inbox = http
        .get(s.url("/ui/inbox"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!inbox.contains(&own) && inbox.contains(&other), "{inbox}");
    let r = post(
        format!("/ui/requests/{own}/approve"),
        Some(&cookie),
        vec![("csrf", csrf.clone()), ("comment", "me".into())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("cannot approve or deny your own request"),
        "{body}"
    );

    // No CSRF token, a wrong one, or a form from another site: refused, nothing changes.
    for (form, origin) in [
        (vec![], None),
        (vec![("csrf", "0".repeat(64))], None),
        (vec![("csrf", csrf.clone())], Some("http://evil.example")),
    ] {
        let mut r = http
            .post(s.url(&format!("/ui/requests/{other}/approve")))
            .header("cookie", &cookie)
            .form(&form);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?} {origin:?}");
    }
    // No session: a page goes to the sign-in form, a form or a fragment gets 401.
    let r = http.get(s.url("/ui/inbox")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/sign-in");
    let r = post(
        format!("/ui/requests/{other}/approve"),
        None,
        vec![("csrf", csrf.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for path in ["/ui/fragments/inbox", "/ui/events"] {
        let r = http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A wrong token does not sign in.
    let r = http
        .post(s.url("/ui/sign-in"))
        .form(&[("token", "slu_api_nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());

    // Both requests are still pending: nothing above changed anything.
    for id in [&own, &other] {
        let (status, v) = get_json(&http, &s.url(&format!("/v1/requests/{id}")), &bob_token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["status"], "pending", "{v}");
        assert_eq!(v["votes"], json!([]), "{v}");
    }

    // The right form works; then signing out ends the session on the server.
    let r = post(
        format!("/ui/requests/{other}/approve"),
        Some(&cookie),
        vec![("csrf", csrf.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post("/ui/sign-out".into(), Some(&cookie), vec![("csrf", csrf)])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = http
        .get(s.url("/ui/inbox"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the old cookie is dead");

    // Alice, now holding the grant, asks for more time from the console: a pending extension.
    let (alice_cookie, alice_csrf) = http_session(&s, &http, &alice_token).await;
    let r = post(
        format!("/ui/requests/{other}/extend"),
        Some(&alice_cookie),
        vec![
            ("csrf", alice_csrf),
            ("duration", "15m".into()),
            ("reason", "not done yet".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, list) = get_json(
        &http,
        &s.url("/v1/requests?requester=alice&status=pending"),
        &alice_token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["extends"], json!(other), "{list}");
    assert_eq!(list[0]["duration"], "15m", "{list}");
}
