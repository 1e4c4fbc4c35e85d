//! PostgreSQL wire protocol (v3) framing: the startup packet, whole messages during the
//! handshake, and the few backend messages the gateway writes itself. The frontend messages
//! Sluice sends upstream are built with `postgres_protocol::message::frontend`.

use bytes::{BufMut, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

pub const PROTOCOL_3: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// Startup packets and handshake messages are small; anything larger is refused.
const MAX_HANDSHAKE: usize = 64 * 1024;

/// The first packet of a connection.
#[derive(Debug)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel { pid: i32, secret: i32 },
    Params(Vec<(String, String)>),
    Unsupported(i32),
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

pub async fn read_startup<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Startup> {
    let len = r.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| invalid("bad startup length"))?;
    if !(8..=MAX_HANDSHAKE).contains(&len) {
        return Err(invalid("bad startup length"));
    }
    let mut body = vec![0u8; len - 4];
    r.read_exact(&mut body).await?;
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let rest = &body[4..];
    Ok(match code {
        SSL_REQUEST => Startup::Ssl,
        GSSENC_REQUEST => Startup::GssEnc,
        CANCEL_REQUEST if rest.len() >= 8 => Startup::Cancel {
            pid: i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            secret: i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]),
        },
        PROTOCOL_3 => {
            let mut params = Vec::new();
            let mut fields = rest.split(|b| *b == 0);
            while let Some(k) = fields.next() {
                if k.is_empty() {
                    break;
                }
                let v = fields.next().unwrap_or_default();
                params.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
            Startup::Params(params)
        }
        other => Startup::Unsupported(other),
    })
}

/// Reads one whole message (tag, body) during the handshake.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(u8, BytesMut)> {
    let tag = r.read_u8().await?;
    let len = r.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| invalid("bad message length"))?;
    if !(4..=MAX_HANDSHAKE).contains(&len) {
        return Err(invalid("bad message length"));
    }
    let mut body = BytesMut::zeroed(len - 4);
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Appends one message (tag, body) to `out`.
pub fn message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
}

pub fn auth_cleartext(out: &mut BytesMut) {
    message(out, b'R', &3i32.to_be_bytes());
}

pub fn auth_ok(out: &mut BytesMut) {
    message(out, b'R', &0i32.to_be_bytes());
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&pid.to_be_bytes());
    b[4..].copy_from_slice(&secret.to_be_bytes());
    message(out, b'K', &b);
}

/// An `ErrorResponse`: severity (`ERROR`/`FATAL`), SQLSTATE, message and an optional hint.
pub fn error(out: &mut BytesMut, severity: &str, code: &str, msg: &str, hint: Option<&str>) {
    let mut body = BytesMut::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', msg),
    ] {
        body.put_u8(field);
        body.put_slice(value.as_bytes());
        body.put_u8(0);
    }
    if let Some(h) = hint {
        body.put_u8(b'H');
        body.put_slice(h.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    message(out, b'E', &body);
}

/// The `M` (message) and `C` (code) fields of an `ErrorResponse` body.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    for field in body.split(|b| *b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
            Some((b'M', v)) => msg = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    (code, msg)
}

/// A NUL-terminated string at the start of `b`, and the rest.
pub fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|c| *c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}
