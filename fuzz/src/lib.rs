//! Fixtures shared by the fuzz targets and by the seed writer (`cargo run --example seeds`):
//! a small policy, a small flag set and a small signed audit export, all built the same way
//! every time, so that the committed seeds match what the targets expect.

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
use serde_json::json;
use sluice_audit::{AuditSigner, AuditVerifier, ChainHead, Format, NewEntry};

/// A policy that exercises most of the parser and the decision path: groups, an environment
/// with a static context, standing permissions with and without conditions, entitlements,
/// attributes, subject ids and subject types.
pub const POLICY: &str = r#"users: [alice, bob, Carol]
service_accounts: [ci-bot]
admins: [group:leads]
groups:
  ops: [alice, bob]
  leads: [carol]
environments:
  production:
    protected: true
    approval: { required: 1, approvers: [group:leads] }
    context: { region: eu }
  staging: {}
permissions:
  - to: [group:ops]
    resource: "flag:staging/**"
    actions: ["*"]
  - to: [bob]
    resource: "db:orders"
    actions: [read, "GET /v1/orders/*"]
    when: 'context.ticket.startsWith("INC-") && principal.team == "payments"'
  - to: [ci-bot]
    resource: "http:payments-*"
    actions: ["POST /v1/refunds/*"]
    when: 'resource.amount < 100 && now < timestamp("2030-01-01T00:00:00Z")'
entitlements:
  - name: flags-prod-operator
    scopes:
      - resource: "flag:production/**"
        actions: [toggle]
    requesters: [group:ops]
    max_duration: 1h
    approval: { required: 1, approvers: [group:leads] }
    auto_approve: { requester_in: [alice], max_duration: 30m }
    ticket_pattern: "^INC-[0-9]+$"
attributes:
  bob: { team: payments }
subject_ids:
  "auth0|b0b": bob
subject_types:
  robot: service
"#;

/// A flag set with a static flag, each targeting operator flagd defines, a shared evaluator
/// and a disabled flag.
pub const FLAGS: &str = r#"{
  "$evaluators": { "staff": { "ends_with": [{ "var": "email" }, "@example.com"] } },
  "flags": {
    "static": { "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "on" },
    "staff": { "state": "ENABLED", "variants": { "on": true, "off": false }, "defaultVariant": "off",
      "targeting": { "if": [{ "$ref": "staff" }, "on"] } },
    "rollout": { "state": "ENABLED", "variants": { "a": "a", "b": "b" }, "defaultVariant": "a",
      "targeting": { "fractional": [["a", 50], ["b", 50]] } },
    "semver": { "state": "ENABLED", "variants": { "new": 2, "old": 1.5 }, "defaultVariant": "old",
      "targeting": { "if": [{ "sem_ver": [{ "var": "version" }, ">=", "1.2.0"] }, "new"] } },
    "region": { "state": "ENABLED", "variants": { "eu": { "lang": "de" }, "us": { "lang": "en" } },
      "defaultVariant": "us",
      "targeting": { "if": [{ "in": [{ "var": "region" }, ["eu", "ch"]] }, "eu",
        { "starts_with": [{ "var": "targetingKey" }, "user-"] }, "us", null] } },
    "off": { "state": "DISABLED", "variants": { "on": true }, "defaultVariant": "on" }
  }
}"#;

/// The fixed moment every target evaluates at.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The audit signing key of the fixture export, made from fixed bytes (never a real key).
fn signer() -> AuditSigner {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("a fixed key encodes");
    AuditSigner::from_pem(&pem).expect("a fixed key parses")
}

/// The public key that verifies [`audit_export`].
pub fn audit_verifier() -> AuditVerifier {
    signer().verifying_key()
}

/// A small valid export: five entries in both canonical formats (objects, numbers, strings
/// with escapes, absent resource and subject), a checkpoint in the middle and one of
/// the head at the end, as `sluice audit export` writes it.
pub fn audit_export() -> Vec<u8> {
    let signer = signer();
    let t = now();
    let new = [
        NewEntry::new("alice", "access.request.created")
            .resource("flag:production/checkout-v2")
            .subject_id("req_1")
            .details(json!({"reason": "INC-4411 \"checkout\" errors", "minutes": 30})),
        NewEntry::new("system:policy", "access.approved")
            .subject_id("req_1")
            .details(json!({"auto": true, "ratio": 0.25})),
        NewEntry::new("bob", "decision.deny")
            .resource("db:orders")
            .details(json!({"subject": "bob", "action": "read", "nested": [1, [2, {"k": null}]]})),
        NewEntry::new("system:reaper", "access.expired").details(json!({})),
        NewEntry::new("carol", "flag.toggled")
            .resource("flag:production/new-search")
            .details(json!({"from": "off", "to": "on", "unicode": "é\u{1F600}"})),
    ];
    let mut head = ChainHead::genesis();
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for (i, n) in new.into_iter().enumerate() {
        let at = t + chrono::TimeDelta::milliseconds(1_234 * i as i64);
        // The fourth entry as format 1 wrote it: exports hold both.
        let e = match i {
            3 => head.append_as(Format::V1, at, n),
            _ => head.append(at, n),
        };
        head = e.head();
        entries.push(e);
        if i == 2 {
            checkpoints.push(signer.sign(&head, at));
        }
    }
    checkpoints.push(signer.sign(&head, t + chrono::TimeDelta::seconds(10)));
    let mut out = Vec::new();
    sluice_audit::write_export(&mut out, &entries, &checkpoints).expect("writes to memory");
    out
}

/// Writes the seeds made from these fixtures under `dir` (`seeds/`): the valid export, the
/// same cut after its middle checkpoint (still verifies: the documented limit) and cut by one
/// line (does not), the fixture policy, and the fixture flags with a context. Run by the
/// `audit_verify` target when `SLUICE_FUZZ_WRITE_SEEDS` names the directory (see README.md).
pub fn write_seeds(dir: &std::path::Path) -> std::io::Result<()> {
    let write = |path: &str, bytes: &[u8]| {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    };
    let export = audit_export();
    write("audit_verify/valid.jsonl", &export)?;
    let lines: Vec<&[u8]> = export.split_inclusive(|b| *b == b'\n').collect();
    write("audit_verify/cut-at-checkpoint.jsonl", &lines[..4].concat())?;
    write(
        "audit_verify/last-line-cut.jsonl",
        &lines[..lines.len() - 1].concat(),
    )?;
    write("policy_parse/fixture.yaml", POLICY.as_bytes())?;
    let context = br#"{"targetingKey": "user-1", "email": "ann@example.com", "version": "1.2.3"}"#;
    write(
        "definition_eval/fixture",
        &[FLAGS.as_bytes(), b"\0", context].concat(),
    )
}
