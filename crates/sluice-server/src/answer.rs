//! OFREP answering, apart from where the flags came from: one environment's compiled flags, a
//! request's body and headers, the static context and `now` → the answer, counted. The central
//! server's routes (`routes::ofrep`) and the edge (`edge`) both answer through here, so an edge
//! gives the central server's answers byte for byte, ETags included.
//!
//! Static context — the environment's (policy `environments.<env>.context`), then the client
//! key's (`tokens create --context`) — is merged over the request's context, as flagd merges
//! `--context-value`: request values lose to static ones (flagd `MergeContextsAndHeaders`:
//! request < static < header-mapped); the key's, more specific, win over the environment's.

use crate::flags::{CachedAnswer, EnvFlags, FlagEvent};
use crate::insight::{Insight, Tally};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use sluice_eval::ofrep::{self, EvaluationFailure};
use sluice_eval::{Context, ErrorCode, RequestError};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

/// Who asks: the client key's id and its one environment (for the evaluation counters).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub token_id: &'a str,
    pub environment: &'a str,
}

/// The fixed context of an evaluation, merged over the request's own: the environment's static
/// context, the key's over it, then the environment's mapped request headers over both (flagd:
/// request < `--context-value` < `--context-from-header`). `None` when there is nothing to add.
pub fn static_context(
    environment: Option<&Map<String, Value>>,
    key: Option<&Map<String, Value>>,
    from_headers: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Option<Map<String, Value>> {
    let mut merged = environment.cloned().unwrap_or_default();
    if let Some(k) = key {
        merged.extend(k.iter().map(|(n, v)| (n.clone(), v.clone())));
    }
    for (header, key) in from_headers {
        // The first value, as flagd takes it; a value that is not text adds nothing.
        if let Some(v) = headers.get(header.as_str()).and_then(|v| v.to_str().ok()) {
            merged.insert(key.clone(), Value::String(v.to_owned()));
        }
    }
    (!merged.is_empty()).then_some(merged)
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    json_bytes(status, serde_json::to_vec(body).unwrap_or_default())
}

fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn failure(key: &str, code: ErrorCode, details: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(ofrep::http_status(code)).unwrap_or(StatusCode::BAD_REQUEST);
    let body = EvaluationFailure {
        key: key.to_owned(),
        error_code: code,
        error_details: details.into(),
        metadata: Default::default(),
    };
    json_response(status, &body)
}

/// Reads `{"context": {...}}`; an empty body is an empty context. A body that is not a JSON
/// object is `GENERAL` (the request is malformed); a context that is not an object, nests too
/// deep or has a non-string `targetingKey` is `INVALID_CONTEXT`. `PARSE_ERROR` is left to
/// faults in flag definitions. Pure: the whole of how a request body becomes a context.
pub fn context_of(
    body: &[u8],
    static_context: Option<&Map<String, Value>>,
) -> Result<Context, (ErrorCode, String)> {
    let too_deep = || {
        (
            ErrorCode::InvalidContext,
            format!(
                "context is nested deeper than {} levels",
                crate::json::MAX_DEPTH
            ),
        )
    };
    // The depth is checked on what was read, not by scanning the body first (that scan was
    // ~4 % of a single-flag request): the body's outer object and the context's own make 2
    // levels, each attribute's value the rest. A body too deep for the parser itself (past
    // serde_json's 128 levels) fails to parse, and only then is the body scanned, to tell
    // "too deep" from "malformed".
    let ctx = Context::from_request_body(body).map_err(|e| match e {
        RequestError::Malformed(_) if crate::json::depth(body) > crate::json::MAX_DEPTH => {
            too_deep()
        }
        RequestError::Malformed(e) => (
            ErrorCode::General,
            format!(
                "request body is not an OFREP evaluation request (`{{\"context\": {{…}}}}`): {e}"
            ),
        ),
        RequestError::Context(e) => (e.code, e.message),
    })?;
    if ctx
        .entries()
        .any(|(_, v)| 2 + nesting(v) > crate::json::MAX_DEPTH)
    {
        return Err(too_deep());
    }
    match static_context {
        // Static values win over the request's (flagd: request < static).
        Some(fixed) => ctx.overlay(fixed).map_err(|e| (e.code, e.message)),
        None => Ok(ctx),
    }
}

/// How many objects and arrays deep a value nests (a scalar: 0).
fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(nesting).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// One flag's answer (`POST /ofrep/v1/evaluate/flags/{key}`), counted.
pub fn single(
    insight: &Insight,
    flags: Option<Arc<EnvFlags>>,
    asker: Asker<'_>,
    key: &str,
    body: &[u8],
    fixed: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
) -> Response {
    let ctx = match context_of(body, fixed) {
        Ok(c) => c,
        Err((code, msg)) => return failure(key, code, msg),
    };
    let Some(flags) = flags else {
        return failure(
            key,
            ErrorCode::FlagNotFound,
            format!("flag `{key}` not found"),
        );
    };
    let e = flags.evaluate(key, &ctx, now);
    // One of the flag's own answers is copied from the pieces compiled with it (as a bulk
    // answer's are), and located for the counters without a second lookup by key.
    let mut body = Vec::with_capacity(256);
    let place = flags.snapshot.write_single(&e, &mut body);
    if place.is_none() && serde_json::to_writer(&mut body, &ofrep::Wire(&e)).is_err() {
        body.clear();
    }
    if insight.enabled() {
        let at = now.timestamp_millis();
        let code = match place {
            Some(place) => Some(Tally::code_of(place, e.reason)),
            None => Tally::code(&flags.snapshot, &e),
        };
        flags.tally.count(code, at);
        insight.client(asker.token_id, asker.environment, 1, at);
    }
    let status = match &e.error {
        Some((code, _)) => {
            StatusCode::from_u16(ofrep::http_status(*code)).unwrap_or(StatusCode::BAD_REQUEST)
        }
        None => StatusCode::OK,
    };
    json_bytes(status, body)
}

/// The digest of a context in canonical form (keys sorted, canonical values): key order and
/// spacing do not matter, and every instance computes the same one.
pub fn context_digest(context: &Context) -> [u8; 32] {
    use sluice_audit::canonical::{write_str, write_value};
    let mut entries: Vec<(&str, &Value)> = context.entries().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut canonical = Vec::with_capacity(128);
    canonical.push(b'{');
    for (i, (name, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            canonical.push(b',');
        }
        write_str(&mut canonical, name);
        canonical.push(b':');
        write_value(&mut canonical, value);
    }
    canonical.push(b'}');
    Sha256::digest(&canonical).into()
}

/// The bulk ETag: the environment's revision, how many moments at which an answer may change
/// (a target expiring, a rollout step) have passed, the current second when some rule reads
/// `$flagd.timestamp`, the request context's digest and the static context's, hashed. A different context, a new
/// configuration or a passed moment gives a different tag. Returns the tag (96 bits of the
/// digest, enough to tell a client's answers apart) and the whole digest, which keys the
/// answer cache: a cached answer is shared between clients, so finding two contexts with one
/// key must cost a SHA-256 collision, not a 96-bit one.
fn etag(
    revision: i64,
    epoch: usize,
    second: Option<i64>,
    context: &[u8; 32],
    static_context: Option<&[u8; 32]>,
) -> (String, [u8; 32]) {
    let mut h = Sha256::new();
    h.update(revision.to_be_bytes());
    h.update(epoch.to_be_bytes());
    if let Some(second) = second {
        h.update(second.to_be_bytes());
    }
    h.update(context);
    // The environment's static context is part of every answer (absent: nothing added, so
    // tags of environments without one are unchanged).
    if let Some(fixed) = static_context {
        h.update(b"static");
        h.update(fixed);
    }
    let digest = h.finalize();
    let mut tag = String::with_capacity(48);
    tag.push('"');
    // Writing to a String cannot fail.
    let _ = write!(tag, "{revision}");
    tag.push('-');
    tag.push_str(&hex::encode(&digest[..12]));
    tag.push('"');
    (tag, digest.into())
}

/// The digest of a static context in canonical form.
fn static_digest(fixed: &Map<String, Value>) -> [u8; 32] {
    use sluice_audit::canonical::write_value;
    let mut canonical = Vec::with_capacity(64);
    write_value(&mut canonical, &Value::Object(fixed.clone()));
    Sha256::digest(&canonical).into()
}

/// Every flag's answer (`POST /ofrep/v1/evaluate/flags`), counted: `304` when `If-None-Match`
/// names the tag, else the answer with its `ETag` and, as its `eventStreams`, the SSE stream
/// under `public_url` (the answering server's own).
#[expect(
    clippy::too_many_arguments,
    reason = "the whole of a bulk request, each part from elsewhere"
)]
pub fn bulk(
    insight: &Insight,
    flags: Option<Arc<EnvFlags>>,
    asker: Asker<'_>,
    if_none_match: Option<&HeaderValue>,
    body: &[u8],
    fixed: Option<&Map<String, Value>>,
    now: DateTime<Utc>,
    public_url: &str,
) -> Response {
    let bad_context = |(code, msg): (ErrorCode, String)| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"errorCode": code, "errorDetails": msg}),
        )
    };
    // The static context lives in the policy, which changes apart from the flags: it is
    // hashed on its own (never memoised with the body) and enters the tag separately.
    let fixed_digest = fixed.map(static_digest);
    // A body seen before (a client polling) is not parsed again to compute its tag.
    let memo_key = flags.as_ref().map(|f| f.contexts.key(body));
    let known = flags
        .as_ref()
        .zip(memo_key)
        .and_then(|(f, k)| f.contexts.get(k));
    let mut parsed = None;
    let context = match known {
        Some(digest) => digest,
        None => {
            // The memo holds the digest of the request's own context only.
            let ctx = match context_of(body, None) {
                Ok(c) => c,
                Err(e) => return bad_context(e),
            };
            let digest = context_digest(&ctx);
            if let (Some(f), Some(k)) = (&flags, memo_key) {
                f.contexts.put(k, digest);
            }
            if fixed.is_none() {
                parsed = Some(ctx);
            }
            digest
        }
    };
    let revision = flags.as_ref().map_or(0, |f| f.revision);
    let epoch = flags.as_ref().map_or(0, |f| f.epoch(now));
    // Rules that read the time may answer differently every second.
    let second = flags
        .as_ref()
        .filter(|f| f.snapshot.reads_time())
        .map(|_| now.timestamp());
    let (tag, digest) = etag(revision, epoch, second, &context, fixed_digest.as_ref());
    let matches = if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let tag_header = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"0\""));
    // The answer without its last `}`, rendered once per tag (see `flags::AnswerCache`).
    let cached = flags.as_ref().and_then(|f| f.answers.get(&digest));
    if matches {
        // The client goes on using the answer it holds: counted as evaluated again, when
        // this instance still knows what that answer was.
        if let (Some(f), Some(answer)) = (&flags, &cached) {
            count_bulk(insight, asker, f, &answer.codes, true, now);
        }
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(header::ETAG, tag_header);
        return resp;
    }
    let from_cache = cached.is_some();
    let answer = match cached {
        Some(answer) => answer,
        None => {
            let ctx = match parsed.map_or_else(|| context_of(body, fixed), Ok) {
                Ok(c) => c,
                Err(e) => return bad_context(e),
            };
            match render(flags.as_deref(), &ctx, now) {
                Some(answer) => {
                    if let Some(f) = &flags {
                        f.answers.put(digest, answer.clone());
                    }
                    answer
                }
                None => {
                    return crate::error::ApiError::Internal(
                        "a bulk answer did not render as an object".into(),
                    )
                    .into_response()
                }
            }
        }
    };
    if let Some(f) = &flags {
        count_bulk(insight, asker, f, &answer.codes, from_cache, now);
    }
    let answer = answer.body;
    let mut body = Vec::with_capacity(answer.len() + 128);
    body.extend_from_slice(&answer);
    body.extend_from_slice(b",\"eventStreams\":[{\"type\":\"sse\",\"url\":");
    // The URL is written as a JSON string; the rest is constant.
    if serde_json::to_writer(&mut body, &format!("{public_url}/ofrep/v1/events")).is_err() {
        body.extend_from_slice(b"null");
    }
    body.extend_from_slice(b",\"inactivityDelaySec\":120}]}");
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(header::ETAG, tag_header);
    resp
}

