//! Crash soak: a real `sluice serve` under concurrent writers — access requests and approvals,
//! flag changes under a grant, audited AuthZEN decisions — is SIGKILLed at a random moment,
//! restarted over the same store, and checked; then again, round after round. After every
//! restart, whatever a client saw acknowledged is in the audit trail exactly once, what was in
//! flight is there completely or not at all, and the chain verifies gap-free.
//!
//! On SQLite and on PostgreSQL. CI runs a few rounds of each; the long run of BENCHMARKS.md
//! ("Reliability") is the same test with more rounds:
//!
//! ```text
//! SLUICE_SOAK_ROUNDS=200 cargo test --release -p sluice --test it soak -- --nocapture
//! ```
//!
//! The kill point of each round is drawn from a seed printed at the start (`SLUICE_SOAK_SEED`
//! replays a run).

use crate::harness::{pg_url, Serve, ADMIN_TOKEN, FLAGS, POLICY};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLAG: &str = "checkout-v2";

/// What the clients saw acknowledged, over every round.
#[derive(Debug, Default)]
struct Acked {
    requested: Vec<String>,
    approved: Vec<String>,
    /// Subject ids of denied decisions (each asked once).
    decided: Vec<String>,
    /// The highest flag revision acknowledged.
    flag_revision: i64,
}

/// What one writer saw in one round.
#[derive(Debug, Default)]
struct Seen {
    requested: Vec<String>,
    approved: Vec<String>,
    decided: Vec<String>,
    flag_revision: Option<i64>,
}

/// The tokens the writers use, made once (tokens live in the store and survive restarts).
struct Tokens {
    dave: String,
    alice: String,
    bob: String,
}

async fn post(http: &reqwest::Client, url: String, token: &str, body: Value) -> Option<Value> {
    let resp = http
        .post(url)
        .bearer_auth(token)
        .timeout(Duration::from_secs(5))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Requests and approvals in a loop until the server goes away.
async fn access_writer(
    base: String,
    requester: String,
    approver: String,
    acks: Arc<AtomicUsize>,
) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let body = json!({"entitlement": "orders-db-read", "duration": "1h", "reason": format!("soak {i}")});
        let Some(v) = post(&http, format!("{base}/v1/requests"), &requester, body).await else {
            break;
        };
        let id = v["id"].as_str().expect("id").to_owned();
        seen.requested.push(id.clone());
        acks.fetch_add(1, Ordering::SeqCst);
        let url = format!("{base}/v1/requests/{id}/approve");
        if post(&http, url, &approver, json!({})).await.is_none() {
            break;
        }
        seen.approved.push(id);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    seen
}

/// Flag changes on a protected environment under alice's grant, each on the revision the last
/// one acknowledged.
async fn flag_writer(
    base: String,
    alice: String,
    mut revision: i64,
    acks: Arc<AtomicUsize>,
) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = format!("{base}/v1/environments/production/flags/{FLAG}/changes");
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let change = json!({"op": "set-state", "enabled": i % 2 == 0});
        let body = json!({"change": change, "base_revision": revision});
        let Some(v) = post(&http, url.clone(), &alice, body).await else {
            break;
        };
        revision = v["revision"].as_i64().expect("revision");
        seen.flag_revision = Some(revision);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    seen
}

/// AuthZEN decisions that are recorded (denies), each about a subject id of its own.
async fn decider(base: String, round: usize, acks: Arc<AtomicUsize>) -> Seen {
    let http = reqwest::Client::new();
    let mut seen = Seen::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let subject = format!("soak-{round}-{i}");
        let body = json!({
            "subject": {"type": "user", "id": subject},
            "action": {"name": "read"},
            "resource": {"type": "db", "id": "orders"},
        });
        let Some(v) = post(
            &http,
            format!("{base}/access/v1/evaluation"),
            ADMIN_TOKEN,
            body,
        )
        .await
        else {
            break;
        };
        assert_eq!(v["decision"], json!(false), "{v}");
        seen.decided.push(subject);
        acks.fetch_add(1, Ordering::SeqCst);
    }
    seen
}

