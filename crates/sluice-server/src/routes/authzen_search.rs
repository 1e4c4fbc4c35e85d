//! The AuthZEN 1.0 Search APIs: `/access/v1/search/subject`, `/access/v1/search/resource` and
//! `/access/v1/search/action`, with the standard's request and response shapes.
//!
//! Each request is an evaluation with the searched entity's `id` (or, for actions, the whole
//! `action`) left out — given, it is ignored, as the standard says. The answer is
//! `{"page": {"next_token", "count"}, "results": [...]}`: subjects and resources as
//! `{"type", "id"}`, actions as `{"name"}`, in byte order of the id or name. `page.limit`
//! (1 to 1000, default 1000) bounds a page; `page.token` is a previous answer's non-empty
//! `next_token`, sent with the rest of the request unchanged (its `limit` may be left out, as in
//! the standard's example). What is searched and how pages behave: [`crate::ops::search`].

use super::authzen::{question, required, ActionRef, AuthzenJson, Entity, EvaluationRequest};
use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::ops::search::{Found, PageAsk, Search};
use crate::ops::Input;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use sluice_api::authzen::{
    ActionSearchResponse, ResourceSearchResponse, SearchAction, SearchPage, SearchResource,
    SearchSubject, SubjectSearchResponse,
};

/// Pagination of a search request: `token` is a previous answer's `next_token`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct PageRequest {
    pub token: Option<String>,
    /// At most this many results (1 to 1000; default 1000).
    pub limit: Option<usize>,
}

impl PageRequest {
    fn ask(self) -> PageAsk {
        PageAsk {
            token: self.token,
            limit: self.limit,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct SubjectSearchRequest {
    /// `type` (required) and `properties` are read; an `id` is ignored.
    pub subject: Option<Entity>,
    pub action: Option<ActionRef>,
    pub resource: Option<Entity>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
    pub page: Option<PageRequest>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ResourceSearchRequest {
    pub subject: Option<Entity>,
    pub action: Option<ActionRef>,
    /// `type` (required) and `properties` are read; an `id` is ignored.
    pub resource: Option<Entity>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
    pub page: Option<PageRequest>,
}

/// As the standard has it, an action search carries no `action` (one given is ignored).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ActionSearchRequest {
    pub subject: Option<Entity>,
    pub resource: Option<Entity>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
    pub page: Option<PageRequest>,
}

/// What stands in for the searched part while the rest is checked as an evaluation's.
const SEARCHED: &str = "searched";

fn bad(m: String) -> ApiError {
    ApiError::bad_request(Input::Request, m)
}

/// The searched entity's `type`, required, and the entity with a placeholder id.
fn searched(entity: Option<Entity>, what: &str) -> Result<(String, Entity), ApiError> {
    let entity = entity.ok_or_else(|| bad(format!("{what} is required")))?;
    let kind = required(entity.kind.as_ref(), &format!("{what}.type"))
        .map_err(bad)?
        .to_owned();
    let entity = Entity {
        kind: Some(kind.clone()),
        id: Some(SEARCHED.into()),
        properties: entity.properties,
    };
    Ok((kind, entity))
}

async fn run(
    app: &App,
    caller: &crate::caller::Caller,
    search: Search,
    probe: EvaluationRequest,
    page: Option<PageRequest>,
) -> Result<Found, ApiError> {
    let q = question(&probe).map_err(bad)?;
    let ask = page.unwrap_or_default().ask();
    Ok(app.search(caller, &search, &q, &ask).await?)
}

fn page_of(found: &Found) -> SearchPage {
    SearchPage {
        next_token: found.next_token.clone(),
        count: found.keys.len(),
    }
}

/// Subject Search: which subjects of this type may do this action on this resource now? The
/// same answer as evaluating every subject id the policy knows, one by one; not audited.
#[utoipa::path(post, path = "/access/v1/search/subject", request_body = SubjectSearchRequest, tag = "authzen",
    responses((status = 200, body = SubjectSearchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn search_subject(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    AuthzenJson(req): AuthzenJson<SubjectSearchRequest>,
) -> Result<Json<SubjectSearchResponse>, ApiError> {
    let (subject_type, subject) = searched(req.subject, "subject")?;
    let probe = EvaluationRequest {
        subject: Some(subject),
        action: req.action,
        resource: req.resource,
        context: req.context,
    };
    let search = Search::Subject {
        subject_type: subject_type.clone(),
    };
    let found = run(&app, &caller, search, probe, req.page).await?;
    Ok(Json(SubjectSearchResponse {
        page: page_of(&found),
        results: found
            .keys
            .into_iter()
            .map(|id| SearchSubject {
                kind: subject_type.clone(),
                id,
            })
            .collect(),
    }))
}

/// Resource Search: which resources of this type may this subject do this action on now?
/// Resources Sluice knows by name — those the policy and live grants spell out, every flag,
/// every gateway database — each decided as an evaluation would; not audited.
#[utoipa::path(post, path = "/access/v1/search/resource", request_body = ResourceSearchRequest, tag = "authzen",
    responses((status = 200, body = ResourceSearchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn search_resource(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    AuthzenJson(req): AuthzenJson<ResourceSearchRequest>,
) -> Result<Json<ResourceSearchResponse>, ApiError> {
    let (kind, resource) = searched(req.resource, "resource")?;
    let probe = EvaluationRequest {
        subject: req.subject,
        action: req.action,
        resource: Some(resource),
        context: req.context,
    };
    let search = Search::Resource { kind: kind.clone() };
    let found = run(&app, &caller, search, probe, req.page).await?;
    Ok(Json(ResourceSearchResponse {
        page: page_of(&found),
        results: found
            .keys
            .into_iter()
            .map(|id| SearchResource {
                kind: kind.clone(),
                id,
            })
            .collect(),
    }))
}

/// Action Search: which actions may this subject do on this resource now? The actions Sluice
/// knows by name, each decided as an evaluation would; not audited.
#[utoipa::path(post, path = "/access/v1/search/action", request_body = ActionSearchRequest, tag = "authzen",
    responses((status = 200, body = ActionSearchResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn search_action(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    AuthzenJson(req): AuthzenJson<ActionSearchRequest>,
) -> Result<Json<ActionSearchResponse>, ApiError> {
    let probe = EvaluationRequest {
        subject: req.subject,
        action: Some(ActionRef {
            name: Some(SEARCHED.into()),
            properties: Value::Null,
        }),
        resource: req.resource,
        context: req.context,
    };
    let found = run(&app, &caller, Search::Action, probe, req.page).await?;
    Ok(Json(ActionSearchResponse {
        page: page_of(&found),
        results: found
            .keys
            .into_iter()
            .map(|name| SearchAction { name })
            .collect(),
    }))
}
