//! The edge's last snapshot on disk, so that it answers after a restart while the upstream is
//! unreachable. The file is the snapshot's JSON behind one header line carrying an HMAC-SHA256
//! of it, keyed from the edge key: an edited file, or one another key wrote, is refused.
//!
//! The snapshot holds no secret — client keys only as SHA-256 hashes of 256-bit secrets — but
//! it decides answers, so it must be the one the central server gave.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sluice_api::edge::EdgeSnapshot;
use sluice_core::token::SecretToken;
use std::path::{Path, PathBuf};

const MAGIC: &str = "sluice-edge-snapshot v1 ";

/// Why a snapshot file was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} fails its integrity check (edited, or written with another edge key)")]
    Tampered { path: PathBuf },
    #[error("{path} does not read as a snapshot: {message}")]
    Malformed { path: PathBuf, message: String },
}

/// The snapshot file of an edge under `data_dir`, sealed with a key derived from its edge key.
#[derive(Clone)]
pub struct SnapshotFile {
    path: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SnapshotFile {
    pub fn new(data_dir: &Path, edge_key: &SecretToken) -> SnapshotFile {
        // A key for this use only: the edge key itself never keys anything else here.
        let mut h = Sha256::new();
        h.update(b"sluice edge snapshot file\0");
        h.update(edge_key.expose().as_bytes());
        SnapshotFile {
            path: data_dir.join("edge-snapshot.json"),
            key: h.finalize().into(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The MAC of `body`; `None` only if HMAC refused the key, which it never does.
    fn mac(&self, body: &[u8]) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(body);
        Some(mac)
    }

    /// Writes `snapshot` atomically (a temporary file renamed over the old one).
    pub fn save(&self, snapshot: &EdgeSnapshot) -> Result<(), DiskError> {
        let body = serde_json::to_vec(snapshot).map_err(|e| DiskError::Malformed {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let mac = self.mac(&body).ok_or_else(|| DiskError::Malformed {
            path: self.path.clone(),
            message: "no MAC".into(),
        })?;
        let tag = hex::encode(mac.finalize().into_bytes());
        let mut out = Vec::with_capacity(body.len() + 100);
        out.extend_from_slice(MAGIC.as_bytes());
        out.extend_from_slice(tag.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&body);
        let tmp = self.path.with_extension("json.tmp");
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| DiskError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        write_private(&tmp, &out).map_err(|source| DiskError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &self.path).map_err(|source| DiskError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// The saved snapshot; `Ok(None)` when there is none.
    pub fn load(&self) -> Result<Option<EdgeSnapshot>, DiskError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DiskError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let tampered = || DiskError::Tampered {
            path: self.path.clone(),
        };
        let newline = bytes
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(tampered)?;
        let (head, body) = (&bytes[..newline], &bytes[newline + 1..]);
        let tag = std::str::from_utf8(head)
            .ok()
            .and_then(|h| h.strip_prefix(MAGIC))
            .and_then(|t| hex::decode(t).ok())
            .ok_or_else(tampered)?;
        // Constant-time comparison.
        self.mac(body)
            .ok_or_else(tampered)?
            .verify_slice(&tag)
            .map_err(|_| tampered())?;
        serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| DiskError::Malformed {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: char) -> SecretToken {
        SecretToken::from_presented(&format!("slu_edg_{}", c.to_string().repeat(64)))
    }

    #[test]
    fn a_saved_snapshot_loads_and_an_edited_or_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = SnapshotFile::new(dir.path(), &key('a'));
        assert!(file.load().unwrap().is_none());
        let snap = EdgeSnapshot {
            environments: Vec::new(),
        };
        file.save(&snap).unwrap();
        assert!(file.load().unwrap().is_some());
        // Another key's file.
        let other = SnapshotFile::new(dir.path(), &key('b'));
        assert!(matches!(other.load(), Err(DiskError::Tampered { .. })));
        // One byte of the body changed.
        let mut bytes = std::fs::read(file.path()).unwrap();
        let last = bytes.len() - 2;
        bytes[last] = b' ';
        std::fs::write(file.path(), &bytes).unwrap();
        assert!(matches!(file.load(), Err(DiskError::Tampered { .. })));
    }
}
