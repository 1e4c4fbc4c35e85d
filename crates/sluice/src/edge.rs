//! `sluice edge`: runs an edge (see `sluice_server::edge`) until SIGTERM or Ctrl-C.

use crate::cli::{EdgeArgs, LogFormat};
use anyhow::Context as _;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_server::edge::EdgeConfig;
use std::sync::Arc;

pub async fn edge(args: EdgeArgs) -> anyhow::Result<()> {
    crate::serve::init_logs(args.log_format.unwrap_or(LogFormat::Human));
    let key = SecretToken::from_presented(&args.key);
    if !key.is_well_formed() || key.kind() != Some(TokenKind::Edge) {
        anyhow::bail!(
            "--key is not an edge key (`slu_edg_…`; create one with `sluice tokens create --kind edge --env ENV`)"
        );
    }
    let upstream = sluice_server::public_url(&args.upstream)
        .with_context(|| "--upstream must be the central server's URL".to_owned())?;
    let listen: std::net::SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen `{}` is not an address like 127.0.0.1:8081",
            args.listen
        )
    })?;
    let public_url = args
        .public_url
        .as_deref()
        .map(sluice_server::public_url)
        .transpose()?;
    let mut config = EdgeConfig::new(upstream, key, args.data_dir, listen);
    config.public_url = public_url;
    config.cors_origins = sluice_server::cors::BrowserOrigins::parse(&args.cors_origins)
        .map_err(anyhow::Error::msg)?;
    if let Some(every) = args.report_interval {
        config.report_interval = every;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let stop = crate::serve::shutdown_signal();
    tracing::info!(listen = %listener.local_addr()?, upstream = %config.upstream, "edge listening on {}, following {}", listener.local_addr()?, config.upstream);
    let clock: Arc<dyn sluice_core::Clock> = Arc::new(sluice_core::SystemClock);
    sluice_server::edge::run(config, clock, listener, stop).await
}
