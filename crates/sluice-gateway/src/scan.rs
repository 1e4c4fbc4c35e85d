//! Follows the client→server byte stream frame by frame, without buffering it, and picks
//! out the statements to log: simple `Query`, and the extended protocol's `Parse`, `Bind`
//! and `Execute`. Every other frame (and every byte of a statement beyond the configured
//! size) only moves a counter. The relay forwards the bytes unchanged.

use crate::wire::cstr;

/// A statement seen in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `query`, `parse`, `bind` or `execute`.
    pub kind: &'static str,
    /// The SQL (`query`, `parse`), the statement name (`bind`), or the portal (`execute`).
    pub text: String,
    /// `bind` only: the parameters, text or hex (`\x…`) for binary, `None` for NULL.
    pub params: Option<Vec<Option<String>>>,
    /// The frame was longer than the configured size and was recorded truncated.
    pub truncated: bool,
}

impl Statement {
    /// Does it count as a statement run (`query`, `execute`)?
    pub fn runs(&self) -> bool {
        matches!(self.kind, "query" | "execute")
    }
}

enum State {
    Header {
        buf: [u8; 5],
        have: usize,
    },
    Body {
        tag: u8,
        remaining: usize,
        total: usize,
        capture: Option<Vec<u8>>,
    },
}

pub struct Scanner {
    state: State,
    limit: usize,
}

impl Scanner {
    /// Records statements up to `limit` bytes each.
    pub fn new(limit: usize) -> Self {
        Scanner {
            state: State::Header {
                buf: [0; 5],
                have: 0,
            },
            limit,
        }
    }

