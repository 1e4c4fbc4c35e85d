//! OFREP from a web application on another origin, in a real Chromium: a page served by its
//! own server evaluates a flag with `fetch`, as the OpenFeature web SDK's OFREP provider does
//! (a client key in `Authorization`, a JSON body: the browser asks first). `sluice serve
//! --cors-origin` lets the page on that origin read the answer; a page on any other origin
//! is blocked by the browser itself.

use super::*;
use crate::harness::Serve;

/// A page at `/` on `listener` that evaluates `checkout-v2` through `sluice` with `key` and
/// writes the outcome in `#out`.
fn serve_page(listener: tokio::net::TcpListener, sluice: &str, key: &str) {
    let html = format!(
        r#"<!doctype html><html><head><title>app</title></head><body><pre id="out">pending</pre>
<script>
fetch("{sluice}/ofrep/v1/evaluate/flags/checkout-v2", {{
  method: "POST",
  headers: {{"Authorization": "Bearer {key}", "Content-Type": "application/json"}},
  body: JSON.stringify({{context: {{targetingKey: "u1", email: "ann@example.com"}}}})
}})
  .then(r => r.json())
  .then(v => {{ document.getElementById("out").textContent = "value:" + v.value + " variant:" + v.variant; }})
  .catch(e => {{ document.getElementById("out").textContent = "blocked:" + e; }});
</script></body></html>"#
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
}

/// What the page at `url` wrote once its evaluation settled.
async fn outcome(c: &Client, url: &str) -> String {
    c.goto(url).await.expect("the page");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = text(c, "#out").await;
        if got != "pending" {
            return got;
        }
        assert!(Instant::now() < deadline, "the page's fetch never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_an_allowed_origin_evaluates_and_any_other_is_blocked() {
    let Some(d) = driver().await else { return };
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let allowed_url = format!("http://{}", allowed.local_addr().expect("addr"));
    let other_url = format!("http://{}", other.local_addr().expect("addr"));

    let dir = tempfile::tempdir().expect("tempdir");
    let s = Serve::start_with(dir.path(), &["--cors-origin", &allowed_url]).await;
    let file = dir.path().join("flags.json");
    std::fs::write(&file, crate::harness::FLAGS).expect("write flags");
    let path = file.to_str().expect("utf-8");
    s.ok(
        Some(ADMIN_TOKEN),
        &["flags", "import", path, "--env", "staging", "--create-env"],
    )
    .await;
    let key = s.client_key(&reqwest::Client::new(), "staging").await;
    let sluice = s.url("").trim_end_matches('/').to_owned();
    serve_page(allowed, &sluice, &key);
    serve_page(other, &sluice, &key);

    let c = browser(&d, 800, 600).await;
    assert_eq!(
        outcome(&c, &format!("{allowed_url}/")).await,
        "value:true variant:on"
    );
    let blocked = outcome(&c, &format!("{other_url}/")).await;
    assert!(blocked.starts_with("blocked:"), "{blocked}");
    c.close().await.expect("close");
}
