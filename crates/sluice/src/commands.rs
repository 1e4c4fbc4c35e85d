//! The client commands: each builds a call, sends it, prints the answer.

use crate::cli::{AccessCommand, AuditCommand, FlagsCommand, Remote, TokenCommand};
use crate::client::Client;
use crate::output::{self, emit, s, table, when};
use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

pub(crate) fn client(r: &Remote) -> Client {
    Client::new(&r.addr, r.token.clone())
}

pub(crate) fn q(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse_scope(raw: &str) -> anyhow::Result<Value> {
    let (resource, actions) = raw.split_once('=').ok_or_else(|| {
        anyhow!("--scope takes RESOURCE=ACTION[,ACTION…], e.g. flag:production/checkout-v2=toggle")
    })?;
    let actions: Vec<&str> = actions
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    Ok(json!({"resource": resource, "actions": actions}))
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
            let body = json!({"entitlement": entitlement, "duration": duration, "reason": reason, "ticket": ticket, "scopes": scopes, "break_glass": break_glass});
            let v = c.call(Method::POST, "/v1/requests", Some(body)).await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::List {
            status,
            mine,
            needs_review,
            limit,
        } => {
            let path = format!(
                "/v1/requests{}",
                q(&[
                    ("status", status),
                    ("requester", mine.then(|| "me".into())),
                    ("needs_review", needs_review.then(|| "true".into())),
                    ("limit", Some(limit.to_string())),
                ])
            );
            let v = c.call(Method::GET, &path, None).await?;
            emit(r.output, &v, output::requests)
        }
        AccessCommand::Show { id } => {
            let v = c
                .call(Method::GET, &format!("/v1/requests/{id}"), None)
                .await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::Approve { id, comment } => {
            vote(&c, &r, &id, "approve", json!({"comment": comment})).await
        }
        AccessCommand::Deny { id, comment } => {
            vote(&c, &r, &id, "deny", json!({"comment": comment})).await
        }
        AccessCommand::Cancel { id } => vote(&c, &r, &id, "cancel", Value::Null).await,
        AccessCommand::Revoke { id, reason } => {
            vote(&c, &r, &id, "revoke", json!({"reason": reason})).await
        }
        AccessCommand::Relinquish { id } => vote(&c, &r, &id, "relinquish", Value::Null).await,
        AccessCommand::Review { id } => vote(&c, &r, &id, "review", Value::Null).await,
        AccessCommand::Extend {
            id,
            duration,
            reason,
        } => {
            let v = c
                .call(
                    Method::POST,
                    &format!("/v1/requests/{id}/extend"),
                    Some(json!({"duration": duration, "reason": reason})),
                )
                .await?;
            emit(r.output, &v, output::request)
        }
        AccessCommand::Grants { mine } => {
            let path = format!(
                "/v1/grants{}",
                q(&[("principal", mine.then(|| "me".into()))])
            );
            let v = c.call(Method::GET, &path, None).await?;
            emit(r.output, &v, output::requests)
        }
        AccessCommand::Entitlements => {
            let v = c.call(Method::GET, "/v1/entitlements", None).await?;
            emit(r.output, &v, entitlement_table)
        }
    }
}

fn entitlement_table(v: &Value) {
    let rows = v
        .as_array()
        .map(|a| a.iter().map(entitlement_row).collect())
        .unwrap_or_default();
    table(&["name", "max", "approval", "auto-approve", "scopes"], rows);
}

fn entitlement_row(e: &Value) -> Vec<String> {
    let scopes: Vec<String> = e["scopes"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|x| format!("{} {}", s(&x["resource"]), s(&x["actions"])))
                .collect()
        })
        .unwrap_or_default();
    vec![
        s(&e["name"]),
        s(&e["max_duration"]),
        format!("{} of {}", s(&e["approvals_required"]), s(&e["approvers"])),
        s(&e["auto_approve"]),
        scopes.join("; "),
    ]
}

