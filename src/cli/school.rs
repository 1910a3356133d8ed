//! `rosterd school`: register, list, rename and remove a district's schools.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

use super::open_store;
use super::tenant::count;
use crate::config::Config;
use crate::import;
use crate::store::{School, Store, Tenant};

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
    /// Rename a school; its users stay in it
    #[command(
        after_help = "SCHOOL is the school's name, NCES ID or state ID, matched as a users.csv School cell is. \
Afterwards the district's users.csv must name the school by its new name (or its NCES or state ID).\n\n\
Examples:\n  rosterd school rename lincoln-usd 'Lincon Elementary' 'Lincoln Elementary'\n  \
rosterd school rename lincoln-usd 062271003230 'Lincoln Elementary School'"
    )]
    Rename {
        subdomain: String,
        /// The school's name, NCES ID or state ID
        school: String,
        new_name: String,
    },
    /// Remove a school no user is in
    #[command(
        after_help = "SCHOOL is the school's name, NCES ID or state ID. Refused while users are in the school, \
active or not: first give them another school with a users.csv whose School column names it.\n\n\
Example:\n  rosterd school remove lincoln-usd 'Lincoln Annex'"
    )]
    Remove {
        subdomain: String,
        /// The school's name, NCES ID or state ID
        school: String,
    },
}

pub(super) fn school_command(
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
        SchoolCommand::Rename {
            subdomain,
            school,
            new_name,
        } => {
            let t = store.require_tenant(&subdomain)?;
            let s = find(&store, &t, &school)?;
            let name = store.rename_school(t.id, s.id, &new_name)?;
            let (users, _) = store.school_users(s.id)?;
            write!(
                out,
                "renamed school {:?} of {} to {name:?}",
                s.name, t.subdomain
            )?;
            if users > 0 {
                write!(out, "; its {} stay in it", count(users, "user"))?;
            }
            writeln!(out)?;
            Ok(0)
        }
        SchoolCommand::Remove { subdomain, school } => {
            let t = store.require_tenant(&subdomain)?;
            let s = find(&store, &t, &school)?;
            let (users, inactive) = store.school_users(s.id)?;
            if users > 0 || !store.remove_school(t.id, s.id)? {
                let inactive = match inactive {
                    0 => String::new(),
                    n if n == users => " (all inactive)".to_owned(),
                    n => format!(" ({n} of them inactive)"),
                };
                bail!(
                    "{} has {}{inactive}; give them another school first (a users.csv whose School column names it), then remove it",
                    s.name,
                    count(users, "user")
                );
            }
            writeln!(out, "removed school {:?} from {}", s.name, t.subdomain)?;
            Ok(0)
        }
        SchoolCommand::Import { subdomain, file } => {
            let t = store.require_tenant(&subdomain)?;
            let added = import::schools::import(&store.conn, t.id, &file)?;
            writeln!(out, "added {added} schools to {}", t.subdomain)?;
            Ok(0)
        }
    }
}

/// The district's school `text` names, or an error that lists how to see them.
fn find(store: &Store, t: &Tenant, text: &str) -> anyhow::Result<School> {
    store.find_school(t.id, text)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no school named {text:?} (by name, NCES ID or state ID); `rosterd school list {}` shows them",
            t.subdomain,
            t.subdomain
        )
    })
}
