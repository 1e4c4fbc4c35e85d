//! The store conformance suite: every backend must pass every test here. Each test runs
//! against a fresh SQLite file and, when `SLUICE_TEST_DATABASE_URL` is set, against a fresh
//! PostgreSQL schema (under `CI=true` a missing URL fails instead of skipping).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod chain;
mod changes;
mod copy;
mod crash;
mod held;
mod http_calls;
mod instances;
mod records;
mod rows;
mod session_log;
mod sign_ins;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;
use sluice_core::access::{AccessRequest, Origin, RequestStatus, Vote};
use sluice_core::duration::Duration as SDuration;
use sluice_store::{Backend, NewEntry, Store};

/// A fresh, empty database of one backend for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open the store")
    }
}

/// A fresh SQLite file.
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("sluice.db").display());
    TestDb {
        backend: Backend::Sqlite,
        url,
        _dir: dir,
    }
}

/// A fresh PostgreSQL schema, or `None` with a notice when PostgreSQL is not configured
/// (a failure under `CI=true`).
pub async fn postgres() -> Option<TestDb> {
    let Ok(base) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but SLUICE_TEST_DATABASE_URL is not set: the PostgreSQL tests must run"
        );
        eprintln!("notice: SLUICE_TEST_DATABASE_URL not set; skipping the PostgreSQL variant");
        return None;
    };
    let schema = format!("st_{}", uuid::Uuid::now_v7().simple());
    let pool = sqlx::PgPool::connect(&base)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(TestDb {
        backend: Backend::Postgres,
        url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        _dir: tempfile::tempdir().expect("tempdir"),
    })
}

/// One fresh database per backend available.
pub async fn backends() -> Vec<TestDb> {
    let mut out = vec![sqlite()];
    out.extend(postgres().await);
    out
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub fn entry(action: &str) -> NewEntry {
    NewEntry::new("tester", action).details(json!({"n": action}))
}

/// A writer's transaction that opened request `id` (pending, by dave), took an access
/// revision and wrote the entry `action`: the write most of these tests race, fail or crash.
pub async fn opening(store: &Store, id: &str, action: &str) -> sluice_store::WriteTx {
    let mut tx = store.begin().await.expect("begin");
    tx.insert_request(&pending(id, "dave", t0()))
        .await
        .expect("insert");
    tx.bump_access().await.expect("bump");
    tx.audit(t0(), entry(action)).await.expect("audit");
    tx
}

/// A pending request created at `at`, pending for an hour.
pub fn pending(id: &str, requester: &str, at: DateTime<Utc>) -> AccessRequest {
    AccessRequest {
        id: id.into(),
        requester: requester.into(),
        entitlement: "orders-db-read".into(),
        scopes: vec![
            serde_json::from_value(json!({"resource": "db:orders", "actions": ["read"]}))
                .expect("scope"),
        ],
        duration: SDuration::from_secs(3600),
        reason: "conformance".into(),
        ticket: None,
        status: RequestStatus::Pending,
        origin: Origin::Approval,
        extends: None,
        created_at: at,
        pending_until: at + TimeDelta::hours(1),
        starts_at: None,
        expires_at: None,
        votes: Vec::new(),
        ended_at: None,
        ended_by: None,
        end_reason: None,
        needs_review: false,
        reviewed_by: None,
    }
}

/// `r`, approved by `approver` at `at` and active for its duration.
pub fn activated(mut r: AccessRequest, approver: &str, at: DateTime<Utc>) -> AccessRequest {
    r.votes.push(vote(approver, at));
    r.status = RequestStatus::Active;
    r.starts_at = Some(at);
    r.expires_at = Some(at + r.duration.delta());
    r
}

pub fn vote(approver: &str, at: DateTime<Utc>) -> Vote {
    Vote {
        approver: approver.into(),
        approve: true,
        comment: String::new(),
        at,
    }
}
