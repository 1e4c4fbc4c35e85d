//! TLS on the API listener: a certificate and key from files (PEM), reloaded when either file
//! changes, without a restart. A reload that fails (a half-written file, a key that does not
//! match) is logged and the certificate in use stays.

use anyhow::Context as _;
use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the certificate and key files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The API listener's certificate, swapped whole when its files change.
pub struct ReloadingTls {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    fingerprint: String,
    /// Modification times and sizes of the files it was loaded from.
    stamp: Stamp,
}

type Stamp = [(Option<SystemTime>, u64); 2];

impl ReloadingTls {
    /// Loads `cert` and `key`; fails on anything a client would fail on later.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<ReloadingTls>> {
        let loaded = load(cert, key)?;
        Ok(Arc::new(ReloadingTls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(loaded),
        }))
    }

    /// `AB:CD:…`: the SHA-256 of the leaf certificate in use, which clients may pin.
    pub fn fingerprint(&self) -> String {
        self.current.load().fingerprint.clone()
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current.load().acceptor.clone()
    }

    /// Reloads if either file changed since the last load; `Ok(true)` when it did.
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = stamp(&self.cert, &self.key);
        if now == self.current.load().stamp {
            return Ok(false);
        }
        let loaded = load(&self.cert, &self.key)?;
        self.current.store(Arc::new(loaded));
        Ok(true)
    }

    /// Checks the files every [`RELOAD_POLL`] and swaps in a changed certificate.
    pub(crate) async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let this = self.clone();
            let reloaded = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            match reloaded {
                Ok(Ok(true)) => {
                    let fingerprint = self.fingerprint();
                    tracing::info!(%fingerprint, "reloaded the TLS certificate {} (SHA-256 {fingerprint})", self.cert.display());
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the TLS certificate or key changed but does not load, keeping the one in use: {e:#}")
                }
                Err(e) => tracing::warn!(error = %e, "reloading the TLS certificate failed: {e}"),
            }
        }
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| std::fs::metadata(p).map_or((None, 0), |m| (m.modified().ok(), m.len()));
    [one(cert), one(key)]
}

fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Loaded> {
    // Taken before reading, so a change made while reading is seen by the next check.
    let stamp = stamp(cert_path, key_path);
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert_path)
            .with_context(|| format!("cannot open the TLS certificate {}", cert_path.display()))?,
    ))
    .collect::<Result<_, _>>()
    .with_context(|| format!("invalid TLS certificate {}", cert_path.display()))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key_path)
            .with_context(|| format!("cannot open the TLS key {}", key_path.display()))?,
    ))
    .with_context(|| format!("invalid TLS key {}", key_path.display()))?
    .with_context(|| format!("no private key in {}", key_path.display()))?;
    let leaf = certs
        .first()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    let fingerprint = fingerprint(leaf);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Loaded {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
        stamp,
    })
}

/// `AB:CD:…`, the SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