async fn vote(c: &Client, r: &Remote, id: &str, verb: &str, body: Value) -> anyhow::Result<()> {
    let body = (!body.is_null()).then_some(body);
    let v = c
        .call(Method::POST, &format!("/v1/requests/{id}/{verb}"), body)
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
            let path = format!(
                "/v1/audit{}",
                q(&[
                    ("actor", actor.clone()),
                    ("action", action.clone()),
                    ("resource", resource.clone()),
                    ("since", since),
                    ("until", until),
                    ("after", after.map(|a| a.to_string())),
                    ("limit", Some(limit.to_string())),
                    ("newest", Some("true".into())),
                ])
            );
            let v = c.call(Method::GET, &path, None).await?;
            let entries = v["entries"].as_array().cloned().unwrap_or_default();
            if follow {
                // One entry per line from the start, so the stream continues the same way.
                for e in &entries {
                    print_entry(r.output, e)?;
                }
                let last = entries.last().and_then(|e| e["seq"].as_i64()).or(after);
                let path = format!(
                    "/v1/audit/stream{}",
                    q(&[
                        ("actor", actor),
                        ("action", action),
                        ("resource", resource),
                        ("after", last.map(|a| a.to_string())),
                    ])
                );
                return c
                    .follow_events(&path, |data| {
                        let entry: Value = serde_json::from_str(data)
                            .with_context(|| format!("the server sent a bad entry: {data}"))?;
                        print_entry(r.output, &entry)
                    })
                    .await;
            }
            emit(r.output, &v, |_| {
                let rows = entries.iter().map(entry_row).collect();
                table(
                    &["seq", "at", "actor", "action", "resource", "subject"],
                    rows,
                );
            })
        }
        AuditCommand::Export { since, out } => {
            let text = c
                .raw(
                    Method::GET,
                    &format!("/v1/audit/export{}", q(&[("since", since)])),
                    None,
                )
                .await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {} lines to {}", text.lines().count(), path.display());
                }
                None => out!("{text}"),
            }
            Ok(())
        }
        AuditCommand::Verify { file: None, .. } => {
            let v = c.call(Method::GET, "/v1/audit/verify", None).await?;
            emit(r.output, &v, |v| {
                if v["ok"] == Value::Bool(true) {
                    outln!(
                        "ok: {} entries, {} signed checkpoints verified, head at seq {}",
                        v["entries"],
                        v["checkpoints_verified"],
                        s(&v["head_seq"])
                    );
                } else {
                    print_problems(v["problems"].as_array().cloned().unwrap_or_default());
                }
            })?;
            if v["ok"] != Value::Bool(true) {
                bail!("the audit trail does not verify");
            }
            Ok(())
        }
        AuditCommand::Verify {
            file: Some(file),
            public_key,
        } => verify_file(&file, public_key.as_deref(), r.output),
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

fn entry_row(e: &Value) -> Vec<String> {
    vec![
        s(&e["seq"]),
        s(&e["at"]),
        s(&e["actor"]),
        s(&e["action"]),
        s(&e["resource"]),
        s(&e["subject_id"]),
    ]
}

/// One entry on one line: a compact JSON object with `-o json`, else the table's columns.
fn print_entry(out: crate::cli::Output, e: &Value) -> anyhow::Result<()> {
    match out {
        crate::cli::Output::Json => outln!("{}", serde_json::to_string(e)?),
        crate::cli::Output::Table => outln!("{}", entry_row(e).join("  ")),
    }
    Ok(())
}

fn print_problems(problems: Vec<Value>) {
    for p in problems {
        outln!(
            "seq {}: {}: {}",
            s(&p["seq"]),
            s(&p["kind"]),
            s(&p["message"])
        );
    }
}

