//! Reading a district's users and group memberships for export.

use rusqlite::Connection;

use super::{Result, Store};

/// One row of `groups export`.
pub struct Membership {
    pub group: String,
    pub owner: Option<String>,
    /// `None` for a group without members.
    pub member: Option<String>,
}

/// Every group of a tenant with its members, by group and member; a group
/// without members once, with no member.
pub fn group_memberships(conn: &Connection, tenant_id: i64) -> Result<Vec<Membership>> {
    let mut stmt = conn.prepare(
        "SELECT g.name, o.username, u.username FROM groups g
         LEFT JOIN users o ON o.id = g.owner_id
         LEFT JOIN group_members m ON m.group_id = g.id
         LEFT JOIN users u ON u.id = m.user_id
         WHERE g.tenant_id = ?1 ORDER BY lower(g.name), g.id, u.username_key",
    )?;
    let rows = stmt
        .query_map([tenant_id], |r| {
            Ok(Membership {
                group: r.get(0)?,
                owner: r.get(1)?,
                member: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// A user as `users export` shows it; never a password.
pub struct ExportedUser {
    pub username: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub school: Option<String>,
    pub graduation_year: Option<i32>,
    pub access_type: Option<String>,
    /// Not deactivated (full sync, or an undone creation).
    pub active: bool,
}

impl Store {
    /// Stream the tenant's users, sorted by username, to `each`.
    pub fn for_each_user(
        &self,
        tenant_id: i64,
        mut each: impl FnMut(ExportedUser) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT u.username, u.email, u.first_name, u.last_name, s.name, u.graduation_year, u.access_type,
                    u.active
             FROM users u LEFT JOIN schools s ON s.id = u.school_id
             WHERE u.tenant_id = ?1 ORDER BY u.username_key",
        )?;
        let mut rows = stmt.query([tenant_id])?;
        while let Some(r) = rows.next()? {
            each(ExportedUser {
                username: r.get(0)?,
                email: r.get(1)?,
                first_name: r.get(2)?,
                last_name: r.get(3)?,
                school: r.get(4)?,
                graduation_year: r.get(5)?,
                access_type: r.get(6)?,
                active: r.get(7)?,
            })?;
        }
        Ok(())
    }
}
