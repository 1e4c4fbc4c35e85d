//! `sluice access who-can` and `what-can`: the AuthZEN search APIs, every page read, as a table
//! for people or the standard's answer (all results in one page) for scripts.

use crate::cli::Remote;
use crate::client::{Client, NO_BODY};
use crate::output::{emit, table};
use anyhow::anyhow;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sluice_api::admin::WhoAmI;
use sluice_api::authzen::{
    ActionSearchResponse, ResourceSearchResponse, SearchAction, SearchPage, SearchResource,
    SearchSubject, SubjectSearchResponse,
};

/// Every result of a search, following `next_token` to the last page.
async fn all_pages<R: DeserializeOwned, T>(
    c: &Client,
    path: &str,
    mut body: Value,
    parts: fn(R) -> (SearchPage, Vec<T>),
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        body["page"] = json!({ "token": token });
        let answer: R = c.send(Method::POST, path, Some(&body)).await?;
        let (page, results) = parts(answer);
        let empty = results.is_empty();
        out.extend(results);
        if page.next_token.is_empty() || empty {
            return Ok(out);
        }
        token = page.next_token;
    }
}

/// The one page a script is given: everything, no next token.
fn whole(count: usize) -> SearchPage {
    SearchPage {
        next_token: String::new(),
        count,
    }
}

fn split_resource(resource: &str) -> anyhow::Result<(&str, &str)> {
    resource
        .split_once(':')
        .filter(|(k, id)| !k.is_empty() && !id.is_empty())
        .ok_or_else(|| anyhow!("RESOURCE is `kind:name`, e.g. flag:production/checkout-v2"))
}

pub async fn who_can(
    c: &Client,
    r: &Remote,
    action: &str,
    resource: &str,
    subject_type: &str,
) -> anyhow::Result<()> {
    let (kind, id) = split_resource(resource)?;
    let body = json!({
        "subject": {"type": subject_type},
        "action": {"name": action},
        "resource": {"type": kind, "id": id},
    });
    let results: Vec<SearchSubject> = all_pages(
        c,
        "/access/v1/search/subject",
        body,
        |a: SubjectSearchResponse| (a.page, a.results),
    )
    .await?;
    let answer = SubjectSearchResponse {
        page: whole(results.len()),
        results,
    };
    emit(r.output, &answer, |a| {
        if a.results.is_empty() {
            outln!("no {subject_type} may {action} {resource} now");
            return;
        }
        let rows = a
            .results
            .iter()
            .map(|s| vec![s.id.clone(), s.kind.clone()])
            .collect();
        table(&["subject", "type"], rows);
    })
}

pub async fn what_can(
    c: &Client,
    r: &Remote,
    target: &str,
    kind: Option<String>,
    subject: Option<String>,
    subject_type: &str,
) -> anyhow::Result<()> {
    let subject = match subject {
        Some(s) => s,
        None => {
            let me: WhoAmI = c.send(Method::GET, "/v1/whoami", NO_BODY).await?;
            me.name
        }
    };
    let who = json!({"type": subject_type, "id": subject});
    match kind {
        // `what-can ACTION KIND`: resources.
        Some(kind) => {
            let action = target;
            let body = json!({
                "subject": who,
                "action": {"name": action},
                "resource": {"type": kind},
            });
            let results: Vec<SearchResource> = all_pages(
                c,
                "/access/v1/search/resource",
                body,
                |a: ResourceSearchResponse| (a.page, a.results),
            )
            .await?;
            let answer = ResourceSearchResponse {
                page: whole(results.len()),
                results,
            };
            emit(r.output, &answer, |a| {
                if a.results.is_empty() {
                    outln!("{subject} may {action} no {kind} Sluice knows of now");
                    return;
                }
                let rows = a
                    .results
                    .iter()
                    .map(|x| vec![format!("{}:{}", x.kind, x.id)])
                    .collect();
                table(&["resource"], rows);
            })
        }
        // `what-can RESOURCE`: actions.
        None => {
            let resource = target;
            let (kind, id) = split_resource(resource).map_err(|_| {
                anyhow!(
                    "give ACTION KIND (e.g. `what-can toggle flag`) or a RESOURCE `kind:name` \
                     (e.g. `what-can db:orders`)"
                )
            })?;
            let body = json!({
                "subject": who,
                "resource": {"type": kind, "id": id},
            });
            let results: Vec<SearchAction> = all_pages(
                c,
                "/access/v1/search/action",
                body,
                |a: ActionSearchResponse| (a.page, a.results),
            )
            .await?;
            let answer = ActionSearchResponse {
                page: whole(results.len()),
                results,
            };
            emit(r.output, &answer, |a| {
                if a.results.is_empty() {
                    outln!("{subject} may do nothing Sluice knows of on {resource} now");
                    return;
                }
                let rows = a.results.iter().map(|x| vec![x.name.clone()]).collect();
                table(&["action"], rows);
            })
        }
    }
}
