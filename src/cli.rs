//! The `rosterd` command line: argument definitions and the support commands.
//! Only this module maps outcomes to exit codes: 0 success, 1 failure, 2 usage
//! error (clap's own), 3 import applied but some rows had errors.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::clock::{self, Clock};
use crate::config::Config;
use crate::domain::tenant::{Subdomain, parse_timezone};
use crate::domain::window::Window;
use crate::import::header::{self, FieldSet};
use crate::import::users::UserField;
use crate::import::{self, ImportContext, ImportOptions, Source};
use crate::keys;
use crate::store::{self, NewTenant, Store, Tenant};

/// Exit status when an import was applied but some rows were skipped.
pub const EXIT_ROW_ERRORS: i32 = 3;

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
        after_help = "Example:\n  rosterd serve\n  rosterd --config /etc/rosterd/rosterd.toml serve"
    )]
    Serve,
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
    /// Register and list a district's schools
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TemplateKind {
    Users,
    Groups,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Register a district; its subdomain is the SSH username
    #[command(
        after_help = "Example:\n  rosterd tenant add lincoln-usd --admin-name 'Ann Lee' --admin-email ann@lincoln.k12.ca.us \\\n      --timezone America/Los_Angeles"
    )]
    Add {
        /// Subdomain: lowercase letters, digits and inner hyphens, 1-63 characters
        subdomain: String,
        /// Name of the administrator who receives the import reports
        #[arg(long, value_name = "NAME")]
        admin_name: String,
        /// Email address the import reports go to
        #[arg(long, value_name = "EMAIL")]
        admin_email: String,
        /// IANA time zone [default: schedule.timezone of the config]
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        /// Users sign in by SSO, so a missing password is normal
        #[arg(long)]
        sso: bool,
        /// Import window HH:MM-HH:MM in the district's time [default: schedule.window of the config]
        #[arg(long, value_name = "HH:MM-HH:MM")]
        window: Option<String>,
    },
    /// List all districts
    List,
    /// Show one district: settings, keys, schools, column mapping, last import
    #[command(after_help = "Example:\n  rosterd tenant show lincoln-usd")]
    Show { subdomain: String },
    /// Change a district's settings
    #[command(
        after_help = "Examples:\n  rosterd tenant set lincoln-usd --admin-email it@lincoln.k12.ca.us\n  rosterd tenant set lincoln-usd --sso true --window 20:00-04:00\n  rosterd tenant set lincoln-usd --timezone default\n  rosterd tenant set lincoln-usd --allow-from 203.0.113.0/24,198.51.100.7"
    )]
    Set {
        subdomain: String,
        #[arg(long, value_name = "NAME")]
        admin_name: Option<String>,
        #[arg(long, value_name = "EMAIL")]
        admin_email: Option<String>,
        /// IANA time zone, or `default` for the config's
        #[arg(long, value_name = "TZ")]
        timezone: Option<String>,
        #[arg(long, value_name = "true|false")]
        sso: Option<bool>,
        /// HH:MM-HH:MM, or `default` for the config's
        #[arg(long, value_name = "WINDOW")]
        window: Option<String>,
        /// Addresses every key of the district may log in from (OpenSSH
        /// pattern list: addresses, CIDR blocks, `!` to exclude), on top of
        /// each key's own from=; `any` removes the list
        #[arg(long, value_name = "CIDR[,CIDR…]|any")]
        allow_from: Option<String>,
        /// Users a complete file does not list: `keep` (left alone, the
        /// default) or `deactivate` (full sync: deactivated, never deleted,
        /// and reactivated when a file lists them again)
        #[arg(long, value_name = "keep|deactivate")]
        absent: Option<String>,
        /// Hold a nightly import that would update more than PCT% of the
        /// district's active users, for support to approve; `off` never
        /// holds, `default` uses holds.update_percent of the config
        #[arg(long, value_name = "PCT|off|default")]
        hold_updates: Option<String>,
        /// Hold a nightly import that would deactivate more than PCT% of the
        /// district's active users (full sync); `off`, `default` as above
        #[arg(long, value_name = "PCT|off|default")]
        hold_deactivations: Option<String>,
    },
    /// Pause a district's imports over a break: uploads are received and kept
    /// but not imported (or, with --additions-only, only new users are
    /// created); no "nothing received" email is sent meanwhile
    #[command(
        after_help = "Dates are the district's own, both inclusive. When the pause ends, the newest upload\n\
received meanwhile is imported as usual.\n\nExamples:\n  rosterd tenant pause lincoln-usd --from 2027-06-15 --until 2027-08-20\n  \
rosterd tenant pause lincoln-usd --until 2027-08-20 --additions-only\n  rosterd tenant resume lincoln-usd"
    )]
    Pause {
        subdomain: String,
        /// First paused day, YYYY-MM-DD [default: today, in the district's time zone]
        #[arg(long, value_name = "DATE")]
        from: Option<chrono::NaiveDate>,
        /// Last paused day, YYYY-MM-DD
        #[arg(long, value_name = "DATE")]
        until: chrono::NaiveDate,
        /// Still create new users (new students over the summer); change no existing one
        #[arg(long)]
        additions_only: bool,
    },
    /// End a district's pause now
    Resume { subdomain: String },
    /// Refuse the district's logins and imports (nothing is deleted)
    Disable { subdomain: String },
    /// Allow the district's logins and imports again
    Enable { subdomain: String },
    /// Store a column mapping every import of this district uses
    #[command(
        after_help = "Tell rosterd which field a column of the district's export holds, when its header \
is not one rosterd recognises (or map it to `ignore`):\n  \
rosterd tenant map lincoln-usd 'Student Email' 'Email Address'\n  \
rosterd tenant map lincoln-usd 'Homeroom' ignore\n  \
rosterd tenant map lincoln-usd --remove 'Student Email'\n\
Fields: Username, Password, Email Address, First Name, Last Name, School, Graduation Year, Access Type, \
Owner Name, Group Name."
    )]
    Map {
        subdomain: String,
        /// Column header as the district's file writes it
        header: String,
        /// Field it holds, or `ignore`
        #[arg(required_unless_present = "remove")]
        field: Option<String>,
        /// Remove the mapping of HEADER instead
        #[arg(long)]
        remove: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Register a district's SSH public key(s) from FILE, or `-` for standard input
    #[command(
        after_help = "Accepts an OpenSSH public key or authorized_keys line (ssh-ed25519, ecdsa-sha2-nistp256/384/521, \
ssh-rsa of at least 2048 bits) and the '---- BEGIN SSH2 PUBLIC KEY ----' block PuTTYgen and WinSCP write. \
Prints each key's SHA256 fingerprint. An authorized_keys line's from=\"…\" option is honoured: \
the key then logs in only from those addresses (--from sets or replaces it); its other options \
(command=, no-pty, …) mean nothing to an upload-only server and are reported as ignored; \
cert-authority and principals= are refused.\n\nExamples:\n  rosterd key add lincoln-usd lincoln.pub\n  \
rosterd key add lincoln-usd lincoln.pub --from 203.0.113.0/24,198.51.100.7\n  \
pbpaste | rosterd key add lincoln-usd -"
    )]
    Add {
        subdomain: String,
        /// File holding the key(s), or `-`
        file: PathBuf,
        /// Addresses the key(s) may log in from: addresses, CIDR blocks or
        /// address patterns, `!` to exclude (OpenSSH's from= syntax); replaces
        /// a from="…" option in the file
        #[arg(long, value_name = "CIDR[,CIDR…]")]
        from: Option<String>,
    },
    /// List a district's keys, revoked ones included
    List { subdomain: String },
    /// Revoke a key; effective from the next login, no restart needed
    #[command(
        after_help = "Example:\n  rosterd key revoke lincoln-usd SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
    )]
    Revoke {
        subdomain: String,
        fingerprint: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchoolCommand {
    /// Add one school
    #[command(
        after_help = "Example:\n  rosterd school add lincoln-usd --name 'Lincoln Elementary' --nces 062271003230 --state-id 19-64733-6010763"
    )]
    Add {
        subdomain: String,
        #[arg(long, value_name = "NAME")]
        name: String,
        /// National Center for Education Statistics school ID
        #[arg(long, value_name = "ID")]
        nces: Option<String>,
        /// State-assigned school ID
        #[arg(long, value_name = "ID")]
        state_id: Option<String>,
    },
    /// Add schools from a CSV file with columns Name, NCES ID, State ID (all or none)
    #[command(
        after_help = "Example file:\n  Name,NCES ID,State ID\n  Lincoln Elementary,062271003230,19-64733-6010763\n  Lincoln High,062271003231,\n\nExample:\n  rosterd school import lincoln-usd schools.csv"
    )]
    Import { subdomain: String, file: PathBuf },
    /// List a district's schools
    List { subdomain: String },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a users.csv file now and print the report
    #[command(
        after_help = "Exit codes: 0 applied, 1 rejected (nothing applied), 3 applied but some rows were skipped. \
A dry run exits as the real import would.\n\nExamples:\n  rosterd import users lincoln-usd users.csv --dry-run\n  \
rosterd import users lincoln-usd users.csv\n  rosterd import users lincoln-usd users.csv --format csv > problems.csv"
    )]
    Users(ImportArgs),
    /// Import a group assignments file now and print the report
    #[command(
        after_help = "Columns: Username (an existing user), Owner Name (username or \"First Last\" of a user with\n\
Administrator, School Administrator or Manager access), Group Name. Owner without group: the user\n\
joins the owner's default group. Group without owner: the group is created without one.\n\
Exit codes as for `import users`.\n\nExamples:\n  rosterd template groups > groups.csv\n  \
rosterd import groups lincoln-usd groups.csv --dry-run\n  rosterd import groups lincoln-usd groups.csv --email"
    )]
    Groups(ImportArgs),
    /// Import a district's pending SFTP upload now, whatever the time (support's
    /// override of the nightly window); the report is printed and emailed
    #[command(
        after_help = "Use it when a district needs last night's file applied during the day, or after\n\
fixing a problem that stopped the nightly import. If the daemon is importing the file\n\
at this moment, this says so and changes nothing.\n\nExample:\n  rosterd import run lincoln-usd"
    )]
    Run {
        subdomain: String,
        /// Report format on standard output
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Apply a held import now: its changes were reviewed and are expected
    #[command(
        after_help = "A nightly import that would change more accounts than the district's hold thresholds\n\
allow is held: nothing is applied and the administrator is emailed its changes.csv. `rosterd status`\n\
lists held imports with their RUN id; `rosterd runs SUB --id RUN --changes` lists the changes.\n\
Approving imports the held file at once (whatever the time) and emails the report; if this\n\
command is interrupted, the daemon finishes the import.\n\nExample:\n  rosterd import approve lincoln-usd 42"
    )]
    Approve {
        subdomain: String,
        /// The held run's id (`rosterd status` lists them)
        run: i64,
        /// Report format on standard output
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Never apply a held import; the district's next upload is imported as usual
    #[command(after_help = "Example:\n  rosterd import discard lincoln-usd 42")]
    Discard {
        subdomain: String,
        /// The held run's id (`rosterd status` lists them)
        run: i64,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    subdomain: String,
    file: PathBuf,
    /// Check everything and report, but change nothing
    #[arg(long)]
    dry_run: bool,
    /// Import even if the file is byte-identical to the last imported one
    #[arg(long)]
    force: bool,
    /// Report format on standard output
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also email the report to the district's administrator
    #[arg(long)]
    email: bool,
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

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Print a district's users as CSV, sorted by username (never passwords)
    #[command(after_help = "Example:\n  rosterd users export lincoln-usd > lincoln-users.csv")]
    Export { subdomain: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Print a district's group memberships as CSV (Group Name, Owner, Username),
    /// sorted by group and username; groups without members have one row with no username
    #[command(after_help = "Example:\n  rosterd groups export lincoln-usd > lincoln-groups.csv")]
    Export { subdomain: String },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    #[arg(required = true, value_name = "SUBDOMAIN")]
    subdomain: Option<String>,
    /// Show this run's full report instead of the list
    #[arg(long)]
    id: Option<i64>,
    /// With --id: list what the run changed, per user and field (before and
    /// after; passwords only as "changed")
    #[arg(long, requires = "id")]
    changes: bool,
    /// How many runs to list
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Format of a single run's report or changes (with --id)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Undo a users import: restore every value it changed and deactivate the
    /// users it created (dry run unless --apply)
    #[command(
        after_help = "Possible only while no later run changed the same users; otherwise it names the runs\n\
in the way (undo those first, newest first). The undo is itself a run: listed by `rosterd runs`,\n\
emailed to the administrator, and undoable.\n\nExamples:\n  rosterd runs undo lincoln-usd 42\n  rosterd runs undo lincoln-usd 42 --apply"
    )]
    Undo {
        subdomain: String,
        /// The run to undo (`rosterd runs SUB` lists them)
        run: i64,
        /// Do it; without this, only show what would change
        #[arg(long)]
        apply: bool,
    },
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
        Command::Serve => serve(config, cli.config.clone(), clock),
        Command::HostKey => {
            for (kind, path, key, created) in
                crate::server::host_keys::load_or_create_host_keys(&config.server)?
            {
                if created {
                    eprintln!(
                        "created a new {} host key at {}",
                        kind.label(),
                        path.display()
                    );
                }
                writeln!(
                    out,
                    "{} ({})",
                    crate::server::host_keys::host_key_fingerprint(&key),
                    kind.label()
                )?;
            }
            Ok(0)
        }
        Command::Template { kind } => {
            let header = match kind {
                TemplateKind::Users => UserField::template_header(),
                TemplateKind::Groups => import::groups::GroupField::template_header(),
            };
            writeln!(out, "{header}")?;
            Ok(0)
        }
        Command::Tenant(cmd) => tenant_command(&config, clock.as_ref(), cmd, out),
        Command::Key(cmd) => key_command(&config, clock.as_ref(), cmd, out),
        Command::School(cmd) => school_command(&config, cmd, out),
        Command::Import(ImportCommand::Users(args)) => {
            import_file(&config, clock, args, import::users::import, out)
        }
        Command::Import(ImportCommand::Groups(args)) => {
            import_file(&config, clock, args, import::groups::import, out)
        }
        Command::Groups(GroupsCommand::Export { subdomain }) => {
            let store = open_store(&config)?;
            let tenant = store.require_tenant(&subdomain)?;
            let mut w = crate::domain::text::CsvOut::new(&mut *out);
            w.row(["Group Name", "Owner", "Username"])?;
            for row in crate::store::group_memberships(&store.conn, tenant.id)? {
                w.row([
                    row.group,
                    row.owner.unwrap_or_default(),
                    row.member.unwrap_or_default(),
                ])?;
            }
            w.flush()?;
            Ok(0)
        }
        Command::Import(ImportCommand::Run { subdomain, format }) => {
            let store = open_store(&config)?;
            let t = store.require_tenant(&subdomain)?;
            let tz = tenant_tz(&config, &t);
            let today = clock.now().with_timezone(&tz).date_naive();
            if let Some(p) = t.pause.filter(|p| p.covers(today) && !p.additions_only) {
                bail!(
                    "{} is paused {}; its upload is kept and imported when the pause ends. To import it now, end the pause first: `rosterd tenant resume {}`",
                    t.subdomain,
                    p.describe(),
                    t.subdomain
                );
            }
            drop(store);
            import_run(&config, clock, &subdomain, format, out)
        }
        Command::Import(ImportCommand::Approve {
            subdomain,
            run,
            format,
        }) => {
            let store = open_store(&config)?;
            let t = store.require_tenant(&subdomain)?;
            let upload = crate::spool::approve(&store.conn, t.id, run, clock.now())?;
            eprintln!(
                "approved run {run} (upload {upload}) of {}; importing it now",
                t.subdomain
            );
            drop(store);
            import_run(&config, clock, &subdomain, format, out)
        }
        Command::Import(ImportCommand::Discard { subdomain, run }) => {
            let store = open_store(&config)?;
            let t = store.require_tenant(&subdomain)?;
            let spool = crate::spool::TenantSpool::new(&config.storage.spool, &t.subdomain);
            let upload = crate::spool::discard(&store.conn, &spool, t.id, run, clock.now())?;
            writeln!(
                out,
                "discarded run {run} (upload {upload}) of {}: it will never be applied; the next upload is imported as usual",
                t.subdomain
            )?;
            Ok(0)
        }
        Command::Status => status(&config, clock.as_ref(), out),
        Command::Users(UsersCommand::Export { subdomain }) => {
            let store = open_store(&config)?;
            let tenant = store.require_tenant(&subdomain)?;
            export_users(&store, &tenant, out)?;
            Ok(0)
        }
        Command::Runs(RunsArgs {
            action:
                Some(RunsAction::Undo {
                    subdomain,
                    run,
                    apply,
                }),
            ..
        }) => undo_command(&config, clock, &subdomain, run, apply, out),
        Command::Runs(args) => runs_command(&config, args, out),
    }
}

