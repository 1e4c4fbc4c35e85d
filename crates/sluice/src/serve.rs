//! `sluice serve` and `sluice migrate`: settings from flags, environment, config file, defaults
//! (in that order of precedence).

use crate::cli::{LogFormat, ServeArgs};
use anyhow::Context;
use serde::Deserialize;
use sluice_core::token::{SecretToken, TokenKind};
use sluice_core::Clock;
use sluice_server::{Server, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The documented default: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// `sluice.yaml`: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    signing_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
    client_rate_limit: Option<u32>,
    public_url: Option<String>,
    /// Web pages on these origins may call OFREP (`--cors-origin`).
    #[serde(default)]
    cors_origins: Vec<String>,
    /// The longest a database statement waits for a lock held elsewhere (default 5s).
    #[serde(default, with = "humantime_serde_opt")]
    lock_timeout: Option<Duration>,
    /// The longest one PostgreSQL statement may run (default 30s).
    #[serde(default, with = "humantime_serde_opt")]
    statement_timeout: Option<Duration>,
    /// The longest a client may take to send a request header; also the idle timeout of a
    /// keep-alive connection (default 10s).
    #[serde(default, with = "humantime_serde_opt")]
    header_timeout: Option<Duration>,
    /// HTTP connections served at once (default 1000).
    max_connections: Option<usize>,
    /// On SIGTERM/Ctrl-C, how long requests in flight may finish before they are cut
    /// (default 5s).
    #[serde(default, with = "humantime_serde_opt")]
    shutdown_timeout: Option<Duration>,
    /// TLS on the API listener: certificate and key (PEM), reloaded when they change.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// Plain HTTP on an address other than loopback (behind a TLS-terminating proxy).
    #[serde(default)]
    allow_plain_http: bool,
    /// Every signed checkpoint is appended to this file (another volume than the database).
    witness_file: Option<PathBuf>,
    /// Every signed checkpoint is POSTed as JSON to this URL.
    witness_url: Option<String>,
    /// The least time between two checkpoints signed after commits (default 0: every
    /// committed batch, coalescing under load).
    #[serde(default, with = "humantime_serde_opt")]
    checkpoint_min_gap: Option<Duration>,
    /// `audit verify` refuses an unsigned head whose newest checkpoint is older than this
    /// (default 10s; `0s` turns the check off).
    #[serde(default, with = "humantime_serde_opt")]
    unsigned_tail_bound: Option<Duration>,
    /// The PostgreSQL gateway's address; off when absent.
    pg_listen: Option<String>,
    /// The gateway's TLS certificate and key (PEM); default: a self-signed pair generated
    /// into the data directory on first start.
    pg_tls_cert: Option<PathBuf>,
    pg_tls_key: Option<PathBuf>,
    /// Accept the token over plaintext from loopback clients (default false).
    #[serde(default)]
    pg_allow_plaintext_loopback: bool,
    /// Databases served through the gateway.
    #[serde(default)]
    databases: Vec<sluice_gateway::DatabaseConfig>,
    /// The HTTP gateway's address; off when absent.
    http_gateway_listen: Option<String>,
    /// Services fronted by the HTTP gateway.
    #[serde(default)]
    http_services: Vec<sluice_http_gateway::ServiceConfig>,
    /// Where credential files named by services declared through the API are read.
    http_credentials_dir: Option<PathBuf>,
    /// Webhooks and chat messages for what the audit trail records, and reminders.
    notifications: Option<sluice_server::notify::NotifyFile>,
    /// The Prometheus rollout guards query.
    prometheus_url: Option<String>,
    /// How often rollout guards are read (default 15s).
    #[serde(default, with = "humantime_serde_opt")]
    guard_interval: Option<Duration>,
    /// Sign-in through an OpenID Connect identity provider.
    oidc: Option<sluice_server::oidc::config::OidcFile>,
}

pub struct Settings {
    pub config: ServerConfig,
    pub store: sluice_store::StoreOptions,
    pub http: sluice_server::serve::HttpOptions,
    pub audit: sluice_server::checkpointer::AuditOptions,
    /// The API listener's TLS certificate and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub gateway: Option<sluice_gateway::GatewayConfig>,
    pub http_gateway: Option<sluice_http_gateway::HttpGatewayConfig>,
    pub notify: Option<sluice_server::notify::NotifyConfig>,
    /// Rollout guards' Prometheus and interval.
    pub guards: Option<sluice_server::guards::GuardConfig>,
    pub oidc: Option<sluice_server::oidc::config::OidcConfig>,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    /// Count flag evaluations (flag insight); off only to measure what counting costs.
    pub evaluation_counts: bool,
    /// On PostgreSQL, hear other instances' commits at once (see `Server::follow_changes`).
    pub follow_changes: bool,
}

