//! `ApiJson<T>`: a JSON body extractor with Sluice's limits and error shape.
//!
//! Bodies are capped at [`MAX_BODY`] ([`MAX_IMPORT`] for a flag import): [`ApiBytes`] reads
//! them itself, to the [`BodyLimit`] a route with another cap sets (the `DefaultBodyLimit`
//! layer beside it caps axum's own extractors, such as the console's forms), so that a body
//! over it is `413 body_too_large` naming the limit; here nesting depth is
//! bounded before parsing, and every failure becomes an [`ApiError`] with a stable code
//! instead of axum's plain text.
//!
//! A NUL character (U+0000) is refused at the edge, `400 nul_character`: PostgreSQL cannot
//! store it in text and SQLite would, after which `store copy` to PostgreSQL fails. Bodies are
//! checked in [`parse`] (every JSON body of the API: AuthZEN ids, token names, reasons, flag
//! documents), paths and query strings by [`RequestChecks`] (a `%00` anywhere in the URI), so no
//! field can forget it. OFREP contexts are never stored and are not checked.
//!
//! [`RequestChecks`] also bounds the request target and the header section before routing.

use crate::error::{human_bytes, ApiError};
use crate::ops::Input;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// `axum::extract::Query` with the JSON error shape: a query string that does not read as the
/// route's parameters is `400 invalid_query`, naming the parameter, not axum's plain text.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(Input::Query, e.body_text()))
    }
}

/// Largest request body accepted on any endpoint but flag import.
pub const MAX_BODY: usize = 256 * 1024;
/// Largest flag document accepted by an import.
pub const MAX_IMPORT: usize = 8 * 1024 * 1024;

/// Deepest JSON nesting accepted on any endpoint.
pub const MAX_DEPTH: usize = 32;
/// Longest JSON string (in bytes, as sent) accepted, but for a policy source and a flag import.
pub const MAX_STRING: usize = 64 * 1024;
/// Most items in one JSON array, but for a flag import.
pub const MAX_LIST: usize = 10_000;

/// The string and list limits in force on a route: set (as a request extension) on the routes
/// that take larger documents (`POST /v1/policy`, the flag import), else the defaults.
#[derive(Debug, Clone, Copy)]
pub struct ShapeLimits {
    pub string: usize,
    pub list: usize,
}

impl Default for ShapeLimits {
    fn default() -> Self {
        ShapeLimits {
            string: MAX_STRING,
            list: MAX_LIST,
        }
    }
}

/// The body size limit in force on a route, in bytes, when it is not [`MAX_BODY`]: set (as a
/// request extension) beside the route's own `DefaultBodyLimit` (which axum's extractors
/// read); [`ApiBytes`] reads the body to it and names it in the error.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The raw body, with a body over the route's limit answered `413` in the JSON error shape.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(MAX_BODY, |l| l.0);
        read_body(req.into_body(), limit).await.map(ApiBytes)
    }
}

