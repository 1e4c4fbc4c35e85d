//! The HTTP gateway through the real binary: `sluice serve --config` with `http_services:`,
//! the example policy's refunds story (`ci-bot`, auto-approved for ten minutes), a call
//! through the gateway, and `sluice gateway calls` listing it; a service declared, listed and
//! removed with `sluice gateway declare / services / remove`, and a call in progress listed and
//! killed with `sluice gateway sessions / kill`.

use crate::harness::{free_port, Serve, ADMIN_TOKEN};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers every request `200 ok` (`POST /v1/refunds/slow` after 3 s) and
/// sends back, one per line, the request heads it received.
async fn upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let slow = head.starts_with("POST /v1/refunds/slow ");
                let _ = tx.send(head);
                if slow {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, rx)
}

/// `sluice serve` with the config file declaring `payments-admin` on the upstream at
/// `up_port`, the gateway on `gw_port`, and `more` (config lines).
async fn serve_payments(dir: &std::path::Path, up_port: u16, gw_port: u16, more: &str) -> Serve {
    let config = dir.join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "http_gateway_listen: 127.0.0.1:{gw_port}
http_services:
  - name: payments-admin
    upstream: http://127.0.0.1:{up_port}
    credential: {{ header: authorization, value_env: SLUICE_IT_PAYMENTS_CREDENTIAL }}
{more}"
        ),
    )
    .expect("write config");
    Serve::start_with_env(
        dir,
        &["--config", config.to_str().expect("utf-8")],
        &[("SLUICE_IT_PAYMENTS_CREDENTIAL", "Bearer it-upstream-key")],
    )
    .await
}

/// The example policy applied, and `ci-bot`'s token with its auto-approved ten-minute
/// `refunds-admin` grant: (token, grant).
async fn ci_bot_with_refunds(s: &Serve) -> (String, serde_json::Value) {
    let admin = Some(ADMIN_TOKEN);
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.yaml");
    s.ok(admin, &["apply", "-f", policy, "--yes"]).await;
    let bot = s
        .ok(
            admin,
            &["tokens", "create", "--name", "ci", "--principal", "ci-bot"],
        )
        .await
        .trim()
        .to_owned();
    let grant = s
        .json(
            Some(&bot),
            &[
                "access",
                "request",
                "refunds-admin",
                "--for",
                "10m",
                "--reason",
                "nightly refunds",
            ],
        )
        .await;
    assert_eq!(grant["status"], "active", "{grant}");
    (bot, grant)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_bot_refunds_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, mut heads) = upstream().await;
    let gw_port = free_port();
    let s = serve_payments(dir.path(), up_port, gw_port, "").await;
    let admin = Some(ADMIN_TOKEN);
    let (bot, grant) = ci_bot_with_refunds(&s).await;

    let http = reqwest::Client::new();
    let r = http
        .post(format!(
            "http://127.0.0.1:{gw_port}/payments-admin/v1/refunds/42"
        ))
        .bearer_auth(&bot)
        .send()
        .await
        .expect("call through the gateway");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");
    let head = heads.recv().await.expect("the upstream got the call");
    assert!(
        head.starts_with("POST /v1/refunds/42 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(
        head.contains("authorization: Bearer it-upstream-key\r\n"),
        "{head}"
    );
    assert!(!head.contains(&bot), "{head}");

    // Listed from the audit trail once the result is recorded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let calls = loop {
        let v = s
            .json(admin, &["gateway", "calls", "--service", "payments-admin"])
            .await;
        if v["calls"].as_array().is_some_and(|c| !c.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "no call listed: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let c = &calls["calls"][0];
    assert_eq!(c["principal"], "ci-bot");
    assert_eq!(c["grant_id"], grant["id"]);
    assert_eq!(
        (c["method"].as_str(), c["path"].as_str()),
        (Some("POST"), Some("/v1/refunds/42"))
    );
    assert_eq!(c["status"], 200);
    let table = s
        .ok(admin, &["gateway", "calls", "--service", "payments-admin"])
        .await;
    assert!(
        table.contains("POST /v1/refunds/42") && table.contains("ci-bot"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_declared_and_calls_killed_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, mut heads) = upstream().await;
    let gw_port = free_port();
    let creds = dir.path().join("http-credentials");
    std::fs::create_dir(&creds).expect("mkdir");
    std::fs::write(creds.join("payments.key"), "Bearer it-file-key\n").expect("write key");
    let s = Serve::start_with(
        dir.path(),
        &[
            "--http-gateway-listen",
            &format!("127.0.0.1:{gw_port}"),
            "--http-credentials-dir",
            creds.to_str().expect("utf-8"),
        ],
    )
    .await;
    let admin = Some(ADMIN_TOKEN);
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy.yaml");
    s.ok(admin, &["apply", "-f", policy, "--yes"]).await;

    let help = s.ok(None, &["gateway", "declare", "--help"]).await;
    for part in [
        "--upstream",
        "--credential-env",
        "--credential-file",
        "SLUICE_HTTP_",
        "Example:",
    ] {
        assert!(help.contains(part), "{part} missing from:\n{help}");
    }
    let v = s.json(admin, &["gateway", "services"]).await;
    assert_eq!(v["services"], serde_json::json!([]), "{v}");

    let out = s
        .ok(
            admin,
            &[
                "gateway",
                "declare",
                "payments-admin",
                "--upstream",
                &format!("http://127.0.0.1:{up_port}"),
                "--credential-file",
                "payments.key",
                "--timeout",
                "10s",
            ],
        )
        .await;
    assert!(out.contains("declared http:payments-admin"), "{out}");
    let table = s.ok(admin, &["gateway", "services"]).await;
    assert!(
        table.contains("http:payments-admin")
            && table.contains("file:payments.key")
            && table.contains("api"),
        "{table}"
    );
    assert!(!table.contains("it-file-key"), "{table}");

    let bot = s
        .ok(
            admin,
            &["tokens", "create", "--name", "ci", "--principal", "ci-bot"],
        )
        .await
        .trim()
        .to_owned();
    s.ok(
        Some(&bot),
        &[
            "access",
            "request",
            "refunds-admin",
            "--for",
            "10m",
            "--reason",
            "refunds",
        ],
    )
    .await;
    // A call that waits for the upstream: in progress, listed, killed.
    let url = format!("http://127.0.0.1:{gw_port}/payments-admin/v1/refunds/slow");
    let caller = bot.clone();
    let waiting = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(caller)
            .send()
            .await
            .expect("sent");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    let head = heads.recv().await.expect("the upstream got the call");
    assert!(
        head.contains("authorization: Bearer it-file-key\r\n"),
        "{head}"
    );
    let live = s.json(admin, &["gateway", "sessions"]).await;
    let call = &live["calls"][0];
    assert_eq!(call["principal"], "ci-bot", "{live}");
    assert_eq!(call["path"], "/v1/refunds/slow", "{live}");
    let id = call["id"].as_str().expect("id").to_owned();
    let table = s.ok(admin, &["gateway", "sessions"]).await;
    assert!(
        table.contains(&id) && table.contains("POST /v1/refunds/slow"),
        "{table}"
    );
    let out = s.ok(admin, &["gateway", "kill", &id]).await;
    assert!(out.contains(&format!("killed {id}")), "{out}");
    let (status, body) = waiting.await.expect("joined");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("access_ended"), "{body}");
    let r = s.cli(admin, &["gateway", "kill", &id]).await;
    assert!(!r.success && r.stderr.contains("no call"), "{r:?}");

    let out = s.ok(admin, &["gateway", "remove", "payments-admin"]).await;
    assert!(out.contains("removed http:payments-admin"), "{out}");
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{gw_port}/payments-admin/v1/refunds/1"
        ))
        .bearer_auth(&bot)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 404);
    let v = s.json(admin, &["gateway", "services"]).await;
    assert_eq!(v["services"], serde_json::json!([]), "{v}");
}

