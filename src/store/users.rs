//! Users: reading a district's users and group memberships for export, and
//! the users import's statements (the reader stage's lookup on a read
//! snapshot, the writer's insert and update, deactivation).

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store};

/// One row of `groups export`.
pub struct Membership {
    pub group: String,
    pub owner: Option<String>,
    /// `None` for a group without members.
    pub member: Option<String>,
}

/// Every group of a district with its members, by group and member; a group
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
    /// Stream the district's users, sorted by username, to `each`.
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

/// The columns [`FIND_EXISTING`] reads, in order.
pub mod existing {
    pub const ID: usize = 0;
    pub const TENANT_ID: usize = 1;
    pub const USERNAME: usize = 2;
    pub const EMAIL: usize = 3;
    pub const FIRST_NAME: usize = 4;
    pub const LAST_NAME: usize = 5;
    pub const SCHOOL_ID: usize = 6;
    pub const GRADUATION_YEAR: usize = 7;
    pub const ACCESS_TYPE: usize = 8;
    pub const PASSWORD_FP: usize = 9;
    pub const ACTIVE: usize = 10;
    pub const PASSWORD_HASH: usize = 11;
}

/// A user by lowercase username, in any district, with the columns
/// [`existing`] names: the importer compares them in place with a row.
const FIND_EXISTING: &str =
    "SELECT id, tenant_id, username, email, first_name, last_name, school_id,
    graduation_year, access_type, password_fp, active, password_hash FROM users WHERE username_key = ?1";

/// [`FIND_EXISTING`], prepared (once per connection, from its cache).
pub fn find_existing_statement(
    conn: &Connection,
) -> rusqlite::Result<rusqlite::CachedStatement<'_>> {
    conn.prepare_cached(FIND_EXISTING)
}

/// Whether `tenant_id` has no users yet (its first import only creates).
pub fn has_no_users(conn: &Connection, tenant_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1)",
        [tenant_id],
        |r| r.get(0),
    )
}

/// How many users `tenant_id` has, active or not.
pub fn user_count(conn: &Connection, tenant_id: i64) -> rusqlite::Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE tenant_id = ?1",
        [tenant_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// How many active users `tenant_id` has.
pub fn active_users(conn: &Connection, tenant_id: i64) -> rusqlite::Result<u64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE tenant_id = ?1 AND active = 1",
        [tenant_id],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Each active user of `tenant_id`: `f(id, username key)`.
pub fn for_each_active_user(
    conn: &Connection,
    tenant_id: i64,
    mut f: impl FnMut(i64, &str),
) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare("SELECT id, username_key FROM users WHERE tenant_id = ?1 AND active = 1")?;
    let mut rows = stmt.query([tenant_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get_ref(1)?.as_str()?);
    }
    Ok(())
}

/// Deactivate user `id` (never deleted).
pub struct Deactivator<'c>(rusqlite::CachedStatement<'c>);

impl<'c> Deactivator<'c> {
    pub fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("UPDATE users SET active = 0, updated_at = ?2 WHERE id = ?1")
            .map(Self)
    }

    pub fn deactivate(&mut self, user_id: i64, now: i64) -> rusqlite::Result<()> {
        self.0.execute(params![user_id, now])?;
        Ok(())
    }
}

/// A user to create.
#[derive(Debug, Clone, Copy)]
pub struct NewUser<'a> {
    pub tenant_id: i64,
    pub username: &'a str,
    pub username_key: &'a str,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub school_id: Option<i64>,
    pub graduation_year: Option<i32>,
    pub access_type: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub password_fp: Option<&'a [u8]>,
    pub now: i64,
    /// The run that creates it (its journal).
    pub run_id: i64,
}

/// What an import changes of user `id`: its username as given, and every
/// other value where given (`None` keeps the stored one), reactivating it.
#[derive(Debug, Clone, Copy)]
pub struct UserUpdate<'a> {
    pub id: i64,
    pub username: &'a str,
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub school_id: Option<i64>,
    pub graduation_year: Option<i32>,
    /// Keep the stored access type (else set `access_type`, `None` removing it).
    pub keep_access: bool,
    pub access_type: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub password_fp: Option<&'a [u8]>,
    pub now: i64,
}

/// The users import's writer: its two statements, prepared once per batch
/// from the connection's cache.
pub struct UserWriter<'c> {
    insert: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
}

