//! `rosterd users reset-passwords`: new generated passwords for some of a
//! district's users, written as CSV for support to hand over, and undoable
//! like an import (`rosterd runs undo`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Args};

use super::open_store;
use crate::clock::Clock;
use crate::config::Config;
use crate::import::passwords::{self, Selection};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("who").required(true).args(["run", "without_password", "usernames"])))]
pub struct ResetArgs {
    /// The district
    subdomain: String,
    /// The users run N created, still active (when their new-passwords.csv
    /// was lost, or too many to email)
    #[arg(long, value_name = "N")]
    run: Option<i64>,
    /// Every active user that has no password
    #[arg(long)]
    without_password: bool,
    /// These users, by username
    #[arg(value_name = "USERNAME")]
    usernames: Vec<String>,
    /// Write the CSV to FILE (created with mode 0600; refused if FILE
    /// exists) instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Refuse a passwords file that exists (or is a dangling link): passwords
/// go only to a new file, never over one, checked before anything changes.
pub(super) fn refuse_existing(path: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !path.exists() && !path.is_symlink(),
        "{} exists; the passwords go only to a new file (move it away, or choose another name)",
        path.display()
    );
    Ok(())
}

/// Reset, then write `new-passwords.csv` to `--out` (before the change is
/// committed, so committed passwords are never lost) or to `out` after it.
pub(super) fn reset_passwords(
    config: &Config,
    clock: Arc<dyn Clock>,
    args: ResetArgs,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    if let Some(path) = &args.out {
        refuse_existing(path)?;
    }
    let mut store = open_store(config)?;
    let tenant = store.require_tenant(&args.subdomain)?;
    let ctx = crate::daemon::import_context(config, clock)?;
    let selection = match (args.run, args.without_password) {
        (Some(run), _) => Selection::Run(run),
        (None, true) => Selection::WithoutPassword,
        (None, false) => Selection::Usernames(args.usernames),
    };
    let file = args.out.clone();
    let reset = passwords::reset(
        &mut store.conn,
        &ctx,
        &tenant,
        &selection,
        |issued| match &file {
            Some(path) => crate::import::write_passwords(path, issued),
            None => Ok(()),
        },
    )?;
    let n = reset.issued.len();
    let run = reset.report.run_id.unwrap_or_default();
    let sub = &tenant.subdomain;
    let summary = format!(
        "set new passwords for {n} {} of {sub} (run {run}); their old passwords no longer work",
        if n == 1 { "user" } else { "users" }
    );
    match &args.out {
        Some(path) => {
            writeln!(out, "{summary}")?;
            writeln!(
                out,
                "wrote {} (Username, First Name, Last Name, School, Password): hand each user their password, then delete the file",
                path.display()
            )?;
            writeln!(
                out,
                "to put the old passwords back: rosterd runs undo {sub} {run} --apply"
            )?;
        }
        None => {
            out.write_all(&reset.issued.to_csv())?;
            out.flush()?;
            eprintln!(
                "{summary}; to put the old passwords back: rosterd runs undo {sub} {run} --apply"
            );
        }
    }
    Ok(0)
}
