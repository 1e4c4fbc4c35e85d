use std::fs;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt as _;

use sluice_audit::{AuditSigner, AuditVerifier, ChainHead, CheckpointError, KeyError};

use crate::{at, chain};

#[test]
fn load_or_create_creates_a_private_key_file_and_loads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.key");
    let created = AuditSigner::load_or_create(&path).unwrap();
    let pem = fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    #[cfg(unix)]
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let loaded = AuditSigner::load_or_create(&path).unwrap();
    assert_eq!(loaded.verifying_key(), created.verifying_key());
    assert_eq!(
        AuditSigner::from_pem(&pem).unwrap().verifying_key(),
        created.verifying_key()
    );
    // A checkpoint by one verifies with the other.
    let checkpoint = created.sign(&chain(1)[0].head(), at(5));
    assert_eq!(loaded.verifying_key().verify(&checkpoint), Ok(()));
}

#[cfg(unix)]
#[test]
fn load_or_create_refuses_a_key_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.key");
    AuditSigner::load_or_create(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = AuditSigner::load_or_create(&path).unwrap_err();
    assert!(
        matches!(err, KeyError::InsecurePermissions { mode: 0o644, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("mode 644") && message.contains("chmod 600"),
        "{message}"
    );
    // The file was left alone.
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(
        AuditSigner::load_or_create(&path),
        Err(KeyError::InsecurePermissions { mode: 0o640, .. })
    ));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert!(AuditSigner::load_or_create(&path).is_ok());
}

#[test]
fn garbage_key_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.key");
    fs::write(&path, "not a key").unwrap();
    #[cfg(unix)]
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = AuditSigner::load_or_create(&path).unwrap_err();
    assert!(matches!(err, KeyError::PrivateKey(_)), "{err:?}");
    assert!(matches!(
        AuditVerifier::from_pem("nope"),
        Err(KeyError::PublicKey(_))
    ));

    let missing_dir = dir.path().join("no-such-dir").join("audit.key");
    let err = AuditSigner::load_or_create(&missing_dir).unwrap_err();
    assert!(matches!(err, KeyError::Create { .. }), "{err:?}");
}

#[test]
fn public_key_pem_round_trips_and_has_a_stable_key_id() {
    let signer = AuditSigner::generate();
    let verifier = signer.verifying_key();
    let pem = verifier.to_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    let parsed = AuditVerifier::from_pem(&pem).unwrap();
    assert_eq!(parsed, verifier);
    assert_eq!(parsed.key_id(), verifier.key_id());
    assert_eq!(verifier.key_id().len(), 16);
    assert!(verifier
        .key_id()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(
        AuditSigner::generate().verifying_key().key_id(),
        verifier.key_id()
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.key");
    let signer = AuditSigner::load_or_create(&path).unwrap();
    let pem = fs::read_to_string(&path).unwrap();
    let secret_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("redacted") && debug.contains(signer.verifying_key().key_id()),
        "{debug}"
    );
    assert!(!debug.contains(&secret_b64));
}

#[test]
fn sign_truncates_time_and_verify_reports_why() {
    let signer = AuditSigner::generate();
    let head = ChainHead {
        seq: 3,
        hash: "12".repeat(32),
    };
    let checkpoint = signer.sign(&head, at(1) + chrono::Duration::microseconds(999));
    assert_eq!(checkpoint.at, at(1));
    assert_eq!(checkpoint.head(), head);
    assert_eq!(checkpoint.key_id, signer.verifying_key().key_id());
    let signed = String::from_utf8(checkpoint.signed_bytes()).unwrap();
    assert_eq!(
        signed,
        format!(
            "sluice-audit-checkpoint-v1\n{{\"at\":\"2026-11-27T07:00:00.001Z\",\"hash\":\"{}\",\
             \"key_id\":\"{}\",\"seq\":3}}",
            head.hash, checkpoint.key_id
        )
    );

    let other = AuditSigner::generate().verifying_key();
    assert!(matches!(
        other.verify(&checkpoint),
        Err(CheckpointError::UnknownKey { .. })
    ));
    let mut altered = checkpoint.clone();
    altered.seq = 4;
    assert_eq!(
        signer.verifying_key().verify(&altered),
        Err(CheckpointError::BadSignature)
    );
    altered.signature = "%%".into();
    assert_eq!(
        signer.verifying_key().verify(&altered),
        Err(CheckpointError::MalformedSignature)
    );
}
