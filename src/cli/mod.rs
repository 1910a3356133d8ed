//! The `rosterd` command line: the argument tree, dispatch, and what the
//! commands share (the store they open, reading a file or standard input,
//! printing a report). Each command group is a file: `serve` (and
//! `host-key`), `tenant`, `key`, `school`, `import`, `runs`, `status`,
//! `mail`, `export` (`users`, `groups`, `template`). Only this module maps outcomes
//! to exit codes: 0 success, 1 failure, 2 usage error (clap's own), 3 import
//! applied but some rows had errors ([`crate::domain::report::EXIT_ROW_ERRORS`]),
//! 4 import held for approval ([`crate::domain::report::EXIT_HELD`]), both
//! from `Report::exit_code`.

mod export;
mod import;
mod key;
mod mail;
mod passwords;
mod runs;
mod school;
mod serve;
mod status;
mod tenant;
mod tenant_show;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::clock;
use crate::config::{self, Config};
use crate::store::Store;

pub use export::{GroupsCommand, TemplateKind, UsersCommand, export_users};
pub use import::{ImportArgs, ImportCommand};
pub use key::KeyCommand;
pub use mail::MailCommand;
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
Exit codes: 0 success, 1 failure, 2 usage error, 3 import applied but some rows had errors,\n\
4 import held for approval (nothing applied)."
)]
pub struct Cli {
    /// Configuration file [default: $ROSTERD_CONFIG, else the first of
    /// config/rosterd.toml and /etc/rosterd/rosterd.toml that exists, else
    /// embedded defaults]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log format on standard error: text for people, json for Loki or
    /// Elastic (one event per line; serve's start-up lines become events
    /// too) [default: log.format of the configuration, else text]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<config::LogFormat>,

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
        /// Write this file once the daemon takes connections, and remove it
        /// when the daemon stops: the SFTP address on its first line, and
        /// `metrics ADDRESS` on the next when metrics.listen is set
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Create the database (and its directory) for a new installation
    #[command(
        after_help = "Only `init` and `serve` create a database; every other command refuses a missing one, so a\n\
command run in the wrong directory or with the wrong configuration cannot write to a database the daemon\n\
never reads.\n\nExample:\n  rosterd init\n  rosterd --config /etc/rosterd/rosterd.toml init"
    )]
    Init,
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
    /// A district's users: export them, or set new passwords
    #[command(subcommand)]
    Users(UsersCommand),
    /// Export a district's groups and their members
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Check a district's email: send it a test message now
    #[command(subcommand)]
    Mail(MailCommand),
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
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    #[command(after_help = "Install (the deploy files do this):\n  \
rosterd completions bash > /usr/share/bash-completion/completions/rosterd\n  \
rosterd completions zsh > /usr/local/share/zsh/site-functions/_rosterd\n  \
rosterd completions fish > /usr/share/fish/vendor_completions.d/rosterd.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (rosterd.1, and rosterd-tenant-add.1 and so on for every command) into DIR
    #[command(
        after_help = "Install (the deploy files do this):\n  rosterd man /usr/local/share/man/man1\n  man rosterd-tenant-add"
    )]
    Man {
        /// Directory to write the pages to (created if missing)
        dir: PathBuf,
    },
    /// Per district: last upload, last import and its outcome, an import running
    /// now and how far it has got, the pending file, a file refused on upload
    /// and why, when the window next opens (district time); and the mail queue
    #[command(
        after_help = "Times are shown in each district's time zone; with --format json they are RFC 3339 UTC.\n\
Messages that could not be delivered are listed with the server's answer.\n\n\
Examples:\n  rosterd status\n  rosterd status --format json | jq '.districts[] | select(.held != [])'"
    )]
    Status {
        /// Output format: text for people, json (stable field names) for scripts
        #[arg(long, value_enum, default_value_t = Listing::Text)]
        format: Listing,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary with the first problems
    Text,
    /// Every problem as CSV: line,username,first_name,last_name,column,value,severity,message
    Csv,
    /// The whole report as JSON
    Json,
}

/// The format of a listing (`status`, `tenant show`, `runs`, `key list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Listing {
    /// For people; times in the district's time zone
    Text,
    /// For scripts: one JSON document, stable field names, times in RFC 3339 UTC
    Json,
}

/// `value` as one pretty-printed JSON document and a line break.
fn write_json(out: &mut impl Write, value: &impl serde::Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A district's list as JSON: `{"district": SUB, "<name>": [...]}`.
fn write_district_list(
    out: &mut impl Write,
    district: &str,
    name: &str,
    items: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let mut listed = serde_json::Map::new();
    listed.insert("district".into(), district.into());
    listed.insert(name.into(), serde_json::to_value(items)?);
    write_json(out, &listed)
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
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        // `rosterd status | head`: the reader has all it wanted.
        Err(e) if broken_pipe(&e) => 0,
        Err(e) => {
            if crate::logging::is_json() {
                tracing::error!(error = %format!("{e:#}"), "rosterd stopped with an error");
            } else {
                eprintln!("error: {e:#}");
            }
            1
        }
    }
}

