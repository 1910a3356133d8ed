//! `rosterd users export`, `rosterd groups export` and `rosterd template`.

use std::io::Write;

use clap::{Subcommand, ValueEnum};

use super::open_store;
use crate::config::Config;
use crate::import;
use crate::import::header::FieldSet;
use crate::import::users::UserField;
use crate::store::{Store, Tenant};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TemplateKind {
    Users,
    Groups,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Print a district's users as CSV, sorted by username (never passwords)
    #[command(after_help = "Example:\n  rosterd users export lincoln-usd > lincoln-users.csv")]
    Export { subdomain: String },
    /// Set new generated passwords for some users, printed as CSV
    /// (Username, First Name, Last Name, School, Password) to hand out
    #[command(
        after_help = "Their old passwords stop working at once. The change is a run of its own:\n\
`rosterd runs undo SUB RUN --apply` puts the old passwords back. Generated passwords are 12 letters\n\
and digits without look-alikes (no 0/O, 1/l/I).\n\nExamples:\n  \
rosterd users reset-passwords lincoln-usd --run 42 --out new-passwords.csv\n  \
rosterd users reset-passwords lincoln-usd --without-password --out new-passwords.csv\n  \
rosterd users reset-passwords lincoln-usd ada.l grace.h"
    )]
    ResetPasswords(super::passwords::ResetArgs),
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Print a district's group memberships as CSV (Group Name, Owner, Username),
    /// sorted by group and username; groups without members have one row with no username
    #[command(after_help = "Example:\n  rosterd groups export lincoln-usd > lincoln-groups.csv")]
    Export { subdomain: String },
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
        .map_err(|e| {
            // Keep the kind, so a closed pipe is still one.
            let kind = match e.kind() {
                csv::ErrorKind::Io(io) => io.kind(),
                _ => std::io::ErrorKind::Other,
            };
            std::io::Error::new(kind, e)
        })
    })?;
    w.flush()?;
    Ok(())
}

/// `rosterd template KIND`: the header line of a file to fill.
pub(super) fn template(kind: TemplateKind, out: &mut impl Write) -> anyhow::Result<i32> {
    let header = match kind {
        TemplateKind::Users => UserField::template_header(),
        TemplateKind::Groups => import::groups::GroupField::template_header(),
    };
    writeln!(out, "{header}")?;
    Ok(0)
}

/// `rosterd groups export SUB`.
pub(super) fn groups_export(
    config: &Config,
    subdomain: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    let tenant = store.require_tenant(subdomain)?;
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

/// `rosterd users export SUB`.
pub(super) fn users_export(
    config: &Config,
    subdomain: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_store(config)?;
    let tenant = store.require_tenant(subdomain)?;
    export_users(&store, &tenant, out)?;
    Ok(0)
}