pub fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let file = match &args.config {
        Some(path) => read_config(path)?,
        None if Path::new("sluice.yaml").exists() => read_config(Path::new("sluice.yaml"))?,
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("sluice-data"));
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("--listen `{listen}` is not an address like 127.0.0.1:7070"))?;
    let tls = match (
        args.tls_cert.or(file.tls_cert),
        args.tls_key.or(file.tls_key),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => anyhow::bail!("give both --tls-cert and --tls-key (tls_cert, tls_key), or neither"),
    };
    if tls.is_none()
        && !listen.ip().is_loopback()
        && !(args.allow_plain_http || file.allow_plain_http)
    {
        anyhow::bail!(
            "refusing to serve plain HTTP on {listen}: API tokens would cross the network in \
             clear. Give --tls-cert and --tls-key, or --allow-plain-http (allow_plain_http: \
             true) when a proxy in front terminates TLS"
        );
    }
    // Checked before anything is created, so a bad value leaves nothing behind.
    let admin_token = match std::env::var("SLUICE_ADMIN_TOKEN") {
        Ok(raw) => {
            let t = SecretToken::from_presented(&raw);
            if !(t.is_well_formed() && t.kind() == Some(TokenKind::Api)) {
                anyhow::bail!(
                    "SLUICE_ADMIN_TOKEN must be `slu_api_` followed by at least 32 characters"
                );
            }
            Some(t)
        }
        Err(_) => None,
    };
    let database_url = match args.database_url.or(file.database_url) {
        Some(url) => url,
        None => {
            create_private_dir(&data_dir)
                .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
            format!("sqlite://{}", data_dir.join("sluice.db").display())
        }
    };
    let signing_key = args
        .signing_key
        .or(file.signing_key)
        .unwrap_or_else(|| data_dir.join("audit-signing.pem"));
    if let Some(parent) = signing_key.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let log_format = args
        .log_format
        .or(file.log_format)
        .unwrap_or(LogFormat::Human);
    let args_rate_limit = args.client_rate_limit.or(file.client_rate_limit);
    let gateway = match args.pg_listen.or(file.pg_listen) {
        None => None,
        Some(addr) => {
            let listen = addr.parse().with_context(|| {
                format!("--pg-listen `{addr}` is not an address like 127.0.0.1:6432")
            })?;
            let tls = match (file.pg_tls_cert, file.pg_tls_key) {
                (Some(cert), Some(key)) => sluice_gateway::TlsSource::Files { cert, key },
                (None, None) => sluice_gateway::TlsSource::SelfSigned {
                    dir: data_dir.clone(),
                },
                _ => anyhow::bail!("give both pg_tls_cert and pg_tls_key, or neither"),
            };
            for db in &file.databases {
                use sluice_server::gateway::spec::DatabaseConfigExt;
                db.validate().map_err(anyhow::Error::msg)?;
            }
            Some(sluice_gateway::GatewayConfig {
                listen,
                databases: file.databases,
                tls,
                allow_plaintext_loopback: file.pg_allow_plaintext_loopback,
            })
        }
    };
    let http_gateway = match args.http_gateway_listen.or(file.http_gateway_listen) {
        None => None,
        Some(addr) => {
            let listen = addr.parse().with_context(|| {
                format!("--http-gateway-listen `{addr}` is not an address like 127.0.0.1:8081")
            })?;
            for s in &file.http_services {
                use sluice_http_gateway::config::ServiceConfigExt;
                s.validate().map_err(anyhow::Error::msg)?;
            }
            Some(sluice_http_gateway::HttpGatewayConfig {
                listen,
                services: file.http_services,
                credentials_dir: args.http_credentials_dir.or(file.http_credentials_dir),
            })
        }
    };
    // Secrets are read now: a missing one fails the start before anything is written.
    let notify = match &file.notifications {
        Some(n) => Some(n.resolve().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let guard_interval = match args.guard_interval {
        Some(raw) => Some(
            humantime::parse_duration(&raw)
                .with_context(|| format!("--guard-interval `{raw}` is not a duration like 15s"))?,
        ),
        None => file.guard_interval,
    };
    if guard_interval.is_some_and(|d| d < Duration::from_millis(100)) {
        anyhow::bail!("--guard-interval must be at least 100ms");
    }
    let guards = match args.prometheus_url.or(file.prometheus_url) {
        Some(url) => {
            sluice_server::public_url(&url).context("--prometheus-url")?;
            Some(sluice_server::guards::GuardConfig {
                prometheus_url: url,
                interval: guard_interval.unwrap_or(sluice_server::guards::DEFAULT_INTERVAL),
            })
        }
        None => None,
    };
    let oidc = {
        let mut o = file.oidc.clone().unwrap_or_default();
        let a = args.oidc;
        o.issuer = a.oidc_issuer.or(o.issuer);
        o.client_id = a.oidc_client_id.or(o.client_id);
        if a.oidc_client_secret_file.is_some() {
            o.client_secret_env = None;
            o.client_secret_file = a.oidc_client_secret_file;
        }
        o.principal_claim = a.oidc_principal_claim.or(o.principal_claim);
        o.groups_claim = a.oidc_groups_claim.or(o.groups_claim);
        o.resolve().map_err(anyhow::Error::msg)?
    };
    let config = ServerConfig {
        listen,
        database_url,
        signing_key,
        admin_token,
        reaper_interval: Duration::from_secs(1),
        checkpoint_interval: Duration::from_secs(60),
        sync_interval: args.sync_interval.unwrap_or(Duration::from_millis(200)),
        db_clock: None,
        client_rate_limit: args_rate_limit,
        cors_origins: sluice_server::cors::BrowserOrigins::parse(if args.cors_origins.is_empty() {
            &file.cors_origins
        } else {
            &args.cors_origins
        })
        .map_err(anyhow::Error::msg)?,
        public_url: match args.public_url.or(file.public_url) {
            Some(raw) => Some(sluice_server::public_url(&raw).context("--public-url")?),
            None if tls.is_some() => Some(format!("https://{listen}")),
            None => None,
        },
    };
    let defaults = sluice_store::StoreOptions::default();
    let store = sluice_store::StoreOptions {
        lock_timeout: file.lock_timeout.unwrap_or(defaults.lock_timeout),
        statement_timeout: file.statement_timeout.unwrap_or(defaults.statement_timeout),
        pg_batch: !args.no_write_batch,
    };
    let http_defaults = sluice_server::serve::HttpOptions::default();
    let http = sluice_server::serve::HttpOptions {
        header_timeout: file.header_timeout.unwrap_or(http_defaults.header_timeout),
        max_connections: file
            .max_connections
            .unwrap_or(http_defaults.max_connections),
        drain_timeout: file.shutdown_timeout.unwrap_or(http_defaults.drain_timeout),
        // The API: HTTP/1.1 (the HTTP gateway turns HTTP/2 on for itself).
        http2: false,
    };
    let audit_defaults = sluice_server::checkpointer::AuditOptions::default();
    let witness_url = args.witness_url.or(file.witness_url);
    if let Some(url) = &witness_url {
        sluice_server::public_url(url).context("--witness-url")?;
    }
    let audit = sluice_server::checkpointer::AuditOptions {
        sign_commits: true,
        min_gap: file.checkpoint_min_gap.unwrap_or(audit_defaults.min_gap),
        unsigned_bound: match file.unsigned_tail_bound {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => audit_defaults.unsigned_bound,
        },
        witness_file: args.witness_file.or(file.witness_file),
        witness_url,
    };
    Ok(Settings {
        config,
        store,
        http,
        audit,
        tls,
        gateway,
        http_gateway,
        notify,
        guards,
        oidc,
        log_format,
        data_dir,
        evaluation_counts: !args.no_evaluation_counts,
        follow_changes: !args.no_listen,
    })
}

/// `lock_timeout: 5s` in the config file: a humantime duration.
mod humantime_serde_opt {
    use serde::Deserialize as _;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s).map(Some).map_err(|e| {
                serde::de::Error::custom(format!("`{s}` is not a duration like 5s: {e}"))
            }),
        }
    }
}

