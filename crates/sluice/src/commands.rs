//! The client commands: each builds a call, sends it, prints the answer.

use crate::cli::{AccessCommand, AuditCommand, FlagsCommand, Remote, TokenCommand};
use crate::client::{client, endpoint, Client, NO_BODY};
use crate::output::{self, emit, opt, s, table, when_at};
use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use sluice_api::access::{
    Comment, EntitlementView, Extension, NewRequest, RequestView, Revocation, ScopeView,
};
use sluice_api::admin::{CreatedToken, NewToken, TokenKind, TokenView, WhoAmI};
use sluice_api::audit::{AuditEntry, AuditPage, ProblemView, VerifyView};
use sluice_api::authzen::EvaluationResponse;
use sluice_api::flags::{EnvironmentView, EvaluationsView, FlagView, ImportResult, StaleView};
use std::path::Path;

fn parse_scope(raw: &str) -> anyhow::Result<ScopeView> {
    let (resource, actions) = raw.split_once('=').ok_or_else(|| {
        anyhow!("--scope takes RESOURCE=ACTION[,ACTION…], e.g. flag:production/checkout-v2=toggle")
    })?;
    let actions = actions
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ScopeView {
        resource: resource.to_owned(),
        actions,
    })
}

pub async fn access(cmd: AccessCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        AccessCommand::Request {
            entitlement,
            duration,
            reason,
            ticket,
            scopes,
            break_glass,
        } => {
            let scopes = if scopes.is_empty() {
                None
            } else {
                Some(
                    scopes
                        .iter()
                        .map(|s| parse_scope(s))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                )
            };
            let body = NewRequest {
                entitlement,
                duration,
                reason,
                ticket,
                scopes,
                break_glass,
            };
            let v: RequestView = c.send(Method::POST, "/v1/requests", Some(&body)).await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::List {
            status,
            mine,
            needs_review,
            limit,
        } => {
            let path = endpoint(
                &["v1", "requests"],
                &[
                    ("status", status),
                    ("requester", mine.then(|| "me".into())),
                    ("needs_review", needs_review.then(|| "true".into())),
                    ("limit", Some(limit.to_string())),
                ],
            );
            let v: Vec<RequestView> = c.send(Method::GET, &path, NO_BODY).await?;
            emit(r.output, v.as_slice(), output::requests)
        }
        AccessCommand::Show { id } => {
            let v: RequestView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "requests", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::Approve { id, comment } => {
            vote(&c, &r, &id, "approve", Some(&Comment { comment })).await
        }
        AccessCommand::Deny { id, comment } => {
            vote(&c, &r, &id, "deny", Some(&Comment { comment })).await
        }
        AccessCommand::Cancel { id } => vote(&c, &r, &id, "cancel", NO_BODY).await,
        AccessCommand::Revoke { id, reason } => {
            vote(&c, &r, &id, "revoke", Some(&Revocation { reason })).await
        }
        AccessCommand::Relinquish { id } => vote(&c, &r, &id, "relinquish", NO_BODY).await,
        AccessCommand::Review { id } => vote(&c, &r, &id, "review", NO_BODY).await,
        AccessCommand::Extend {
            id,
            duration,
            reason,
        } => {
            let body = Extension {
                duration,
                reason,
                ticket: None,
            };
            let v: RequestView = c
                .send(
                    Method::POST,
                    &endpoint(&["v1", "requests", &id, "extend"], &[]),
                    Some(&body),
                )
                .await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::Grants { mine } => {
            let path = endpoint(
                &["v1", "grants"],
                &[("principal", mine.then(|| "me".into()))],
            );
            let v: Vec<RequestView> = c.send(Method::GET, &path, NO_BODY).await?;
            emit(r.output, v.as_slice(), output::requests)
        }
        AccessCommand::Entitlements => {
            let v: Vec<EntitlementView> = c.send(Method::GET, "/v1/entitlements", NO_BODY).await?;
            emit(r.output, v.as_slice(), entitlement_table)
        }
        AccessCommand::WhoCan {
            action,
            resource,
            subject_type,
        } => crate::search_commands::who_can(&c, &r, &action, &resource, &subject_type).await,
        AccessCommand::WhatCan {
            target,
            kind,
            subject,
            subject_type,
        } => crate::search_commands::what_can(&c, &r, &target, kind, subject, &subject_type).await,
    }
}

fn entitlement_table(v: &[EntitlementView]) {
    let rows = v.iter().map(entitlement_row).collect();
    table(&["name", "max", "approval", "auto-approve", "scopes"], rows);
}

/// A list for people: `a, b`, or `-` for none.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn entitlement_row(e: &EntitlementView) -> Vec<String> {
    let scopes: Vec<String> = e
        .scopes
        .iter()
        .map(|x| format!("{} {}", x.resource, list(&x.actions)))
        .collect();
    vec![
        e.name.clone(),
        e.max_duration.clone(),
        format!("{} of {}", e.approvals_required, list(&e.approvers)),
        e.auto_approve.clone().unwrap_or_else(|| "-".into()),
        scopes.join("; "),
    ]
}

async fn vote(
    c: &Client,
    r: &Remote,
    id: &str,
    verb: &str,
    body: Option<&impl serde::Serialize>,
) -> anyhow::Result<()> {
    let v: RequestView = c
        .send(
            Method::POST,
            &endpoint(&["v1", "requests", id, verb], &[]),
            body,
        )
        .await?;
    emit(r.output, &v, output::request)
}

pub async fn audit(cmd: AuditCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        AuditCommand::Tail {
            actor,
            action,
            resource,
            since,
            until,
            after,
            limit,
            follow,
        } => {
            let path = endpoint(
                &["v1", "audit"],
                &[
                    ("actor", actor.clone()),
                    ("action", action.clone()),
                    ("resource", resource.clone()),
                    ("since", since),
                    ("until", until),
                    ("after", after.map(|a| a.to_string())),
                    ("limit", Some(limit.to_string())),
                    ("newest", Some("true".into())),
                ],
            );
            let page: AuditPage = c.send(Method::GET, &path, NO_BODY).await?;
            if follow {
                // One entry per line from the start, so the stream continues the same way.
                for e in &page.entries {
                    print_entry(r.output, e)?;
                }
                let last = page.entries.last().map(|e| e.seq).or(after);
                let path = endpoint(
                    &["v1", "audit", "stream"],
                    &[
                        ("actor", actor),
                        ("action", action),
                        ("resource", resource),
                        ("after", last.map(|a| a.to_string())),
                    ],
                );
                return c
                    .follow_events(&path, |data| {
                        let entry: AuditEntry = serde_json::from_str(data)
                            .with_context(|| format!("the server sent a bad entry: {data}"))?;
                        print_entry(r.output, &entry)
                    })
                    .await;
            }
            emit(r.output, &page, |page| {
                let rows = page.entries.iter().map(entry_row).collect();
                table(
                    &["seq", "at", "actor", "action", "resource", "subject"],
                    rows,
                );
            })
        }
        AuditCommand::Export { since, until, out } => {
            // Streamed: an export is the whole trail, not held in memory at once.
            let path = endpoint(
                &["v1", "audit", "export"],
                &[("since", since), ("until", until)],
            );
            match out {
                Some(file) => {
                    let mut f = std::fs::File::create(&file)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    let lines = match c.download(&path, &mut f).await {
                        Ok(n) => n,
                        Err(e) => {
                            drop(f);
                            // No half export left behind to be mistaken for a whole one.
                            let _ = std::fs::remove_file(&file);
                            return Err(e);
                        }
                    };
                    eprintln!("wrote {lines} lines to {}", file.display());
                }
                None => {
                    c.download(&path, &mut crate::Stdout).await?;
                }
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: None,
            public_key,
            witness,
        } => {
            let witness = read_witness(witness.as_deref(), public_key.as_deref())?;
            let mut v: VerifyView = c.send(Method::GET, "/v1/audit/verify", NO_BODY).await?;
            if let Some(w) = &witness {
                if let Some(p) = check_live_witness(&c, &v, w).await? {
                    v.problems.push(p);
                    v.problems.sort_by_key(|p| p.seq);
                    v.ok = false;
                }
            }
            emit(r.output, &v, |v| {
                if v.ok {
                    outln!(
                        "ok: {} entries, {} signed checkpoints verified, head at seq {}; {}{}",
                        v.entries,
                        v.checkpoints_verified,
                        v.head_seq.map_or_else(|| "-".to_owned(), |h| h.to_string()),
                        tail_line(v.signed_seq, v.unsigned_tail),
                        witness_note(witness.as_ref())
                    );
                } else {
                    print_problems(&v.problems);
                }
            })?;
            if !v.ok {
                bail!("the audit trail does not verify");
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(file),
            public_key,
            witness,
        } => verify_file(&file, public_key.as_deref(), witness.as_deref(), r.output),
        AuditCommand::RotateKey { store, new_key } => {
            crate::serve::rotate_key(store, &new_key).await
        }
        AuditCommand::PublicKey {
            data_dir,
            signing_key,
        } => {
            let path = signing_key.unwrap_or_else(|| data_dir.join("audit-signing.pem"));
            let pem = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read the signing key {}; pass --data-dir or --signing-key",
                    path.display()
                )
            })?;
            let signer = sluice_audit::AuditSigner::from_pem(&pem)?;
            let public = signer.verifying_key();
            out!("{}", public.to_pem()?);
            eprintln!(
                "key id {} (public key {})",
                public.key_id(),
                public.to_base64()
            );
            Ok(())
        }
    }
}

