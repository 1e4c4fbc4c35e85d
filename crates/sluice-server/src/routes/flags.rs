//! `/v1/environments`: import, export and read flags per environment.

use crate::app::App;
use crate::auth::ApiCaller;
use crate::error::{ApiError, ErrorBody};
use crate::json::ApiJson;
use crate::ops::flags::ImportMode;
use crate::ops::Input;
use crate::routes::flag_changes::target_view;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use sluice_api::flags::{EnvironmentView, EvaluationsView, FlagView, ImportResult, StaleView};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// `strict` (default: all or nothing, the first fault named by its JSON path) or
    /// `lenient` (as flagd loads files: faulty flags are stored, listed, and answer
    /// `PARSE_ERROR`).
    pub mode: Option<String>,
    /// Create the environment if it does not exist (administrators; audited as
    /// `environment.created`). Without it, an environment that the policy does not declare
    /// and that holds no flags is refused with 404 `unknown_environment`.
    #[serde(default)]
    pub create_env: bool,
}

/// Environments and their flag counts.
#[utoipa::path(get, path = "/v1/environments", tag = "flags", responses((status = 200, body = [EnvironmentView])))]
pub async fn environments(
    State(app): State<App>,
    _caller: ApiCaller,
) -> Result<Json<Vec<EnvironmentView>>, ApiError> {
    let policy = app.policy();
    let sets = app.store.flag_sets().await?;
    let mut out: Vec<EnvironmentView> = sets
        .iter()
        .map(|s| EnvironmentView {
            name: s.environment.clone(),
            revision: s.revision,
            flags: s.flags.len(),
            protected: policy.is_protected(&s.environment),
        })
        .collect();
    for name in policy.doc.environments.keys() {
        if !out.iter().any(|e| &e.name == name) {
            out.push(EnvironmentView {
                name: name.clone(),
                revision: 0,
                flags: 0,
                protected: policy.is_protected(name),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

/// Replace an environment's flags with a flagd document (administrators, or anyone with an `import` permission; in a protected environment a live grant for `import` is required, administrators included). Strict by default
/// (all or nothing); `?mode=lenient` loads as flagd does and lists the faulty flags.
#[utoipa::path(put, path = "/v1/environments/{env}/flags", params(ImportQuery), request_body(content = Object, description = "a flagd flag definition document"), tag = "flags",
    responses((status = 200, body = ImportResult), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn import(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(env): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<ImportQuery>,
    ApiJson(doc): ApiJson<Value>,
) -> Result<Json<ImportResult>, ApiError> {
    let mode = match q.mode.as_deref() {
        None | Some("strict") => ImportMode::Strict,
        Some("lenient") => ImportMode::Lenient,
        Some(other) => {
            return Err(ApiError::bad_request(
                Input::ImportMode,
                format!("mode `{other}` is neither `strict` nor `lenient`"),
            ))
        }
    };
    let r = app
        .import_flags(&caller, &env, doc, mode, q.create_env)
        .await?;
    Ok(Json(ImportResult {
        environment: r.environment,
        revision: r.revision,
        flags: r.flags,
        mode: r.mode,
        broken: r.broken,
    }))
}

/// The environment's flags as a flagd document (flagd accepts it as is).
#[utoipa::path(get, operation_id = "export_flags", path = "/v1/environments/{env}/flags", tag = "flags", responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn export(
    State(app): State<App>,
    _caller: ApiCaller,
    Path(env): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let set = app.store.flag_set(&env).await?.ok_or_else(|| ApiError::NotFound(format!("no flags in environment `{env}`; import some with `sluice flags import --env {env} FILE`")))?;
    Ok(Json(crate::ops::flags::export_document(set)))
}

/// One flag's definition, revision and active targets. 404 `unknown_environment` when the
/// environment does not exist, `not_found` when the flag does not.
#[utoipa::path(get, path = "/v1/environments/{env}/flags/{key}", tag = "flags", responses((status = 200, body = FlagView), (status = 404, body = ErrorBody)))]
pub async fn flag(
    State(app): State<App>,
    _caller: ApiCaller,
    Path((env, key)): Path<(String, String)>,
) -> Result<Json<FlagView>, ApiError> {
    let Some(set) = app.store.flag_set(&env).await? else {
        // Declared but empty: no such flag; anything else: say which environments there are.
        app.check_environment(&env, false, false).await?;
        return Err(ApiError::NotFound(format!("no flag `{key}` in `{env}`")));
    };
    let f = set
        .flags
        .into_iter()
        .find(|f| f.key == key)
        .ok_or_else(|| ApiError::NotFound(format!("no flag `{key}` in `{env}`")))?;
    let targets = app.active_targets(&env, &key).await?;
    Ok(Json(FlagView {
        environment: env,
        key: f.key,
        revision: f.revision,
        definition: f.definition,
        targets: targets.into_iter().map(target_view).collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Only the last `days` days, today (UTC) included; 1 to 3650. Without it: since counting began.
    pub days: Option<u32>,
}

/// How the environment's flags were evaluated over OFREP: per flag the evaluations by
/// variant and reason and when it was last evaluated (every flag listed, `null` if never);
/// for administrators and auditors also the client keys that evaluated and when each last did. Counted in
/// memory by every instance and stored in batches (every 10 s and at shutdown); this
/// instance's counts are stored before the answer is read.
#[utoipa::path(get, operation_id = "flag_evaluations", path = "/v1/environments/{env}/evaluations", params(DaysQuery), tag = "flags",
    responses((status = 200, body = EvaluationsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn evaluations(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(env): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<DaysQuery>,
) -> Result<Json<EvaluationsView>, ApiError> {
    Ok(Json(app.evaluations(&caller, &env, q.days).await?))
}

/// The environment's flags that look finished, each with a suggested action: not evaluated
/// for `days` days (default 30) and not written in that time; serving one variant to
/// everyone for `days` days (a finished rollout, an always-on flag); past the date in their
/// metadata's `expectedRemoval` (`YYYY-MM-DD`).
#[utoipa::path(get, operation_id = "stale_flags", path = "/v1/environments/{env}/stale", params(DaysQuery), tag = "flags",
    responses((status = 200, body = StaleView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stale(
    State(app): State<App>,
    ApiCaller(caller): ApiCaller,
    Path(env): Path<String>,
    crate::json::ApiQuery(q): crate::json::ApiQuery<DaysQuery>,
) -> Result<Json<StaleView>, ApiError> {
    Ok(Json(app.stale_flags(&caller, &env, q.days).await?))
}
