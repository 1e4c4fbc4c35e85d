//! One call: authenticate the Sluice token, canonicalise the path, decide `METHOD path` on
//! `http:<service>` from the access snapshot, record it, forward it, relay the response until
//! it ends or the grant does (`forward.rs`), or splice an upgraded connection (`upgrade.rs`).

use crate::forward::{forward, Admitted};
use crate::headers;
use crate::refusal::Refusal;
use crate::Shared;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use sluice_core::decision::{GrantHint, Reason};
use sluice_core::scope::MAX_NAME_BYTES;
use sluice_core::token::SecretToken;
use sluice_server::error::ApiError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let app = &shared.app;
    let found = headers::token(&parts.headers);
    // Failures count per source address and token prefix, as on the API (one count).
    let caller = match sluice_server::auth::authenticate_from(
        app,
        found.as_ref().map(|(t, _)| SecretToken::from_presented(t)),
        Some(peer.ip()),
    )
    .await
    {
        // Only API tokens open calls: connection passwords and client keys do not.
        Ok(c) if c.kind.is_api() => c,
        Ok(_) | Err(ApiError::Unauthenticated) => return Refusal::Unauthenticated.into_response(),
        Err(ApiError::TokenExpired) => return Refusal::TokenExpired.into_response(),
        Err(ApiError::TooManyFailures { retry_after }) => {
            return Refusal::TooManyFailures { retry_after }.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "http gateway: authenticating a call failed: {e}");
            return Refusal::Unavailable.into_response();
        }
    };
    let method = parts.method.as_str().to_owned();
    let raw = parts.uri.path();
    let (name, rest) = match raw.get(1..).unwrap_or("").split_once('/') {
        Some((name, _)) => (name, &raw[name.len() + 1..]),
        None => (raw.get(1..).unwrap_or(""), "/"),
    };
    let resource = format!("http:{}", sluice_core::scope::normalize(name));
    let what = format!("{method} {raw}");
    // The peer as recorded: formatted once per call.
    let client = peer.to_string();
    // One read of the services for the whole call: a declaration meanwhile applies to the
    // next one.
    let service = shared.services.current(app).map.get(name).cloned();
    // Refusals are listed beside the calls of a declared service (not of any name sent).
    let declared = service.is_some();
    let refuse = |r: Refusal| {
        if declared {
            shared.log.refused(
                app,
                crate::record::Refused {
                    principal: &caller.name,
                    resource: &resource,
                    method: &method,
                    // From the service on, as a forwarded call's path is recorded (but as
                    // sent: it may have no canonical form).
                    path: rest,
                    client: client.clone(),
                    status: r.status().as_u16(),
                    code: r.code(),
                    message: r.to_string(),
                },
            );
        }
        refused(app, caller.name.clone(), what.clone(), r)
    };
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return refuse(Refusal::AmbiguousMethod(method.clone())).await;
    }
    let path = match crate::path::canonical(rest, MAX_NAME_BYTES - method.len() - 1) {
        Ok(p) => p,
        Err(e) => return refuse(Refusal::AmbiguousPath(e)).await,
    };
    let action = format!("{method} {}", path.decoded);

    // The decision: the snapshot only, no store read.
    let now = app.now();
    let (grant_id, entitlement, expires_at) = {
        let snap = app.access.load();
        let decision = snap.decide_by_grant(&caller.name, &action, &resource, now);
        match (decision.reason, &service) {
            (
                Reason::Grant {
                    grant_id,
                    entitlement,
                    expires_at,
                },
                Some(_),
            ) => (grant_id, entitlement, expires_at),
            // INVARIANT: only a caller holding a live grant on the resource learns that it is
            // not served here; everyone else gets the answer a declared service would give,
            // built from the policy alone.
            (_, None)
                if snap
                    .longest_grant_on(&caller.name, &resource, now)
                    .is_some() =>
            {
                drop(snap);
                return refuse(Refusal::UnknownService {
                    resource: resource.clone(),
                })
                .await;
            }
            (
                Reason::GrantNotLive {
                    grant_id,
                    expires_at,
                },
                _,
            ) if expires_at <= now => {
                drop(snap);
                return refuse(Refusal::GrantExpired {
                    action,
                    resource: resource.clone(),
                    grant_id,
                    expired_at: expires_at,
                })
                .await;
            }
            _ => {
                let hint = GrantHint::new(
                    snap.policy(),
                    &snap.entitlements_allowing(&action, &resource),
                    &caller.name,
                );
                drop(snap);
                // Once the reaper has recorded the expiry the snapshot no longer holds the
                // grant; the store still says when it ended (read on refusals only).
                if let Some((grant_id, expired_at)) =
                    recently_expired(app, &caller.name, &action, &resource).await
                {
                    return refuse(Refusal::GrantExpired {
                        action,
                        resource: resource.clone(),
                        grant_id,
                        expired_at,
                    })
                    .await;
                }
                return refuse(Refusal::NoGrant {
                    principal: caller.name.clone(),
                    action,
                    resource: resource.clone(),
                    hint,
                })
                .await;
            }
        }
    };
    let Some(service) = service else {
        return Refusal::UnknownService { resource }.into_response();
    };
    forward(
        &shared,
        &service,
        parts,
        body,
        Admitted {
            peer: peer.ip(),
            client,
            started,
            principal: caller.name.clone(),
            grant_id,
            entitlement,
            expires_at,
            resource,
            method,
            path,
        },
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// The latest grant of `who` recorded as expired whose scopes allowed `action` on `resource`.
async fn recently_expired(
    app: &sluice_server::App,
    who: &str,
    action: &str,
    resource: &str,
) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
    let filter = sluice_store::RequestFilter {
        requester: Some(who.to_owned()),
        status: Some(sluice_core::access::RequestStatus::Expired),
        needs_review: None,
        limit: Some(20),
        visible_to: None,
    };
    let (action, resource) = (
        sluice_core::scope::normalize(action),
        sluice_core::scope::normalize(resource),
    );
    app.store
        .requests(&filter)
        .await
        .ok()?
        .into_iter()
        .filter(|r| r.scopes.iter().any(|s| s.allows(&resource, &action)))
        .filter_map(|r| Some((r.id, r.expires_at?)))
        .max_by_key(|(_, at)| *at)
}

/// The refusal's response; one by policy is written to the refusal log first.
async fn refused(app: &sluice_server::App, who: String, what: String, r: Refusal) -> Response {
    if r.by_policy() {
        let resource = match &r {
            Refusal::NoGrant { resource, .. } | Refusal::GrantExpired { resource, .. } => {
                Some(resource.clone())
            }
            _ => None,
        };
        let mark = sluice_server::refusals::Refused {
            code: r.code(),
            message: r.to_string(),
        };
        app.refusals
            .record_refusal(&who, &what, resource.as_deref(), &mark)
            .await;
    }
    r.into_response()
}