fn entry_row(e: &AuditEntry) -> Vec<String> {
    vec![
        e.seq.to_string(),
        sluice_audit::format_timestamp(&e.at),
        e.actor.clone(),
        e.action.clone(),
        opt(e.resource.as_deref()),
        opt(e.subject_id.as_deref()),
    ]
}

/// One entry on one line: a compact JSON object with `-o json`, else the table's columns.
fn print_entry(out: crate::cli::Output, e: &AuditEntry) -> anyhow::Result<()> {
    match out {
        crate::cli::Output::Json => outln!("{}", serde_json::to_string(e)?),
        crate::cli::Output::Table => outln!("{}", entry_row(e).join("  ")),
    }
    Ok(())
}

fn print_problems(problems: &[ProblemView]) {
    for p in problems {
        outln!("seq {}: {}: {}", p.seq, p.kind.as_str(), p.message);
    }
}

/// "signed up to seq N; unsigned tail: M entries".
fn tail_line(signed: Option<i64>, unsigned: u64) -> String {
    let signed = signed.map_or_else(
        || "nothing signed".to_owned(),
        |s| format!("signed up to seq {s}"),
    );
    format!("{signed}; unsigned tail: {unsigned} entries")
}

/// "; the witness's newest checkpoint (seq N) is held", or nothing without a witness.
fn witness_note(w: Option<&sluice_audit::Checkpoint>) -> String {
    w.map(|w| format!("; the witness's newest checkpoint (seq {}) is held", w.seq))
        .unwrap_or_default()
}