fn verify_file(
    file: &Path,
    public_key: Option<&Path>,
    out: crate::cli::Output,
) -> anyhow::Result<()> {
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
    let report = sluice_audit::verify_export(std::io::BufReader::new(f), verifier.as_ref())?;
    let v = serde_json::to_value(&report)?;
    emit(out, &json!({"ok": report.ok(), "report": v}), |_| {
        if report.ok() {
            outln!(
                "ok: {} entries, {} signed checkpoints verified",
                report.entries,
                report.checkpoints_verified
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
            let v = c.call(Method::POST, "/v1/tokens", Some(json!({"name": name, "principal": principal, "kind": kind, "environment": env, "expires_in": expires_in, "context": context}))).await?;
            emit(r.output, &v, |v| {
                outln!("{}", s(&v["token"]));
                eprintln!(
                    "token {} for {} — shown only this once; store it now",
                    s(&v["id"]),
                    s(&v["principal"])
                );
            })
        }
        TokenCommand::List { all } => {
            let v = c
                .call(
                    Method::GET,
                    &format!("/v1/tokens{}", q(&[("all", all.then(|| "true".into()))])),
                    None,
                )
                .await?;
            emit(r.output, &v, |v| {
                let rows = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|t| {
                                let state = if !t["revoked_at"].is_null() {
                                    format!("revoked {}", when(&t["revoked_at"]))
                                } else if !t["expires_at"].is_null() {
                                    format!("expires {}", when(&t["expires_at"]))
                                } else {
                                    "active".into()
                                };
                                vec![
                                    s(&t["id"]),
                                    s(&t["principal"]),
                                    s(&t["kind"]),
                                    s(&t["environment"]),
                                    s(&t["name"]),
                                    state,
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                table(&["id", "principal", "kind", "env", "name", "state"], rows);
            })
        }
        TokenCommand::Revoke { id } => {
            let v = c
                .call(Method::DELETE, &format!("/v1/tokens/{id}"), None)
                .await?;
            emit(r.output, &v, |v| outln!("revoked token {}", s(&v["id"])))
        }
    }
}

pub async fn check(
    subject: String,
    action: String,
    resource: String,
    r: Remote,
) -> anyhow::Result<bool> {
    let (kind, id) = resource
        .split_once(':')
        .ok_or_else(|| anyhow!("RESOURCE is `kind:name`, e.g. db:orders"))?;
    let body = json!({"subject": {"type": "user", "id": subject}, "action": {"name": action}, "resource": {"type": kind, "id": id}});
    let v = client(&r)
        .call(Method::POST, "/access/v1/evaluation", Some(body))
        .await?;
    let allowed = v["decision"] == Value::Bool(true);
    emit(r.output, &v, |v| {
        let verdict = if allowed { "allow" } else { "deny" };
        outln!("{verdict}: {}", s(&v["context"]["reason_admin"]["en"]));
    })?;
    Ok(allowed)
}

pub async fn whoami(r: Remote) -> anyhow::Result<()> {
    let v = client(&r).call(Method::GET, "/v1/whoami", None).await?;
    emit(r.output, &v, |v| {
        outln!(
            "{}{} (groups: {})",
            s(&v["name"]),
            if v["admin"] == Value::Bool(true) {
                ", administrator"
            } else {
                ""
            },
            s(&v["groups"])
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
            let query = q(&[
                ("mode", lenient.then(|| "lenient".into())),
                ("create_env", create_env.then(|| "true".into())),
            ]);
            let v = c
                .call(
                    Method::PUT,
                    &format!("/v1/environments/{}/flags{query}", urlencode(&env)),
                    Some(doc),
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "imported {} flags into {} (revision {})",
                    v["flags"],
                    s(&v["environment"]),
                    v["revision"]
                );
                for b in v["broken"].as_array().into_iter().flatten() {
                    outln!(
                        "  {} answers PARSE_ERROR: {}: {}",
                        b["key"].as_str().unwrap_or("(flag set)"),
                        s(&b["path"]),
                        s(&b["reason"])
                    );
                }
            })
        }
        FlagsCommand::Export { env, out } => {
            let v = c
                .call(
                    Method::GET,
                    &format!("/v1/environments/{}/flags", urlencode(&env)),
                    None,
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
            let v = c.call(Method::GET, "/v1/environments", None).await?;
            emit(r.output, &v, |v| {
                let rows = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| {
                                vec![
                                    s(&e["name"]),
                                    s(&e["revision"]),
                                    s(&e["flags"]),
                                    if e["protected"] == Value::Bool(true) {
                                        "protected".into()
                                    } else {
                                        "-".into()
                                    },
                                ]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                table(&["environment", "revision", "flags", "protected"], rows);
            })
        }
        FlagsCommand::List { env: Some(env) } => {
            let v = c
                .call(
                    Method::GET,
                    &format!("/v1/environments/{}/flags", urlencode(&env)),
                    None,
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
        FlagsCommand::Get { key, env } => {
            let v = c
                .call(
                    Method::GET,
                    &format!(
                        "/v1/environments/{}/flags/{}",
                        urlencode(&env),
                        urlencode(&key)
                    ),
                    None,
                )
                .await?;
            emit(r.output, &v, |v| {
                outln!(
                    "{} in {} (revision {})",
                    s(&v["key"]),
                    s(&v["environment"]),
                    v["revision"]
                );
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&v["definition"]).unwrap_or_default()
                );
                if v["targets"].as_array().is_some_and(|t| !t.is_empty()) {
                    outln!("active targets:");
                    crate::flag_commands::target_table(&v["targets"]);
                }
            })
        }
    }
}
