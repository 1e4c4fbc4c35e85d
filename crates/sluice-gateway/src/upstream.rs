//! The upstream side: connect to the real PostgreSQL as the role the grant allows,
//! authenticate (SCRAM-SHA-256, MD5 or cleartext, as the server asks), and collect what the
//! client must see before its first query.

use crate::config::{DatabaseConfig, Password, RoleConfig, RoleConfigExt};
use crate::wire;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Why the upstream connection failed. Shown to operators (logs), never to the client: it
/// may name the role.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("upstream refused role {role}: {code} {message}")]
    Refused {
        role: String,
        code: String,
        message: String,
    },
    #[error("upstream asked for an unsupported authentication method {0}")]
    Method(i32),
    #[error("password of role {role}: {reason}")]
    Password { role: String, reason: String },
    #[error("upstream protocol: {0}")]
    Protocol(String),
}

/// A connected, authenticated upstream session, ready for the client's first query.
pub struct Upstream {
    pub stream: TcpStream,
    /// `ParameterStatus` messages and the final `ReadyForQuery`, as the server sent them.
    pub greeting: BytesMut,
    /// The server's own cancellation key.
    pub pid: i32,
    pub secret: i32,
}

/// Client startup parameters passed on; everything else (notably `options`, which could
/// set a role or settings behind the grant's back) is dropped.
const FORWARDED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
    "search_path",
];

pub async fn connect(
    db: &DatabaseConfig,
    role: &RoleConfig,
    client_params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let addr = format!("{}:{}", db.upstream.host, db.upstream.port);
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
        .await
        .map_err(|_| {
            UpstreamError::Connect(
                addr.clone(),
                std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"),
            )
        })?
        .map_err(|e| UpstreamError::Connect(addr.clone(), e))?;
    stream.set_nodelay(true)?;
    let password = role.password().map_err(|reason| UpstreamError::Password {
        role: role.user.clone(),
        reason,
    })?;
    tokio::time::timeout(
        Duration::from_secs(10),
        handshake(stream, db, role, &password, client_params),
    )
    .await
    .map_err(|_| UpstreamError::Protocol("handshake timed out".into()))?
}

async fn handshake(
    mut stream: TcpStream,
    db: &DatabaseConfig,
    role: &RoleConfig,
    password: &Password,
    client_params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let mut params: Vec<(&str, &str)> = vec![
        ("user", role.user.as_str()),
        ("database", db.upstream.dbname.as_str()),
    ];
    for (k, v) in client_params {
        if FORWARDED.contains(&k.as_str()) {
            params.push((k, v));
        }
    }
    let mut buf = BytesMut::new();
    frontend::startup_message(params.iter().copied(), &mut buf)?;
    stream.write_all(&buf).await?;
    let mut scram: Option<ScramSha256> = None;
    let mut greeting = BytesMut::new();
    let (mut pid, mut secret) = (0, 0);
    loop {
        let (tag, body) = wire::read_message(&mut stream).await?;
        buf.clear();
        match tag {
            b'R' => {
                let code = read_i32(&body, 0)?;
                match code {
                    0 => {}
                    3 => {
                        frontend::password_message(password.expose(), &mut buf)?;
                    }
                    5 => {
                        let salt: [u8; 4] = body
                            .get(4..8)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| UpstreamError::Protocol("short MD5 salt".into()))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            role.user.as_bytes(),
                            password.expose(),
                            salt,
                        );
                        frontend::password_message(hash.as_bytes(), &mut buf)?;
                    }
                    10 => {
                        let mechanisms = &body[4..];
                        if !mechanisms.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                            return Err(UpstreamError::Protocol(
                                "upstream offers no SCRAM-SHA-256".into(),
                            ));
                        }
                        let s = ScramSha256::new(password.expose(), ChannelBinding::unsupported());
                        frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut buf)?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| UpstreamError::Protocol("SASL out of order".into()))?;
                        s.update(&body[4..])?;
                        frontend::sasl_response(s.message(), &mut buf)?;
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| UpstreamError::Protocol("SASL out of order".into()))?;
                        s.finish(&body[4..])?;
                    }
                    other => return Err(UpstreamError::Method(other)),
                }
                if !buf.is_empty() {
                    stream.write_all(&buf).await?;
                }
            }
            b'S' | b'N' => wire::message(&mut greeting, tag, &body),
            b'K' => {
                pid = read_i32(&body, 0)?;
                secret = read_i32(&body, 4)?;
            }
            b'Z' => {
                wire::message(&mut greeting, tag, &body);
                return Ok(Upstream {
                    stream,
                    greeting,
                    pid,
                    secret,
                });
            }
            b'E' => {
                let (code, message) = wire::error_fields(&body);
                return Err(UpstreamError::Refused {
                    role: role.user.clone(),
                    code,
                    message,
                });
            }
            other => {
                return Err(UpstreamError::Protocol(format!(
                    "unexpected message {:?} during startup",
                    other as char
                )))
            }
        }
    }
}

fn read_i32(b: &[u8], at: usize) -> Result<i32, UpstreamError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(|| UpstreamError::Protocol("short message".into()))
}

/// Asks the upstream server to cancel whatever the backend `pid` is running.
pub async fn cancel(host: &str, port: u16, pid: i32, secret: i32) -> std::io::Result<()> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let mut buf = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut buf);
    stream.write_all(&buf).await?;
    stream.flush().await?;
    // The server closes the connection once it has read the request.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read(&mut stream, &mut sink),
    )
    .await;
    Ok(())
}
