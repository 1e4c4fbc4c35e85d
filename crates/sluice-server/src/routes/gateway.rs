//! `/v1/db/sessions`: sessions of the PostgreSQL gateway — list, read one with its
//! statements, kill. Everyone sees their own; administrators and `auditors` see all.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::caller::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::ops::Input;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use sluice_store::GatewaySession;
use std::sync::atomic::Ordering;
use utoipa::{IntoParams, ToSchema};

pub use sluice_api::gateway::{
    DatabaseList, Declared, Killed, PasswordIssued, Removed, SessionDetail, SessionList,
    SessionView, StatementKind, StatementView,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionParams {
    /// Ended sessions too (newest first), not only live ones.
    #[serde(default)]
    pub all: bool,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

fn view(app: &App, s: GatewaySession) -> SessionView {
    let live = app.gateway.get(&s.id);
    let counter = |f: fn(&crate::gateway::LiveSession) -> &std::sync::atomic::AtomicU64| {
        live.as_deref()
            .map(|l| i64::try_from(f(l).load(Ordering::Relaxed)).unwrap_or(i64::MAX))
    };
    let end = s.end.as_ref();
    SessionView {
        live: live.is_some(),
        bytes_in: end
            .map(|e| e.bytes_in)
            .or(counter(|l| &l.bytes_in))
            .unwrap_or(0),
        bytes_out: end
            .map(|e| e.bytes_out)
            .or(counter(|l| &l.bytes_out))
            .unwrap_or(0),
        statements: end
            .map(|e| e.statements)
            .or(counter(|l| &l.statements))
            .unwrap_or(0),
        expires_at: live.as_ref().map_or(s.expires_at, |l| l.expires_at()),
        ended_at: end.map(|e| e.at),
        end_reason: end.map(|e| e.reason.clone()),
        log_hash: end.map(|e| e.log_hash.clone()),
        id: s.id,
        principal: s.principal,
        database: s.database,
        action: s.action,
        role: s.role,
        grant_id: s.grant_id,
        client_addr: s.client_addr,
        started_at: s.started_at,
    }
}

fn sees_all(app: &App, caller: &Caller) -> bool {
    crate::routes::audit::require_auditor(app, caller).is_ok()
}

/// Gateway sessions: live ones, or with `all=true` ended ones too.
#[utoipa::path(get, path = "/v1/db/sessions", params(SessionParams), tag = "gateway", responses((status = 200, body = SessionList)))]
pub async fn list(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    crate::json::ApiQuery(p): crate::json::ApiQuery<SessionParams>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let sessions = sessions(&app, &caller, !p.all, limit).await?;
    Ok(Json(SessionList { sessions }))
}

/// The sessions `caller` may see (their own; all for administrators and auditors): the live
/// ones, or the newest `limit` of all.
pub(crate) async fn sessions(
    app: &App,
    caller: &Caller,
    live_only: bool,
    limit: i64,
) -> Result<Vec<SessionView>, ApiError> {
    let all = sees_all(app, caller);
    Ok(app
        .store
        .gateway_sessions(live_only, limit)
        .await?
        .into_iter()
        .filter(|s| all || s.principal == caller.name)
        .map(|s| view(app, s))
        .collect())
}

/// One gateway session with its statements and their times.
#[utoipa::path(get, path = "/v1/db/sessions/{id}", tag = "gateway", responses((status = 200, body = SessionDetail), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    Ok(Json(detail(&app, &caller, &id).await?))
}

/// One session with its statements, if `caller` may see it; otherwise the same 404 as one
/// that does not exist.
pub(crate) async fn detail(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<SessionDetail, ApiError> {
    let not_found = || ApiError::NotFound(format!("no gateway session {id}"));
    let s = app.store.gateway_session(id).await?.ok_or_else(not_found)?;
    if !(s.principal == caller.name || sees_all(app, caller)) {
        return Err(not_found());
    }
    let statements = app
        .store
        .gateway_statements(id)
        .await?
        .into_iter()
        .map(|st| {
            let kind = StatementKind::parse(&st.kind).ok_or_else(|| {
                ApiError::Internal(format!(
                    "statement {} of session {id} has an unknown kind `{}`",
                    st.seq, st.kind
                ))
            })?;
            Ok(StatementView {
                seq: st.seq,
                at: st.at,
                kind,
                text: st.text,
                params: st.params.and_then(|p| serde_json::from_str(&p).ok()),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(SessionDetail {
        session: view(app, s),
        statements,
    })
}

/// End a live session (administrators; audited). The client gets a FATAL error naming who.
#[utoipa::path(post, path = "/v1/db/sessions/{id}/kill", tag = "gateway", responses((status = 200, body = Killed), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn kill(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Killed>, ApiError> {
    app.kill_session(&caller, &id).await?;
    Ok(Json(Killed { killed: id }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    /// How long the password may open sessions (default 10m, at most 1h; never past the
    /// grant). Sessions it opened last as long as the grant, not the password.
    #[schema(value_type = Option<String>, example = "10m")]
    pub ttl: Option<sluice_core::duration::Duration>,
}

/// A short-lived connection password for one gateway database (`sluice db connect`).
/// Needs a live grant on `db:{name}`; refused (403, with the entitlement to request)
/// without one. Audited as `gateway.password.issued`.
#[utoipa::path(post, path = "/v1/db/{name}/password", tag = "gateway", request_body(content = PasswordRequest, description = "optional"),
    responses((status = 201, body = PasswordIssued), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn password(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
    crate::json::ApiJsonOrDefault(body): crate::json::ApiJsonOrDefault<PasswordRequest>,
) -> Result<(axum::http::StatusCode, Json<PasswordIssued>), ApiError> {
    let ttl = body.ttl;
    let p = app.issue_db_password(&caller, &name, ttl).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(PasswordIssued {
            password: p.secret.expose().to_owned(),
            user: caller.name.clone(),
            database: sluice_core::scope::normalize(&name),
            token_id: p.token_id,
            expires_at: p.expires_at,
            grant_id: p.grant_id,
            gateway: app
                .gateway
                .listening()
                .map(|l| sluice_api::gateway::Listening {
                    address: l.address,
                    certificate_sha256: l.certificate_sha256,
                }),
        }),
    ))
}

/// Gateway databases: those of this instance's config file and those declared through the
/// API (administrators and `auditors`; nobody else learns which databases exist).
#[utoipa::path(get, path = "/v1/db/databases", tag = "gateway", responses((status = 200, body = DatabaseList)))]
pub async fn databases(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
) -> Result<Json<DatabaseList>, ApiError> {
    crate::routes::audit::require_auditor(&app, &caller)?;
    Ok(Json(DatabaseList {
        databases: app.gateway_databases().await?,
    }))
}

/// Declare (or replace) a gateway database (administrators; audited as
/// `gateway.database.declared`). Every instance's gateway serves it at once. Each role names
/// its credential with `password_env`, a variable under `SLUICE_DB_` exported to the servers;
/// the credential itself never passes through the API.
#[utoipa::path(put, path = "/v1/db/databases/{name}", tag = "gateway",
    request_body(content = crate::gateway::spec::DatabaseConfig, description = "`name` may be left out: the path gives it"),
    responses((status = 200, body = Declared), (status = 201, body = Declared), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn declare_database(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
    crate::json::ApiJson(mut body): crate::json::ApiJson<serde_json::Value>,
) -> Result<(axum::http::StatusCode, Json<Declared>), ApiError> {
    let name = sluice_core::scope::normalize(&name);
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            Input::Database,
            "the body is a database declaration: {\"upstream\": {…}, \"roles\": [{…}]}",
        ));
    };
    match obj.get("name").and_then(|n| n.as_str()) {
        None => {
            obj.insert("name".into(), serde_json::Value::String(name.clone()));
        }
        Some(n) if sluice_core::scope::normalize(n) == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(
                Input::Database,
                format!("the body names `{n}` but the path `{name}`"),
            ))
        }
    }
    let spec: crate::gateway::spec::DatabaseConfig = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(Input::Database, format!("not a database declaration: {e}"))
    })?;
    let created = app.declare_gateway_database(&caller, spec).await?;
    let status = if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((
        status,
        Json(Declared {
            declared: name,
            created,
        }),
    ))
}

/// Remove a database declared through the API (administrators; audited as
/// `gateway.database.removed`). Live sessions run on until their grants end.
#[utoipa::path(delete, path = "/v1/db/databases/{name}", tag = "gateway",
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_database(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(name): Path<String>,
) -> Result<Json<Removed>, ApiError> {
    let name = sluice_core::scope::normalize(&name);
    app.remove_gateway_database(&caller, &name).await?;
    Ok(Json(Removed { removed: name }))
}
