//! Every page on a phone-sized screen without sideways scrolling, with the keyboard, and
//! without colour.

use super::*;
use fantoccini::key::Key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_fits_a_phone_works_from_the_keyboard_and_reads_without_colour() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;
    // Something on every page: bob's own request and alice's (only hers is his to approve),
    // a break-glass grant, a rollout with a target, a flag change for the audit's diff.
    let own = open_request(&s, &http, &bob_token).await;
    let other = open_request(&s, &http, &alice_token).await;
    let body = json!({"entitlement": "orders-db-read", "duration": "20m", "reason": "INC-9 a long reason that has to wrap on a narrow screen without pushing the page sideways", "break_glass": true});
    ask(&s, &http, &alice_token, body).await;
    flags_grant(&s, &http, &alice_token, &bob_token).await;
    let flag = |rest: &str| s.url(&format!("/v1/environments/production/flags/{rest}"));
    let steps = json!({"variant": "on", "steps": [{"percent": 5, "hold": "10m"}, {"percent": 25, "hold": "20m"}, {"percent": 100, "hold": "1h"}]});
    start_rollout(&s, &http, &alice_token, "checkout-v2", steps).await;
    let target = json!({"variant": "on", "keys": ["alice", "qa-team-member-with-a-long-name@example.com"], "for": "25m"});
    let (status, v) = post_json(&http, &flag("checkout-v2/targets"), &alice_token, &target).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let change = json!({"change": {"op": "set-state", "enabled": false}, "base_revision": 1});
    let (status, v) = post_json(&http, &flag("checkout-v2/changes"), &alice_token, &change).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let phone = browser(&d, 375, 812).await;
    phone.goto(&s.url("/ui/sign-in")).await.unwrap();
    no_horizontal_scroll(&phone).await;
    screenshot(&phone, "phone-sign-in.png").await;

    // Keyboard: the first Tab reaches "Skip to the content", Enter moves into the page.
    sign_in(&phone, &s, &bob_token).await;
    let body = wait_for(&phone, "body").await;
    body.send_keys(&Key::Tab.to_string()).await.unwrap();
    let focused = phone.active_element().await.unwrap();
    assert_eq!(focused.text().await.unwrap(), "Skip to the content");
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    let now_on = phone.active_element().await.unwrap();
    assert_eq!(now_on.attr("id").await.unwrap().as_deref(), Some("main"));

    // The inbox: alice's request offered, bob's own not, and the break-glass grant.
    let (_, inner) = no_horizontal_scroll(&phone).await;
    assert_eq!(inner, 375, "a phone-sized screen");
    assert_eq!(count(&phone, &format!("[data-request='{own}']")).await, 0);
    wait_for(&phone, &format!("li.request[data-request='{other}']")).await;
    wait_for(&phone, "li.review").await;
    screenshot(&phone, "phone-inbox.png").await;

    // Every other page, as bob, then as alice and the administrator.
    let pages: [(&str, &str, &str); 6] = [
        (&bob_token, "/ui/access", "li.pending"),
        (&bob_token, "/ui/sessions", "h1"),
        (&alice_token, "/ui/flags?env=production", "svg.step-chart"),
        (&alice_token, "/ui/access", "li.grant"),
        (ADMIN_TOKEN, "/ui/audit?action=flag", "li.entry"),
        (ADMIN_TOKEN, "/ui/sessions", "h1"),
    ];
    let mut who = bob_token.as_str();
    for (token, path, shows) in pages {
        if token != who {
            click(&phone, "form.account button").await;
            wait_for(&phone, "#token").await;
            sign_in(&phone, &s, token).await;
            who = token;
        }
        phone.goto(&s.url(path)).await.unwrap();
        wait_for(&phone, shows).await;
        if path.starts_with("/ui/audit") {
            click(&phone, "li.entry summary").await;
            wait_for(&phone, "pre.diff").await;
        }
        let (scroll, inner) = no_horizontal_scroll(&phone).await;
        assert!(scroll <= inner, "{path}");
        let name = path
            .trim_start_matches("/ui/")
            .split('?')
            .next()
            .unwrap()
            .replace('/', "-");
        screenshot(&phone, &format!("phone-{name}.png")).await;
    }

    // Without colour: each state is said in words or a sign, not only a colour — and the
    // page, drawn in greys, is the screenshot to look at.
    phone
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();
    assert_eq!(
        text(&phone, "li.flag[data-flag='checkout-v2'] .state").await,
        "DISABLED"
    );
    let legend = text(&phone, ".legend").await;
    for word in ["done", "current step", "paused", "scheduled"] {
        assert!(legend.contains(word), "{word} in {legend}");
    }
    let current = text(&phone, ".steps-list li[data-step-state=current]").await;
    assert!(current.starts_with("5% — current"), "{current}");
    phone
        .execute(
            "document.documentElement.style.filter = 'grayscale(1)'; return null",
            vec![],
        )
        .await
        .unwrap();
    screenshot(&phone, "phone-flags-grey.png").await;
    phone.close().await.unwrap();
}