/// SIGTERM while a call waits for its upstream: the gateway lets it finish (within
/// `shutdown_timeout`), the caller gets the upstream's answer, the call's record is written,
/// and only then does the server exit, 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_at_sigterm_is_answered_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, mut heads) = upstream().await;
    let gw_port = free_port();
    let s = serve_payments(dir.path(), up_port, gw_port, "shutdown_timeout: 20s\n").await;
    let (bot, grant) = ci_bot_with_refunds(&s).await;
    let url = format!("http://127.0.0.1:{gw_port}/payments-admin/v1/refunds/slow");
    let waiting = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(bot)
            .send()
            .await?;
        Ok::<_, reqwest::Error>((r.status().as_u16(), r.text().await?))
    });
    let head = heads.recv().await.expect("the upstream got the call");
    assert!(head.starts_with("POST /v1/refunds/slow "), "{head}");

    // The upstream answers 3 s after it got the call.
    let status = s.terminate().await;
    let answer = waiting.await.expect("joined");
    assert!(
        matches!(&answer, Ok((200, body)) if body == "ok"),
        "the call in flight was cut by the shutdown: {answer:?}"
    );
    assert!(status.success(), "{status}");

    // Its record was written before the exit: listed after a restart.
    let s = serve_payments(dir.path(), up_port, gw_port, "").await;
    let calls = s
        .json(
            Some(ADMIN_TOKEN),
            &["gateway", "calls", "--service", "payments-admin"],
        )
        .await;
    let slow = calls["calls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["path"] == "/v1/refunds/slow")
        .unwrap_or_else(|| panic!("the call is not listed: {calls}"));
    assert_eq!(slow["status"], 200, "{slow}");
    assert_eq!(slow["grant_id"], grant["id"], "{slow}");
    s.ok(Some(ADMIN_TOKEN), &["audit", "verify"]).await;
}
