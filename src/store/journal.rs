//! The change journal's rows: the fields a change can touch and the SQL
//! that reads and restores them, each run's batches of entries
//! (`user_changes`), and what undo reads and writes. The journal's logic
//! (gathering entries, listing and undoing a run) is `import::journal`.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

/// The stored fields a change can touch, as bits of a mask: which of them a
/// journal row keeps the previous values of.
pub mod field {
    pub const USERNAME: u16 = 1 << 0;
    pub const EMAIL: u16 = 1 << 1;
    pub const FIRST_NAME: u16 = 1 << 2;
    pub const LAST_NAME: u16 = 1 << 3;
    pub const SCHOOL: u16 = 1 << 4;
    pub const GRADUATION_YEAR: u16 = 1 << 5;
    pub const ACCESS_TYPE: u16 = 1 << 6;
    /// The hash and its fingerprint.
    pub const PASSWORD: u16 = 1 << 7;
    pub const ACTIVE: u16 = 1 << 8;
    pub const ALL: u16 = (1 << 9) - 1;
}

/// Per field bit: its JSON key in a journal row's `before` object with the
/// SQL that reads it from `users`, and how the change list names it
/// (`None`: never shown, the password fingerprint).
pub const COLUMNS: [(u16, &str, &str, Option<&str>); 10] = [
    (field::USERNAME, "username", "username", Some("Username")),
    (field::EMAIL, "email", "email", Some("Email Address")),
    (
        field::FIRST_NAME,
        "first_name",
        "first_name",
        Some("First Name"),
    ),
    (
        field::LAST_NAME,
        "last_name",
        "last_name",
        Some("Last Name"),
    ),
    (field::SCHOOL, "school_id", "school_id", Some("School")),
    (
        field::GRADUATION_YEAR,
        "graduation_year",
        "graduation_year",
        Some("Graduation Year"),
    ),
    (
        field::ACCESS_TYPE,
        "access_type",
        "access_type",
        Some("Access Type"),
    ),
    (
        field::PASSWORD,
        "password_hash",
        "password_hash",
        Some("Password"),
    ),
    // JSON holds no blobs: the fingerprint as hex.
    (
        field::PASSWORD,
        "password_fp",
        "CASE WHEN password_fp IS NULL THEN NULL ELSE hex(password_fp) END",
        None,
    ),
    (field::ACTIVE, "active", "active", Some("Status")),
];

/// A JSON object of the user's current values of the fields in `mask`.
fn values_sql(mask: u16) -> String {
    let pairs: Vec<String> = COLUMNS
        .iter()
        .filter(|c| c.0 & mask != 0)
        .map(|(_, key, sql, _)| format!("'{key}', {sql}"))
        .collect();
    format!("json_object({})", pairs.join(", "))
}

/// Put journaled values back: (user, `before` object, now); fields the
/// object does not name stay as they are.
fn restore_sql() -> String {
    let sets: Vec<String> = COLUMNS
        .iter()
        .map(|(_, key, _, _)| {
            let value = if *key == "password_fp" {
                format!("unhex(json_extract(?2, '$.{key}'))")
            } else {
                format!("json_extract(?2, '$.{key}')")
            };
            format!(
                "{key} = CASE WHEN json_type(?2, '$.{key}') IS NULL THEN {key} ELSE {value} END"
            )
        })
        .collect();
    format!(
        "UPDATE users SET {}, updated_at = ?3 WHERE id = ?1",
        sets.join(", ")
    )
}

/// The current values of the fields `mask` of user `user`, as the JSON
/// object a journal entry keeps.
pub fn user_values(conn: &Connection, user: i64, mask: u16) -> rusqlite::Result<String> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM users WHERE id = ?1",
        values_sql(mask)
    ))?
    .query_row([user], |r| r.get(0))
}

/// Store batch `seq` of run `run_id`'s entries (a JSON array).
pub fn insert_batch(
    conn: &Connection,
    run_id: i64,
    seq: i64,
    entries: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO user_changes (run_id, seq, entries) VALUES (?1, ?2, ?3)")?
        .execute(params![run_id, seq, entries])?;
    Ok(())
}

/// The users run `run_id` of `tenant_id` created, in order.
pub fn created_by(conn: &Connection, tenant_id: i64, run_id: i64) -> rusqlite::Result<Vec<i64>> {
    conn.prepare("SELECT id FROM users WHERE tenant_id = ?1 AND created_run = ?2 ORDER BY id")?
        .query_map(params![tenant_id, run_id], |r| r.get(0))?
        .collect()
}

/// Each stored batch of run `run_id`'s entries, in order.
pub fn for_each_batch(
    conn: &Connection,
    run_id: i64,
    mut each: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt =
        conn.prepare("SELECT entries FROM user_changes WHERE run_id = ?1 AND seq = ?2")?;
    for seq in 1.. {
        let Some(entries) = stmt
            .query_row(params![run_id, seq], |r| r.get::<_, String>(0))
            .optional()?
        else {
            break;
        };
        each(&entries)?;
    }
    Ok(())
}

/// Each stored batch of the runs after `run_id`, oldest first, with its run.
pub fn for_each_later_batch(
    conn: &Connection,
    run_id: i64,
    mut each: impl FnMut(i64, &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stmt = conn.prepare(
        "SELECT run_id, entries FROM user_changes WHERE run_id > ?1 ORDER BY run_id, seq",
    )?;
    let mut rows = stmt.query([run_id])?;
    while let Some(r) = rows.next()? {
        each(r.get(0)?, r.get_ref(1)?.as_str()?)?;
    }
    Ok(())
}

/// Whether any run after `run_id` journaled a change.
pub fn any_changes_after(conn: &Connection, run_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM user_changes WHERE run_id > ?1)",
        [run_id],
        |r| r.get(0),
    )
}

