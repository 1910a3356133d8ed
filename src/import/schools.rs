//! A district's schools from a CSV file (`rosterd school import`): columns
//! Name, NCES ID and State ID, matched like a users file's header, in any
//! supported encoding; every school is added or none is.

use std::path::Path;

use anyhow::bail;
use rusqlite::Connection;

use super::decode;
use super::header::{self, FieldSet};
use crate::store;

/// Columns of a schools CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchoolField {
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

/// Add the schools `file` lists to `tenant_id`, all in one transaction; none
/// if any line is wrong, and the error lists every wrong line. Returns how
/// many were added.
pub fn import(conn: &Connection, tenant_id: i64, file: &Path) -> anyhow::Result<usize> {
    let blank_none = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let scan = decode::scan(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut rows = decode::CsvRows::open(file, scan.encoding)?;
    let mut header = csv::StringRecord::new();
    if rows.next(&mut header)?.is_none() {
        bail!("{}: the file has no header line", file.display());
    }
    let columns = header::match_columns::<SchoolField>(&header, &Default::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let tx = conn.unchecked_transaction()?;
    let mut errors = Vec::new();
    let mut added = 0;
    let mut record = csv::StringRecord::new();
    while let Some(line) = rows.next(&mut record)? {
        let cell = |f| Some(columns.get(&record, f).to_owned());
        match store::add_school_in(
            &tx,
            tenant_id,
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
    Ok(added)
}
