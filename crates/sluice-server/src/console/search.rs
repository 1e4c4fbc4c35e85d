//! Who can, what can: the AuthZEN searches (`App::search`, what `/access/v1/search/*` and
//! `sluice access who-can` / `what-can` answer) as a page. "Who may toggle this flag now?" is
//! linked from a flag the signed-in person may not change; "which flags may I toggle?" from
//! their access page. Each result is the decision an evaluation would make; nothing is
//! decided here.

use super::page::{self, Chrome, ConsoleError};
use super::session::Signed;
use super::Console;
use crate::ops::decide::Question;
use crate::ops::search::{PageAsk, Search};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

/// Results on one page of the console (the API allows up to 1,000).
const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    /// `who` (subjects that may) or `what` (resources I may); none: the empty form.
    #[serde(default)]
    mode: String,
    #[serde(default)]
    action: String,
    /// `who`: the resource, `kind:name`.
    #[serde(default)]
    resource: String,
    /// `who`: the subject type searched (default `user`).
    #[serde(default)]
    subject_type: String,
    /// `what`: the resource type searched (default `flag`).
    #[serde(default)]
    kind: String,
    /// The page token of the page before.
    #[serde(default)]
    page: String,
}

/// One search answered.
pub struct Answer {
    /// What was asked, in words.
    pub asked: String,
    pub results: Vec<String>,
    /// The link to the next page, if there is one.
    pub next: Option<String>,
    /// Why the search was refused (bad input), in the API's words.
    pub refused: Option<String>,
}

#[derive(Template)]
#[template(path = "console/search.html")]
pub struct SearchPage {
    pub chrome: Chrome,
    pub action: String,
    pub resource: String,
    pub subject_type: String,
    pub kind: String,
    pub answer: Option<Answer>,
}

fn or<'a>(v: &'a str, default: &'a str) -> &'a str {
    let v = v.trim();
    if v.is_empty() {
        default
    } else {
        v
    }
}

pub async fn page(
    State(c): State<Console>,
    signed: Signed,
    Query(q): Query<SearchQuery>,
) -> Result<Response, ConsoleError> {
    let action = or(&q.action, "toggle").to_owned();
    let subject_type = or(&q.subject_type, "user").to_owned();
    let kind = or(&q.kind, "flag").to_owned();
    let resource = q.resource.trim().to_owned();
    let me = &signed.caller.name;
    let (search, question, asked) = match q.mode.as_str() {
        "who" => {
            let Some((rkind, id)) = resource
                .split_once(':')
                .filter(|(k, id)| !k.is_empty() && !id.is_empty())
            else {
                let refused = "the resource is kind:name, e.g. flag:production/checkout-v2";
                return Ok(render(
                    &signed,
                    action,
                    subject_type,
                    kind,
                    resource,
                    Some(refusal(refused)),
                ));
            };
            let mut question = Question::names("searched", &action, &format!("{rkind}:{id}"));
            question.subject_type = Some(subject_type.clone());
            let asked = format!("Which {subject_type}s may {action} {resource} now?");
            (
                Search::Subject {
                    subject_type: subject_type.clone(),
                },
                question,
                asked,
            )
        }
        "what" => {
            let mut question = Question::names(me, &action, &format!("{kind}:searched"));
            question.subject_type = Some(subject_type.clone());
            let asked = format!("Which {kind} resources may you ({me}) {action} now?");
            (Search::Resource { kind: kind.clone() }, question, asked)
        }
        _ => return Ok(render(&signed, action, subject_type, kind, resource, None)),
    };
    let ask = PageAsk {
        token: Some(q.page.clone()).filter(|t| !t.is_empty()),
        limit: Some(PAGE),
    };
    let answer = match c.app.search(&signed.caller, &search, &question, &ask).await {
        Ok(found) => {
            let next = (!found.next_token.is_empty()).then(|| {
                let mut more = url::form_urlencoded::Serializer::new(String::new());
                more.append_pair("mode", &q.mode)
                    .append_pair("action", &action)
                    .append_pair("resource", &resource)
                    .append_pair("subject_type", &subject_type)
                    .append_pair("kind", &kind)
                    .append_pair("page", &found.next_token);
                format!("/ui/search?{}", more.finish())
            });
            Answer {
                asked,
                results: found.keys,
                next,
                refused: None,
            }
        }
        // Bad input is shown on the page, with the form to correct it; anything else is
        // the operation's refusal or failure, shown as the API shows it.
        Err(e @ crate::ops::OpError::Invalid { .. }) => Answer {
            asked,
            results: Vec::new(),
            next: None,
            refused: Some(e.to_string()),
        },
        Err(e) => return Err(e.into()),
    };
    Ok(render(
        &signed,
        action,
        subject_type,
        kind,
        resource,
        Some(answer),
    ))
}

fn refusal(m: &str) -> Answer {
    Answer {
        asked: String::new(),
        results: Vec::new(),
        next: None,
        refused: Some(m.to_owned()),
    }
}

fn render(
    signed: &Signed,
    action: String,
    subject_type: String,
    kind: String,
    resource: String,
    answer: Option<Answer>,
) -> Response {
    page::render(
        StatusCode::OK,
        &SearchPage {
            chrome: signed.chrome("search"),
            action,
            resource,
            subject_type,
            kind,
            answer,
        },
    )
}
