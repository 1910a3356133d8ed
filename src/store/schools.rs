//! Districts' schools: adding (one, or a file's worth in one transaction)
//! and listing; names compare without case or spacing.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError};

/// A school of a district.
#[derive(Debug, Clone)]
pub struct School {
    pub id: i64,
    pub name: String,
    pub nces_id: Option<String>,
    pub state_id: Option<String>,
}

/// The key schools are matched by name on: case- and space-insensitive.
pub fn school_name_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `add_school` on any connection or transaction, so `school import` can add a
/// whole file in one transaction.
pub fn add_school_in(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    nces: Option<&str>,
    state: Option<&str>,
) -> Result<i64> {
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err(StoreError::Conflict("a school needs a name".into()));
    }
    let nces = nces
        .map(crate::domain::school::nces_id)
        .transpose()
        .map_err(StoreError::Conflict)?;
    let nces = nces.as_deref();
    let clash: Option<String> = conn
        .query_row(
            "SELECT name FROM schools WHERE tenant_id = ?1
             AND (name_key = ?2 OR (?3 IS NOT NULL AND nces_id = ?3) OR (?4 IS NOT NULL AND state_id = ?4))",
            params![tenant_id, school_name_key(&name), nces, state],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(existing) = clash {
        return Err(StoreError::Conflict(format!(
            "school {name:?} clashes with existing school {existing:?}: names, NCES IDs and state IDs must be unique within a tenant"
        )));
    }
    conn.execute(
        "INSERT INTO schools (tenant_id, name, name_key, nces_id, state_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![tenant_id, name, school_name_key(&name), nces, state],
    )?;
    Ok(conn.last_insert_rowid())
}

impl Store {
    /// Add a school; a name, NCES ID or state ID the district already uses is a conflict.
    pub fn add_school(
        &self,
        tenant_id: i64,
        name: &str,
        nces: Option<&str>,
        state: Option<&str>,
    ) -> Result<i64> {
        add_school_in(&self.conn, tenant_id, name, nces, state)
    }

    pub fn schools(&self, tenant_id: i64) -> Result<Vec<School>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, nces_id, state_id FROM schools WHERE tenant_id = ?1 ORDER BY name_key")?;
        let rows = stmt
            .query_map([tenant_id], |r| {
                Ok(School {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    nces_id: r.get(2)?,
                    state_id: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
