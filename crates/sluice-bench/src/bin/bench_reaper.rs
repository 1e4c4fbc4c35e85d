//! The reaper's read (`Store::lapsed_request_ids`): how long one pass takes to find the
//! requests due to time out or expire, with many live grants of which none is due — what it
//! meets once a second on every instance. Each store is filled once; the query is timed with
//! the index of migration 0020 (`requests_due`) and, on the same rows in the same run, with
//! the index on `status` alone that it replaced (the baseline).
//!
//! ```text
//! bench-reaper [--active N] [--pending N] [--passes N] [--pg URL]
//! ```
//!
//! SQLite always (a file in a temporary directory); PostgreSQL too with `--pg` (a fresh
//! schema, dropped at the end). Prints one Markdown row per database.

use anyhow::{bail, Context as _};
use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};
use sluice_core::access::{AccessRequest, Origin, RequestStatus};
use sluice_core::duration::Duration;
use sluice_core::scope::Scope;
use sluice_store::Store;
use std::time::Instant;

struct Opts {
    active: usize,
    pending: usize,
    passes: usize,
    pg: Option<String>,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        active: 10_000,
        pending: 1_000,
        passes: 200,
        pg: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--help" || a == "-h" {
            println!(
                "bench-reaper [--active N (10000)] [--pending N (1000)] [--passes N (200)] [--pg URL]"
            );
            std::process::exit(0);
        }
        let v = args.next().with_context(|| format!("{a} takes a value"))?;
        match a.as_str() {
            "--active" => o.active = v.parse().context("--active takes a count")?,
            "--pending" => o.pending = v.parse().context("--pending takes a count")?,
            "--passes" => o.passes = v.parse().context("--passes takes a count")?,
            "--pg" => o.pg = Some(v),
            _ => bail!("unknown option {a} (see --help)"),
        }
    }
    Ok(o)
}

fn t0() -> anyhow::Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .context("a valid time")
}

/// Request `i`, opened at `at`: pending (its time-out an hour later) or active for 8 hours.
fn request(i: usize, at: DateTime<Utc>, active: bool, scope: &Scope) -> AccessRequest {
    AccessRequest {
        id: format!("req-{i:08}"),
        requester: format!("user-{}", i % 500),
        entitlement: "orders-db-read".into(),
        scopes: vec![scope.clone()],
        duration: Duration::from_secs(8 * 3600),
        reason: "bench".into(),
        ticket: None,
        status: if active {
            RequestStatus::Active
        } else {
            RequestStatus::Pending
        },
        origin: Origin::Approval,
        extends: None,
        created_at: at,
        pending_until: at + TimeDelta::hours(1),
        starts_at: active.then_some(at),
        expires_at: active.then(|| at + TimeDelta::hours(8)),
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    }
}

async fn fill(store: &Store, o: &Opts) -> anyhow::Result<()> {
    let at = t0()?;
    let scope: Scope =
        serde_json::from_value(serde_json::json!({"resource": "db:orders", "actions": ["read"]}))?;
    let total = o.active + o.pending;
    let mut i = 0;
    while i < total {
        let mut tx = store.begin().await?;
        for _ in 0..1_000.min(total - i) {
            tx.insert_request(&request(i, at, i < o.active, &scope))
                .await?;
            i += 1;
        }
        tx.audit(at, sluice_audit::NewEntry::new("bench", "bench.fill"))
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Median and 90th percentile of `passes` reads, in µs; checks that none is due.
async fn time_passes(store: &Store, o: &Opts) -> anyhow::Result<(f64, f64)> {
    // Ten minutes in: every request is live and none has timed out.
    let now = t0()? + TimeDelta::minutes(10);
    let mut us = Vec::with_capacity(o.passes);
    for _ in 0..o.passes {
        let start = Instant::now();
        let ids = store.lapsed_request_ids(now, 500).await?;
        us.push(start.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(ids.is_empty(), "nothing is due, yet {} ids came", ids.len());
    }
    // And once all are: the read still finds them (the first 500).
    let later = t0()? + TimeDelta::hours(9);
    let due = store.lapsed_request_ids(later, 500).await?;
    anyhow::ensure!(
        due.len() == 500.min(o.active + o.pending),
        "{} due",
        due.len()
    );
    us.sort_by(f64::total_cmp);
    Ok((us[us.len() / 2], us[us.len() * 9 / 10]))
}

async fn measure(name: &str, url: &str, o: &Opts) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    fill(&store, o).await?;
    let new = time_passes(&store, o).await?;
    // The baseline: the index this replaced, on the same rows.
    let swap = "DROP INDEX requests_due; CREATE INDEX requests_by_status ON requests (status)";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        sqlx::raw_sql(swap).execute(&pool).await?;
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        sqlx::raw_sql(swap).execute(&pool).await?;
        pool.close().await;
    }
    let old = time_passes(&store, o).await?;
    println!(
        "| {name} | {} active, {} pending | {:.0} / {:.0} | {:.0} / {:.0} | {:.1} × |",
        o.active,
        o.pending,
        old.0,
        old.1,
        new.0,
        new.1,
        old.0 / new.0
    );
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = opts()?;
    println!("| database | requests | index on `status`: p50 / p90 µs | `requests_due`: p50 / p90 µs | faster |");
    println!("| --- | --- | --- | --- | --- |");
    let dir = tempfile::tempdir()?;
    measure(
        "SQLite",
        &format!("sqlite://{}", dir.path().join("sluice.db").display()),
        &o,
    )
    .await?;
    if let Some(base) = &o.pg {
        let schema = format!("bench_reaper_{}", std::process::id());
        let pool = sqlx::PgPool::connect(base).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&pool)
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let result = measure("PostgreSQL", &url, &o).await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&pool)
            .await?;
        pool.close().await;
        result?;
    }
    Ok(())
}
