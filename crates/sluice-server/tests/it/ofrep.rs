//! OpenFeature Remote Evaluation Protocol over real HTTP: every status, reason and error code,
//! client-key authentication, bulk `ETag`/`If-None-Match`, the SSE change feed, rate limits.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::header::{HeaderMap, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_core::token::SecretToken;
use sluice_server::{Server, ServerConfig};
use std::time::{Duration, Instant};

/// One flag of each kind the protocol distinguishes.
pub fn document() -> Value {
    json!({
        "flags": {
            "bool-static": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "string-flag": {"state": "ENABLED", "variants": {"red": "#f00", "blue": "#00f"}, "defaultVariant": "red",
                "metadata": {"owner": "web"}},
            "int-flag": {"state": "ENABLED", "variants": {"one": 1, "two": 2}, "defaultVariant": "two"},
            "float-zero": {"state": "ENABLED", "variants": {"zero": 0.0, "half": 0.5}, "defaultVariant": "zero"},
            "object-flag": {"state": "ENABLED", "variants": {"a": {"items": [1, 2], "name": "A"}, "b": {}}, "defaultVariant": "a"},
            "targeted": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]}},
            "split": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
                "targeting": {"fractional": [["a", 50], ["b", 50]]}},
            "disabled": {"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "no-default": {"state": "ENABLED", "variants": {"x": "X", "y": "Y"}},
            "dynamic": {"state": "ENABLED", "variants": {"a": "A", "b": "B"}, "defaultVariant": "a",
                "targeting": {"var": "pick"}}
        },
        "metadata": {"team": "checkout"}
    })
}

/// Imports `doc` into `env` as the administrator (strict); returns the new revision.
pub async fn import(s: &TestServer, env: &str, doc: Value) -> i64 {
    let (st, v) = s
        .send(
            reqwest::Method::PUT,
            ADMIN_TOKEN,
            &format!("/v1/environments/{env}/flags?create_env=true"),
            Some(doc),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "import: {v}");
    v["revision"].as_i64().expect("revision")
}

/// A client key bound to `env`.
pub async fn client_key(s: &TestServer, env: &str) -> String {
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": format!("web-{env}"), "kind": "client", "environment": env}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "client key: {v}");
    v["token"].as_str().expect("token").to_owned()
}

/// A raw OFREP call: status, headers and the body as text (so number spelling can be checked).
pub struct Raw {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn call(
    s: &TestServer,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &str,
    extra: &[(&str, &str)],
) -> Raw {
    let mut req = s
        .http
        .post(s.url(path))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Raw {
        status,
        headers,
        text,
    }
}

async fn eval(s: &TestServer, key: &str, flag: &str, context: Value) -> Raw {
    let bearer = format!("Bearer {key}");
    call(
        s,
        &format!("/ofrep/v1/evaluate/flags/{flag}"),
        Some(("authorization", &bearer)),
        &json!({ "context": context }).to_string(),
        &[],
    )
    .await
}

fn success(r: &Raw, key: &str, reason: &str) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{key}: {}", r.text);
    assert!(
        r.content_type().starts_with("application/json"),
        "{key}: content type {:?}",
        r.content_type()
    );
    let v = r.json();
    assert_eq!(v["key"], key, "{}", r.text);
    assert_eq!(v["reason"], reason, "{key}: {}", r.text);
    assert!(v.get("errorCode").is_none(), "{}", r.text);
    v
}

fn failure(r: &Raw, key: &str, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status, status, "{key}: {}", r.text);
    assert!(
        r.content_type().starts_with("application/json"),
        "{key}: content type {:?}",
        r.content_type()
    );
    let v = r.json();
    assert_eq!(v["key"], key, "{}", r.text);
    assert_eq!(v["errorCode"], code, "{}", r.text);
    assert!(
        v["errorDetails"].as_str().is_some_and(|d| !d.is_empty()),
        "errorDetails says why: {}",
        r.text
    );
    assert!(v.get("value").is_none(), "{}", r.text);
    v
}

