//! The identity provider's refresh tokens, sealed at rest.
//!
//! A refresh token lets whoever holds it mint ID tokens for a person until the provider
//! revokes it, so the database never holds one in the clear: each is sealed with
//! XChaCha20-Poly1305 (a random 192-bit nonce per seal) under a key derived with HKDF-SHA256
//! from the audit signing key ([`sluice_audit::AuditSigner::derive_key`]). That key already
//! lives outside the database, private to its owner (0600), and every instance of one
//! deployment holds the same one; so a copy of the database alone opens nothing, and any
//! instance opens what another sealed.
//!
//! The seal is bound to its row: the associated data is the principal and the session token's
//! id, so a sealed token copied onto another person's session does not open. A token that
//! does not open (sealed under another key — the signing key was replaced — or edited) is
//! [`Unsealable`]: the refresh is refused and the person's sessions end, as when the provider
//! refuses.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The HKDF `info` the sealing key is derived under.
pub const PURPOSE: &[u8] = b"sluice idp refresh token seal";
/// What every sealed value starts with: the format's version.
const PREFIX: &str = "v1.";
/// XChaCha20's nonce length.
const NONCE: usize = 24;

/// A sealed value did not open: another key, another row, or edited.
#[derive(Debug, thiserror::Error)]
#[error("the stored refresh token does not open with this server's key (sealed under another key, for another session, or edited)")]
pub struct Unsealable;

/// Seals and opens refresh tokens under one key. Its `Debug` shows nothing of the key.
pub struct Sealer(XChaCha20Poly1305);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer under the 32-byte `key`.
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer(XChaCha20Poly1305::new(key.into()))
    }

    /// The sealer of a server whose audit signing key is `signer`.
    #[must_use]
    pub fn of(signer: &sluice_audit::AuditSigner) -> Sealer {
        Sealer::new(&signer.derive_key(PURPOSE))
    }

    /// `refresh_token` sealed for the session token `token_id` of `principal`: `v1.` and the
    /// base64url of nonce and ciphertext.
    pub fn seal(
        &self,
        principal: &str,
        token_id: &str,
        refresh_token: &str,
    ) -> Result<String, Unsealable> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut chacha20poly1305::aead::OsRng);
        let aad = associated(principal, token_id);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: refresh_token.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Unsealable)?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(raw)))
    }

    /// Opens what [`Sealer::seal`] made for the same principal and session token.
    pub fn open(
        &self,
        principal: &str,
        token_id: &str,
        sealed: &str,
    ) -> Result<String, Unsealable> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(Unsealable)?;
        if raw.len() <= NONCE {
            return Err(Unsealable);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE);
        let aad = associated(principal, token_id);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| Unsealable)?;
        String::from_utf8(plain).map_err(|_| Unsealable)
    }
}

/// The row a seal is bound to: principal and session token id, each length-prefixed so no
/// two pairs give the same bytes.
fn associated(principal: &str, token_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + principal.len() + token_id.len());
    for part in [principal, token_id] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_row() {
        let s = Sealer::new(&[7; 32]);
        let sealed = s.seal("alice", "tok_1", "rt-secret").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("rt-secret"));
        assert_eq!(s.open("alice", "tok_1", &sealed).unwrap(), "rt-secret");
        // A fresh nonce each time: the same token never seals to the same text.
        assert_ne!(s.seal("alice", "tok_1", "rt-secret").unwrap(), sealed);
        assert!(Sealer::new(&[8; 32])
            .open("alice", "tok_1", &sealed)
            .is_err());
        assert!(s.open("bob", "tok_1", &sealed).is_err());
        assert!(s.open("alice", "tok_2", &sealed).is_err());
        assert!(s.open("alice", "tok_1", "rt-secret").is_err());
        let mut edited = sealed.clone();
        edited.pop();
        edited.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open("alice", "tok_1", &edited).is_err());
    }
}
