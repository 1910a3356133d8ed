//! Groups and their members, as the groups import reads and writes them:
//! the district's possible owners, users by username, default and named
//! groups, memberships. Each runs inside the import's transaction.

use rusqlite::{Connection, OptionalExtension, params};

/// An active user with an access type: a possible group owner.
#[derive(Debug, Clone)]
pub struct OwnerCandidate {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    /// As stored.
    pub access_type: String,
}

/// Active users of `tenant_id` with an access type (possible owners).
pub fn owner_candidates(
    conn: &Connection,
    tenant_id: i64,
) -> rusqlite::Result<Vec<OwnerCandidate>> {
    let mut stmt = conn.prepare(
        "SELECT id, username, coalesce(first_name, ''), coalesce(last_name, ''), access_type
         FROM users WHERE tenant_id = ?1 AND access_type IS NOT NULL AND active = 1",
    )?;
    stmt.query_map([tenant_id], |r| {
        Ok(OwnerCandidate {
            id: r.get(0)?,
            username: r.get(1)?,
            first_name: r.get(2)?,
            last_name: r.get(3)?,
            access_type: r.get(4)?,
        })
    })?
    .collect()
}

/// The user of `tenant_id` whose lowercase username is `key`.
pub fn user_id_by_key(
    conn: &Connection,
    tenant_id: i64,
    key: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM users WHERE tenant_id = ?1 AND username_key = ?2")?
        .query_row(params![tenant_id, key], |r| r.get(0))
        .optional()
}

/// Whether a user of `tenant_id` has `text` as username or full name, and
/// if so whether one such is active (`Some(true)`).
pub fn user_named(conn: &Connection, tenant_id: i64, text: &str) -> rusqlite::Result<Option<bool>> {
    conn.query_row(
        "SELECT active FROM users WHERE tenant_id = ?1 AND (username_key = lower(?2)
            OR lower(trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))) = lower(?2))
         ORDER BY active DESC LIMIT 1",
        params![tenant_id, text],
        |r| r.get(0),
    )
    .optional()
}

/// The default group of owner `owner_id`, if made.
pub fn default_group(conn: &Connection, owner_id: i64) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT id FROM groups WHERE owner_id = ?1 AND is_default",
        [owner_id],
        |r| r.get(0),
    )
    .optional()
}

/// Make a group; `is_default` for an owner's own. Returns its id.
pub fn add_group(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    name_key: &str,
    owner_id: Option<i64>,
    is_default: bool,
    now: i64,
) -> rusqlite::Result<i64> {
    if is_default {
        conn.execute(
            "INSERT INTO groups (tenant_id, name, name_key, owner_id, is_default, created_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)",
            params![tenant_id, name, name_key, owner_id, now],
        )?;
    } else {
        conn.execute(
            "INSERT INTO groups (tenant_id, name, name_key, owner_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![tenant_id, name, name_key, owner_id, now],
        )?;
    }
    Ok(conn.last_insert_rowid())
}

/// A group and its owner, if any.
#[derive(Debug, Clone)]
pub struct GroupOwner {
    pub id: i64,
    pub owner_id: Option<i64>,
    pub owner_username: Option<String>,
}

/// The group of `tenant_id` keyed `name_key`.
pub fn group_by_key(
    conn: &Connection,
    tenant_id: i64,
    name_key: &str,
) -> rusqlite::Result<Option<GroupOwner>> {
    conn.query_row(
        "SELECT g.id, g.owner_id, u.username FROM groups g LEFT JOIN users u ON u.id = g.owner_id
         WHERE g.tenant_id = ?1 AND g.name_key = ?2",
        params![tenant_id, name_key],
        |r| {
            Ok(GroupOwner {
                id: r.get(0)?,
                owner_id: r.get(1)?,
                owner_username: r.get(2)?,
            })
        },
    )
    .optional()
}

/// Group `group_id` is owned by `owner_id` from now on.
pub fn set_group_owner(conn: &Connection, group_id: i64, owner_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE groups SET owner_id = ?2 WHERE id = ?1",
        params![group_id, owner_id],
    )?;
    Ok(())
}

/// Add `user_id` to `group_id`; whether it was new.
pub fn add_member(conn: &Connection, group_id: i64, user_id: i64) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
        params![group_id, user_id],
    )? == 1)
}