async fn token(http: &reqwest::Client, s: &Serve, principal: &str) -> String {
    let resp = http
        .post(s.url("/v1/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"principal": principal, "name": "soak"}))
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.expect("json");
    v["token"].as_str().expect("token").to_owned()
}

/// Every audit entry after sequence number `after`, in order.
async fn entries(http: &reqwest::Client, s: &Serve, mut after: i64) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page: Value = http
            .get(s.url(&format!("/v1/audit?after={after}&limit=1000")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("audit")
            .json()
            .await
            .expect("json");
        out.extend(page["entries"].as_array().expect("entries").iter().cloned());
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => return out,
        }
    }
}

/// What the soak has read of the trail so far: each round reads only what was appended since
/// (reading and verifying the whole trail every round made a long soak quadratic). Entries
/// already read cannot change unseen: the newest one read is compared again each round, and
/// the whole chain is verified every tenth round and after the last.
#[derive(Default)]
struct Trail {
    /// The newest entry read, whole.
    last: Option<Value>,
    by_action: BTreeMap<String, BTreeMap<String, usize>>,
    flag_changes: i64,
}

impl Trail {
    fn seq(&self) -> i64 {
        self.last
            .as_ref()
            .map_or(0, |e| e["seq"].as_i64().expect("seq"))
    }
}

/// The store's state against what was acknowledged, reading the entries appended since the
/// last check into `trail` and verifying the whole chain if `verify`; returns the flag's
/// revision now.
async fn check(
    http: &reqwest::Client,
    s: &Serve,
    acked: &Acked,
    round: usize,
    trail: &mut Trail,
    verify: bool,
) -> i64 {
    let known = trail.seq();
    let mut new = entries(http, s, (known - 1).max(0)).await;
    if let Some(last) = &trail.last {
        assert_eq!(
            new.first(),
            Some(last),
            "round {round}: the newest entry of the last round is still there, unchanged"
        );
        new.remove(0);
    }
    let seqs: Vec<i64> = new
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (known + 1..=known + new.len() as i64).collect::<Vec<_>>(),
        "round {round}: gap-free sequence numbers"
    );
    for e in &new {
        let action = e["action"].as_str().expect("action");
        let key = match action {
            "decision.deny" => e["details"]["subject"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            "flag.changed" => {
                trail.flag_changes += 1;
                continue;
            }
            _ => e["subject_id"].as_str().unwrap_or_default().to_owned(),
        };
        *trail
            .by_action
            .entry(action.to_owned())
            .or_default()
            .entry(key)
            .or_insert(0) += 1;
    }
    if let Some(e) = new.pop() {
        trail.last = Some(e);
    }
    let flag_changes = trail.flag_changes;
    let empty = BTreeMap::new();
    let count = |action: &str| trail.by_action.get(action).unwrap_or(&empty);
    for (action, ids) in [
        ("access.requested", &acked.requested),
        ("access.approved", &acked.approved),
        ("access.granted", &acked.approved),
        ("decision.deny", &acked.decided),
    ] {
        for id in ids {
            assert_eq!(
                count(action).get(id),
                Some(&1),
                "round {round}: acknowledged {action} {id} is recorded once"
            );
        }
    }
    // What was in flight at a kill is there completely or not at all, and never twice.
    for action in [
        "access.requested",
        "access.approved",
        "access.granted",
        "decision.deny",
    ] {
        for (id, n) in count(action) {
            assert_eq!(*n, 1, "round {round}: {action} {id} recorded once");
        }
    }
    for id in count("access.approved").keys() {
        assert!(
            count("access.granted").contains_key(id),
            "round {round}: approval and grant of {id} commit together"
        );
    }
    // The flag: every acknowledged change is there, at most one more (in flight at the kill),
    // and the revision is exactly one per recorded change.
    let (st, flag) = crate::harness::get_json(
        http,
        &s.url(&format!("/v1/environments/production/flags/{FLAG}")),
        ADMIN_TOKEN,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{flag}");
    let revision = flag["revision"].as_i64().expect("revision");
    assert!(
        revision == acked.flag_revision || revision == acked.flag_revision + 1,
        "round {round}: flag revision {revision}, acknowledged {}",
        acked.flag_revision
    );
    assert_eq!(
        flag_changes,
        revision - 1,
        "round {round}: one flag.changed entry per revision after the import"
    );
    if !verify {
        return revision;
    }
    // The whole trail is verified, so this call grows with the soak: a long run in a debug
    // build on a loaded host needs far more than the harness's 10 s.
    let resp = http
        .get(s.url("/v1/audit/verify"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap_or_else(|e| panic!("round {round}: verify: {e}"));
    let st = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(st, StatusCode::OK, "round {round}: verify: {v}");
    assert_eq!(v["ok"], true, "round {round}: verify: {v}");
    assert_eq!(
        v["entries"].as_i64(),
        Some(trail.seq()),
        "round {round}: verify covers the whole trail: {v}"
    );
    revision
}

/// A small deterministic generator for the kill points (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

async fn soak(data_dir: &Path, extra: &[&str], default_rounds: usize) {
    let rounds: usize = std::env::var("SLUICE_SOAK_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default_rounds);
    let seed: u64 = std::env::var("SLUICE_SOAK_SEED")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| {
            // Random per run: the default hasher's keys.
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1
        });
    eprintln!("soak: {rounds} rounds, SLUICE_SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let http = reqwest::Client::new();

    let s = Serve::start_with(data_dir, extra).await;
    // Flags first: once the policy protects production, an import there needs a grant.
    let import = http
        .put(s.url("/v1/environments/production/flags?create_env=true"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(FLAGS)
        .send()
        .await
        .expect("import");
    assert!(import.status().is_success(), "import: {}", import.status());
    s.apply_policy(&http, POLICY).await;
    let tokens = Tokens {
        dave: token(&http, &s, "dave").await,
        alice: token(&http, &s, "alice").await,
        bob: token(&http, &s, "bob").await,
    };
    // alice is on call: her production flag grant is approved at once (30 minutes, longer
    // than any soak round).
    let grant = post(
        &http,
        s.url("/v1/requests"),
        &tokens.alice,
        json!({"entitlement": "flags-prod-operator", "duration": "30m", "reason": "soak"}),
    )
    .await
    .expect("alice's flag grant");
    assert_eq!(grant["status"], "active", "{grant}");
    let mut acked = Acked {
        flag_revision: 1,
        ..Acked::default()
    };
    let mut trail = Trail::default();
    let mut revision = check(&http, &s, &acked, 0, &mut trail, true).await;
    let mut s = Some(s);
    let started = Instant::now();
    let mut kills_in_flight = 0usize;

    for round in 1..=rounds {
        let server = match s.take() {
            Some(s) => s,
            None => Serve::start_with(data_dir, extra).await,
        };
        let base = format!("http://{}", server.addr);
        let acks = Arc::new(AtomicUsize::new(0));
        let mut writers = vec![
            tokio::spawn(access_writer(
                base.clone(),
                tokens.dave.clone(),
                tokens.bob.clone(),
                acks.clone(),
            )),
            tokio::spawn(access_writer(
                base.clone(),
                tokens.alice.clone(),
                tokens.bob.clone(),
                acks.clone(),
            )),
            tokio::spawn(flag_writer(
                base.clone(),
                tokens.alice.clone(),
                revision,
                acks.clone(),
            )),
        ];
        writers.push(tokio::spawn(decider(base.clone(), round, acks.clone())));
        // Kill at a random moment: after 10–200 acknowledged writes in this round.
        let kill_after = 10 + rng.below(190) as usize;
        let deadline = Instant::now() + Duration::from_secs(15);
        while acks.load(Ordering::SeqCst) < kill_after && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            acks.load(Ordering::SeqCst) >= kill_after,
            "round {round}: the writers made progress before the kill"
        );
        server.kill().await;
        for w in writers {
            let seen = w.await.expect("writer");
            acked.requested.extend(seen.requested);
            acked.approved.extend(seen.approved);
            acked.decided.extend(seen.decided);
            if let Some(r) = seen.flag_revision {
                acked.flag_revision = r;
            }
        }
        let restarted = Serve::start_with(data_dir, extra).await;
        let verify = round % 10 == 0 || round == rounds;
        revision = check(&http, &restarted, &acked, round, &mut trail, verify).await;
        if revision > acked.flag_revision {
            // A flag change committed whose answer the kill swallowed: known from now on.
            kills_in_flight += 1;
            acked.flag_revision = revision;
        }
        s = Some(restarted);
        if round % 10 == 0 {
            eprintln!(
                "soak: round {round}/{rounds}, {:.0?}, {} acknowledged writes",
                started.elapsed(),
                acked.requested.len() + acked.approved.len() * 2 + acked.decided.len()
            );
        }
    }
    eprintln!(
        "soak: {rounds} rounds in {:.0?}: acknowledged {} requests, {} approvals, {} decisions, \
         flag at revision {} ({} changes committed unacknowledged); lost 0, duplicated 0",
        started.elapsed(),
        acked.requested.len(),
        acked.approved.len(),
        acked.decided.len(),
        revision,
        kills_in_flight,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_sqlite_acknowledged_writes_survive_sigkills_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    soak(dir.path(), &[], 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_postgres_acknowledged_writes_survive_sigkills_exactly_once() {
    let Some(url) = pg_url().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("audit-signing.pem");
    let key = key.display().to_string();
    soak(
        dir.path(),
        &["--database-url", &url, "--signing-key", &key],
        2,
    )
    .await;
}