/// Reads a whole body of at most `limit` bytes. A body sent in one piece (every small body
/// on a connection the client keeps open) is taken as it is, without a copy; what axum's
/// `Bytes` extractor wraps around it (a limit layer, another boxed body, a list of chunks)
/// was ~1,000 instructions of every OFREP request.
async fn read_body(mut body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use axum::body::HttpBody as _;
    // Not refused by its declared length before it is read: a client that writes its whole
    // body before it reads the answer (reqwest does) would see its connection reset instead of
    // the 413. Read up to the limit, as axum's extractor did.
    let too_large = || ApiError::PayloadTooLarge { limit };
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(Input::Body, format!("failed to read the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let read = first.as_ref().map_or(0, Bytes::len) + joined.len();
        if read + data.len() > limit {
            return Err(too_large());
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(f) => {
                joined.reserve(f.len() + data.len());
                joined.extend_from_slice(&f);
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = limits_of(&req);
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        parse_within(&bytes, limits).map(ApiJson)
    }
}

fn limits_of(req: &Request) -> ShapeLimits {
    req.extensions()
        .get::<ShapeLimits>()
        .copied()
        .unwrap_or_default()
}

/// Parses a JSON body, bounding depth, string length and list length and refusing NUL
/// characters first.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_within(bytes, ShapeLimits::default())
}

/// [`parse`] under a route's [`ShapeLimits`]; each limit exceeded is a `400` naming it.
pub fn parse_within<T: DeserializeOwned>(bytes: &[u8], limits: ShapeLimits) -> Result<T, ApiError> {
    let shape = scan(bytes);
    if shape.depth > MAX_DEPTH {
        return Err(ApiError::bad_request(
            Input::Depth,
            format!("JSON is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if shape.longest_string > limits.string {
        return Err(ApiError::bad_request(
            Input::StringLength,
            format!(
                "a JSON string is {} bytes long; strings may be at most {} bytes on this endpoint",
                shape.longest_string, limits.string
            ),
        ));
    }
    if shape.longest_list > limits.list {
        return Err(ApiError::bad_request(
            Input::ListLength,
            format!(
                "a JSON array has {} items; arrays may have at most {} items on this endpoint",
                shape.longest_list, limits.list
            ),
        ));
    }
    if shape.nul {
        return Err(nul_error("the request body"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let msg = e.to_string();
        let input = if msg.starts_with("unknown field") {
            Input::UnknownField
        } else {
            Input::Json
        };
        ApiError::bad_request(input, format!("invalid request body: {msg}"))
    })
}

/// `400 nul_character`, naming where the NUL was.
fn nul_error(place: &str) -> ApiError {
    ApiError::bad_request(
        Input::Nul,
        format!(
            "{place} contains a NUL character (U+0000), which Sluice does not accept in any string"
        ),
    )
}

/// What [`scan`] learns of a JSON text in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting of arrays and objects.
    pub depth: usize,
    /// Whether a string holds the escape `\u0000`. (A raw NUL byte is not valid JSON: the
    /// parser refuses it.)
    pub nul: bool,
    /// The longest string, in bytes as sent (escapes counted as written).
    pub longest_string: usize,
    /// The most items in one array (arrays nested deeper than [`MAX_DEPTH`] are not counted:
    /// such a text is refused for its depth).
    pub longest_list: usize,
}

/// The deepest nesting of arrays and objects, ignoring brackets inside strings.
pub fn depth(bytes: &[u8]) -> usize {
    scan(bytes).depth
}

/// One open array or object while scanning: for arrays, the commas seen at its level and
/// whether it holds anything.
#[derive(Clone, Copy)]
struct Open {
    array: bool,
    commas: usize,
    items: bool,
}

/// Depth, NUL escapes, the longest string and the longest array, in one pass that ignores
/// brackets inside strings.
pub fn scan(bytes: &[u8]) -> Shape {
    let (mut d, mut max, mut in_str, mut esc, mut nul) = (0usize, 0usize, false, false, false);
    let (mut str_start, mut longest_string, mut longest_list) = (0usize, 0usize, 0usize);
    // Bounded: nothing deeper than MAX_DEPTH + 1 is tracked.
    let mut open: Vec<Open> = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            match (esc, b) {
                (true, b'u') => {
                    esc = false;
                    nul |= bytes.get(i + 1..i + 5) == Some(b"0000");
                }
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => {
                    in_str = false;
                    longest_string = longest_string.max(i - str_start);
                }
                _ => {}
            }
            continue;
        }
        if !b.is_ascii_whitespace() && !matches!(b, b']' | b'}' | b',') {
            if let Some(top) = open.last_mut() {
                top.items = true;
            }
        }
        match b {
            b'"' => {
                in_str = true;
                str_start = i + 1;
            }
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
                if d <= MAX_DEPTH + 1 {
                    open.push(Open {
                        array: b == b'[',
                        commas: 0,
                        items: false,
                    });
                }
            }
            b']' | b'}' => {
                if d <= MAX_DEPTH + 1 {
                    if let Some(o) = open.pop() {
                        if o.array && o.items {
                            longest_list = longest_list.max(o.commas + 1);
                        }
                    }
                }
                d = d.saturating_sub(1);
            }
            b',' if d <= MAX_DEPTH + 1 => {
                if let Some(top) = open.last_mut() {
                    top.commas += 1;
                }
            }
            _ => {}
        }
    }
    Shape {
        depth: max,
        nul,
        longest_string,
        longest_list,
    }
}

/// Most header fields in one request. hyper's parser refuses more than 100 itself, with a
/// bare `431` and no body: this limit sits below it so that a request over it is told which
/// limit it broke.
pub const MAX_HEADERS: usize = 64;
/// Largest header section (every `name: value` line with its line end) in bytes. hyper's own
/// ceiling, about 400 KiB of read buffer, is far above it.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Longest request target (path and query) in bytes; hyper's own is 64 KiB (`414`, no body).
pub const MAX_URI: usize = 8 * 1024;

/// The checks every request passes before routing, each answered in the JSON error shape
/// naming its limit: a request target over [`MAX_URI`] is `414 uri_too_long`; more than
/// [`MAX_HEADERS`] header fields or more than [`MAX_HEADER_BYTES`] of them is
/// `431 headers_too_large`; a percent-encoded NUL (`%00`) in the path or query is
/// `400 nul_character`, before any extractor decodes it (one check for every `Path` and
/// `Query` of the API; a raw NUL cannot reach here, the HTTP parser refuses it).
///
/// Only a request past hyper's own parser limits (100 header fields, about 400 KiB of header,
/// a 64 KiB target) is refused by hyper before this runs, with a bare status and no body:
/// raising those makes hyper allocate on every request.
#[derive(Clone, Copy)]
pub struct RequestChecks;

impl<S> tower::Layer<S> for RequestChecks {
    type Service = Checked<S>;
    fn layer(&self, inner: S) -> Checked<S> {
        Checked(inner)
    }
}

#[derive(Clone)]
pub struct Checked<S>(S);

impl<S> tower::Service<Request> for Checked<S>
where
    S: tower::Service<Request, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        std::future::Ready<Result<axum::response::Response, S::Error>>,
        S::Future,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use axum::response::IntoResponse as _;
        match refusal(&req) {
            Some(e) => {
                futures_util::future::Either::Left(std::future::ready(Ok(e.into_response())))
            }
            None => futures_util::future::Either::Right(self.0.call(req)),
        }
    }
}

