//! `sluice`: the server and the command line.

/// `println!` that ends the program quietly when stdout is closed early (`sluice … | head`)
/// instead of panicking; any other write error is reported and exits 1.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!`, with the same handling as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::write_out(format_args!($($arg)*))
    };
}

fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Standard output as a byte sink, with the same handling as [`outln!`] (a closed pipe ends
/// the program quietly).
pub(crate) struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout()
            .lock()
            .write_all(buf)
            .map(|()| buf.len())
            .map_err(quit_on_broken_pipe)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout()
            .lock()
            .flush()
            .map_err(quit_on_broken_pipe)
    }
}

fn quit_on_broken_pipe(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    e
}

mod cli;
mod client;
mod commands;
mod db_commands;
mod edge;
mod flag_commands;
mod login;
mod notification_commands;
mod output;
mod policy_commands;
mod proposal_commands;
mod search_commands;
mod serve;
mod session_file;
mod tls;

use clap::Parser;
use cli::{Cli, Command};

/// jemalloc, with its background thread on (the crate's `background_threads` feature), returns
/// freed memory to the system within seconds; glibc keeps what an import of 10,000 flags frees
/// on pages shared with the live snapshot (BENCHMARKS.md, "Memory of a 10,000-flag import").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Some(remote) = cli.command.session_remote() {
        login::renew_if_due(remote).await;
    }
    let result = match cli.command {
        Command::Serve(args) => serve::serve(*args).await,
        Command::Edge(args) => edge::edge(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Apply {
            file,
            file_flag,
            dry_run,
            yes,
            remote,
        } => match file.or(file_flag) {
            Some(file) => policy_commands::apply(&file, dry_run, yes, remote).await,
            // clap requires one of the two.
            None => Err(anyhow::anyhow!("give the policy file: sluice apply FILE")),
        },
        Command::Access { command, remote } => commands::access(command, remote).await,
        Command::Audit { command, remote } => commands::audit(command, remote).await,
        Command::Tokens { command, remote } => commands::tokens(command, remote).await,
        Command::Db { command, remote } => db_commands::db(command, remote).await,
        Command::Gateway { command, remote } => db_commands::gateway(command, remote).await,
        Command::Flags { command, remote } => commands::flags(command, remote).await,
        Command::Notifications { command, remote } => {
            notification_commands::notifications(command, remote).await
        }
        Command::Proposals { command, remote } => {
            proposal_commands::proposals(command, remote).await
        }
        Command::Rollout { command, remote } => flag_commands::rollout(command, remote).await,
        Command::Check {
            subject,
            action,
            resource,
            subject_type,
            explain,
            remote,
        } => {
            match commands::check(subject, subject_type, action, resource, explain, remote).await {
                // Denied: the answer is printed, and the exit status says it for scripts.
                Ok(false) => std::process::exit(1),
                other => other.map(|_| ()),
            }
        }
        Command::Store {
            command: cli::StoreCommand::Copy { from, to, output },
        } => serve::copy(&from, &to, output).await,
        Command::Whoami { remote } => commands::whoami(remote).await,
        Command::Login { remote } => login::login(remote).await,
        Command::Logout { remote } => login::logout(remote).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
