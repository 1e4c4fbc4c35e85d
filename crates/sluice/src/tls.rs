//! How the command line checks an `https://` server: the system's roots by default, only the
//! certificate authority of `--ca-file`, or only the certificate whose SHA-256 fingerprint
//! `--tls-fingerprint` pins (as `sluice serve` logs it at start), whoever signed it.

use anyhow::{bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::Arc;

/// The HTTP client for these options; `None` when neither is given (the default client).
pub fn http_client(
    ca_file: Option<&Path>,
    fingerprint: Option<&str>,
) -> anyhow::Result<Option<reqwest::Client>> {
    let builder = match (ca_file, fingerprint) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => bail!("give --ca-file or --tls-fingerprint, not both"),
        (Some(path), None) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA file {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("no PEM certificate in the CA file {}", path.display()))?;
            if certs.is_empty() {
                bail!("no PEM certificate in the CA file {}", path.display());
            }
            certs.into_iter().fold(
                reqwest::Client::builder().tls_built_in_root_certs(false),
                reqwest::ClientBuilder::add_root_certificate,
            )
        }
        (None, Some(pin)) => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    sha256: parse_fingerprint(pin)?,
                    provider,
                }))
                .with_no_client_auth();
            reqwest::Client::builder().use_preconfigured_tls(config)
        }
    };
    Ok(Some(
        builder.build().context("cannot build the HTTP client")?,
    ))
}

/// `AB:CD:…` or plain hex, 32 bytes.
fn parse_fingerprint(text: &str) -> anyhow::Result<[u8; 32]> {
    let hex_text: String = text.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&hex_text, &mut out).with_context(|| {
        format!(
            "--tls-fingerprint `{text}` is not a SHA-256 fingerprint like AB:CD:… (64 hex digits)"
        )
    })?;
    Ok(out)
}

fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts exactly the pinned certificate (the handshake's signatures are still checked, so
/// the server must hold its key).
#[derive(Debug)]
struct Pinned {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Sha256::digest(end_entity.as_ref());
        if got.as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has SHA-256 fingerprint {}, not the pinned {}",
                show(&got),
                show(&self.sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
