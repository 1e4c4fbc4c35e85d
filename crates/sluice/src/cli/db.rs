//! `sluice db …`: the PostgreSQL gateway from the command line.

use clap::Subcommand;

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
    /// Gateway databases: this server's config file's and those declared through the API
    /// (administrators and auditors).
    Databases,
    /// Declare (or replace) a gateway database through the API (administrators; audited).
    /// Every instance's gateway serves it at once.
    Declare {
        /// The name clients connect to (`dbname=NAME`) and the resource `db:NAME`.
        name: String,
        /// The upstream: `HOST[:PORT]/DBNAME`.
        #[arg(long)]
        upstream: String,
        /// A role per action, weakest first: `ACTION=USER:ENV_VAR`, the variable (under
        /// `SLUICE_DB_`, exported to every server) holding USER's password. Repeat.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// `session-log` (default) or `strict` (each statement an audit entry first).
        #[arg(long, default_value = "session-log", value_parser = ["session-log", "strict"])]
        log: String,
        /// Statements and parameters are recorded up to this many bytes.
        #[arg(long, default_value_t = 4096)]
        max_statement_bytes: usize,
    },
    /// Remove a database declared through the API (administrators; audited). Live sessions
    /// run on until their grants end.
    Remove {
        /// The database's name.
        name: String,
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

/// `sluice gateway …`: the HTTP gateway.
#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Recent calls to one service through the HTTP gateway, and those it refused (yours;
    /// all for administrators and auditors), oldest first, from its audited call log.
    Calls {
        /// The service (`payments-admin` for `http:payments-admin`).
        #[arg(long)]
        service: String,
        /// At most this many, the newest.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}
