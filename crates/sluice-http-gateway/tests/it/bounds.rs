//! The gateway is served under the API's connection bounds: a client must open its request
//! (HTTP/1.1 header, or HTTP/2's preface) within the header timeout, and connections beyond
//! the limit wait until one closes.

use crate::harness::{Env, Options};
use sluice_server::serve::HttpOptions;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway whose clients must open a request within `timeout` (and whose idle
/// connections close after it).
async fn with_header_timeout(timeout: Duration) -> Env {
    Env::with(Options {
        http: HttpOptions {
            header_timeout: timeout,
            ..HttpOptions::default()
        },
        ..Options::default()
    })
    .await
}

/// What the server sent before it closed the connection.
async fn until_closed(tcp: &mut TcpStream) -> String {
    String::from_utf8_lossy(&bytes_until_closed(tcp).await).into_owned()
}

/// The bytes the server sent before it closed the connection.
async fn bytes_until_closed(tcp: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got))
        .await
        .expect("closed by the gateway within 10 s")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_opened_in_time_is_cut() {
    let timeout = Duration::from_millis(400);
    let env = with_header_timeout(timeout).await;
    // Nothing at all; the first byte of HTTP/2's preface (also the first of `POST`); most of
    // the preface; half an HTTP/1.1 header.
    let openings: [&[u8]; 4] = [
        b"",
        b"P",
        b"PRI * HTTP/2.0\r\n",
        b"POST /payments-admin/v1/refunds/1 HTTP/1.1\r\nHost: gw\r\n",
    ];
    for opening in openings {
        let mut tcp = TcpStream::connect(env.gateway).await.expect("connect");
        tcp.write_all(opening).await.expect("write");
        let started = Instant::now();
        let got = until_closed(&mut tcp).await;
        let shown = String::from_utf8_lossy(opening);
        assert!(
            started.elapsed() >= timeout - Duration::from_millis(50),
            "{shown:?}: closed before the timeout, after {:?}",
            started.elapsed()
        );
        assert!(
            !got.contains("200 OK"),
            "{shown:?}: nothing is answered to an unfinished request: {got}"
        );
    }
    assert!(
        env.upstream.seen().is_empty(),
        "nothing reached the upstream"
    );

    // A whole request is answered (a refusal: no token), and the idle connection is closed.
    let mut tcp = TcpStream::connect(env.gateway).await.expect("connect");
    tcp.write_all(b"GET /payments-admin/v1/refunds HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .expect("a request");
    let got = until_closed(&mut tcp).await;
    assert!(got.starts_with("HTTP/1.1 401"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_one_to_close() {
    let env = Env::with(Options {
        http: HttpOptions {
            max_connections: 1,
            header_timeout: Duration::from_secs(30),
            ..HttpOptions::default()
        },
        ..Options::default()
    })
    .await;
    let holder = TcpStream::connect(env.gateway).await.expect("connect");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("http://{}/payments-admin/v1/refunds", env.gateway);
    let mut waiting = tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) });
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
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
}

/// The HTTP/2 frames in `bytes` (as the server sent them): their types, in order.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

/// hyper's HTTP/2 server has no idle timeout of its own: an HTTP/2 connection that opens and
/// then sends nothing is told to go away (GOAWAY) and closed once idle for the header
/// timeout, as an idle HTTP/1.1 connection is, rather than holding one of the gateway's
/// connections for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_told_to_go_away_and_closed() {
    let timeout = Duration::from_millis(400);
    let env = with_header_timeout(timeout).await;
    let mut tcp = TcpStream::connect(env.gateway).await.expect("connect");
    // The preface and an empty SETTINGS frame: a whole HTTP/2 opening, then nothing.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("write");
    let started = Instant::now();
    let got = bytes_until_closed(&mut tcp).await;
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(50),
        "closed before the timeout, after {:?}",
        started.elapsed()
    );
    let types = frame_types(&got);
    assert_eq!(
        types.first(),
        Some(&4),
        "the server's SETTINGS first: {types:?}"
    );
    assert!(types.contains(&7), "a GOAWAY before the close: {types:?}");
}

/// An answer still streaming is a request in progress: an HTTP/2 connection carrying it is
/// not idle, however long the stream lasts past the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_in_progress_outlasts_the_idle_timeout() {
    let env = with_header_timeout(Duration::from_millis(300)).await;
    let alice = env.token("alice").await;
    env.grant(&alice, "stream-read", "10m").await;
    let url = format!("http://{}/payments-admin/stream", env.gateway);
    let auth = format!("Authorization: Bearer {alice}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args([
                "-sN",
                "--http2-prior-knowledge",
                "--max-time",
                "2",
                "-H",
                &auth,
                &url,
            ])
            .output()
            .expect("curl is installed (see .ci/run)")
    })
    .await
    .expect("joined");
    let body = String::from_utf8_lossy(&out.stdout);
    // 28: curl's own `--max-time` ended it, not the server.
    assert_eq!(
        out.status.code(),
        Some(28),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.lines().count() >= 20,
        "chunks kept coming for 2 s: {body}"
    );
}
