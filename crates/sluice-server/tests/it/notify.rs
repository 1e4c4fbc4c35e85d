//! Notifications through the outbox, to a real HTTP receiver on 127.0.0.1:0: Standard
//! Webhooks signatures checked by the specification's reference library (Python
//! `standardwebhooks`, pinned in `tests/sdk/requirements.txt`), retries with backoff on the
//! injected clock, dead letters retried by hand, restarts, Slack-style chat messages,
//! per-entitlement filters and reminders; and on PostgreSQL, two instances sharing the work.

use crate::harness::{t0, Backend, Db, TestServer, ADMIN_TOKEN, POLICY};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::TimeDelta;
use serde_json::{json, Value};
use sluice_core::{Clock, ManualClock};
use sluice_server::notify::config::webhook_key;
use sluice_server::notify::{NotifyConfig, Sink, SinkKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One delivery as the receiver got it.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    pub fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

/// A webhook receiver: answers 503 while down, 204 (and keeps the delivery) while up.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub down: Arc<AtomicBool>,
    pub hits: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> (String, Receiver) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, r)
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    pub fn on(&self, path: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.path == path).collect()
    }

    /// Waits (at most 15 s) until `f` holds of what was received.
    pub async fn until(&self, what: &str, f: impl Fn(&Receiver) -> bool) {
        for _ in 0..300 {
            if f(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}; got {:#?}", self.got());
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    r.hits.fetch_add(1, Ordering::SeqCst);
    if r.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    r.got.lock().expect("lock").push(Got {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    StatusCode::NO_CONTENT
}

pub fn webhook(name: &str, url: &str) -> Sink {
    Sink {
        name: name.into(),
        kind: SinkKind::Webhook,
        url: url.into(),
        key: Some(webhook_key(SECRET).expect("a valid secret")),
        events: Vec::new(),
        entitlements: Vec::new(),
        environments: Vec::new(),
        recipients: Vec::new(),
    }
}

fn config(sinks: Vec<Sink>) -> NotifyConfig {
    NotifyConfig {
        sinks,
        backoff: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(4),
        max_attempts: 5,
        ..NotifyConfig::default()
    }
}

/// A clock at the real time (the reference library refuses timestamps five minutes off),
/// moved only by the test.
fn clock_at_real_time() -> ManualClock {
    ManualClock::new(sluice_core::SystemClock.now())
}

async fn start(backend: Backend, clock: ManualClock, n: NotifyConfig) -> Option<TestServer> {
    let db = Db::new(backend).await?;
    let s = TestServer::start_notifying(db, clock, n).await;
    s.apply(POLICY).await;
    Some(s)
}

async fn outbox(s: &TestServer, query: &str) -> Value {
    let (st, v) = s
        .get(ADMIN_TOKEN, &format!("/v1/notifications{query}"))
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    v
}

/// Waits until the outbox, read through the API, satisfies `f`.
async fn until_outbox(s: &TestServer, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let v = outbox(s, "").await;
        if f(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}: {}", outbox(s, "").await);
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `SLUICE_SDK_PYTHON` (set by `.ci/run`), else the venv `.ci/run` makes; `None` (a notice,
/// or under `CI=true` a failure) when neither has the reference library.
pub fn python_with_standardwebhooks() -> Option<PathBuf> {
    let python = std::env::var_os("SLUICE_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/sdk-venv/bin/python3"));
    let ok = std::process::Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but no Python with `standardwebhooks`: .ci/run installs tests/sdk/requirements.txt"
    );
    eprintln!("notice: SKIPPING the reference verification: no Python with `standardwebhooks`");
    None
}

/// Verifies every delivery with the reference library (and that forgeries fail it); returns
/// the ids it verified.
pub fn verify_with_reference(got: &[Got]) -> Option<BTreeSet<String>> {
    let python = python_with_standardwebhooks()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("webhooks.jsonl");
    let lines: Vec<String> = got
        .iter()
        .map(|g| json!({"headers": g.headers, "body": g.body}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/sdk/verify_webhooks.py"))
        .arg(SECRET)
        .arg(&file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "reference verification failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(' ').next().map(str::to_owned))
            .collect(),
    )
}

async fn webhooks_are_signed_per_the_standard(backend: Backend) {
    let (url, rx) = Receiver::start().await;
    let Some(s) = start(
        backend,
        clock_at_real_time(),
        config(vec![webhook("hook", &format!("{url}/hook"))]),
    )
    .await
    else {
        return;
    };
    let alice = s.token("alice").await;
    let dave = s.token("dave").await;
    let bob = s.token("bob").await;
    // Auto-approved (alice is on call): opened, approved, granted.
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-1")
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    // Two approvals needed: opened, then one approval.
    let (st, v) = s.request(&dave, "orders-db-read", "1h", "report").await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    let (st, v) = s
        .post(&bob, &format!("/v1/requests/{id}/approve"), json!({}))
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    rx.until("five webhooks", |r| r.got().len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got();
    assert_eq!(got.len(), 5, "{got:#?}");
    let events: Vec<String> = got
        .iter()
        .map(|g| g.json()["type"].as_str().expect("type").to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        events,
        ["grant.started", "request.approved", "request.opened"]
    );
    for g in &got {
        assert_eq!(g.headers["content-type"], "application/json");
        assert!(g.headers["webhook-signature"].starts_with("v1,"));
        let body = g.json();
        assert!(body["timestamp"].is_string() && body["data"]["audit_seq"].is_i64());
        // The audit entry it reports exists, with that action.
        let seq = body["data"]["audit_seq"].as_i64().expect("seq");
        let (_, page) = s
            .get(ADMIN_TOKEN, &format!("/v1/audit?after={}&limit=1", seq - 1))
            .await;
        assert_eq!(page["entries"][0]["action"], body["data"]["action"]);
    }
    let ids: BTreeSet<String> = got.iter().map(|g| g.id().to_owned()).collect();
    assert_eq!(ids.len(), 5, "every notification has its own id");
    if let Some(verified) = verify_with_reference(&got) {
        assert_eq!(verified, ids);
    }
    let v = until_outbox(&s, "five delivered", |v| v["delivered"] == 5).await;
    assert_eq!(
        (v["pending"].clone(), v["dead"].clone()),
        (json!(0), json!(0))
    );
    // Administrators only.
    let (st, v) = s.get(&alice, "/v1/notifications").await;
    assert_eq!(st, reqwest::StatusCode::FORBIDDEN, "{v}");
}

async fn receiver_down_is_retried_with_backoff_across_a_restart(backend: Backend) {
    let (url, rx) = Receiver::start().await;
    rx.down.store(true, Ordering::SeqCst);
    let clock = ManualClock::new(t0());
    let n = config(vec![webhook("hook", &format!("{url}/hook"))]);
    let Some(s) = start(backend, clock.clone(), n.clone()).await else {
        return;
    };
    let alice = s.token("alice").await;
    let (st, v) = s
        .request(&alice, "flags-prod-operator", "10m", "INC-2")
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let at = s.clock_now();
    // First attempts fail; each is due again after `backoff` (1 s) on the injected clock.
    let v = until_outbox(&s, "three first attempts", |v| {
        v["notifications"]
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|n| n["attempts"] == 1))
    })
    .await;
    for n in v["notifications"].as_array().expect("list") {
        assert_eq!(n["state"], "pending");
        let next: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(n["next_at"].clone()).expect("time");
        assert_eq!(next, at + TimeDelta::seconds(1), "{n}");
    }
    // Nothing more happens while the clock stands still.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.hits.load(Ordering::SeqCst), 3);
    s.advance(TimeDelta::seconds(1));
    let v = until_outbox(&s, "second attempts", |v| {
        v["notifications"]
            .as_array()
            .is_some_and(|a| a.iter().all(|n| n["attempts"] == 2))
    })
    .await;
    for n in v["notifications"].as_array().expect("list") {
        let next: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(n["next_at"].clone()).expect("time");
        assert_eq!(next, at + TimeDelta::seconds(3), "doubled: {n}");
    }
    let ids: BTreeSet<String> = v["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect();
    // Stopped with all three pending; the next server delivers them when they fall due.
    let db = s.into_db().await;
    rx.down.store(false, Ordering::SeqCst);
    let s = TestServer::start_notifying(db, clock, n).await;
    s.advance(TimeDelta::seconds(2));
    rx.until("three deliveries", |r| r.got().len() >= 3).await;
    let got: BTreeSet<String> = rx.got().iter().map(|g| g.id().to_owned()).collect();
    assert_eq!(got, ids, "the same ids, none lost");
    until_outbox(&s, "three delivered", |v| v["delivered"] == 3).await;
    let id = ids.iter().next().expect("one");
    let (_, one) = s.get(ADMIN_TOKEN, &format!("/v1/notifications/{id}")).await;
    let statuses: Vec<Value> = one["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|a| a["http_status"].clone())
        .collect();
    assert_eq!(statuses, [json!(503), json!(503), json!(204)], "{one}");
    assert_eq!(one["state"], "delivered");
}

async fn dead_letters_are_retried_by_hand(backend: Backend) {
    let (url, rx) = Receiver::start().await;
    rx.down.store(true, Ordering::SeqCst);
    let n = NotifyConfig {
        max_attempts: 2,
        ..config(vec![webhook("hook", &format!("{url}/hook"))])
    };
    let Some(s) = start(backend, ManualClock::new(t0()), n).await else {
        return;
    };
    let dave = s.token("dave").await;
    let (st, _) = s.request(&dave, "orders-db-read", "1h", "report").await;
    assert_eq!(st, reqwest::StatusCode::CREATED);
    until_outbox(&s, "one failed attempt", |v| {
        v["notifications"][0]["attempts"] == 1
    })
    .await;
    s.advance(TimeDelta::seconds(1));
    let v = until_outbox(&s, "dead", |v| v["dead"] == 1).await;
    let id = v["notifications"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        outbox(&s, "?state=dead").await["notifications"][0]["id"],
        id
    );
    rx.down.store(false, Ordering::SeqCst);
    s.advance(TimeDelta::hours(1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        rx.got().is_empty(),
        "a dead notification waits for a person"
    );
    // Retried by an administrator: audited, and delivered with the same id.
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            &format!("/v1/notifications/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    assert_eq!(v, json!({"id": id, "was": "dead", "requeued": true}));
    rx.until("the retried one", |r| r.got().len() == 1).await;
    assert_eq!(rx.got()[0].id(), id);
    let retried = s.audit_actions("notification.retried").await;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0]["subject_id"], id.as_str());
    until_outbox(&s, "delivered", |v| v["delivered"] == 1).await;
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            &format!("/v1/notifications/{id}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    assert_eq!(v["requeued"], false);
    let (st, v) = s
        .post(
            ADMIN_TOKEN,
            "/v1/notifications/msg-nothing/retry",
            json!({}),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["code"], "not_found");
    let (st, _) = s
        .post(&dave, &format!("/v1/notifications/{id}/retry"), json!({}))
        .await;
    assert_eq!(st, reqwest::StatusCode::FORBIDDEN);
}

async fn chat_messages_filters_and_reminders(backend: Backend) {
    let (url, rx) = Receiver::start().await;
    let chat = Sink {
        name: "team-chat".into(),
        kind: SinkKind::Slack,
        url: format!("{url}/chat"),
        key: None,
        events: vec!["request.*".into(), "grant.expiring".into()],
        entitlements: vec!["orders-*".into()],
        environments: Vec::new(),
        recipients: Vec::new(),
    };
    let hook = Sink {
        events: vec!["grant.expiring".into()],
        ..webhook("hook", &format!("{url}/hook"))
    };
    let n = NotifyConfig {
        reminders: sluice_server::notify::config::Reminders {
            expiring_before: Some(Duration::from_secs(600)),
            ..Default::default()
        },
        remind_every: Duration::from_millis(100),
        ..config(vec![chat, hook])
    };
    let Some(s) = start(backend, ManualClock::new(t0()), n).await else {
        return;
    };
    let (dave, bob, carol, alice) = (
        s.token("dave").await,
        s.token("bob").await,
        s.token("carol").await,
        s.token("alice").await,
    );
    let (_, v) = s.request(&dave, "orders-db-read", "1h", "report").await;
    let id = v["id"].as_str().expect("id").to_owned();
    for approver in [&bob, &carol] {
        let (st, v) = s
            .post(approver, &format!("/v1/requests/{id}/approve"), json!({}))
            .await;
        assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    }
    // Not an orders entitlement: the chat does not hear of it.
    let (st, _) = s
        .request(&alice, "flags-prod-operator", "30m", "INC-3")
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED);
    rx.until("three chat messages", |r| r.on("/chat").len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chat = rx.on("/chat");
    assert_eq!(chat.len(), 3, "{chat:#?}");
    // Deliveries of different events are not ordered among themselves: find the request's.
    let opened_at = chat
        .iter()
        .position(|m| m.json()["text"] == "dave requests `orders-db-read`")
        .unwrap_or_else(|| panic!("no message for the opened request: {chat:#?}"));
    let opened = chat[opened_at].json();
    let buttons = &opened["blocks"][2]["elements"];
    assert_eq!(buttons[0]["text"]["text"], "Approve");
    assert_eq!(buttons[1]["text"]["text"], "Deny");
    assert!(buttons[0]["url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/ui/inbox")));
    assert!(!chat[opened_at].headers.contains_key("webhook-signature"));
    assert!(
        rx.on("/hook").is_empty(),
        "the webhook hears only reminders"
    );
    // 51 minutes on: dave's hour ends in 9 — reminded once, with the extend command; alice's
    // 30 minutes are over: no reminder.
    s.advance(TimeDelta::minutes(51));
    rx.until("the reminders", |r| {
        r.on("/hook").len() == 1 && r.on("/chat").len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.on("/hook").len(), 1, "reminded once");
    let reminder = rx.on("/hook")[0].json();
    assert_eq!(reminder["type"], "grant.expiring");
    assert_eq!(reminder["data"]["subject_id"], id.as_str());
    assert_eq!(reminder["data"]["expires_in_secs"], 540);
    assert!(reminder["data"]["extend_command"]
        .as_str()
        .is_some_and(|c| c.starts_with(&format!("sluice access extend {id}"))));
    let chat = rx.on("/chat")[3].json();
    assert!(chat["blocks"]
        .to_string()
        .contains(&format!("sluice access extend {id}")));
}

/// The event types a receiver path got, sorted.
fn types(rx: &Receiver, path: &str) -> Vec<String> {
    let mut t: Vec<String> = rx
        .on(path)
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    t.sort();
    t
}

/// Per-person sinks hear only what concerns their person, chat messages @-mention who must
/// act, and the holder's reminder carries the exact command to extend that grant.
async fn notifications_reach_the_people_who_must_act(backend: Backend) {
    let (url, rx) = Receiver::start().await;
    let person = |name: &str| Sink {
        recipients: vec![name.into()],
        ..webhook(&format!("{name}-hook"), &format!("{url}/{name}"))
    };
    let chat = Sink {
        name: "team-chat".into(),
        kind: SinkKind::Slack,
        url: format!("{url}/chat"),
        key: None,
        events: vec![
            "request.opened".into(),
            "request.pending".into(),
            "grant.expiring".into(),
        ],
        entitlements: Vec::new(),
        environments: Vec::new(),
        recipients: Vec::new(),
    };
    let n = NotifyConfig {
        reminders: sluice_server::notify::config::Reminders {
            expiring_before: Some(Duration::from_secs(600)),
            pending_after: Some(Duration::from_secs(1200)),
            ..Default::default()
        },
        remind_every: Duration::from_millis(100),
        chat_users: [("bob", "UBOB"), ("carol", "UCAROL"), ("dave", "UDAVE")]
            .into_iter()
            .map(|(p, id)| (p.to_owned(), id.to_owned()))
            .collect(),
        ..config(vec![person("dave"), person("bob"), chat])
    };
    let Some(s) = start(backend, ManualClock::new(t0()), n).await else {
        return;
    };
    let (dave, bob, carol) = (
        s.token("dave").await,
        s.token("bob").await,
        s.token("carol").await,
    );
    // Dave asks; bob and carol (leads) and mallory may approve `orders-db-read`.
    let (st, v) = s
        .request(&dave, "orders-db-read", "1h", "INC-9 it's slow")
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().expect("id").to_owned();
    rx.until("the request in chat and to bob", |r| {
        !r.on("/chat").is_empty() && !r.on("/bob").is_empty()
    })
    .await;
    let opened = rx.on("/chat")[0].json();
    assert_eq!(
        opened["text"], "<@UBOB> <@UCAROL> dave requests `orders-db-read`",
        "the approvers with a chat user are mentioned, the requester is not"
    );
    // Still waiting after 20 minutes: the approvers are reminded, by name.
    s.advance(TimeDelta::minutes(21));
    rx.until("the pending reminder", |r| {
        r.on("/chat").len() == 2 && r.on("/bob").len() == 2
    })
    .await;
    let pending = rx.on("/chat")[1].json();
    assert!(
        pending["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("<@UBOB> <@UCAROL> ") && t.contains("still waiting")),
        "{pending}"
    );
    for approver in [&bob, &carol] {
        let (st, v) = s
            .post(approver, &format!("/v1/requests/{id}/approve"), json!({}))
            .await;
        assert_eq!(st, reqwest::StatusCode::OK, "{v}");
    }
    // Nine minutes before the grant ends: dave is reminded, with the command for this grant.
    s.advance(TimeDelta::minutes(51));
    rx.until("the expiry reminder", |r| {
        r.on("/dave")
            .iter()
            .any(|g| g.json()["type"] == "grant.expiring")
            && r.on("/chat").len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reminder = rx
        .on("/dave")
        .into_iter()
        .map(|g| g.json())
        .find(|g| g["type"] == "grant.expiring")
        .expect("the reminder");
    assert_eq!(reminder["data"]["subject_id"], id.as_str());
    assert_eq!(
        reminder["data"]["extend_command"],
        format!(r"sluice access extend {id} --for 1h --reason 'INC-9 it'\''s slow'")
    );
    assert_eq!(reminder["data"]["mentions"], json!(["UDAVE"]));
    let chat = rx.on("/chat")[2].json();
    assert!(
        chat["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("<@UDAVE> dave's access")),
        "only the holder is mentioned: {chat}"
    );
    assert!(chat["blocks"]
        .to_string()
        .contains(&format!("sluice access extend {id} --for 1h")));
    // Each person's sink heard only what concerns them: dave his request's outcome and his
    // grant, bob the request he may approve (and its reminder).
    assert_eq!(
        types(&rx, "/dave"),
        [
            "grant.expiring",
            "grant.started",
            "request.approved",
            "request.approved"
        ]
    );
    assert_eq!(types(&rx, "/bob"), ["request.opened", "request.pending"]);
}

crate::backend_tests!(
    webhooks_are_signed_per_the_standard,
    receiver_down_is_retried_with_backoff_across_a_restart,
    dead_letters_are_retried_by_hand,
    chat_messages_filters_and_reminders,
    notifications_reach_the_people_who_must_act,
);

/// Two instances on one PostgreSQL database, both dispatching to one receiver: every event
/// arrives, and any duplicate carries the same id and the same body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_lose_nothing_and_duplicate_only_by_id() {
    let Some(db) = Db::new(Backend::Postgres).await else {
        return;
    };
    let (url, rx) = Receiver::start().await;
    let clock = clock_at_real_time();
    let n = config(vec![webhook("hook", &format!("{url}/hook"))]);
    let second = Db {
        url: db.url.clone(),
        key: db.key.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let a = TestServer::start_notifying(db, clock.clone(), n.clone()).await;
    a.apply(POLICY).await;
    let b = TestServer::start_notifying(second, clock, n).await;
    let (ta, tb) = (a.token("dave").await, a.token("erin").await);
    // The second instance learns of the policy within a sync.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut writers = Vec::new();
    for (s, token) in [(&a, ta), (&b, tb)] {
        let (base, http) = (s.url(""), s.http.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..25 {
                let r = http
                    .post(format!("{base}/v1/requests"))
                    .bearer_auth(&token)
                    .json(&json!({"entitlement": "orders-db-read", "duration": "1h", "reason": format!("r{i}")}))
                    .send()
                    .await
                    .expect("sent");
                assert_eq!(r.status(), reqwest::StatusCode::CREATED);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    until_outbox(&a, "fifty delivered", |v| v["delivered"] == 50).await;
    let v = outbox(&a, "?limit=1000").await;
    let ids: BTreeSet<String> = v["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 50);
    rx.until("fifty ids", |r| {
        r.got()
            .iter()
            .map(|g| g.id().to_owned())
            .collect::<BTreeSet<_>>()
            .len()
            == 50
    })
    .await;
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    for g in rx.got() {
        if let Some(b) = bodies.insert(g.id().to_owned(), g.body.clone()) {
            assert_eq!(b, g.body, "a duplicate carries the same body");
        }
    }
    assert_eq!(bodies.keys().cloned().collect::<BTreeSet<_>>(), ids);
    // Both instances delivered some: the claims are shared.
    let mut instances = BTreeSet::new();
    for id in ids.iter().take(50) {
        let (_, one) = a.get(ADMIN_TOKEN, &format!("/v1/notifications/{id}")).await;
        instances.insert(
            one["history"][0]["instance"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    eprintln!(
        "delivered by {} instance(s); {} deliveries for 50 ids",
        instances.len(),
        rx.got().len()
    );
}