/// `rosterd serve`: the daemon, built by [`crate::daemon::Daemon`], with
/// what it says at start on standard error.
fn serve(
    config: Config,
    config_path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<i32> {
    crate::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let options = crate::daemon::Options {
            config_path,
            process_wide: true,
        };
        let daemon = crate::daemon::Daemon::build(config, clock, options).await?;
        let config = daemon.config();
        let addr = daemon.local_addr()?;
        let fingerprint = daemon.host_keys.join(", ");
        let mail_target = crate::mail::Mailer::describe(&config.mail);
        tracing::info!(%addr, host_key = %fingerprint, mail = %mail_target, "rosterd listening for SFTP");
        eprintln!("rosterd is listening on {addr} (SFTP); host keys {fingerprint}");
        eprintln!("reports go to {mail_target}; imports run {} in each district's time zone (default {})", config.schedule.window, config.schedule.timezone);
        if !daemon.has_districts {
            eprintln!("no districts yet: register one with `rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL`,");
            eprintln!("then its key with `rosterd key add SUBDOMAIN FILE.pub`; it uploads with `sftp -P {} SUBDOMAIN@HOST`", addr.port());
        }
        daemon
            .run_until_stopped(shutdown_signal(), crate::daemon::Background::Run)
            .await?;
        Ok(0)
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
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

fn tenant_command(
    config: &Config,
    clock: &dyn Clock,
    cmd: TenantCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    match cmd {
        TenantCommand::Add {
            subdomain,
            admin_name,
            admin_email,
            timezone,
            sso,
            window,
        } => {
            let sub = Subdomain::parse(&subdomain)?;
            let admin_name = admin_name.trim();
            anyhow::ensure!(!admin_name.is_empty(), "--admin-name must not be empty");
            let email = crate::domain::email::EmailAddress::parse(&admin_email)
                .map_err(|e| anyhow::anyhow!("--admin-email: {e}"))?;
            let timezone = timezone
                .map(|tz| parse_timezone(&tz).map(|t| t.name().to_owned()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let window = window
                .map(|w| w.parse::<Window>().map(|w| w.to_string()))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            store.add_tenant(
                &NewTenant {
                    subdomain: sub.as_str(),
                    admin_name,
                    admin_email: email.as_str(),
                    timezone: timezone.as_deref(),
                    sso,
                    window: window.as_deref(),
                },
                clock.now(),
            )?;
            writeln!(out, "added tenant {sub}")?;
            writeln!(
                out,
                "next: register the district's SSH public key with `rosterd key add {sub} FILE`"
            )?;
            Ok(0)
        }
        TenantCommand::List => {
            let tenants = store.tenants()?;
            if tenants.is_empty() {
                writeln!(out, "no tenants yet; add one with `rosterd tenant add`")?;
                return Ok(0);
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<4} {:<22} {:<12} ADMIN",
                "SUBDOMAIN", "STATE", "SSO", "TIMEZONE", "WINDOW"
            )?;
            for t in tenants {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<4} {:<22} {:<12} {} <{}>",
                    t.subdomain,
                    if t.disabled { "disabled" } else { "enabled" },
                    if t.sso { "yes" } else { "no" },
                    effective_timezone(config, &t),
                    effective_window(config, &t),
                    t.admin_name,
                    t.admin_email
                )?;
            }
            Ok(0)
        }
        TenantCommand::Show { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            writeln!(out, "tenant      {}", t.subdomain)?;
            writeln!(
                out,
                "state       {}",
                if t.disabled { "disabled" } else { "enabled" }
            )?;
            writeln!(out, "admin       {} <{}>", t.admin_name, t.admin_email)?;
            writeln!(
                out,
                "timezone    {}{}",
                effective_timezone(config, &t),
                if t.timezone.is_none() {
                    " (default)"
                } else {
                    ""
                }
            )?;
            writeln!(
                out,
                "window      {}{}",
                effective_window(config, &t),
                if t.window.is_none() { " (default)" } else { "" }
            )?;
            writeln!(out, "sso         {}", if t.sso { "yes" } else { "no" })?;
            writeln!(
                out,
                "allow from  {}",
                store
                    .allow_from(t.id)?
                    .unwrap_or_else(|| "anywhere (each key's own from= still applies)".into())
            )?;
            writeln!(
                out,
                "absent      {}",
                match t.absent {
                    crate::domain::safety::Absent::Keep =>
                        "keep (users missing from a file are left alone)",
                    crate::domain::safety::Absent::Deactivate =>
                        "deactivate (full sync: users missing from a complete file are deactivated)",
                }
            )?;
            let limits = config.holds.for_tenant(&t);
            let own = |o: Option<u8>| if o.is_none() { " (default)" } else { "" };
            let limit = |p: u8, what: &str, o: Option<u8>| {
                if p >= 100 {
                    format!("never for {what}{}", own(o))
                } else {
                    format!("more than {p}% {what}{}", own(o))
                }
            };
            writeln!(
                out,
                "holds       {}; {}",
                limit(limits.update_percent, "updated", t.hold_update_percent),
                limit(
                    limits.deactivate_percent,
                    "deactivated",
                    t.hold_deactivate_percent
                )
            )?;
            match t.pause {
                Some(p) => writeln!(out, "pause       {}", p.describe())?,
                None => writeln!(out, "pause       none")?,
            }
            writeln!(out, "created     {}", t.created_at)?;
            let keys = store.keys(t.id)?;
            let active = keys.iter().filter(|k| k.revoked_at.is_none()).count();
            writeln!(
                out,
                "keys        {active} active, {} revoked",
                keys.len() - active
            )?;
            for k in keys.iter().filter(|k| k.revoked_at.is_none()) {
                writeln!(
                    out,
                    "            {} {} {}",
                    k.fingerprint, k.kind, k.comment
                )?;
            }
            writeln!(out, "schools     {}", store.schools(t.id)?.len())?;
            let map = store.column_map(t.id)?;
            if map.is_empty() {
                writeln!(out, "columns     no custom mapping")?;
            }
            for (i, (header, field)) in map.iter().enumerate() {
                writeln!(
                    out,
                    "{} {header:?} -> {field}",
                    if i == 0 { "columns    " } else { "           " }
                )?;
            }
            match store.runs(t.id, 1)?.first() {
                Some(r) => writeln!(
                    out,
                    "last import {} {} ({} rows, {} errors)",
                    r.finished_at, r.outcome, r.rows, r.errors
                )?,
                None => writeln!(out, "last import never")?,
            }
            let throttles = store::login_throttles(&store.conn, Some(t.id), clock.now())?;
            if throttles.is_empty() {
                writeln!(out, "throttled   no")?;
            }
            for (i, th) in throttles.iter().enumerate() {
                let tz = tenant_tz(config, &t);
                writeln!(
                    out,
                    "{} {}",
                    if i == 0 { "THROTTLED  " } else { "           " },
                    describe_throttle(th, |s| {
                        chrono::DateTime::parse_from_rfc3339(s)
                            .map(|d| crate::mail::compose::local(d.to_utc(), tz))
                            .unwrap_or_else(|_| s.to_owned())
                    })
                )?;
            }
            let failures = store::connection_failures(&store.conn, Some(t.id), 10)?;
            if failures.is_empty() {
                writeln!(out, "refused     no refused connections recorded")?;
            } else {
                writeln!(
                    out,
                    "refused     the newest {} connections that ended without a login:",
                    failures.len()
                )?;
                for f in failures {
                    writeln!(out, "  {}", describe_failure(&f))?;
                }
            }
            Ok(0)
        }
        TenantCommand::Set {
            subdomain,
            admin_name,
            admin_email,
            timezone,
            sso,
            window,
            allow_from,
            absent,
            hold_updates,
            hold_deactivations,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let absent = absent
                .map(|a| crate::domain::safety::Absent::parse(&a))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let percent = |flag: &str, v: Option<String>| {
                v.map(|v| crate::domain::safety::parse_percent(flag, &v))
                    .transpose()
                    .map_err(anyhow::Error::msg)
            };
            let hold_updates = percent("--hold-updates", hold_updates)?;
            let hold_deactivations = percent("--hold-deactivations", hold_deactivations)?;
            if let Some(list) = allow_from.as_deref().filter(|l| *l != "any") {
                keys::check_address_patterns(list)
                    .map_err(|e| anyhow::anyhow!("--allow-from: {e}"))?;
            }
            let admin_email = admin_email
                .map(|e| {
                    crate::domain::email::EmailAddress::parse(&e).map(|e| e.as_str().to_owned())
                })
                .transpose()
                .map_err(|e| anyhow::anyhow!("--admin-email: {e}"))?;
            let timezone = match timezone.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(tz) => Some(Some(
                    parse_timezone(tz)
                        .map_err(anyhow::Error::msg)?
                        .name()
                        .to_owned(),
                )),
            };
            let window = match window.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(w) => Some(Some(
                    w.parse::<Window>().map_err(anyhow::Error::msg)?.to_string(),
                )),
            };
            if let Some(name) = &admin_name {
                anyhow::ensure!(!name.trim().is_empty(), "--admin-name must not be empty");
            }
            // Everything is checked: only now is anything changed.
            match allow_from.as_deref() {
                None => {}
                Some("any") => store.set_allow_from(t.id, None)?,
                Some(list) => store.set_allow_from(t.id, Some(list))?,
            }
            if let Some(a) = absent {
                crate::store::set_absent(&store.conn, t.id, a)?;
            }
            crate::store::set_hold_limits(&store.conn, t.id, hold_updates, hold_deactivations)?;
            store.update_tenant(
                t.id,
                admin_name.as_deref().map(str::trim),
                admin_email.as_deref(),
                timezone.as_ref().map(|o| o.as_deref()),
                sso,
                window.as_ref().map(|o| o.as_deref()),
            )?;
            writeln!(out, "updated tenant {}", t.subdomain)?;
            Ok(0)
        }
        TenantCommand::Pause {
            subdomain,
            from,
            until,
            additions_only,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let tz = tenant_tz(config, &t);
            let from = from.unwrap_or_else(|| clock.now().with_timezone(&tz).date_naive());
            let pause = crate::domain::safety::Pause::new(from, until, additions_only)
                .map_err(anyhow::Error::msg)?;
            crate::store::set_pause(&store.conn, t.id, Some(pause))?;
            writeln!(out, "{} is paused {}", t.subdomain, pause.describe())?;
            Ok(0)
        }
        TenantCommand::Resume { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            crate::store::set_pause(&store.conn, t.id, None)?;
            writeln!(
                out,
                "{} is not paused: its next upload is imported in its window as usual",
                t.subdomain
            )?;
            Ok(0)
        }
        TenantCommand::Disable { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            store.set_disabled(t.id, true)?;
            writeln!(
                out,
                "disabled tenant {}: its logins and imports are refused until `rosterd tenant enable {}`",
                t.subdomain, t.subdomain
            )?;
            Ok(0)
        }
        TenantCommand::Enable { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            store.set_disabled(t.id, false)?;
            writeln!(out, "enabled tenant {}", t.subdomain)?;
            Ok(0)
        }
        TenantCommand::Map {
            subdomain,
            header,
            field,
            remove,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let key = header::header_key(&header);
            anyhow::ensure!(!key.is_empty(), "the column header must not be empty");
            if remove {
                if !store.remove_column(t.id, &key)? {
                    bail!("tenant {} has no mapping for {header:?}", t.subdomain);
                }
                writeln!(out, "removed the mapping of {header:?}")?;
                return Ok(0);
            }
            let field = field.context("FIELD is required")?;
            let label = mapping_target_label(&field)?;
            store.set_column(t.id, &key, header.trim(), label)?;
            writeln!(
                out,
                "{}: column {:?} -> {label}",
                t.subdomain,
                header.trim()
            )?;
            Ok(0)
        }
    }
}

