//! One client connection: negotiate TLS, authenticate the Sluice token, admit by the live
//! grant (recording the session first), then relay until either side closes or the grant
//! ends — then tell the client why, and make sure the upstream backend stops.

use crate::log::Recorder;
use crate::scan::{Frames, Scanner};
use crate::stream::ClientStream;
use crate::wire::{self, Startup};
use crate::{CancelTarget, Shared};
use anyhow::bail;
use bytes::BytesMut;
use chrono::{DateTime, Utc};
use serde_json::json;
use sluice_core::decision::Reason;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_server::gateway::LiveSession;
use sluice_server::App;
use sluice_store::{GatewaySession, NewEntry, SessionEnd};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Relay buffer per direction.
const BUF: usize = 32 * 1024;

pub(crate) async fn handle(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
) -> anyhow::Result<()> {
    tcp.set_nodelay(true)?;
    let mut stream = ClientStream::Plain(tcp);
    let params = loop {
        match wire::read_startup(&mut stream).await? {
            Startup::Ssl => match stream {
                ClientStream::Plain(mut tcp) => {
                    tcp.write_all(b"S").await?;
                    stream = ClientStream::Tls(Box::new(shared.tls.accept(tcp).await?));
                }
                ClientStream::Tls(_) => bail!("SSLRequest inside TLS"),
            },
            Startup::GssEnc => stream.write_all(b"N").await?,
            Startup::Cancel { pid, secret } => {
                forward_cancel(&shared, pid, secret).await;
                return Ok(());
            }
            Startup::Params(p) => break p,
            Startup::Unsupported(code) => {
                return refuse(
                    &mut stream,
                    "0A000",
                    &format!("unsupported frontend protocol {code}"),
                    None,
                )
                .await;
            }
        }
    };
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let user = param("user").unwrap_or_default();
    let database = param("database").unwrap_or_else(|| user.clone());
    let plaintext_ok = shared.config.allow_plaintext_loopback && peer.ip().is_loopback();
    if !(stream.is_tls() || plaintext_ok) {
        return refuse(
            &mut stream,
            "28000",
            "the password is a Sluice token and is accepted only over TLS",
            Some("connect with sslmode=require"),
        )
        .await;
    }

    // The password is the principal's Sluice API token.
    let mut out = BytesMut::new();
    wire::auth_cleartext(&mut out);
    stream.write_all(&out).await?;
    let (tag, body) = wire::read_message(&mut stream).await?;
    if tag != b'p' {
        bail!("expected a password message");
    }
    let token = wire::cstr(&body)
        .map(|(t, _)| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default();
    let app = &shared.app;
    // Failures count per client address and token prefix, as on the API (one count).
    let authenticated = sluice_server::auth::authenticate_from(
        app,
        Some(SecretToken::from_presented(&token)),
        Some(peer.ip()),
    )
    .await;
    if let Err(sluice_server::error::ApiError::TooManyFailures { retry_after }) = authenticated {
        return refuse(
            &mut stream,
            "28000",
            &format!(
                "too many failed authentications from this address or with this token prefix; retry after {retry_after} s"
            ),
            None,
        )
        .await;
    }
    if matches!(
        authenticated,
        Err(sluice_server::error::ApiError::TokenExpired)
    ) {
        return refuse(
            &mut stream,
            "28P01",
            &format!(
                "password authentication failed for user \"{user}\": the password has expired"
            ),
            Some("get a new connection password with `sluice db connect`"),
        )
        .await;
    }
    let caller = authenticated.ok().filter(|c| {
        // An API token, or a connection password for this very database.
        let opens = match c.kind {
            TokenKind::Api | TokenKind::Session => true,
            TokenKind::Db => {
                c.database.as_deref() == Some(&*sluice_core::scope::normalize(&database))
            }
            TokenKind::Client | TokenKind::Edge => false,
        };
        opens && c.name == sluice_core::scope::normalize(&user)
    });
    let Some(caller) = caller else {
        return refuse(
            &mut stream,
            "28P01",
            &format!("password authentication failed for user \"{user}\""),
            Some("the password is your Sluice API token (or a password from `sluice db connect`), and the user its principal"),
        )
        .await;
    };

    // Admission: the strongest declared action a live grant allows.
    let resource = format!("db:{}", sluice_core::scope::normalize(&database));
    // The config file's declaration, else the API's (read per connection, so every instance
    // serves a database the moment it is declared). A store that cannot answer refuses.
    let declared = match app.gateway_database(&database).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "looking up gateway database {database} failed: {e}");
            return refuse(
                &mut stream,
                "58000",
                "the gateway cannot read its databases right now",
                None,
            )
            .await;
        }
    };
    let snap = app.access.load();
    let now = app.now();
    let admitted = declared.as_ref().and_then(|db| {
        db.roles.iter().rev().find_map(|role| {
            match snap
                .decide_by_grant(&caller.name, &role.action, &resource, now)
                .reason
            {
                Reason::Grant {
                    grant_id,
                    entitlement,
                    expires_at,
                } => Some((db, role, grant_id, entitlement, expires_at)),
                _ => None,
            }
        })
    });
    let Some((db, role, grant_id, entitlement, expires_at)) = admitted else {
        // INVARIANT: the same answer whether or not the database is declared, built from
        // the policy alone: nobody learns from a refusal which databases exist.
        let hint = snap.request_hint(&resource);
        let entry = NewEntry::new(&caller.name, "gateway.session.refused")
            .resource(&resource)
            .details(json!({"client": peer.to_string(), "reason": "no live grant"}));
        if let Err(e) = record(app, now, entry).await {
            tracing::warn!(error = %e, "recording a refused gateway session failed: {e}");
        }
        return refuse(
            &mut stream,
            "42501",
            &format!(
                "no live grant allows {} to connect to {resource}",
                caller.name
            ),
            Some(&hint),
        )
        .await;
    };
    drop(snap);

    let up = match crate::upstream::connect(db, role, &params).await {
        Ok(up) => up,
        Err(e) => {
            tracing::warn!(database = %db.name, error = %e, "upstream of db:{} refused a session: {e}", db.name);
            return refuse(
                &mut stream,
                "08006",
                &format!("{resource} is not reachable right now"),
                None,
            )
            .await;
        }
    };

    // Fail-closed: the session exists only once its start is in the audit trail.
    let id = sluice_server::ids::new_id("pgs");
    let started_at = app.now();
    let record = GatewaySession {
        id: id.clone(),
        principal: caller.name.clone(),
        database: db.name.clone(),
        action: role.action.clone(),
        role: role.user.clone(),
        grant_id: grant_id.clone(),
        client_addr: peer.to_string(),
        started_at,
        expires_at,
        end: None,
        instance: Some(app.gateway.instance_id().to_owned()),
    };
    if let Err(e) = record_start(app, &record, &entitlement, db.log, stream.is_tls()).await {
        tracing::error!(session = %id, error = %e, "session {id} refused: its start could not be audited: {e}");
        return refuse(
            &mut stream,
            "58000",
            "the session could not be recorded in the audit trail, so it is refused",
            None,
        )
        .await;
    }
    tracing::info!(session = %id, principal = %caller.name, grant_id = %grant_id, role = %role.user,
        "gateway session {id}: {} on {resource} as {} under {grant_id}", caller.name, role.user);

    // The client gets a cancellation key of its own, mapped to the upstream's.
    let (pid, secret) = loop {
        let (p, s) = (rand::random::<i32>() & i32::MAX, rand::random::<i32>());
        let mut keys = shared.cancel_keys.lock().unwrap_or_else(|e| e.into_inner());
        if p != 0 && !keys.contains_key(&(p, s)) {
            keys.insert(
                (p, s),
                CancelTarget {
                    host: db.upstream.host.clone(),
                    port: db.upstream.port,
                    pid: up.pid,
                    secret: up.secret,
                },
            );
            break (p, s);
        }
    };
    let mut hello = BytesMut::new();
    wire::auth_ok(&mut hello);
    let greeting = &up.greeting;
    // INVARIANT: the greeting ends with ReadyForQuery (6 bytes); BackendKeyData goes before it.
    let split = greeting.len().saturating_sub(6);
    hello.extend_from_slice(&greeting[..split]);
    wire::backend_key_data(&mut hello, pid, secret);
    hello.extend_from_slice(&greeting[split..]);

    let live = Arc::new(LiveSession::new(
        id.clone(),
        caller.name.clone(),
        db.name.clone(),
        role.action.clone(),
        role.user.clone(),
        grant_id.clone(),
        peer.to_string(),
        started_at,
        expires_at,
    ));
    app.gateway.insert(live.clone());
    let mut recorder = Recorder::new(
        shared.log.clone(),
        id.clone(),
        caller.name.clone(),
        resource.clone(),
        db.log,
    );
    let outcome = match stream.write_all(&hello).await {
        Ok(()) => {
            relay(
                app,
                stream,
                up.stream,
                &live,
                &mut recorder,
                db.max_statement_bytes,
                &resource,
            )
            .await
        }
        Err(_) => Outcome::Closed("client went away".into()),
    };
    shared
        .cancel_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(pid, secret));
    if outcome.backend_may_run() {
        // Stop whatever the backend is running (a client that vanished mid-query, or a cut
        // session); the connection is already closed, so the backend then exits.
        if let Err(e) =
            crate::upstream::cancel(&db.upstream.host, db.upstream.port, up.pid, up.secret).await
        {
            tracing::warn!(session = %id, error = %e, "cancelling the upstream backend of {id} failed: {e}");
        }
    }
    app.gateway.remove(&id);
    let complete = recorder.flush().await;
    let end = SessionEnd {
        at: app.now(),
        reason: outcome.reason().to_owned(),
        bytes_in: i64::try_from(live.bytes_in.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        bytes_out: i64::try_from(live.bytes_out.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        statements: i64::try_from(live.statements.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        log_hash: recorder.hash.clone(),
    };
    let mut tx = app.store.begin().await?;
    tx.end_gateway_session(&id, &end).await?;
    tx.audit(
        end.at,
        NewEntry::new(&caller.name, "gateway.session.ended")
            .resource(&resource)
            .subject_id(&id)
            .details(json!({
                "session": id, "grant_id": grant_id, "reason": end.reason,
                "bytes_in": end.bytes_in, "bytes_out": end.bytes_out,
                "statements": end.statements, "logged": recorder.seq,
                "log_hash": end.log_hash, "log_complete": complete,
            })),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(session = %id, reason = %end.reason, "gateway session {id} ended: {}", end.reason);
    Ok(())
}

async fn record_start(
    app: &App,
    s: &GatewaySession,
    entitlement: &str,
    mode: crate::LogMode,
    tls: bool,
) -> Result<(), sluice_store::StoreError> {
    let mut tx = app.store.begin().await?;
    tx.insert_gateway_session(s).await?;
    tx.audit(
        s.started_at,
        NewEntry::new(&s.principal, "gateway.session.started")
            .resource(format!("db:{}", s.database))
            .subject_id(&s.id)
            .details(json!({
                "session": s.id, "grant_id": s.grant_id, "entitlement": entitlement,
                "action": s.action, "role": s.role, "client": s.client_addr, "tls": tls,
                "expires_at": s.expires_at, "log": mode.as_str(),
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn record(
    app: &App,
    at: DateTime<Utc>,
    entry: NewEntry,
) -> Result<(), sluice_store::StoreError> {
    let mut tx = app.store.begin().await?;
    tx.audit(at, entry).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes a `FATAL` error and ends the connection.
async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    code: &str,
    msg: &str,
    hint: Option<&str>,
) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    wire::error(&mut out, "FATAL", code, msg, hint);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

async fn forward_cancel(shared: &Shared, pid: i32, secret: i32) {
    let target = shared
        .cancel_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(pid, secret))
        .cloned();
    // An unknown key is ignored, as PostgreSQL does.
    if let Some(t) = target {
        if let Err(e) = crate::upstream::cancel(&t.host, t.port, t.pid, t.secret).await {
            tracing::warn!(error = %e, "forwarding a cancel request failed: {e}");
        }
    }
}

enum Outcome {
    /// The upstream closed the connection.
    UpstreamClosed,
    /// The client closed, or a transport error.
    Closed(String),
    /// The gateway ended the session (grant over, or killed); the client was told.
    Cut { reason: String },
}

impl Outcome {
    fn backend_may_run(&self) -> bool {
        !matches!(self, Outcome::UpstreamClosed)
    }

    fn reason(&self) -> &str {
        match self {
            Outcome::UpstreamClosed => "upstream closed the connection",
            Outcome::Closed(r) => r,
            Outcome::Cut { reason } => reason,
        }
    }
}

async fn relay(
    app: &App,
    client: ClientStream,
    upstream: TcpStream,
    live: &LiveSession,
    recorder: &mut Recorder,
    max_statement_bytes: usize,
    resource: &str,
) -> Outcome {
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut ur, mut uw) = upstream.into_split();
    let mut frames = Frames::default();
    let ended = {
        let c2s = client_to_server(app, &mut cr, &mut uw, recorder, live, max_statement_bytes);
        let s2c = server_to_client(&mut ur, &mut cw, &mut frames, live);
        tokio::select! {
            r = c2s => Err(r),
            r = s2c => r.map(|()| None),
            end = sluice_server::gateway::watch(app, live, resource) => Ok(Some(end)),
        }
    };
    match ended {
        Err(reason) => {
            let _ = uw.shutdown().await;
            Outcome::Closed(reason)
        }
        Ok(Some((reason, message))) => {
            // Finish the message the client is in the middle of, then the FATAL error.
            let mut buf = vec![0u8; BUF];
            let drain = async {
                while !frames.at_boundary() {
                    let n = ur.read(&mut buf).await?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                    }
                    let used = frames.advance(&buf[..n]);
                    cw.write_all(&buf[..used]).await?;
                }
                let mut out = BytesMut::new();
                wire::error(&mut out, "FATAL", "57P01", &message, None);
                cw.write_all(&out).await?;
                cw.flush().await
            };
            let _ = tokio::time::timeout(Duration::from_millis(300), drain).await;
            let _ = cw.shutdown().await;
            // Terminate, in case the backend is idle; the cancel after this stops a running query.
            let mut x = BytesMut::new();
            postgres_protocol::message::frontend::terminate(&mut x);
            let _ = uw.write_all(&x).await;
            let _ = uw.shutdown().await;
            Outcome::Cut { reason }
        }
        Ok(None) => {
            let _ = cw.shutdown().await;
            Outcome::UpstreamClosed
        }
    }
}

/// Relays client → upstream, recording statements. Returns why it stopped.
async fn client_to_server<R, W>(
    app: &App,
    cr: &mut R,
    uw: &mut W,
    recorder: &mut Recorder,
    live: &LiveSession,
    max_statement_bytes: usize,
) -> String
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scanner = Scanner::new(max_statement_bytes);
    let mut buf = vec![0u8; BUF];
    let mut found = Vec::new();
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(0) => return "client closed the connection".into(),
            Ok(n) => n,
            Err(e) => return format!("client connection failed: {e}"),
        };
        scanner.feed(&buf[..n], &mut found);
        if !found.is_empty() {
            let runs = found.iter().filter(|s| s.runs()).count() as u64;
            live.statements.fetch_add(runs, Ordering::Relaxed);
            if let Err(e) = recorder.record(app, std::mem::take(&mut found)).await {
                // Strict mode: a statement that cannot be audited is not forwarded.
                return e.to_string();
            }
        }
        if let Err(e) = uw.write_all(&buf[..n]).await {
            return format!("upstream connection failed: {e}");
        }
        live.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Relays upstream → client. `Ok(())` when upstream closed, `Err` on a client failure.
/// A plain copy: the grant is watched beside it ([`watch`]), so a busy session pays nothing
/// per message for the watching.
async fn server_to_client<R, W>(
    ur: &mut R,
    cw: &mut W,
    frames: &mut Frames,
    live: &LiveSession,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        frames.feed(&buf[..n]);
        cw.write_all(&buf[..n])
            .await
            .map_err(|e| format!("client connection failed: {e}"))?;
        live.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }
}