/// The newest checkpoint of a witness file, its signature checked when a public key is given
/// and the checkpoint is by that key.
fn read_witness(
    witness: Option<&Path>,
    public_key: Option<&Path>,
) -> anyhow::Result<Option<sluice_audit::Checkpoint>> {
    let Some(path) = witness else {
        return Ok(None);
    };
    let f = std::fs::File::open(path)
        .with_context(|| format!("cannot open the witness file {}", path.display()))?;
    let newest = sluice_audit::read_witness(std::io::BufReader::new(f))
        .with_context(|| format!("cannot read the witness file {}", path.display()))?
        .with_context(|| format!("the witness file {} holds no checkpoint", path.display()))?;
    if let Some(key) = public_key {
        let key = sluice_audit::AuditVerifier::from_pem(
            &std::fs::read_to_string(key)
                .with_context(|| format!("cannot read {}", key.display()))?,
        )?;
        if newest.key_id == key.key_id() {
            key.verify(&newest).map_err(|e| {
                anyhow!(
                    "the witness's newest checkpoint (seq {}) does not verify: {e}",
                    newest.seq
                )
            })?;
        } else {
            eprintln!(
                "note: the witness's newest checkpoint is signed by key {}, not by the given key {}: its signature is not checked",
                newest.key_id,
                key.key_id()
            );
        }
    }
    Ok(Some(newest))
}

