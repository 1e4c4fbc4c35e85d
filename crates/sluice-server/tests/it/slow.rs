//! Slow clients: a connection whose request header never completes is closed after the
//! header timeout, and at most `max_connections` connections are served at once.

use crate::harness::{t0, ADMIN_TOKEN};
use sluice_core::token::SecretToken;
use sluice_server::serve::HttpOptions;
use sluice_server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(http: HttpOptions) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: format!("sqlite://{}", dir.path().join("sluice.db").display()),
        signing_key: dir.path().join("audit-signing.pem"),
        admin_token: Some(SecretToken::from_presented(ADMIN_TOKEN)),
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_millis(100),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let clock: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::ManualClock::new(t0()));
    let mut server = Server::build(config, clock).await.expect("server builds");
    server.http = http;
    let addr = server.local_addr().expect("bound");
    tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    (addr, dir)
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .expect("closed by the server within 10 s")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_header_is_cut_after_the_header_timeout() {
    let timeout = Duration::from_millis(400);
    let (addr, _dir) = start(HttpOptions {
        header_timeout: timeout,
        ..HttpOptions::default()
    })
    .await;

    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n")
        .await
        .expect("half a header");
    let started = Instant::now();
    let got = until_closed(&mut tcp).await;
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "no answer to half a request"
    );

    // A whole request is answered, and the idle keep-alive connection is closed after it.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")
        .await
        .expect("a request");
    let got = until_closed(&mut tcp).await;
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_one_to_close() {
    let (addr, _dir) = start(HttpOptions {
        max_connections: 1,
        header_timeout: Duration::from_secs(30),
        ..HttpOptions::default()
    })
    .await;
    let holder = TcpStream::connect(addr).await.expect("connect");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = format!("http://{addr}/healthz");
    let mut waiting =
        tokio::spawn(async move { http.get(healthz).send().await.map(|r| r.status()) });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut waiting)
            .await
            .is_err(),
        "a second connection is not served while the one allowed is open"
    );
    drop(holder);
    let status = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("served once the first closed")
        .expect("joined")
        .expect("answered");
    assert_eq!(status, reqwest::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_header_timeout() {
    let timeout = Duration::from_millis(300);
    let (addr, _dir) = start(HttpOptions {
        header_timeout: timeout,
        ..HttpOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let mut stream = http
        .get(format!("http://{addr}/v1/audit/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("stream opened");
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    // Idle for well past the header timeout: the timer runs only while a request header is
    // awaited, never while an answer is being sent.
    tokio::time::sleep(timeout * 3).await;
    let (st, body) = {
        let r = http
            .post(format!("http://{addr}/v1/tokens"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&serde_json::json!({"principal": "admin", "name": "late"}))
            .send()
            .await
            .expect("sent");
        (r.status(), r.text().await.expect("body"))
    };
    assert_eq!(st, reqwest::StatusCode::CREATED, "{body}");
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = String::new();
        while let Some(chunk) = stream.chunk().await.expect("stream still open") {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("token.created") {
                return seen;
            }
        }
        panic!("the stream ended: {seen}");
    })
    .await
    .expect("the entry arrived on the stream");
    assert!(got.contains("token.created"), "{got}");
}