async fn every_reason_and_error_code_over_http(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    let key = client_key(&s, "staging").await;
    let none = json!({});

    // STATIC, typed values, metadata (flag over set).
    let v = success(
        &eval(&s, &key, "bool-static", none.clone()).await,
        "bool-static",
        "STATIC",
    );
    assert_eq!(
        (v["value"].clone(), v["variant"].clone()),
        (json!(true), json!("on"))
    );
    assert_eq!(v["metadata"], json!({"team": "checkout"}));
    let v = success(
        &eval(&s, &key, "string-flag", none.clone()).await,
        "string-flag",
        "STATIC",
    );
    assert_eq!(v["value"], "#f00");
    assert_eq!(v["metadata"], json!({"team": "checkout", "owner": "web"}));
    let v = success(
        &eval(&s, &key, "int-flag", none.clone()).await,
        "int-flag",
        "STATIC",
    );
    assert!(v["value"].is_i64() && v["value"] == 2, "{v}");
    let v = success(
        &eval(&s, &key, "object-flag", none.clone()).await,
        "object-flag",
        "STATIC",
    );
    assert_eq!(v["value"], json!({"items": [1, 2], "name": "A"}));

    // 0.0 stays 0.0 on the wire (a float), 2 stays 2 (an integer).
    let r = eval(&s, &key, "float-zero", none.clone()).await;
    success(&r, "float-zero", "STATIC");
    assert!(r.text.contains("\"value\":0.0"), "{}", r.text);
    let r = eval(&s, &key, "int-flag", none.clone()).await;
    assert!(
        r.text.contains("\"value\":2,") || r.text.contains("\"value\":2}"),
        "{}",
        r.text
    );

    // TARGETING_MATCH; a rule that matches nothing falls back to the default variant: DEFAULT.
    let v = success(
        &eval(&s, &key, "targeted", json!({"email": "ann@example.com"})).await,
        "targeted",
        "TARGETING_MATCH",
    );
    assert_eq!(
        (v["value"].clone(), v["variant"].clone()),
        (json!(true), json!("on"))
    );
    let v = success(
        &eval(&s, &key, "targeted", json!({"email": "ann@elsewhere.org"})).await,
        "targeted",
        "DEFAULT",
    );
    assert_eq!(
        (v["value"].clone(), v["variant"].clone()),
        (json!(false), json!("off"))
    );

    // SPLIT, deterministic per targeting key; both buckets are reached.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        let ctx = json!({"targetingKey": format!("user-{i}")});
        let v = success(
            &eval(&s, &key, "split", ctx.clone()).await,
            "split",
            "SPLIT",
        );
        let again = success(&eval(&s, &key, "split", ctx).await, "split", "SPLIT");
        assert_eq!(v["value"], again["value"], "sticky");
        seen.insert(v["value"].as_str().expect("string").to_owned());
    }
    assert_eq!(seen.len(), 2, "both halves: {seen:?}");
    // Without a targeting key flagd's `fractional` has no bucket key: the default variant.
    let v = success(
        &eval(&s, &key, "split", none.clone()).await,
        "split",
        "DEFAULT",
    );
    assert_eq!(v["value"], "A");

    // DISABLED and no default variant: answered without a value, so the client uses its own.
    for (flag, reason) in [("disabled", "DISABLED"), ("no-default", "DEFAULT")] {
        let r = eval(&s, &key, flag, none.clone()).await;
        let v = success(&r, flag, reason);
        assert!(v.get("value").is_none(), "{flag}: {}", r.text);
        assert!(v.get("variant").is_none(), "{flag}: {}", r.text);
    }

    // A rule naming a variant at runtime: a name that is no variant is PARSE_ERROR (400).
    let v = success(
        &eval(&s, &key, "dynamic", json!({"pick": "b"})).await,
        "dynamic",
        "TARGETING_MATCH",
    );
    assert_eq!(v["value"], "B");
    failure(
        &eval(&s, &key, "dynamic", json!({"pick": "zzz"})).await,
        "dynamic",
        StatusCode::BAD_REQUEST,
        "PARSE_ERROR",
    );

    // FLAG_NOT_FOUND is a 404.
    failure(
        &eval(&s, &key, "no-such-flag", none.clone()).await,
        "no-such-flag",
        StatusCode::NOT_FOUND,
        "FLAG_NOT_FOUND",
    );

    // INVALID_CONTEXT: a context that is not an object, a non-string targeting key, too deep.
    let bearer = format!("Bearer {key}");
    let auth = Some(("authorization", bearer.as_str()));
    for body in [
        r#"{"context": 5}"#.to_owned(),
        r#"{"context": ["a"]}"#.to_owned(),
        r#"{"context": {"targetingKey": 7}}"#.to_owned(),
        format!(
            r#"{{"context": {{"a": {}1{}}}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        ),
        // Deeper than the JSON parser itself goes: still told as too deep, not malformed.
        format!(
            r#"{{"context": {{"a": {}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        ),
        // One level over the limit (the body's object and the context make two).
        format!(
            r#"{{"context": {{"a": {}1{}}}}}"#,
            "[".repeat(31),
            "]".repeat(31)
        ),
    ] {
        let r = call(&s, "/ofrep/v1/evaluate/flags/bool-static", auth, &body, &[]).await;
        failure(
            &r,
            "bool-static",
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
        );
    }
    // GENERAL: the request itself is malformed (not JSON, not an object).
    for body in ["{not json", "[1, 2]"] {
        let r = call(&s, "/ofrep/v1/evaluate/flags/bool-static", auth, body, &[]).await;
        failure(&r, "bool-static", StatusCode::BAD_REQUEST, "GENERAL");
    }
    // At the limit: 32 levels, the value's 30 arrays included, is a context like any other.
    let body = format!(
        r#"{{"context": {{"a": {}1{}}}}}"#,
        "[".repeat(30),
        "]".repeat(30)
    );
    let r = call(&s, "/ofrep/v1/evaluate/flags/bool-static", auth, &body, &[]).await;
    success(&r, "bool-static", "STATIC");
    // An empty body is an empty context.
    let r = call(&s, "/ofrep/v1/evaluate/flags/bool-static", auth, "", &[]).await;
    success(&r, "bool-static", "STATIC");
}

async fn client_keys_authenticate_and_are_bound_to_one_environment(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    import(
        &s,
        "development",
        json!({"flags": {"dev-only": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on"}}}),
    )
    .await;
    let staging = client_key(&s, "staging").await;
    let dev = client_key(&s, "development").await;
    let path = "/ofrep/v1/evaluate/flags/bool-static";
    let body = r#"{"context": {}}"#;

    // Both ways of presenting the key work.
    let bearer = format!("Bearer {staging}");
    let r = call(&s, path, Some(("authorization", &bearer)), body, &[]).await;
    success(&r, "bool-static", "STATIC");
    let r = call(&s, path, Some(("x-api-key", &staging)), body, &[]).await;
    success(&r, "bool-static", "STATIC");
    // Spaces after the scheme are not part of the key, whether it is checked against the
    // store or found in the cache (the second request).
    let spaced = format!("Bearer   {staging}");
    for _ in 0..2 {
        let r = call(&s, path, Some(("authorization", &spaced)), body, &[]).await;
        success(&r, "bool-static", "STATIC");
    }
    let bulk = call(
        &s,
        "/ofrep/v1/evaluate/flags",
        Some(("x-api-key", &staging)),
        body,
        &[],
    )
    .await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text);

    // No key, an unknown key, a malformed key: 401.
    let unknown = SecretToken::generate(
        sluice_core::token::TokenKind::Client,
        &mut rand::rngs::OsRng,
    );
    for auth in [
        None,
        Some(("x-api-key", unknown.expose())),
        Some(("authorization", "Bearer nonsense")),
    ] {
        let r = call(&s, path, auth, body, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}: {}", r.text);
        let r = call(&s, "/ofrep/v1/evaluate/flags", auth, body, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}: {}", r.text);
    }
    // An API token (even the administrator's) is not a client key: 403.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let r = call(&s, path, Some(("authorization", &admin)), body, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags",
        Some(("authorization", &admin)),
        body,
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

    // Another environment's key sees only its own flags.
    let r = call(&s, path, Some(("x-api-key", &dev)), body, &[]).await;
    failure(&r, "bool-static", StatusCode::NOT_FOUND, "FLAG_NOT_FOUND");
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags/dev-only",
        Some(("x-api-key", &dev)),
        body,
        &[],
    )
    .await;
    success(&r, "dev-only", "STATIC");
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags/dev-only",
        Some(("x-api-key", &staging)),
        body,
        &[],
    )
    .await;
    failure(&r, "dev-only", StatusCode::NOT_FOUND, "FLAG_NOT_FOUND");
    let r = call(
        &s,
        "/ofrep/v1/evaluate/flags",
        Some(("x-api-key", &dev)),
        body,
        &[],
    )
    .await;
    let keys: Vec<Value> = r.json()["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .map(|f| f["key"].clone())
        .collect();
    assert_eq!(keys, [json!("dev-only")]);

    // A client key may only evaluate.
    let (st, _) = s.get(&staging, "/v1/environments/staging/flags").await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A revoked key stops working at once.
    let (st, tokens) = s.get(ADMIN_TOKEN, "/v1/tokens?all=true").await;
    assert_eq!(st, StatusCode::OK, "{tokens}");
    let id = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .expect("token list")
        .iter()
        .find(|t| t["name"] == "web-staging")
        .and_then(|t| t["id"].as_str())
        .expect("the staging key")
        .to_owned();
    let (st, v) = s
        .send(
            reqwest::Method::DELETE,
            ADMIN_TOKEN,
            &format!("/v1/tokens/{id}"),
            None,
        )
        .await;
    assert!(st.is_success(), "revoke: {v}");
    let r = call(&s, path, Some(("x-api-key", &staging)), body, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

fn bulk_entry<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("{key} in {v}"))
}

fn etag_of(r: &Raw) -> String {
    r.headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned()
}

async fn bulk_isolates_failures_and_caches_by_revision_and_context(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    let key = client_key(&s, "staging").await;
    let auth = Some(("x-api-key", key.as_str()));
    let path = "/ofrep/v1/evaluate/flags";
    let ctx_a =
        json!({"context": {"targetingKey": "u-1", "email": "ann@example.com", "pick": "zzz"}})
            .to_string();

    let r = call(&s, path, auth, &ctx_a, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.content_type().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["flags"].as_array().map(Vec::len), Some(10), "{v}");
    // The failing flag fails alone, with the error shape; the others answer.
    let d = bulk_entry(&v, "dynamic");
    assert_eq!(d["errorCode"], "PARSE_ERROR", "{d}");
    assert!(d["errorDetails"].as_str().is_some_and(|x| !x.is_empty()));
    assert!(d.get("value").is_none());
    assert_eq!(bulk_entry(&v, "targeted")["reason"], "TARGETING_MATCH");
    assert_eq!(bulk_entry(&v, "split")["reason"], "SPLIT");
    assert_eq!(bulk_entry(&v, "disabled")["reason"], "DISABLED");
    assert!(bulk_entry(&v, "disabled").get("value").is_none());
    assert_eq!(bulk_entry(&v, "no-default")["reason"], "DEFAULT");
    assert!(r.text.contains("\"value\":0.0"), "{}", r.text);
    assert_eq!(v["metadata"], json!({"team": "checkout"}));
    // The SSE stream is advertised.
    let streams = v["eventStreams"].as_array().expect("eventStreams");
    assert_eq!(streams[0]["type"], "sse", "{v}");
    let url = streams[0]["url"].as_str().expect("url");
    assert!(url.ends_with("/ofrep/v1/events"), "{url}");

    // Asked again (the rendered answer is now cached), through another host name: the same
    // flags, and the event stream still advertised under the server's own URL (a forged Host
    // is never echoed; see `standards::advertised_urls_come_from_the_public_url_never_from_host`).
    let r_again = call(&s, path, auth, &ctx_a, &[("host", "flags.example.test")]).await;
    assert_eq!(r_again.status, StatusCode::OK, "{}", r_again.text);
    assert_eq!(r_again.json()["flags"], v["flags"]);
    assert_eq!(etag_of(&r_again), etag_of(&r));
    assert_eq!(
        r_again.json()["eventStreams"][0]["url"],
        format!("http://{}/ofrep/v1/events", s.addr)
    );

    // Same context, same configuration: 304 with the same tag and no body.
    let tag = etag_of(&r);
    let again = call(&s, path, auth, &ctx_a, &[("if-none-match", &tag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text);
    assert_eq!(etag_of(&again), tag);
    assert!(again.text.is_empty());
    // The same context written with other key order and spacing is the same context.
    let reordered =
        r#"{ "context": {"pick": "zzz", "email": "ann@example.com", "targetingKey": "u-1"} }"#;
    let r2 = call(&s, path, auth, reordered, &[(IF_NONE_MATCH.as_str(), &tag)]).await;
    assert_eq!(r2.status, StatusCode::NOT_MODIFIED, "{}", r2.text);
    // A stale tag among others does not match; a list containing the current one does.
    let r2 = call(&s, path, auth, &ctx_a, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(r2.status, StatusCode::OK);
    let list = format!("\"stale\", {tag}");
    let r2 = call(&s, path, auth, &ctx_a, &[("if-none-match", &list)]).await;
    assert_eq!(r2.status, StatusCode::NOT_MODIFIED);

    // A changed context: a new tag and a fresh 200.
    let ctx_b =
        json!({"context": {"targetingKey": "u-2", "email": "bob@elsewhere.org"}}).to_string();
    let r3 = call(&s, path, auth, &ctx_b, &[("if-none-match", &tag)]).await;
    assert_eq!(r3.status, StatusCode::OK, "{}", r3.text);
    let tag_b = etag_of(&r3);
    assert_ne!(tag_b, tag);
    assert_eq!(bulk_entry(&r3.json(), "targeted")["reason"], "DEFAULT");
    assert_eq!(
        bulk_entry(&r3.json(), "dynamic")["reason"],
        "DEFAULT",
        "no `pick`: null"
    );

    // An import: every old tag is stale.
    let mut doc = document();
    doc["flags"]["bool-static"]["defaultVariant"] = json!("off");
    import(&s, "staging", doc).await;
    let r4 = call(&s, path, auth, &ctx_a, &[("if-none-match", &tag)]).await;
    assert_eq!(r4.status, StatusCode::OK, "{}", r4.text);
    assert_ne!(etag_of(&r4), tag);
    assert_eq!(bulk_entry(&r4.json(), "bool-static")["value"], false);
    let r5 = call(&s, path, auth, &ctx_a, &[("if-none-match", &etag_of(&r4))]).await;
    assert_eq!(r5.status, StatusCode::NOT_MODIFIED);

    // A bad context fails the whole bulk request with the bulk error shape.
    let r6 = call(&s, path, auth, r#"{"context": 5}"#, &[]).await;
    assert_eq!(r6.status, StatusCode::BAD_REQUEST, "{}", r6.text);
    assert_eq!(r6.json()["errorCode"], "INVALID_CONTEXT");
    assert!(r6.json()["errorDetails"].is_string());

    // A key of an environment without flags gets an empty list, not an error.
    import(&s, "development", json!({"flags": {}})).await;
    let empty = client_key(&s, "development").await;
    let r7 = call(&s, path, Some(("x-api-key", &empty)), "{}", &[]).await;
    assert_eq!(r7.status, StatusCode::OK, "{}", r7.text);
    assert_eq!(r7.json()["flags"], json!([]));
}

/// Reads SSE `data:` lines from a streaming body until one satisfies `want` or `deadline`.
async fn next_data(
    resp: &mut reqwest::Response,
    buf: &mut String,
    deadline: Instant,
    want: impl Fn(&Value) -> bool,
) -> Option<Value> {
    loop {
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            if let Some(data) = line.trim_end().strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    if want(&v) {
                        return Some(v);
                    }
                }
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(bytes))) => buf.push_str(&String::from_utf8_lossy(&bytes)),
            _ => return None,
        }
    }
}

async fn sse_subscribers_hear_refetch_evaluation_after_an_import(b: Backend) {
    let s = server!(b);
    import(&s, "staging", document()).await;
    import(&s, "development", document()).await;
    let key = client_key(&s, "staging").await;

    // Without a client key: refused.
    let r = s
        .http
        .get(s.url("/ofrep/v1/events"))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let mut resp = s
        .http
        .get(s.url("/ofrep/v1/events"))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("subscribed");
    assert_eq!(resp.status(), StatusCode::OK);
    let ct = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut buf = String::new();

    // Another environment's change is not announced on this stream...
    import(&s, "development", json!({"flags": {}})).await;
    // ...this one's is, within a bounded wait.
    let started = Instant::now();
    let rev = import(&s, "staging", json!({"flags": {}})).await;
    let got = next_data(&mut resp, &mut buf, started + Duration::from_secs(5), |v| {
        v["type"] == "refetchEvaluation"
    })
    .await
    .expect("a refetchEvaluation event within 5 s");
    assert_eq!(
        got["etag"],
        json!(format!("\"{rev}\"")),
        "the staging revision, not development's: {got}"
    );

    // The key can also be given as a query parameter (browsers' EventSource sets no headers).
    let mut q = s
        .http
        .get(s.url(&format!("/ofrep/v1/events?key={key}")))
        .send()
        .await
        .expect("subscribed");
    assert_eq!(q.status(), StatusCode::OK);
    let rev = import(&s, "staging", document()).await;
    let mut qbuf = String::new();
    let got = next_data(
        &mut q,
        &mut qbuf,
        Instant::now() + Duration::from_secs(5),
        |v| v["type"] == "refetchEvaluation",
    )
    .await
    .expect("a refetchEvaluation event within 5 s");
    assert_eq!(got["etag"], json!(format!("\"{rev}\"")));
}

/// A server with a client rate limit (the shared harness starts servers without one).
async fn limited_server(db: &Db, per_second: u32) -> (String, tokio::sync::oneshot::Sender<()>) {
    server_with(db, Some(per_second), Default::default()).await
}

/// A server with a client rate limit and browser origins as given.
async fn server_with(
    db: &Db,
    per_second: Option<u32>,
    cors_origins: sluice_server::cors::BrowserOrigins,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: db.url.clone(),
        signing_key: db.key.clone(),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_secs(3600),
        db_clock: None,
        client_rate_limit: per_second,
        cors_origins,
        public_url: None,
    };
    let clock: std::sync::Arc<dyn sluice_core::Clock> =
        std::sync::Arc::new(sluice_core::ManualClock::new(crate::harness::t0()));
    let server = Server::build(config, clock).await.expect("server builds");
    let addr = server.local_addr().expect("bound");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = server
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    (format!("http://{addr}"), tx)
}

/// On a server outside the harness (`base`): [`document`] imported into `staging`, and a
/// client key of `staging` per name.
async fn staging_keys(http: &reqwest::Client, base: &str, names: &[&str]) -> Vec<String> {
    let r = http
        .put(format!(
            "{base}/v1/environments/staging/flags?create_env=true"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&document())
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::OK);
    let mut keys = Vec::new();
    for name in names {
        let r = http
            .post(format!("{base}/v1/tokens"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": name, "kind": "client", "environment": "staging"}))
            .send()
            .await
            .expect("key");
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.expect("json");
        keys.push(v["token"].as_str().expect("token").to_owned());
    }
    keys
}

async fn a_client_key_over_its_rate_gets_429_with_retry_after(b: Backend) {
    let Some(db) = Db::new(b).await else { return };
    let (base, _stop) = limited_server(&db, 5).await;
    let http = reqwest::Client::new();
    let keys = staging_keys(&http, &base, &["a", "b"]).await;
    let url = format!("{base}/ofrep/v1/evaluate/flags/bool-static");
    let send = |k: &str| http.post(&url).header("x-api-key", k).body("{}").send();

    // The first five of a window always pass; within 50 requests the limit is hit (reaching 50
    // without it would take nine one-second windows).
    let mut limited = None;
    for i in 0..50 {
        let r = send(&keys[0]).await.expect("sent");
        if i < 5 {
            assert_eq!(r.status(), StatusCode::OK, "request {i}");
        }
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    let r = limited.expect("a 429 within 50 requests at 5/s");
    let retry: u64 = r
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // The limit is per key: another key is not slowed down by the first.
    let r = send(&keys[1]).await.expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    // Management calls are not limited by the evaluation limit.
    for _ in 0..10 {
        let r = http
            .get(format!("{base}/v1/environments"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), StatusCode::OK);
    }
}

/// A rule that reads `$flagd.timestamp` can change its answer with time alone: its bulk ETag
/// must not outlive the second it was computed in. Where no rule reads the time, the tag
/// holds across time.
async fn a_bulk_etag_does_not_outlive_a_time_dependent_answer(b: Backend) {
    let s = server!(b);
    let launch = crate::harness::t0().timestamp() + 5;
    import(
        &s,
        "staging",
        json!({"flags": {"launch": {"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, launch]}, "on", "off"]}}}}),
    )
    .await;
    import(&s, "development", document()).await;
    let path = "/ofrep/v1/evaluate/flags";
    let ctx = json!({"context": {"targetingKey": "u-1"}}).to_string();
    let timed = client_key(&s, "staging").await;
    let plain = client_key(&s, "development").await;
    let timed = Some(("x-api-key", timed.as_str()));
    let plain = Some(("x-api-key", plain.as_str()));

    let before = call(&s, path, timed, &ctx, &[]).await;
    assert_eq!(bulk_entry(&before.json(), "launch")["value"], false);
    let plain_tag = etag_of(&call(&s, path, plain, &ctx, &[]).await);
    s.advance(chrono::TimeDelta::seconds(6));
    let after = call(
        &s,
        path,
        timed,
        &ctx,
        &[(IF_NONE_MATCH.as_str(), &etag_of(&before))],
    )
    .await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    assert_eq!(bulk_entry(&after.json(), "launch")["value"], true);
    let again = call(
        &s,
        path,
        plain,
        &ctx,
        &[(IF_NONE_MATCH.as_str(), &plain_tag)],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text);
}

/// The evaluation routes are answered before the router (the hot path): what the router did
/// for them is still done. A key is percent-decoded as the router decodes it; other methods,
/// an empty key and paths beside the routes are the router's (405, 404); the key is checked
/// before the body; every answer is counted under the route's pattern.
async fn the_evaluation_routes_answer_as_routed_routes_do(b: Backend) {
    let s = server!(b);
    import(
        &s,
        "web",
        json!({"flags": {
            "a/b": {"state": "ENABLED", "variants": {"on": "slash"}, "defaultVariant": "on"},
            "ünï": {"state": "ENABLED", "variants": {"on": "unicode"}, "defaultVariant": "on"},
            "plain": {"state": "ENABLED", "variants": {"on": "plain"}, "defaultVariant": "on"}
        }}),
    )
    .await;
    let key = client_key(&s, "web").await;
    let auth = Some(("x-api-key", key.as_str()));
    let ctx = r#"{"context": {"targetingKey": "u"}}"#;
    let single = "/ofrep/v1/evaluate/flags/{key}";
    let (ok_before, refused_before) = (
        s.requests_counted(single, "2xx").await,
        s.requests_counted(single, "4xx").await,
    );
    for (path, value) in [
        ("/ofrep/v1/evaluate/flags/plain", "plain"),
        ("/ofrep/v1/evaluate/flags/a%2Fb", "slash"),
        ("/ofrep/v1/evaluate/flags/%C3%BCn%C3%AF", "unicode"),
    ] {
        let r = call(&s, path, auth, ctx, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert_eq!(r.json()["value"], json!(value), "{path}: {}", r.text);
    }
    let bulk = call(&s, "/ofrep/v1/evaluate/flags", auth, ctx, &[]).await;
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.text);
    assert_eq!(
        bulk.json()["flags"].as_array().map(Vec::len),
        Some(3),
        "{}",
        bulk.text
    );
    // The key before the body: no key and a broken body is 401, a key and a broken body 400.
    let r = call(&s, "/ofrep/v1/evaluate/flags/plain", None, "{", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = call(&s, "/ofrep/v1/evaluate/flags/plain", auth, "{", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json()["key"], json!("plain"), "{}", r.text);
    // What the router answers.
    for (path, status) in [
        ("/ofrep/v1/evaluate/flags/", StatusCode::NOT_FOUND),
        ("/ofrep/v1/evaluate/flags/a/b", StatusCode::NOT_FOUND),
        ("/ofrep/v1/evaluate/flagsx", StatusCode::NOT_FOUND),
        ("/ofrep/v1/evaluate/flags/%FF", StatusCode::BAD_REQUEST),
    ] {
        let r = call(&s, path, auth, ctx, &[]).await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
    }
    let r = s
        .http
        .get(s.url("/ofrep/v1/evaluate/flags/plain"))
        .header("x-api-key", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = r.headers().get("allow").and_then(|v| v.to_str().ok());
    assert_eq!(allow, Some("POST"), "405 names the methods served");
    let body: Value = r.json().await.expect("a JSON error");
    assert_eq!(body["code"], json!("method_not_allowed"), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("GET")),
        "{body}"
    );
    // Counted under the pattern: three answers and two refusals here (other tests in this
    // process may add more).
    assert!(s.requests_counted(single, "2xx").await >= ok_before + 3.0);
    assert!(s.requests_counted(single, "4xx").await >= refused_before + 2.0);
    assert!(s.requests_counted("/ofrep/v1/evaluate/flags", "2xx").await >= 1.0);
}

/// A header of `r` as text ("" when absent).
fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// OFREP called from a web page on another origin (the OpenFeature web SDK): the preflight is
/// answered and the answers are marked for the origins configured, and only for them, and
/// only on the OFREP paths; a server started without origins marks nothing.
async fn ofrep_answers_browsers_on_the_configured_origins_only(b: Backend) {
    const APP: &str = "https://app.example.com";
    let Some(db) = Db::new(b).await else { return };
    let origins = sluice_server::cors::BrowserOrigins::parse(&[APP.into()]).expect("origin");
    let (base, _stop) = server_with(&db, None, origins).await;
    let http = reqwest::Client::new();
    let key = staging_keys(&http, &base, &["web"]).await.remove(0);
    let bulk = format!("{base}/ofrep/v1/evaluate/flags");
    let preflight = |origin: &str, url: &str| {
        http.request(reqwest::Method::OPTIONS, url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,if-none-match",
            )
            .send()
    };

    let r = preflight(APP, &bulk).await.expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(header(&r, "access-control-allow-origin"), APP);
    assert!(header(&r, "access-control-allow-methods").contains("POST"));
    let allowed = header(&r, "access-control-allow-headers").to_ascii_lowercase();
    for h in ["authorization", "content-type", "if-none-match"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    assert_eq!(header(&r, "access-control-max-age"), "600");
    assert!(header(&r, "vary").to_ascii_lowercase().contains("origin"));

    // The answer itself: readable by the page, ETag included.
    for url in [
        bulk.clone(),
        format!("{base}/ofrep/v1/evaluate/flags/bool-static"),
    ] {
        let r = http
            .post(&url)
            .header("origin", APP)
            .bearer_auth(&key)
            .json(&json!({"context": {"targetingKey": "u1"}}))
            .send()
            .await
            .expect("evaluate");
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(header(&r, "access-control-allow-origin"), APP, "{url}");
        assert!(header(&r, "access-control-expose-headers")
            .to_ascii_lowercase()
            .contains("etag"));
    }
    // Refusals are readable too (a wrong key: the page learns why).
    let r = http
        .post(&bulk)
        .header("origin", APP)
        .bearer_auth("slu_cli_nope")
        .body("{}")
        .send()
        .await
        .expect("refused");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&r, "access-control-allow-origin"), APP);

    // Another origin: answered as before, but never marked for it.
    let r = preflight("https://evil.example", &bulk)
        .await
        .expect("preflight");
    assert_eq!(header(&r, "access-control-allow-origin"), "");
    let r = http
        .post(&bulk)
        .header("origin", "https://evil.example")
        .bearer_auth(&key)
        .body("{}")
        .send()
        .await
        .expect("evaluate");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), "");

    // Nothing but OFREP is opened, even to the configured origin.
    let r = preflight(APP, &format!("{base}/v1/requests"))
        .await
        .expect("preflight");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, "access-control-allow-origin"), "");
    let r = http
        .get(format!("{base}/v1/requests"))
        .header("origin", APP)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), "");

    // Without origins configured (the default), nothing is marked.
    let s = server!(b);
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/ofrep/v1/evaluate/flags"))
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(header(&r, "access-control-allow-origin"), "");
}

backend_tests!(
    ofrep_answers_browsers_on_the_configured_origins_only,
    the_evaluation_routes_answer_as_routed_routes_do,
    a_bulk_etag_does_not_outlive_a_time_dependent_answer,
    every_reason_and_error_code_over_http,
    client_keys_authenticate_and_are_bound_to_one_environment,
    bulk_isolates_failures_and_caches_by_revision_and_context,
    sse_subscribers_hear_refetch_evaluation_after_an_import,
    a_client_key_over_its_rate_gets_429_with_retry_after,
);
