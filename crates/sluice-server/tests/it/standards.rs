//! The standards Sluice answers to, held to the letter: a body over the limit is `413` in the
//! JSON error shape naming the limit (every route, OFREP too); every `401` names the `Bearer`
//! scheme (RFC 6750 §3); AuthZEN 1.0 requests are refused when they are not what the standard
//! requires; advertised URLs come from the configured public URL, never from `Host`.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use crate::{backend_tests, server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Sends `body` with `content_type`; returns (status, headers, parsed body or text).
async fn send(
    s: &TestServer,
    method: reqwest::Method,
    token: Option<&str>,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = s.http.request(method, s.url(path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(c) = content_type {
        req = req.header("content-type", c);
    }
    let resp = req.send().await.expect("sent");
    let (st, headers) = (resp.status(), resp.headers().clone());
    let text = resp.text().await.expect("body");
    (
        st,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn client_key(s: &TestServer, env: &str) -> String {
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/tokens",
            json!({"name": "web", "kind": "client", "environment": env}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

async fn import_flags(s: &TestServer, env: &str) {
    let doc = json!({"flags": {"on": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}});
    let r = s
        .http
        .put(s.url(&format!("/v1/environments/{env}/flags?create_env=true")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&doc)
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), StatusCode::OK);
}

async fn audit_len(s: &TestServer) -> usize {
    let (st, v) = s.get(ADMIN_TOKEN, "/v1/audit?limit=1000").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["entries"].as_array().map_or(0, Vec::len)
}

fn too_large(got: (StatusCode, reqwest::header::HeaderMap, Value), limit: &str, what: &str) {
    let (st, _, body) = got;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{what}: {body}");
    assert_eq!(body["code"], "body_too_large", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(limit),
        "{what}: the message names the limit {limit}: {body}"
    );
}

async fn a_body_over_the_limit_is_413_naming_the_limit_on_every_route(b: Backend) {
    let s = server!(b);
    import_flags(&s, "staging").await;
    let key = client_key(&s, "staging").await;
    let dave = s.token("dave").await;
    let before = audit_len(&s).await;
    // 300 KiB of valid JSON: over the 256 KiB limit.
    let big = json!({"context": {"targetingKey": "u", "pad": "x".repeat(300 * 1024)}}).to_string();
    let json_ct = Some("application/json");
    let post = reqwest::Method::POST;
    for (token, path) in [
        (dave.as_str(), "/v1/requests"),
        (dave.as_str(), "/v1/requests/req-0000000000000000/approve"),
        (ADMIN_TOKEN, "/access/v1/evaluation"),
        (ADMIN_TOKEN, "/access/v1/evaluations"),
        (ADMIN_TOKEN, "/v1/policy"),
        (key.as_str(), "/ofrep/v1/evaluate/flags/on"),
        (key.as_str(), "/ofrep/v1/evaluate/flags"),
    ] {
        let got = send(
            &s,
            post.clone(),
            Some(token),
            path,
            json_ct,
            big.clone().into_bytes(),
        )
        .await;
        too_large(got, "256 KiB", path);
    }
    // The flag import has its own, larger limit, and names that one.
    let huge = vec![b' '; 8 * 1024 * 1024 + 1];
    let got = send(
        &s,
        reqwest::Method::PUT,
        Some(ADMIN_TOKEN),
        "/v1/environments/staging/flags",
        json_ct,
        huge,
    )
    .await;
    too_large(got, "8 MiB", "flag import");
    // Under the limit, the same routes answer as usual.
    let small = json!({"context": {"targetingKey": "u"}})
        .to_string()
        .into_bytes();
    let (st, _, v) = send(
        &s,
        post,
        Some(&key),
        "/ofrep/v1/evaluate/flags/on",
        json_ct,
        small,
    )
    .await;
    assert_eq!((st, &v["value"]), (StatusCode::OK, &json!(true)), "{v}");
    assert_eq!(audit_len(&s).await, before, "nothing was written");
}

/// Sends a POST whose body goes in `chunks` (chunked transfer coding, no length declared) over
/// a plain TCP connection, as a streaming client does; returns the status line and the body.
async fn send_chunked(s: &TestServer, key: &str, path: &str, chunks: &[&[u8]]) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(s.addr)
        .await
        .expect("connected");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    );
    let mut sent = head.into_bytes();
    for c in chunks {
        sent.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        sent.extend_from_slice(c);
        sent.extend_from_slice(b"\r\n");
    }
    sent.extend_from_slice(b"0\r\n\r\n");
    // A server that refuses part-way may close before the rest is written: that is its right.
    let _ = tcp.write_all(&sent).await;
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn a_body_sent_in_chunks_is_read_whole_and_held_to_the_limit(b: Backend) {
    let s = server!(b);
    import_flags(&s, "staging").await;
    let key = client_key(&s, "staging").await;
    // Under the limit, in pieces cut through a key and a value: read as one document.
    let doc = br#"{"context": {"targetingKey": "user-1", "email": "a@example.com"}}"#;
    let pieces: Vec<&[u8]> = doc.chunks(7).collect();
    let (status, body) = send_chunked(&s, &key, "/ofrep/v1/evaluate/flags/on", &pieces).await;
    assert!(status.contains(" 200 "), "{status}: {body}");
    assert!(body.contains(r#""value":true"#), "{body}");
    // Over the limit with no length declared: refused as it arrives, naming the limit.
    let pad = vec![b' '; 1024];
    let mut big: Vec<&[u8]> = vec![b"{\"context\": {}"];
    big.extend(std::iter::repeat_n(pad.as_slice(), 300));
    big.push(b"}");
    let (status, body) = send_chunked(&s, &key, "/ofrep/v1/evaluate/flags/on", &big).await;
    assert!(status.contains(" 413 "), "{status}: {body}");
    assert!(
        body.contains("body_too_large") && body.contains("256 KiB"),
        "{body}"
    );
}

async fn every_401_names_the_bearer_scheme(b: Backend) {
    let s = server!(b);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    for (method, path) in [
        (get.clone(), "/v1/requests"),
        (get.clone(), "/v1/whoami"),
        (get.clone(), "/v1/audit"),
        (post.clone(), "/access/v1/evaluation"),
        (post.clone(), "/access/v1/evaluations"),
        (post.clone(), "/ofrep/v1/evaluate/flags/on"),
        (post, "/ofrep/v1/evaluate/flags"),
        (get, "/ofrep/v1/events"),
    ] {
        for token in [
            None,
            Some("slu_api_0000000000000000000000000000000000000000000000000000000000000000"),
        ] {
            let (st, headers, body) = send(
                &s,
                method.clone(),
                token,
                path,
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
            assert_eq!(
                headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{method} {path} (token {token:?})"
            );
            assert_eq!(body["code"], "unauthenticated", "{body}");
        }
    }
}

fn user(id: &str) -> Value {
    json!({"type": "user", "id": id})
}

async fn decisions_recorded(s: &TestServer) -> usize {
    let (st, v) = s
        .get(ADMIN_TOKEN, "/v1/audit?action=decision.&limit=1000")
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["entries"].as_array().map_or(0, Vec::len)
}

async fn authzen_requests_missing_what_the_standard_requires_are_400(b: Backend) {
    let s = server!(b);
    let before = decisions_recorded(&s).await;
    let action = json!({"name": "toggle"});
    let resource = json!({"type": "flag", "id": "production/x"});
    let bad = [
        (
            json!({"subject": {"id": "alice"}, "action": action, "resource": resource}),
            "subject.type",
        ),
        (
            json!({"subject": {"type": "user"}, "action": action, "resource": resource}),
            "subject.id",
        ),
        (
            json!({"subject": {"type": "user", "id": ""}, "action": action, "resource": resource}),
            "subject.id",
        ),
        (json!({"action": action, "resource": resource}), "subject"),
        (
            json!({"subject": user("alice"), "action": {}, "resource": resource}),
            "action.name",
        ),
        (
            json!({"subject": user("alice"), "resource": resource}),
            "action",
        ),
        (
            json!({"subject": user("alice"), "action": action, "resource": {"id": "production/x"}}),
            "resource.type",
        ),
        (
            json!({"subject": user("alice"), "action": action, "resource": {"type": "flag"}}),
            "resource.id",
        ),
        (
            json!({"subject": user("alice"), "action": action, "resource": resource, "context": "INC-1"}),
            "context",
        ),
        (
            json!({"subject": user("alice"), "action": action, "resource": resource, "context": [1]}),
            "context",
        ),
        (
            json!({"subject": user("alice"), "action": action, "resource": resource, "context": 3}),
            "context",
        ),
    ];
    for (body, names) in &bad {
        let (st, _, v) = send(
            &s,
            reqwest::Method::POST,
            Some(ADMIN_TOKEN),
            "/access/v1/evaluation",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["code"], "invalid_request", "{v}");
        assert!(
            v["message"].as_str().is_some_and(|m| m.contains(names)),
            "names {names}: {v}"
        );
    }
    // A batch whose shared context is not an object is refused whole.
    let batch = json!({"subject": user("alice"), "action": action, "context": ["x"], "evaluations": [{"resource": resource}]});
    let (st, _, v) = send(
        &s,
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        "/access/v1/evaluations",
        Some("application/json"),
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        (st, &v["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{v}"
    );
    // An item whose own context is not an object fails in its own slot, as other bad items do.
    let batch = json!({"subject": user("alice"), "action": action, "evaluations": [
        {"resource": resource, "context": "INC-1"},
        {"resource": {"type": "user"}}
    ]});
    let (st, _, v) = send(
        &s,
        reqwest::Method::POST,
        Some(ADMIN_TOKEN),
        "/access/v1/evaluations",
        Some("application/json"),
        batch.to_string().into_bytes(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for (i, names) in [(0, "context"), (1, "resource.id")] {
        let item = &v["evaluations"][i];
        assert_eq!(item["decision"], false, "{v}");
        assert_eq!(item["context"]["code"], "400", "{v}");
        assert!(
            item["context"]["reason_user"]["en"]
                .as_str()
                .is_some_and(|m| m.contains(names)),
            "{item}"
        );
    }

    // The body must be declared JSON: a form post, plain text or no type at all is refused,
    // even when the bytes happen to be JSON.
    let good =
        json!({"subject": user("alice"), "action": action, "resource": resource}).to_string();
    for path in ["/access/v1/evaluation", "/access/v1/evaluations"] {
        for ct in [
            Some("application/x-www-form-urlencoded"),
            Some("text/plain"),
            Some("application/jsonx"),
            None,
        ] {
            let (st, _, v) = send(
                &s,
                reqwest::Method::POST,
                Some(ADMIN_TOKEN),
                path,
                ct,
                good.clone().into_bytes(),
            )
            .await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{path} with {ct:?}: {v}");
            assert_eq!(v["code"], "invalid_request", "{v}");
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("application/json")),
                "{v}"
            );
        }
    }
    assert_eq!(
        decisions_recorded(&s).await,
        before,
        "nothing refused was decided"
    );
    // JSON with parameters, and a +json type, are JSON.
    for ct in [
        "application/json; charset=utf-8",
        "application/authzen+json",
    ] {
        let (st, _, v) = send(
            &s,
            reqwest::Method::POST,
            Some(ADMIN_TOKEN),
            "/access/v1/evaluation",
            Some(ct),
            good.clone().into_bytes(),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{ct}: {v}");
        assert_eq!(v["decision"], false, "{v}");
    }
}

async fn get_with_host(s: &TestServer, path: &str, host: &str) -> Value {
    let r = s
        .http
        .get(s.url(path))
        .header("host", host)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn bulk_with_host(s: &TestServer, key: &str, host: &str) -> Value {
    let r = s
        .http
        .post(s.url("/ofrep/v1/evaluate/flags"))
        .header("host", host)
        .header("x-api-key", key)
        .json(&json!({"context": {"targetingKey": "u"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn advertised_urls_come_from_the_public_url_never_from_host(b: Backend) {
    let Some(db) = Db::new(b).await else { return };
    // A trailing slash is dropped, so paths join cleanly.
    let s = TestServer::start_with_public_url(db, "https://sluice.example.com/pdp/").await;
    import_flags(&s, "staging").await;
    let key = client_key(&s, "staging").await;
    let base = "https://sluice.example.com/pdp";
    for host in ["evil.example", "evil.example\"}, {\"x", &s.addr.to_string()] {
        let doc = get_with_host(&s, "/.well-known/authzen-configuration", host).await;
        assert_eq!(doc["policy_decision_point"], base, "Host {host:?}: {doc}");
        assert_eq!(
            doc["access_evaluation_endpoint"],
            format!("{base}/access/v1/evaluation"),
            "{doc}"
        );
        assert_eq!(
            doc["access_evaluations_endpoint"],
            format!("{base}/access/v1/evaluations"),
            "{doc}"
        );
        let bulk = bulk_with_host(&s, &key, host).await;
        assert_eq!(
            bulk["eventStreams"][0]["url"],
            format!("{base}/ofrep/v1/events"),
            "Host {host:?}: {bulk}"
        );
    }

    // Without a configured URL: the address the server listens on, whatever Host says.
    let Some(db) = Db::new(b).await else { return };
    let s = TestServer::start(db).await;
    import_flags(&s, "staging").await;
    let key = client_key(&s, "staging").await;
    let own = format!("http://{}", s.addr);
    let doc = get_with_host(&s, "/.well-known/authzen-configuration", "evil.example").await;
    assert_eq!(doc["policy_decision_point"], own, "{doc}");
    let bulk = bulk_with_host(&s, &key, "evil.example").await;
    assert_eq!(
        bulk["eventStreams"][0]["url"],
        format!("{own}/ofrep/v1/events"),
        "{bulk}"
    );
}

#[test]
fn a_public_url_must_be_an_absolute_http_url() {
    assert_eq!(
        sluice_server::public_url("https://flags.example.com/").expect("valid"),
        "https://flags.example.com"
    );
    assert_eq!(
        sluice_server::public_url("http://10.0.0.1:7070").expect("valid"),
        "http://10.0.0.1:7070"
    );
    for bad in [
        "flags.example.com",
        "ftp://flags.example.com",
        "https://x.example/?a=1",
        "https://x.example/#top",
        "/relative",
        "",
    ] {
        let e = sluice_server::public_url(bad).expect_err(bad).to_string();
        assert!(e.contains("public URL"), "{bad}: {e}");
    }
}

backend_tests!(
    a_body_over_the_limit_is_413_naming_the_limit_on_every_route,
    a_body_sent_in_chunks_is_read_whole_and_held_to_the_limit,
    every_401_names_the_bearer_scheme,
    authzen_requests_missing_what_the_standard_requires_are_400,
    advertised_urls_come_from_the_public_url_never_from_host,
);
