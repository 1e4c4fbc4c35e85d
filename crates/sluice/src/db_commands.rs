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
    /// Print the `psql` command line that connects to NAME through the gateway.
    Connect {
        /// The database as declared in the gateway's `databases:` (resource `db:NAME`).
        name: String,
        /// The gateway's address (`sluice serve --pg-listen`).
        #[arg(long, env = "SLUICE_PG_ADDR", default_value = "127.0.0.1:6432")]
        pg: String,
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
        DbCommand::Connect { name, pg } => {
            let me = c.call(Method::GET, "/v1/whoami", None).await?;
            let (host, port) = pg.rsplit_once(':').unwrap_or((pg.as_str(), "6432"));
            outln!(
                "PGPASSWORD=\"$SLUICE_TOKEN\" psql \"host={host} port={port} dbname={name} user={} sslmode=require\"",
                s(&me["name"])
            );
            Ok(())
        }
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
