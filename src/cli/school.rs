//! `rosterd school`: register and list a district's schools.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use super::open_store;
use crate::config::Config;
use crate::import;

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
        SchoolCommand::Import { subdomain, file } => {
            let t = store.require_tenant(&subdomain)?;
            let added = import::schools::import(&store.conn, t.id, &file)?;
            writeln!(out, "added {added} schools to {}", t.subdomain)?;
            Ok(0)
        }
    }
}