/// A district's school names by id.
pub fn school_names(conn: &Connection, tenant_id: i64) -> rusqlite::Result<HashMap<i64, String>> {
    conn.prepare("SELECT id, name FROM schools WHERE tenant_id = ?1")?
        .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Users of `tenant_id` as a change list shows them: username and every
/// journaled field's current value (a JSON object), by id.
pub struct UsersNow<'c>(rusqlite::Statement<'c>, i64);

impl<'c> UsersNow<'c> {
    pub fn new(conn: &'c Connection, tenant_id: i64) -> rusqlite::Result<Self> {
        Ok(Self(
            conn.prepare(&format!(
                "SELECT username, {} FROM users WHERE id = ?1 AND tenant_id = ?2",
                values_sql(field::ALL)
            ))?,
            tenant_id,
        ))
    }

    pub fn get(&mut self, user: i64) -> rusqlite::Result<(String, String)> {
        self.0
            .query_row(params![user, self.1], |r| Ok((r.get(0)?, r.get(1)?)))
    }
}

/// What undo checks of a run.
#[derive(Debug, Clone)]
pub struct RunForUndo {
    pub kind: String,
    pub outcome: String,
    pub resolution: Option<String>,
    /// Users it created, updated, deactivated or reactivated.
    pub changed: i64,
}

/// Run `run_id` of `tenant_id` as undo checks it; `None` if there is no
/// such run.
pub fn run_for_undo(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> rusqlite::Result<Option<RunForUndo>> {
    conn.query_row(
        "SELECT kind, outcome, resolution, created + updated + deactivated + reactivated
         FROM import_runs WHERE id = ?1 AND tenant_id = ?2",
        params![run_id, tenant_id],
        |r| {
            Ok(RunForUndo {
                kind: r.get(0)?,
                outcome: r.get(1)?,
                resolution: r.get(2)?,
                changed: r.get(3)?,
            })
        },
    )
    .optional()
}

/// Whether run `run_id` has a journal (changes, or users it created).
pub fn is_journaled(conn: &Connection, tenant_id: i64, run_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM user_changes WHERE run_id = ?1)
             OR EXISTS (SELECT 1 FROM users WHERE tenant_id = ?2 AND created_run = ?1)",
        params![run_id, tenant_id],
        |r| r.get(0),
    )
}

/// The undos after `run_id` still in force, with the runs they undid:
/// (undo, undone).
pub fn undos_after(
    conn: &Connection,
    tenant_id: i64,
    run_id: i64,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    conn.prepare(
        "SELECT id, undoes FROM import_runs WHERE tenant_id = ?1 AND id > ?2
         AND undoes IS NOT NULL AND coalesce(resolution, '') NOT LIKE 'undone%'",
    )?
    .query_map(params![tenant_id, run_id], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// Undo's writes, prepared once: put journaled values back, deactivate a
/// user the undone run created, and read whether a user is active.
pub struct Restorer<'c> {
    restore: rusqlite::CachedStatement<'c>,
    deactivate: rusqlite::CachedStatement<'c>,
    is_active: rusqlite::CachedStatement<'c>,
}

impl<'c> Restorer<'c> {
    pub fn new(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            restore: conn.prepare_cached(&restore_sql())?,
            deactivate: conn
                .prepare_cached("UPDATE users SET active = 0, updated_at = ?2 WHERE id = ?1")?,
            is_active: conn.prepare_cached("SELECT active FROM users WHERE id = ?1")?,
        })
    }

    /// Put back the values of the JSON object `before` (fields it does not
    /// name stay as they are).
    pub fn restore(&mut self, user: i64, before: &str, now: i64) -> rusqlite::Result<()> {
        self.restore.execute(params![user, before, now])?;
        Ok(())
    }

    pub fn deactivate(&mut self, user: i64, now: i64) -> rusqlite::Result<()> {
        self.deactivate.execute(params![user, now])?;
        Ok(())
    }

    pub fn is_active(&mut self, user: i64) -> rusqlite::Result<bool> {
        self.is_active.query_row([user], |r| r.get::<_, bool>(0))
    }
}

/// Run `undo_id` undid run `run_id`: each says so; undoing an undo redoes
/// the run it had undone. The caller's transaction.
pub fn record_undo(conn: &Connection, undo_id: i64, run_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE import_runs SET undoes = ?2 WHERE id = ?1",
        params![undo_id, run_id],
    )?;
    conn.execute(
        "UPDATE import_runs SET resolution = ?2 WHERE id = ?1",
        params![run_id, format!("undone by run {undo_id}")],
    )?;
    // Undoing an undo redoes the run it had undone.
    conn.execute(
        "UPDATE import_runs SET resolution = ?2
         WHERE id = (SELECT undoes FROM import_runs WHERE id = ?1)",
        params![run_id, format!("redone by run {undo_id}")],
    )?;
    Ok(())
}

/// Whether school `school_id` is still one of district `tenant_id`'s: an
/// undo must not put users back in a school removed since.
pub fn school_exists(conn: &Connection, tenant_id: i64, school_id: i64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM schools WHERE id = ?1 AND tenant_id = ?2)",
        params![school_id, tenant_id],
        |r| r.get(0),
    )
}