/// Checks that the live trail holds the witness's newest head: the server verified the chain,
/// so its entry at that `seq` having the witnessed hash vouches for everything before it.
async fn check_live_witness(
    c: &Client,
    v: &VerifyView,
    w: &sluice_audit::Checkpoint,
) -> anyhow::Result<Option<ProblemView>> {
    use sluice_api::audit::ProblemKind;
    let head = v.head_seq.unwrap_or(0);
    if w.seq > head {
        return Ok(Some(ProblemView {
            seq: head.saturating_add(1),
            kind: ProblemKind::Truncated,
            message: format!(
                "the trail ends at {head}, before the witness's newest checkpoint at {}: entries {}..={} are missing (tail cut off)",
                w.seq,
                head.saturating_add(1),
                w.seq
            ),
        }));
    }
    let page: AuditPage = c
        .send(
            Method::GET,
            &format!("/v1/audit?after={}&limit=1", w.seq.saturating_sub(1)),
            NO_BODY,
        )
        .await?;
    let found = page.entries.first().filter(|e| e.seq == w.seq);
    match found {
        Some(e) if e.hash == w.hash => Ok(None),
        Some(_) => Ok(Some(ProblemView {
            seq: w.seq,
            kind: ProblemKind::CheckpointMismatch,
            message: format!(
                "the witness's newest checkpoint at {} names hash {} but the entry there does not have it: the entry (or one before it, with every later hash recomputed) was rewritten",
                w.seq,
                w.hash.get(..12).unwrap_or(&w.hash)
            ),
        })),
        // A hole in the chain: the server reported it as a gap.
        None => Ok(None),
    }
}

fn verify_file(
    file: &Path,
    public_key: Option<&Path>,
    witness: Option<&Path>,
    out: crate::cli::Output,
) -> anyhow::Result<()> {
    let witnessed = read_witness(witness, public_key)?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let verifier = match public_key {
        Some(p) => Some(sluice_audit::AuditVerifier::from_pem(
            &std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )?),
        None => {
            eprintln!("warning: no --public-key: checkpoint signatures are not checked, so a rewritten export would pass");
            None
        }
    };
    // Streams the file: memory stays flat however long the export.
    let report = sluice_audit::verify_export_against(
        std::io::BufReader::new(f),
        verifier.as_ref(),
        witnessed
            .as_ref()
            .map(sluice_audit::Checkpoint::head)
            .as_ref(),
    )?;
    let v = serde_json::to_value(&report)?;
    emit(out, &json!({"ok": report.ok(), "report": v}), |_| {
        if report.ok() {
            outln!(
                "ok: {} entries, {} signed checkpoints verified; {}{}",
                report.entries,
                report.checkpoints_verified,
                tail_line(report.signed.as_ref().map(|s| s.seq), report.unsigned_tail),
                witness_note(witnessed.as_ref())
            );
        } else {
            for p in &report.problems {
                outln!("{p}");
            }
        }
    })?;
    if let Some(first) = report.first_problem() {
        bail!(
            "the export does not verify; first bad sequence number: {}",
            first.seq
        );
    }
    if verifier.is_some() && report.checkpoints_verified == 0 {
        bail!("no checkpoint in the export is signed by this key");
    }
    Ok(())
}

/// Who or what a new token serves, as told on creation: a client or edge key is bound to
/// environments, not to the principal who created it (named as its creator).
fn token_line(t: &TokenView) -> String {
    let env = t.environment.as_deref().unwrap_or("?");
    match t.kind {
        TokenKind::Client => format!(
            "client key {} ({}) for environment {env}: evaluates its flags only; created by {}",
            t.id, t.name, t.principal
        ),
        TokenKind::Edge => format!(
            "edge key {} ({}) for environments {env}: syncs their flags only; created by {}",
            t.id, t.name, t.principal
        ),
        _ => format!("API token {} ({}) of {}", t.id, t.name, t.principal),
    }
}

