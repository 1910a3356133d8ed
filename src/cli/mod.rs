//! The `rosterd` command line: the argument tree, dispatch, and what the
//! commands share (the store they open, reading a file or standard input,
//! printing a report). Each command group is a file: `serve` (and
//! `host-key`), `tenant`, `key`, `school`, `import`, `runs`, `status`,
//! `export` (`users`, `groups`, `template`). Only this module maps outcomes
//! to exit codes: 0 success, 1 failure, 2 usage error (clap's own), 3 import
//! applied but some rows had errors ([`crate::domain::report::EXIT_ROW_ERRORS`],
//! from `Report::exit_code`).

mod export;
mod import;
mod key;
mod runs;
mod school;
mod serve;
mod status;
mod tenant;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock;
use crate::config::Config;
use crate::store::Store;

pub use export::{GroupsCommand, TemplateKind, UsersCommand, export_users};
pub use import::{ImportArgs, ImportCommand};
pub use key::KeyCommand;
pub use runs::{RunsAction, RunsArgs};
pub use school::SchoolCommand;
pub use tenant::TenantCommand;

#[derive(Debug, Parser)]
#[command(
    name = "rosterd",
    version,
    about = "SFTP rostering daemon: districts upload users.csv nightly; rosterd imports it and emails the results",
    long_about = "rosterd runs an SFTP server where each school district logs in as its subdomain with a \
registered SSH key and uploads users.csv. Between 18:00 and 06:00 district time the file is imported into \
student and staff accounts, and the district's administrator gets the results by email.\n\n\
Support staff use the other commands to register districts, keys and schools, test an import and read the \
import history.",
    after_help = "Getting started:\n  \
rosterd tenant add lincoln-usd --admin-name 'Ann Lee' --admin-email ann@lincoln.k12.ca.us\n  \
rosterd key add lincoln-usd district_key.pub\n  \
rosterd school add lincoln-usd --name 'Lincoln Elementary' --nces 062271003230\n  \
rosterd import users lincoln-usd users.csv --dry-run\n\n\
Exit codes: 0 success, 1 failure, 2 usage error, 3 import applied but some rows had errors."
)]
pub struct Cli {
    /// Configuration file [default: config/rosterd.toml, used only if it exists]
    #[arg(long, global = true, env = "ROSTERD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the SFTP server until SIGINT or SIGTERM
    #[command(
        after_help = "Example:\n  rosterd serve\n  rosterd --config /etc/rosterd/rosterd.toml serve\n  rosterd serve --ready-file rosterd.ready &   # a script waits for the file, not a fixed sleep"
    )]
    Serve {
        /// Write this file (the address listened on) once the daemon takes
        /// connections, and remove it when the daemon stops
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Print the SSH host key's fingerprint, creating the key if it does not exist yet
    #[command(
        after_help = "Give this fingerprint to districts so their SFTP client can verify the server:\n  rosterd host-key\n  SHA256:3i8r…"
    )]
    HostKey,
    /// Register and manage districts (tenants)
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Register, list and revoke districts' SSH public keys
    #[command(subcommand)]
    Key(KeyCommand),
    /// Register, list, rename and remove a district's schools
    #[command(subcommand)]
    School(SchoolCommand),
    /// Import a file by hand, as support's test of a district's export
    #[command(subcommand)]
    Import(ImportCommand),
    /// Export a district's users
    #[command(subcommand)]
    Users(UsersCommand),
    /// Export a district's groups and their members
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Show a district's import history, or one import's full report
    #[command(
        after_help = "Examples:\n  rosterd runs lincoln-usd\n  rosterd runs lincoln-usd --id 42\n  rosterd runs lincoln-usd --id 42 --format csv > problems.csv"
    )]
    Runs(RunsArgs),
    /// Print a header-only CSV template for districts to fill
    #[command(after_help = "Example:\n  rosterd template users > users.csv")]
    Template {
        #[arg(value_enum)]
        kind: TemplateKind,
    },
    /// Per district: last upload, last import and its outcome, the pending file,
    /// when the window next opens (district time); and the mail queue
    #[command(
        after_help = "Example:\n  rosterd status\n\nMessages that could not be delivered are listed with the server's answer."
    )]
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary with the first problems
    Text,
    /// Every problem as CSV: line,column,value,severity,message
    Csv,
    /// The whole report as JSON
    Json,
}

/// Parse arguments and run; returns the process exit code.
pub fn main() -> i32 {
    // Every value given on the command line may end up in a stored setting,
    // an email header or body, or a log line: a line break or an invisible
    // formatting character in one would forge or hide text there.
    for (i, arg) in std::env::args_os().enumerate().skip(1) {
        let arg = arg.to_string_lossy();
        if let Err(why) = crate::domain::text::plain(&format!("argument {i} ({:?})", arg), &arg) {
            eprintln!("error: {why}");
            return 2;
        }
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Run a parsed command; `Ok` carries the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = Config::load(cli.config.as_deref())?;
    init_logging(&config);
    let clock = clock::from_env()?;
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Serve { ready_file } => {
            serve::serve(config, cli.config.clone(), clock, ready_file)
        }
        Command::HostKey => serve::host_key(&config, out),
        Command::Template { kind } => export::template(kind, out),
        Command::Tenant(cmd) => tenant::tenant_command(&config, clock.as_ref(), cmd, out),
        Command::Key(cmd) => key::key_command(&config, clock.as_ref(), cmd, out),
        Command::School(cmd) => school::school_command(&config, cmd, out),
        Command::Import(cmd) => import::import_command(&config, clock, cmd, out),
        Command::Groups(GroupsCommand::Export { subdomain }) => {
            export::groups_export(&config, &subdomain, out)
        }
        Command::Users(UsersCommand::Export { subdomain }) => {
            export::users_export(&config, &subdomain, out)
        }
        Command::Status => status::status(&config, clock.as_ref(), out),
        Command::Runs(args) => runs::runs_command(&config, clock, args, out),
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROSTERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log.format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder.try_init(),
    };
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    Store::open(&config.storage.database)
}

fn read_input(file: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if file == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    Ok(text)
}

fn print_report(
    report: &crate::domain::report::Report,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match format {
        Format::Text => write!(
            out,
            "{}",
            report.render_text(50, "all of them: --format csv")
        )?,
        Format::Csv => {
            let mut csv = Vec::new();
            report.write_problems_csv(&mut csv, usize::MAX)?;
            out.write_all(&csv)?;
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
