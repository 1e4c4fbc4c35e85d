//! The OpenID AuthZEN Authorization API 1.0: `/access/v1/evaluation`, `/access/v1/evaluations`
//! and `/.well-known/authzen-configuration` (the search endpoints are in [`super::authzen_search`]).
//!
//! Mapping onto Sluice: `subject.id` is the principal; the resource is `"{type}:{id}"`
//! (`{"type": "db", "id": "orders"}` is `db:orders`); `action.name` is the action. As the
//! standard asks, unknown fields are ignored and a deny is `200 {"decision": false}`.
//! `subject.type` must name the principal's kind (`user`; `service_account` or `service`;
//! more through the policy's `subject_types`), else the answer is a deny. Properties and
//! `context` are what policy conditions read; each, when given, is a JSON object.
//!
//! `"sluice_explain": true` in `context` (a question's own or a batch's shared one) asks for an
//! explanation: the answer's `context.explain` says which standing permission or grant allowed
//! it, or, for a deny, the nearest entitlement that would allow it and the command requesting
//! it ([`sluice_core::explain`]). Conditions never see that member. Without it, answers are as
//! they have always been.
//!
//! Requests are held to the standard: a body that is not `application/json`, a subject or
//! resource without a string `type` and `id`, an action without a string `name`, or a
//! `context` that is not an object is `400 invalid_request`. Metadata is built from the
//! configured public URL, never from the request's `Host`.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::ops::decide::{Answer, Question};
use crate::ops::Input;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct Entity {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Value,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ActionRef {
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Value,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EvaluationRequest {
    pub subject: Option<Entity>,
    pub action: Option<ActionRef>,
    pub resource: Option<Entity>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EvaluationsOptions {
    /// `execute_all` (default), `deny_on_first_deny` or `permit_on_first_permit`.
    pub evaluations_semantic: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct EvaluationsRequest {
    pub subject: Option<Entity>,
    pub action: Option<ActionRef>,
    pub resource: Option<Entity>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
    /// Each item an `EvaluationRequest` whose parts replace the top-level ones. An item that is
    /// not a valid evaluation (a part of the wrong type, an empty id) does not fail the call:
    /// it is answered in its place with `decision: false` and `context.code` `"400"` and a
    /// reason, as AuthZEN 1.0 answers errors of individual evaluations. Hence any object here.
    #[schema(value_type = Option<Vec<Object>>)]
    pub evaluations: Option<Vec<Value>>,
    pub options: Option<EvaluationsOptions>,
}

pub use sluice_api::authzen::{EvaluationResponse, EvaluationsResponse};

/// The `context` member that asks for an explanation (see [`answer`]); read and taken out
/// before conditions see the context.
pub const EXPLAIN: &str = "sluice_explain";

/// A JSON body, refused unless its media type is JSON (`application/json` or `…+json`).
pub struct AuthzenJson<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for AuthzenJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        let json = media.as_deref().is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !json {
            return Err(ApiError::bad_request(
                Input::Request,
                format!(
                    "the body must be JSON with `Content-Type: application/json` (got {})",
                    media.map_or_else(|| "none".to_owned(), |m| format!("`{m}`"))
                ),
            ));
        }
        let ApiJson(v) = ApiJson::<T>::from_request(req, state).await?;
        Ok(AuthzenJson(v))
    }
}

/// `what` as the standard requires it: present, a non-empty string.
pub(crate) fn required<'a>(value: Option<&'a String>, what: &str) -> Result<&'a str, String> {
    match value.map(String::as_str) {
        Some(v) if !v.is_empty() => Ok(v),
        Some(_) => Err(format!("{what} must not be empty")),
        None => Err(format!("{what} is required")),
    }
}

/// A `context`, when given, is a JSON object (`null` counts as absent).
pub(crate) fn check_context(context: &Value, what: &str) -> Result<(), String> {
    if context.is_object() || context.is_null() {
        Ok(())
    } else {
        Err(format!("{what} must be a JSON object"))
    }
}

