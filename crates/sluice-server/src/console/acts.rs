//! What the buttons on a request or a change request do: each calls the operation its API
//! route calls, which makes every check again whatever the form says (self-approval, a
//! non-approver, a second vote, a review by the requester are refused there), and audits it.

use super::page::{self, ConsoleError};
use super::session::Signed;
use super::Console;
use crate::ops::access::Ending;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

/// The form of every button here: the CSRF token and, for votes, a comment.
#[derive(Deserialize)]
pub struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

/// `POST /ui/requests/{id}/{act}`: `approve` or `deny` (as `POST /v1/requests/{id}/approve`
/// …), `review` (a break-glass grant, as `…/review`), `cancel` or `relinquish` (one's own).
pub async fn request(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, act)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    let (ending, back, notice) = match act.as_str() {
        "approve" | "deny" => (None, "inbox", act.as_str()),
        "review" => (Some(Ending::Review), "inbox", "reviewed"),
        "cancel" => (Some(Ending::Cancel), "access", "cancelled"),
        "relinquish" => (Some(Ending::Relinquish), "access", "relinquished"),
        _ => return Ok(page::not_found()),
    };
    signed.check_form(&headers, &form.csrf)?;
    match ending {
        Some(ending) => {
            c.app.end_request(&signed.caller, &id, ending).await?;
        }
        None => {
            let approve = act == "approve";
            c.app
                .vote(&signed.caller, &id, approve, form.comment)
                .await?;
        }
    }
    Ok(Redirect::to(&format!("/ui/{back}?notice={}", past(notice))).into_response())
}

/// `POST /ui/changes/{id}/{verdict}`: `approve` or `deny` a change request, as
/// `POST /v1/proposals/{id}/approve`.
pub async fn change(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path((id, verdict)): Path<(String, String)>,
    Form(form): Form<ActForm>,
) -> Result<Response, ConsoleError> {
    let approve = match verdict.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Ok(page::not_found()),
    };
    signed.check_form(&headers, &form.csrf)?;
    c.app
        .vote_change(&signed.caller, &id, approve, &form.comment)
        .await?;
    Ok(Redirect::to(&format!("/ui/inbox?notice={}", past(&verdict))).into_response())
}

/// The notice key of a done act (see [`page::notice`]).
fn past(act: &str) -> &str {
    match act {
        "approve" => "approved",
        "deny" => "denied",
        other => other,
    }
}
