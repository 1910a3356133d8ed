//! The archived copy of an imported `users.csv`: the same rows, re-encoded as
//! UTF-8, with every password cell blanked. A column counts as a password
//! column when the header matching of the import (aliases and the district's
//! mapping) makes it Password, or when its name merely looks like one
//! ("pwd", "Student Pass"), because an unrecognised column may still hold
//! passwords. A file whose header cannot be read is not kept at all.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::Connection;

use super::decode::{self, CsvRows};
use super::header::{FieldSet, Mapped, header_key};
use super::users::UserField;

/// Write the blanked copy of `src` to `dst` (mode 0600, atomically). Returns
/// false, writing nothing, when the file cannot be decoded or has no header,
/// so there is no safe way to tell passwords from other cells.
pub fn write_blanked_copy(
    conn: &Connection,
    tenant_id: i64,
    src: &Path,
    dst: &Path,
) -> anyhow::Result<bool> {
    let Ok(file) = crate::files::open_nofollow(src) else {
        return Ok(false);
    };
    let Ok(scan) = decode::scan_reader(&file) else {
        return Ok(false);
    };
    let mapping = super::tenant_mapping::<UserField>(conn, tenant_id)?;
    let mut rows = CsvRows::from_file(file, scan.encoding)?;
    let mut record = csv::StringRecord::new();
    let Ok(Some(_)) = rows.next(&mut record) else {
        return Ok(false);
    };
    let secret: Vec<bool> = record
        .iter()
        .map(|name| is_password_column(name, &mapping))
        .collect();

    let tmp = dst.with_extension("tmp");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // Cells are neutralised as in every CSV rosterd writes; the importer
    // reads them back as they were.
    let mut out = crate::domain::text::CsvOut::new(std::io::BufWriter::new(file));
    out.row(&record)?;
    let copied = loop {
        match rows.next(&mut record) {
            Ok(Some(_)) => {
                let cells = record.iter().enumerate().map(|(i, cell)| {
                    // Cells beyond the header have no name: blank them too.
                    if secret.get(i).copied().unwrap_or(true) {
                        ""
                    } else {
                        cell
                    }
                });
                out.row(cells)?;
            }
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    let mut inner = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    inner.flush()?;
    let file = inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    if !copied {
        drop(file);
        std::fs::remove_file(&tmp)?;
        return Ok(false);
    }
    file.sync_all()?;
    std::fs::rename(&tmp, dst)?;
    Ok(true)
}

fn is_password_column(
    name: &str,
    mapping: &std::collections::HashMap<String, Mapped<UserField>>,
) -> bool {
    let key = header_key(name);
    match mapping.get(&key) {
        Some(Mapped::Field(f)) => *f == UserField::Password,
        _ => {
            UserField::from_key(&key) == Some(UserField::Password)
                || ["pass", "pwd", "secret", "pin"]
                    .iter()
                    .any(|hint| key.contains(hint))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn password_columns_by_alias_mapping_or_look() {
        let none = HashMap::new();
        for name in ["Password", "password", "Student Pass", "PWD", "Initial PIN"] {
            assert!(is_password_column(name, &none), "{name}");
        }
        for name in ["Username", "Email Address", "School"] {
            assert!(!is_password_column(name, &none), "{name}");
        }
        let mut mapped = HashMap::new();
        mapped.insert("code".to_string(), Mapped::Field(UserField::Password));
        assert!(is_password_column("Code", &mapped));
    }
}
