//! Districts: registering one, reading them, their settings (time zone,
//! window, SSO, allowed addresses, full sync, holds, pause, disabled),
//! their column mappings, and renaming or deleting one with all its rows.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, timestamp};
use crate::domain::tenant::Tenant;

pub struct NewTenant<'a> {
    pub subdomain: &'a str,
    pub admin_name: &'a str,
    pub admin_email: &'a str,
    pub timezone: Option<&'a str>,
    pub sso: bool,
    pub window: Option<&'a str>,
}

const TENANT_COLUMNS: &str = "id, subdomain, admin_name, admin_email, timezone, sso, window, disabled, created_at,
    absent, hold_update_percent, hold_deactivate_percent, pause_from, pause_until, pause_additions_only,
    generate_passwords";

fn tenant_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        subdomain: r.get(1)?,
        admin_name: r.get(2)?,
        admin_email: r.get(3)?,
        timezone: r.get(4)?,
        sso: r.get(5)?,
        window: r.get(6)?,
        disabled: r.get(7)?,
        created_at: r.get(8)?,
        absent: if r.get_ref(9)?.as_str()? == "deactivate" {
            crate::domain::safety::Absent::Deactivate
        } else {
            crate::domain::safety::Absent::Keep
        },
        hold_update_percent: r.get(10)?,
        hold_deactivate_percent: r.get(11)?,
        pause: crate::domain::safety::Pause::from_columns(r.get(12)?, r.get(13)?, r.get(14)?),
        generate_passwords: r.get(15)?,
    })
}

/// Store whether the district's imports generate passwords for new users
/// without one.
pub fn set_generate_passwords(conn: &Connection, tenant_id: i64, on: bool) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tenants SET generate_passwords = ?2 WHERE id = ?1",
        params![tenant_id, on],
    )?;
    Ok(())
}

/// Store the district's full-sync choice.
pub fn set_absent(
    conn: &Connection,
    tenant_id: i64,
    absent: crate::domain::safety::Absent,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tenants SET absent = ?2 WHERE id = ?1",
        params![tenant_id, absent.as_str()],
    )?;
    Ok(())
}

/// Store the district's hold thresholds; `None` leaves one as it is,
/// `Some(None)` returns it to the config's.
pub fn set_hold_limits(
    conn: &Connection,
    tenant_id: i64,
    update: Option<Option<u8>>,
    deactivate: Option<Option<u8>>,
) -> rusqlite::Result<()> {
    if let Some(v) = update {
        conn.execute(
            "UPDATE tenants SET hold_update_percent = ?2 WHERE id = ?1",
            params![tenant_id, v],
        )?;
    }
    if let Some(v) = deactivate {
        conn.execute(
            "UPDATE tenants SET hold_deactivate_percent = ?2 WHERE id = ?1",
            params![tenant_id, v],
        )?;
    }
    Ok(())
}

/// Store (or with `None`, end) the district's pause.
pub fn set_pause(
    conn: &Connection,
    tenant_id: i64,
    pause: Option<crate::domain::safety::Pause>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE tenants SET pause_from = ?2, pause_until = ?3, pause_additions_only = ?4 WHERE id = ?1",
        params![
            tenant_id,
            pause.map(|p| p.from.to_string()),
            pause.map(|p| p.until.to_string()),
            pause.is_some_and(|p| p.additions_only)
        ],
    )?;
    Ok(())
}