/// Creates `dir` and any missing parents with mode 0700 (an existing directory keeps its mode).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes a secret to a new file readable by its owner only (0600), replacing an old one.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    yaml_serde::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; plain text for files, pipes and log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Human => builder.init(),
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let s = settings(args)?;
    init_logs(s.log_format);
    let mut config = s.config;
    // Several instances share a PostgreSQL database: they share its clock too.
    let clock: Arc<dyn sluice_core::Clock> = if config.database_url.starts_with("postgres") {
        let c = Arc::new(sluice_server::dbclock::DbClock::new());
        config.db_clock = Some(c.clone());
        c
    } else {
        Arc::new(sluice_core::SystemClock)
    };
    // Loaded before anything is written: a bad certificate fails the start.
    let tls = match &s.tls {
        Some((cert, key)) => Some(sluice_server::tls::ReloadingTls::load(cert, key)?),
        None => None,
    };
    let mut server = Server::build_with(config, s.store, clock).await?;
    server.http = s.http;
    server.audit = s.audit;
    server.app.insight.set_enabled(s.evaluation_counts);
    server.follow_changes = s.follow_changes;
    server.tls = tls.clone();
    server.notify = s.notify;
    server.guards = s.guards;
    server.oidc = s.oidc;
    let addr = server.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    // What the command line is given: a bare address means plain HTTP.
    let client_addr = if tls.is_some() {
        format!("https://{addr}")
    } else {
        addr.to_string()
    };
    if let Some(token) = server
        .bootstrap_token
        .as_ref()
        .filter(|_| !std::io::IsTerminal::is_terminal(&std::io::stderr()))
    {
        // Not a person at a terminal: logs are collected and kept, so the token goes to a
        // file only this user can read, and the log says where.
        create_private_dir(&s.data_dir)
            .with_context(|| format!("cannot create data directory {}", s.data_dir.display()))?;
        let path = s.data_dir.join("admin-token");
        write_private_file(&path, &format!("{}\n", token.expose())).with_context(|| {
            format!(
                "cannot write the administrator's token to {}",
                path.display()
            )
        })?;
        let shown = path.display();
        tracing::info!(path = %shown, "First start: created administrator `admin`, listening on {scheme}://{addr}; its token is in {shown} (mode 0600, printed nowhere). Use it: export SLUICE_ADDR={client_addr} SLUICE_TOKEN=$(cat {shown})");
    } else if let Some(token) = &server.bootstrap_token {
        eprintln!(
            "\nFirst start: created administrator `admin`; listening on {scheme}://{addr}.\nIts token (shown only this once):\n\n    {}\n\nUse it:\n    export SLUICE_ADDR={client_addr}\n    export SLUICE_TOKEN={}\n    sluice whoami\n",
            token.expose(),
            token.expose()
        );
    } else if std::env::var_os("SLUICE_ADMIN_TOKEN").is_none() {
        tracing::info!("the administrator `admin` exists: its token was shown once, at the first start (lost? any administrator can `sluice tokens create --principal admin`, or start afresh on an empty --data-dir)");
    }
    // Signals are listened for before the server says it listens (a SIGTERM right after the
    // line must drain, not kill).
    let stop = shutdown_signal();
    tracing::info!(%addr, data_dir = %s.data_dir.display(), "sluice listening on {scheme}://{addr}");
    if let Some(tls) = &tls {
        let fingerprint = tls.fingerprint();
        tracing::info!(%fingerprint, "TLS certificate SHA-256 {fingerprint} (clients may pin it: --tls-fingerprint or SLUICE_TLS_FINGERPRINT)");
    }
    // One signal stops every listener; the server waits for the gateways' drains (each at
    // most `shutdown_timeout`) before its last checkpoint.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let on_stop = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    if let Some(gw) = s.gateway {
        let gateway = sluice_gateway::Gateway::bind(server.app.clone(), gw).await?;
        let pg = gateway.local_addr()?;
        if gateway.generated_certificate {
            eprintln!(
                "\nGenerated the gateway's self-signed TLS certificate in {}.\nIts SHA-256 fingerprint:\n\n    {}\n",
                s.data_dir.display(),
                gateway.fingerprint
            );
        }
        tracing::info!(%pg, fingerprint = %gateway.fingerprint, "PostgreSQL gateway listening on {pg} (certificate SHA-256 {})", gateway.fingerprint);
        server
            .companions
            .push(tokio::spawn(gateway.run(s.http.drain_timeout, on_stop())));
    }
    if let Some(hg) = s.http_gateway {
        let gateway = sluice_http_gateway::HttpGateway::bind(server.app.clone(), hg).await?;
        let at = gateway.local_addr()?;
        tracing::info!(%at, "HTTP gateway listening on http://{at}");
        server
            .companions
            .push(tokio::spawn(gateway.run(s.http, on_stop())));
    }
    server
        .run(async move {
            stop.await;
            let _ = stopping.send(true);
        })
        .await
}

