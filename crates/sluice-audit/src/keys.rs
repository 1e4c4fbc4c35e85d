//! The audit signing key (kept in a file, never in the database) and its public half.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    spki, DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::checkpoint::{signed_bytes, Checkpoint, CheckpointError};
use crate::entry::ChainHead;
use crate::time::truncate_to_millis;

/// Why a key could not be loaded, created or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read audit signing key {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create audit signing key {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error(
        "audit signing key {} is readable or writable by group or others (mode {mode:03o}); \
         it must be private to its owner: chmod 600 {}",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error("not a PKCS#8 PEM Ed25519 private key: {0}")]
    PrivateKey(#[source] ed25519_dalek::pkcs8::Error),
    #[error("not an SPKI PEM Ed25519 public key: {0}")]
    PublicKey(#[source] spki::Error),
    #[error("not a base64 raw Ed25519 public key: {0}")]
    Raw(String),
}

/// The private audit key: signs checkpoints.
///
/// Its `Debug` shows only the key id.
pub struct AuditSigner {
    key: SigningKey,
    verifier: AuditVerifier,
}

impl AuditSigner {
    /// A fresh key from the operating system's CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    fn from_signing_key(key: SigningKey) -> Self {
        let verifier = AuditVerifier::from_verifying_key(key.verifying_key());
        Self { key, verifier }
    }

    /// Parses a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`) Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_signing_key)
            .map_err(KeyError::PrivateKey)
    }

    /// Loads the key at `path`, or creates it there (PKCS#8 PEM, mode 0600 on Unix) if there
    /// is no file yet.
    ///
    /// On Unix, an existing file that group or others may read or write is refused: a key
    /// anyone could read would let them forge checkpoints. The parent directory must exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match Self::load_existing(path)? {
            Some(signer) => Ok(signer),
            None => Self::create(path),
        }
    }

    /// Loads the key at `path`; `None` if there is no file there. Refused like
    /// [`AuditSigner::load_or_create`] if group or others may read or write it.
    pub fn load_existing(path: &Path) -> Result<Option<Self>, KeyError> {
        match Self::load(path) {
            Err(KeyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Creates a fresh key at `path` (PKCS#8 PEM, mode 0600 on Unix). If another process
    /// created the file first, its key is loaded instead.
    pub fn create(path: &Path) -> Result<Self, KeyError> {
        let signer = Self::generate();
        match signer.create_file(path) {
            Ok(()) => Ok(signer),
            // Lost a race with another process creating the same key: use theirs.
            Err(KeyError::Create { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists =>
            {
                Self::load(path)
            }
            Err(e) => Err(e),
        }
    }

    fn load(path: &Path) -> Result<Self, KeyError> {
        let read_err = |source| KeyError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = fs::metadata(path).map_err(read_err)?;
        check_private(path, &meta)?;
        let pem = fs::read_to_string(path).map_err(read_err)?;
        Self::from_pem(&pem)
    }

    fn create_file(&self, path: &Path) -> Result<(), KeyError> {
        let create_err = |source| KeyError::Create {
            path: path.to_owned(),
            source,
        };
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(KeyError::PrivateKey)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(create_err)?;
        file.write_all(pem.as_bytes()).map_err(create_err)?;
        file.sync_all().map_err(create_err)
    }

    /// Signs `head` as of `at` (truncated to milliseconds).
    #[must_use]
    pub fn sign(&self, head: &ChainHead, at: DateTime<Utc>) -> Checkpoint {
        let at = truncate_to_millis(at);
        let key_id = self.verifier.key_id().to_owned();
        let signature = self
            .key
            .sign(&signed_bytes(head.seq, &head.hash, &at, &key_id));
        Checkpoint {
            seq: head.seq,
            hash: head.hash.clone(),
            at,
            key_id,
            signature: BASE64.encode(signature.to_bytes()),
        }
    }

    /// A 32-byte key for another purpose, derived from this signing key with HKDF-SHA256
    /// (RFC 5869) under `purpose`. One-way: it reveals nothing of the signing key, and keys
    /// for different purposes are unrelated. Every instance holding the same signing key
    /// derives the same key, and a rotated signing key derives another.
    #[must_use]
    #[expect(
        clippy::expect_used,
        reason = "HKDF-SHA256 expands to at most 255 * 32 bytes; 32 always fit"
    )]
    pub fn derive_key(&self, purpose: &[u8]) -> [u8; 32] {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"sluice derived key v1"), self.key.as_bytes());
        let mut out = [0u8; 32];
        hk.expand(purpose, &mut out)
            .expect("32 bytes is within HKDF-SHA256's output limit");
        out
    }

    /// The public half, to publish and to verify with.
    #[must_use]
    pub fn verifying_key(&self) -> AuditVerifier {
        self.verifier.clone()
    }
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field("key_id", &self.verifier.key_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

/// The public audit key: verifies checkpoints.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditVerifier {
    key: VerifyingKey,
    key_id: String,
}

impl AuditVerifier {
    fn from_verifying_key(key: VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let key_id = hex::encode(digest.get(..8).unwrap_or_default());
        Self { key, key_id }
    }

    /// Parses an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(Self::from_verifying_key)
            .map_err(KeyError::PublicKey)
    }

    /// The key as SPKI PEM, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(KeyError::PublicKey)
    }

    /// Lowercase hex of the first 8 bytes of SHA-256 of the raw 32-byte public key.
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Standard base64 (with padding) of the raw 32-byte public key: the form audit entries
    /// name a key in (see [`crate::KeyRotation`]).
    #[must_use]
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.key.as_bytes())
    }

    /// Parses [`AuditVerifier::to_base64`]'s form.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64
            .decode(text)
            .map_err(|_| KeyError::Raw("not base64".into()))?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::Raw("not 32 bytes".into()))?;
        VerifyingKey::from_bytes(&raw)
            .map(Self::from_verifying_key)
            .map_err(|e| KeyError::Raw(e.to_string()))
    }

    /// Checks that `checkpoint` was signed by this key, over exactly its `seq`, `hash`, `at`
    /// and `key_id`.
    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if checkpoint.key_id != self.key_id {
            return Err(CheckpointError::UnknownKey {
                found: checkpoint.key_id.clone(),
                trusted: self.key_id.clone(),
            });
        }
        let bytes = BASE64
            .decode(&checkpoint.signature)
            .map_err(|_| CheckpointError::MalformedSignature)?;
        let signature =
            Signature::from_slice(&bytes).map_err(|_| CheckpointError::MalformedSignature)?;
        self.key
            .verify_strict(&checkpoint.signed_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)
    }
}

impl fmt::Debug for AuditVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditVerifier")
            .field("key_id", &self.key_id)
            .finish()
    }
}
