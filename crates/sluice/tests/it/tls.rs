//! TLS on the API listener: `sluice serve --tls-cert/--tls-key`, the command line checking
//! the server with a CA file or a pinned fingerprint, a certificate reloaded when its files
//! change, and plain HTTP refused off loopback.

use crate::harness::{command, free_port, offline, ADMIN_TOKEN};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A certificate authority and a `localhost`/`127.0.0.1` certificate it signed, written as
/// `ca.pem`, `cert.pem` and `key.pem` under `dir`; returns the leaf's SHA-256 fingerprint.
fn issue(dir: &Path, ca_name: &str) -> String {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("leaf");
    std::fs::write(dir.join(format!("{ca_name}.pem")), ca_cert.pem()).expect("write");
    // The key first: the server reloads once both files have changed.
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
    std::fs::write(dir.join("cert.pem"), leaf.pem()).expect("write");
    Sha256::digest(leaf.der().as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("CA");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA"))
        .build()
        .expect("client")
}

async fn cli(dir: &Path, addr: &str, extra: &[&str]) -> crate::harness::Run {
    let mut args = vec!["whoami"];
    args.extend_from_slice(extra);
    let mut c = command();
    c.args(&args)
        .env("SLUICE_ADDR", addr)
        .env("SLUICE_TOKEN", ADMIN_TOKEN)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .expect("within 30 s")
        .expect("ran");
    crate::harness::Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_tls_the_cli_checks_it_and_a_new_certificate_is_taken_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let first = issue(d, "ca-one");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = command()
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(d.join("data"))
        .arg("--tls-cert")
        .arg(d.join("cert.pem"))
        .arg("--tls-key")
        .arg(d.join("key.pem"))
        .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sluice serve");
    let addr = format!("https://127.0.0.1:{port}");
    let http = trusting(&d.join("ca-one.pem"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let resp = loop {
        if let Ok(Some(status)) = server.try_wait() {
            panic!("sluice serve exited early: {status}");
        }
        if let Ok(r) = http.get(format!("{addr}/healthz")).send().await {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "sluice serve did not answer over TLS"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(resp.status().is_success());
    assert_eq!(
        resp.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");

    let ca = d.join("ca-one.pem");
    let ca = ca.to_str().expect("utf-8");
    let r = cli(d, &addr, &["--ca-file", ca]).await;
    assert!(r.success, "{}", r.stderr);
    assert!(r.stdout.contains("admin"), "{}", r.stdout);
    // Without the CA the server is not trusted; with the right pin it is, a wrong one not.
    let r = cli(d, &addr, &[]).await;
    assert!(!r.success, "{}", r.stdout);
    let r = cli(d, &addr, &["--tls-fingerprint", &first]).await;
    assert!(r.success, "{}", r.stderr);
    let wrong = format!("00{}", &first[2..]);
    let r = cli(d, &addr, &["--tls-fingerprint", &wrong]).await;
    assert!(!r.success, "{}", r.stdout);
    assert!(
        r.stderr.contains(&first),
        "names the fingerprint it saw: {}",
        r.stderr
    );

    // A new certificate from another CA: taken without a restart.
    let second = issue(d, "ca-two");
    assert_ne!(first, second);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = cli(d, &addr, &["--tls-fingerprint", &second]).await;
        if r.success {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken: {}",
            r.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let two = d.join("ca-two.pem");
    let r = cli(d, &addr, &["--ca-file", two.to_str().expect("utf-8")]).await;
    assert!(r.success, "{}", r.stderr);
    let r = cli(d, &addr, &["--ca-file", ca]).await;
    assert!(!r.success, "the old CA no longer vouches: {}", r.stdout);
    server.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_off_loopback_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = d.join("data");
    let data = data.to_str().expect("utf-8");
    let r = offline(&["serve", "--listen", "0.0.0.0:0", "--data-dir", data], d).await;
    assert!(!r.success);
    assert!(
        r.stderr
            .contains("refusing to serve plain HTTP on 0.0.0.0:0"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--allow-plain-http"), "{}", r.stderr);
    assert!(
        !d.join("data").join("sluice.db").exists(),
        "refused before anything was created"
    );
}