pub async fn migrate(args: crate::cli::MigrateArgs) -> anyhow::Result<()> {
    let s = settings(ServeArgs {
        listen: None,
        data_dir: args.data_dir,
        database_url: args.database_url,
        signing_key: None,
        config: args.config,
        log_format: None,
        client_rate_limit: None,
        cors_origins: Vec::new(),
        no_evaluation_counts: false,
        no_listen: false,
        no_write_batch: false,
        sync_interval: None,
        public_url: None,
        pg_listen: None,
        http_gateway_listen: None,
        http_credentials_dir: None,
        witness_file: None,
        witness_url: None,
        tls_cert: None,
        tls_key: None,
        allow_plain_http: false,
        prometheus_url: None,
        guard_interval: None,
        oidc: Default::default(),
    })?;
    sluice_store::Store::open(&s.config.database_url).await?;
    outln!("migrations applied");
    Ok(())
}

/// `sluice store copy`: everything from one store into an empty other, then one audit entry
/// on the target recording the copy (chained, so the target still verifies).
pub async fn copy(from: &str, to: &str, output: crate::cli::Output) -> anyhow::Result<()> {
    let source = sluice_store::Store::open(from)
        .await
        .with_context(|| format!("cannot open the source {from}"))?;
    let target = sluice_store::Store::open(to)
        .await
        .with_context(|| format!("cannot open the target {to}"))?;
    let report = source.copy_into(&target).await?;
    let head = target.audit_head().await?;
    let now = sluice_core::SystemClock.now();
    let mut tx = target.begin().await?;
    tx.audit(
        now,
        sluice_store::NewEntry::new("system:copy", "store.copied")
            .details(serde_json::json!({"copied_head_seq": head.seq, "rows": report.rows})),
    )
    .await?;
    tx.commit().await?;
    let tables: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|(table, n)| serde_json::json!({"table": table, "rows": n}))
        .collect();
    let v = serde_json::json!({"tables": tables, "copied_head_seq": head.seq});
    crate::output::emit(output, &v, |_| {
        for (table, n) in &report.rows {
            outln!("{table:<20} {n:>8} rows");
        }
        outln!(
            "copied; the target's audit chain continues from seq {}",
            head.seq
        );
    })
}

