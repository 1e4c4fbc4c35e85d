//! An upgraded connection (a WebSocket): once the upstream answered `101 Switching
//! Protocols` to the call the gateway decided and recorded, both connections are handed over
//! by hyper and their bytes copied each way, as they are, until either side closes or the
//! grant ends (then both are closed at once). The gateway does not read the protocol spoken:
//! what it decided is the upgrade request, `GET /path` on `http:<service>`.

use crate::record::Call;
use crate::Watch;
use hyper_util::rt::TokioIo;
use sluice_server::gateway::http_live::LiveCall;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Splices the caller's connection to the upstream's in a task of its own, once hyper hands
/// both over (after the `101` reaches the caller). The call's result is recorded when it ends.
pub(crate) fn splice(
    mut call: Call,
    live: Arc<LiveCall>,
    mut watching: Watch,
    upstream: reqwest::Response,
    caller: hyper::upgrade::OnUpgrade,
) {
    live.websocket.store(true, Ordering::Relaxed);
    call.outcome = "upgrade not completed".into();
    tokio::spawn(async move {
        let both = async {
            let caller = caller.await.map_err(|e| format!("caller side: {e}"))?;
            let upstream = upstream
                .upgrade()
                .await
                .map_err(|e| format!("upstream side: {e}"))?;
            Ok::<_, String>((caller, upstream))
        };
        let (caller, upstream) = tokio::select! {
            biased;
            (reason, _) = &mut watching => {
                call.ends(format!("cut: {reason}"));
                return;
            }
            both = both => match both {
                Ok(both) => both,
                Err(e) => {
                    call.ends(format!("upgrade failed: {e}"));
                    return;
                }
            },
        };
        let mut caller = Counted {
            io: TokioIo::new(caller),
            read: live.bytes_in.clone(),
        };
        let mut upstream = Counted {
            io: upstream,
            read: live.bytes_out.clone(),
        };
        tokio::select! {
            biased;
            (reason, message) = &mut watching => {
                tracing::info!(call = %call.id, grant_id = %call.grant_id, "http call {} (upgraded) cut: {message}", call.id);
                call.ends(format!("cut: {reason}"));
            }
            copied = tokio::io::copy_bidirectional(&mut caller, &mut upstream) => {
                call.ends(match copied {
                    Ok(_) => "completed".into(),
                    Err(e) => format!("connection failed: {e}"),
                });
            }
        }
        // Dropping both ends closes both connections; dropping the call records it.
    });
}

/// A connection whose bytes read are counted as they pass.
struct Counted<T> {
    io: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
