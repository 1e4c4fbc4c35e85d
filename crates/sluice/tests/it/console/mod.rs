//! The web console (`/ui/`) in a real Chromium, headless, driven through chromedriver
//! (WebDriver), against a real `sluice serve`; and its refusals with a plain HTTP client.
//! This module holds what the tests share: the browser, signing in, the policy, and short
//! helpers for finding, reading and clicking.
//!
//! Without Chromium these tests print a notice and pass, except under `CI=true`, where they
//! fail. Screenshots go to `target/console-screenshots/`.

mod audit;
mod cors;
mod flags;
mod inbox;
mod phone;
mod sessions;

use crate::harness::{free_port, post_json, Serve, ADMIN_TOKEN, FLAGS};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub const POLICY: &str = r#"
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
    break_glass: true
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle, edit-rollout, target]
    requesters: [group:engineers]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
"#;

/// A running chromedriver; killed when dropped.
pub struct Driver {
    url: String,
    _child: tokio::process::Child,
}

/// chromedriver on a free port, or `None` (with a notice) when Chromium is not installed;
/// under `CI=true` a missing Chromium fails the test instead.
pub async fn driver() -> Option<Driver> {
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
pub async fn browser(d: &Driver, width: u32, height: u32) -> Client {
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

pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(name), png).expect("write screenshot");
}

/// Signs in through the form and lands on the inbox.
pub async fn sign_in(c: &Client, s: &Serve, token: &str) {
    c.goto(&s.url("/ui/sign-in")).await.expect("sign-in page");
    type_into(c, "#token", token).await;
    click(c, "form button[type=submit]").await;
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

/// The element `css` matches, waiting up to 10 s for it to appear.
pub async fn wait_for(c: &Client, css: &str) -> Element {
    match c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = c.current_url().await.map(|u| u.to_string());
            let source = c.source().await.unwrap_or_default();
            panic!("no `{css}` at {url:?} ({e}):\n{source}")
        }
    }
}

/// The text of the element `css` matches.
pub async fn text(c: &Client, css: &str) -> String {
    // Live updates swap a page's fragments: what was found may be replaced before it is read,
    // so a stale element is looked up again.
    for _ in 0..20 {
        match wait_for(c, css).await.text().await {
            Ok(t) => return t,
            Err(e) if format!("{e:?}").contains("StaleElementReference") => continue,
            Err(e) => panic!("the text of `{css}`: {e}"),
        }
    }
    panic!("`{css}` was replaced 20 times over while being read")
}

pub async fn click(c: &Client, css: &str) {
    wait_for(c, css).await.click().await.expect("click");
}

pub async fn type_into(c: &Client, css: &str, keys: &str) {
    wait_for(c, css).await.send_keys(keys).await.expect("type");
}

/// Picks `value` in the `<select>` that `css` matches.
pub async fn choose(c: &Client, css: &str, value: &str) {
    let e = wait_for(c, css).await;
    e.select_by_value(value).await.expect("select");
}

/// How many elements `css` matches now.
pub async fn count(c: &Client, css: &str) -> usize {
    c.find_all(Locator::Css(css)).await.expect("find_all").len()
}

/// Marks the page, so that [`not_reloaded`] can tell it was never reloaded since.
pub async fn mark(c: &Client) {
    wait_for(c, "html[data-live=on]").await;
    c.execute("window.sluiceMarker = 'not reloaded'; return null", vec![])
        .await
        .expect("mark");
}

pub async fn not_reloaded(c: &Client) {
    let marker = c
        .execute("return window.sluiceMarker", vec![])
        .await
        .expect("read the mark");
    assert_eq!(marker, json!("not reloaded"), "the page was reloaded");
}

/// Waits (up to 5 s) for a countdown to show something other than `first`: it ticks.
pub async fn ticks(c: &Client, first: &str) {
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::XPath(&format!(
            "//time[@data-expires-at and normalize-space(text()) != '{first}']"
        )))
        .await
        .expect("the countdown moves");
}

/// Starts a rollout on a production flag through the API.
pub async fn start_rollout(
    s: &Serve,
    http: &reqwest::Client,
    token: &str,
    key: &str,
    steps: serde_json::Value,
) {
    let r = http
        .put(s.url(&format!("/v1/environments/production/flags/{key}/rollout")))
        .bearer_auth(token)
        .json(&steps)
        .send()
        .await
        .expect("start a rollout");
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

/// A request for `entitlement` by the token's holder, through the API; its id.
pub async fn ask(
    s: &Serve,
    http: &reqwest::Client,
    token: &str,
    body: serde_json::Value,
) -> String {
    let (status, v) = post_json(http, &s.url("/v1/requests"), token, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

/// A pending request for `orders-db-read` by the token's holder, through the API; its id.
pub async fn open_request(s: &Serve, http: &reqwest::Client, token: &str) -> String {
    let body = json!({"entitlement": "orders-db-read", "duration": "30m", "reason": "checking"});
    ask(s, http, token, body).await
}

/// Alice's grant of `flags-prod-operator`, approved by Bob through the API; its id.
pub async fn flags_grant(s: &Serve, http: &reqwest::Client, alice: &str, bob: &str) -> String {
    let body = json!({"entitlement": "flags-prod-operator", "duration": "30m", "reason": "INC-7 checkout-v2"});
    let id = ask(s, http, alice, body).await;
    let url = s.url(&format!("/v1/requests/{id}/approve"));
    let (status, v) = post_json(http, &url, bob, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    id
}

/// `scrollWidth <= innerWidth`: nothing sticks out sideways.
pub async fn no_horizontal_scroll(c: &Client) -> (u64, u64) {
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

pub async fn setup(dir: &Path) -> (Serve, reqwest::Client, String, String) {
    prepare(Serve::start(dir).await).await
}

/// The flags, the policy, and API tokens for alice and bob on a started server.
pub async fn prepare(s: Serve) -> (Serve, reqwest::Client, String, String) {
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
