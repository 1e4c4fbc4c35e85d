//! `sluice db …`: the PostgreSQL gateway's sessions from the command line, and the `psql`
//! command line to connect through it.

use crate::cli::Remote;
use crate::commands::{client, urlencode};
use crate::output::{emit, s, table, when};
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Live gateway sessions (yours; all for administrators and auditors).
    Sessions {
        /// Ended sessions too, newest first.
        #[arg(long)]
        all: bool,
    },
    /// One session and the statements it sent, with their times.
    Session {
        /// The session id (`pgs-…`), as `sluice db sessions` lists it.
        id: String,
    },
    /// End a live session now (administrators; audited).
    Kill {
        /// The session id (`pgs-…`).
        id: String,
    },
    /// Get a short-lived connection password for NAME and print the `psql` command line
    /// that connects through the gateway with it (or run `psql` with `--exec`). Needs a live
    /// grant on `db:NAME`; the session lasts as long as the grant, the password only opens it.
    Connect {
        /// The database as declared in the gateway's `databases:` (resource `db:NAME`).
        name: String,
        /// The gateway's address; default: where the server's gateway listens.
        #[arg(long, env = "SLUICE_PG_ADDR")]
        pg: Option<String>,
        /// How long the password may open new sessions (default 10m, at most 1h; never past
        /// the grant).
        #[arg(long)]
        ttl: Option<String>,
        /// Run `psql` now, the password in its environment, instead of printing the command.
        #[arg(long)]
        exec: bool,
        /// More arguments for `psql` (after `--`), e.g. `-- -c 'select 1'`.
        #[arg(last = true)]
        psql_args: Vec<String>,
    },
}

pub async fn db(cmd: DbCommand, r: Remote) -> anyhow::Result<()> {
    let c = client(&r);
    match cmd {
        DbCommand::Sessions { all } => {
            let path = if all {
                "/v1/db/sessions?all=true"
            } else {
                "/v1/db/sessions"
            };
            let v = c.call(Method::GET, path, None).await?;
            emit(r.output, &v, sessions_table)
        }
        DbCommand::Session { id } => {
            let v = c
                .call(
                    Method::GET,
                    &format!("/v1/db/sessions/{}", urlencode(&id)),
                    None,
                )
                .await?;
            emit(r.output, &v, show)
        }
        DbCommand::Kill { id } => {
            let v = c
                .call(
                    Method::POST,
                    &format!("/v1/db/sessions/{}/kill", urlencode(&id)),
                    None,
                )
                .await?;
            emit(r.output, &v, |_| outln!("killed {id}"))
        }
        DbCommand::Connect {
            name,
            pg,
            ttl,
            exec,
            psql_args,
        } => {
            let body = ttl.map(|t| serde_json::json!({ "ttl": t }));
            let v = c
                .call(
                    Method::POST,
                    &format!("/v1/db/{}/password", urlencode(&name)),
                    body,
                )
                .await?;
            let addr = match pg {
                Some(a) => a,
                None => gateway_address(&v, &r.addr)?,
            };
            let (host, port) = split_addr(&addr);
            let conninfo = format!(
                "host={host} port={port} dbname={} user={} sslmode=require",
                s(&v["database"]),
                s(&v["user"])
            );
            let password = s(&v["password"]);
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
                let mut v = v;
                v["psql"] = Value::String(format!("psql \"{conninfo}\""));
                return emit(r.output, &v, |_| {});
            }
            eprintln!(
                "# a connection password for db:{} under grant {}: it opens sessions until {} ({});\n# each session lasts as long as the grant.",
                s(&v["database"]),
                s(&v["grant_id"]),
                s(&v["expires_at"]),
                when(&v["expires_at"])
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

/// Where to reach the gateway: the address the server reports, with an unspecified host
/// (`0.0.0.0`, `[::]`) replaced by the host the CLI reaches the server at.
fn gateway_address(v: &Value, server: &str) -> anyhow::Result<String> {
    let Some(listening) = v["gateway"]["address"].as_str() else {
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

fn sessions_table(v: &Value) {
    let rows = v["sessions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        s(&x["id"]),
                        s(&x["principal"]),
                        format!("db:{}", s(&x["database"])),
                        format!("{} as {}", s(&x["action"]), s(&x["role"])),
                        s(&x["statements"]),
                        if x["live"] == Value::Bool(true) {
                            format!("ends {}", when(&x["expires_at"]))
                        } else {
                            format!("ended {}: {}", when(&x["ended_at"]), s(&x["end_reason"]))
                        },
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &["id", "who", "database", "access", "statements", "when"],
        rows,
    );
}

fn show(v: &Value) {
    let x = &v["session"];
    outln!("session     {}", s(&x["id"]));
    outln!(
        "who         {} from {}",
        s(&x["principal"]),
        s(&x["client_addr"])
    );
    outln!(
        "access      {} on db:{} as role {} under grant {}",
        s(&x["action"]),
        s(&x["database"]),
        s(&x["role"]),
        s(&x["grant_id"])
    );
    outln!("started     {}", s(&x["started_at"]));
    if x["live"] == Value::Bool(true) {
        outln!(
            "ends        {} ({})",
            s(&x["expires_at"]),
            when(&x["expires_at"])
        );
    } else if !x["ended_at"].is_null() {
        outln!("ended       {}: {}", s(&x["ended_at"]), s(&x["end_reason"]));
        outln!("log hash    {}", s(&x["log_hash"]));
    }
    outln!(
        "traffic     {} statements, {} bytes in, {} bytes out",
        s(&x["statements"]),
        s(&x["bytes_in"]),
        s(&x["bytes_out"])
    );
    for st in v["statements"].as_array().into_iter().flatten() {
        let params = if st["params"].is_null() {
            String::new()
        } else {
            format!("  params {}", st["params"])
        };
        outln!(
            "{:>4}  {}  {:<7}  {}{params}",
            s(&st["seq"]),
            s(&st["at"]),
            s(&st["kind"]),
            s(&st["text"])
        );
    }
}
