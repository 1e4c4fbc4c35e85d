//! WebSocket upgrades pass through: the upgrade request is decided (`GET /socket` on
//! `http:chat`) and recorded like any call, the upstream gets the service's credential and
//! never the caller's token, and the open connection is cut within a second when the grant
//! expires (on an injected clock, and on a real short grant), is revoked, or the call is
//! killed. A real WebSocket server (tokio-tungstenite) upstream and a real client.

use crate::harness::{env_credentials_dir, Env, Options, ADMIN_TOKEN};
use crate::live::wait_live;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const CHAT_SECRET: &str = "Bearer chat-secret-41c7";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One handshake the upstream received: path, and headers (name, value).
type Handshake = (String, Vec<(String, String)>);

/// A WebSocket server that records each handshake, echoes text messages and sends `tick`
/// every 50 ms.
#[derive(Clone, Default)]
struct WsUpstream {
    seen: Arc<Mutex<Vec<Handshake>>>,
}

async fn start_ws_upstream() -> (WsUpstream, std::net::SocketAddr) {
    let up = WsUpstream::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = up.seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                // The callback's signature is tungstenite's: its error is a whole response.
                #[expect(clippy::result_large_err, reason = "tungstenite's callback type")]
                let record = move |req: &Request, resp: Response| {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (
                                n.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    seen.lock().unwrap().push((req.uri().to_string(), headers));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
                    return;
                };
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                loop {
                    tokio::select! {
                        m = ws.next() => match m {
                            Some(Ok(Message::Text(t))) => {
                                if ws.send(Message::Text(t)).await.is_err() {
                                    return;
                                }
                            }
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                            Some(Ok(_)) => {}
                        },
                        _ = tick.tick() => {
                            if ws.send(Message::text("tick")).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (up, addr)
}

/// An Env with the service `chat` declared through the API in front of a WebSocket server.
async fn chat_env(o: Options) -> (Env, WsUpstream) {
    let env = Env::with(o).await;
    let (up, addr) = start_ws_upstream().await;
    std::fs::write(
        env_credentials_dir(env.dir.path()).join("chat.key"),
        CHAT_SECRET,
    )
    .unwrap();
    let (status, v) = env
        .api(
            ADMIN_TOKEN,
            "PUT",
            "/v1/http/services/chat",
            Some(json!({
                "upstream": format!("http://{addr}"),
                "credential": {"value_file": "chat.key"},
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    (env, up)
}

async fn connect(env: &Env, token: &str, path: &str) -> Result<Socket, WsError> {
    let mut req = format!("ws://{}{path}", env.gateway)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The status and JSON body of a refused upgrade.
fn refused(e: WsError) -> (u16, Value) {
    match e {
        WsError::Http(resp) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        other => panic!("not an HTTP refusal: {other}"),
    }
}

/// Reads until the connection ends; returns how many messages came. Panics if it stays
/// open 5 s.
async fn until_closed(mut ws: Socket) -> usize {
    let mut n = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(_))) => n += 1,
            Ok(Some(Err(_))) | Ok(None) => return n,
            Err(_) => panic!("the WebSocket was not cut within 5 s"),
        }
    }
}

fn wall_now() -> DateTime<Utc> {
    sluice_core::Clock::now(&sluice_core::SystemClock)
}

/// The calls to `chat` listed from the call log (ended or refused), once `n` are.
async fn chat_calls(env: &Env, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let v = env.get(ADMIN_TOKEN, "/v1/http/calls?service=chat").await;
        let calls = v["calls"].as_array().unwrap().clone();
        if calls.len() >= n {
            return calls;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_with_the_service_credential_and_is_listed() {
    let (env, up) = chat_env(Options::default()).await;
    let alice = env.token("alice").await;
    let (grant, _) = env.grant(&alice, "chat", "1h").await;
    let mut ws = connect(&env, &alice, "/chat/socket").await.unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    let echoed = loop {
        let m = ws.next().await.unwrap().unwrap();
        if m.to_text().unwrap() != "tick" {
            break m;
        }
    };
    assert_eq!(echoed.to_text().unwrap(), "hello");

    // The upstream's handshake: the path as decided, the service's credential, the
    // WebSocket headers; never the caller's token.
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (uri, headers) = &seen[0];
    assert_eq!(uri, "/socket");
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some(CHAT_SECRET));
    assert_eq!(header("upgrade").as_deref(), Some("websocket"));
    assert!(header("sec-websocket-key").is_some());
    assert!(
        headers.iter().all(|(_, v)| !v.contains(&alice)),
        "the caller's token reached the upstream: {headers:?}"
    );

    // A session of the gateway while it is open.
    let live = wait_live(&env, ADMIN_TOKEN, 1).await;
    assert_eq!(live[0]["websocket"], true, "{live:?}");
    assert_eq!(live[0]["service"], "chat");
    assert_eq!(live[0]["grant_id"], grant.as_str());
    assert_eq!(live[0]["path"], "/socket");

    // Closed by the caller: recorded as a completed call, with its bytes.
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    drop(ws);
    let calls = chat_calls(&env, 1).await;
    assert_eq!(calls[0]["status"], 101, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "completed", "{calls:?}");
    assert!(calls[0]["bytes_in"].as_u64().unwrap() > 0, "{calls:?}");
    assert!(calls[0]["bytes_out"].as_u64().unwrap() > 0, "{calls:?}");
    assert_eq!(env.records("admitted").await.len(), 1);
    wait_live(&env, ADMIN_TOKEN, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_request_is_decided_like_any_call() {
    let (env, up) = chat_env(Options::default()).await;
    let (alice, bob) = (env.token("alice").await, env.token("bob").await);

    let (status, v) = refused(connect(&env, &alice, "/chat/socket").await.unwrap_err());
    assert_eq!((status, v["code"].as_str()), (403, Some("no_grant")), "{v}");
    assert_eq!(v["entitlement"], "chat", "{v}");
    env.grant(&alice, "chat", "1h").await;
    let (status, v) = refused(connect(&env, &alice, "/chat/elsewhere").await.unwrap_err());
    assert_eq!((status, v["code"].as_str()), (403, Some("no_grant")), "{v}");
    let (status, v) = refused(connect(&env, &bob, "/chat/socket").await.unwrap_err());
    assert_eq!((status, v["code"].as_str()), (403, Some("no_grant")), "{v}");
    let (status, _) = refused(
        connect(&env, "slu_api_nope", "/chat/socket")
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 401);
    assert!(
        up.seen.lock().unwrap().is_empty(),
        "a refused upgrade reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_injected_clock_a_websocket_is_cut_within_a_second_of_expiry() {
    let clock = Arc::new(sluice_core::ManualClock::new(wall_now()));
    let (env, _up) = chat_env(Options {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let alice = env.token("alice").await;
    let (grant, expires_at) = env.grant(&alice, "chat", "1h").await;
    let ws = connect(&env, &alice, "/chat/socket").await.unwrap();
    let reading = tokio::spawn(until_closed(ws));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!reading.is_finished());

    // An hour passes on the clock the server was given.
    clock.set(expires_at);
    let moved = Instant::now();
    let messages = reading.await.unwrap();
    assert!(messages > 0);
    assert!(
        moved.elapsed() < Duration::from_secs(1),
        "cut {:?} after expiry",
        moved.elapsed()
    );
    let calls = chat_calls(&env, 1).await;
    assert_eq!(calls[0]["outcome"], "cut: grant expired", "{calls:?}");
    assert_eq!(calls[0]["grant_id"], grant.as_str());
    let (status, v) = refused(connect(&env, &alice, "/chat/socket").await.unwrap_err());
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("grant_expired")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_cut_within_a_second_of_a_real_short_grant_ending() {
    let (env, _up) = chat_env(Options::default()).await;
    let alice = env.token("alice").await;
    let (_, expires_at) = env.grant(&alice, "chat", "2s").await;
    let ws = connect(&env, &alice, "/chat/socket").await.unwrap();
    let messages = until_closed(ws).await;
    let late = wall_now() - expires_at;
    assert!(messages > 10, "only {messages} messages before the cut");
    assert!(late < TimeDelta::seconds(1), "cut {late} after expiry");
    assert!(
        late > TimeDelta::milliseconds(-50),
        "cut {late} before expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_a_kill_cut_a_websocket_at_once() {
    let (env, _up) = chat_env(Options::default()).await;
    let alice = env.token("alice").await;
    let (grant, _) = env.grant(&alice, "chat", "1h").await;

    let ws = connect(&env, &alice, "/chat/socket").await.unwrap();
    let reading = tokio::spawn(until_closed(ws));
    let id = wait_live(&env, ADMIN_TOKEN, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = env
        .api(
            ADMIN_TOKEN,
            "POST",
            &format!("/v1/http/sessions/{id}/kill"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let killed = Instant::now();
    reading.await.unwrap();
    assert!(
        killed.elapsed() < Duration::from_millis(500),
        "{:?}",
        killed.elapsed()
    );

    let ws = connect(&env, &alice, "/chat/socket").await.unwrap();
    let reading = tokio::spawn(until_closed(ws));
    wait_live(&env, ADMIN_TOKEN, 1).await;
    env.post(
        ADMIN_TOKEN,
        &format!("/v1/requests/{grant}/revoke"),
        json!({"reason": "test"}),
        200,
    )
    .await;
    let revoked = Instant::now();
    reading.await.unwrap();
    assert!(
        revoked.elapsed() < Duration::from_secs(1),
        "{:?}",
        revoked.elapsed()
    );

    let calls = chat_calls(&env, 2).await;
    let outcomes: Vec<_> = calls
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["cut: killed by admin", "cut: grant revoked"]);
    assert_eq!(env.entries("http.call.killed").await.len(), 1);
}
