//! `sluice`: the server and the command line.

mod cli;
mod cli_flags;
mod client;
mod commands;
mod flag_commands;
mod output;
mod proposal_commands;
mod serve;

use clap::Parser;
use cli::{Cli, Command};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Apply {
            file,
            dry_run,
            remote,
        } => commands::apply(&file, dry_run, remote).await,
        Command::Access { command, remote } => commands::access(command, remote).await,
        Command::Audit { command, remote } => commands::audit(command, remote).await,
        Command::Tokens { command, remote } => commands::tokens(command, remote).await,
        Command::Flags { command, remote } => commands::flags(command, remote).await,
        Command::Proposals { command, remote } => {
            proposal_commands::proposals(command, remote).await
        }
        Command::Rollout { command, remote } => flag_commands::rollout(command, remote).await,
        Command::Check {
            subject,
            action,
            resource,
            remote,
        } => commands::check(subject, action, resource, remote).await,
        Command::Store {
            command: cli::StoreCommand::Copy { from, to },
        } => serve::copy(&from, &to).await,
        Command::Whoami { remote } => commands::whoami(remote).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
