//! `/openapi.json` is a valid OpenAPI document: checked by `openapi-spec-validator` (the
//! validator the field uses, pinned in tests/sdk/requirements.txt) against the document a real
//! server serves, and by plain Rust for what a validator does not know: operationIds are
//! unique, and every operation that needs a token says what happens without one (401) and with
//! one that may not (403).

use crate::harness::{Backend, Db, TestServer};
use reqwest::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `SLUICE_SDK_PYTHON` (set by `.ci/run`), else the venv `.ci/run` makes.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SLUICE_SDK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = repo_root().join("target/sdk-venv/bin/python3");
    venv.exists().then_some(venv)
}

async fn served_document() -> (TestServer, Value) {
    let db = Db::new(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let s = TestServer::start(db).await;
    let r = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.expect("a JSON document");
    (s, doc)
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation: (method, path, operation object).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_owned(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_passes_openapi_spec_validator() {
    let Some(py) = python() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Python with openapi-spec-validator: .ci/run sets SLUICE_SDK_PYTHON"
        );
        eprintln!(
            "notice: SKIPPING the OpenAPI validator test: no SLUICE_SDK_PYTHON and no target/sdk-venv \
             (pip install -r tests/sdk/requirements.txt into a venv, or run .ci/run)"
        );
        return;
    };
    let (_s, doc) = served_document().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("render")).expect("write");
    let run = tokio::process::Command::new(&py)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the validator answers within 60 s")
        .expect("the validator runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("No module named openapi_spec_validator") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} lacks openapi-spec-validator (tests/sdk/requirements.txt)",
            py.display()
        );
        eprintln!(
            "notice: SKIPPING the OpenAPI validator test: {} has no openapi-spec-validator",
            py.display()
        );
        return;
    }
    assert!(
        out.status.success(),
        "openapi-spec-validator refused /openapi.json:\n{text}"
    );
    assert!(text.contains("OK"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_ids_are_unique_and_authenticated_operations_declare_401_and_403() {
    let (_s, doc) = served_document().await;
    let ops = operations(&doc);
    assert!(ops.len() > 40, "{} operations", ops.len());

    let mut seen = std::collections::HashMap::new();
    for (m, path, op) in &ops {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {path}: no operationId"));
        if let Some(prev) = seen.insert(id.to_owned(), format!("{m} {path}")) {
            panic!("operationId `{id}` is used by both {prev} and {m} {path}");
        }
    }

    // Security: the operation's own, else the document's. An empty list (or only `{}`) is open.
    let global = doc.get("security").cloned().unwrap_or(Value::Null);
    let needs_token = |op: &Value| {
        let sec = op.get("security").unwrap_or(&global);
        sec.as_array().is_some_and(|reqs| {
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        })
    };
    let mut open = Vec::new();
    for (m, path, op) in &ops {
        if !needs_token(op) {
            open.push(format!("{m} {path}"));
            continue;
        }
        for status in ["401", "403"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{m} {path} needs a token but does not declare {status}"
            );
        }
    }
    // Exactly the public endpoints are open: health, metrics, this document, AuthZEN metadata,
    // and the start of a sign-in through the identity provider (which needs none yet).
    open.sort();
    assert_eq!(
        open,
        [
            "get /.well-known/authzen-configuration",
            "get /healthz",
            "get /metrics",
            "get /openapi.json",
            "get /readyz",
            "post /v1/sign-in/device",
            "post /v1/sign-in/device/token",
        ]
    );
}

/// Each operation's `in: path` parameters are exactly its path template's `{names}` (a query
/// parameter declared `in: path` sends generated clients to a URL that does not exist), and
/// every operation that takes input or names something in its path declares its 400 / 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_where_the_document_says_and_their_errors_are_declared() {
    let (_s, doc) = served_document().await;
    let mut queries = 0;
    for (m, path, op) in operations(&doc) {
        let template: std::collections::BTreeSet<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: std::collections::BTreeSet<&str> = params
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_path, template, "{m} {path}: path parameters vs template");
        queries += params.iter().filter(|p| p["in"] == "query").count();
        if !params.is_empty() || op.get("requestBody").is_some() {
            assert!(
                op["responses"].get("400").is_some(),
                "{m} {path}: takes input, no 400"
            );
        }
        if !template.is_empty() {
            assert!(
                op["responses"].get("404").is_some(),
                "{m} {path}: names a thing, no 404"
            );
        }
    }
    assert!(queries >= 20, "only {queries} query parameters declared");
}

/// A path with every `{param}` filled in, to send a request to.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "x"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The path patterns an axum router serves, read from its `Debug` form (axum offers no other
/// way to list them): every quoted string that starts with `/` in its `path_router`, before the
/// `fallback_router` (which holds axum's own catch-all paths).
fn served_paths(router: &axum::Router) -> std::collections::BTreeSet<String> {
    let debug = format!("{router:?}");
    let (routes, fallback) = debug
        .split_once("fallback_router")
        .expect("axum's Router debug names its path_router, then its fallback_router");
    assert!(routes.contains("path_router"), "{debug}");
    assert!(!fallback.contains("/v1/"), "{debug}");
    routes
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('/') && !s.contains("__private__axum"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_and_the_document_declare_the_same_routes() {
    let (s, doc) = served_document().await;
    let documented: std::collections::BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let documented_paths: std::collections::BTreeSet<String> =
        documented.iter().map(|(_, p)| p.clone()).collect();

    // Every path pattern the router matches is in the document, and the other way round —
    // but for the web console nested at `/ui`, whose HTML pages are not API: it is there and
    // the document names none of its paths.
    let (console, served): (std::collections::BTreeSet<String>, _) =
        served_paths(&sluice_server::routed(s.app.clone()))
            .into_iter()
            .partition(|p| p == "/ui" || p.starts_with("/ui/"));
    assert!(!console.is_empty(), "the console is mounted at /ui");
    assert!(
        documented_paths.iter().all(|p| !p.starts_with("/ui")),
        "{documented_paths:?}"
    );
    assert!(
        served.len() > 30,
        "read {} paths from the router",
        served.len()
    );
    assert_eq!(served, documented_paths);

    // On each path, a method is served exactly when it is documented: an undeclared one gets
    // axum's 405, a declared one reaches its handler (here, without a token: never the 405 and
    // never the fallback's "no such endpoint").
    for path in &documented_paths {
        for m in ["get", "put", "post", "delete", "patch"] {
            let method = reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).expect("method");
            let resp = s
                .http
                .request(method, s.url(&concrete(path)))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .expect("request sent");
            let status = resp.status();
            // Streams (SSE) would not end: the status is enough for them.
            let body = if status == StatusCode::OK {
                String::new()
            } else {
                resp.text().await.unwrap_or_default()
            };
            let is_documented = documented.contains(&(m.to_owned(), path.clone()));
            let is_served =
                status != StatusCode::METHOD_NOT_ALLOWED && !body.contains("no such endpoint");
            assert_eq!(
                is_served, is_documented,
                "{m} {path}: served {is_served} ({status} {body}), documented {is_documented}"
            );
        }
    }
}