/// Whether writing the output failed because its reader went away, however
/// deeply the error is wrapped (the CSV writer's, serde_json's).
fn broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
            || cause.downcast_ref::<csv::Error>().is_some_and(
                |c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

/// `result`, a closed pipe taken as success: for output that is not the
/// command's whole point (an import's report), so the reader leaving early
/// does not hide the import's exit status or stop what comes after.
fn ignore_closed_pipe(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// Parse the command line, with `--help` naming the configuration file and
/// the database this invocation would use.
fn parse() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let command = Cli::command();
    // Read the configuration only for help: a file that can be read once
    // (`--config <(…)`) must be left for the command itself.
    let asks_help = std::env::args_os()
        .skip(1)
        .any(|a| a == "-h" || a == "--help");
    if !asks_help {
        return Cli::from_arg_matches(&command.try_get_matches()?);
    }
    let origin = config::Origin::locate(config_flag(std::env::args_os()).as_deref());
    let in_use = match Config::load(&origin) {
        Ok(config) => format!(
            "configuration  {}\n  database       {}",
            origin.describe(),
            config::absolute(&config.storage.database).display()
        ),
        Err(e) => format!("configuration  {} cannot be used: {e:#}", origin.describe()),
    };
    let help = format!(
        "{}\n\nIn use here:\n  {in_use}",
        command
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
    );
    let matches = command.after_help(help).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// `rosterd man DIR`: a page for the program and one for every command.
fn man_pages(dir: &Path) -> anyhow::Result<i32> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
    eprintln!(
        "wrote rosterd.1 and a page per command into {}; read them with `man rosterd`",
        dir.display()
    );
    Ok(0)
}

/// The value of `--config` among raw arguments, before clap parses them:
/// the last one given, as clap takes it.
fn config_flag(args: impl Iterator<Item = std::ffi::OsString>) -> Option<PathBuf> {
    let mut args = args.skip(1);
    let mut found = None;
    while let Some(arg) = args.next() {
        if arg == "--config" {
            found = args.next().map(PathBuf::from);
        } else if let Some(value) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            found = Some(value.into());
        } else if arg == "--" {
            break;
        }
    }
    found
}

/// Run a parsed command; `Ok` carries the exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    // What describes the program itself needs no configuration.
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            // Generated in memory: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "rosterd", &mut script);
            let out = &mut std::io::stdout().lock();
            out.write_all(&script)?;
            out.flush()?;
            return Ok(0);
        }
        Command::Man { dir } => return man_pages(dir),
        _ => {}
    }
    let config = Config::load(&config::Origin::locate(cli.config.as_deref()))?;
    let json = cli.log_format.unwrap_or(config.log.format) == config::LogFormat::Json;
    crate::logging::init(json, &config.log.level);
    let clock = clock::from_env()?;
    let out = &mut std::io::stdout().lock();
    match cli.command {
        Command::Serve { ready_file } => serve::serve(config, clock, ready_file),
        Command::Init => init(&config, out),
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
        Command::Users(UsersCommand::ResetPasswords(args)) => {
            passwords::reset_passwords(&config, clock, args, out)
        }
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
        Command::Status { format } => status::status(&config, clock.as_ref(), format, out),
        Command::Mail(cmd) => mail::mail_command(&config, clock.as_ref(), cmd, out),
        Command::Runs(args) => runs::runs_command(&config, clock, args, out),
    }
}

/// The configured database, which must exist: only `init` and `serve`
/// create one, so support's work never lands in a database the daemon does
/// not read.
fn open_store(config: &Config) -> anyhow::Result<Store> {
    let path = &config.storage.database;
    if !path.exists() {
        anyhow::bail!(
            "no database at {} (storage.database of the configuration: {}).\n\
             If rosterd runs with another configuration, point at it: --config PATH or ROSTERD_CONFIG=PATH \
             (the systemd unit's is /etc/rosterd/rosterd.toml).\n\
             To start a new installation here: rosterd init",
            config::absolute(path).display(),
            config.origin.describe()
        );
    }
    // Where `serve` would refuse to run, support refuses to write too.
    crate::store::check_private(&crate::store::data_paths(&config.storage))?;
    Store::open(path)
}

/// `rosterd init`: create the database, or say that it exists.
fn init(config: &Config, out: &mut impl Write) -> anyhow::Result<i32> {
    let path = &config.storage.database;
    let existed = path.exists();
    // What `serve` would refuse, refused now rather than at the first start.
    crate::store::check_private(&crate::store::data_paths(&config.storage))?;
    let store = Store::open(path)?;
    let version = store.schema_version()?;
    writeln!(out, "configuration  {}", config.origin.describe())?;
    let what = if existed {
        "exists already; nothing changed"
    } else {
        "created"
    };
    writeln!(
        out,
        "database       {} ({what}, schema version {version})",
        config::absolute(path).display()
    )?;
    if store.tenants()?.is_empty() {
        writeln!(
            out,
            "next: rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL, then rosterd serve"
        )?;
    }
    Ok(0)
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
        Format::Json => write_json(out, report)?,
    }
    Ok(())
}
