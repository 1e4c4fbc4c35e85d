//! `sluice db …`: the PostgreSQL gateway's sessions from the command line, and the `psql`
//! command line to connect through it; `sluice gateway …`: the HTTP gateway's services, calls
//! in progress and recent calls.

use crate::cli::{DbCommand, GatewayCommand, Remote};
use crate::client::{client, endpoint, NO_BODY};
use crate::output::{emit, opt, stamp, table, when_at};
use reqwest::Method;
use serde_json::Value;
use sluice_api::gateway::{
    DatabaseConfig, DatabaseList, Declared, Killed, LogMode, PasswordIssued, Removed, RoleConfig,
    SessionDetail, SessionList, UpstreamConfig,
};
use sluice_api::http_gateway::{
    AuditMode, CallList, CredentialConfig, LiveCallList, ServiceConfig, ServiceList,
};

pub async fn db(cmd: DbCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        DbCommand::Sessions { all } => {
            let path = endpoint(
                &["v1", "db", "sessions"],
                &[("all", all.then(|| "true".into()))],
            );
            let v: SessionList = c.send(Method::GET, &path, NO_BODY).await?;
            emit(r.output, &v, sessions_table)
        }
        DbCommand::Session { id } => {
            let v: SessionDetail = c
                .send(
                    Method::GET,
                    &endpoint(&["v1", "db", "sessions", &id], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, show)
        }
        DbCommand::Kill { id } => {
            let v: Killed = c
                .send(
                    Method::POST,
                    &endpoint(&["v1", "db", "sessions", &id, "kill"], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |_| outln!("killed {id}"))
        }
        DbCommand::Databases => {
            let v: DatabaseList = c.send(Method::GET, "/v1/db/databases", NO_BODY).await?;
            emit(r.output, &v, databases_table)
        }
        DbCommand::Declare {
            name,
            upstream,
            roles,
            log,
            max_statement_bytes,
        } => {
            let body = declaration(&name, &upstream, &roles, &log, max_statement_bytes)?;
            let v: Declared = c
                .send(
                    Method::PUT,
                    &endpoint(&["v1", "db", "databases", &name], &[]),
                    Some(&body),
                )
                .await?;
            emit(r.output, &v, |v| {
                let verb = if v.created { "declared" } else { "re-declared" };
                outln!("{verb} db:{name}; every gateway serves it now");
            })
        }
        DbCommand::Remove { name } => {
            let v: Removed = c
                .send(
                    Method::DELETE,
                    &endpoint(&["v1", "db", "databases", &name], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |_| outln!("removed db:{name}"))
        }
        DbCommand::Connect {
            name,
            pg,
            ttl,
            exec,
            psql_args,
        } => {
            let body = ttl.map(|t| serde_json::json!({ "ttl": t }));
            let v: PasswordIssued = c
                .send(
                    Method::POST,
                    &endpoint(&["v1", "db", &name, "password"], &[]),
                    body.as_ref(),
                )
                .await?;
            let addr = match pg {
                Some(a) => a,
                None => gateway_address(&v, &r.addr)?,
            };
            let (host, port) = split_addr(&addr);
            let conninfo = format!(
                "host={host} port={port} dbname={} user={} sslmode=require",
                v.database, v.user
            );
            let password = v.password.clone();
            if exec {
                // psql replaces this process: Ctrl-C reaches it alone (and cancels the query).
                use std::os::unix::process::CommandExt;
                let e = std::process::Command::new("psql")
                    .arg(&conninfo)
                    .args(&psql_args)
                    .env("PGPASSWORD", &password)
                    .exec();
                anyhow::bail!("cannot run psql: {e}; is PostgreSQL's client installed?");
            }
            if r.output == crate::cli::Output::Json {
                let mut v = serde_json::to_value(&v)?;
                v["psql"] = Value::String(format!("psql \"{conninfo}\""));
                return emit(r.output, &v, |_| {});
            }
            eprintln!(
                "# a connection password for db:{} under grant {}: it opens sessions until {} ({});\n# each session lasts as long as the grant.",
                v.database,
                v.grant_id,
                stamp(Some(v.expires_at)),
                when_at(Some(v.expires_at))
            );
            let extra: String = psql_args
                .iter()
                .map(|a| format!(" '{}'", a.replace('\'', "'\\''")))
                .collect();
            outln!("PGPASSWORD='{password}' psql \"{conninfo}\"{extra}");
            Ok(())
        }
    }
}

pub async fn gateway(cmd: GatewayCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        GatewayCommand::Calls { service, limit } => {
            let path = endpoint(
                &["v1", "http", "calls"],
                &[
                    ("service", Some(service)),
                    ("limit", Some(limit.to_string())),
                ],
            );
            let v: CallList = c.send(Method::GET, &path, NO_BODY).await?;
            emit(r.output, &v, calls_table)
        }
        GatewayCommand::Services => {
            let v: ServiceList = c.send(Method::GET, "/v1/http/services", NO_BODY).await?;
            emit(r.output, &v, services_table)
        }
        GatewayCommand::Declare {
            name,
            upstream,
            credential_header,
            credential_env,
            credential_file,
            timeout,
            max_body_bytes,
            audit,
        } => {
            let credential =
                (credential_env.is_some() || credential_file.is_some()).then(|| CredentialConfig {
                    header: credential_header,
                    value_env: credential_env,
                    value_file: credential_file.map(Into::into),
                });
            let body = ServiceConfig {
                name: name.clone(),
                upstream,
                credential,
                audit: if audit == "after" {
                    AuditMode::After
                } else {
                    AuditMode::Before
                },
                timeout: sluice_core::duration::Duration::parse(&timeout)
                    .map_err(|e| anyhow::anyhow!("--timeout: {e}"))?,
                max_body_bytes,
            };
            let v: Declared = c
                .send(
                    Method::PUT,
                    &endpoint(&["v1", "http", "services", &name], &[]),
                    Some(&body),
                )
                .await?;
            emit(r.output, &v, |v| {
                let verb = if v.created { "declared" } else { "re-declared" };
                outln!("{verb} http:{name}; every HTTP gateway serves it now");
            })
        }
        GatewayCommand::Remove { name } => {
            let v: Removed = c
                .send(
                    Method::DELETE,
                    &endpoint(&["v1", "http", "services", &name], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |_| outln!("removed http:{name}"))
        }
        GatewayCommand::Sessions => {
            let v: LiveCallList = c.send(Method::GET, "/v1/http/sessions", NO_BODY).await?;
            emit(r.output, &v, live_table)
        }
        GatewayCommand::Kill { id } => {
            let v: Killed = c
                .send(
                    Method::POST,
                    &endpoint(&["v1", "http", "sessions", &id, "kill"], &[]),
                    NO_BODY,
                )
                .await?;
            emit(r.output, &v, |_| outln!("killed {id}"))
        }
    }
}

fn services_table(v: &ServiceList) {
    let rows = v
        .services
        .iter()
        .map(|s| {
            let x = &s.spec;
            let credential = match &x.credential {
                None => "-".to_owned(),
                Some(c) => match (&c.value_env, &c.value_file) {
                    (Some(var), _) => format!("{}: env:{var}", c.header),
                    (None, Some(f)) => format!("{}: file:{}", c.header, f.display()),
                    (None, None) => c.header.clone(),
                },
            };
            vec![
                format!("http:{}", x.name),
                x.upstream.clone(),
                credential,
                x.audit.as_str().to_owned(),
                format!("{} / {} B", x.timeout, x.max_body_bytes),
                s.declared_in.as_str().to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "service",
            "upstream",
            "credential",
            "audit",
            "timeout / body",
            "declared in",
        ],
        rows,
    );
}

fn live_table(v: &LiveCallList) {
    let rows = v
        .calls
        .iter()
        .map(|x| {
            vec![
                x.id.clone(),
                x.principal.clone(),
                format!("http:{}", x.service),
                format!(
                    "{} {}{}",
                    x.method,
                    x.path,
                    if x.websocket { " (websocket)" } else { "" }
                ),
                x.grant_id.clone(),
                stamp(Some(x.started_at)),
                when_at(Some(x.expires_at)),
            ]
        })
        .collect();
    table(
        &["id", "who", "service", "call", "grant", "started", "ends"],
        rows,
    );
}

fn calls_table(v: &CallList) {
    let rows = v
        .calls
        .iter()
        .map(|x| {
            vec![
                stamp(Some(x.at)),
                x.principal.clone(),
                format!("{} {}", x.method, x.path),
                x.status.to_string(),
                format!("{} ms", x.duration_ms),
                format!("{}/{}", x.bytes_in, x.bytes_out),
                x.grant_id.clone(),
                x.outcome.clone(),
            ]
        })
        .collect();
    table(
        &[
            "at",
            "who",
            "call",
            "status",
            "took",
            "bytes in/out",
            "grant",
            "outcome",
        ],
        rows,
    );
}

/// Where to reach the gateway: the address the server reports, with an unspecified host
/// (`0.0.0.0`, `[::]`) replaced by the host the CLI reaches the server at.
fn gateway_address(v: &PasswordIssued, server: &str) -> anyhow::Result<String> {
    let Some(listening) = v.gateway.as_ref().map(|g| g.address.as_str()) else {
        anyhow::bail!(
            "the server at {server} runs no PostgreSQL gateway; pass --pg HOST:PORT (or SLUICE_PG_ADDR) of one that does"
        );
    };
    let (host, port) = split_addr(listening);
    let unspecified = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified());
    if !unspecified {
        return Ok(listening.to_owned());
    }
    let base = server
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let base = base.split('/').next().unwrap_or(base);
    let (server_host, _) = split_addr(base);
    Ok(format!("{server_host}:{port}"))
}

/// `host:port` (or `[v6]:port`) → (host without brackets, port); port 6432 when absent.
fn split_addr(addr: &str) -> (&str, &str) {
    match addr.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h.trim_matches(|c| c == '[' || c == ']'), p)
        }
        _ => (addr.trim_matches(|c| c == '[' || c == ']'), "6432"),
    }
}