/// The canonical name of a mapping target: a field of any import kind, or `ignore`.
fn mapping_target_label(text: &str) -> anyhow::Result<&'static str> {
    match header::parse_target::<UserField>(text) {
        Ok(header::Mapped::Field(f)) => Ok(f.label()),
        Ok(header::Mapped::Ignore) => Ok(header::IGNORE),
        Err(_) => match header::header_key(text).as_str() {
            "ownername" | "owner" => Ok("Owner Name"),
            "groupname" | "group" => Ok("Group Name"),
            _ => bail!(
                "{text:?} is not a field; use one of: {}, Owner Name, Group Name, or ignore",
                UserField::ALL
                    .iter()
                    .map(|f| f.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

fn effective_timezone(config: &Config, t: &Tenant) -> String {
    t.timezone
        .clone()
        .unwrap_or_else(|| config.schedule.timezone.name().to_owned())
}

/// The district's time zone: its own, else the config's.
fn tenant_tz(config: &Config, t: &Tenant) -> chrono_tz::Tz {
    t.timezone_or(config.schedule.timezone)
}

fn effective_window(config: &Config, t: &Tenant) -> String {
    t.window
        .clone()
        .unwrap_or_else(|| config.schedule.window.to_string())
}

fn key_command(
    config: &Config,
    clock: &dyn Clock,
    cmd: KeyCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    match cmd {
        KeyCommand::Add {
            subdomain,
            file,
            from,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let text = read_input(&file)?;
            let mut parsed = keys::parse_public_keys(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if let Some(list) = &from {
                keys::check_address_patterns(list).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
                for key in &mut parsed {
                    key.from = Some(list.clone());
                }
            }
            let added = store.add_keys(&t, &parsed, clock.now())?;
            for (key, added) in parsed.iter().zip(added) {
                writeln!(out, "{}", key.fingerprint)?;
                let note = match added {
                    store::KeyAdded::New => "registered",
                    store::KeyAdded::Already => "already registered",
                    store::KeyAdded::FromChanged => {
                        "already registered; address restriction updated"
                    }
                };
                let whence = key.from.as_deref().map_or_else(
                    || "from any address".to_owned(),
                    |f| format!("only from {f}"),
                );
                eprintln!(
                    "{note}: {} {} key {} for {}, {whence}",
                    key.kind, key.bits, key.comment, t.subdomain
                );
                if !key.ignored_options.is_empty() {
                    eprintln!(
                        "ignored options: {} (an upload-only server runs no commands, terminals or forwarding; only from= applies)",
                        key.ignored_options.join(", ")
                    );
                }
            }
            Ok(0)
        }
        KeyCommand::List { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            let keys = store.keys(t.id)?;
            if keys.is_empty() {
                writeln!(
                    out,
                    "{} has no keys; add one with `rosterd key add {} FILE`",
                    t.subdomain, t.subdomain
                )?;
            }
            for k in keys {
                let state = match &k.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".into(),
                };
                let whence = k
                    .from
                    .as_deref()
                    .map_or_else(|| "from anywhere".to_owned(), |f| format!("from {f}"));
                writeln!(
                    out,
                    "{} {:<7} {:<5} added {} {state} {whence} {}",
                    k.fingerprint, k.kind, k.bits, k.added_at, k.comment
                )?;
            }
            Ok(0)
        }
        KeyCommand::Revoke {
            subdomain,
            fingerprint,
        } => {
            let t = store.require_tenant(&subdomain)?;
            if !store.revoke_key(t.id, fingerprint.trim(), clock.now())? {
                bail!(
                    "{} has no active key {}; `rosterd key list {}` shows its keys",
                    t.subdomain,
                    fingerprint.trim(),
                    t.subdomain
                );
            }
            writeln!(
                out,
                "revoked {} for {}; the next login with it is refused",
                fingerprint.trim(),
                t.subdomain
            )?;
            Ok(0)
        }
    }
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

/// Columns of a schools CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SchoolField {
    Name,
    Nces,
    State,
}

impl FieldSet for SchoolField {
    const ALL: &'static [Self] = &[Self::Name, Self::Nces, Self::State];
    const REQUIRED: Self = Self::Name;
    fn label(self) -> &'static str {
        match self {
            Self::Name => "Name",
            Self::Nces => "NCES ID",
            Self::State => "State ID",
        }
    }
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::Name => &["school", "schoolname"],
            Self::Nces => &["nces", "ncesschoolid", "ncesid"],
            Self::State => &["state", "stateschoolid", "stateassignedid", "statecode"],
        }
    }
}

fn school_command(
    config: &Config,
    cmd: SchoolCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    let blank_none = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    match cmd {
        SchoolCommand::Add {
            subdomain,
            name,
            nces,
            state_id,
        } => {
            let t = store.require_tenant(&subdomain)?;
            store.add_school(
                t.id,
                &name,
                blank_none(nces).as_deref(),
                blank_none(state_id).as_deref(),
            )?;
            writeln!(out, "added school {:?} to {}", name.trim(), t.subdomain)?;
            Ok(0)
        }
        SchoolCommand::List { subdomain } => {
            let t = store.require_tenant(&subdomain)?;
            let mut w = crate::domain::text::CsvOut::new(out);
            w.row(["Name", "NCES ID", "State ID"])?;
            for s in store.schools(t.id)? {
                w.row([
                    s.name,
                    s.nces_id.unwrap_or_default(),
                    s.state_id.unwrap_or_default(),
                ])?;
            }
            w.flush()?;
            Ok(0)
        }
        SchoolCommand::Import { subdomain, file } => {
            let t = store.require_tenant(&subdomain)?;
            let scan = import::decode::scan(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut rows = import::decode::CsvRows::open(&file, scan.encoding)?;
            let mut header = csv::StringRecord::new();
            if rows.next(&mut header)?.is_none() {
                bail!("{}: the file has no header line", file.display());
            }
            let columns = header::match_columns::<SchoolField>(&header, &Default::default())
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let tx = store.conn.unchecked_transaction()?;
            let mut errors = Vec::new();
            let mut added = 0;
            let mut record = csv::StringRecord::new();
            while let Some(line) = rows.next(&mut record)? {
                let cell = |f| Some(columns.get(&record, f).to_owned());
                match store::add_school_in(
                    &tx,
                    t.id,
                    columns.get(&record, SchoolField::Name),
                    blank_none(cell(SchoolField::Nces)).as_deref(),
                    blank_none(cell(SchoolField::State)).as_deref(),
                ) {
                    Ok(_) => added += 1,
                    Err(store::StoreError::Sqlite(e)) => return Err(e.into()),
                    Err(e) => errors.push(format!("line {line}: {e}")),
                }
            }
            if !errors.is_empty() {
                drop(tx);
                bail!(
                    "{}: nothing was added because of these problems:\n  {}",
                    file.display(),
                    errors.join("\n  ")
                );
            }
            tx.commit()?;
            writeln!(out, "added {added} schools to {}", t.subdomain)?;
            Ok(0)
        }
    }
}

/// An importer: `import::users::import` or `import::groups::import`.
type Importer = fn(
    &mut rusqlite::Connection,
    &ImportContext,
    &Tenant,
    &std::path::Path,
    &ImportOptions,
) -> anyhow::Result<import::Report>;

/// `import users` and `import groups`: import a file now, print the report.
fn import_file(
    config: &Config,
    clock: Arc<dyn Clock>,
    args: ImportArgs,
    importer: Importer,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut store = open_store(config)?;
    let tenant = store.require_tenant(&args.subdomain)?;
    anyhow::ensure!(
        !tenant.disabled,
        "tenant {} is disabled, so nothing is imported for it; `rosterd tenant enable {}` first",
        tenant.subdomain,
        tenant.subdomain
    );
    anyhow::ensure!(
        args.file.is_file(),
        "{} is not a readable file",
        args.file.display()
    );
    let ctx = crate::daemon::import_context(config, clock.clone())?;
    let opts = ImportOptions {
        dry_run: args.dry_run,
        force: args.force,
        source: Source::Cli,
        upload_id: None,
        file_name: args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        email: args.email && !args.dry_run,
        // Support's own import: no hold, and applied whole during a pause.
        holds: None,
        additions_only: false,
        notes: Vec::new(),
    };
    let report = importer(&mut store.conn, &ctx, &tenant, &args.file, &opts)?;
    if args.email && args.dry_run {
        // A dry run stores nothing, so its email is queued on its own.
        let now = ctx.clock.now();
        let mail = ctx
            .composer
            .report(&tenant, ctx.timezone_of(&tenant), &report, None, now)?;
        crate::mail::queue(&store.conn, &mail, now)?;
    }
    print_report(&report, args.format, out)?;
    if let Some(reason) = &report.reason {
        eprintln!("error: {reason}");
    }
    if args.email {
        deliver_now(config, clock)?;
    }
    Ok(report.exit_code())
}

/// Try the mail queue once now, so a support command's report goes out (or
/// lands in the outbox directory) without waiting for the daemon; whatever
/// cannot be delivered stays queued for it.
fn deliver_now(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let conn = open_store(config)?.conn;
    let mailer = crate::mail::Mailer::new(&config.mail, conn, clock)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pass = runtime.block_on(mailer.run_once())?;
    let queued = crate::mail::queue_length(&open_store(config)?.conn)?;
    let target = crate::mail::Mailer::describe(&config.mail);
    match (pass.sent, queued) {
        (0, 0) => {}
        (sent, 0) => eprintln!("emailed {sent} message(s) via {target}"),
        (sent, queued) => eprintln!(
            "emailed {sent} message(s) via {target}; {queued} still queued (`rosterd serve` retries them; `rosterd status` shows why)"
        ),
    }
    Ok(())
}

/// One refused connection: when, from where, as whom, why.
fn describe_failure(f: &store::ConnectionFailure) -> String {
    let user = f
        .username
        .as_deref()
        .map(|u| format!(" as {u:?}"))
        .unwrap_or_default();
    format!("{} from {}{user}: {}", f.at, f.address, f.reason)
}

/// One throttle: how many failed logins from where since when, until when,
/// and what was tried (`at` shows a stored time as the reader's).
fn describe_throttle(t: &store::LoginThrottle, at: impl Fn(&str) -> String) -> String {
    let tried = if t.tried.is_empty() {
        String::new()
    } else if t.tenant_id.is_some() {
        format!("; keys tried: {}", t.tried)
    } else {
        format!("; usernames tried: {}", t.tried)
    };
    format!(
        "{} failed logins from {} since {}, throttled until {} (its refused logins are answered one a second; a registered key still logs in at once){tried}",
        t.failures,
        t.address,
        at(&t.since),
        at(&t.until)
    )
}

/// `rosterd status`: one block per tenant, then the mail queue.
fn status(config: &Config, clock: &dyn Clock, out: &mut impl Write) -> anyhow::Result<i32> {
    use crate::mail::compose::local;
    let store = open_store(config)?;
    let now = clock.now();
    let tenants = store.tenants()?;
    if tenants.is_empty() {
        writeln!(
            out,
            "no districts yet: `rosterd tenant add SUBDOMAIN --admin-name NAME --admin-email EMAIL`"
        )?;
    }
    let at = |text: &str, tz| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|d| local(d.to_utc(), tz))
            .unwrap_or_else(|_| text.to_owned())
    };
    for t in &tenants {
        let tz = tenant_tz(config, t);
        let window = t.window_or(config.schedule.window);
        let st = crate::store::tenant_status(&store.conn, t.id)?;
        let disabled = if t.disabled { ", DISABLED" } else { "" };
        writeln!(out, "{} ({tz}, window {window}{disabled})", t.subdomain)?;
        match &st.last_upload {
            Some((received, size, state)) => writeln!(
                out,
                "  last upload   {}, {} ({state})",
                at(received, tz),
                crate::domain::report::human_size(*size as u64)
            )?,
            None => writeln!(out, "  last upload   never")?,
        }
        match &st.last_run {
            Some((finished, outcome, created, updated, errors)) => writeln!(
                out,
                "  last import   {}: {outcome}, {created} created, {updated} updated, {errors} errors",
                at(finished, tz)
            )?,
            None => writeln!(out, "  last import   never")?,
        }
        if let Some((id, received, attempts, why)) = &st.failed {
            writeln!(
                out,
                "  FAILED        upload {id} (received {}) not imported after {attempts} attempt(s): {why}",
                at(received, tz)
            )?;
            writeln!(
                out,
                "                the administrator was told; its passwords-blanked copy is upload-{id}.csv in the district's archive"
            )?;
        }
        match &st.pending_since {
            Some(since) => writeln!(out, "  pending       users.csv received {}", at(since, tz))?,
            None => writeln!(out, "  pending       none")?,
        }
        for h in crate::spool::held(&store.conn, t.id)? {
            writeln!(
                out,
                "  HELD          run {} (upload {}, received {}): {}",
                h.run_id,
                h.upload_id,
                at(&h.received_at, tz),
                crate::domain::text::echo(&h.reason, crate::domain::text::MESSAGE_CHARS)
            )?;
            writeln!(
                out,
                "                review: rosterd runs {sub} --id {run} --changes; then rosterd import approve {sub} {run} (or discard)",
                sub = t.subdomain,
                run = h.run_id
            )?;
        }
        if let Some(p) = t.pause {
            let today = now.with_timezone(&tz).date_naive();
            let when = if p.covers(today) {
                "PAUSED"
            } else if today < p.from {
                "pause planned"
            } else {
                "pause ended"
            };
            writeln!(out, "  {when:<13} {}", p.describe())?;
        }
        if window.is_open(tz, now) {
            writeln!(
                out,
                "  window        open now, closes {}",
                local(window.next_close(tz, now), tz)
            )?;
        } else {
            writeln!(
                out,
                "  window        opens {}",
                local(window.next_opening(tz, now), tz)
            )?;
        }
        writeln!(out, "  mail queued   {}", st.mail_queued)?;
        if let Some(f) = store::connection_failures(&store.conn, Some(t.id), 1)?.first() {
            writeln!(out, "  last refused  {}", describe_failure(f))?;
        }
        for th in store::login_throttles(&store.conn, Some(t.id), now)? {
            writeln!(
                out,
                "  THROTTLED     {}",
                describe_throttle(&th, |s| at(s, tz))
            )?;
        }
    }
    let throttled = store::login_throttles(&store.conn, None, now)?;
    if !throttled.is_empty() {
        writeln!(out, "addresses throttled for logins naming no district:")?;
        for th in &throttled {
            writeln!(
                out,
                "  {}",
                describe_throttle(th, |s| at(s, config.schedule.timezone))
            )?;
        }
    }
    let unknown = store::connection_failures(&store.conn, None, 5)?;
    if !unknown.is_empty() {
        writeln!(
            out,
            "connections that failed before naming a district (newest {}):",
            unknown.len()
        )?;
        for f in &unknown {
            writeln!(out, "  {}", describe_failure(f))?;
        }
    }
    let outbox = crate::mail::outbox(&store.conn)?;
    let queued = outbox.iter().filter(|m| m.state == "queued").count();
    let failed: Vec<_> = outbox.iter().filter(|m| m.state == "failed").collect();
    writeln!(
        out,
        "mail: {queued} queued, {} failed, {} sent (via {})",
        failed.len(),
        outbox.iter().filter(|m| m.state == "sent").count(),
        crate::mail::Mailer::describe(&config.mail)
    )?;
    for m in outbox.iter().filter(|m| m.state != "sent") {
        writeln!(
            out,
            "  #{} {} to {} ({}, {} attempts){}",
            m.id,
            m.kind,
            m.recipient,
            m.state,
            m.attempts,
            m.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )?;
    }
    Ok(0)
}