/// Evaluates every flag and renders the answer without its last `}`, with its codes for the
/// counters; `None` if it did not render as an object.
fn render(flags: Option<&EnvFlags>, ctx: &Context, now: DateTime<Utc>) -> Option<CachedAnswer> {
    let evals = flags.map(|f| f.evaluate_all(ctx, now)).unwrap_or_default();
    let no_metadata = Map::new();
    let out = ofrep::BulkWire {
        evaluations: &evals,
        metadata: flags.map_or(&no_metadata, |f| f.snapshot.metadata()),
        extra: &[],
    };
    let snapshot = flags.map(|f| &f.snapshot);
    let mut rendered = Vec::with_capacity(evals.len() * 96 + 64);
    if out.write(snapshot, &mut rendered).is_err() || rendered.pop() != Some(b'}') {
        return None;
    }
    let codes: Arc<[u64]> = match snapshot {
        Some(s) => evals
            .iter()
            .enumerate()
            .filter_map(|(at, e)| match s.locate(at, e) {
                Some(place) => Some(Tally::code_of(place, e.reason)),
                None => Tally::code(s, e),
            })
            .collect(),
        None => Arc::new([]),
    };
    Some(CachedAnswer {
        body: Bytes::from(rendered),
        codes,
    })
}

/// Counts a bulk answer's evaluations (see [`crate::insight`]).
fn count_bulk(
    insight: &Insight,
    asker: Asker<'_>,
    flags: &EnvFlags,
    codes: &Arc<[u64]>,
    cached: bool,
    now: DateTime<Utc>,
) {
    if !insight.enabled() {
        return;
    }
    let at = now.timestamp_millis();
    if cached {
        flags.tally.count_cached(codes, at);
    } else {
        flags.tally.count_all(codes, at);
    }
    insight.client(asker.token_id, asker.environment, codes.len() as u64, at);
}

/// The OFREP SSE stream of one environment: `refetchEvaluation` for each of its changes, and
/// for a change possibly missed (the subscriber lagged).
pub fn events(
    rx: tokio::sync::broadcast::Receiver<FlagEvent>,
    env: String,
) -> impl Stream<Item = Result<Event, Infallible>> {
    BroadcastStream::new(rx).filter_map(move |msg| {
        let ev = match msg {
            Ok(ev) if ev.environment == env => ev,
            // Lagged: we may have missed a change, so ask for a refetch anyway.
            Err(_) => FlagEvent {
                environment: env.clone(),
                revision: 0,
                updated_at: DateTime::default(),
            },
            Ok(_) => return None,
        };
        let data = json!({"type": "refetchEvaluation", "etag": format!("\"{}\"", ev.revision), "lastModified": ev.updated_at.timestamp()});
        Some(Ok::<_, Infallible>(
            Event::default()
                .id(ev.revision.to_string())
                .data(data.to_string()),
        ))
    })
}
