//! Client-side TLS: a configured certificate, or a self-signed one generated into the data
//! directory on first start (its SHA-256 fingerprint is what clients pin).

use crate::config::TlsSource;
use anyhow::Context;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The acceptor and the SHA-256 fingerprint of the leaf certificate.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub fingerprint: String,
    /// True when this start generated the certificate.
    pub generated: bool,
}

pub fn load(source: &TlsSource) -> anyhow::Result<Tls> {
    let (cert_path, key_path, generated) = match source {
        TlsSource::Files { cert, key } => (cert.clone(), key.clone(), false),
        TlsSource::SelfSigned { dir } => {
            let cert = dir.join("gateway-cert.pem");
            let key = dir.join("gateway-key.pem");
            let generated = if cert.exists() && key.exists() {
                false
            } else {
                generate(&cert, &key)?;
                true
            };
            (cert, key, generated)
        }
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(&cert_path)
            .with_context(|| format!("cannot open {}", cert_path.display()))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("invalid certificate {}", cert_path.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(&key_path)
            .with_context(|| format!("cannot open {}", key_path.display()))?,
    ))
    .with_context(|| format!("invalid key {}", key_path.display()))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("TLS certificate and key do not match")?;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        generated,
    })
}

/// `AB:CD:…`, the SHA-256 of the DER certificate.
pub fn fingerprint(cert: &[u8]) -> String {
    let digest = Sha256::digest(cert);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn generate(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .context("cannot generate the gateway certificate")?;
    write_private(key_path, certified.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(cert_path, certified.cert.pem())
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