impl Store {
    pub fn add_tenant(&self, t: &NewTenant<'_>, now: DateTime<Utc>) -> Result<i64> {
        if self.tenant(t.subdomain)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "tenant {} already exists",
                t.subdomain
            )));
        }
        self.conn.execute(
            "INSERT INTO tenants (subdomain, admin_name, admin_email, timezone, sso, window, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![t.subdomain, t.admin_name, t.admin_email, t.timezone, t.sso, t.window, timestamp(now)],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn tenant(&self, subdomain: &str) -> Result<Option<Tenant>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE subdomain = ?1"),
                [subdomain],
                tenant_row,
            )
            .optional()?)
    }

    /// The district, or a NotFound error that tells support how to list them.
    pub fn require_tenant(&self, subdomain: &str) -> Result<Tenant> {
        self.tenant(subdomain)?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no tenant {subdomain:?}; `rosterd tenant list` shows them"
            ))
        })
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        Self::tenants_of(&self.conn)
    }

    /// Every district, on any connection.
    pub fn tenants_of(conn: &Connection) -> Result<Vec<Tenant>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY subdomain"
        ))?;
        let rows = stmt
            .query_map([], tenant_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn set_disabled(&self, tenant_id: i64, disabled: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE tenants SET disabled = ?2 WHERE id = ?1",
            params![tenant_id, disabled],
        )?;
        Ok(())
    }

    /// Change the settings `tenant set` may change; `None` leaves one as it is.
    /// Where the district's keys may log in from (an OpenSSH address
    /// pattern list), on top of each key's own `from`; `None`: anywhere.
    pub fn set_allow_from(&self, tenant_id: i64, list: Option<&str>) -> Result<()> {
        self.conn.execute(
            "UPDATE tenants SET allow_from = ?2 WHERE id = ?1",
            params![tenant_id, list],
        )?;
        Ok(())
    }

    pub fn allow_from(&self, tenant_id: i64) -> Result<Option<String>> {
        Ok(self.conn.query_row(
            "SELECT allow_from FROM tenants WHERE id = ?1",
            [tenant_id],
            |r| r.get(0),
        )?)
    }

    pub fn update_tenant(
        &self,
        tenant_id: i64,
        admin_name: Option<&str>,
        admin_email: Option<&str>,
        timezone: Option<Option<&str>>,
        sso: Option<bool>,
        window: Option<Option<&str>>,
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        if let Some(v) = admin_name {
            tx.execute(
                "UPDATE tenants SET admin_name = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = admin_email {
            tx.execute(
                "UPDATE tenants SET admin_email = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = timezone {
            tx.execute(
                "UPDATE tenants SET timezone = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = sso {
            tx.execute(
                "UPDATE tenants SET sso = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        if let Some(v) = window {
            tx.execute(
                "UPDATE tenants SET window = ?2 WHERE id = ?1",
                params![tenant_id, v],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The district's stored column mapping: (header as written, field name).
    pub fn column_map(&self, tenant_id: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT header, field FROM tenant_columns WHERE tenant_id = ?1 ORDER BY header_key",
        )?;
        let rows = stmt
            .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    pub fn set_column(
        &self,
        tenant_id: i64,
        header_key: &str,
        header: &str,
        field: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tenant_columns (tenant_id, header_key, header, field) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, header_key) DO UPDATE SET header = excluded.header, field = excluded.field",
            params![tenant_id, header_key, header, field],
        )?;
        Ok(())
    }

    /// Remove one mapping; false if there was none.
    pub fn remove_column(&self, tenant_id: i64, header_key: &str) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM tenant_columns WHERE tenant_id = ?1 AND header_key = ?2",
            params![tenant_id, header_key],
        )?;
        Ok(n > 0)
    }
}

/// A district's stored column mapping: (header key, field name).
pub fn column_mapping(
    conn: &Connection,
    tenant_id: i64,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT header_key, field FROM tenant_columns WHERE tenant_id = ?1")?;
    let rows = stmt.query_map([tenant_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    rows.collect()
}

/// District `tenant_id`, on any connection; `None` once it is deleted.
pub fn tenant_by_id(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Option<Tenant>> {
    conn.query_row(
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1"),
        [tenant_id],
        tenant_row,
    )
    .optional()
}

/// The subdomain district `tenant_id` has now; `None` once it is deleted.
/// What a session or an import checks after taking a district's spool
/// lock, since a rename or delete may have finished just before.
pub fn tenant_subdomain(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT subdomain FROM tenants WHERE id = ?1",
        [tenant_id],
        |r| r.get(0),
    )
    .optional()
}

/// Give district `tenant_id` the subdomain `new`; a subdomain another
/// district has is a conflict. Everything else of the district names it by
/// id and follows (its uploads' file paths: [`super::move_upload_files`]).
pub fn rename_tenant(conn: &Connection, tenant_id: i64, new: &str) -> Result<()> {
    let taken: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE subdomain = ?1 AND id <> ?2)",
        params![new, tenant_id],
        |r| r.get(0),
    )?;
    if taken {
        return Err(StoreError::Conflict(format!(
            "tenant {new} already exists; choose another subdomain"
        )));
    }
    conn.execute(
        "UPDATE tenants SET subdomain = ?2 WHERE id = ?1",
        params![tenant_id, new],
    )?;
    Ok(())
}

/// What [`delete_tenant`] deleted of a district, for support's answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub users: usize,
    pub groups: usize,
    pub schools: usize,
    pub keys: usize,
    pub runs: usize,
    pub uploads: usize,
    pub emails: usize,
}

/// Delete district `tenant_id` and every row of it, in the order its
/// references need: groups and memberships, runs with their problems and
/// change journals, uploads, users, schools, keys, column mappings, emails
/// (sent or not), refused connections and login throttles. Nothing of
/// another district is touched. Run it in a transaction: all or nothing.
pub fn delete_tenant(conn: &Connection, tenant_id: i64) -> rusqlite::Result<Deleted> {
    // What a purge deletes (names, hashes, an undelivered report's generated
    // passwords) is overwritten, not left in the file's free pages.
    conn.pragma_update(None, "secure_delete", true)?;
    let delete = |sql: &str| conn.execute(sql, [tenant_id]);
    delete(
        "DELETE FROM group_members
         WHERE group_id IN (SELECT id FROM groups WHERE tenant_id = ?1)
            OR user_id IN (SELECT id FROM users WHERE tenant_id = ?1)",
    )?;
    let groups = delete("DELETE FROM groups WHERE tenant_id = ?1")?;
    delete(
        "DELETE FROM import_problems WHERE run_id IN (SELECT id FROM import_runs WHERE tenant_id = ?1)",
    )?;
    delete(
        "DELETE FROM user_changes WHERE run_id IN (SELECT id FROM import_runs WHERE tenant_id = ?1)",
    )?;
    // Uploads and runs name each other: unlink before deleting either.
    delete("UPDATE uploads SET run_id = NULL WHERE tenant_id = ?1")?;
    let runs = delete("DELETE FROM import_runs WHERE tenant_id = ?1")?;
    let uploads = delete("DELETE FROM uploads WHERE tenant_id = ?1")?;
    let users = delete("DELETE FROM users WHERE tenant_id = ?1")?;
    let schools = delete("DELETE FROM schools WHERE tenant_id = ?1")?;
    let keys = delete("DELETE FROM ssh_keys WHERE tenant_id = ?1")?;
    delete("DELETE FROM tenant_columns WHERE tenant_id = ?1")?;
    let emails = delete("DELETE FROM outbox WHERE tenant_id = ?1")?;
    delete("DELETE FROM connection_failures WHERE tenant_id = ?1")?;
    delete("DELETE FROM login_throttles WHERE tenant_id = ?1")?;
    delete("DELETE FROM refused_uploads WHERE tenant_id = ?1")?;
    delete("DELETE FROM tenants WHERE id = ?1")?;
    Ok(Deleted {
        users,
        groups,
        schools,
        keys,
        runs,
        uploads,
        emails,
    })
}
