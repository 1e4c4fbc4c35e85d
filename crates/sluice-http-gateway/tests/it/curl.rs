//! `curl` as a caller: HTTP/2 (cleartext, prior knowledge) through the gateway, and a path
//! sent as is (`--path-as-is`), the way an attacker would.

use crate::harness::Env;

fn curl(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl is installed (see .ci/run)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_over_http2_and_with_a_raw_path() {
    let env = Env::start().await;
    let alice = env.token("alice").await;
    env.grant(&alice, "refunds-admin", "10m").await;
    let auth = format!("Authorization: Bearer {alice}");
    let base = format!("http://{}/payments-admin", env.gateway);
    let (a, b, c) = (auth.clone(), auth.clone(), base.clone());
    let h2 = tokio::task::spawn_blocking(move || {
        curl(&[
            "--http2-prior-knowledge",
            "-X",
            "POST",
            "-H",
            &a,
            &format!("{c}/v1/refunds/1"),
        ])
    });
    assert_eq!(h2.await.unwrap(), "2 200");
    let raw = tokio::task::spawn_blocking(move || {
        curl(&[
            "--path-as-is",
            "-X",
            "POST",
            "-H",
            &b,
            &format!("{base}/v1/refunds/%2e%2e/payouts/1"),
        ])
    });
    assert_eq!(raw.await.unwrap(), "1.1 403");
    let seen = env.upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/v1/refunds/1");
}
