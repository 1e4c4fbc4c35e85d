//! The HTTP gateway through the real binary: `sluice serve --config` with `http_services:`,
//! the example policy's refunds story (`ci-bot`, auto-approved for ten minutes), a call
//! through the gateway, and `sluice gateway calls` listing it.

use crate::harness::{free_port, Serve, ADMIN_TOKEN};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that answers every request `200 ok` and sends back, one per line, the request
/// heads it received.
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
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_bot_refunds_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (up_port, mut heads) = upstream().await;
    let gw_port = free_port();
    let config = dir.path().join("sluice.yaml");
    std::fs::write(
        &config,
        format!(
            "http_gateway_listen: 127.0.0.1:{gw_port}
http_services:
  - name: payments-admin
    upstream: http://127.0.0.1:{up_port}
    credential: {{ header: authorization, value_env: SLUICE_IT_PAYMENTS_CREDENTIAL }}
"
        ),
    )
    .expect("write config");
    let s = Serve::start_with_env(
        dir.path(),
        &["--config", config.to_str().expect("utf-8")],
        &[("SLUICE_IT_PAYMENTS_CREDENTIAL", "Bearer it-upstream-key")],
    )
    .await;
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