/// The question an Access Evaluation asks, held to the standard (see the module docs); the
/// message says what is missing or malformed. Pure: what the handler does before deciding.
pub fn question(req: &EvaluationRequest) -> Result<Question, String> {
    let subject = req.subject.as_ref().ok_or("subject is required")?;
    let subject_type = required(subject.kind.as_ref(), "subject.type")?;
    let subject_id = required(subject.id.as_ref(), "subject.id")?;
    let action = req.action.as_ref().ok_or("action is required")?;
    let action_name = required(action.name.as_ref(), "action.name")?;
    let resource = req.resource.as_ref().ok_or("resource is required")?;
    let kind = required(resource.kind.as_ref(), "resource.type")?;
    let id = required(resource.id.as_ref(), "resource.id")?;
    check_context(&req.context, "context")?;
    let mut context = req.context.clone();
    let explain = match context.as_object_mut().and_then(|c| c.remove(EXPLAIN)) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(format!("context.{EXPLAIN} must be true or false")),
    };
    for (what, p) in [
        ("subject.properties", &subject.properties),
        ("resource.properties", &resource.properties),
        ("action.properties", &action.properties),
    ] {
        check_context(p, what)?;
    }
    Ok(Question {
        subject: subject_id.to_owned(),
        action: action_name.to_owned(),
        resource: format!("{kind}:{id}"),
        subject_type: Some(subject_type.to_owned()),
        subject_properties: subject.properties.clone(),
        resource_properties: resource.properties.clone(),
        action_properties: action.properties.clone(),
        context,
        explain,
    })
}

/// The standard's answer: the decision, and in `context` why (`reason_admin`, and Sluice's
/// reason as data under `sluice`); with `explain` when the question asked for it.
fn answer(a: &Answer) -> EvaluationResponse {
    let d = &a.decision;
    let mut context = json!({"reason_admin": {"en": d.explain()}, "sluice": d.reason});
    if let (Some(e), Some(c)) = (&a.explanation, context.as_object_mut()) {
        c.insert("explain".into(), json!(e));
    }
    EvaluationResponse {
        decision: d.allowed,
        context: Some(context),
    }
}

fn bad_item(message: &str) -> EvaluationResponse {
    EvaluationResponse {
        decision: false,
        context: Some(json!({"code": "400", "reason_user": {"en": message}})),
    }
}

