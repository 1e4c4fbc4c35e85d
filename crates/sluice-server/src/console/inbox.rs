//! The inbox: pending access requests the signed-in person may approve now.

use super::page::{self, ChangeRow, Chrome, ConsoleError, RequestRow};
use super::session::Signed;
use super::Console;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use sluice_core::access::{authorize_vote, RequestStatus};
use sluice_store::RequestFilter;

/// The most pending requests the inbox reads.
const MAX_PENDING: i64 = 5_000;
/// The most it shows at once: those that have waited longest (a page stays small on a phone).
const SHOWN: usize = 50;

#[derive(Template)]
#[template(path = "console/inbox.html")]
pub struct InboxPage {
    pub chrome: Chrome,
    pub notice: Option<&'static str>,
    pub csrf: String,
    pub waiting: usize,
    pub rows: Vec<RequestRow>,
    pub changes: Vec<ChangeRow>,
}

#[derive(Template)]
#[template(path = "console/inbox_list.html")]
pub struct InboxList {
    pub csrf: String,
    pub waiting: usize,
    pub rows: Vec<RequestRow>,
    pub changes: Vec<ChangeRow>,
}

/// Pending requests on which `authorize_vote` — the check the vote itself makes — lets the
/// signed-in person vote now: never their own, only where they are an approver, not twice.
/// Returns how many wait for them, and the [`SHOWN`] that have waited longest.
async fn rows(c: &Console, signed: &Signed) -> Result<(usize, Vec<RequestRow>), ConsoleError> {
    let filter = RequestFilter {
        requester: None,
        status: Some(RequestStatus::Pending),
        needs_review: None,
        limit: Some(MAX_PENDING),
        visible_to: None,
    };
    let pending = c.app.visible_requests(&signed.caller, filter).await?;
    let policy = c.app.policy();
    let now = c.app.now();
    let me = signed.caller.actor();
    let mine: Vec<_> = pending
        .iter()
        .filter(|r| authorize_vote(&policy, r, &me, now).is_ok())
        .collect();
    // Oldest first (the store lists newest first): who has waited longest is answered first.
    let rows = mine
        .iter()
        .rev()
        .take(SHOWN)
        .map(|r| page::row(r, &policy, now))
        .collect();
    Ok((mine.len(), rows))
}

/// Change requests (four eyes) the signed-in person may approve now, oldest first.
async fn changes(c: &Console, signed: &Signed) -> Result<Vec<ChangeRow>, ConsoleError> {
    let now = c.app.now();
    Ok(c.app
        .change_requests_awaiting(&signed.caller.name)
        .await?
        .into_iter()
        .take(SHOWN)
        .map(|v| page::change_row(v, now))
        .collect())
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, ConsoleError> {
    let (waiting, rows) = rows(&c, &signed).await?;
    let changes = changes(&c, &signed).await?;
    Ok(page::render(
        StatusCode::OK,
        &InboxPage {
            waiting,
            changes,
            notice: page::notice(q.notice.as_deref()),
            csrf: signed.csrf.clone(),
            chrome: Chrome {
                who: signed.caller.name.clone(),
                csrf: signed.csrf.clone(),
                active: "inbox",
            },
            rows,
        },
    ))
}

pub async fn fragment(State(c): State<Console>, signed: Signed) -> Result<Response, ConsoleError> {
    let (waiting, rows) = rows(&c, &signed).await?;
    let changes = changes(&c, &signed).await?;
    Ok(page::render(
        StatusCode::OK,
        &InboxList {
            waiting,
            changes,
            csrf: signed.csrf,
            rows,
        },
    ))
}

#[derive(Deserialize)]
pub struct VoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

async fn vote(
    c: Console,
    signed: Signed,
    headers: HeaderMap,
    id: String,
    form: VoteForm,
    approve: bool,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    // The same operation as `POST /v1/requests/{id}/approve`: it refuses self-approval,
    // a non-approver and a second vote, whatever the form says.
    c.app
        .vote(&signed.caller, &id, approve, form.comment)
        .await?;
    let notice = if approve { "approved" } else { "denied" };
    Ok(Redirect::to(&format!("/ui/inbox?notice={notice}")).into_response())
}

pub async fn approve(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Result<Response, ConsoleError> {
    vote(c, signed, headers, id, form, true).await
}

pub async fn deny(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Result<Response, ConsoleError> {
    vote(c, signed, headers, id, form, false).await
}

async fn vote_change(
    c: Console,
    signed: Signed,
    headers: HeaderMap,
    id: String,
    form: VoteForm,
    approve: bool,
) -> Result<Response, ConsoleError> {
    signed.check_form(&headers, &form.csrf)?;
    // The same operation as `POST /v1/proposals/{id}/approve`.
    c.app
        .vote_change(&signed.caller, &id, approve, &form.comment)
        .await?;
    let notice = if approve { "approved" } else { "denied" };
    Ok(Redirect::to(&format!("/ui/inbox?notice={notice}")).into_response())
}

pub async fn approve_change(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Result<Response, ConsoleError> {
    vote_change(c, signed, headers, id, form, true).await
}

pub async fn deny_change(
    State(c): State<Console>,
    signed: Signed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<VoteForm>,
) -> Result<Response, ConsoleError> {
    vote_change(c, signed, headers, id, form, false).await
}