pub async fn tokens(cmd: TokenCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        TokenCommand::Create {
            name,
            principal,
            kind,
            env,
            expires_in,
            context,
        } => {
            let context: Option<serde_json::Map<String, serde_json::Value>> = (!context.is_empty())
                .then(|| context.into_iter().map(|(k, v)| (k, v.into())).collect());
            let body = NewToken {
                principal,
                name,
                kind: Some(kind),
                // Edge keys name several, joined as the API takes them.
                environment: (!env.is_empty()).then(|| env.join(",")),
                expires_in,
                context,
            };
            let t: CreatedToken = c.send(Method::POST, "/v1/tokens", Some(&body)).await?;
            emit(r.output, &t, |t| {
                outln!("{}", t.token);
                eprintln!(
                    "{} — shown only this once; store it now",
                    token_line(&t.info)
                );
            })
        }
        TokenCommand::List { all } => {
            let tokens: Vec<TokenView> = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "tokens"], &[("all", all.then(|| "true".into()))]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &tokens, |tokens| {
                let rows = tokens
                    .iter()
                    .map(|t| {
                        let state = if let Some(at) = t.revoked_at {
                            format!("revoked {}", when_at(Some(at)))
                        } else if let Some(at) = t.expires_at {
                            format!("expires {}", when_at(Some(at)))
                        } else {
                            "active".into()
                        };
                        vec![
                            t.id.clone(),
                            t.principal.clone(),
                            t.kind.as_str().to_owned(),
                            opt(t.environment.as_deref()),
                            t.name.clone(),
                            state,
                        ]
                    })
                    .collect();
                table(&["id", "principal", "kind", "env", "name", "state"], rows);
            })
        }
        TokenCommand::Revoke { id } => {
            let t: TokenView = c
                .send(
                    Method::DELETE,
                    &endpoint(&["v1", "tokens", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &t, |t| outln!("revoked token {}", t.id))
        }
    }
}

pub async fn check(
    subject: String,
    subject_type: String,
    action: String,
    resource: String,
    explain: bool,
    r: Remote,
) -> anyhow::Result<bool> {
    let (kind, id) = resource
        .split_once(':')
        .ok_or_else(|| anyhow!("RESOURCE is `kind:name`, e.g. db:orders"))?;
    let mut body = json!({"subject": {"type": subject_type, "id": subject}, "action": {"name": action}, "resource": {"type": kind, "id": id}});
    if explain {
        body["context"] = json!({"sluice_explain": true});
    }
    let v: EvaluationResponse = client(&r)
        .send(Method::POST, "/access/v1/evaluation", Some(&body))
        .await?;
    let allowed = v.decision;
    emit(r.output, &v, |v| {
        let verdict = if allowed { "allow" } else { "deny" };
        let reason = v
            .context
            .as_ref()
            .map_or(&Value::Null, |c| &c["reason_admin"]["en"]);
        outln!("{verdict}: {}", s(reason));
        if let Some(why) = v
            .context
            .as_ref()
            .and_then(|c| c["explain"]["text"].as_str())
        {
            outln!("{why}");
        }
    })?;
    Ok(allowed)
}

pub async fn whoami(r: Remote) -> anyhow::Result<()> {
    let v: WhoAmI = client(&r).send(Method::GET, "/v1/whoami", NO_BODY).await?;
    emit(r.output, &v, |v| {
        outln!(
            "{}{} (groups: {})",
            v.name,
            if v.admin { ", administrator" } else { "" },
            list(&v.groups)
        );
    })
}