/// `import run`: import the pending upload now.
fn import_run(
    config: &Config,
    clock: Arc<dyn Clock>,
    subdomain: &str,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut store = open_store(config)?;
    let tenant = store.require_tenant(subdomain)?;
    anyhow::ensure!(
        !tenant.disabled,
        "tenant {} is disabled, so nothing is imported for it; `rosterd tenant enable {}` first",
        tenant.subdomain,
        tenant.subdomain
    );
    let scheduler = crate::scheduler::Scheduler::new(
        config,
        crate::daemon::import_context(config, clock.clone())?,
    );
    crate::spool::archive_leftovers(&store.conn, &config.storage.spool)?;
    crate::spool::adopt_unrecorded(
        &store.conn,
        &scheduler.spool_of(&tenant),
        tenant.id,
        clock.now(),
    )?;
    let code = match scheduler.import_next(&mut store.conn, &tenant)? {
        crate::scheduler::Next::Imported(report) => {
            print_report(&report, format, out)?;
            if let Some(reason) = &report.reason {
                eprintln!("error: {reason}");
            }
            report.exit_code()
        }
        crate::scheduler::Next::Nothing => anyhow::bail!(
            "{} has no pending upload to import; `rosterd status` shows its last upload and import",
            tenant.subdomain
        ),
        crate::scheduler::Next::Busy => anyhow::bail!(
            "{}'s upload is being imported right now (by the daemon); its report will be emailed. `rosterd runs {}` shows it when done",
            tenant.subdomain,
            tenant.subdomain
        ),
        crate::scheduler::Next::Failed(why) => {
            eprintln!(
                "error: gave up importing {}'s upload after {} attempts: {why}; the administrator is emailed",
                tenant.subdomain,
                crate::scheduler::MAX_ATTEMPTS
            );
            1
        }
    };
    deliver_now(config, clock)?;
    Ok(code)
}