/// Access Evaluation: may this subject do this action on this resource now?
#[utoipa::path(post, path = "/access/v1/evaluation", request_body = EvaluationRequest, tag = "authzen",
    responses((status = 200, body = EvaluationResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn evaluation(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    AuthzenJson(req): AuthzenJson<EvaluationRequest>,
) -> Result<Json<EvaluationResponse>, ApiError> {
    let q = question(&req).map_err(|m| ApiError::bad_request(Input::Request, m))?;
    let d = app.decide(&caller, &[q]).await?;
    let first = d
        .first()
        .ok_or_else(|| ApiError::Internal("no decision".into()))?;
    Ok(Json(answer(first)))
}

fn merge(defaults: &EvaluationsRequest, item: EvaluationRequest) -> EvaluationRequest {
    EvaluationRequest {
        subject: item.subject.or_else(|| defaults.subject.clone()),
        action: item.action.or_else(|| defaults.action.clone()),
        resource: item.resource.or_else(|| defaults.resource.clone()),
        context: if item.context.is_null() {
            defaults.context.clone()
        } else {
            item.context
        },
    }
}

/// What an Access Evaluations call asks, read before anything is decided.
#[derive(Debug, Clone)]
pub enum Evaluations {
    /// No `evaluations` array: the call is one evaluation.
    Single(Box<Question>),
    /// The items in order, each its question or why it is malformed; `stop_on` is the
    /// decision that ends a short-circuit semantic (`None`: `execute_all`).
    Batch {
        stop_on: Option<bool>,
        items: Vec<Result<Question, String>>,
    },
}

/// Reads an Access Evaluations request: the shared context, the single form, the batch size,
/// the semantic, and each item merged with the request's defaults. Pure: what the handler does
/// before deciding, so that it can be tested (and fuzzed) without a server.
pub fn read_evaluations(mut req: EvaluationsRequest) -> Result<Evaluations, ApiError> {
    // The shared context is the request's, not one item's: a bad one fails the whole call.
    check_context(&req.context, "context").map_err(|m| ApiError::bad_request(Input::Request, m))?;
    let items = req.evaluations.take().unwrap_or_default();
    if items.is_empty() {
        // Without an `evaluations` array the call is a single evaluation.
        let single = merge(&req, EvaluationRequest::default());
        let q = question(&single).map_err(|m| ApiError::bad_request(Input::Request, m))?;
        return Ok(Evaluations::Single(Box::new(q)));
    }
    if let Some(i) = items.iter().position(|i| !i.is_object()) {
        return Err(ApiError::bad_request(
            Input::Request,
            format!("evaluations[{i}] is not an object"),
        ));
    }
    if items.len() > 1000 {
        return Err(ApiError::bad_request(
            Input::BatchSize,
            "at most 1000 evaluations per call",
        ));
    }
    let semantic = req
        .options
        .as_ref()
        .and_then(|o| o.evaluations_semantic.clone())
        .unwrap_or_else(|| "execute_all".into());
    let stop_on = match semantic.as_str() {
        "execute_all" => None,
        "deny_on_first_deny" => Some(false),
        "permit_on_first_permit" => Some(true),
        other => {
            return Err(ApiError::bad_request(
                Input::Request,
                format!("unknown evaluations_semantic `{other}`"),
            ))
        }
    };
    let items = items
        .into_iter()
        .map(|i| {
            let item: EvaluationRequest =
                serde_json::from_value(i).map_err(|e| format!("not an evaluation: {e}"))?;
            question(&merge(&req, item))
        })
        .collect();
    Ok(Evaluations::Batch { stop_on, items })
}

/// Access Evaluations: many questions in one call, with the standard's three semantics.
#[utoipa::path(post, path = "/access/v1/evaluations", request_body = EvaluationsRequest, tag = "authzen",
    responses((status = 200, body = EvaluationsResponse), (status = 400, body = ErrorBody)))]
pub async fn evaluations(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    AuthzenJson(req): AuthzenJson<EvaluationsRequest>,
) -> Result<Json<Value>, ApiError> {
    let (stop_on, parsed) = match read_evaluations(req)? {
        Evaluations::Single(q) => {
            let d = app.decide(&caller, &[*q]).await?;
            let first = d
                .first()
                .ok_or_else(|| ApiError::Internal("no decision".into()))?;
            return Ok(Json(json!(answer(first))));
        }
        Evaluations::Batch { stop_on, items } => (stop_on, items),
    };
    let mut out = Vec::with_capacity(parsed.len());
    match stop_on {
        None => {
            // Decide (and audit) every well-formed question in one transaction.
            let valid: Vec<Question> = parsed
                .iter()
                .filter_map(|p| p.as_ref().ok().cloned())
                .collect();
            let decisions = app.decide(&caller, &valid).await?;
            let mut decided = decisions.iter();
            for p in &parsed {
                out.push(match p {
                    Ok(_) => decided
                        .next()
                        .map(answer)
                        .unwrap_or_else(|| bad_item("not evaluated")),
                    Err(m) => bad_item(m),
                });
            }
        }
        Some(stop) => {
            // Short-circuit: in order, up to the first item that settles the call. Items after
            // it are not evaluated, so they are not recorded as decisions either.
            for p in &parsed {
                let r = match p {
                    Ok(q) => app
                        .decide(&caller, std::slice::from_ref(q))
                        .await?
                        .first()
                        .map(answer)
                        .unwrap_or_else(|| bad_item("not evaluated")),
                    Err(m) => bad_item(m),
                };
                let settled = r.decision == stop;
                out.push(r);
                if settled {
                    break;
                }
            }
        }
    }
    Ok(Json(json!(EvaluationsResponse { evaluations: out })))
}

/// Policy Decision Point metadata, under the configured public URL (`--public-url`).
#[utoipa::path(get, path = "/.well-known/authzen-configuration", tag = "authzen", security(),
    responses((status = 200, body = Object)))]
pub async fn configuration(State(app): State<App>) -> Json<Value> {
    let base = app.public_url();
    Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    }))
}