    /// Feeds the next bytes of the stream; statements completed in them are pushed to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Statement>) {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Header { buf, have } => {
                    let n = (5 - *have).min(chunk.len());
                    buf[*have..*have + n].copy_from_slice(&chunk[..n]);
                    *have += n;
                    chunk = &chunk[n..];
                    if *have == 5 {
                        let tag = buf[0];
                        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                        let total = usize::try_from(len).unwrap_or(4).saturating_sub(4);
                        let capture = matches!(tag, b'Q' | b'P' | b'B' | b'E')
                            .then(|| Vec::with_capacity(total.min(self.limit)));
                        self.state = State::Body {
                            tag,
                            remaining: total,
                            total,
                            capture,
                        };
                        self.finish_if_done(out);
                    }
                }
                State::Body {
                    remaining, capture, ..
                } => {
                    let n = (*remaining).min(chunk.len());
                    if let Some(c) = capture {
                        let room = self.limit.saturating_sub(c.len()).min(n);
                        c.extend_from_slice(&chunk[..room]);
                    }
                    *remaining -= n;
                    chunk = &chunk[n..];
                    self.finish_if_done(out);
                }
            }
        }
    }

    fn finish_if_done(&mut self, out: &mut Vec<Statement>) {
        if let State::Body {
            tag,
            remaining: 0,
            total,
            capture,
        } = &mut self.state
        {
            if let Some(body) = capture.take() {
                let truncated = *total > body.len();
                out.extend(decode(*tag, &body, truncated));
            }
            self.state = State::Header {
                buf: [0; 5],
                have: 0,
            };
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Up to the first NUL, or everything when the frame was cut before it.
fn leading(b: &[u8]) -> (&[u8], &[u8]) {
    cstr(b).unwrap_or((b, &[]))
}

fn decode(tag: u8, body: &[u8], truncated: bool) -> Option<Statement> {
    let st = |kind, text, params| Statement {
        kind,
        text,
        params,
        truncated,
    };
    match tag {
        b'Q' => Some(st("query", text(leading(body).0), None)),
        b'P' => {
            let (_, rest) = leading(body);
            Some(st("parse", text(leading(rest).0), None))
        }
        b'B' => {
            let (_portal, rest) = leading(body);
            let (name, rest) = leading(rest);
            Some(st("bind", text(name), Some(bind_params(rest))))
        }
        b'E' => Some(st("execute", text(leading(body).0), None)),
        _ => None,
    }
}

/// The parameters of a `Bind` body after the portal and statement names; as many as the
/// (possibly truncated) body holds.
fn bind_params(b: &[u8]) -> Vec<Option<String>> {
    let mut r = Reader(b);
    let mut out = Vec::new();
    let Some(nfmt) = r.i16() else { return out };
    let mut formats = Vec::new();
    for _ in 0..nfmt {
        match r.i16() {
            Some(f) => formats.push(f),
            None => return out,
        }
    }
    let Some(n) = r.i16() else { return out };
    for i in 0..usize::try_from(n).unwrap_or(0) {
        let Some(len) = r.i32() else { return out };
        if len < 0 {
            out.push(None);
            continue;
        }
        let want = usize::try_from(len).unwrap_or(0);
        let bytes = r.take(want);
        let binary = match formats.len() {
            0 => false,
            1 => formats[0] == 1,
            _ => formats.get(i) == Some(&1),
        };
        out.push(Some(if binary {
            format!("\\x{}", hex::encode(bytes))
        } else {
            text(bytes)
        }));
        if bytes.len() < want {
            return out;
        }
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn i16(&mut self) -> Option<i16> {
        let b = self.take(2);
        Some(i16::from_be_bytes(b.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4);
        Some(i32::from_be_bytes(b.try_into().ok()?))
    }
}

/// Follows message boundaries in the server→client stream (nothing is captured), so the
/// gateway's own `ErrorResponse` is never written into the middle of a message.
#[derive(Debug, Default)]
pub struct Frames {
    header: usize,
    len: [u8; 4],
    remaining: usize,
}

impl Frames {
    pub fn at_boundary(&self) -> bool {
        self.header == 0 && self.remaining == 0
    }

    /// Consumes `chunk` up to the first message boundary reached (or all of it); returns
    /// how many bytes that was.
    pub fn advance(&mut self, chunk: &[u8]) -> usize {
        let mut used = 0;
        while used < chunk.len() {
            if self.remaining > 0 {
                let n = self.remaining.min(chunk.len() - used);
                self.remaining -= n;
                used += n;
                if self.remaining == 0 {
                    return used;
                }
                continue;
            }
            // Header: tag then four length bytes.
            if self.header > 0 {
                self.len[self.header - 1] = chunk[used];
            }
            self.header += 1;
            used += 1;
            if self.header == 5 {
                self.header = 0;
                let len = i32::from_be_bytes(self.len);
                self.remaining = usize::try_from(len).unwrap_or(4).saturating_sub(4);
                if self.remaining == 0 {
                    return used;
                }
            }
        }
        used
    }

    /// Consumes all of `chunk`.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let n = self.advance(chunk);
            chunk = &chunk[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;

    fn stream() -> BytesMut {
        let mut b = BytesMut::new();
        frontend::query("SELECT 1", &mut b).unwrap_or_default();
        frontend::parse("s1", "SELECT $1::int, $2::text", [23, 25], &mut b).unwrap_or_default();
        frontend::sync(&mut b);
        b
    }

    #[test]
    fn statements_are_found_whatever_the_chunking() {
        let b = stream();
        let mut whole = Vec::new();
        Scanner::new(1024).feed(&b, &mut whole);
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].text, "SELECT 1");
        assert_eq!(whole[1].kind, "parse");
        assert_eq!(whole[1].text, "SELECT $1::int, $2::text");
        for size in 1..b.len() {
            let mut out = Vec::new();
            let mut s = Scanner::new(1024);
            for c in b.chunks(size) {
                s.feed(c, &mut out);
            }
            assert_eq!(out, whole, "chunks of {size}");
        }
    }

    #[test]
    fn long_statements_are_truncated() {
        let mut b = BytesMut::new();
        let long = "x".repeat(100);
        frontend::query(&long, &mut b).unwrap_or_default();
        frontend::query("SELECT 2", &mut b).unwrap_or_default();
        let mut out = Vec::new();
        Scanner::new(10).feed(&b, &mut out);
        assert_eq!(out[0].text, "x".repeat(10));
        assert!(out[0].truncated);
        assert_eq!(out[1].text, "SELECT 2");
    }

    #[test]
    fn frames_find_boundaries_across_chunks() {
        let b = stream();
        for size in 1..b.len() {
            let mut f = Frames::default();
            let mut boundaries = 0;
            let mut pos = 0;
            for c in b.chunks(size) {
                let mut c = c;
                while !c.is_empty() {
                    let n = f.advance(c);
                    pos += n;
                    c = &c[n..];
                    if f.at_boundary() {
                        boundaries += 1;
                    }
                }
            }
            assert_eq!(pos, b.len());
            assert_eq!(boundaries, 3, "chunks of {size}");
        }
    }
}
