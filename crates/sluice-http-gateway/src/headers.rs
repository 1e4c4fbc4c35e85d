//! Which headers cross the gateway, each way.
//!
//! Hop-by-hop headers (RFC 9110 §7.6.1: `Connection`, the fields it names, and
//! `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding`, `Upgrade`, plus the proxy
//! authentication pair) describe one connection and are never forwarded — but for an upgrade
//! the caller asked and the upstream granted, whose `Connection: upgrade` and `Upgrade` are
//! set anew each way. The caller's Sluice token never goes upstream; the upstream credential
//! never comes back.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The header a caller may carry its Sluice token in when the upstream reads `Authorization`.
pub const TOKEN_HEADER: &str = "x-sluice-token";

// Names as constants: a header looked up by `&str` is parsed again on every call.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];
const TOKEN: HeaderName = HeaderName::from_static(TOKEN_HEADER);
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the hop-by-hop headers, those `Connection` names first.
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in &HOP_BY_HOP {
        h.remove(n);
    }
}

/// Where the caller's token was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Dedicated,
    Authorization,
}

/// The caller's Sluice token: `X-Sluice-Token`, else `Authorization: Bearer`.
pub fn token(h: &HeaderMap) -> Option<(String, TokenSource)> {
    if let Some(v) = h.get(&TOKEN).and_then(|v| v.to_str().ok()) {
        return Some((v.trim().to_owned(), TokenSource::Dedicated));
    }
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| (token.trim().to_owned(), TokenSource::Authorization))
}

/// The request headers as the upstream gets them.
pub fn to_upstream(
    mut h: HeaderMap,
    source: Option<TokenSource>,
    peer: std::net::IpAddr,
    credential: Option<(&HeaderName, HeaderValue)>,
) -> HeaderMap {
    strip_hop_by_hop(&mut h);
    // INVARIANT: the token is removed wherever it was; the dedicated header always goes.
    h.remove(&TOKEN);
    let sluice_bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .get(..11)
                .is_some_and(|p| p.eq_ignore_ascii_case("bearer slu_"))
        });
    if source == Some(TokenSource::Authorization) || sluice_bearer {
        h.remove(header::AUTHORIZATION);
    }
    // The client's `Expect: 100-continue` was answered by this server already.
    h.remove(header::EXPECT);
    // The upstream's own name is set from its URL.
    let host = h.remove(header::HOST);
    let forwarded_for = match h.get(&FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        h.insert(FORWARDED_FOR, v);
    }
    h.insert(FORWARDED_PROTO, HeaderValue::from_static("http"));
    match host {
        Some(v) => h.insert(FORWARDED_HOST, v),
        None => h.remove(&FORWARDED_HOST),
    };
    if let Some((name, value)) = credential {
        h.insert(name.clone(), value);
    }
    h
}

/// The protocol a caller asks to switch to (`Upgrade: websocket` with `Connection: upgrade`,
/// on HTTP/1.1, the only version with `Upgrade`), if it does.
pub fn upgrade_asked(parts: &axum::http::request::Parts) -> Option<HeaderValue> {
    if parts.version != axum::http::Version::HTTP_11 {
        return None;
    }
    let connection_upgrade = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        .then(|| parts.headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Asks the upstream for the upgrade the caller asked (hop-by-hop, so stripped first).
pub fn ask_upgrade(h: &mut HeaderMap, protocol: HeaderValue) {
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, protocol);
}

/// Tells the caller of the upgrade the upstream granted (its `101`'s `Upgrade`).
pub fn grant_upgrade(out: &mut HeaderMap, upstream: &HeaderMap) {
    out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(p) = upstream.get(header::UPGRADE) {
        out.insert(header::UPGRADE, p.clone());
    }
}

/// The response headers as the caller gets them: no hop-by-hop header, no header named like
/// the credential, none carrying its value.
pub fn to_caller(mut h: HeaderMap, credential: Option<(&HeaderName, &HeaderValue)>) -> HeaderMap {
    strip_hop_by_hop(&mut h);
    if let Some((name, value)) = credential {
        h.remove(name);
        let secret = value.as_bytes();
        if !secret.is_empty() {
            let leaking: Vec<HeaderName> = h
                .iter()
                .filter(|(_, v)| contains(v.as_bytes(), secret))
                .map(|(n, _)| n.clone())
                .collect();
            for n in leaking {
                h.remove(n);
            }
        }
    }
    h
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-end", HeaderValue::from_static("2"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-end"));
    }

    #[test]
    fn the_token_is_read_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer slu_api_x"),
        );
        assert_eq!(
            token(&h),
            Some(("slu_api_x".into(), TokenSource::Authorization))
        );
        h.insert(TOKEN_HEADER, HeaderValue::from_static("slu_api_y"));
        assert_eq!(
            token(&h),
            Some(("slu_api_y".into(), TokenSource::Dedicated))
        );
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        assert_eq!(token(&basic), None);
    }
}
