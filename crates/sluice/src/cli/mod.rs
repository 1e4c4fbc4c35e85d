//! Command-line definitions.

mod db;
mod flags;
mod notifications;
mod proposals;

pub use db::{DbCommand, GatewayCommand};
pub use flags::{BreachArg, ChangeArgs, FlagChangeCommand, FlagRef, RolloutCommand};
pub use notifications::NotificationCommand;
pub use proposals::ProposalCommand;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "sluice", version, about = "Temporary production access, feature flags and a tamper-evident audit trail.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Address of a running `sluice serve`.
    #[arg(
        long,
        env = "SLUICE_ADDR",
        default_value = "127.0.0.1:7070",
        global = true
    )]
    pub addr: String,
    /// API token (shown once when created).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// `table` for people, `json` for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// For an `https://` address: trust only the certificate authority in this PEM file.
    #[arg(long, env = "SLUICE_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// For an `https://` address: accept only the server certificate with this SHA-256
    /// fingerprint (`AB:CD:…`, as `sluice serve` logs it at start), whoever signed it.
    #[arg(long, env = "SLUICE_TLS_FINGERPRINT", global = true)]
    pub tls_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SQLite under ./sluice-data by default).
    Serve(Box<ServeArgs>),
    /// Run an edge: a read-only OFREP replica of the environments of its edge key, fed by the
    /// central server's change stream; it keeps serving its last snapshot (saved on disk,
    /// sealed with the key) while the central server is unreachable.
    Edge(EdgeArgs),
    /// Run the database migrations and exit.
    Migrate(MigrateArgs),
    /// Validate a policy file, show the diff and apply it.
    ///
    /// A change that takes something away — a principal (their grants and tokens with them),
    /// an entitlement, an environment or its protection — is shown and asked about first;
    /// without a terminal to ask on, it is refused unless --yes is given.
    Apply {
        /// The policy file (YAML): `sluice apply policy.yaml`, or `-f policy.yaml`.
        #[arg(value_name = "FILE", required_unless_present = "file_flag")]
        file: Option<PathBuf>,
        /// The policy file, as an option (as in `kubectl apply -f`).
        #[arg(
            short = 'f',
            long = "file",
            value_name = "FILE",
            id = "file_flag",
            conflicts_with = "file"
        )]
        file_flag: Option<PathBuf>,
        /// Validate and show the diff only.
        #[arg(long)]
        dry_run: bool,
        /// Apply without asking, even when the change removes principals, entitlements,
        /// environments or protection (for scripts).
        #[arg(long, short = 'y', conflicts_with = "dry_run")]
        yes: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Request, approve and manage temporary access.
    Access {
        #[command(subcommand)]
        command: AccessCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Read, export and verify the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Import, export, read and change feature flags per environment.
    Flags {
        #[command(subcommand)]
        command: FlagsCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Four-eyes flag changes: list, approve, deny (propose with `sluice flags … --propose`).
    Proposals {
        #[command(subcommand)]
        command: ProposalCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Staged rollouts: start, watch, pause, resume, roll back.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Create, list and revoke API tokens and client keys.
    Tokens {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Ask "may SUBJECT do ACTION on RESOURCE now?" (AuthZEN evaluation).
    ///
    /// Exits 0 when allowed and 1 when denied (as `kubectl auth can-i` does), so scripts can
    /// test the answer; an error (bad input, server unreachable) also exits 1, with a message
    /// on standard error.
    Check {
        /// The user asking, e.g. `alice`.
        subject: String,
        /// The action, e.g. `read` or `toggle`.
        action: String,
        /// `kind:name`, e.g. `db:orders`.
        resource: String,
        /// The subject's AuthZEN type: `user`, or `service_account` for a service account.
        #[arg(long, default_value = "user")]
        subject_type: String,
        /// Also say which standing permission or grant allowed it, or, when denied, which
        /// entitlement would allow it and the command that requests it.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move a whole installation between databases (run with the servers stopped).
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// The PostgreSQL gateway: sessions, their statements, kill, and how to connect.
    Db {
        #[command(subcommand)]
        command: DbCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// The HTTP gateway: its services (list, declare, remove), the calls in progress (list,
    /// kill) and recent calls.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Notifications (webhooks and chat): what is pending, delivered or dead, and retry.
    Notifications {
        #[command(subcommand)]
        command: NotificationCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show who the token belongs to.
    Whoami {
        #[command(flatten)]
        remote: Remote,
    },
    /// Sign in through the identity provider (device flow: open the URL it prints, enter the
    /// code). The session is kept in your config directory and renewed as you use it.
    Login {
        #[command(flatten)]
        remote: Remote,
    },
    /// Sign out: end the stored session on the server and delete it.
    Logout {
        #[command(flatten)]
        remote: Remote,
    },
}

impl Command {
    /// The server a command talks to, for the commands that talk to one with a session
    /// (`sluice login` makes it; `login`/`logout` handle theirs themselves).
    pub fn session_remote(&self) -> Option<&Remote> {
        match self {
            Command::Apply { remote, .. }
            | Command::Access { remote, .. }
            | Command::Audit { remote, .. }
            | Command::Flags { remote, .. }
            | Command::Proposals { remote, .. }
            | Command::Rollout { remote, .. }
            | Command::Tokens { remote, .. }
            | Command::Check { remote, .. }
            | Command::Db { remote, .. }
            | Command::Gateway { remote, .. }
            | Command::Notifications { remote, .. }
            | Command::Whoami { remote } => Some(remote),
            Command::Serve(_)
            | Command::Edge(_)
            | Command::Migrate(_)
            | Command::Store { .. }
            | Command::Login { .. }
            | Command::Logout { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    /// The central server, e.g. `https://sluice.internal`.
    #[arg(long, env = "SLUICE_EDGE_UPSTREAM")]
    pub upstream: String,
    /// The edge key (`sluice tokens create --kind edge --env ENV`).
    #[arg(long, env = "SLUICE_EDGE_KEY", hide_env_values = true)]
    pub key: String,
    /// Address to listen on.
    #[arg(long, env = "SLUICE_EDGE_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// Where the last snapshot is kept.
    #[arg(long, env = "SLUICE_EDGE_DATA_DIR", default_value = "sluice-edge-data")]
    pub data_dir: PathBuf,
    /// The URL clients reach this edge at, advertised in OFREP event streams; default
    /// `http://<listen address>`.
    #[arg(long, env = "SLUICE_EDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How often evaluation counts are reported to the central server, e.g. `10s`.
    #[arg(long, env = "SLUICE_EDGE_REPORT_INTERVAL", value_parser = positive_duration)]
    pub report_interval: Option<std::time::Duration>,
    /// Web pages on this origin (e.g. `https://app.example.com`) may evaluate flags here
    /// (OFREP from a browser: CORS); repeat for several, or `*` for any. Default: none.
    #[arg(
        long = "cors-origin",
        env = "SLUICE_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<String>,
    /// Where state lives (SQLite database, audit signing key).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…`; default SQLite in the data directory.
    #[arg(long, env = "SLUICE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Audit signing key (Ed25519, PEM); default `<data-dir>/audit-signing.pem`.
    #[arg(long, env = "SLUICE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Config file (YAML); default `./sluice.yaml` if present.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// OFREP requests per second per client key, then 429 with `Retry-After`; default unlimited.
    #[arg(long, env = "SLUICE_CLIENT_RATE_LIMIT", value_parser = clap::value_parser!(u32).range(1..))]
    pub client_rate_limit: Option<u32>,
    /// Do not count flag evaluations (no counts, no "last evaluated", no stale findings from
    /// use): only to measure what counting costs.
    #[arg(long, env = "SLUICE_NO_EVALUATION_COUNTS")]
    pub no_evaluation_counts: bool,
    /// On PostgreSQL, do not listen for other instances' commits (`LISTEN`/`NOTIFY`): learn of
    /// them only at the periodic sync. Only to measure what listening brings.
    #[arg(long, env = "SLUICE_NO_LISTEN")]
    pub no_listen: bool,
    /// On PostgreSQL, give every audited write a transaction of its own instead of sharing
    /// one with the writes that arrive with it. Only to measure what sharing brings.
    #[arg(long, env = "SLUICE_NO_WRITE_BATCH")]
    pub no_write_batch: bool,
    /// How often to read whether another instance changed grants, policy, tokens or flags
    /// (the backstop of listening on PostgreSQL), e.g. `200ms` (the default) or `1h`.
    #[arg(long, env = "SLUICE_SYNC_INTERVAL", value_parser = positive_duration)]
    pub sync_interval: Option<std::time::Duration>,
    /// The URL clients reach this server at (behind a proxy, the proxy's), advertised in
    /// AuthZEN metadata and OFREP event streams; default `http://<listen address>`.
    #[arg(long, env = "SLUICE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Web pages on this origin (e.g. `https://app.example.com`) may evaluate flags through
    /// OFREP from a browser (CORS on `/ofrep/…` only); repeat for several, or `*` for any.
    /// Default: none (config file: `cors_origins:`).
    #[arg(
        long = "cors-origin",
        env = "SLUICE_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_origins: Vec<String>,
    /// Also serve the PostgreSQL gateway on this address (e.g. `127.0.0.1:6432`); the
    /// databases it serves are declared in the config file's `databases:` section.
    #[arg(long, env = "SLUICE_PG_LISTEN")]
    pub pg_listen: Option<String>,
    /// Also serve the HTTP gateway on this address (e.g. `127.0.0.1:8081`); the services it
    /// fronts are declared in the config file's `http_services:` section or through the API
    /// (`sluice gateway declare`).
    #[arg(long, env = "SLUICE_HTTP_GATEWAY_LISTEN")]
    pub http_gateway_listen: Option<String>,
    /// Where the HTTP gateway reads a credential file that a service declared through the
    /// API names (`value_file`, a bare file name in this directory): only what you put here
    /// can be sent upstream that way. Without it, declare credentials with `value_env`
    /// (`SLUICE_HTTP_…` variables).
    #[arg(long, env = "SLUICE_HTTP_CREDENTIALS_DIR")]
    pub http_credentials_dir: Option<PathBuf>,
    /// Append every signed audit checkpoint to this file (JSON Lines, fsynced): put it on
    /// another volume than the database, so that `sluice audit verify --witness FILE` finds a
    /// trail cut short even by someone who holds the database.
    #[arg(long, env = "SLUICE_WITNESS_FILE")]
    pub witness_file: Option<PathBuf>,
    /// POST every signed audit checkpoint as JSON to this URL (an append-only log elsewhere).
    #[arg(long, env = "SLUICE_WITNESS_URL")]
    pub witness_url: Option<String>,
    /// Serve the API over TLS with this certificate (PEM; with --tls-key). Both files are
    /// reloaded when they change, without a restart.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (behind a proxy that terminates
    /// TLS); refused otherwise, since tokens would cross the network in clear.
    #[arg(long, env = "SLUICE_ALLOW_PLAIN_HTTP")]
    pub allow_plain_http: bool,
    /// The Prometheus that rollout guards query (its base URL, e.g.
    /// `http://127.0.0.1:9090`); without it, rollouts with guards are refused.
    #[arg(long, env = "SLUICE_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// How often rollout guards are read while a step holds, e.g. `15s` (the default); they
    /// are also read the moment a step is due.
    #[arg(long, env = "SLUICE_GUARD_INTERVAL")]
    pub guard_interval: Option<String>,
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// Sign-in through an OpenID Connect identity provider (over the config file's `oidc:`
/// section). The client secret is read from `SLUICE_OIDC_CLIENT_SECRET` or a file, never
/// from the command line.
#[derive(Debug, Clone, Default, Args)]
pub struct OidcArgs {
    /// The identity provider's issuer URL (its discovery document is read at the first
    /// sign-in).
    #[arg(long, env = "SLUICE_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// This server's client id at the identity provider.
    #[arg(long, env = "SLUICE_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// A file holding the client secret (else `SLUICE_OIDC_CLIENT_SECRET`).
    #[arg(long, env = "SLUICE_OIDC_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// The ID token claim naming the principal (default `email`; e.g. `preferred_username`).
    #[arg(long, env = "SLUICE_OIDC_PRINCIPAL_CLAIM")]
    pub oidc_principal_claim: Option<String>,
    /// The ID token claim listing the person's groups (default `groups`).
    #[arg(long, env = "SLUICE_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,
}

/// The database, found as `sluice serve` finds it.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Where state lives (SQLite database, audit signing key).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…`; default SQLite in the data directory.
    #[arg(long, env = "SLUICE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Config file (YAML); default `./sluice.yaml` if present.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The database and the current signing key, found as `sluice serve` finds them.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where state lives (SQLite database, audit signing key).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://…`; default SQLite in the data directory.
    #[arg(long, env = "SLUICE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The current audit signing key; default `<data-dir>/audit-signing.pem`.
    #[arg(long, env = "SLUICE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Config file (YAML); default `./sluice.yaml` if present.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask for an entitlement for a while.
    Request {
        /// The entitlement to ask for (see `sluice access entitlements`).
        entitlement: String,
        /// How long, e.g. `30m`, `2h`. Default: the entitlement's maximum.
        #[arg(long = "for")]
        duration: Option<String>,
        /// Why; required when the entitlement says so, and always for --break-glass.
        #[arg(long, short = 'r', default_value = "")]
        reason: String,
        /// A ticket or incident reference, recorded with the request.
        #[arg(long)]
        ticket: Option<String>,
        /// Narrow the request: `RESOURCE=ACTION[,ACTION…]`, repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Emergency access: active at once, needs a reason, reviewed afterwards.
        #[arg(long)]
        break_glass: bool,
    },
    /// List requests, newest first.
    List {
        /// Only this status (pending, active, expired, …).
        #[arg(long)]
        status: Option<String>,
        /// Only my requests.
        #[arg(long)]
        mine: bool,
        /// Only break-glass grants awaiting review.
        #[arg(long)]
        needs_review: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one request.
    Show {
        /// The request id (`req-…`).
        id: String,
    },
    /// Approve someone else's pending request.
    Approve {
        /// The request id (`req-…`).
        id: String,
        /// A comment recorded with your vote.
        #[arg(long, short = 'c', default_value = "")]
        comment: String,
    },
    /// Deny a pending request (one deny ends it).
    Deny {
        /// The request id (`req-…`).
        id: String,
        /// A comment recorded with your vote.
        #[arg(long, short = 'c', default_value = "")]
        comment: String,
    },
    /// Withdraw your pending request.
    Cancel {
        /// The request id (`req-…`).
        id: String,
    },
    /// End someone's active grant now.
    Revoke {
        /// The request id of the grant (`req-…`).
        id: String,
        /// Why it ends now (recorded and shown to its holder).
        #[arg(long, short = 'r')]
        reason: String,
    },
    /// Give your active grant back early.
    Relinquish {
        /// The request id of your grant (`req-…`).
        id: String,
    },
    /// Mark a break-glass grant as reviewed.
    Review {
        /// The request id of the break-glass grant (`req-…`).
        id: String,
    },
    /// Ask for more time on your active grant.
    Extend {
        /// The request id of your grant (`req-…`).
        id: String,
        /// How much longer, e.g. `30m`.
        #[arg(long = "for")]
        duration: Option<String>,
        /// Why more time is needed.
        #[arg(long, short = 'r', default_value = "")]
        reason: String,
    },
    /// Grants live right now.
    Grants {
        /// Only mine.
        #[arg(long)]
        mine: bool,
    },
    /// Entitlements you can ask for.
    Entitlements,
    /// Who may do ACTION on RESOURCE now? (AuthZEN subject search)
    ///
    /// Lists every subject the policy knows — principals and their declared `subject_ids` —
    /// that an evaluation would allow right now, standing permissions and live grants alike:
    ///
    ///   sluice access who-can toggle flag:production/checkout-v2
    ///   sluice access who-can read db:orders --subject-type service_account
    #[command(verbatim_doc_comment)]
    WhoCan {
        /// The action, e.g. `toggle` or `read`.
        action: String,
        /// `kind:name`, e.g. `flag:production/checkout-v2` or `db:orders`.
        resource: String,
        /// Which subjects: `user`, or `service_account` for service accounts.
        #[arg(long, default_value = "user")]
        subject_type: String,
    },
    /// What may I (or --subject) do now? (AuthZEN resource and action search)
    ///
    /// Two forms:
    ///
    ///   sluice access what-can toggle flag      which flags may I toggle?
    ///   sluice access what-can db:orders        what may I do on db:orders?
    ///
    /// Resources listed are those Sluice knows by name: the ones the policy and live grants
    /// spell out, every flag of every environment, every gateway database. Actions listed are
    /// those the policy spells out and those Sluice asks about (flag and gateway actions).
    /// Asking about someone else needs an administrator or a member of `deciders`.
    #[command(verbatim_doc_comment)]
    WhatCan {
        /// An action followed by KIND (list resources), or a resource `kind:name` alone
        /// (list actions).
        #[arg(value_name = "ACTION|RESOURCE")]
        target: String,
        /// The kind of resource to list, e.g. `flag` or `db`.
        kind: Option<String>,
        /// Whose access (default: the token's own principal).
        #[arg(long)]
        subject: Option<String>,
        /// The subject's AuthZEN type: `user`, or `service_account` for a service account.
        #[arg(long, default_value = "user")]
        subject_type: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest entries (the last -n matching the filters), oldest first; --follow then
    /// prints new ones as they are written.
    Tail {
        /// Only entries by this principal.
        #[arg(long)]
        actor: Option<String>,
        /// An action or a prefix (`access.`).
        #[arg(long)]
        action: Option<String>,
        /// Only entries about this resource, e.g. `flag:production/checkout-v2`.
        #[arg(long)]
        resource: Option<String>,
        /// RFC 3339 time, inclusive.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 time, exclusive.
        #[arg(long)]
        until: Option<String>,
        /// Only entries after this sequence number.
        #[arg(long)]
        after: Option<i64>,
        /// How many of the newest matching entries to show (1–1000).
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: i64,
        /// Keep running and print each new matching entry as it is written (until Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Export as JSON Lines with signed checkpoints.
    Export {
        /// Only entries from this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this time (RFC 3339), and up to the first signed checkpoint
        /// after it, so that the export verifies.
        #[arg(long)]
        until: Option<String>,
        /// Write here instead of standard output.
        #[arg(long = "out")]
        out: Option<PathBuf>,
    },
    /// Verify the live store, or an export FILE offline with --public-key.
    Verify {
        /// An export (`sluice audit export`) to verify offline; without it, the live store.
        file: Option<PathBuf>,
        /// The audit public key (PEM), from `sluice audit public-key`.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A witness file (`sluice serve --witness-file`): the trail must reach its newest
        /// checkpoint with the same hash, else it was cut short or rewritten.
        #[arg(long, env = "SLUICE_WITNESS_FILE")]
        witness: Option<PathBuf>,
    },
    /// Hand the signing of the audit trail to a new key (run with every server stopped).
    ///
    /// Writes an entry naming the new key with a checkpoint signed by the old key, then one
    /// signed by the new key, so `audit verify` follows from either key. Restart every
    /// instance with the new key afterwards.
    RotateKey {
        #[command(flatten)]
        store: StoreArgs,
        /// The new signing key (Ed25519, PKCS#8 PEM); created (mode 0600) if absent.
        #[arg(long)]
        new_key: PathBuf,
    },
    /// Print the audit public key (PEM) from the local signing key; its id goes to stderr.
    PublicKey {
        /// Where state lives (the signing key is `<data-dir>/audit-signing.pem`).
        #[arg(long, env = "SLUICE_DATA_DIR", default_value = "sluice-data")]
        data_dir: PathBuf,
        /// The audit signing key (Ed25519, PEM), if not in the data directory.
        #[arg(long, env = "SLUICE_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed once.
    Create {
        /// A name to tell it by, e.g. `laptop` or `ci`.
        #[arg(long)]
        name: String,
        /// For someone else (administrators).
        #[arg(long)]
        principal: Option<String>,
        /// `api`, `client` or `edge`.
        #[arg(long, default_value = "api")]
        kind: String,
        /// Client keys: the environment they evaluate; edge keys: the environments they sync
        /// (repeat for more).
        #[arg(long)]
        env: Vec<String>,
        /// E.g. `90d`.
        #[arg(long)]
        expires_in: Option<String>,
        /// Client keys: `KEY=VALUE` added to the context of every evaluation made with the key
        /// (over the request's values, as flagd's `--context-value`); repeat for more.
        #[arg(long = "context", value_name = "KEY=VALUE", value_parser = parse_context_entry)]
        context: Vec<(String, String)>,
    },
    /// List tokens (never their secrets).
    List {
        /// Every principal's (administrators).
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token.
    Revoke {
        /// The token id (`tok-…`), from `sluice tokens list`.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy everything, audit trail included, into an empty store; the target then verifies.
    Copy {
        /// Source, e.g. `sqlite://sluice-data/sluice.db`.
        #[arg(long)]
        from: String,
        /// Target, e.g. `postgres://user@host/db` (migrated here if needed; must be empty).
        #[arg(long)]
        to: String,
        /// `table` for people, `json` for scripts.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Replace an environment's flags with a flagd file (all or nothing).
    Import {
        /// The flagd flag definition file (JSON).
        file: PathBuf,
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// Load as flagd does: flags that fail validation are kept, listed, and answer
        /// `PARSE_ERROR` when evaluated; the rest are served.
        #[arg(long)]
        lenient: bool,
        /// Create the environment if it does not exist (administrators; audited). Without it,
        /// an environment the policy does not declare and that holds no flags is refused, so
        /// a typo cannot start a new one.
        #[arg(long)]
        create_env: bool,
    },
    /// Write an environment's flags as a flagd file.
    Export {
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// Write here instead of standard output.
        #[arg(long = "out")]
        out: Option<PathBuf>,
    },
    /// Environments, or the flags of one.
    List {
        /// The environment whose flags to list; without it, the environments.
        #[arg(long)]
        env: Option<String>,
    },
    /// One flag's definition and revision.
    Get {
        /// The flag key, e.g. `checkout-v2`.
        key: String,
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
    },
    /// How the environment's flags were evaluated: per flag, variant and reason, and when last.
    Evaluations {
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// Only the last N days (today included); without it, since counting began.
        #[arg(long)]
        days: Option<u32>,
    },
    /// Flags that look finished, each with a suggested action: not evaluated for N days,
    /// serving one variant to everyone for N days, or past the `expectedRemoval` date in
    /// their metadata.
    Stale {
        /// The environment, e.g. `production`.
        #[arg(long)]
        env: String,
        /// How far back to look (default 30).
        #[arg(long)]
        days: Option<u32>,
    },
    #[command(flatten)]
    Change(FlagChangeCommand),
}

/// `KEY=VALUE` (the value is a string, as in flagd's `--context-value`).
fn parse_context_entry(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// A duration like `200ms` or `1h`, not zero.
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("`{s}` is not a duration like 200ms: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_context_entry;

    /// Every argument of every command, as `path: --name`, that `--help` shows without text.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" || arg.is_hide_set() {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path}: {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_option_has_help_text() {
        let mut missing = Vec::new();
        undocumented(
            &<super::Cli as clap::CommandFactory>::command(),
            "sluice",
            &mut missing,
        );
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }

    #[test]
    fn migrate_lists_only_its_own_options() {
        let cli = <super::Cli as clap::CommandFactory>::command();
        let migrate = cli.find_subcommand("migrate").expect("a migrate command");
        let mut ids: Vec<&str> = migrate
            .get_arguments()
            .map(|a| a.get_id().as_str())
            .filter(|id| *id != "help")
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["config", "data_dir", "database_url"]);
    }

    #[test]
    fn a_context_entry_is_key_equals_value() {
        assert_eq!(
            parse_context_entry("region=eu"),
            Ok(("region".to_owned(), "eu".to_owned()))
        );
        assert_eq!(
            parse_context_entry("note=a=b"),
            Ok(("note".to_owned(), "a=b".to_owned())),
            "the first `=` splits"
        );
        assert_eq!(
            parse_context_entry("empty="),
            Ok(("empty".to_owned(), String::new()))
        );
        assert!(parse_context_entry("novalue").is_err());
        assert!(parse_context_entry("=x").is_err());
    }
}