/// `sluice audit rotate-key`: hands the trail's signing from the current key to `new_key`
/// (created if absent). Run with every server stopped; restart them with the new key.
pub async fn rotate_key(args: crate::cli::StoreArgs, new_key: &Path) -> anyhow::Result<()> {
    let s = settings(ServeArgs {
        listen: None,
        data_dir: args.data_dir,
        database_url: args.database_url,
        signing_key: args.signing_key,
        config: args.config,
        log_format: None,
        client_rate_limit: None,
        cors_origins: Vec::new(),
        no_evaluation_counts: false,
        no_listen: false,
        no_write_batch: false,
        sync_interval: None,
        public_url: None,
        pg_listen: None,
        http_gateway_listen: None,
        http_credentials_dir: None,
        witness_file: None,
        witness_url: None,
        tls_cert: None,
        tls_key: None,
        allow_plain_http: false,
        prometheus_url: None,
        guard_interval: None,
        oidc: Default::default(),
    })?;
    let store = sluice_store::Store::open(&s.config.database_url).await?;
    let old_path = &s.config.signing_key;
    let old = sluice_audit::AuditSigner::load_existing(old_path)?.with_context(|| {
        format!(
            "no current signing key at {}; pass --signing-key",
            old_path.display()
        )
    })?;
    let new = sluice_audit::AuditSigner::load_or_create(new_key)?;
    let rotated =
        sluice_server::audit::rotate(&store, &old, &new, sluice_core::SystemClock.now()).await?;
    store.close().await;
    outln!(
        "rotated: key {} signed entry {} naming key {}, which signed entry {}.\n\
         Restart every instance with --signing-key {} (or SLUICE_SIGNING_KEY / `signing_key:`).",
        old.verifying_key().key_id(),
        rotated.rotation_seq,
        new.verifying_key().key_id(),
        rotated.activation_seq,
        new_key.display()
    );
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C), listened for from the moment this is called: a signal that
/// arrives before the returned future is first polled is not missed (nor does it kill the
/// process, as the default action would).
fn termination() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (term, int) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match (term, int) {
                (Ok(mut t), Ok(mut i)) => tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} },
                (Ok(mut t), Err(_)) => {
                    t.recv().await;
                }
                (Err(_), Ok(mut i)) => {
                    i.recv().await;
                }
                (Err(_), Err(_)) => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The first SIGTERM or Ctrl-C starts a bounded drain (`shutdown_timeout`); a second one
/// ends the process at once. Listens from the call on, so call it before saying the server
/// listens.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    let first = termination();
    async move {
        first.await;
        // Listening again before saying so: a signal sent once the line is out is not missed.
        let again = termination();
        tokio::spawn(async move {
            again.await;
            tracing::warn!("second signal: exiting now, without draining or signing");
            std::process::exit(130);
        });
        tracing::info!("shutting down (a second SIGTERM or Ctrl-C exits at once)");
    }
}
