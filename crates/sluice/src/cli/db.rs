//! `sluice db …`: the PostgreSQL gateway from the command line; `sluice gateway …`: the HTTP
//! gateway.

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
    /// The services the HTTP gateway fronts: this server's config file's and those declared
    /// through the API (administrators and auditors). Credentials are shown by their source
    /// only (`env:VAR`, `file:NAME`), never their value.
    Services,
    /// Declare (or replace) a service through the API (administrators; audited as
    /// `http.service.declared`). Every instance's gateway serves it at once, without a
    /// restart; a name declared in a config file is refused (change it there).
    #[command(after_help = "Example:\n  \
        export SLUICE_HTTP_PAYMENTS=\"Bearer …\"   # on every server, before it starts\n  \
        sluice gateway declare payments-admin --upstream http://10.0.0.7:8080 \\\n      \
        --credential-env SLUICE_HTTP_PAYMENTS --timeout 10s --max-body-bytes 65536\n\n\
        Callers then reach it as http://GATEWAY/payments-admin/…, decided as `METHOD path` on \
        the resource http:payments-admin.")]
    Declare {
        /// The service: callers reach `/NAME/…` and it is the resource `http:NAME`.
        name: String,
        /// The upstream's base URL (`http://10.0.0.7:8080`, or with a path prefix).
        #[arg(long)]
        upstream: String,
        /// The header the upstream reads the credential from.
        #[arg(long, default_value = "authorization")]
        credential_header: String,
        /// The environment variable (under `SLUICE_HTTP_`, exported to every server) holding
        /// the header's whole value, e.g. `Bearer …`.
        #[arg(long, conflicts_with = "credential_file")]
        credential_env: Option<String>,
        /// A file name in the servers' `--http-credentials-dir` holding the header's value.
        #[arg(long)]
        credential_file: Option<String>,
        /// Longest wait for the upstream's response headers.
        #[arg(long, default_value = "30s")]
        timeout: String,
        /// Largest request body forwarded, in bytes.
        #[arg(long, default_value_t = 1024 * 1024)]
        max_body_bytes: u64,
        /// `before`: each call is in the audit trail before it is forwarded (fail-closed);
        /// `after`: recorded once its response is over, best effort (for busy read APIs).
        #[arg(long, default_value = "before", value_parser = ["before", "after"])]
        audit: String,
    },
    /// Remove a service declared through the API (administrators; audited). Calls in
    /// progress run on until their grants end; no new one is admitted.
    Remove {
        /// The service's name.
        name: String,
    },
    /// Calls in progress through the HTTP gateway — responses being relayed, WebSockets
    /// open — with their grant and the time it has left (yours; all for administrators and
    /// auditors). Listed by the server you ask, for its own gateway.
    Sessions,
    /// End a call in progress now (administrators; audited as `http.call.killed`): its
    /// response or WebSocket is cut at once.
    Kill {
        /// The call id (`htc-…`), as `sluice gateway sessions` lists it.
        id: String,
    },
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
