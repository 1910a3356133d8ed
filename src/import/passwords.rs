//! Password resets: support sets new generated passwords for some of a
//! district's users (`rosterd users reset-passwords`), when a delivered
//! `new-passwords.csv` was lost or users never got one. A reset is a
//! journaled run of its own (kind `passwords`), so `rosterd runs undo` puts
//! the previous passwords back.

use rayon::prelude::*;
use rusqlite::Connection;
use zeroize::Zeroizing;

use super::journal::{self, Journal, field};
use super::{ImportContext, ImportOptions, Outcome, Report, Source};
use crate::domain::credentials::{Delivery, Issued, IssuedPassword};
use crate::store::{ResetSelection, Tenant};

/// Which users to reset, as support named them.
pub enum Selection {
    /// The users run N created (their delivered passwords were lost).
    Run(i64),
    /// Every active user without a password.
    WithoutPassword,
    /// These usernames.
    Usernames(Vec<String>),
}

/// What a reset did: its run (a report of kind `passwords`) and the new
/// passwords, which the caller delivers.
pub struct Reset {
    pub report: Report,
    pub issued: Issued,
}

/// Set a new generated password for each user `selection` names and commit
/// it as a journaled run. `before_commit` gets the passwords first (support's
/// `--out` file is written there, so committed passwords are never lost);
/// if it fails nothing is changed.
pub fn reset(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    selection: &Selection,
    before_commit: impl FnOnce(&Issued) -> anyhow::Result<()>,
) -> anyhow::Result<Reset> {
    super::without_foreign_keys(conn, |conn| {
        reset_fk_off(conn, ctx, tenant, selection, before_commit)
    })
}

fn reset_fk_off(
    conn: &mut Connection,
    ctx: &ImportContext,
    tenant: &Tenant,
    selection: &Selection,
    before_commit: impl FnOnce(&Issued) -> anyhow::Result<()>,
) -> anyhow::Result<Reset> {
    let keys: Vec<(String, String)>;
    let stored = match selection {
        Selection::Run(run) => ResetSelection::CreatedBy(*run),
        Selection::WithoutPassword => ResetSelection::WithoutPassword,
        Selection::Usernames(names) => {
            keys = names
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        super::fields::username_key(n.trim()).into_owned(),
                    )
                })
                .collect();
            ResetSelection::Usernames(&keys)
        }
    };
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (targets, unknown) = crate::store::reset_targets(&tx, tenant.id, &stored)?;
    if !unknown.is_empty() {
        anyhow::bail!(
            "{} has no user {}; nothing was changed (`rosterd users export {}` lists its users)",
            tenant.subdomain,
            unknown
                .iter()
                .map(|u| format!("{:?}", crate::domain::text::echo(u, 64)))
                .collect::<Vec<_>>()
                .join(", "),
            tenant.subdomain
        );
    }
    if let Some(t) = targets.iter().find(|t| !t.active) {
        anyhow::bail!(
            "{} is deactivated; nothing was changed (a deactivated user cannot sign in, and is reactivated by listing it in users.csv again)",
            t.username
        );
    }
    if targets.is_empty() {
        anyhow::bail!(match selection {
            Selection::Run(run) => format!(
                "run {run} of {} created no user that is still active; nothing was changed (`rosterd runs {}` lists the runs)",
                tenant.subdomain, tenant.subdomain
            ),
            _ => format!(
                "every active user of {} has a password; nothing was changed",
                tenant.subdomain
            ),
        });
    }
    // Generate and hash on all cores; Argon2 is the whole cost.
    let set: Vec<(Zeroizing<String>, String, Vec<u8>)> = targets
        .par_iter()
        .map(|t| {
            let password = Zeroizing::new(crate::password::generate());
            let hash = crate::password::hash(&password);
            let fp = ctx.fingerprinter.fingerprint(&t.username_key, &password);
            (password, hash, fp)
        })
        .collect();
    let run_id = journal::next_run_id(&tx)?;
    let now = ctx.clock.now().timestamp();
    let mut journal = Journal::new(run_id);
    let mut issued = Issued::default();
    for (t, (password, hash, fp)) in targets.into_iter().zip(set) {
        journal.record(&tx, t.id, "password reset", field::PASSWORD)?;
        crate::store::set_password(&tx, t.id, &hash, &fp, now)?;
        journal.flush_every(&tx, journal::BATCH)?;
        issued.push(IssuedPassword {
            username: t.username,
            first_name: t.first_name,
            last_name: t.last_name,
            school: t.school,
            password: password.to_string(),
        });
    }
    journal.flush(&tx)?;
    let opts = ImportOptions {
        dry_run: false,
        force: true,
        source: Source::Cli,
        upload_id: None,
        file_name: match selection {
            Selection::Run(run) => format!("password reset (users created by run {run})"),
            Selection::WithoutPassword => "password reset (users without a password)".into(),
            Selection::Usernames(_) => "password reset (users named by support)".into(),
        },
        email: false,
        holds: None,
        additions_only: false,
        notes: Vec::new(),
        generate_passwords: true,
        passwords_out: None,
    };
    let mut report = super::new_report(ctx, tenant, "passwords", &opts);
    let n = issued.len() as u64;
    report.counts.rows = n;
    report.counts.updated = n;
    report.counts.passwords_generated = n;
    report.outcome = Outcome::Applied;
    report.run_id = Some(run_id);
    report.finished_at = crate::store::timestamp(ctx.clock.now());
    super::record_run(&tx, ctx, tenant, &opts, &mut report, None, Delivery::None)?;
    before_commit(&issued)?;
    tx.commit()?;
    tracing::info!(district = %tenant.subdomain, run = run_id, users = n, "passwords reset");
    Ok(Reset { report, issued })
}
