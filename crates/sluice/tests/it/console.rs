//! The web console (`/ui/`) in a real Chromium, headless, driven through chromedriver
//! (WebDriver), against a real `sluice serve`; and its refusals with a plain HTTP client.
//!
//! Without Chromium these tests print a notice and pass, except under `CI=true`, where they
//! fail. Screenshots go to `target/console-screenshots/`.

use crate::harness::{free_port, get_json, post_json, Serve, ADMIN_TOKEN, FLAGS};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const POLICY: &str = r#"
users: [alice, bob, carol]
groups:
  engineers: [alice, bob]
  leads: [bob, carol]
entitlements:
  - name: orders-db-read
    description: Read the orders database
    scopes:
      - resource: "db:orders"
        actions: [read]
    requesters: [group:engineers]
    max_duration: 2h
    approval: { required: 1, approvers: [group:leads] }
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
"#;

/// A running chromedriver; killed when dropped.
struct Driver {
    url: String,
    _child: tokio::process::Child,
}

/// chromedriver on a free port, or `None` (with a notice) when Chromium is not installed;
/// under `CI=true` a missing Chromium fails the test instead.
async fn driver() -> Option<Driver> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
        );
        eprintln!("\n*** notice: Chromium or chromedriver not installed; SKIPPING a console browser test ***\n");
        return None;
    }
    let port = free_port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http
            .get(format!("{url}/status"))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Some(Driver { url, _child: child });
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A new headless Chromium with a window of `width` × `height` CSS pixels; below 500 px wide
/// (Chromium's narrowest window), a phone's screen emulated instead.
async fn browser(d: &Driver, width: u32, height: u32) -> Client {
    let mut options = json!({
        "binary": CHROMIUM,
        "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--hide-scrollbars", format!("--window-size={},{}", width.max(500), height)],
    });
    if width < 500 {
        options["mobileEmulation"] =
            json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}});
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(name), png).expect("write screenshot");
}

/// Signs in through the form and lands on the inbox.
async fn sign_in(c: &Client, s: &Serve, token: &str) {
    c.goto(&s.url("/ui/sign-in")).await.expect("sign-in page");
    c.find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(token)
        .await
        .expect("type token");
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("submit");
    let landed = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("nav a[aria-current=page][href='/ui/inbox']"))
        .await;
    if landed.is_err() {
        let url = c.current_url().await.map(|u| u.to_string());
        let source = c.source().await.unwrap_or_default();
        panic!("not signed in: at {url:?}:\n{source}");
    }
}

/// `scrollWidth <= innerWidth`: nothing sticks out sideways.
async fn no_horizontal_scroll(c: &Client) -> (u64, u64) {
    let v = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await
        .expect("measure");
    let scroll = v[0].as_u64().expect("scrollWidth");
    let inner = v[1].as_u64().expect("innerWidth");
    assert!(scroll <= inner, "scrollWidth {scroll} > innerWidth {inner}");
    (scroll, inner)
}