fn sessions_table(v: &SessionList) {
    let rows = v
        .sessions
        .iter()
        .map(|x| {
            vec![
                x.id.clone(),
                x.principal.clone(),
                format!("db:{}", x.database),
                format!("{} as {}", x.action, x.role),
                x.statements.to_string(),
                if x.live {
                    format!("ends {}", when_at(Some(x.expires_at)))
                } else {
                    format!(
                        "ended {}: {}",
                        when_at(x.ended_at),
                        opt(x.end_reason.as_deref())
                    )
                },
            ]
        })
        .collect();
    table(
        &["id", "who", "database", "access", "statements", "when"],
        rows,
    );
}

fn show(v: &SessionDetail) {
    let x = &v.session;
    outln!("session     {}", x.id);
    outln!("who         {} from {}", x.principal, x.client_addr);
    outln!(
        "access      {} on db:{} as role {} under grant {}",
        x.action,
        x.database,
        x.role,
        x.grant_id
    );
    outln!("started     {}", stamp(Some(x.started_at)));
    if x.live {
        outln!(
            "ends        {} ({})",
            stamp(Some(x.expires_at)),
            when_at(Some(x.expires_at))
        );
    } else if let Some(ended) = x.ended_at {
        outln!(
            "ended       {}: {}",
            stamp(Some(ended)),
            opt(x.end_reason.as_deref())
        );
        outln!("log hash    {}", opt(x.log_hash.as_deref()));
    }
    outln!(
        "traffic     {} statements, {} bytes in, {} bytes out",
        x.statements,
        x.bytes_in,
        x.bytes_out
    );
    for st in &v.statements {
        let params = match &st.params {
            None | Some(Value::Null) => String::new(),
            Some(p) => format!("  params {p}"),
        };
        outln!(
            "{:>4}  {}  {:<7}  {}{params}",
            st.seq,
            stamp(Some(st.at)),
            st.kind.as_str(),
            st.text
        );
    }
}

