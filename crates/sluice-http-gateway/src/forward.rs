//! Forwarding an admitted call: the body limit, the upstream credential, the admission entry
//! (fail-closed), the call registered as in progress, the request upstream, and the response
//! relayed until it ends or the grant does (or the connection spliced, for an upgrade).

use crate::config::ServiceConfigExt;
use crate::headers;
use crate::record::Call;
use crate::refusal::Refusal;
use crate::{Service, Shared, Watch};
use axum::body::{Body, HttpBody};
use axum::http::header::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sluice_server::gateway::http_live::LiveCall;
use sluice_server::gateway::{watch, Hold};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A call the decision allowed, and under which grant.
pub(crate) struct Admitted {
    /// The caller's address, for `X-Forwarded-For`.
    pub(crate) peer: std::net::IpAddr,
    /// The caller's address and port, as recorded.
    pub(crate) client: String,
    pub(crate) started: Instant,
    pub(crate) principal: String,
    pub(crate) grant_id: String,
    pub(crate) entitlement: String,
    pub(crate) expires_at: chrono::DateTime<chrono::Utc>,
    pub(crate) resource: String,
    pub(crate) method: String,
    pub(crate) path: crate::path::CanonicalPath,
}

pub(crate) async fn forward(
    shared: &Shared,
    service: &Service,
    mut parts: axum::http::request::Parts,
    body: Body,
    a: Admitted,
) -> Result<Response, Refusal> {
    let app = &shared.app;
    let cfg = &service.config;
    let limit = cfg.max_body_bytes;
    let declared_len = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let refuse = |r: Refusal| {
        shared.log.refused(
            app,
            crate::record::Refused {
                principal: &a.principal,
                resource: &a.resource,
                method: &a.method,
                path: &a.path.decoded,
                client: a.client.clone(),
                status: r.status().as_u16(),
                code: r.code(),
                message: r.to_string(),
            },
        );
        Err(r)
    };
    if declared_len.is_some_and(|n| n > limit) {
        return refuse(Refusal::BodyTooLarge {
            resource: a.resource.clone(),
            limit,
        });
    }
    let credential = match &service.credential {
        None => None,
        Some((header, source)) => {
            let value = source
                .value()
                .ok()
                .and_then(|v| HeaderValue::from_bytes(v.expose()).ok());
            match value {
                Some(mut v) => {
                    v.set_sensitive(true);
                    Some((header.clone(), v))
                }
                None => {
                    tracing::warn!(service = %cfg.name, "http service {}: the upstream credential cannot be read", cfg.name);
                    return refuse(Refusal::CredentialUnavailable {
                        resource: a.resource.clone(),
                    });
                }
            }
        }
    };
    let source = headers::token(&parts.headers).map(|(_, s)| s);
    // An upgrade (WebSocket) asked on an HTTP/1.1 connection that can hand it over: decided
    // and recorded as the call it is, then spliced through once the upstream agrees.
    let upgrade = match headers::upgrade_asked(&parts) {
        Some(protocol) => parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .map(|on| (protocol, on)),
        None => None,
    };
    let received = Arc::new(AtomicU64::new(0));
    let mut call = Call {
        app: app.clone(),
        log: shared.log.clone(),
        id: sluice_server::ids::new_id("htc"),
        principal: a.principal,
        grant_id: a.grant_id,
        entitlement: a.entitlement,
        resource: a.resource,
        method: a.method,
        path: a.path.decoded,
        client: a.client,
        mode: cfg.audit,
        started: a.started,
        status: 0,
        bytes_in: received.clone(),
        bytes_out: 0,
        outcome: String::new(),
        sent: false,
        live: None,
    };
    if cfg.audit == crate::config::AuditMode::Before {
        // Fail-closed: nothing is forwarded unless its admission is in the audit trail.
        if let Err(e) = call.admit().await {
            tracing::error!(call = %call.id, error = %e, "http call {} refused: it could not be audited: {e}", call.id);
            return Err(Refusal::AuditUnavailable);
        }
    }

    // From here the call is in progress: listed, and killed, through the API.
    let live = Arc::new(LiveCall {
        hold: Hold::new(
            call.id.clone(),
            call.principal.clone(),
            call.grant_id.clone(),
            a.expires_at,
        ),
        service: cfg.name.clone(),
        method: call.method.clone(),
        path: call.path.clone(),
        client_addr: call.client.clone(),
        started_at: app.now(),
        websocket: AtomicBool::new(false),
        bytes_in: received.clone(),
        bytes_out: Arc::new(AtomicU64::new(0)),
    });
    app.http_gateway.calls.insert(live.clone());
    call.live = Some(live.clone());
    // The grant's end (or a kill) ends the call whenever it comes: while the upstream
    // thinks, while the response is relayed, while a WebSocket is open.
    let mut watching: Watch = {
        let (app, live, resource) = (app.clone(), live.clone(), call.resource.clone());
        Box::pin(async move { watch(&app, &live.hold, &resource).await })
    };

    let mut url = service.base.clone();
    let query = parts.uri.query();
    url.set_path(&format!("{}{}", service.base_path, a.path.encoded));
    url.set_query(query);
    let mut upstream_headers = headers::to_upstream(
        parts.headers,
        source,
        a.peer,
        credential.as_ref().map(|(n, v)| (n, v.clone())),
    );
    if let Some((protocol, _)) = &upgrade {
        headers::ask_upgrade(&mut upstream_headers, protocol.clone());
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let mut req = shared
        .client
        .request(parts.method, url)
        .headers(upstream_headers);
    if !body.is_end_stream() {
        let (flag, counter) = (too_large.clone(), received.clone());
        let limited = body.into_data_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            let seen =
                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
            if seen > limit {
                flag.store(true, Ordering::Relaxed);
                return Err(std::io::Error::other(
                    "request body over the service's limit",
                ));
            }
            Ok(chunk)
        });
        req = req.body(reqwest::Body::wrap_stream(limited));
    }
    call.sent = true;
    // What is recorded if the caller hangs up while the upstream thinks.
    call.outcome = "client went away before the response".into();
    let sent = tokio::select! {
        biased;
        (reason, message) = &mut watching => {
            tracing::info!(call = %call.id, grant_id = %call.grant_id, "http call {} cut before its response: {message}", call.id);
            call.status = 403;
            call.outcome = format!("cut: {reason}");
            return Err(Refusal::AccessEnded(message));
        }
        sent = tokio::time::timeout(cfg.timeout_std(), req.send()) => sent,
    };
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if too_large.load(Ordering::Relaxed) => {
            call.status = 413;
            call.outcome = format!("refused: body over {limit} bytes ({e})");
            return Err(Refusal::BodyTooLarge {
                resource: call.resource.clone(),
                limit,
            });
        }
        Ok(Err(e)) => {
            call.status = 502;
            call.outcome = format!("upstream unavailable: {e}");
            tracing::warn!(call = %call.id, service = %cfg.name, error = %e, "http call {} to {}: upstream unavailable: {e}", call.id, cfg.name);
            return Err(Refusal::UpstreamUnavailable {
                resource: call.resource.clone(),
                detail: e.without_url().to_string(),
            });
        }
        Err(_) => {
            call.status = 504;
            call.outcome = "upstream timed out".into();
            return Err(Refusal::UpstreamTimeout {
                resource: call.resource.clone(),
                seconds: cfg.timeout_std().as_secs(),
            });
        }
    };
    call.status = resp.status().as_u16();
    let status = resp.status();
    // The server stops reading a body once its declared length is sent: a call whose body
    // was all sent is complete whether or not its end was read.
    let expected =
        if call.method == "HEAD" || status.is_informational() || status == 204 || status == 304 {
            Some(0)
        } else {
            resp.content_length()
        };
    call.outcome = if expected == Some(0) {
        "completed".into()
    } else {
        "client went away".into()
    };
    let mut headers_out = headers::to_caller(
        resp.headers().clone(),
        credential.as_ref().map(|(n, v)| (n, v)),
    );
    if let Some((_, on_upgrade)) = upgrade {
        if status == axum::http::StatusCode::SWITCHING_PROTOCOLS {
            headers::grant_upgrade(&mut headers_out, resp.headers());
            crate::upgrade::splice(call, live, watching, resp, on_upgrade);
            let mut out = Response::new(Body::empty());
            *out.status_mut() = status;
            *out.headers_mut() = headers_out;
            return Ok(out);
        }
    }
    let body = relay(call, watching, expected, resp.bytes_stream());
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers_out;
    Ok(out)
}