async fn setup(dir: &Path) -> (Serve, reqwest::Client, String, String) {
    let s = Serve::start(dir).await;
    let http = reqwest::Client::new();
    // Flags first: once the policy protects production, an import there needs a grant.
    let resp = http
        .put(s.url("/v1/environments/production/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(FLAGS)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    s.apply_policy(&http, POLICY).await;
    let alice = s.api_token(&http, "alice").await;
    let bob = s.api_token(&http, "bob").await;
    (s, http, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_approves_from_the_inbox_and_the_first_sees_the_grant_count_down() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;

    // Bob, a lead, has his inbox open: nothing waits yet.
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    let count = bob.find(Locator::Css("[data-count]")).await.unwrap();
    assert_eq!(count.text().await.unwrap(), "0");
    bob.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("html[data-live=on]"))
        .await
        .expect("the inbox's event stream is open");
    bob.execute("window.sluiceMarker = 'not reloaded'; return null", vec![])
        .await
        .unwrap();

    // Alice asks for access in her browser and sees it pending.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice.goto(&s.url("/ui/access")).await.unwrap();
    alice
        .find(Locator::Css("#entitlement"))
        .await
        .unwrap()
        .select_by_value("orders-db-read")
        .await
        .unwrap();
    alice
        .find(Locator::Css("#duration"))
        .await
        .unwrap()
        .select_by_value("1h")
        .await
        .unwrap();
    alice
        .find(Locator::Css("#reason"))
        .await
        .unwrap()
        .send_keys("INC-4411 check the stuck orders")
        .await
        .unwrap();
    alice
        .find(Locator::Css(".request-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pending = alice
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("li.pending"))
        .await
        .expect("the request is listed as pending");
    let text = pending.text().await.unwrap();
    assert!(
        text.contains("orders-db-read") && text.contains("1h"),
        "{text}"
    );
    let id = pending.attr("data-request").await.unwrap().expect("id");
    assert!(alice
        .find_all(Locator::Css("li.grant"))
        .await
        .unwrap()
        .is_empty());
    // The page listens for changes; mark it, to prove later that it was never reloaded.
    alice
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("html[data-live=on]"))
        .await
        .expect("the page's event stream is open");
    alice
        .execute("window.sluiceMarker = 'not reloaded'; return null", vec![])
        .await
        .unwrap();
    screenshot(&alice, "access-pending.png").await;

    // It arrives in Bob's open inbox without a reload; he approves it with a comment.
    let card = bob
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!("li.request[data-request='{id}']")))
        .await
        .expect("alice's request arrives in bob's inbox");
    let marker = bob
        .execute("return window.sluiceMarker", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!("not reloaded"));
    let count = bob.find(Locator::Css("[data-count]")).await.unwrap();
    assert_eq!(count.text().await.unwrap(), "1");
    let text = card.text().await.unwrap();
    for want in [
        "alice",
        "orders-db-read",
        "read on db:orders",
        "1h",
        "INC-4411",
        "0 of 1",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    screenshot(&bob, "inbox.png").await;
    card.find(Locator::Css("input[name=comment]"))
        .await
        .unwrap()
        .send_keys("go ahead")
        .await
        .unwrap();
    card.find(Locator::Css("button.approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = bob
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .expect("a notice after approving");
    assert_eq!(notice.text().await.unwrap(), "Approved.");
    assert!(bob
        .find_all(Locator::Css(&format!("[data-request='{id}']")))
        .await
        .unwrap()
        .is_empty());

    // Alice's page shows the grant, counting down, without a reload.
    let countdown = alice
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&format!(
            "li.grant[data-request='{id}'] time.countdown"
        )))
        .await
        .expect("the grant appears on alice's page");
    let marker = alice
        .execute("return window.sluiceMarker", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!("not reloaded"));
    let first = countdown.text().await.unwrap();
    assert!(
        first.starts_with("in 59m") || first.starts_with("in 1h"),
        "{first}"
    );
    // It ticks: the text changes on its own.
    alice
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath(&format!(
            "//time[@data-expires-at and normalize-space(text()) != '{first}']"
        )))
        .await
        .expect("the countdown moves");
    assert!(alice
        .find_all(Locator::Css("li.pending"))
        .await
        .unwrap()
        .is_empty());
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
async fn the_pages_fit_a_phone_and_a_requester_never_sees_their_own_request_to_approve() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;
    // Bob, who approves for leads, asks himself; alice asks too.
    let own = open_request(&s, &http, &bob_token).await;
    let other = open_request(&s, &http, &alice_token).await;

    let phone = browser(&d, 375, 812).await;
    sign_in(&phone, &s, &bob_token).await;
    let (_, inner) = no_horizontal_scroll(&phone).await;
    assert_eq!(inner, 375, "a phone-sized screen");
    assert!(phone
        .find_all(Locator::Css(&format!("[data-request='{own}']")))
        .await
        .unwrap()
        .is_empty());
    phone
        .find(Locator::Css(&format!("li.request[data-request='{other}']")))
        .await
        .expect("alice's request is offered");
    screenshot(&phone, "phone-inbox.png").await;
    phone.goto(&s.url("/ui/access")).await.unwrap();
    phone
        .find(Locator::Css(&format!("li.pending[data-request='{own}']")))
        .await
        .expect("his own request, pending, on his access page");
    no_horizontal_scroll(&phone).await;
    screenshot(&phone, "phone-access.png").await;
    phone.goto(&s.url("/ui/sign-in")).await.unwrap();
    phone.close().await.unwrap();
}

