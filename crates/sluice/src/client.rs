//! The one HTTP client of the command line: builds the URLs, sends the calls, reads typed
//! answers (the wire types of `sluice-api`), and turns error bodies into messages people can
//! act on.

use crate::cli::Remote;
use anyhow::{anyhow, Context};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sluice_api::error::ErrorBody;
use url::Url;

/// No request body, for [`Client::send`].
pub const NO_BODY: Option<&()> = None;

/// The client for the server `r` names, with its token: `--token`/`SLUICE_TOKEN`, else the
/// session `sluice login` stored for this server.
///
/// With `--ca-file` or `--tls-fingerprint` the server's certificate is checked against that
/// instead of the system's roots; a file that cannot be read, or a fingerprint that is not
/// SHA-256 hex, ends the command with a message.
pub fn client(r: &Remote) -> Client {
    let token = r
        .token
        .clone()
        .or_else(|| crate::session_file::load(&r.addr).map(|s| s.token));
    Client::new(&r.addr, token).with_tls_of(r)
}

/// A path on the server with its query, e.g. `/v1/requests/req-1?limit=5`: each segment and each
/// query value percent-encoded by `url` (an id or a key cannot break out of its place); pairs
/// without a value are left out.
pub fn endpoint(segments: &[&str], query: &[(&str, Option<String>)]) -> String {
    #[expect(clippy::expect_used, reason = "a constant URL that parses")]
    let mut url = Url::parse("http://sluice/").expect("a valid URL");
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().extend(segments);
    }
    let mut pairs = query
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .peekable();
    if pairs.peek().is_some() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    url[url::Position::BeforePath..].to_owned()
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(addr: &str, token: Option<String>) -> Self {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", addr.trim_end_matches('/'))
        };
        Client {
            http: reqwest::Client::new(),
            base,
            token,
        }
    }

    /// This client with the TLS settings `r` names (see [`client`]).
    pub fn with_tls_of(mut self, r: &Remote) -> Self {
        match crate::tls::http_client(r.ca_file.as_deref(), r.tls_fingerprint.as_deref()) {
            Ok(Some(http)) => self.http = http,
            Ok(None) => {}
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2);
            }
        }
        self
    }

    /// Sends `body` (if any) and reads the answer as a `T`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let text = self.raw(method, path, body).await?;
        serde_json::from_str(&text)
            .with_context(|| format!("the server sent an answer this sluice does not read: {text}"))
    }

    /// GETs `path` and writes the body to `out` as it arrives, not holding it whole; answers
    /// how many lines it wrote.
    pub async fn download(
        &self,
        path: &str,
        out: &mut impl std::io::Write,
    ) -> anyhow::Result<usize> {
        let mut resp = self.send_request(Method::GET, path, NO_BODY).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await?;
            return Err(refusal(status, &text));
        }
        let (mut newlines, mut last) = (0, None);
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk)?;
            newlines += chunk.iter().filter(|b| **b == b'\n').count();
            last = chunk.last().copied().or(last);
        }
        out.flush()?;
        // As `str::lines` counts: a last line without its newline is a line.
        Ok(newlines + usize::from(last.is_some_and(|b| b != b'\n')))
    }

    /// GET that answers `None` for 404 (something that does not exist yet) — but not for an
    /// environment that does not exist, which is an error worth showing.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                let body: Option<ErrorBody> = r.json().await.ok();
                match body.as_ref().map(|b| b.code.as_str()) {
                    Some("unknown_environment") => {
                        self.send(Method::GET, path, NO_BODY).await.map(Some)
                    }
                    _ => Ok(None),
                }
            }
            Ok(r) if r.status().is_success() => {
                let text = r.text().await?;
                Ok(Some(serde_json::from_str(&text).with_context(|| {
                    format!("the server sent an answer this sluice does not read: {text}")
                })?))
            }
            // Errors are worded by the common path.
            _ => self.send(Method::GET, path, NO_BODY).await.map(Some),
        }
    }

    /// GET a server-sent event stream and call `on_data` with each event's data, until the
    /// server closes it (then an error: the stream was meant to run until interrupted).
    pub async fn follow_events(
        &self,
        path: &str,
        mut on_data: impl FnMut(&str) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url).header("accept", "text/event-stream");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach Sluice at {}: {e}", self.base))?;
        if !resp.status().is_success() {
            // Worded by the common path.
            self.raw(Method::GET, path, NO_BODY).await?;
            return Err(anyhow!(
                "the server refused the stream (HTTP {})",
                resp.status()
            ));
        }
        // Bytes, not text: a chunk may end inside a character.
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let bytes: Vec<u8> = buf.drain(..end + 2).collect();
                let event = String::from_utf8_lossy(&bytes);
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() {
                    on_data(&data.join("\n"))?;
                }
            }
        }
        Err(anyhow!("the server closed the audit stream"))
    }

    async fn send_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.map_err(|e| {
            // A TLS refusal (unknown CA, wrong pin) is in the error's sources.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            anyhow!("cannot reach Sluice at {}: {why}\nIs `sluice serve` running? Set --addr or SLUICE_ADDR (https://… for TLS, with --ca-file or --tls-fingerprint when its certificate is not from a public authority).", self.base)
        })
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<String> {
        let resp = self.send_request(method, path, body).await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.is_success() {
            return Ok(text);
        }
        Err(refusal(status, &text))
    }
}

/// A call the server refused: its status and the stable code of its error body, so a command
/// can tell one refusal from another without reading the message.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    /// The body's `code`, or `error` when the body is not an error body.
    pub code: String,
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hint = match self.status {
            StatusCode::UNAUTHORIZED => "\nSet a token with --token or SLUICE_TOKEN.",
            _ => "",
        };
        write!(
            f,
            "{} ({}, HTTP {}){hint}",
            self.message,
            self.code,
            self.status.as_u16()
        )
    }
}

impl std::error::Error for Refused {}

/// The error a refused call ends in, from the server's error body.
fn refusal(status: StatusCode, text: &str) -> anyhow::Error {
    let parsed: Option<ErrorBody> = serde_json::from_str(text).ok();
    let (message, code) = parsed.map_or_else(
        || (text.to_owned(), "error".to_owned()),
        |b| (b.message, b.code),
    );
    Refused {
        status,
        code,
        message,
    }
    .into()
}