/// The response body, relayed until it ends or the grant does (then the stream fails, so
/// the caller sees a cut response, never a complete-looking short one). The call's result is
/// recorded when this stream is dropped.
fn relay(
    call: Call,
    watching: Watch,
    expected: Option<u64>,
    upstream: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let state = Some((Box::pin(upstream), watching, call));
    futures_util::stream::unfold(state, move |state| async move {
        let (mut upstream, mut watching, mut call) = state?;
        tokio::select! {
            biased;
            (reason, message) = &mut watching => {
                tracing::info!(call = %call.id, grant_id = %call.grant_id, "http call {} cut: {message}", call.id);
                call.outcome = format!("cut: {reason}");
                Some((Err(std::io::Error::other(message)), None))
            }
            next = upstream.next() => match next {
                Some(Ok(chunk)) => {
                    call.bytes_out += chunk.len() as u64;
                    if let Some(live) = &call.live {
                        live.bytes_out.store(call.bytes_out, Ordering::Relaxed);
                    }
                    if Some(call.bytes_out) == expected {
                        call.outcome = "completed".into();
                    }
                    Some((Ok(chunk), Some((upstream, watching, call))))
                }
                Some(Err(e)) => {
                    call.outcome = format!("upstream failed mid-response: {}", e.without_url());
                    Some((Err(std::io::Error::other("upstream failed mid-response")), None))
                }
                None => {
                    call.outcome = "completed".into();
                    drop(call);
                    None
                }
            }
        }
    })
}
