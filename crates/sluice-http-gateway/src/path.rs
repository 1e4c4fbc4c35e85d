//! The path a call is decided on, and forwarded as: one canonical form, so what was allowed
//! is exactly what the upstream receives.
//!
//! Each segment is percent-decoded; `.` segments go and `..` removes the segment before it;
//! the result is encoded again for the upstream. Whatever two servers could read two ways is
//! refused instead of guessed at: an encoded `/` (`%2F`) or `%` (double encoding), `\`,
//! `;` (a path parameter to some servers, `..;/`), an empty segment inside the path (`//`),
//! a `..` above the root, bytes that are not printable ASCII (a Unicode form could normalise
//! into `/` or `.`), and a path longer than a decision takes.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// What is encoded in a forwarded segment: everything RFC 3986 does not allow in `pchar`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'%')
    .add(b'/');

/// A path the gateway will not guess about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error("`{0}` in a path segment is read differently by different servers")]
    Ambiguous(&'static str),
    #[error("an empty segment (`//`) inside the path is read differently by different servers")]
    EmptySegment,
    #[error("`..` climbs above the service's root")]
    AboveRoot,
    #[error(
        "a path segment holds a malformed percent-escape or bytes that are not printable ASCII"
    )]
    NotAscii,
    #[error("the path is longer than {0} bytes")]
    TooLong(usize),
}

/// A path as decided and as forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    /// Decoded: what the grant's `METHOD path` pattern is matched against.
    pub decoded: String,
    /// Encoded again: what the upstream receives.
    pub encoded: String,
}

/// Canonicalises `raw` (as it came on the request line, without the query).
pub fn canonical(raw: &str, max: usize) -> Result<CanonicalPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let raw_segments: Vec<&str> = rest.split('/').collect();
    let last = raw_segments.len() - 1;
    let mut segments: Vec<String> = Vec::with_capacity(raw_segments.len());
    // A path ending in `/`, `/.` or `/..` names a directory: it keeps its trailing slash.
    let mut trailing_slash = false;
    for (i, seg) in raw_segments.into_iter().enumerate() {
        let decoded = decode(seg)?;
        match decoded.as_str() {
            "" if i == last => trailing_slash = i > 0 || !segments.is_empty(),
            "" => return Err(PathError::EmptySegment),
            "." => trailing_slash = i == last,
            ".." => {
                segments.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = i == last;
            }
            _ => {
                segments.push(decoded);
                trailing_slash = false;
            }
        }
    }
    let mut decoded = String::with_capacity(raw.len());
    let mut encoded = String::with_capacity(raw.len());
    for s in &segments {
        decoded.push('/');
        decoded.push_str(s);
        encoded.push('/');
        encoded.extend(utf8_percent_encode(s, SEGMENT));
    }
    if trailing_slash || segments.is_empty() {
        decoded.push('/');
        encoded.push('/');
    }
    if decoded.len() > max {
        return Err(PathError::TooLong(max));
    }
    Ok(CanonicalPath { decoded, encoded })
}

fn decode(seg: &str) -> Result<String, PathError> {
    // A `%` not followed by two hex digits is passed through by the decoder; refuse it here.
    let b = seg.as_bytes();
    for (i, _) in seg.match_indices('%') {
        let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(PathError::NotAscii);
        }
    }
    let bytes: Vec<u8> = percent_decode_str(seg).collect();
    for &c in &bytes {
        let what = match c {
            b'/' => "an encoded `/` (%2F)",
            b'%' => "an encoded `%` (double encoding)",
            b'\\' => "`\\`",
            b';' => "`;`",
            0x21..=0x7e => continue,
            _ => return Err(PathError::NotAscii),
        };
        return Err(PathError::Ambiguous(what));
    }
    // INVARIANT: every byte is printable ASCII (checked above), so this is valid UTF-8.
    String::from_utf8(bytes).map_err(|_| PathError::NotAscii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> (String, String) {
        let c = canonical(raw, 1024).unwrap_or_else(|e| panic!("{raw}: {e}"));
        (c.decoded, c.encoded)
    }

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(
            ok("/v1/refunds/42"),
            ("/v1/refunds/42".into(), "/v1/refunds/42".into())
        );
        assert_eq!(ok("/"), ("/".into(), "/".into()));
        assert_eq!(
            ok("/v1/refunds/"),
            ("/v1/refunds/".into(), "/v1/refunds/".into())
        );
    }

    #[test]
    fn dot_segments_resolve_before_the_decision() {
        assert_eq!(ok("/v1/refunds/../orders/1").0, "/v1/orders/1");
        assert_eq!(ok("/v1/refunds/%2e%2e/orders").0, "/v1/orders");
        assert_eq!(ok("/v1/refunds/.%2E/orders").0, "/v1/orders");
        assert_eq!(ok("/v1/./refunds/42").0, "/v1/refunds/42");
        assert_eq!(ok("/v1/refunds/42/..").0, "/v1/refunds/");
        assert_eq!(ok("/v1/refunds/.").0, "/v1/refunds/");
    }

    #[test]
    fn encoded_characters_are_decoded_and_forwarded_encoded() {
        assert_eq!(
            ok("/v1/refunds/a%3Fb"),
            ("/v1/refunds/a?b".into(), "/v1/refunds/a%3Fb".into())
        );
        // Needlessly encoded letters are sent plain: one form upstream.
        assert_eq!(ok("/v1/%72efunds/42").1, "/v1/refunds/42");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for raw in [
            "/v1/refunds%2f42",
            "/v1/refunds%2F..%2Forders",
            "/v1/%252e%252e/orders",
            "/v1/refunds/..;/orders",
            "/v1\\refunds",
            "/v1//refunds",
            "/..",
            "/v1/../..",
            "/v1/%ff",
            "/v1/%e2%80%a5",
            "/v1/%",
            "/v1/a%20b",
            "/v1/%zz",
            "v1/refunds",
        ] {
            assert!(canonical(raw, 1024).is_err(), "{raw} was accepted");
        }
        assert_eq!(canonical("/aaaa", 3), Err(PathError::TooLong(3)));
    }
}