/// Why [`RequestChecks`] refuses `req`, if it does.
fn refusal(req: &Request) -> Option<ApiError> {
    let uri = req.uri();
    let target = uri.path().len() + uri.query().map_or(0, |q| q.len() + 1);
    if target > MAX_URI {
        return Some(ApiError::UriTooLong(format!(
            "the request target (path and query) is {target} bytes, over the limit of {}",
            human_bytes(MAX_URI)
        )));
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return Some(ApiError::HeadersTooLarge(format!(
            "the request has {} header fields, over the limit of {MAX_HEADERS}",
            headers.len()
        )));
    }
    // As sent: `name: value` and the line end.
    let bytes: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge(format!(
            "the request's header fields take {bytes} bytes, over the limit of {}",
            human_bytes(MAX_HEADER_BYTES)
        )));
    }
    if has_nul(uri.path()) {
        Some(nul_error("the URL path"))
    } else if uri.query().is_some_and(has_nul) {
        Some(nul_error("the query string"))
    } else {
        None
    }
}

/// Whether percent-decoding `s` would yield a NUL.
fn has_nul(s: &str) -> bool {
    // Most targets hold no `%` at all: std's search for one byte is a fast scan, where the
    // windows compared one by one cost ~10 instructions a byte on every request.
    s.contains('%') && s.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Like [`ApiJson`], but an empty body means `T::default()` (for optional comments and reasons).
pub struct ApiJsonOrDefault<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrDefault<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(ApiJsonOrDefault(T::default()));
        }
        parse(&bytes).map(ApiJsonOrDefault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_the_longest_string_and_array_ignoring_what_strings_hold() {
        let s = scan(br#"{"a": [1, [2, 3, 4], "x,y]["], "b": [], "c": "hello", "d": [{}]}"#);
        assert_eq!(s.longest_list, 3, "{s:?}");
        assert_eq!(s.longest_string, 5, "{s:?}");
        assert_eq!(s.depth, 3, "{s:?}");
        assert_eq!(scan(b"[]").longest_list, 0);
        assert_eq!(scan(b"[ [] ]").longest_list, 1);
        assert_eq!(scan(br#"["a\"b"]"#).longest_string, 4);
    }

    #[test]
    fn each_limit_is_named_in_its_refusal() {
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_STRING + 1));
        let e = parse::<serde_json::Value>(long.as_bytes()).expect_err("too long");
        assert_eq!(e.code(), "string_too_long");
        assert!(e.to_string().contains(&MAX_STRING.to_string()), "{e}");
        let list = format!("[{}]", vec!["0"; MAX_LIST + 1].join(","));
        let e = parse::<serde_json::Value>(list.as_bytes()).expect_err("too many");
        assert_eq!(e.code(), "list_too_long");
        assert!(e.to_string().contains(&MAX_LIST.to_string()), "{e}");
        let ok = format!("[{}]", vec!["0"; MAX_LIST].join(","));
        assert!(parse::<serde_json::Value>(ok.as_bytes()).is_ok());
    }
}
