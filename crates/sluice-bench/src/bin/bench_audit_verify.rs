//! Audit verification of a long trail: time and peak memory, offline (an export file) and
//! live (the server's `GET /v1/audit/verify` code), streaming and as before (whole chain in
//! memory). Each measurement runs in its own process, so that its peak RSS (`VmHWM`) is its
//! own; `run-audit-verify.sh` drives them.
//!
//! ```text
//! bench-audit-verify build   DIR ENTRIES   # DIR/sluice.db, DIR/audit-signing.pem, DIR/export.jsonl
//! bench-audit-verify offline DIR [--whole] # verify DIR/export.jsonl
//! bench-audit-verify live    DIR [--whole] # verify DIR/sluice.db as the server does
//! ```
//!
//! `--whole` is the behaviour before streaming, kept as a library path: the export read with
//! `read_export` and checked with `verify`, or the chain read with `Store::audit_all`.
//! Each run prints one JSON line.

use anyhow::{bail, ensure, Context as _};
use chrono::{TimeZone as _, Utc};
use serde_json::json;
use sluice_audit::{AuditSigner, NewEntry, VerifyReport};
use sluice_server::{Server, ServerConfig};
use sluice_store::Store;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries per transaction, and between two checkpoints.
const PER_COMMIT: usize = 1_000;

fn db_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("sluice.db").display())
}

/// Peak resident set of this process so far, in KiB.
fn vm_hwm_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    let kib = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim();
    Ok(kib.parse()?)
}

async fn build(dir: &Path, n: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let store = Store::open(&db_url(dir)).await?;
    ensure!(
        store.audit_head().await?.seq == 0,
        "{} is not empty",
        dir.display()
    );
    let signer = AuditSigner::create(&dir.join("audit-signing.pem"))?;
    let mut export = BufWriter::new(std::fs::File::create(dir.join("export.jsonl"))?);
    let t0 = Utc
        .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .context("time")?;
    let started = Instant::now();
    let mut written = 0usize;
    while written < n {
        let mut tx = store.begin().await?;
        let batch = PER_COMMIT.min(n - written);
        for i in written..written + batch {
            let at = t0 + chrono::TimeDelta::milliseconds(i64::try_from(i)?);
            let entry = NewEntry::new(format!("eng-{}", i % 64), "access.request.created")
                .resource(format!("flag:production/feature-{}", i % 500))
                .subject_id(format!("req_{i:08}"))
                .details(json!({
                    "reason": format!("INC-{} checkout errors", i % 10_000),
                    "minutes": 30,
                    "scope": {"resource": format!("flag:production/feature-{}", i % 500), "actions": ["toggle"]},
                    "auto_approved": i % 3 == 0,
                }));
            tx.audit(at, entry).await?;
        }
        let entries = tx.commit().await?;
        written += batch;
        let last = entries.last().context("a commit wrote nothing")?;
        let cp = signer.sign(&last.head(), last.at);
        store.insert_checkpoint(&cp).await?;
        for e in &entries {
            sluice_audit::write_entry_line(&mut export, e)?;
        }
        sluice_audit::write_checkpoint_line(&mut export, &cp)?;
    }
    export.flush()?;
    println!(
        "{}",
        json!({"mode": "build", "entries": n, "secs": started.elapsed().as_secs_f64(),
               "export_bytes": std::fs::metadata(dir.join("export.jsonl"))?.len()})
    );
    Ok(())
}

fn offline(dir: &Path, whole: bool) -> anyhow::Result<VerifyReport> {
    let key = AuditSigner::load_or_create(&dir.join("audit-signing.pem"))?.verifying_key();
    let file = std::fs::File::open(dir.join("export.jsonl"))?;
    if whole {
        let (entries, checkpoints) = sluice_audit::read_export(BufReader::new(file))?;
        let mut report = sluice_audit::verify(&entries, &checkpoints, Some(&key), None);
        if let Some(cut) = sluice_audit::export_end_problem(&entries, &checkpoints) {
            report.problems.push(cut);
        }
        Ok(report)
    } else {
        Ok(sluice_audit::verify_export(
            BufReader::new(file),
            Some(&key),
        )?)
    }
}

async fn live(dir: &Path, whole: bool) -> anyhow::Result<VerifyReport> {
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse()?,
        database_url: db_url(dir),
        signing_key: dir.join("audit-signing.pem"),
        admin_token: None,
        reaper_interval: Duration::from_secs(3600),
        checkpoint_interval: Duration::from_secs(3600),
        sync_interval: Duration::from_secs(3600),
        db_clock: None,
        client_rate_limit: None,
        cors_origins: Default::default(),
        public_url: None,
    };
    let server = Server::build(config, Arc::new(sluice_core::SystemClock)).await?;
    let app = &server.app;
    if whole {
        let head = app.store.audit_head().await?;
        let entries = app.store.audit_all().await?;
        let checkpoints = app.store.checkpoints().await?;
        let key = app.signer.verifying_key();
        Ok(sluice_audit::verify(
            &entries,
            &checkpoints,
            Some(&key),
            Some(&head),
        ))
    } else {
        Ok(sluice_server::audit::verify_live(app).await?)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        bail!("usage: bench-audit-verify build|offline|live DIR [ENTRIES|--whole]");
    };
    let dir = PathBuf::from(dir);
    let whole = args.iter().any(|a| a == "--whole");
    let started = Instant::now();
    let report = match mode.as_str() {
        "build" => {
            let n: usize = args.get(2).context("ENTRIES")?.parse()?;
            return build(&dir, n).await;
        }
        "offline" => offline(&dir, whole)?,
        "live" => live(&dir, whole).await?,
        other => bail!("unknown mode {other}"),
    };
    let secs = started.elapsed().as_secs_f64();
    ensure!(
        report.ok(),
        "the trail does not verify: {:?}",
        report.first_problem()
    );
    println!(
        "{}",
        json!({"mode": mode, "whole": whole, "entries": report.entries,
               "checkpoints_verified": report.checkpoints_verified,
               "secs": secs, "vm_hwm_kib": vm_hwm_kib()?})
    );
    Ok(())
}