/// A value of a change list as a person reads it: `(blank)` for nothing.
fn show_or_blank(v: &str) -> std::borrow::Cow<'_, str> {
    if v.is_empty() {
        "(blank)".into()
    } else {
        crate::domain::text::echo(v, crate::domain::text::ECHO_CHARS)
    }
}

fn print_report(
    report: &import::Report,
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

/// `users export`: the fixed header (SPEC 6, then Status: `active` or
/// `inactive`), then one row per user sorted by username.
pub fn export_users(store: &Store, tenant: &Tenant, out: impl Write) -> anyhow::Result<()> {
    let mut w = crate::domain::text::CsvOut::new(out);
    w.row([
        "Username",
        "Email Address",
        "First Name",
        "Last Name",
        "School",
        "Graduation Year",
        "Access Type",
        "User Type",
        "Status",
    ])?;
    store.for_each_user(tenant.id, |u| {
        let year = u.graduation_year.map(|y| y.to_string()).unwrap_or_default();
        let kind = if u.graduation_year.is_some() {
            "student"
        } else {
            "staff"
        };
        w.row([
            u.username.as_str(),
            u.email.as_deref().unwrap_or(""),
            u.first_name.as_deref().unwrap_or(""),
            u.last_name.as_deref().unwrap_or(""),
            u.school.as_deref().unwrap_or(""),
            year.as_str(),
            u.access_type.as_deref().unwrap_or(""),
            kind,
            if u.active { "active" } else { "inactive" },
        ])
        .map_err(std::io::Error::other)
    })?;
    w.flush()?;
    Ok(())
}

/// `runs undo`: undo a run, or show what undoing it would do.
fn undo_command(
    config: &Config,
    clock: Arc<dyn Clock>,
    subdomain: &str,
    run: i64,
    apply: bool,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut store = open_store(config)?;
    let t = store.require_tenant(subdomain)?;
    let ctx = crate::daemon::import_context(config, clock.clone())?;
    let undo = import::journal::undo(&mut store.conn, &ctx, &t, run, apply)?;
    if apply {
        let id = undo.report.run_id.unwrap_or_default();
        writeln!(
            out,
            "undid run {run} of {} as run {id}: {} users restored, {} deactivated; the administrator is emailed",
            t.subdomain, undo.restored, undo.deactivated
        )?;
        deliver_now(config, clock)?;
    } else {
        writeln!(
            out,
            "DRY RUN: undoing run {run} of {} would restore {} users and deactivate {}; nothing was changed.",
            t.subdomain, undo.restored, undo.deactivated
        )?;
        writeln!(
            out,
            "what run {run} changed: rosterd runs {} --id {run} --changes\nto do it: rosterd runs undo {} {run} --apply",
            t.subdomain, t.subdomain
        )?;
    }
    Ok(0)
}

fn runs_command(config: &Config, args: RunsArgs, out: &mut impl Write) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    let t = store.require_tenant(args.subdomain.as_deref().unwrap_or_default())?;
    if let (Some(id), true) = (args.id, args.changes) {
        // Checked first, so an unknown run is an error, not an empty list.
        store::load_report(&store.conn, t.id, id)?;
        // A held run applied nothing: its preview, as emailed, is the list.
        let held: Option<String> = store.conn.query_row(
            "SELECT held_changes FROM import_runs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if let Some(preview) = held {
            eprintln!(
                "run {id} was held: nothing was applied; these are the changes it would make (the administrator's changes.csv)"
            );
            out.write_all(preview.as_bytes())?;
            return Ok(0);
        }
        if args.format == Format::Csv {
            let mut w = crate::domain::text::CsvOut::new(&mut *out);
            w.row(import::journal::CHANGES_HEADER)?;
            import::journal::for_each_change(&store.conn, t.id, id, |c| Ok(w.row(c.cells())?))?;
            w.flush()?;
            return Ok(0);
        }
        let mut any = false;
        import::journal::for_each_change(&store.conn, t.id, id, |c| {
            any = true;
            let what = if c.field.is_empty() {
                String::new()
            } else {
                format!(
                    "  {}: {} -> {}",
                    c.field,
                    show_or_blank(&c.before),
                    show_or_blank(&c.after)
                )
            };
            writeln!(
                out,
                "{:<32} {:<11}{what}",
                crate::domain::text::echo(&c.username, crate::domain::text::ECHO_CHARS),
                c.change
            )?;
            Ok(())
        })?;
        if !any {
            writeln!(
                out,
                "run {id} changed no user (only users imports and undos journal their changes)"
            )?;
        }
        return Ok(0);
    }
    if let Some(id) = args.id {
        let report = store::load_report(&store.conn, t.id, id)?;
        print_report(&report, args.format, out)?;
        return Ok(0);
    }
    let runs = store.runs(t.id, args.limit)?;
    if runs.is_empty() {
        writeln!(out, "{} has no imports yet", t.subdomain)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:>5} {:<20} {:<6} {:<6} {:<20} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
        "ID",
        "FINISHED",
        "KIND",
        "SOURCE",
        "OUTCOME",
        "ROWS",
        "CREATED",
        "UPDATED",
        "UNCHANGED",
        "SKIPPED",
        "WARN"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:>5} {:<20} {:<6} {:<6} {:<20} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7}",
            r.id,
            r.finished_at,
            r.kind,
            r.source,
            r.outcome,
            r.rows,
            r.created,
            r.updated,
            r.unchanged,
            r.skipped,
            r.warnings
        )?;
        if let Some(reason) = r.reason {
            writeln!(out, "      why: {reason}")?;
        }
        if let Some(resolution) = r.resolution {
            writeln!(out, "      then: {resolution}")?;
        }
    }
    writeln!(
        out,
        "\nfull report of one run: rosterd runs {} --id ID",
        t.subdomain
    )?;
    Ok(0)
}
