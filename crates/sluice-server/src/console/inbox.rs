//! The inbox: pending access requests the signed-in person may approve now, change requests
//! (four eyes) they may approve, and break-glass grants waiting for their review.

use super::page::{self, ChangeRow, Chrome, ConsoleError, NoticeQuery, RequestRow};
use super::session::Signed;
use super::Console;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use sluice_core::access::{authorize_vote, review, RequestStatus};
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
    /// The part the script re-fetches when access moves.
    pub list: InboxList,
}

#[derive(Template)]
#[template(path = "console/inbox_list.html")]
pub struct InboxList {
    pub csrf: String,
    pub waiting: usize,
    pub rows: Vec<RequestRow>,
    pub changes: Vec<ChangeRow>,
    /// Break-glass grants the signed-in person may review.
    pub reviews: Vec<RequestRow>,
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

/// Break-glass grants still to be reviewed that `review` — the check the review itself makes,
/// tried on a copy — lets the signed-in person review: not their own, only as an approver of
/// the entitlement or an administrator. Oldest first.
async fn reviews(c: &Console, signed: &Signed) -> Result<Vec<RequestRow>, ConsoleError> {
    let filter = RequestFilter {
        requester: None,
        status: None,
        needs_review: Some(true),
        limit: Some(MAX_PENDING),
        visible_to: None,
    };
    let waiting = c.app.visible_requests(&signed.caller, filter).await?;
    let policy = c.app.policy();
    let now = c.app.now();
    let me = signed.caller.actor();
    Ok(waiting
        .iter()
        .rev()
        .filter(|r| review(&policy, &mut (*r).clone(), &me).is_ok())
        .take(SHOWN)
        .map(|r| page::row(r, &policy, now))
        .collect())
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

async fn list(c: &Console, signed: &Signed) -> Result<InboxList, ConsoleError> {
    let (waiting, rows) = rows(c, signed).await?;
    Ok(InboxList {
        csrf: signed.csrf.clone(),
        waiting,
        rows,
        changes: changes(c, signed).await?,
        reviews: reviews(c, signed).await?,
    })
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, ConsoleError> {
    let list = list(&c, &signed).await?;
    Ok(page::render(
        StatusCode::OK,
        &InboxPage {
            chrome: signed.chrome("inbox"),
            notice: page::notice(q.notice.as_deref()),
            list,
        },
    ))
}

pub async fn fragment(State(c): State<Console>, signed: Signed) -> Result<Response, ConsoleError> {
    Ok(page::render(StatusCode::OK, &list(&c, &signed).await?))
}