/// A pending request for `orders-db-read` by the token's holder, through the API; its id.
async fn open_request(s: &Serve, http: &reqwest::Client, token: &str) -> String {
    let (status, v) = post_json(
        http,
        &s.url("/v1/requests"),
        token,
        &json!({"entitlement": "orders-db-read", "duration": "30m", "reason": "checking"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// A console session opened with a plain HTTP client: (cookie, CSRF token).
async fn http_session(s: &Serve, http: &reqwest::Client, token: &str) -> (String, String) {
    let resp = http
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_flag_is_toggled_only_under_a_grant_and_the_audit_view_filters() {
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (s, http, alice_token, bob_token) = setup(dir.path()).await;

    // Without a grant: the flag is shown with the refusal that says what to request.
    let alice = browser(&d, 1280, 900).await;
    sign_in(&alice, &s, &alice_token).await;
    alice
        .goto(&s.url("/ui/flags?env=production"))
        .await
        .unwrap();
    let card = alice
        .find(Locator::Css("li.flag[data-flag='checkout-v2']"))
        .await
        .expect("checkout-v2 listed");
    let text = card.text().await.unwrap();
    assert!(text.contains("ENABLED") && text.contains("off"), "{text}");
    let refusal = card
        .find(Locator::Css(".refusal"))
        .await
        .expect("no toggle without a grant")
        .text()
        .await
        .unwrap();
    assert!(
        refusal.contains("protected") && refusal.contains("flags-prod-operator"),
        "{refusal}"
    );
    assert!(card
        .find_all(Locator::Css("button"))
        .await
        .unwrap()
        .is_empty());
    let badge = alice
        .find(Locator::Css(".tabs a[aria-current=page] .badge"))
        .await
        .expect("the protected badge");
    assert_eq!(badge.text().await.unwrap().to_lowercase(), "protected");

    // With a grant (asked and approved through the API), the page names it and toggles.
    let (status, req) = post_json(
        &http,
        &s.url("/v1/requests"),
        &alice_token,
        &json!({"entitlement": "flags-prod-operator", "duration": "30m", "reason": "INC-7 kill checkout-v2"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    let grant = req["id"].as_str().unwrap().to_owned();
    let (status, v) = post_json(
        &http,
        &s.url(&format!("/v1/requests/{grant}/approve")),
        &bob_token,
        &json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    alice.refresh().await.unwrap();
    let card = alice
        .find(Locator::Css("li.flag[data-flag='checkout-v2']"))
        .await
        .unwrap();
    let allowed = card
        .find(Locator::Css(".allowed"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(allowed.contains(&grant), "{allowed}");
    screenshot(&alice, "flags.png").await;
    card.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    alice
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .expect("flag changed");
    let text = alice
        .find(Locator::Css("li.flag[data-flag='checkout-v2'] .state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "DISABLED");
    let (status, flag) = get_json(
        &http,
        &s.url("/v1/environments/production/flags/checkout-v2"),
        &alice_token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flag["definition"]["state"], "DISABLED", "{flag}");

    // The audit view is for administrators and auditors.
    alice.goto(&s.url("/ui/audit")).await.unwrap();
    let refused = alice
        .find(Locator::Css(".error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("auditors"), "{refused}");
    alice.close().await.unwrap();

    let admin = browser(&d, 1280, 900).await;
    sign_in(&admin, &s, ADMIN_TOKEN).await;
    admin.goto(&s.url("/ui/audit")).await.unwrap();
    admin
        .find(Locator::Css("#actor"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    admin
        .find(Locator::Css("#action"))
        .await
        .unwrap()
        .send_keys("flag")
        .await
        .unwrap();
    admin
        .find(Locator::Css("form.filter button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    admin
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#actor[value=alice]"))
        .await
        .expect("filtered");
    let entries = admin.find_all(Locator::Css("li.entry")).await.unwrap();
    assert!(!entries.is_empty());
    for e in &entries {
        let actor = e
            .find(Locator::Css(".actor"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let action = e
            .find(Locator::Css(".action"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(actor, "alice");
        assert!(action.starts_with("flag"), "{action}");
    }
    // Open the toggle's entry: its details name the grant that allowed it.
    entries[0]
        .find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let details = entries[0]
        .find(Locator::Css("pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(details.contains(&grant), "{details}");
    screenshot(&admin, "audit.png").await;
    admin
        .find(Locator::Css("form button.secondary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let ok = admin
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".verify-ok"))
        .await
        .expect("the chain verifies");
    assert!(ok.text().await.unwrap().contains("no problem found"));
    admin.close().await.unwrap();

    // Four eyes: alice proposes turning `banner` on; bob approves it from his inbox.
    let (status, cr) = post_json(
        &http,
        &s.url("/v1/environments/production/flags/banner/proposals"),
        &alice_token,
        &json!({"change": {"op": "set-state", "enabled": true}, "base_revision": 1, "reason": "launch the banner"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cr}");
    let cr = cr["id"].as_str().unwrap().to_owned();
    let bob = browser(&d, 1280, 900).await;
    sign_in(&bob, &s, &bob_token).await;
    let card = bob
        .find(Locator::Css(&format!("li.change[data-change='{cr}']")))
        .await
        .expect("the proposal in bob's inbox");
    let text = card.text().await.unwrap();
    assert!(
        text.contains("alice proposes: turn ON banner in production")
            && text.contains("launch the banner")
            && text.contains("0 of 1"),
        "{text}"
    );
    card.find(Locator::Css("button.approve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    bob.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .expect("approved");
    let (_, flag) = get_json(
        &http,
        &s.url("/v1/environments/production/flags/banner"),
        &alice_token,
    )
    .await;
    assert_eq!(flag["definition"]["state"], "ENABLED", "{flag}");
    bob.close().await.unwrap();
}
