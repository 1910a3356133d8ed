//! Districts' schools: adding (one, or a file's worth in one transaction),
//! listing, finding one as a users file's School cell does, renaming and
//! removing; names compare without case or spacing.

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
        "INSERT INTO schools (id, tenant_id, name, name_key, nces_id, state_id)
         VALUES (max(coalesce((SELECT max(id) FROM schools), 0),
                     coalesce((SELECT value FROM id_floors WHERE name = 'schools'), 0)) + 1,
                 ?1, ?2, ?3, ?4, ?5)",
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

    /// The district's school that `text` names, matched as a users file's
    /// School cell is: by NCES ID, then state ID, then name.
    pub fn find_school(&self, tenant_id: i64, text: &str) -> Result<Option<School>> {
        let text = text.trim();
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, nces_id, state_id FROM schools WHERE tenant_id = ?1
                 AND (trim(nces_id) = ?2 OR lower(trim(state_id)) = lower(?2) OR name_key = ?3)
                 ORDER BY trim(nces_id) = ?2 DESC, lower(trim(state_id)) = lower(?2) DESC
                 LIMIT 1",
                params![tenant_id, text, school_name_key(text)],
                |r| {
                    Ok(School {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        nces_id: r.get(2)?,
                        state_id: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Rename school `school_id` of `tenant_id` to `name` (spaces tidied, as
    /// `add_school` does); returns the stored name. A name another school of
    /// the district has is a conflict; the same name in another case is not.
    pub fn rename_school(&self, tenant_id: i64, school_id: i64, name: &str) -> Result<String> {
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() {
            return Err(StoreError::Conflict("a school needs a name".into()));
        }
        let clash: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM schools WHERE tenant_id = ?1 AND name_key = ?2 AND id <> ?3",
                params![tenant_id, school_name_key(&name), school_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = clash {
            return Err(StoreError::Conflict(format!(
                "the district already has a school named {existing:?}; school names must be unique within a district"
            )));
        }
        self.conn.execute(
            "UPDATE schools SET name = ?3, name_key = ?4 WHERE id = ?2 AND tenant_id = ?1",
            params![tenant_id, school_id, name, school_name_key(&name)],
        )?;
        Ok(name)
    }

    /// The users that school `school_id` has: (all of them, the inactive
    /// among them).
    pub fn school_users(&self, school_id: i64) -> Result<(u64, u64)> {
        Ok(self.conn.query_row(
            "SELECT count(*), count(*) FILTER (WHERE active = 0) FROM users WHERE school_id = ?1",
            [school_id],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?)
    }

    /// Remove school `school_id` of `tenant_id`, if no user has it (users
    /// are never left naming a school that is gone); false if one does.
    pub fn remove_school(&self, tenant_id: i64, school_id: i64) -> Result<bool> {
        let tx = self.conn.unchecked_transaction()?;
        let removed = tx.execute(
            "DELETE FROM schools WHERE id = ?2 AND tenant_id = ?1
             AND NOT EXISTS (SELECT 1 FROM users WHERE school_id = ?2)",
            params![tenant_id, school_id],
        )?;
        // Its id is never given to another school (see `add_school_in`).
        tx.execute(
            "INSERT INTO id_floors (name, value) VALUES ('schools', ?1)
             ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            [school_id],
        )?;
        tx.commit()?;
        Ok(removed > 0)
    }
}
