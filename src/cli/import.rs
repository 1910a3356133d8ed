//! `rosterd import`: support's imports by hand, the override of the nightly
//! window, and the approval or discarding of held imports.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};

use super::{Format, open_store, print_report};
use crate::clock::Clock;
use crate::config::Config;
use crate::import::progress::{Note, Phase, Progress, Say, Silent, Snapshot, Watch};
use crate::import::{self, ImportContext, ImportOptions, Source};
use crate::store::Tenant;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import a users.csv file now and print the report
    #[command(
        after_help = "Exit codes: 0 applied, 1 rejected (nothing applied), 3 applied but some rows were skipped. \
A dry run exits as the real import would.\n\n\
A long import shows how far it has got on standard error: a bar on a terminal (phase, rows done of\n\
the total, rate, time left), otherwise a line every 10 s once it has run that long\n\
(ROSTERD_PROGRESS_SECONDS sets the interval). `rosterd status` shows it too.\n\nExamples:\n  rosterd import users lincoln-usd users.csv --dry-run\n  \
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
at this moment, this says so and changes nothing.\n\n\
Exit codes: 0 applied, 1 rejected (nothing applied), 3 applied but some rows were skipped,\n\
4 held for approval (it changes more than the district's hold thresholds allow: nothing applied).\n\nExample:\n  rosterd import run lincoln-usd"
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
    /// Generate a password for every user the file creates without one
    /// (as a district with `tenant set --generate-passwords on` has
    /// nightly); needs --passwords-out
    #[arg(long, requires = "passwords_out")]
    generate_passwords: bool,
    /// Write the generated passwords to FILE as CSV (Username, First Name,
    /// Last Name, School, Password), created with mode 0600; refused if FILE
    /// exists. Hand them out, then delete the file
    #[arg(long, value_name = "FILE")]
    passwords_out: Option<PathBuf>,
}

/// An importer: `import::users::import_with_progress`, or
/// `import::groups::import` (quick: no passwords, and no progress to show).
type Importer = fn(
    &mut rusqlite::Connection,
    &ImportContext,
    &Tenant,
    &std::path::Path,
    &ImportOptions,
    &dyn Progress,
) -> anyhow::Result<import::Report>;

/// How often plain progress lines are printed when standard error is not a
/// terminal, unless `ROSTERD_PROGRESS_SECONDS` says otherwise.
const LINES_EVERY: Duration = Duration::from_secs(10);

/// A long import's progress on standard error: on a terminal a bar (phase,
/// done of total, rate, time left), cleared when done; otherwise, once the
/// import has run [`LINES_EVERY`], a line each interval and at each phase's
/// beginning and end, so a quick import prints nothing.
enum Shown {
    Bar(indicatif::ProgressBar),
    Lines(Watch<Say>),
}

impl Shown {
    fn on_stderr(district: &str) -> anyhow::Result<Self> {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_prefix(district.to_owned());
            bar.enable_steady_tick(Duration::from_millis(250));
            return Ok(Self::Bar(bar));
        }
        let every = match std::env::var("ROSTERD_PROGRESS_SECONDS") {
            Ok(s) => {
                Duration::from_secs_f64(s.parse::<f64>().ok().filter(|s| *s >= 0.0).ok_or_else(
                    || anyhow::anyhow!("ROSTERD_PROGRESS_SECONDS={s:?}: give a number of seconds"),
                )?)
            }
            Err(_) => LINES_EVERY,
        };
        let district = district.to_owned();
        let talking = std::sync::atomic::AtomicBool::new(false);
        let say = move |note: Note, at: &Snapshot| {
            use std::sync::atomic::Ordering::Relaxed;
            let phase = at.phase.label();
            match note {
                Note::Going => {
                    talking.store(true, Relaxed);
                    eprintln!("import {district}: {phase}: {}", at.describe());
                }
                Note::Began if talking.load(Relaxed) => {
                    let total = at
                        .total
                        .map(|t| {
                            format!(
                                " ({} {})",
                                crate::domain::report::thousands(t),
                                at.phase.unit()
                            )
                        })
                        .unwrap_or_default();
                    eprintln!("import {district}: {phase}{total}");
                }
                Note::Ended if talking.load(Relaxed) => {
                    eprintln!("import {district}: {phase}: done, {}", at.describe_done());
                }
                _ => {}
            }
        };
        Ok(Self::Lines(Watch::new(every, Box::new(say))))
    }
}