/// The API body of `db declare` from its options.
fn declaration(
    name: &str,
    upstream: &str,
    roles: &[String],
    log: &str,
    max_statement_bytes: usize,
) -> anyhow::Result<DatabaseConfig> {
    let log = match log {
        "session-log" => LogMode::SessionLog,
        "strict" => LogMode::Strict,
        other => anyhow::bail!("--log is `session-log` or `strict`, not `{other}`"),
    };
    let (hostport, dbname) = upstream
        .split_once('/')
        .filter(|(h, d)| !h.is_empty() && !d.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!("--upstream is HOST[:PORT]/DBNAME, e.g. 10.0.0.5:5432/orders")
        })?;
    let (host, port) = split_addr(hostport);
    let port: u16 = if hostport.contains(':') {
        port.parse()
            .map_err(|_| anyhow::anyhow!("--upstream: `{port}` is not a port"))?
    } else {
        5432
    };
    let roles = roles
        .iter()
        .map(|r| {
            let (action, rest) = r.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--role is ACTION=USER:ENV_VAR (e.g. read=orders_reader:SLUICE_DB_ORDERS_READER), not `{r}`")
            })?;
            let (user, var) = rest.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("--role `{r}`: name the variable holding the password: ACTION=USER:ENV_VAR")
            })?;
            Ok(RoleConfig {
                action: action.to_owned(),
                user: user.to_owned(),
                password_env: Some(var.to_owned()),
                password_file: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(DatabaseConfig {
        name: name.to_owned(),
        upstream: UpstreamConfig {
            host: host.to_owned(),
            port,
            dbname: dbname.to_owned(),
        },
        roles,
        log,
        max_statement_bytes,
    })
}

fn databases_table(v: &DatabaseList) {
    let rows = v
        .databases
        .iter()
        .map(|d| {
            let (db, up) = (&d.spec, &d.spec.upstream);
            let roles: Vec<String> = db
                .roles
                .iter()
                .map(|r| format!("{}={}", r.action, r.user))
                .collect();
            vec![
                format!("db:{}", db.name),
                format!("{}:{}/{}", up.host, up.port, up.dbname),
                roles.join(", "),
                db.log.as_str().to_owned(),
                d.declared_in.as_str().to_owned(),
            ]
        })
        .collect();
    table(
        &["database", "upstream", "roles", "log", "declared in"],
        rows,
    );
}
