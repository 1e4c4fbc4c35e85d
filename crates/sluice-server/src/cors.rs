//! OFREP from web pages on other origins (CORS), on the central server and on an edge.
//!
//! A browser application evaluating flags through the OpenFeature web SDK calls OFREP with a
//! client key in `Authorization` and a JSON body: a cross-origin request the browser first
//! asks about (a preflight `OPTIONS`) and whose answer it hides from the page unless the
//! server names the page's origin. With `--cors-origin` (`cors_origins:` in the config file)
//! the OFREP paths (`/ofrep/…`) answer so for the origins listed, or for any with `*`; the
//! headers are tower-http's. Nothing else is opened to other origins: the administrative API
//! and the console are for Sluice's own pages and for tools, which do not need it. Off by
//! default, as flagd's and Unleash's are.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::Response;
use futures_util::future::Either;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

/// Where the browsers that may call OFREP run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BrowserOrigins {
    /// No cross-origin access (the default).
    #[default]
    None,
    /// Any origin (`*`).
    Any,
    /// These origins, each `scheme://host[:port]`.
    Listed(Vec<String>),
}

impl BrowserOrigins {
    /// Reads `--cors-origin` values: `*` alone, or origins such as `https://app.example.com`
    /// or `http://localhost:3000` (a scheme, a host, an optional port; no path, no trailing
    /// slash: what a browser sends in `Origin`).
    /// Blank values are no origin (an empty `SLUICE_CORS_ORIGINS`, a trailing comma).
    pub fn parse(values: &[String]) -> Result<BrowserOrigins, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Ok(BrowserOrigins::None);
        }
        if values.contains(&"*") {
            if values.len() > 1 {
                return Err("`*` allows every origin: give it alone, not with others".into());
            }
            return Ok(BrowserOrigins::Any);
        }
        let mut origins: Vec<String> = Vec::with_capacity(values.len());
        for v in values {
            let o = origin(v)?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        Ok(BrowserOrigins::Listed(origins))
    }

    fn layer(&self) -> Option<tower_http::cors::CorsLayer> {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let allow = match self {
            BrowserOrigins::None => return None,
            BrowserOrigins::Any => AllowOrigin::any(),
            BrowserOrigins::Listed(list) => {
                AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
            }
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                // What the OpenFeature web SDK's OFREP provider sends, and an event stream's
                // resumption.
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::IF_NONE_MATCH,
                    HeaderName::from_static("last-event-id"),
                ])
                // The bulk answer's ETag (sent back as `If-None-Match`), and how long a
                // rate-limited client waits.
                .expose_headers([header::ETAG, header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// One origin as a browser writes it in `Origin`, or why `raw` is not one.
fn origin(raw: &str) -> Result<String, String> {
    let bad = |why: &str| {
        format!("--cors-origin `{raw}` {why}: give an origin such as https://app.example.com or http://localhost:3000, or `*`")
    };
    let url = url::Url::parse(raw).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("holds a user name or password"));
    }
    if raw.trim_end_matches('/') != raw
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad("has a path, a query or a trailing slash"));
    }
    Ok(url.origin().ascii_serialization())
}

/// Puts [`OfrepCors`] in front of a service.
#[derive(Clone)]
pub struct Layer(pub BrowserOrigins);

impl<S: Clone> tower::Layer<S> for Layer {
    type Service = OfrepCors<S>;
    fn layer(&self, inner: S) -> Self::Service {
        OfrepCors {
            cors: self
                .0
                .layer()
                .map(|l| tower::Layer::layer(&l, inner.clone())),
            inner,
        }
    }
}

/// Answers CORS on the OFREP paths (when origins are set), and passes everything else by.
#[derive(Clone)]
pub struct OfrepCors<S> {
    inner: S,
    cors: Option<tower_http::cors::Cors<S>>,
}

impl<S> tower::Service<Request> for OfrepCors<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, tower_http::cors::ResponseFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match &mut self.cors {
            Some(cors) => {
                if self.inner.poll_ready(cx)?.is_pending() {
                    return Poll::Pending;
                }
                cors.poll_ready(cx)
            }
            None => self.inner.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match &mut self.cors {
            Some(cors) if req.uri().path().starts_with("/ofrep/") => Either::Right(cors.call(req)),
            _ => Either::Left(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{origin, BrowserOrigins};

    #[test]
    fn origins_are_read_as_browsers_send_them() {
        assert_eq!(BrowserOrigins::parse(&[]), Ok(BrowserOrigins::None));
        // An empty `SLUICE_CORS_ORIGINS`, a trailing comma, spaces after commas.
        assert_eq!(
            BrowserOrigins::parse(&["".into()]),
            Ok(BrowserOrigins::None)
        );
        assert_eq!(
            BrowserOrigins::parse(&[
                "https://a.example".into(),
                " http://b.example".into(),
                "".into()
            ]),
            Ok(BrowserOrigins::Listed(vec![
                "https://a.example".into(),
                "http://b.example".into()
            ]))
        );
        assert_eq!(
            BrowserOrigins::parse(&["*".into()]),
            Ok(BrowserOrigins::Any)
        );
        assert_eq!(
            BrowserOrigins::parse(&[
                "https://App.Example.com".into(),
                "http://localhost:3000".into()
            ]),
            Ok(BrowserOrigins::Listed(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into()
            ]))
        );
        // The default port is not written in `Origin`.
        assert_eq!(
            origin("https://app.example.com:443"),
            Ok("https://app.example.com".into())
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/ofrep",
            "https://app.example.com?x=1",
            "ftp://app.example.com",
            "https://user:pw@app.example.com",
        ] {
            let e = origin(bad).expect_err(bad);
            assert!(e.contains(bad) && e.contains("--cors-origin"), "{e}");
        }
        assert!(BrowserOrigins::parse(&["*".into(), "https://a.example".into()]).is_err());
    }
}