impl Progress for Shown {
    fn phase(&self, phase: Phase, total: Option<u64>) {
        match self {
            Self::Bar(bar) => {
                let template = match (phase, total) {
                    (Phase::Reading, Some(_)) => {
                        "{prefix}: {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {eta} left"
                    }
                    (Phase::Rows, Some(_)) => {
                        "{prefix}: {msg} [{bar:30}] {human_pos}/{human_len} rows, {rate} rows/s, {eta} left"
                    }
                    _ => "{prefix}: {msg} {spinner} {elapsed}",
                };
                if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> ").with_key(
                        "rate",
                        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{:.0}", state.per_sec());
                        },
                    ));
                }
                bar.set_message(phase.label());
                bar.reset();
                bar.set_length(total.unwrap_or(0));
            }
            Self::Lines(watch) => watch.phase(phase, total),
        }
    }

    fn advance(&self, n: u64) {
        match self {
            Self::Bar(bar) => bar.inc(n),
            Self::Lines(watch) => watch.advance(n),
        }
    }

    fn end(&self) {
        match self {
            Self::Bar(bar) => bar.finish_and_clear(),
            Self::Lines(watch) => watch.end(),
        }
    }
}

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
    check_passwords_out(&tenant, &args)?;
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
        generate_passwords: args.generate_passwords,
        passwords_out: args.passwords_out.clone(),
    };
    // On the district's board for `rosterd status`, unless another import
    // of the district has it.
    let board = crate::spool::TenantSpool::new(&config.storage.spool, &tenant.subdomain)
        .progress_board(Source::Cli.as_str(), &opts.file_name, None)
        .unwrap_or(None);
    let shown = Shown::on_stderr(&tenant.subdomain)?;
    let progress = (
        board.as_ref().map_or(&Silent as &dyn Progress, |b| b),
        &shown,
    );
    let report = importer(&mut store.conn, &ctx, &tenant, &args.file, &opts, &progress);
    shown.end();
    drop(board);
    let report = report?;
    if args.email && args.dry_run {
        // A dry run stores nothing, so its email is queued on its own.
        let now = ctx.clock.now();
        let tz = ctx.timezone_of(&tenant);
        let trend = match report.kind {
            "users" => Some(crate::mail::compose::trend(
                &store.conn,
                tenant.id,
                tz,
                now,
                Some(crate::domain::trend::RunFigures::of(&report, now)),
            )?),
            _ => None,
        };
        let mail = ctx.composer.report(
            &tenant,
            tz,
            &report,
            None,
            trend.as_ref(),
            crate::domain::credentials::Delivery::None,
            now,
        )?;
        crate::mail::queue(&store.conn, &mail, now)?;
    }
    // A reader gone away (`| head`) changes neither the exit status nor
    // what follows (the email).
    super::ignore_closed_pipe(print_report(&report, args.format, out))?;
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
pub(super) fn deliver_now(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let conn = open_store(config)?.conn;
    // Counted nowhere: only the daemon serves metrics.
    let mailer = crate::mail::Mailer::new(&config.mail, conn, clock, Default::default())?;
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
    if pass.failed > 0 {
        eprintln!(
            "{} message(s) refused for good by the mail server, not retried (`rosterd status` shows its answer)",
            pass.failed
        );
    }
    Ok(())
}

/// Nothing is imported for a disabled district, by the daemon or by hand.
fn refuse_disabled(tenant: &Tenant) -> anyhow::Result<()> {
    anyhow::ensure!(
        !tenant.disabled,
        "tenant {} is disabled, so nothing is imported for it and nothing changed; `rosterd tenant enable {}` first",
        tenant.subdomain,
        tenant.subdomain
    );
    Ok(())
}

/// `import run`: import the pending upload now.
pub(super) fn import_run(
    config: &Config,
    clock: Arc<dyn Clock>,
    subdomain: &str,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut store = open_store(config)?;
    let tenant = store.require_tenant(subdomain)?;
    refuse_disabled(&tenant)?;
    // Support's import is not the daemon's: its metrics are counted nowhere
    // (the district's gauges, read from the store, still show it).
    let scheduler = crate::scheduler::Scheduler::new(
        config,
        crate::daemon::import_context(config, clock.clone())?,
        Default::default(),
    );
    crate::spool::archive_leftovers(&store.conn, &config.storage.spool)?;
    crate::spool::adopt_unrecorded(
        &store.conn,
        &scheduler.spool_of(&tenant),
        tenant.id,
        clock.now(),
    )?;
    let shown = Shown::on_stderr(&tenant.subdomain)?;
    let next =
        scheduler.import_next_showing(&mut store.conn, &tenant, crate::scheduler::Show::By(&shown));
    shown.end();
    let code = match next? {
        crate::scheduler::Next::Imported(report) => {
            super::ignore_closed_pipe(print_report(&report, format, out))?;
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

/// `rosterd import …`.
pub(super) fn import_command(
    config: &Config,
    clock: Arc<dyn Clock>,
    cmd: ImportCommand,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    match cmd {
        ImportCommand::Users(args) => import_file(
            config,
            clock,
            args,
            import::users::import_with_progress,
            out,
        ),
        ImportCommand::Groups(args) => import_file(
            config,
            clock,
            args,
            |conn, ctx, tenant, path, opts, _| {
                import::groups::import(conn, ctx, tenant, path, opts)
            },
            out,
        ),
        ImportCommand::Run { subdomain, format } => {
            let store = open_store(config)?;
            let t = store.require_tenant(&subdomain)?;
            let tz = super::tenant::tenant_tz(config, &t);
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
            import_run(config, clock, &subdomain, format, out)
        }
        ImportCommand::Approve {
            subdomain,
            run,
            format,
        } => {
            let store = open_store(config)?;
            let t = store.require_tenant(&subdomain)?;
            // Before anything is recorded: an approval that cannot be
            // applied now must leave the run held, to approve or discard later.
            refuse_disabled(&t)?;
            let upload = crate::spool::approve(&store.conn, t.id, run, clock.now())?;
            eprintln!(
                "approved run {run} (upload {upload}) of {}; importing it now",
                t.subdomain
            );
            drop(store);
            import_run(config, clock, &subdomain, format, out)
        }
        ImportCommand::Discard { subdomain, run } => {
            let store = open_store(config)?;
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
    }
}

/// Where the passwords a manual import generates go, checked before the
/// import starts: a district that has them generated needs `--passwords-out`
/// or `--email` (else they would reach nobody), and the file must not exist.
fn check_passwords_out(tenant: &Tenant, args: &ImportArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.passwords_out {
        super::passwords::refuse_existing(path)?;
    } else if tenant.generate_passwords && !args.email && !args.dry_run {
        bail!(
            "{} has passwords generated for new users (`tenant show` says so), so this import must deliver them: add --passwords-out FILE to write them to a file, or --email to send them with the report",
            tenant.subdomain
        );
    }
    Ok(())
}