pub async fn flags(cmd: FlagsCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        FlagsCommand::Import {
            file,
            env,
            lenient,
            create_env,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let query = [
                ("mode", lenient.then(|| "lenient".into())),
                ("create_env", create_env.then(|| "true".into())),
            ];
            let v: ImportResult = c
                .send(
                    Method::PUT,
                    &endpoint(&["v1", "environments", &env, "flags"], &query),
                    Some(&doc),
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "imported {} flags into {} (revision {})",
                    v.flags,
                    v.environment,
                    v.revision
                );
                for b in &v.broken {
                    outln!(
                        "  {} answers PARSE_ERROR: {}: {}",
                        b.key.as_deref().unwrap_or("(flag set)"),
                        b.path,
                        b.reason
                    );
                }
            })
        }
        FlagsCommand::Export { env, out } => {
            // A flagd document: the user's data, passed through as it is.
            let v: Value = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "environments", &env, "flags"], &[]),
                    NO_BODY,
                )
                .await?;
            let text = serde_json::to_string_pretty(&v)?;
            match out {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => outln!("{text}"),
            }
            Ok(())
        }
        FlagsCommand::List { env: None } => {
            let v: Vec<EnvironmentView> = c.send(Method::GET, "/v1/environments", NO_BODY).await?;
            emit(r.output, &v, |v| {
                let rows = v
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.revision.to_string(),
                            e.flags.to_string(),
                            if e.protected {
                                "protected".into()
                            } else {
                                "-".into()
                            },
                        ]
                    })
                    .collect();
                table(&["environment", "revision", "flags", "protected"], rows);
            })
        }
        FlagsCommand::List { env: Some(env) } => {
            // The flagd document (the user's data): its flags as they were written.
            let v: Value = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "environments", &env, "flags"], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                let rows = v["flags"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, f)| {
                                let variants: Vec<&str> = f["variants"]
                                    .as_object()
                                    .map(|o| o.keys().map(String::as_str).collect())
                                    .unwrap_or_default();
                                vec![
                                    k.clone(),
                                    s(&f["state"]),
                                    s(&f["defaultVariant"]),
                                    variants.join(", "),
                                    if f.get("targeting").is_some_and(|t| !t.is_null()) {
                                        "yes".into()
                                    } else {
                                        "-".into()
                                    },
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                table(&["flag", "state", "default", "variants", "targeting"], rows);
            })
        }
        FlagsCommand::Change(cmd) => crate::flag_commands::flags(cmd, r).await,
        FlagsCommand::Evaluations { env, days } => {
            let query = [("days", days.map(|d| d.to_string()))];
            let v: EvaluationsView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "environments", &env, "evaluations"], &query),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map_or("never".into(), |t| {
                        t.format("%Y-%m-%d %H:%M:%S").to_string()
                    })
                };
                let mut rows = Vec::new();
                for f in &v.flags {
                    if f.answers.is_empty() {
                        rows.push(vec![
                            f.key.clone(),
                            "-".into(),
                            "-".into(),
                            "0".into(),
                            when(None),
                        ]);
                    }
                    for a in &f.answers {
                        rows.push(vec![
                            f.key.clone(),
                            a.variant.clone().unwrap_or_else(|| "-".into()),
                            a.reason.clone(),
                            a.count.to_string(),
                            when(Some(a.last_evaluated_at)),
                        ]);
                    }
                }
                table(
                    &["flag", "variant", "reason", "evaluations", "last evaluated"],
                    rows,
                );
                if !v.clients.is_empty() {
                    let rows = v
                        .clients
                        .iter()
                        .map(|c| {
                            vec![
                                c.token_id.clone(),
                                c.evaluations.to_string(),
                                when(Some(c.last_evaluated_at)),
                            ]
                        })
                        .collect();
                    outln!("");
                    table(&["client key", "evaluations", "last evaluated"], rows);
                }
            })
        }
        FlagsCommand::Stale { env, days } => {
            let query = [("days", days.map(|d| d.to_string()))];
            let v: StaleView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "environments", &env, "stale"], &query),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                if v.flags.is_empty() {
                    let plural = if v.days == 1 { "" } else { "s" };
                    outln!(
                        "no stale flags in {} (looking back {} day{plural})",
                        v.environment,
                        v.days
                    );
                    return;
                }
                let rows = v
                    .flags
                    .iter()
                    .map(|f| vec![f.key.clone(), f.kind.clone(), f.suggestion.clone()])
                    .collect();
                table(&["flag", "finding", "suggested action"], rows);
            })
        }
        FlagsCommand::Get { key, env } => {
            let v: FlagView = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "environments", &env, "flags", &key], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!("{} in {} (revision {})", v.key, v.environment, v.revision);
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&v.definition).unwrap_or_default()
                );
                if !v.targets.is_empty() {
                    outln!("active targets:");
                    crate::flag_commands::target_table(&v.targets);
                }
            })
        }
    }
}
