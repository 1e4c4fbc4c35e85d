//! Every request is logged in a span that names it: request id, method, route, principal and
//! status, read back from the real log output of a real server.

use crate::harness::{Backend, Db, TestServer, ADMIN_TOKEN};
use reqwest::StatusCode;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

// The process's log subscriber: a thread's own (`set_default`) misses callsites whose interest
// other tests' threads cached first. The only test here that sets one; the other tests' lines
// land in it too, and are told apart by request id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_logged_with_its_id_method_route_principal_and_status() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other test sets one");

    let db = Db::new(Backend::Sqlite)
        .await
        .expect("SQLite is always there");
    let s = TestServer::start(db).await;

    // A caller's id is kept and echoed.
    let resp = s
        .http
        .get(s.url("/v1/whoami"))
        .bearer_auth(ADMIN_TOKEN)
        .header("X-Request-ID", "req-spans-1")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-spans-1")
    );
    let me: serde_json::Value = resp.json().await.expect("JSON");
    let principal = me["name"].as_str().expect("a name").to_owned();

    // Without one, the server makes one up, different for each request.
    let mut made = Vec::new();
    for _ in 0..2 {
        let resp = s.http.get(s.url("/healthz")).send().await.expect("sent");
        let id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        made.push(id.expect("an x-request-id on every answer"));
        // HSTS is sent over TLS only.
        assert!(resp.headers().get("strict-transport-security").is_none());
    }
    assert_ne!(made[0], made[1]);

    // A refused request is logged with its status and no principal.
    let resp = s
        .http
        .get(s.url("/v1/requests/x"))
        .header("X-Request-ID", "req-spans-2")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let text = logs.text();
    let line = |id: &str| {
        text.lines()
            .find(|l| l.contains(&format!("request_id={id} ")) && l.contains("answered"))
            .unwrap_or_else(|| panic!("no line for {id} in:\n{text}"))
            .to_owned()
    };
    let ok = line("req-spans-1");
    for field in [
        "method=GET".to_owned(),
        "route=/v1/whoami".to_owned(),
        format!("principal={principal}"),
        "status=200".to_owned(),
    ] {
        assert!(ok.contains(&field), "{field} missing from: {ok}");
    }
    let made_line = line(&made[0]);
    assert!(made_line.contains("route=/healthz"), "{made_line}");
    let refused = line("req-spans-2");
    assert!(refused.contains("route=/v1/requests/{id}"), "{refused}");
    assert!(refused.contains("status=401"), "{refused}");
    assert!(!refused.contains("principal="), "{refused}");
}