impl<'c> UserWriter<'c> {
    pub fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            insert: conn.prepare_cached(
                "INSERT INTO users (tenant_id, username, username_key, email, first_name, last_name, school_id,
            graduation_year, access_type, password_hash, password_fp, created_at, updated_at, created_run)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13)
         ON CONFLICT (username_key) DO NOTHING",
            )?,
            update: conn.prepare_cached(
                "UPDATE users SET username = ?2, email = COALESCE(?3, email), first_name = COALESCE(?4, first_name),
            last_name = COALESCE(?5, last_name), school_id = COALESCE(?6, school_id),
            graduation_year = COALESCE(?7, graduation_year),
            access_type = CASE WHEN ?12 THEN access_type ELSE ?8 END,
            password_hash = COALESCE(?9, password_hash), password_fp = COALESCE(?10, password_fp), updated_at = ?11,
            active = 1
         WHERE id = ?1",
            )?,
        })
    }

    /// Create `u`; `false` if its username is taken (in any district).
    pub fn insert(&mut self, u: &NewUser<'_>) -> rusqlite::Result<bool> {
        Ok(self.insert.execute(params![
            u.tenant_id,
            u.username,
            u.username_key,
            u.email,
            u.first_name,
            u.last_name,
            u.school_id,
            u.graduation_year,
            u.access_type,
            u.password_hash,
            u.password_fp,
            u.now,
            u.run_id
        ])? == 1)
    }

    pub fn update(&mut self, u: &UserUpdate<'_>) -> rusqlite::Result<()> {
        self.update.execute(params![
            u.id,
            u.username,
            u.email,
            u.first_name,
            u.last_name,
            u.school_id,
            u.graduation_year,
            u.access_type,
            u.password_hash,
            u.password_fp,
            u.now,
            u.keep_access
        ])?;
        Ok(())
    }
}

/// A district's schools as the importer matches them: (id, name, NCES ID,
/// state ID).
pub fn for_each_school(
    conn: &Connection,
    tenant_id: i64,
    mut f: impl FnMut(i64, String, Option<String>, Option<String>),
) -> rusqlite::Result<()> {
    let mut stmt =
        conn.prepare("SELECT id, name, nces_id, state_id FROM schools WHERE tenant_id = ?1")?;
    let mut rows = stmt.query([tenant_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    }
    Ok(())
}

/// A read-only connection to the database `conn` is open on, inside a read
/// transaction whose snapshot starts now: the import's reader stage looks
/// users up here while its writer holds the write lock.
pub fn read_snapshot(conn: &Connection) -> anyhow::Result<Connection> {
    use rusqlite::OpenFlags;
    let path = conn
        .path()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| anyhow::anyhow!("imports need a database file"))?;
    let snapshot = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    snapshot.busy_timeout(std::time::Duration::from_secs(10))?;
    snapshot.execute_batch("BEGIN")?;
    snapshot.query_row("SELECT count(*) FROM tenants", [], |_| Ok(()))?; // the snapshot starts at the first read
    Ok(snapshot)
}

/// Which users a password reset is for.
pub enum ResetSelection<'a> {
    /// The active users run N created.
    CreatedBy(i64),
    /// The active users with no password.
    WithoutPassword,
    /// These usernames: (as given, username key).
    Usernames(&'a [(String, String)]),
}

/// A user whose password is to be reset, as `new-passwords.csv` names them.
pub struct ResetTarget {
    pub id: i64,
    pub username: String,
    pub username_key: String,
    pub first_name: String,
    pub last_name: String,
    /// The school's name, or empty.
    pub school: String,
    pub active: bool,
}

/// The users of `tenant_id` that `selection` names, in id order; for
/// [`ResetSelection::Usernames`] also the names that match none of them.
pub fn reset_targets(
    conn: &Connection,
    tenant_id: i64,
    selection: &ResetSelection<'_>,
) -> rusqlite::Result<(Vec<ResetTarget>, Vec<String>)> {
    const COLUMNS: &str = "SELECT u.id, u.username, u.username_key, coalesce(u.first_name, ''),
        coalesce(u.last_name, ''), coalesce(s.name, ''), u.active
        FROM users u LEFT JOIN schools s ON s.id = u.school_id";
    let row = |r: &rusqlite::Row<'_>| {
        Ok(ResetTarget {
            id: r.get(0)?,
            username: r.get(1)?,
            username_key: r.get(2)?,
            first_name: r.get(3)?,
            last_name: r.get(4)?,
            school: r.get(5)?,
            active: r.get(6)?,
        })
    };
    // The district's (?1) active users that `condition` picks.
    let active =
        |condition: &str, values: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<ResetTarget>> {
            conn.prepare(&format!(
                "{COLUMNS} WHERE u.tenant_id = ?1 AND {condition} AND u.active = 1 ORDER BY u.id"
            ))?
            .query_map(values, row)?
            .collect()
        };
    match selection {
        ResetSelection::CreatedBy(run) => Ok((
            active("u.created_run = ?2", &[&tenant_id, run])?,
            Vec::new(),
        )),
        ResetSelection::WithoutPassword => Ok((
            active("u.password_hash IS NULL", &[&tenant_id])?,
            Vec::new(),
        )),
        ResetSelection::Usernames(names) => {
            let mut stmt = conn.prepare(&format!(
                "{COLUMNS} WHERE u.tenant_id = ?1 AND u.username_key = ?2"
            ))?;
            let (mut found, mut unknown) = (Vec::new(), Vec::new());
            for (name, key) in names.iter() {
                match stmt.query_row(params![tenant_id, key], row).optional()? {
                    Some(t) => found.push(t),
                    None => unknown.push(name.clone()),
                }
            }
            // A name given twice (in any case) is one user.
            found.sort_by_key(|t| t.id);
            found.dedup_by_key(|t| t.id);
            Ok((found, unknown))
        }
    }
}

/// Set user `id`'s password (its hash and fingerprint).
pub fn set_password(
    conn: &Connection,
    id: i64,
    hash: &str,
    fp: &[u8],
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE users SET password_hash = ?2, password_fp = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, hash, fp, now])?;
    Ok(())
}
